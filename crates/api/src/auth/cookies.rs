//! The cookies of browser sessions: the access token, the refresh token and the CSRF token, all
//! `HttpOnly` and `SameSite=Strict`, `Secure` when agentd is served over https.

use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

/// The access token.
pub const SESSION: &str = "agentd_session";
/// The refresh token, sent only to `/v1/auth`.
pub const REFRESH: &str = "agentd_refresh";
/// The double-submit CSRF token.
pub const CSRF: &str = "agentd_csrf";

/// The value of cookie `name` in the request, if present.
#[must_use]
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Appends a `Set-Cookie` for `name=value`, living `max_age` (`None` deletes it).
pub fn set(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<Duration>,
    secure: bool,
) {
    let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    match max_age {
        Some(age) => cookie.set_max_age(cookie::time::Duration::seconds(
            i64::try_from(age.as_secs()).unwrap_or(i64::MAX),
        )),
        None => cookie.make_removal(),
    }
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; agentd_csrf=xyz"));
        headers.append(COOKIE, HeaderValue::from_static("agentd_session=tok"));
        assert_eq!(get(&headers, CSRF).as_deref(), Some("xyz"));
        assert_eq!(get(&headers, SESSION).as_deref(), Some("tok"));
        assert_eq!(get(&headers, REFRESH), None);
    }

    #[test]
    fn set_cookies_are_http_only_and_strict() {
        let mut headers = HeaderMap::new();
        set(&mut headers, SESSION, "v", "/", Some(Duration::from_secs(60)), true);
        let text = headers.get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        for part in
            ["agentd_session=v", "HttpOnly", "SameSite=Strict", "Secure", "Path=/", "Max-Age=60"]
        {
            assert!(text.contains(part), "{text}");
        }
        let mut headers = HeaderMap::new();
        set(&mut headers, SESSION, "", "/", None, false);
        let text = headers.get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        assert!(text.contains("Max-Age=0") && !text.contains("Secure"), "{text}");
    }
}
