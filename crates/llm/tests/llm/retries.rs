use agentd_llm::{LlmClient, LlmError, TimeoutPhase};
use agentd_test_support::llm::{Protocol, Reply, RetryAfter};

use crate::{NOW, ctx, harness, hello, ms, secs};

#[tokio::test(start_paused = true)]
async fn each_transient_status_is_retried_with_exponential_backoff() {
    for (protocol, status) in [
        (Protocol::Openai, 408),
        (Protocol::Openai, 409),
        (Protocol::Openai, 500),
        (Protocol::Anthropic, 502),
        (Protocol::Gemini, 503),
        (Protocol::Openai, 504),
        (Protocol::Anthropic, 529),
    ] {
        let h = harness(&[protocol], |_, _| {}).await;
        h.fake(0).push([Reply::status(status), Reply::status(status), Reply::text("hello")]);
        let answer = h.router.chat(hello(), &ctx()).await.unwrap();
        assert_eq!(answer.text, "hello", "{status}");
        assert_eq!(h.fake(0).gaps(), vec![ms(500), ms(1000)], "{status}: base 0.5 s, doubling");
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_three_attempts_are_made_and_the_last_error_surfaces() {
    let h = harness(&[Protocol::Openai], |s, _| s.breaker.consecutive_failures = 10).await;
    h.fake(0).push([
        Reply::status(502),
        Reply::status(502),
        Reply::status(502),
        Reply::text("never"),
    ]);
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert!(matches!(err, LlmError::Server { status: 502, .. }), "{err:?}");
    assert_eq!(h.fake(0).request_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_in_milliseconds_seconds_http_dates_and_gemini_retry_delays() {
    let cases = [
        (Protocol::Openai, RetryAfter::Millis(1_500), ms(1_500)),
        (Protocol::Anthropic, RetryAfter::Seconds(7), secs(7)),
        (Protocol::Openai, RetryAfter::HttpDate((NOW + secs(12)).into()), secs(12)),
        (Protocol::Gemini, RetryAfter::GeminiDelay("9s".into()), secs(9)),
    ];
    for (protocol, hint, expected) in cases {
        let h = harness(&[protocol], |_, _| {}).await;
        h.fake(0).push([Reply::rate_limited(hint.clone()), Reply::text("hello")]);
        let answer = h.router.chat(hello(), &ctx()).await.unwrap();
        assert_eq!(answer.text, "hello");
        assert_eq!(h.fake(0).gaps(), vec![expected], "{hint:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_cap_moves_to_the_fallback_at_once() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::rate_limited(RetryAfter::Seconds(600))]);
    h.fake(1).push([Reply::text("from the fallback")]);
    let start = tokio::time::Instant::now();
    let answer = h.router.chat(hello(), &ctx()).await.unwrap();
    assert_eq!(answer.provider, "p1");
    assert_eq!(start.elapsed(), ms(0), "no waiting for a 600 s Retry-After");
    assert_eq!(h.fake(0).request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn non_transient_errors_are_neither_retried_nor_failed_over() {
    for (status, kind) in [(400, "bad_request"), (401, "auth_error"), (403, "auth_error")] {
        let h = harness(&[Protocol::Openai, Protocol::Gemini], |_, _| {}).await;
        h.fake(0).push([Reply::status(status)]);
        let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status}");
        assert_eq!((h.fake(0).request_count(), h.fake(1).request_count()), (1, 0), "{status}");
    }
    let h = harness(&[Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::status(404)]);
    assert_eq!(h.router.chat(hello(), &ctx()).await.unwrap_err().kind(), "not_found");
    assert_eq!(h.fake(0).request_count(), 1);
    for protocol in [Protocol::Openai, Protocol::Anthropic, Protocol::Gemini] {
        let h = harness(&[protocol], |_, _| {}).await;
        h.fake(0).push([Reply::context_overflow()]);
        let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
        assert!(matches!(err, LlmError::ContextOverflow { .. }), "{protocol:?}: {err:?}");
        assert_eq!(h.fake(0).request_count(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn slow_headers_time_out_after_the_first_byte_timeout_and_are_retried() {
    let h = harness(&[Protocol::Openai], |_, _| {}).await;
    h.fake(0).push([Reply::text("late").delayed(secs(61)), Reply::text("hello")]);
    let answer = h.router.chat(hello(), &ctx()).await.unwrap();
    assert_eq!(answer.text, "hello");
    assert_eq!(h.fake(0).gaps(), vec![secs(60) + ms(500)]);
    let records = h.records().await;
    assert_eq!(records[0].outcome, "timeout");
}

#[tokio::test(start_paused = true)]
async fn a_dead_endpoint_is_retried_as_a_connect_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let h = harness(&[Protocol::Openai], |s, _| {
        s.providers.get_mut("p0").unwrap().base_url = Some(format!("http://{addr}/v1"));
        s.breaker.consecutive_failures = 10;
    })
    .await;
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
    let outcomes: Vec<_> = h.records().await.into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["connect_error"; 3]);
}

#[tokio::test(start_paused = true)]
async fn malformed_and_oversized_answers_are_protocol_errors_that_fail_over_without_retry() {
    let h =
        harness(&[Protocol::Openai, Protocol::Anthropic], |s, _| s.max_response_bytes = 4096).await;
    h.fake(0).push([Reply::malformed_json()]);
    h.fake(1).push([Reply::oversized(10_000)]);
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert!(matches!(err, LlmError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("larger than 4096"), "{err}");
    assert_eq!((h.fake(0).request_count(), h.fake(1).request_count()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_overall_deadline_bounds_every_retry() {
    let h = harness(&[Protocol::Openai], |s, _| {
        s.deadline_seconds = 90;
        s.breaker.consecutive_failures = 10;
    })
    .await;
    h.fake(0).push([Reply::text("late").delayed(secs(61)), Reply::text("late").delayed(secs(61))]);
    let start = tokio::time::Instant::now();
    let err = h.router.chat(hello(), &ctx()).await.unwrap_err();
    assert_eq!(err, LlmError::Timeout { phase: TimeoutPhase::Deadline });
    assert_eq!(start.elapsed(), secs(90));
}
