//! The `/v1` route handlers, one module per resource. Handlers are thin: extract, call the store
//! or a service, map to protocol types.

pub(crate) mod api_keys;
pub(crate) mod approvals;
pub(crate) mod auth;
pub(crate) mod chat;
pub(crate) mod checks;
pub(crate) mod conversations;
pub(crate) mod files;
pub(crate) mod jobs;
pub(crate) mod llm;
pub(crate) mod projects;
pub(crate) mod run_socket;
pub(crate) mod runs;
pub(crate) mod users;

use std::str::FromStr;

use agentd_core::page::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Page, PageRequest};
use agentd_protocol::{ListResponse, PageQuery};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// A timestamp as the API writes it: RFC 3339, UTC.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 timestamp from the request field `field`.
pub(crate) fn parse_time(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        ApiError::invalid(field, "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z")
    })
}

/// `limit` and `cursor` as a page request; a bad value is a 422 naming it.
pub(crate) fn page_request<C: FromStr>(query: &PageQuery) -> Result<PageRequest<C>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE_LIMIT}")));
    }
    let after = match &query.cursor {
        Some(cursor) => Some(
            cursor
                .parse()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor from this list"))?,
        ),
        None => None,
    };
    Ok(PageRequest { limit, after })
}

/// A store page as the list envelope.
pub(crate) fn list<T, C: ToString, R>(
    page: Page<T, C>,
    convert: impl Fn(T) -> R,
) -> ListResponse<R> {
    ListResponse {
        data: page.items.into_iter().map(convert).collect(),
        next_cursor: page.next.map(|c| c.to_string()),
    }
}

/// Checks a text field's length in characters.
pub(crate) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::invalid(field, format!("must be {min} to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}
