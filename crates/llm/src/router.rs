//! The policy engine: routes, retries, breakers, fallbacks, cache, ledger.
//!
//! A call resolves its agent type's route to candidates (`provider/model`, primary first), drops
//! candidates whose provider is disabled (`no_llm_configured` when none is left) or whose context
//! window cannot hold the request (`context_overflow` when none is left, before any provider is
//! called), then tries them in order. Each candidate gets up to `max_attempts` attempts; only
//! retryable failures are retried, after `Retry-After` when the upstream sent one (a longer wait
//! than allowed moves on at once) or an exponential backoff with full jitter. A candidate whose
//! breaker is open or cooling down is skipped. When every candidate is unavailable the call fails
//! with `llm_unavailable` and the soonest time one admits calls again. A stream is retried and
//! failed over only until its first delta reaches the caller; after that a failure ends the
//! stream. Every attempt, cache hits included, is recorded in the usage ledger.
//!
//! All waiting uses `tokio::time`, so tests run the whole policy under a paused clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agentd_core::{Clock, NewUsage, SystemClock};
use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::breaker::{Admission, Breaker, BreakerState, Outcome};
use crate::budget::check_fits;
use crate::cache::{ResponseCache, cache_key};
use crate::client::LlmClient;
use crate::config::{
    AgentRoute, BreakerSettings, LlmConfigError, LlmSettings, ModelSettings, ProviderKind,
    split_model,
};
use crate::context::RequestContext;
use crate::error::{LlmError, LlmResult, TimeoutPhase};
use crate::ledger::UsageLedger;
use crate::message::{ChatRequest, ChatResponse, ChatStream, StreamEvent};
use crate::provider::transport::{AttemptError, Endpoint, Upstream};
use crate::retry::{Backoff, Jitter};
use crate::status::{Counters, LlmStatus, ModelStatus, ProviderStatus};
use crate::usage::{Usage, to_nano_usd};

/// The most fallbacks a route may have (LiteLLM's `ROUTER_MAX_FALLBACKS`).
pub const MAX_FALLBACKS: usize = 5;

type ModelKey = (String, String);

#[derive(Debug)]
struct ProviderEntry {
    kind: ProviderKind,
    base_url: String,
    endpoint: Option<Endpoint>,
    health: Mutex<ProviderHealth>,
}

#[derive(Debug, Default)]
struct ProviderHealth {
    misconfigured: bool,
    last_error: Option<(&'static str, OffsetDateTime)>,
}

#[derive(Debug)]
struct ModelRuntime {
    breaker: Breaker,
    last_error: Option<&'static str>,
}

#[derive(Debug, Default)]
struct AtomicCounters {
    calls: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    fallbacks: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct Inner {
    providers: BTreeMap<String, ProviderEntry>,
    models: BTreeMap<String, ModelSettings>,
    routes: BTreeMap<String, AgentRoute>,
    default_model: Option<String>,
    runtime: Mutex<HashMap<ModelKey, ModelRuntime>>,
    breaker_settings: BreakerSettings,
    backoff: Backoff,
    max_attempts: u32,
    max_retry_after: Duration,
    deadline: Duration,
    cache: Option<ResponseCache>,
    ledger: Option<UsageLedger>,
    clock: Arc<dyn Clock>,
    counters: AtomicCounters,
}

/// The policy engine; cheap to clone.
#[derive(Debug, Clone)]
pub struct LlmRouter {
    inner: Arc<Inner>,
}

/// Builds an [`LlmRouter`].
#[derive(Debug)]
pub struct LlmRouterBuilder {
    settings: LlmSettings,
    routes: BTreeMap<String, AgentRoute>,
    ledger: Option<UsageLedger>,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
}

impl LlmRouterBuilder {
    /// Adds the route of `agent_type`.
    #[must_use]
    pub fn route(mut self, agent_type: impl Into<String>, route: AgentRoute) -> Self {
        self.routes.insert(agent_type.into(), route);
        self
    }

