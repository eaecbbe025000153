//! The LLM layer against scripted fake servers on loopback, under tokio's paused clock: attempts
//! and delays per fault, Retry-After forms, breakers, fallbacks, streams, the cache, usage and
//! cost; and the conformance fixtures of each wire protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod breaker;
mod cache;
mod conformance;
mod fallback;
mod retries;
mod streaming;
mod usage;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_core::{Clock, NewUsage, StoreResult, UsageBucket, UsageQuery, UsageStore, UserId};
use agentd_llm::config::ProviderSettings;
use agentd_llm::retry::Jitter;
use agentd_llm::{
    AgentRoute, ChatRequest, LlmRouter, LlmSettings, Message, ProviderKind, RequestContext,
    UsageLedger,
};
use agentd_test_support::llm::{FakeLlm, Protocol};
use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;
use time::macros::datetime;

/// The wall clock the tests pretend it is.
pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

/// A wall clock that follows tokio's (paused) clock from [`NOW`].
#[derive(Debug)]
pub(crate) struct TestClock {
    start: tokio::time::Instant,
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        NOW + self.start.elapsed()
    }
}

/// Usage records kept in memory, to assert on what the ledger wrote.
#[derive(Debug, Default)]
pub(crate) struct RecordedUsage(Mutex<Vec<NewUsage>>);

impl RecordedUsage {
    pub(crate) fn all(&self) -> Vec<NewUsage> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl UsageStore for RecordedUsage {
    async fn record_usage(&self, usage: NewUsage) -> StoreResult<()> {
        self.0.lock().unwrap().push(usage);
        Ok(())
    }

    async fn usage_summary(&self, _query: &UsageQuery) -> StoreResult<Vec<UsageBucket>> {
        panic!("these tests read the records themselves")
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) const fn kind_of(protocol: Protocol) -> ProviderKind {
    match protocol {
        Protocol::Openai => ProviderKind::Openai,
        Protocol::Anthropic => ProviderKind::Anthropic,
        Protocol::Gemini => ProviderKind::Gemini,
    }
}

/// Fakes, a router over them and the usage it records.
pub(crate) struct Harness {
    pub(crate) router: LlmRouter,
    pub(crate) fakes: Vec<FakeLlm>,
    pub(crate) usage: Arc<RecordedUsage>,
    pub(crate) ledger: UsageLedger,
}

impl Harness {
    pub(crate) fn fake(&self, i: usize) -> &FakeLlm {
        &self.fakes[i]
    }

    pub(crate) async fn records(&self) -> Vec<NewUsage> {
        self.ledger.flush().await;
        self.usage.all()
    }
}

/// Providers `p0`, `p1`, ... (one fake each, model `m`), agent type `code` routed to `p0/m` with
/// the others as fallbacks in order; backoff without jitter (each delay is its ceiling).
pub(crate) async fn harness(
    protocols: &[Protocol],
    tweak: impl FnOnce(&mut LlmSettings, &mut AgentRoute),
) -> Harness {
    let mut settings = LlmSettings::default();
    let mut fakes = Vec::new();
    for (i, protocol) in protocols.iter().enumerate() {
        let fake = FakeLlm::start(*protocol).await;
        let mut p = ProviderSettings::new(kind_of(*protocol));
        p.base_url = Some(fake.base_url());
        p.api_key = Some(SecretString::from(format!("key-{i}")));
        settings.providers.insert(format!("p{i}"), p);
        fakes.push(fake);
    }
    let mut route = AgentRoute {
        model: "p0/m".into(),
        fallbacks: (1..protocols.len()).map(|i| format!("p{i}/m")).collect(),
        cache: false,
    };
    tweak(&mut settings, &mut route);
    let usage = Arc::new(RecordedUsage::default());
    let ledger = UsageLedger::spawn(usage.clone());
    let router = LlmRouter::builder(settings)
        .route("code", route)
        .ledger(ledger.clone())
        .clock(Arc::new(TestClock { start: tokio::time::Instant::now() }))
        .jitter(Jitter::Fixed(1.0))
        .build()
        .unwrap();
    Harness { router, fakes, usage, ledger }
}

pub(crate) fn ctx() -> RequestContext {
    RequestContext::new(UserId::new(), "code")
}

pub(crate) fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system("Be brief."), Message::user("Say hello.")],
        ..ChatRequest::default()
    }
}
