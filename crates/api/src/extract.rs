//! Extractors whose rejections are `ApiError`s, so that bad input always gets the envelope.
//!
//! [`ApiJson`] reads the body itself rather than using axum's `Json`: it distinguishes a body over
//! the limit (413), a stalled body (408), a wrong media type (415), JSON nested too deeply and JSON
//! that does not fit the target type (422 with one detail per problem and the path of the field).

use agentd_protocol::ErrorDetail;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The deepest JSON nesting a request body may have.
pub const MAX_JSON_DEPTH: usize = 32;

/// A JSON request body (and a JSON response).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        read_json(request).await.map(Self)
    }
}

/// Reads a JSON body as [`ApiJson`] does, for handlers that must check something (such as
/// whether the caller may see the resource) before they read the body.
///
/// # Errors
/// 415 when the body is not JSON, then as [`read_body`] and [`parse_json`].
pub async fn read_json<T: DeserializeOwned>(request: Request) -> Result<T, ApiError> {
    if !is_json(&request) {
        return Err(ApiError::UnsupportedMediaType(
            "expected a JSON body with Content-Type: application/json".into(),
        ));
    }
    let bytes = read_body(request).await?;
    parse_json(&bytes)
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(request: &Request) -> bool {
    let Some(ct) = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads a whole request body, mapping the body limit and the body timeout to their errors.
///
/// # Errors
/// 413 over the limit, 408 when the body stalls, 400 when the connection fails mid-body.
pub async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    match request.into_body().collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => Err(body_error(&err)),
    }
}

fn body_error(err: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge("the request body is larger than allowed".into());
        }
        if e.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::RequestTimeout;
        }
        source = e.source();
    }
    ApiError::BadRequest("the request body could not be read".into())
}

/// Parses a JSON body into `T`, with the depth limit and per-field error details.
///
/// # Errors
/// 422 `validation_error` with details.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(depth) = exceeds_depth(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::Validation(vec![ErrorDetail::whole(format!(
            "JSON is nested more than {MAX_JSON_DEPTH} levels deep (found at least {depth})"
        ))]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = json_message(&inner);
        if inner.is_data() && path != "." {
            ApiError::Validation(vec![ErrorDetail::field(path, message)])
        } else {
            ApiError::Validation(vec![ErrorDetail::whole(message)])
        }
    })?;
    de.end().map_err(|e| ApiError::Validation(vec![ErrorDetail::whole(json_message(&e))]))?;
    Ok(value)
}

fn json_message(err: &serde_json::Error) -> String {
    match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("malformed JSON: {err}")
        }
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            // serde's data errors read "invalid type: ... at line 1 column 9"; the position is
            // noise next to the field path.
            let text = err.to_string();
            text.rsplit_once(" at line ").map_or(text.clone(), |(msg, _)| msg.to_owned())
        }
    }
}

/// The nesting depth at which `bytes` first exceeds `max`, if it does. Brackets inside strings
/// are skipped; the scan is linear and allocation-free, so hostile input costs little.
fn exceeds_depth(bytes: &[u8], max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Path parameters; a malformed one (say, a bad UUID) is a 422 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let kind = e.into_kind();
                let field = path_error_field(&kind);
                Err(ApiError::Validation(vec![ErrorDetail { field, message: kind.to_string() }]))
            }
            Err(other) => Err(ApiError::Internal(Box::new(other))),
        }
    }
}

fn path_error_field(kind: &axum::extract::path::ErrorKind) -> Option<String> {
    use axum::extract::path::ErrorKind;
    match kind {
        ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => {
            Some(key.clone())
        }
        ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
        _ => None,
    }
}

/// Query parameters; a malformed one is a 422.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(url_form(query));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            ApiError::Validation(vec![if path == "." {
                ErrorDetail::whole(message)
            } else {
                ErrorDetail::field(path, message)
            }])
        })
    }
}

fn url_form(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn details(err: ApiError) -> Vec<ErrorDetail> {
        match err {
            ApiError::Validation(d) => d,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_wrong_field_type_names_the_field() {
        let err = parse_json::<Body>(br#"{"name": "x", "inner": {"count": "many"}}"#).unwrap_err();
        let d = details(err);
        assert_eq!(d[0].field.as_deref(), Some("inner.count"));
        assert!(d[0].message.starts_with("invalid type"), "{}", d[0].message);
    }

    #[test]
    fn a_missing_field_is_reported() {
        let d = details(parse_json::<Body>(br#"{"inner": {"count": 1}}"#).unwrap_err());
        assert!(d[0].message.contains("missing field `name`"), "{d:?}");
    }

    #[test]
    fn malformed_json_is_a_whole_body_problem() {
        let d = details(parse_json::<Body>(br#"{"name": "#).unwrap_err());
        assert_eq!(d[0].field, None);
        assert!(d[0].message.starts_with("malformed JSON"), "{d:?}");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        assert!(parse_json::<serde_json::Value>(br#"{} {}"#).is_err());
    }

    #[test]
    fn nesting_beyond_the_limit_is_rejected_before_parsing() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(parse_json::<serde_json::Value>(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(parse_json::<serde_json::Value>(ok.as_bytes()).is_ok());
        let hostile = "[".repeat(100_000);
        assert_eq!(exceeds_depth(hostile.as_bytes(), 32), Some(33));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = format!(r#"{{"a": "{}"}}"#, "[".repeat(100));
        assert_eq!(exceeds_depth(s.as_bytes(), 32), None);
        assert_eq!(exceeds_depth(br#"{"a": "\"[[[["}"#, 2), None);
    }
}