    /// Records every attempt through `ledger`.
    #[must_use]
    pub fn ledger(mut self, ledger: UsageLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The wall clock for ledger times, HTTP-date `Retry-After` values and the status view.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How backoff delays are drawn (tests fix them).
    #[must_use]
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Validates the settings and routes and builds the router.
    ///
    /// # Errors
    /// The first configuration problem, naming its key.
    pub fn build(self) -> Result<LlmRouter, LlmConfigError> {
        let s = self.settings;
        s.validate(self.routes.iter().map(|(k, v)| (k.as_str(), v)))?;
        let mut providers = BTreeMap::new();
        for (name, p) in &s.providers {
            let endpoint = if p.is_enabled() {
                Some(Endpoint::new(name, p, s.max_response_bytes, self.clock.clone())?)
            } else {
                None
            };
            providers.insert(
                name.clone(),
                ProviderEntry {
                    kind: p.kind,
                    base_url: p.effective_base_url(),
                    endpoint,
                    health: Mutex::new(ProviderHealth::default()),
                },
            );
        }
        Ok(LlmRouter {
            inner: Arc::new(Inner {
                providers,
                models: s.models.clone(),
                routes: self.routes,
                default_model: s.default_model.clone(),
                runtime: Mutex::new(HashMap::new()),
                breaker_settings: s.breaker.clone(),
                backoff: Backoff {
                    base: Duration::from_millis(s.retry.base_delay_ms),
                    max: Duration::from_millis(s.retry.max_delay_ms),
                    jitter: self.jitter,
                },
                max_attempts: s.retry.max_attempts,
                max_retry_after: Duration::from_secs(s.retry.max_retry_after_seconds),
                deadline: Duration::from_secs(s.deadline_seconds),
                cache: ResponseCache::new(&s.cache),
                ledger: self.ledger,
                clock: self.clock,
                counters: AtomicCounters::default(),
            }),
        })
    }
}

/// One model the call may use.
#[derive(Debug, Clone)]
struct Candidate {
    provider: String,
    model: String,
    window: Option<u64>,
}

#[derive(Debug)]
struct Plan {
    candidates: Vec<Candidate>,
    cache_opt_in: bool,
}

/// How trying one candidate ended.
enum Tried<T> {
    /// It answered.
    Done(T),
    /// Not attempted: its breaker refuses calls until then.
    Skipped,
    Failed(LlmError),
}

/// An admitted call; settles the breaker when dropped unsettled (the caller went away).
#[derive(Debug)]
struct Permit {
    inner: Arc<Inner>,
    key: ModelKey,
    probe: bool,
    settled: bool,
}

impl Permit {
    fn settle(mut self, result: Result<(), &LlmError>) {
        self.settled = true;
        self.inner.settle(&self.key, self.probe, result);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.inner.settle(&self.key, self.probe, Err(&LlmError::Cancelled));
        }
    }
}

/// What the ledger needs to know about one attempt.
struct Attempt<'a> {
    ctx: &'a RequestContext,
    candidate: &'a Candidate,
    at: OffsetDateTime,
    started: Instant,
    ttft: Option<Duration>,
    streamed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Inner {
    fn runtime_entry<'a>(
        &self,
        map: &'a mut HashMap<ModelKey, ModelRuntime>,
        key: &ModelKey,
    ) -> &'a mut ModelRuntime {
        map.entry(key.clone()).or_insert_with(|| ModelRuntime {
            breaker: Breaker::new(self.breaker_settings.clone()),
            last_error: None,
        })
    }

    fn admit(self: &Arc<Self>, c: &Candidate) -> Result<Permit, Instant> {
        let key = (c.provider.clone(), c.model.clone());
        let mut map = lock(&self.runtime);
        match self.runtime_entry(&mut map, &key).breaker.admit(Instant::now()) {
            Admission::Allowed { probe } => {
                Ok(Permit { inner: self.clone(), key, probe, settled: false })
            }
            Admission::Refused { until } => Err(until),
        }
    }

