use agentd_api::auth::jwt::{AUDIENCE, Claims, TokenSigner};
use agentd_api::auth::secrets::derive_key;
use agentd_core::user::Role;
use agentd_test_support::{TEST_PASSWORD, TEST_SECRET_KEY, TestApp, spawn_app};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::expect_envelope;

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.get(app.url("/v1/me")).bearer_auth(token).send().await.unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signing_in_gives_tokens_that_authenticate() {
    let app = spawn_app().await;
    app.user("Ada@Example.com", Role::Member).await;
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().unwrap();
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.len() >= 43));
    let res = me(&app, access).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["role"], "member");
    assert_eq!(me["credential"], "session");
    assert!(me.get("password_hash").is_none());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    app.user("grace@example.com", Role::Member).await;
    let mut bodies = Vec::new();
    for (email, password) in
        [("grace@example.com", "wrong password"), ("nobody@example.com", TEST_PASSWORD)]
    {
        let res = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let body = expect_envelope(res, 401, "unauthorized").await;
        bodies.push(body["error"]["message"].clone());
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn no_credentials_get_401_with_www_authenticate() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"agentd\"");
    expect_envelope(res, 401, "unauthorized").await;
    for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt", "token abc"] {
        let res =
            app.client.get(app.url("/v1/me")).header("authorization", bad).send().await.unwrap();
        expect_envelope(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    app.user("r@example.com", Role::Member).await;
    let (access1, refresh1) = app.login("r@example.com").await;
    let res = refresh(&app, &refresh1).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let refresh2 = body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    assert_eq!(me(&app, &access2).await.status(), 200);
    // The old token again: refused, and the family is revoked.
    expect_envelope(refresh(&app, &refresh1).await, 401, "unauthorized").await;
    expect_envelope(refresh(&app, &refresh2).await, 401, "unauthorized").await;
    expect_envelope(me(&app, &access2).await, 401, "unauthorized").await;
    expect_envelope(me(&app, &access1).await, 401, "unauthorized").await;
    // Another session of the same user is unaffected.
    let (other, _) = app.login("r@example.com").await;
    assert_eq!(me(&app, &other).await.status(), 200);
}

#[tokio::test]
async fn signing_out_ends_the_access_and_refresh_tokens() {
    let app = spawn_app().await;
    app.user("o@example.com", Role::Member).await;
    let (access, refresh_token) = app.login("o@example.com").await;
    let res =
        app.client.post(app.url("/v1/auth/logout")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    expect_envelope(me(&app, &access).await, 401, "unauthorized").await;
    expect_envelope(refresh(&app, &refresh_token).await, 401, "unauthorized").await;
}

fn signer(ttl_secs: u64) -> TokenSigner {
    let key = derive_key(TEST_SECRET_KEY.as_bytes(), "agentd/access-token/v1");
    TokenSigner::new(&key, "agentd", std::time::Duration::from_secs(ttl_secs))
}

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(claims: &Claims, header: &str, key: &[u8]) -> String {
    use agentd_api::auth::secrets::hmac;
    let head = URL_SAFE_NO_PAD.encode(header);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let signature = URL_SAFE_NO_PAD.encode(hmac(key, format!("{head}.{body}").as_bytes()));
    format!("{head}.{body}.{signature}")
}

#[tokio::test]
async fn expired_tampered_unsigned_and_misaddressed_tokens_are_refused() {
    let app = spawn_app().await;
    app.user("t@example.com", Role::Member).await;
    let (access, _) = app.login("t@example.com").await;
    let claims = claims_of(&access);
    let key = derive_key(TEST_SECRET_KEY.as_bytes(), "agentd/access-token/v1");
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    // Control: a token we sign the same way is accepted, so the refusals below are the checks.
    assert_eq!(me(&app, &sign(&claims, header, &key)).await.status(), 200);

    let expired = {
        let now = jsonwebtoken::get_current_timestamp();
        let user = claims.sub.parse().unwrap();
        let session = claims.sid.parse().unwrap();
        signer(900).issue(user, session, now - 3600).unwrap()
    };
    let tampered = {
        let mut c = claims.clone();
        c.sub = agentd_core::UserId::new().to_string();
        let original_sig = access.rsplit('.').next().unwrap();
        let forged = sign(&c, header, &key);
        let (unsigned, _) = forged.rsplit_once('.').unwrap();
        format!("{unsigned}.{original_sig}")
    };
    let alg_none = {
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        format!("{head}.{body}.")
    };
    let wrong_audience = {
        let mut c = claims.clone();
        c.aud = format!("not-{AUDIENCE}");
        sign(&c, header, &key)
    };
    let wrong_key = sign(&claims, header, b"some other key");
    let oversized = format!("{access}{}", "A".repeat(16 * 1024));
    for (name, token) in [
        ("expired", expired),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("wrong audience", wrong_audience),
        ("wrong key", wrong_key),
        ("oversized", oversized),
    ] {
        let res = me(&app, &token).await;
        assert_eq!(res.status(), 401, "{name} token was not refused");
        expect_envelope(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_disabled_user_loses_sessions_and_cannot_sign_in() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in("admin@example.com", Role::Admin).await;
    let (victim, token) = app.signed_in("v@example.com", Role::Member).await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/users/{}", victim.id)))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["disabled"], true);
    expect_envelope(me(&app, &token).await, 401, "unauthorized").await;
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "v@example.com", "password": TEST_PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    app.user("l@example.com", Role::Member).await;
    let attempt = |password: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": "l@example.com", "password": password}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("guess").await.unwrap().status(), 401);
    }
    let mut locked = 0;
    for password in ["guess", "guess", TEST_PASSWORD] {
        let res = attempt(password).await.unwrap();
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=900).contains(&retry));
            expect_envelope(res, 429, "rate_limit_exceeded").await;
            locked += 1;
        }
    }
    assert!(locked >= 2, "the lock-out did not hold ({locked} of 3 refused)");
}

#[tokio::test]
async fn malformed_sign_in_input_gets_422() {
    let app = spawn_app().await;
    for body in [
        json!({"email": "not-an-email", "password": "x"}),
        json!({"email": "a@example.com"}),
        json!({"email": "a@example.com", "password": "x", "role": "admin"}),
        json!({"email": format!("{}@example.com", "a".repeat(300)), "password": "x"}),
    ] {
        let res = app.client.post(app.url("/v1/auth/login")).json(&body).send().await.unwrap();
        expect_envelope(res, 422, "validation_error").await;
    }
}
