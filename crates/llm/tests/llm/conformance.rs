//! Each adapter against recorded fixtures of its protocol (`tests/fixtures/<protocol>/*.json`):
//! the request we must send, the response or stream the server returns, and the normalised
//! result. Successful exchanges go over HTTP through the router to a fake that replays the
//! recorded bytes; error bodies are classified directly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use agentd_llm::config::CacheMode;
use agentd_llm::provider::Wire;
use agentd_llm::{
    ChatRequest, ChatResponse, LlmClient, LlmRouter, LlmSettings, ProviderSettings, StreamEvent,
};
use agentd_test_support::llm::{FakeLlm, Protocol, Reply};
use futures::StreamExt;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::{NOW, ctx, kind_of};

#[derive(Debug, Deserialize)]
struct Fixture {
    #[allow(dead_code)]
    description: String,
    model: String,
    stream: bool,
    request: ChatRequest,
    wire_request: WireRequest,
    wire_response: WireResponse,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
struct WireRequest {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    status: u16,
    content_type: String,
    body: String,
}

#[derive(Debug, Deserialize)]
struct Expected {
    response: Option<ChatResponse>,
    events: Option<Vec<StreamEvent>>,
    error: Option<String>,
    retry_after_ms: Option<u64>,
}

fn fixtures(protocol: &str) -> Vec<(String, Fixture)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(protocol);
    let mut out: Vec<(String, Fixture)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let fixture =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, fixture)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 5, "fixtures missing in {}", dir.display());
    out
}

async fn conform(protocol: Protocol, dir: &str) {
    let wire = Wire(kind_of(protocol));
    for (name, fx) in fixtures(dir) {
        let name = format!("{dir}/{name}");
        assert_eq!(
            wire.request_body(&fx.model, &fx.request, fx.stream),
            fx.wire_request.body,
            "{name}: request body"
        );
        let response = &fx.wire_response;
        if let Some(kind) = &fx.expected.error {
            let headers = http::HeaderMap::new();
            let (err, _) =
                wire.classify_error(response.status, &headers, response.body.as_bytes(), NOW);
            assert_eq!(err.kind(), kind, "{name}: {err:?}");
            let expected_delay = fx.expected.retry_after_ms.map(std::time::Duration::from_millis);
            assert_eq!(err.retry_after(), expected_delay, "{name}");
            continue;
        }
        let fake = FakeLlm::start(protocol).await;
        fake.push([Reply::raw(response.status, &response.content_type, &response.body)]);
        let mut settings = LlmSettings::default();
        let mut provider = ProviderSettings::new(kind_of(protocol));
        provider.base_url = Some(fake.base_url());
        provider.api_key = Some(SecretString::from("test-key"));
        settings.providers.insert("fixture".into(), provider);
        settings.default_model = Some(format!("fixture/{}", fx.model));
        settings.cache.mode = CacheMode::Off;
        let router = LlmRouter::builder(settings).build().unwrap();
        if fx.stream {
            let events: Vec<StreamEvent> = router
                .chat_stream(fx.request.clone(), &ctx())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                .map(|item| item.unwrap_or_else(|e| panic!("{name}: {e:?}")))
                .collect()
                .await;
            assert_eq!(Some(events), fx.expected.events, "{name}: events");
        } else {
            let answer = router
                .chat(fx.request.clone(), &ctx())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(Some(answer), fx.expected.response, "{name}: response");
        }
        let sent = &fake.requests()[0];
        assert_eq!(sent.path, fx.wire_request.path, "{name}: path");
        assert_eq!(sent.body, fx.wire_request.body, "{name}: body on the wire");
        for (header, value) in &fx.wire_request.headers {
            assert_eq!(
                sent.headers.get(header).map(|v| v.to_str().unwrap()),
                Some(value.as_str()),
                "{name}: {header}"
            );
        }
    }
}

#[tokio::test]
async fn the_openai_adapter_conforms_to_its_fixtures() {
    conform(Protocol::Openai, "openai").await;
}

#[tokio::test]
async fn the_anthropic_adapter_conforms_to_its_fixtures() {
    conform(Protocol::Anthropic, "anthropic").await;
}

#[tokio::test]
async fn the_gemini_adapter_conforms_to_its_fixtures() {
    conform(Protocol::Gemini, "gemini").await;
}