    fn settle(&self, key: &ModelKey, probe: bool, result: Result<(), &LlmError>) {
        let outcome = match result {
            Ok(()) => Outcome::Answered,
            Err(LlmError::RateLimited { retry_after, .. }) => Outcome::RateLimited(*retry_after),
            Err(LlmError::Cancelled | LlmError::Timeout { phase: TimeoutPhase::Deadline }) => {
                Outcome::Abandoned
            }
            Err(e) if e.is_transient() => Outcome::Failed,
            Err(_) => Outcome::Answered,
        };
        let now = Instant::now();
        {
            let mut map = lock(&self.runtime);
            let rt = self.runtime_entry(&mut map, key);
            rt.breaker.record(now, probe, outcome);
            if let Err(e) = result
                && !matches!(e, LlmError::Cancelled)
            {
                rt.last_error = Some(e.kind());
            }
        }
        if let (Err(e), Some(p)) = (result, self.providers.get(&key.0))
            && !matches!(e, LlmError::Cancelled)
        {
            let mut health = lock(&p.health);
            health.last_error = Some((e.kind(), self.clock.now()));
            if matches!(e, LlmError::Auth { .. }) {
                health.misconfigured = true;
                tracing::error!(provider = %key.0, "the provider refused our credentials");
            }
        }
    }

