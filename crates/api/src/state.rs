//! What handlers share: the store, project workspaces, authentication, rate limits, the
//! server's lifecycle and the HTTP configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::collections::BTreeMap;

use agentd_core::Store;
use agentd_runner::AgentProfile;
use agentd_workspace::Workspaces;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::browser::BrowserConfig;
use crate::client::TrustedProxies;
use crate::rate_limit::RateLimiter;

/// Shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Project workspaces (managed and directory): the only way handlers reach files.
    pub workspaces: Arc<Workspaces>,
    /// The OS sandbox (its capabilities are shown by readiness).
    pub sandbox: agentd_sandbox::Sandbox,
    /// Sign-in, tokens, keys.
    pub auth: Arc<Auth>,
    /// Rate limits.
    pub limiter: Arc<RateLimiter>,
    /// The language models (their status; runs call them through the runner).
    pub llm: Arc<agentd_llm::LlmRouter>,
    /// The agent types.
    pub profiles: Arc<BTreeMap<String, AgentProfile>>,
    /// Whether the server is draining.
    pub lifecycle: Arc<Lifecycle>,
    /// HTTP settings.
    pub config: Arc<ApiConfig>,
}

/// HTTP behaviour the router needs to know.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The deadline for an ordinary (non-streaming) request.
    pub request_timeout: Duration,
    /// How long readiness waits for each dependency.
    pub ready_timeout: Duration,
    /// Whether the `/debug/*` routes exist (never in production).
    pub debug_routes: bool,
    /// Browser-facing settings.
    pub browser: BrowserConfig,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Retryable failures a new run may have before it fails.
    pub run_max_attempts: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(1),
            debug_routes: false,
            browser: BrowserConfig::default(),
            trusted_proxies: TrustedProxies::default(),
            run_max_attempts: 3,
        }
    }
}

/// The server's lifecycle as readiness reports it.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    stopping: CancellationToken,
}

impl Lifecycle {
    /// Marks the server as shutting down: readiness answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Ends every event stream (clients reconnect, to another node, and resume from their last
    /// event): streams would otherwise hold the shutdown for its whole grace period.
    pub fn end_streams(&self) {
        self.stopping.cancel();
    }

    /// Cancelled when streams must end.
    #[must_use]
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Whether the server is shutting down.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
