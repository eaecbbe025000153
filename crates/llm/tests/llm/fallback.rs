use agentd_llm::config::{ModelSettings, ProviderSettings};
use agentd_llm::{ChatRequest, LlmClient, LlmError, Message, ProviderKind};
use agentd_test_support::llm::{Protocol, Reply};

use crate::{ctx, harness, hello, ms, secs};

#[tokio::test(start_paused = true)]
async fn fallbacks_are_taken_in_order_once_retries_are_exhausted() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic, Protocol::Gemini], |_, _| {}).await;
    h.fake(0).push([Reply::status(500), Reply::status(500), Reply::status(500)]);
    h.fake(1).push([Reply::status(503), Reply::status(503), Reply::status(503)]);
    h.fake(2).push([Reply::text("third time lucky")]);
    let answer = h.router.chat(hello(), &ctx()).await.unwrap();
    assert_eq!((answer.provider.as_str(), answer.text.as_str()), ("p2", "third time lucky"));
    let counts: Vec<_> = h.fakes.iter().map(|f| f.request_count()).collect();
    assert_eq!(counts, [3, 3, 1]);
    assert_eq!(h.router.status().counters.fallbacks, 2);

    // Both breakers are open now: the next call goes straight to the third.
    h.fake(2).push([Reply::text("again")]);
    assert_eq!(h.router.chat(hello(), &ctx()).await.unwrap().provider, "p2");
    let counts: Vec<_> = h.fakes.iter().map(|f| f.request_count()).collect();
    assert_eq!(counts, [3, 3, 2]);
}

#[tokio::test(start_paused = true)]
async fn when_every_breaker_is_open_the_call_is_unavailable_until_the_soonest_half_open_time() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::status(500), Reply::status(500), Reply::status(500)]);
    h.fake(1).push([Reply::status(502), Reply::status(502), Reply::status(502)]);
    // p0 fails at 0, 0.5 and 1.5 s and opens until 31.5 s; p1 fails at 1.5, 2 and 3 s.
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::Unavailable { retry_after: ms(28_500) });
    tokio::time::advance(secs(12)).await;
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::Unavailable { retry_after: ms(16_500) });
    let counts: Vec<_> = h.fakes.iter().map(|f| f.request_count()).collect();
    assert_eq!(counts, [3, 3]);
}

#[tokio::test(start_paused = true)]
async fn no_enabled_provider_means_no_llm_configured() {
    let h = harness(&[Protocol::Openai], |s, route| {
        s.providers.insert("keyless".into(), ProviderSettings::new(ProviderKind::Anthropic));
        route.model = "keyless/claude".into();
        route.fallbacks.clear();
    })
    .await;
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::NotConfigured { agent_type: "code".into() });
    let mut other = ctx();
    other.agent_type = "review".into();
    let err = h.router.chat(hello(), &other).await.unwrap_err();
    assert_eq!(err, LlmError::NotConfigured { agent_type: "review".into() });
    assert!(!h.router.status().providers.iter().find(|p| p.name == "keyless").unwrap().enabled);
}

#[tokio::test(start_paused = true)]
async fn agent_types_without_a_route_use_the_default_model() {
    let h = harness(&[Protocol::Openai], |s, _| s.default_model = Some("p0/m".into())).await;
    h.fake(0).push([Reply::text("default")]);
    let mut other = ctx();
    other.agent_type = "review".into();
    assert_eq!(h.router.chat(hello(), &other).await.unwrap().text, "default");
}

fn big() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("x".repeat(4_000))],
        max_tokens: Some(100),
        ..ChatRequest::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_fit_fails_with_context_overflow_before_any_call() {
    let h = harness(&[Protocol::Openai], |s, _| {
        s.models.insert("p0/m".into(), ModelSettings { context_window: Some(1_000), price: None });
    })
    .await;
    let err = h.router.chat(big(), &ctx()).await.unwrap_err();
    assert!(matches!(err, LlmError::ContextOverflow { .. }), "{err:?}");
    assert_eq!(h.fake(0).request_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_larger_context_fallback_takes_what_the_primary_cannot_hold() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic], |s, _| {
        s.models.insert("p0/m".into(), ModelSettings { context_window: Some(1_000), price: None });
        s.models
            .insert("p1/m".into(), ModelSettings { context_window: Some(200_000), price: None });
    })
    .await;
    h.fake(1).push([Reply::text("roomy")]);
    assert_eq!(h.router.chat(big(), &ctx()).await.unwrap().provider, "p1");
    assert_eq!(h.fake(0).request_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_provider_reported_overflow_falls_back_only_to_a_larger_window() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic, Protocol::Gemini], |s, _| {
        s.models
            .insert("p0/m".into(), ModelSettings { context_window: Some(128_000), price: None });
        s.models
            .insert("p1/m".into(), ModelSettings { context_window: Some(100_000), price: None });
        s.models
            .insert("p2/m".into(), ModelSettings { context_window: Some(1_000_000), price: None });
    })
    .await;
    h.fake(0).push([Reply::context_overflow()]);
    h.fake(2).push([Reply::text("long context")]);
    assert_eq!(h.router.chat(hello(), &ctx()).await.unwrap().provider, "p2");
    let counts: Vec<_> = h.fakes.iter().map(|f| f.request_count()).collect();
    assert_eq!(counts, [1, 0, 1]);
}