    /// When `c` admits calls again, if it refuses them now.
    fn refused_until(&self, c: &Candidate, now: Instant) -> Option<Instant> {
        let map = lock(&self.runtime);
        let rt = map.get(&(c.provider.clone(), c.model.clone()))?;
        let open = match rt.breaker.state(now) {
            BreakerState::Open => rt.breaker.half_open_at(),
            BreakerState::Closed | BreakerState::HalfOpen => None,
        };
        match (open, rt.breaker.cooldown_until(now)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `c`'s breaker is open (a 429 cooldown alone does not count: its wait is honoured).
    fn is_open(&self, c: &Candidate) -> bool {
        let map = lock(&self.runtime);
        map.get(&(c.provider.clone(), c.model.clone()))
            .is_some_and(|rt| rt.breaker.state(Instant::now()) == BreakerState::Open)
    }

    fn endpoint(&self, c: &Candidate) -> Option<&Endpoint> {
        self.providers.get(&c.provider)?.endpoint.as_ref()
    }

    fn record(&self, a: &Attempt<'_>, usage: Usage, outcome: &str, cache_hit: bool) {
        let Some(ledger) = &self.ledger else { return };
        let cost = if cache_hit {
            Some(0)
        } else {
            self.models
                .get(&format!("{}/{}", a.candidate.provider, a.candidate.model))
                .and_then(|m| m.price.as_ref())
                .and_then(|p| to_nano_usd(p.cost(&usage)))
        };
        ledger.record(NewUsage {
            at: a.at,
            run_id: a.ctx.run_id,
            conversation_id: a.ctx.conversation_id,
            principal: a.ctx.principal,
            agent_type: a.ctx.agent_type.clone(),
            project_id: a.ctx.project_id,
            provider: a.candidate.provider.clone(),
            model: a.candidate.model.clone(),
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            cost_nano_usd: cost,
            latency_ms: millis(a.started.elapsed()),
            ttft_ms: a.ttft.map(millis),
            outcome: outcome.to_owned(),
            cache_hit,
            streamed: a.streamed,
        });
    }

    fn plan(&self, req: &ChatRequest, ctx: &RequestContext) -> LlmResult<Plan> {
        let not_configured = || LlmError::NotConfigured { agent_type: ctx.agent_type.clone() };
        let (models, cache_opt_in) =
            match self.routes.get(&ctx.agent_type).filter(|r| !r.model.is_empty()) {
                Some(r) => (
                    std::iter::once(&r.model).chain(&r.fallbacks).cloned().collect::<Vec<_>>(),
                    r.cache,
                ),
                None => (vec![self.default_model.clone().ok_or_else(not_configured)?], false),
            };
        let mut seen = BTreeSet::new();
        let enabled: Vec<Candidate> = models
            .into_iter()
            .filter(|m| seen.insert(m.clone()))
            .take(1 + MAX_FALLBACKS)
            .filter_map(|m| {
                let (provider, model) = split_model(&m)?;
                self.providers.get(provider)?.endpoint.as_ref()?;
                Some(Candidate {
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                    window: self.models.get(&m).and_then(|s| s.context_window),
                })
            })
            .collect();
        if enabled.is_empty() {
            return Err(not_configured());
        }
        let mut overflow = None;
        let candidates: Vec<Candidate> = enabled
            .into_iter()
            .filter(|c| match check_fits(req, c.window) {
                Ok(_) => true,
                Err(e) => {
                    overflow.get_or_insert(e);
                    false
                }
            })
            .collect();
        match (candidates.is_empty(), overflow) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(not_configured()),
            (false, _) => Ok(Plan { candidates, cache_opt_in }),
        }
    }

    /// The error after every candidate was tried or skipped.
    fn exhausted(&self, candidates: &[Candidate], last: Option<LlmError>) -> LlmError {
        let now = Instant::now();
        let refusing: Option<Vec<Instant>> =
            candidates.iter().map(|c| self.refused_until(c, now)).collect();
        if let Some(soonest) = refusing.and_then(|times| times.into_iter().min()) {
            return LlmError::Unavailable { retry_after: soonest.saturating_duration_since(now) };
        }
        last.unwrap_or(LlmError::Unavailable { retry_after: Duration::from_secs(1) })
    }

    /// One call: the candidates in order, each with retries.
    async fn call(
        self: &Arc<Self>,
        req: &ChatRequest,
        ctx: &RequestContext,
        stream: bool,
    ) -> LlmResult<Answer> {
        bump(&self.counters.calls);
        let deadline = Instant::now() + self.deadline;
        let plan = self.plan(req, ctx)?;
        let cacheable = self.cache.is_some() && (req.temperature == Some(0.0) || plan.cache_opt_in);
        let mut last = None;
        // After a provider-reported overflow, only candidates with a larger known window remain.
        let mut needs_window_above: Option<u64> = None;
        for (i, c) in plan.candidates.iter().enumerate() {
            if let Some(min) = needs_window_above
                && c.window.is_none_or(|w| w <= min)
            {
                continue;
            }
            if i > 0 {
                bump(&self.counters.fallbacks);
                tracing::info!(provider = %c.provider, model = %c.model, "falling back");
            }
            let key = cacheable.then(|| cache_key(&c.provider, &c.model, req));
            if let Some(key) = &key
                && let Some(hit) = self.cached(key, c, ctx, stream).await
            {
                return Ok(if stream {
                    Answer::Stream(replay(hit))
                } else {
                    Answer::Complete(hit)
                });
            }
            match self.try_candidate(c, req, ctx, deadline, stream, key.clone()).await {
                Tried::Done(answer) => {
                    if let Answer::Complete(response) = &answer {
                        self.store(key, response).await;
                    }
                    return Ok(answer);
                }
                Tried::Skipped => {}
                Tried::Failed(e) => {
                    if !e.allows_fallback() {
                        return Err(e);
                    }
                    if matches!(e, LlmError::ContextOverflow { .. }) {
                        match c.window {
                            Some(w) => {
                                needs_window_above =
                                    Some(needs_window_above.map_or(w, |m| m.max(w)))
                            }
                            None => return Err(e),
                        }
                    }
                    last = Some(e);
                }
            }
        }
        if let Some(e @ LlmError::ContextOverflow { .. }) = last {
            return Err(e);
        }
        Err(self.exhausted(&plan.candidates, last))
    }

    /// Tries one candidate with retries.
    async fn try_candidate(
        self: &Arc<Self>,
        c: &Candidate,
        req: &ChatRequest,
        ctx: &RequestContext,
        deadline: Instant,
        stream: bool,
        key: Option<String>,
    ) -> Tried<Answer> {
        let Some(endpoint) = self.endpoint(c) else {
            return Tried::Failed(LlmError::NotConfigured { agent_type: ctx.agent_type.clone() });
        };
        let mut last = None;
        for attempt in 0..self.max_attempts {
            if ctx.cancel.is_cancelled() {
                return Tried::Failed(LlmError::Cancelled);
            }
            if Instant::now() >= deadline {
                return Tried::Failed(LlmError::Timeout { phase: TimeoutPhase::Deadline });
            }
            let permit = match self.admit(c) {
                Ok(permit) => permit,
                Err(_until) => {
                    return match last {
                        Some(e) => Tried::Failed(e),
                        None => Tried::Skipped,
                    };
                }
            };
            bump(&self.counters.attempts);
            if attempt > 0 {
                bump(&self.counters.retries);
            }
            let result = if stream {
                self.attempt_stream(endpoint, c, req, ctx, deadline, permit, key.clone())
                    .await
                    .map(Answer::Stream)
            } else {
                self.attempt_complete(endpoint, c, req, ctx, deadline, permit)
                    .await
                    .map(Answer::Complete)
            };
            let failure = match result {
                Ok(done) => return Tried::Done(done),
                Err(failure) => failure,
            };
            tracing::debug!(provider = %c.provider, model = %c.model, attempt, error = failure.error.kind(), "LLM attempt failed");
            if !failure.retryable {
                return Tried::Failed(failure.error);
            }
            let hint = failure.error.retry_after();
            last = Some(failure.error);
            // The last attempt, or one that opened the breaker: move on at once.
            if attempt + 1 >= self.max_attempts || self.is_open(c) {
                break;
            }
            let delay = match hint {
                Some(d) if d > self.max_retry_after => break,
                Some(d) => d,
                None => self.backoff.delay(attempt),
            };
            if Instant::now() + delay >= deadline {
                break;
            }
            tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Tried::Failed(LlmError::Cancelled),
                () = tokio::time::sleep(delay) => {}
            }
        }
        Tried::Failed(last.unwrap_or(LlmError::Timeout { phase: TimeoutPhase::Deadline }))
    }

