//! CORS, CSRF with cookie sessions, security headers, the Host allow-list.

use agentd_core::user::Role;
use agentd_test_support::{TEST_PASSWORD, TestApp, TestDatabase, spawn_app, spawn_app_with};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

use crate::expect_envelope;

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for path in ["/health", "/nope", "/v1/me", "/openapi.json"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!h.contains_key("strict-transport-security"), "no HSTS over plain http");
    }
    let res = app.client.get(app.url("/docs/")).send().await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("default-src 'none'"), "{csp}");
    let res = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn hsts_is_sent_when_served_over_https() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        s.http.public_url = Some("https://agentd.example.com".into());
    })
    .await;
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(res.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
}

async fn preflight(app: &TestApp, origin: &str) -> HeaderMap {
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/me"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    res.headers().clone()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_passes_and_from_another_does_not() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        s.http.cors_origins = vec!["https://console.example.com".into()];
        s.http.cors_allow_credentials = true;
    })
    .await;
    let allowed = preflight(&app, "https://console.example.com").await;
    assert_eq!(allowed["access-control-allow-origin"], "https://console.example.com");
    assert_eq!(allowed["access-control-allow-credentials"], "true");
    assert!(allowed["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let refused = preflight(&app, "https://evil.example.com").await;
    assert!(!refused.contains_key("access-control-allow-origin"), "{refused:?}");
    // A simple request from the evil origin gets no CORS grant either.
    let res = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn without_configured_origins_no_cross_origin_access_is_granted() {
    let app = spawn_app().await;
    let headers = preflight(&app, "https://console.example.com").await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn only_allowed_hosts_are_served() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        s.http.allowed_hosts = vec!["agentd.example.com".into(), "127.0.0.1".into()];
    })
    .await;
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res =
        app.client.get(app.url("/health")).header("host", "evil.example.com").send().await.unwrap();
    expect_envelope(res, 400, "bad_request").await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("host", "agentd.example.com:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

fn cookie_header(headers: &HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_for_state_changing_requests() {
    let app = spawn_app().await;
    app.user("c@example.com", Role::Member).await;
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "c@example.com", "password": TEST_PASSWORD, "use_cookies": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set_cookies: Vec<String> =
        res.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(
        set_cookies.iter().all(|c| c.contains("HttpOnly") && c.contains("SameSite=Strict")),
        "{set_cookies:?}"
    );
    let session_cookies = cookie_header(res.headers());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "cookie");
    assert!(body.get("access_token").is_none());

    // Reads work with the cookie alone.
    let res =
        app.client.get(app.url("/v1/me")).header("cookie", &session_cookies).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let res = app
        .client
        .get(app.url("/v1/auth/csrf"))
        .header("cookie", &session_cookies)
        .send()
        .await
        .unwrap();
    let csrf_cookie = cookie_header(res.headers());
    let csrf: Value = res.json().await.unwrap();
    let token = csrf["csrf_token"].as_str().unwrap().to_owned();
    let cookies = format!("{session_cookies}; {csrf_cookie}");
    let host = app.addr.to_string();
    let origin = format!("http://{host}");
    let create = |extra: Vec<(&'static str, String)>| {
        let mut req = app
            .client
            .post(app.url("/v1/api-keys"))
            .header("cookie", &cookies)
            .json(&json!({"name": "from-browser"}));
        for (k, v) in extra {
            req = req.header(k, v);
        }
        req.send()
    };
    // A cross-site POST (no token, foreign origin) is refused.
    let res = create(vec![
        ("origin", "https://evil.example.com".into()),
        ("sec-fetch-site", "cross-site".into()),
    ])
    .await
    .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    // The token alone does not help a cross-site request.
    let res = create(vec![
        ("origin", "https://evil.example.com".into()),
        ("sec-fetch-site", "cross-site".into()),
        ("x-csrf-token", token.clone()),
    ])
    .await
    .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    // Same origin without the token is refused.
    let res = create(vec![("origin", origin.clone()), ("sec-fetch-site", "same-origin".into())])
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    // Same origin with the token passes.
    let res = create(vec![
        ("origin", origin),
        ("sec-fetch-site", "same-origin".into()),
        ("x-csrf-token", token),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn bearer_clients_are_not_subject_to_csrf_checks() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("b@example.com", Role::Member).await;
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&token)
        .header("origin", "https://elsewhere.example.com")
        .json(&json!({"name": "cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}
