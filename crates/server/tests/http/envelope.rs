use agentd_test_support::spawn_app;

use crate::{expect_envelope, leaks_internals};

#[tokio::test]
async fn an_unknown_route_gets_the_not_found_envelope() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/no/such/route")).send().await.unwrap();
    expect_envelope(res, 404, "not_found").await;
}

#[tokio::test]
async fn a_wrong_method_gets_the_method_not_allowed_envelope_with_allow() {
    let app = spawn_app().await;
    let res = app.client.delete(app.url("/health")).send().await.unwrap();
    let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
    assert!(allow.is_some_and(|a| a.contains("GET")));
    expect_envelope(res, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_without_internals_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/debug/panic")).send().await.unwrap();
    let body = expect_envelope(res, 500, "internal_error").await;
    let text = body.to_string();
    assert!(!leaks_internals(&text), "{text}");
    assert!(!text.contains("debug/panic route was called"), "{text}");
    for _ in 0..3 {
        let res = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn malformed_json_gets_a_422_with_details() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .header("content-type", "application/json")
        .body(r#"{"name": "x", "count": "#)
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    let detail = &body["error"]["details"][0];
    assert!(detail["message"].as_str().unwrap().starts_with("malformed JSON"), "{body}");
}

#[tokio::test]
async fn an_invalid_field_is_named_in_the_details() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .json(&serde_json::json!({"name": "x", "count": -1, "tags": ["a", 7]}))
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    assert_eq!(body["error"]["details"][0]["field"], "count", "{body}");
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .json(&serde_json::json!({"name": "x", "count": 1, "tags": ["a", 7]}))
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    assert_eq!(body["error"]["details"][0]["field"], "tags[1]", "{body}");
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .json(&serde_json::json!({"name": "x", "count": 1, "admin": true}))
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    assert!(body["error"]["details"][0]["message"].as_str().unwrap().contains("admin"), "{body}");
}

#[tokio::test]
async fn json_nested_too_deeply_gets_a_422() {
    let app = spawn_app().await;
    let deep = format!(
        "{{\"name\": \"x\", \"count\": 1, \"tags\": {}{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 422, "validation_error").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_a_415() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/debug/echo"))
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    expect_envelope(res, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn a_valid_body_is_echoed() {
    let app = spawn_app().await;
    let sent = serde_json::json!({"name": "x", "count": 3, "tags": ["a"]});
    let res = app.client.post(app.url("/debug/echo")).json(&sent).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap(), sent);
}

#[tokio::test]
async fn a_bad_query_parameter_gets_a_422_naming_it() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/debug/sleep?ms=soon")).send().await.unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    assert_eq!(body["error"]["details"][0]["field"], "ms", "{body}");
}

#[tokio::test]
async fn a_safe_client_request_id_is_kept_and_echoed() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "client-id_1.2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-id_1.2");
    let res = app.client.get(app.url("/nope")).header("x-request-id", "abc").send().await.unwrap();
    let body = expect_envelope(res, 404, "not_found").await;
    assert_eq!(body["error"]["request_id"], "abc");
}

#[tokio::test]
async fn an_unsafe_client_request_id_is_replaced_by_a_uuid() {
    let app = spawn_app().await;
    for bad in ["has space", "semi;colon", &"x".repeat(129), "quote\"d"] {
        let res =
            app.client.get(app.url("/health")).header("x-request-id", bad).send().await.unwrap();
        let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(echoed, bad);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert!(uuid::Uuid::parse_str(res.headers()["x-request-id"].to_str().unwrap()).is_ok());
}
