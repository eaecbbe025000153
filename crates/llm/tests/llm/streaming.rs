use agentd_llm::{ChatStream, LlmClient, LlmError, StopReason, StreamEvent, TimeoutPhase};
use agentd_test_support::llm::{Protocol, Reply, StreamFault};
use futures::StreamExt;
use serde_json::json;

use crate::{ctx, harness, hello, secs};

const ALL: [Protocol; 3] = [Protocol::Openai, Protocol::Anthropic, Protocol::Gemini];

async fn collect(mut stream: ChatStream) -> Vec<Result<StreamEvent, LlmError>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

fn text_of(items: &[Result<StreamEvent, LlmError>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::TextDelta { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_protocol_streams_text_deltas_then_the_completed_answer() {
    for protocol in ALL {
        let h = harness(&[protocol], |_, _| {}).await;
        h.fake(0).push([Reply::stream_text(&["Hel", "lo", "!"])]);
        let items = collect(h.router.chat_stream(hello(), &ctx()).await.unwrap()).await;
        assert_eq!(text_of(&items), "Hello!", "{protocol:?}");
        assert_eq!(
            items.iter().filter(|i| matches!(i, Ok(StreamEvent::TextDelta { .. }))).count(),
            3
        );
        let Some(Ok(StreamEvent::Completed(answer))) = items.last() else { panic!("{items:?}") };
        assert_eq!((answer.text.as_str(), answer.stop_reason), ("Hello!", StopReason::EndTurn));
        assert_eq!(h.fake(0).requests()[0].headers.get("accept").unwrap(), "text/event-stream");
    }
}

#[tokio::test(start_paused = true)]
async fn each_protocol_streams_tool_calls() {
    for protocol in ALL {
        let h = harness(&[protocol], |_, _| {}).await;
        let args = json!({"path": "src/main.rs", "limit": 20});
        h.fake(0).push([Reply::tool_call("read_file", args.clone()).streamed()]);
        let items = collect(h.router.chat_stream(hello(), &ctx()).await.unwrap()).await;
        assert!(
            matches!(&items[0], Ok(StreamEvent::ToolCallStart { index: 0, name, .. }) if name == "read_file"),
            "{protocol:?}: {items:?}"
        );
        let Some(Ok(StreamEvent::Completed(answer))) = items.last() else { panic!("{items:?}") };
        assert_eq!(answer.stop_reason, StopReason::ToolUse, "{protocol:?}");
        assert_eq!(answer.tool_calls[0].arguments, args, "{protocol:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn failures_before_the_first_delta_are_retried() {
    // The fake hangs up 10 ms into the stream; the overload events come at once.
    for (protocol, fault, gap) in [
        (Protocol::Openai, StreamFault::Disconnect, crate::ms(510)),
        (Protocol::Anthropic, StreamFault::Overloaded, crate::ms(500)),
        (Protocol::Gemini, StreamFault::Overloaded, crate::ms(500)),
    ] {
        let h = harness(&[protocol], |_, _| {}).await;
        h.fake(0).push([
            Reply::stream_text(&["never"]).fault_after(0, fault),
            Reply::stream_text(&["ok"]),
        ]);
        let items = collect(h.router.chat_stream(hello(), &ctx()).await.unwrap()).await;
        assert_eq!(text_of(&items), "ok", "{protocol:?} {fault:?}");
        assert_eq!(h.fake(0).request_count(), 2);
        assert_eq!(h.fake(0).gaps(), vec![gap]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_silent_before_its_first_delta_times_out_and_fails_over() {
    let h =
        harness(&[Protocol::Anthropic, Protocol::Openai], |s, _| s.retry.max_attempts = 1).await;
    h.fake(0).push([Reply::stream_text(&["never"]).fault_after(0, StreamFault::Stall)]);
    h.fake(1).push([Reply::stream_text(&["fallback"])]);
    let start = tokio::time::Instant::now();
    let items = collect(h.router.chat_stream(hello(), &ctx()).await.unwrap()).await;
    assert_eq!(text_of(&items), "fallback");
    assert_eq!(start.elapsed(), secs(60), "the first-byte timeout");
    assert_eq!(h.records().await[0].outcome, "timeout");
}

#[tokio::test(start_paused = true)]
async fn after_the_first_delta_a_failure_ends_the_stream_without_retry_or_failover() {
    let h = harness(&[Protocol::Openai, Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([
        Reply::stream_text(&["partial ", "answer"]).fault_after(1, StreamFault::Disconnect)
    ]);
    h.fake(1).push([Reply::stream_text(&["must not be used"])]);
    let items = collect(h.router.chat_stream(hello(), &ctx()).await.unwrap()).await;
    assert_eq!(text_of(&items), "partial ");
    assert!(matches!(items.last(), Some(Err(LlmError::Connect { .. }))), "{items:?}");
    assert_eq!((h.fake(0).request_count(), h.fake(1).request_count()), (1, 0));
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].outcome, "connect_error");
    assert!(records[0].ttft_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_stall_after_the_first_delta_ends_with_an_idle_timeout() {
    let h = harness(&[Protocol::Gemini], |_, _| {}).await;
    h.fake(0).push([Reply::stream_text(&["a", "b"]).fault_after(1, StreamFault::Stall)]);
    let mut stream = h.router.chat_stream(hello(), &ctx()).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(StreamEvent::TextDelta { .. }))));
    let start = tokio::time::Instant::now();
    let end = stream.next().await;
    assert_eq!(end, Some(Err(LlmError::Timeout { phase: TimeoutPhase::Idle })));
    assert_eq!(start.elapsed(), secs(60));
    assert!(stream.next().await.is_none());
    assert_eq!(h.fake(0).request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn malformed_sse_is_a_protocol_error() {
    let h = harness(&[Protocol::Openai], |_, _| {}).await;
    h.fake(0).push([Reply::malformed_sse()]);
    let err = h.router.chat_stream(hello(), &ctx()).await.err().unwrap();
    assert!(matches!(err, LlmError::Protocol { .. }), "{err:?}");
    assert_eq!(h.fake(0).request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelling_ends_an_open_stream() {
    let h = harness(&[Protocol::Anthropic], |_, _| {}).await;
    h.fake(0).push([Reply::stream_text(&["a", "b"]).fault_after(1, StreamFault::Stall)]);
    let context = ctx();
    let mut stream = h.router.chat_stream(hello(), &context).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(StreamEvent::TextDelta { .. }))));
    context.cancel.cancel();
    assert_eq!(stream.next().await, Some(Err(LlmError::Cancelled)));
    assert_eq!(h.records().await[0].outcome, "cancelled");
}