    async fn attempt_complete(
        &self,
        endpoint: &Endpoint,
        c: &Candidate,
        req: &ChatRequest,
        ctx: &RequestContext,
        deadline: Instant,
        permit: Permit,
    ) -> Result<ChatResponse, AttemptError> {
        let a = Attempt {
            ctx,
            candidate: c,
            at: self.clock.now(),
            started: Instant::now(),
            ttft: None,
            streamed: false,
        };
        let result =
            guarded(ctx, deadline, TimeoutPhase::Deadline, endpoint.complete(&c.model, req)).await;
        permit.settle(result.as_ref().map(|_| ()).map_err(|e| &e.error));
        match &result {
            Ok(r) => self.record(&a, r.usage, "ok", false),
            Err(e) => self.record(&a, Usage::default(), e.error.kind(), false),
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt_stream(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        c: &Candidate,
        req: &ChatRequest,
        ctx: &RequestContext,
        deadline: Instant,
        permit: Permit,
        key: Option<String>,
    ) -> Result<ChatStream, AttemptError> {
        let a = Attempt {
            ctx,
            candidate: c,
            at: self.clock.now(),
            started: Instant::now(),
            ttft: None,
            streamed: true,
        };
        let first_byte = a.started + endpoint.timeouts.first_byte;
        let (limit, phase) = if first_byte < deadline {
            (first_byte, TimeoutPhase::FirstByte)
        } else {
            (deadline, TimeoutPhase::Deadline)
        };
        let opened = guarded(ctx, limit, phase, async {
            let mut upstream = endpoint.open_stream(&c.model, req).await?;
            match upstream.next().await {
                Some(Ok(first)) => Ok((upstream, first)),
                Some(Err(e)) => Err(AttemptError::from(e)),
                None => Err(LlmError::protocol("the stream ended before it began").into()),
            }
        })
        .await;
        match opened {
            Ok((upstream, first)) => {
                let delivery = Delivery {
                    inner: self.clone(),
                    upstream,
                    first: Some(first),
                    permit: Some(permit),
                    ctx: ctx.clone(),
                    candidate: c.clone(),
                    at: a.at,
                    started: a.started,
                    ttft: a.started.elapsed(),
                    stream_deadline: a.started + endpoint.timeouts.stream_total,
                    cache_key: key,
                    finished: false,
                };
                Ok(delivery.into_stream())
            }
            Err(e) => {
                permit.settle(Err(&e.error));
                self.record(&a, Usage::default(), e.error.kind(), false);
                Err(e)
            }
        }
    }

    async fn cached(
        &self,
        key: &str,
        c: &Candidate,
        ctx: &RequestContext,
        streamed: bool,
    ) -> Option<ChatResponse> {
        let cache = self.cache.as_ref()?;
        let Some(mut hit) = cache.get(key).await else {
            bump(&self.counters.cache_misses);
            return None;
        };
        bump(&self.counters.cache_hits);
        hit.cache_hit = true;
        hit.usage = Usage::default();
        hit.provider.clone_from(&c.provider);
        hit.model.clone_from(&c.model);
        let a = Attempt {
            ctx,
            candidate: c,
            at: self.clock.now(),
            started: Instant::now(),
            ttft: None,
            streamed,
        };
        self.record(&a, Usage::default(), "ok", true);
        Some(hit)
    }

    async fn store(&self, key: Option<String>, response: &ChatResponse) {
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.put(key, response).await;
        }
    }
}

/// A complete answer or a stream, from the shared call path.
enum Answer {
    Complete(ChatResponse),
    Stream(ChatStream),
}

/// Cancellation, then `fut` within `deadline`.
async fn guarded<T>(
    ctx: &RequestContext,
    deadline: Instant,
    phase: TimeoutPhase,
    fut: impl Future<Output = Result<T, AttemptError>>,
) -> Result<T, AttemptError> {
    tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => Err(LlmError::Cancelled.into()),
        r = tokio::time::timeout_at(deadline, fut) => r.unwrap_or_else(|_| Err(LlmError::Timeout { phase }.into())),
    }
}

