//! The list envelope every paginated endpoint returns.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A page of items: `data` newest first, `next_cursor` to fetch the next page (absent on the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListResponse<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
