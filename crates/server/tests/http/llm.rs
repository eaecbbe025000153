//! `GET /v1/llm/providers` and `GET /v1/usage`.

use agentd_core::usage::NewUsage;
use agentd_core::user::Role;
use agentd_llm::{ProviderKind, ProviderSettings};
use agentd_test_support::{TestDatabase, spawn_app, spawn_app_with};
use secrecy::SecretString;
use serde_json::Value;
use time::OffsetDateTime;

use crate::expect_envelope;

#[tokio::test]
async fn providers_are_listed_without_keys() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        s.llm.providers.insert(
            "main".into(),
            ProviderSettings {
                kind: ProviderKind::Openai,
                base_url: Some("http://127.0.0.1:9/v1".into()),
                api_key_env: Some("PLANTED_KEY_VAR".into()),
                api_key: Some(SecretString::from("sk-planted-provider-key-0123456789")),
                timeout_seconds: 5,
                connect_timeout_seconds: 1,
                first_byte_timeout_seconds: 1,
                idle_timeout_seconds: 1,
                stream_timeout_seconds: 5,
            },
        );
        s.llm.default_model = Some("main/gpt-test".into());
    })
    .await;
    let (_, token) = app.signed_in("p@example.com", Role::Member).await;
    let res =
        app.client.get(app.url("/v1/llm/providers")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains("sk-planted"), "a key leaked: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let provider = &body["providers"][0];
    assert_eq!(provider["name"], "main");
    assert_eq!(provider["kind"], "openai");
    assert_eq!(provider["models"][0]["breaker"], "closed");
    let res = app.client.get(app.url("/v1/llm/providers")).send().await.unwrap();
    expect_envelope(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn with_no_provider_readiness_stays_ready_and_the_list_is_empty() {
    let app = spawn_app().await;
    assert_eq!(app.client.get(app.url("/health/ready")).send().await.unwrap().status(), 200);
    let (_, token) = app.signed_in("n@example.com", Role::Member).await;
    let body: Value = app
        .client
        .get(app.url("/v1/llm/providers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["providers"].as_array().map(Vec::len), Some(0));
}

fn usage(principal: agentd_core::UserId, model: &str, cost: Option<i64>) -> NewUsage {
    NewUsage {
        at: OffsetDateTime::now_utc(),
        run_id: None,
        conversation_id: None,
        principal,
        agent_type: "code".into(),
        project_id: None,
        provider: "main".into(),
        model: model.into(),
        input_tokens: 100,
        cached_input_tokens: 20,
        cache_write_tokens: 0,
        output_tokens: 10,
        reasoning_tokens: 0,
        cost_nano_usd: cost,
        latency_ms: 5,
        ttft_ms: None,
        outcome: "ok".into(),
        cache_hit: false,
        streamed: false,
    }
}

#[tokio::test]
async fn usage_is_the_callers_own_and_admins_see_everyones() {
    let app = spawn_app().await;
    let (alice, alice_token) = app.signed_in("alice@example.com", Role::Member).await;
    let (bob, _) = app.signed_in("bob@example.com", Role::Member).await;
    let (_, admin_token) = app.signed_in("admin@example.com", Role::Admin).await;
    for record in [
        usage(alice.id, "m1", Some(1_500_000)),
        usage(alice.id, "m1", Some(2_500_000)),
        usage(alice.id, "m2", None),
        usage(bob.id, "m1", Some(7)),
    ] {
        app.store.record_usage(record).await.unwrap();
    }
    let get = |token: &str, query: &str| {
        app.client.get(app.url(&format!("/v1/usage{query}"))).bearer_auth(token.to_owned()).send()
    };
    let mine: Value = get(&alice_token, "").await.unwrap().json().await.unwrap();
    let rows = mine["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{mine}");
    let m1 = rows.iter().find(|r| r["model"] == "m1").unwrap();
    assert_eq!(m1["attempts"], 2);
    assert_eq!(m1["input_tokens"], 200);
    assert_eq!(m1["cost_usd"], "0.004000000");
    let m2 = rows.iter().find(|r| r["model"] == "m2").unwrap();
    assert_eq!(m2["unpriced_attempts"], 1);
    let all: Value = get(&admin_token, "").await.unwrap().json().await.unwrap();
    let m1_all =
        all["data"].as_array().unwrap().iter().find(|r| r["model"] == "m1").unwrap().clone();
    assert_eq!(m1_all["attempts"], 3);
    for bad in [
        "?from=yesterday",
        "?from=2026-02-01&to=2026-01-01",
        "?from=2020-01-01&to=2026-01-01",
        "?to=2026-13-01",
    ] {
        expect_envelope(get(&alice_token, bad).await.unwrap(), 422, "validation_error").await;
    }
}
