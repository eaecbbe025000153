//! The LLM layer's own overhead per call, against a zero-latency fake on loopback.
//!
//! Open loop at 500 calls/s: every 2 ms one call goes through `LlmRouter::chat` (policy, adapter,
//! breaker bookkeeping, usage ledger into SQLite) and one identical bare reqwest POST goes to the
//! same fake. Overhead is the routed percentile minus the bare percentile. Run with
//! `cargo bench -p agentd-llm --bench overhead` (a release build); it prints the figures.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark prints its figures"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_core::{UsageStore, UserId};
use agentd_llm::config::{CacheMode, ProviderSettings};
use agentd_llm::provider::Wire;
use agentd_llm::{
    ChatRequest, LlmClient, LlmRouter, LlmSettings, Message, ProviderKind, RequestContext,
    UsageLedger,
};
use agentd_test_support::TestDatabase;
use agentd_test_support::llm::{FakeLlm, Protocol, Reply};
use secrecy::SecretString;

const RATE_PER_SECOND: u64 = 500;
const SECONDS: u64 = 10;
const WARMUP: u64 = 500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let fake = FakeLlm::start(Protocol::Openai).await;
    fake.always(Reply::text("ok"));
    let database = TestDatabase::sqlite();
    let db = database.open().await;
    let store: Arc<dyn UsageStore> = db.store();
    let ledger = UsageLedger::spawn(store);

    let mut settings = LlmSettings::default();
    let mut provider = ProviderSettings::new(ProviderKind::Openai);
    provider.base_url = Some(fake.base_url());
    provider.api_key = Some(SecretString::from("bench-key"));
    settings.providers.insert("fake".into(), provider);
    settings.default_model = Some("fake/bench-model".into());
    settings.cache.mode = CacheMode::Off;
    let router = LlmRouter::builder(settings).ledger(ledger.clone()).build().unwrap();

    let request = ChatRequest {
        messages: vec![Message::system("Be brief."), Message::user("Say ok.")],
        ..ChatRequest::default()
    };
    let url = format!("{}/chat/completions", fake.base_url());
    let body = serde_json::to_vec(&Wire(ProviderKind::Openai).request_body(
        "bench-model",
        &request,
        false,
    ))
    .unwrap();
    let bare = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build().unwrap();
    let ctx = RequestContext::new(UserId::new(), "bench");

    let total = RATE_PER_SECOND * SECONDS + WARMUP;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticker.tick().await;
        let (router, request, ctx) = (router.clone(), request.clone(), ctx.clone());
        let routed = tokio::spawn(async move {
            let start = Instant::now();
            router.chat(request, &ctx).await.unwrap();
            start.elapsed()
        });
        let (bare, url, body) = (bare.clone(), url.clone(), body.clone());
        let direct = tokio::spawn(async move {
            let start = Instant::now();
            let response = bare
                .post(url)
                .header("content-type", "application/json")
                .header("authorization", "Bearer bench-key")
                .body(body)
                .send()
                .await
                .unwrap();
            response.bytes().await.unwrap();
            start.elapsed()
        });
        handles.push((routed, direct));
    }
    let mut routed = Vec::new();
    let mut direct = Vec::new();
    for (i, (r, d)) in handles.into_iter().enumerate() {
        let (r, d) = (r.await.unwrap(), d.await.unwrap());
        if i as u64 >= WARMUP {
            routed.push(r);
            direct.push(d);
        }
    }
    ledger.flush().await;
    routed.sort();
    direct.sort();
    let (r50, r99) = (percentile(&routed, 0.50), percentile(&routed, 0.99));
    let (d50, d99) = (percentile(&direct, 0.50), percentile(&direct, 0.99));
    println!(
        "LLM layer overhead: {} routed and {} bare calls at {RATE_PER_SECOND} calls/s each",
        routed.len(),
        direct.len()
    );
    println!("routed end to end: p50 {:.3} ms, p99 {:.3} ms", ms(r50), ms(r99));
    println!("bare reqwest:      p50 {:.3} ms, p99 {:.3} ms", ms(d50), ms(d99));
    println!(
        "overhead:          p50 {:.3} ms, p99 {:.3} ms",
        ms(r50.saturating_sub(d50)),
        ms(r99.saturating_sub(d99))
    );
    println!("requests served by the fake: {}", fake.request_count());
}
