use agentd_llm::config::CacheMode;
use agentd_llm::{ChatRequest, LlmClient, StreamEvent, Usage};
use agentd_test_support::llm::{Protocol, Reply};
use futures::StreamExt;

use crate::{ctx, harness, hello, secs};

fn deterministic() -> ChatRequest {
    ChatRequest { temperature: Some(0.0), ..hello() }
}

#[tokio::test(start_paused = true)]
async fn a_deterministic_request_is_answered_from_the_cache_and_costs_nothing() {
    let h = harness(&[Protocol::Openai], |_, _| {}).await;
    h.fake(0).push([Reply::text("cached answer")]);
    let first = h.router.chat(deterministic(), &ctx()).await.unwrap();
    let second = h.router.chat(deterministic(), &ctx()).await.unwrap();
    assert_eq!(h.fake(0).request_count(), 1);
    assert!(!first.cache_hit);
    assert!(second.cache_hit);
    assert_eq!(second.text, "cached answer");
    assert_eq!(second.usage, Usage::default());
    let records = h.records().await;
    assert_eq!(records.iter().map(|r| r.cache_hit).collect::<Vec<_>>(), [false, true]);
    assert_eq!((records[1].input_tokens, records[1].cost_nano_usd), (0, Some(0)));
    let counters = h.router.status().counters;
    assert_eq!((counters.cache_hits, counters.cache_misses), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_different_request_misses() {
    let h = harness(&[Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::text("one"), Reply::text("two")]);
    h.router.chat(deterministic(), &ctx()).await.unwrap();
    let mut other = deterministic();
    other.max_tokens = Some(10);
    assert_eq!(h.router.chat(other, &ctx()).await.unwrap().text, "two");
    assert_eq!(h.fake(0).request_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn requests_with_a_temperature_are_cached_only_when_the_agent_type_opts_in() {
    let warm = ChatRequest { temperature: Some(0.7), ..hello() };
    let h = harness(&[Protocol::Gemini], |_, _| {}).await;
    h.fake(0).push([Reply::text("a"), Reply::text("b")]);
    h.router.chat(warm.clone(), &ctx()).await.unwrap();
    assert_eq!(h.router.chat(warm.clone(), &ctx()).await.unwrap().text, "b");

    let h = harness(&[Protocol::Gemini], |_, route| route.cache = true).await;
    h.fake(0).push([Reply::text("a")]);
    h.router.chat(warm.clone(), &ctx()).await.unwrap();
    assert!(h.router.chat(warm, &ctx()).await.unwrap().cache_hit);
}

#[tokio::test(start_paused = true)]
async fn the_cache_can_be_turned_off_or_made_write_only() {
    for mode in [CacheMode::Off, CacheMode::WriteOnly] {
        let h = harness(&[Protocol::Openai], |s, _| s.cache.mode = mode).await;
        h.fake(0).push([Reply::text("a"), Reply::text("b")]);
        h.router.chat(deterministic(), &ctx()).await.unwrap();
        assert_eq!(h.router.chat(deterministic(), &ctx()).await.unwrap().text, "b", "{mode:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    let h = harness(&[Protocol::Openai], |s, _| s.cache.ttl_seconds = 60).await;
    h.fake(0).push([Reply::text("old"), Reply::text("new")]);
    h.router.chat(deterministic(), &ctx()).await.unwrap();
    tokio::time::advance(secs(59)).await;
    assert_eq!(h.router.chat(deterministic(), &ctx()).await.unwrap().text, "old");
    tokio::time::advance(secs(1)).await;
    assert_eq!(h.router.chat(deterministic(), &ctx()).await.unwrap().text, "new");
}

#[tokio::test(start_paused = true)]
async fn a_streamed_answer_is_cached_and_replayed_as_a_stream() {
    let h = harness(&[Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::stream_text(&["str", "eam"])]);
    let first: Vec<_> =
        h.router.chat_stream(deterministic(), &ctx()).await.unwrap().collect().await;
    let second: Vec<_> =
        h.router.chat_stream(deterministic(), &ctx()).await.unwrap().collect().await;
    assert_eq!(h.fake(0).request_count(), 1);
    assert_eq!(second[0], Ok(StreamEvent::TextDelta { text: "stream".into() }));
    let (Some(Ok(StreamEvent::Completed(a))), Some(Ok(StreamEvent::Completed(b)))) =
        (first.last(), second.last())
    else {
        panic!("{first:?} {second:?}")
    };
    assert_eq!((a.cache_hit, b.cache_hit), (false, true));
    assert_eq!(a.text, b.text);
}