impl LlmRouter {
    /// A builder from resolved settings (keys already read, see [`LlmSettings::apply_env`]).
    #[must_use]
    pub fn builder(settings: LlmSettings) -> LlmRouterBuilder {
        LlmRouterBuilder {
            settings,
            routes: BTreeMap::new(),
            ledger: None,
            clock: Arc::new(SystemClock),
            jitter: Jitter::Full,
        }
    }

    /// The price of `provider`'s `model`, if configured (`None`: unpriced, not free).
    #[must_use]
    pub fn price_of(&self, provider: &str, model: &str) -> Option<crate::usage::Price> {
        self.inner.models.get(&format!("{provider}/{model}")).and_then(|m| m.price)
    }

    /// Whether any provider can be called.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.inner.providers.values().any(|p| p.endpoint.is_some())
    }

    /// The status of providers, models and breakers, for `GET /v1/llm/providers`.
    #[must_use]
    pub fn status(&self) -> LlmStatus {
        let inner = &self.inner;
        let now = Instant::now();
        let wall = inner.clock.now();
        let to_wall = |t: Instant| wall + t.saturating_duration_since(now);
        let mut names: BTreeMap<&str, BTreeSet<String>> =
            inner.providers.keys().map(|p| (p.as_str(), BTreeSet::new())).collect();
        let routed = inner
            .routes
            .values()
            .flat_map(|r| std::iter::once(&r.model).chain(&r.fallbacks))
            .chain(inner.default_model.iter())
            .chain(inner.models.keys());
        for m in routed {
            if let Some((p, model)) = split_model(m)
                && let Some(set) = names.get_mut(p)
            {
                set.insert(model.to_owned());
            }
        }
        let runtime = lock(&inner.runtime);
        for (p, model) in runtime.keys() {
            if let Some(set) = names.get_mut(p.as_str()) {
                set.insert(model.clone());
            }
        }
        let mut soonest: Option<Instant> = None;
        let providers = inner
            .providers
            .iter()
            .map(|(name, entry)| {
                let health = lock(&entry.health);
                let models = names
                    .get(name.as_str())
                    .into_iter()
                    .flatten()
                    .map(|model| {
                        let facts = inner.models.get(&format!("{name}/{model}"));
                        let rt = runtime.get(&(name.clone(), model.clone()));
                        let breaker = rt.map_or(BreakerState::Closed, |r| r.breaker.state(now));
                        let half_open = rt
                            .and_then(|r| r.breaker.half_open_at())
                            .filter(|_| breaker == BreakerState::Open);
                        if let Some(t) = half_open {
                            soonest = Some(soonest.map_or(t, |s| s.min(t)));
                        }
                        ModelStatus {
                            model: model.clone(),
                            context_window: facts.and_then(|f| f.context_window),
                            priced: facts.is_some_and(|f| f.price.is_some()),
                            breaker,
                            half_open_at: half_open.map(to_wall),
                            cooldown_until: rt
                                .and_then(|r| r.breaker.cooldown_until(now))
                                .map(to_wall),
                            last_error: rt.and_then(|r| r.last_error).map(str::to_owned),
                        }
                    })
                    .collect();
                ProviderStatus {
                    name: name.clone(),
                    kind: entry.kind,
                    base_url: entry.base_url.clone(),
                    enabled: entry.endpoint.is_some(),
                    misconfigured: health.misconfigured,
                    last_error: health.last_error.map(|(k, _)| k.to_owned()),
                    last_error_at: health.last_error.map(|(_, t)| t),
                    models,
                }
            })
            .collect();
        let c = &inner.counters;
        LlmStatus {
            providers,
            soonest_half_open_at: soonest.map(to_wall),
            counters: Counters {
                calls: c.calls.load(Ordering::Relaxed),
                attempts: c.attempts.load(Ordering::Relaxed),
                retries: c.retries.load(Ordering::Relaxed),
                fallbacks: c.fallbacks.load(Ordering::Relaxed),
                cache_hits: c.cache_hits.load(Ordering::Relaxed),
                cache_misses: c.cache_misses.load(Ordering::Relaxed),
                ledger_dropped: inner.ledger.as_ref().map_or(0, UsageLedger::dropped),
            },
        }
    }
}

