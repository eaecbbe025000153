use agentd_llm::{BreakerState, LlmClient, LlmError};
use agentd_test_support::llm::{Protocol, Reply, RetryAfter};

use crate::{ctx, harness, hello, secs};

fn breaker_of(h: &crate::Harness, provider: &str) -> (BreakerState, Option<String>) {
    let status = h.router.status();
    let p = status.providers.iter().find(|p| p.name == provider).unwrap();
    let m = p.models.iter().find(|m| m.model == "m").unwrap();
    (m.breaker, m.last_error.clone())
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_half_opens_for_one_probe_and_closes_on_success() {
    let h = harness(&[Protocol::Openai], |_, _| {}).await;
    h.fake(0).push([Reply::status(500), Reply::status(500), Reply::status(500)]);
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    // Three consecutive transient failures tripped it, also with a single provider.
    assert_eq!(err, LlmError::Unavailable { retry_after: secs(30) });
    assert_eq!(breaker_of(&h, "p0"), (BreakerState::Open, Some("server_error".into())));
    assert!(h.router.status().soonest_half_open_at.is_some());

    // Open: refused without a request.
    tokio::time::advance(secs(10)).await;
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::Unavailable { retry_after: secs(20) });
    assert_eq!(h.fake(0).request_count(), 3);

    // Half-open after 30 s: one probe goes through and closes it.
    tokio::time::advance(secs(20)).await;
    assert_eq!(breaker_of(&h, "p0").0, BreakerState::HalfOpen);
    h.fake(0).push([Reply::text("back")]);
    assert_eq!(h.router.chat(hello(), &ctx()).await.unwrap().text, "back");
    assert_eq!(breaker_of(&h, "p0").0, BreakerState::Closed);
    assert_eq!(h.fake(0).request_count(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_breaker_for_twice_as_long() {
    let h = harness(&[Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::overloaded(), Reply::overloaded(), Reply::overloaded()]);
    h.router.chat(hello(), &ctx()).await.unwrap_err();
    tokio::time::advance(secs(30)).await;
    h.fake(0).push([Reply::overloaded()]);
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::Unavailable { retry_after: secs(60) });
    assert_eq!(h.fake(0).request_count(), 4, "the probe is the only attempt while half-open");
}

#[tokio::test(start_paused = true)]
async fn a_429_cools_down_until_its_retry_after_without_tripping_the_breaker() {
    let h = harness(&[Protocol::Gemini], |_, _| {}).await;
    h.fake(0).push([Reply::rate_limited(RetryAfter::GeminiDelay("120s".into()))]);
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::Unavailable { retry_after: secs(120) });
    assert_eq!(breaker_of(&h, "p0"), (BreakerState::Closed, Some("rate_limited".into())));
    let status = h.router.status();
    assert_eq!(status.providers[0].models[0].cooldown_until, Some(crate::NOW + secs(120)));
    tokio::time::advance(secs(120)).await;
    h.fake(0).push([Reply::text("ok")]);
    assert_eq!(h.router.chat(hello(), &ctx()).await.unwrap().text, "ok");
}

#[tokio::test(start_paused = true)]
async fn the_status_view_never_shows_keys_and_marks_refused_credentials() {
    let h = harness(&[Protocol::Openai], |_, _| {}).await;
    h.fake(0).push([Reply::status(401)]);
    h.router.chat(hello(), &ctx()).await.unwrap_err();
    let status = h.router.status();
    assert!(status.providers[0].misconfigured);
    assert_eq!(status.providers[0].last_error.as_deref(), Some("auth_error"));
    let json = serde_json::to_string(&status).unwrap();
    assert!(!json.contains("key-0"), "{json}");
    // The key did reach the provider, as a bearer token.
    let sent = &h.fake(0).requests()[0].headers;
    assert_eq!(sent.get("authorization").unwrap(), "Bearer key-0");
}