#[async_trait]
impl LlmClient for LlmRouter {
    async fn chat(&self, req: ChatRequest, ctx: &RequestContext) -> LlmResult<ChatResponse> {
        match self.inner.call(&req, ctx, false).await? {
            Answer::Complete(response) => Ok(response),
            Answer::Stream(_) => {
                Err(LlmError::protocol("a stream where a complete answer was due"))
            }
        }
    }

    async fn chat_stream(&self, req: ChatRequest, ctx: &RequestContext) -> LlmResult<ChatStream> {
        match self.inner.call(&req, ctx, true).await? {
            Answer::Stream(stream) => Ok(stream),
            Answer::Complete(response) => Ok(replay(response)),
        }
    }
}

/// A cached answer as a stream.
fn replay(hit: ChatResponse) -> ChatStream {
    let mut events = Vec::new();
    if !hit.text.is_empty() {
        events.push(StreamEvent::TextDelta { text: hit.text.clone() });
    }
    for (index, call) in hit.tool_calls.iter().enumerate() {
        events.push(StreamEvent::ToolCallStart {
            index,
            id: call.id.clone(),
            name: call.name.clone(),
        });
        events.push(StreamEvent::ToolCallDelta { index, arguments: call.arguments.to_string() });
    }
    events.push(StreamEvent::Completed(hit));
    Box::pin(futures::stream::iter(events.into_iter().map(Ok)))
}

/// A stream whose first delta has been delivered: never retried, never failed over.
struct Delivery {
    inner: Arc<Inner>,
    upstream: Upstream,
    first: Option<StreamEvent>,
    permit: Option<Permit>,
    ctx: RequestContext,
    candidate: Candidate,
    at: OffsetDateTime,
    started: Instant,
    ttft: Duration,
    stream_deadline: Instant,
    cache_key: Option<String>,
    finished: bool,
}

impl Delivery {
    fn into_stream(self) -> ChatStream {
        Box::pin(futures::stream::unfold(self, |mut d| async move {
            let item = d.next().await?;
            Some((item, d))
        }))
    }

    async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        if self.finished {
            return None;
        }
        let item = match self.first.take() {
            Some(first) => Ok(first),
            None => tokio::select! {
                biased;
                () = self.ctx.cancel.cancelled() => Err(LlmError::Cancelled),
                r = tokio::time::timeout_at(self.stream_deadline, self.upstream.next()) => match r {
                    Ok(Some(item)) => item,
                    Ok(None) => Err(LlmError::protocol("the stream ended before the answer was complete")),
                    Err(_) => Err(LlmError::Timeout { phase: TimeoutPhase::Total }),
                },
            },
        };
        match &item {
            Ok(StreamEvent::Completed(response)) => {
                self.finish(Ok(response.usage), "ok");
                let key = self.cache_key.take();
                self.inner.store(key, response).await;
            }
            Err(e) => self.finish(Err(e), e.kind()),
            Ok(_) => {}
        }
        Some(item)
    }

    fn finish(&mut self, result: Result<Usage, &LlmError>, outcome: &str) {
        self.finished = true;
        if let Some(permit) = self.permit.take() {
            permit.settle(result.map(|_| ()));
        }
        let a = Attempt {
            ctx: &self.ctx,
            candidate: &self.candidate,
            at: self.at,
            started: self.started,
            ttft: Some(self.ttft),
            streamed: true,
        };
        self.inner.record(&a, result.unwrap_or_default(), outcome, false);
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Err(&LlmError::Cancelled), "cancelled");
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("provider", &self.candidate.provider)
            .field("model", &self.candidate.model)
            .finish_non_exhaustive()
    }
}
