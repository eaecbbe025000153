//! Building the application from settings and serving it until stopped.
//!
//! The accept loop is our own rather than `axum::serve`, which has neither a header-read timeout
//! (a slowloris client holds a connection forever) nor a connection cap. Each connection is
//! served by hyper's auto (HTTP/1.1 + HTTP/2) builder with a header-read timeout; a semaphore caps
//! concurrent connections (excess clients wait in the kernel's accept queue); and hyper-util's
//! graceful shutdown lets in-flight requests finish when a stop is requested.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentd_api::auth::password::{HashCost, PasswordHasher};
use agentd_api::auth::{Auth, AuthConfig};
use agentd_api::browser::BrowserConfig;
use agentd_api::client::TrustedProxies;
use agentd_api::rate_limit::{Limits, RateLimiter};
use agentd_api::{ApiConfig, AppState, Lifecycle};
use agentd_core::UsageStore;
use agentd_llm::{LlmRouter, UsageLedger};
use agentd_runner::{Runner, RunnerConfig, RunnerDeps};
use agentd_store::Database;
use agentd_tools::ToolRegistry;
use agentd_workspace::Workspaces;
use anyhow::Context as _;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::settings::{Environment, Settings, redacted_url};

/// A built, bound application, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    lifecycle: Arc<Lifecycle>,
    database: Database,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
    llm: Arc<LlmRouter>,
    runner: RunnerDeps,
    runner_config: RunnerConfig,
}

/// Why the application could not start. Each variant is one clear line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be reached or opened.
    #[error("cannot open the database at {url}: {reason}")]
    Database {
        /// The URL, password redacted.
        url: String,
        /// The failure and its causes.
        reason: String,
    },
    /// The migrations failed.
    #[error("cannot migrate the database at {url}: {reason}")]
    Migrate {
        /// The URL, password redacted.
        url: String,
        /// The failure and its causes.
        reason: String,
    },
    /// Redis (for shared rate limits) could not be reached.
    #[error("cannot connect to Redis at {url}: {reason}")]
    Redis {
        /// The URL, password redacted.
        url: String,
        /// The failure.
        reason: String,
    },
    /// A component could not be configured.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The LLM layer could not be built.
    #[error("invalid LLM configuration: {0}")]
    Llm(#[from] agentd_llm::LlmConfigError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The error and all its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Opens the database the settings name, creating the data directory for the default SQLite
/// file, and applies pending migrations.
///
/// # Errors
/// A [`StartupError`] describing what failed.
pub async fn open_database(settings: &Settings) -> Result<Database, StartupError> {
    if settings.database.url.is_none() {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
    }
    let options = settings.database_options();
    let url = redacted_url(options.url.expose_secret());
    let database = Database::connect(&options)
        .await
        .map_err(|e| StartupError::Database { url: url.clone(), reason: chain(&e) })?;
    database.migrate().await.map_err(|e| StartupError::Migrate { url, reason: chain(&e) })?;
    Ok(database)
}

/// The secret key in effect: the configured one, or in development and staging a random one for
/// this process, with a warning (production never gets here without a key: validation refuses).
#[must_use]
pub fn effective_secret_key(settings: &Settings) -> SecretString {
    if let Some(key) = &settings.secret_key {
        return key.clone();
    }
    if settings.env != Environment::Production {
        tracing::warn!(
            "AGENTD_SECRET_KEY is not set: using a random key for this process; sessions and \
             tokens will not survive a restart"
        );
    }
    let bytes: [u8; 32] = rand::random();
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The password hasher the settings ask for.
///
/// # Errors
/// When the cost parameters are out of range.
pub fn password_hasher(settings: &Settings) -> Result<PasswordHasher, StartupError> {
    PasswordHasher::new(HashCost {
        memory_kib: settings.auth.password_hash_memory_kib,
        iterations: settings.auth.password_hash_iterations,
    })
    .map_err(|e| StartupError::Config(e.to_string()))
}

async fn rate_limiter(settings: &Settings) -> Result<Arc<RateLimiter>, StartupError> {
    let limits = Limits {
        per_address_per_minute: settings.rate_limit.per_minute,
        expensive_per_minute: settings.rate_limit.runs_per_minute,
    };
    match &settings.rate_limit.redis_url {
        None => Ok(RateLimiter::in_memory(limits)),
        Some(url) => RateLimiter::with_redis(
            limits,
            url.expose_secret(),
            &settings.rate_limit.redis_key_prefix,
        )
        .await
        .map_err(|e| StartupError::Redis {
            url: redacted_url(url.expose_secret()),
            reason: chain(&e),
        }),
    }
}

/// Every built-in tool, running commands in `sandbox` under the configured command policy.
///
/// # Errors
/// When the command policy is invalid (validation normally caught it already).
pub fn build_tools(
    settings: &Settings,
    store: &Arc<dyn agentd_core::Store>,
    sandbox: &agentd_sandbox::Sandbox,
) -> Result<ToolRegistry, StartupError> {
    let policy = agentd_core::CommandPolicy::from_settings(&settings.command_policy)
        .map_err(|e| StartupError::Config(format!("command_policy: {e}")))?;
    let mut tools = ToolRegistry::standard(sandbox.clone(), Arc::new(policy));
    let checker = agentd_checks::Checker::new(sandbox.clone());
    tools.add(Arc::new(agentd_checks::RunChecks::new(checker, store.clone())));
    Ok(tools)
}

/// The LLM router of the settings, recording usage in `store`.
///
/// # Errors
/// When a provider's HTTP client cannot be built or the settings are invalid.
pub fn build_llm(
    settings: &Settings,
    store: Arc<dyn agentd_core::Store>,
) -> Result<LlmRouter, StartupError> {
    let usage: Arc<dyn UsageStore> = store;
    let mut builder = LlmRouter::builder(settings.llm.clone()).ledger(UsageLedger::spawn(usage));
    for (agent_type, route) in settings.agent_routes() {
        builder = builder.route(agent_type, route);
    }
    Ok(builder.build()?)
}

impl Application {
    /// Opens (and migrates) the database, builds the router, and binds the listener.
    ///
    /// # Errors
    /// A [`StartupError`] when the database is unreachable or the address cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let database = open_database(&settings).await?;
        // Probes the machine (and warns loudly about AGENTD_SANDBOX=none, which validation
        // refuses in production).
        let sandbox = agentd_sandbox::Sandbox::new(settings.sandbox.clone()).await;
        let secret_key = effective_secret_key(&settings);
        let store = database.store();
        let auth = Auth::new(
            store.clone(),
            secret_key.expose_secret().as_bytes(),
            password_hasher(&settings)?,
            AuthConfig {
                issuer: settings.http.public_url.clone().unwrap_or_else(|| "agentd".into()),
                access_ttl: Duration::from_secs(settings.auth.access_token_ttl_seconds),
                refresh_ttl: Duration::from_secs(settings.auth.refresh_token_ttl_days * 24 * 3600),
                account_free_failures: settings.auth.login_max_failures,
                address_free_failures: settings.auth.login_max_failures.saturating_mul(4),
                secure_cookies: settings.https(),
            },
        );
        let llm = Arc::new(build_llm(&settings, store.clone())?);
        if !llm.is_configured() {
            tracing::warn!(
                "no language model is configured: agent runs will fail with no_llm_configured"
            );
        }
        let workspaces = Arc::new(Workspaces::new(
            store.clone(),
            settings.workspace_config().map_err(|e| StartupError::Config(e.to_string()))?,
        ));
        let runner_config = settings.runner_config();
        let runner = RunnerDeps {
            store: store.clone(),
            llm: llm.clone(),
            tools: build_tools(&settings, &store, &sandbox)?,
            workspaces: workspaces.clone(),
            sandbox: sandbox.clone(),
        };
        let lifecycle = Arc::new(Lifecycle::default());
        let state = AppState {
            store,
            workspaces,
            sandbox,
            llm: llm.clone(),
            profiles: Arc::new(runner_config.profiles.clone()),
            auth: Arc::new(auth),
            limiter: rate_limiter(&settings).await?,
            lifecycle: lifecycle.clone(),
            config: Arc::new(ApiConfig {
                body_limit: settings.http.request_body_max_bytes,
                request_timeout: Duration::from_secs(settings.http.request_timeout_seconds),
                ready_timeout: Duration::from_millis(settings.database.ready_timeout_ms),
                debug_routes: settings.http.debug_routes,
                browser: BrowserConfig {
                    https: settings.https(),
                    cors_origins: settings.http.cors_origins.clone(),
                    cors_allow_credentials: settings.http.cors_allow_credentials,
                    allowed_hosts: settings.http.allowed_hosts.clone(),
                },
                trusted_proxies: TrustedProxies::parse(&settings.http.trusted_proxies)
                    .map_err(|e| StartupError::Config(e.to_string()))?,
                run_max_attempts: runner_config.max_attempts,
            }),
        };
        let router = agentd_api::router(state);
        let addr = settings.http.bind;
        let listener =
            TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })?;
        let local_addr =
            listener.local_addr().map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            local_addr,
            router,
            lifecycle,
            database,
            settings: Arc::new(settings),
            shutdown: CancellationToken::new(),
            llm,
            runner,
            runner_config,
        })
    }

    /// The store the application uses.
    #[must_use]
    pub fn store(&self) -> Arc<dyn agentd_core::Store> {
        self.database.store()
    }

    /// The LLM layer: the client agents call, and its status for `GET /v1/llm/providers`.
    #[must_use]
    pub fn llm(&self) -> Arc<LlmRouter> {
        self.llm.clone()
    }

    /// The address actually bound (useful with port 0).
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Cancelling this token stops the server gracefully.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains: readiness turns 503 (new
    /// connections are still accepted for `shutdown_delay_seconds`, so that load balancers see
    /// it), then no new connections are accepted and in-flight requests get up to the grace
    /// period to finish.
    ///
    /// # Errors
    /// Only for failures that make serving impossible.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            local_addr,
            router,
            lifecycle,
            database,
            settings,
            shutdown,
            llm: _,
            runner,
            runner_config,
        } = self;
        let sweeper = CancellationToken::new();
        let workers = if runner_config.workers > 0 {
            Some(Runner::start(runner, runner_config))
        } else {
            // A node that serves the API only still takes its turn at the retention sweep (the
            // lock in the database keeps it to one node at a time).
            tokio::spawn(agentd_runner::maintenance::sweep_loop(
                runner.store.clone(),
                format!("api-{:016x}", rand::random::<u64>()),
                Arc::new(runner_config),
                sweeper.clone(),
            ));
            None
        };
        tracing::info!(
            address = %local_addr,
            env = %settings.env,
            database = database.backend().as_str(),
            version = agentd_api::health::VERSION,
            "agentd is serving"
        );

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(settings.http.header_read_timeout_seconds));
        builder.http2().timer(TokioTimer::new());
        let server = Server {
            listener,
            router,
            builder: Arc::new(builder),
            graceful: GracefulShutdown::new(),
            first_byte_timeout: Duration::from_secs(settings.http.header_read_timeout_seconds),
            connections: Arc::new(Semaphore::new(settings.http.max_connections)),
        };

        server.accept_until(shutdown.cancelled()).await?;
        lifecycle.start_draining();
        let delay = Duration::from_secs(settings.shutdown_delay_seconds);
        if !delay.is_zero() {
            tracing::info!(
                delay_seconds = delay.as_secs(),
                "stopping: readiness is 503; still accepting while load balancers catch up"
            );
            server.accept_until(tokio::time::sleep(delay)).await?;
        }
        let Server { listener, graceful, .. } = server;
        drop(listener);
        // Event streams end now (their clients resume elsewhere from their last event).
        lifecycle.end_streams();
        let grace = Duration::from_secs(settings.shutdown_grace_seconds);
        tracing::info!(grace_seconds = grace.as_secs(), "stopping: draining in-flight requests");
        let connections = async {
            tokio::select! {
                () = graceful.shutdown() => tracing::info!("all connections closed"),
                () = tokio::time::sleep(grace) => {
                    tracing::warn!("grace period over: closing the remaining connections");
                }
            }
        };
        sweeper.cancel();
        let workers = async {
            if let Some(runner) = workers {
                runner.stop().await;
            }
        };
        tokio::join!(connections, workers);
        database.close().await;
        tracing::info!("agentd stopped");
        Ok(())
    }
}

/// The listening half of the application: accepts connections and serves each on its own task.
struct Server {
    listener: TcpListener,
    router: axum::Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    graceful: GracefulShutdown,
    first_byte_timeout: Duration,
    connections: Arc<Semaphore>,
}

impl Server {
    /// Accepts and serves connections until `stop` resolves.
    async fn accept_until(
        &self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                () = &mut stop => return Ok(()),
                permit = self.connections.clone().acquire_owned() => {
                    permit.context("the connection semaphore closed")?
                }
            };
            let (stream, remote) = tokio::select! {
                () = &mut stop => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
            let service = tower::ServiceExt::map_request(
                self.router.clone(),
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                },
            );
            let builder = self.builder.clone();
            let watcher = self.graceful.watcher();
            let first_byte_timeout = self.first_byte_timeout;
            tokio::spawn(async move {
                // hyper's header-read timeout starts once it knows the protocol, which it learns
                // from the first bytes: a client that sends nothing at all is dropped here.
                let mut probe = [0u8; 1];
                match tokio::time::timeout(first_byte_timeout, stream.peek(&mut probe)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
                let connection = builder.serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                );
                if let Err(err) = watcher.watch(connection).await {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

/// SIGTERM and SIGINT handlers, installed before the server announces itself so that a stop
/// signal sent as soon as it is up is never lost (or fatal, as the default action would be).
#[derive(Debug)]
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers.
    ///
    /// # Errors
    /// When a handler cannot be installed.
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Resolves at the first SIGTERM or SIGINT.
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!(signal = "SIGTERM", "stop requested"),
            _ = self.int.recv() => tracing::info!(signal = "SIGINT", "stop requested"),
        }
    }
}

/// `agentd worker`: workers only, no HTTP (for scaling out on PostgreSQL); stops gracefully on
/// SIGTERM or SIGINT, giving its runs back.
///
/// # Errors
/// Startup failures.
pub async fn work(settings: Settings) -> anyhow::Result<()> {
    let signals = StopSignals::install()?;
    let database = open_database(&settings).await?;
    let store = database.store();
    let llm = Arc::new(build_llm(&settings, store.clone())?);
    let workspaces = Arc::new(Workspaces::new(
        store.clone(),
        settings.workspace_config().map_err(|e| StartupError::Config(e.to_string()))?,
    ));
    let config = settings.runner_config();
    if config.workers == 0 {
        anyhow::bail!("AGENTD_WORKERS is 0: a worker process with no workers would do nothing");
    }
    let sandbox = agentd_sandbox::Sandbox::new(settings.sandbox.clone()).await;
    let runner = Runner::start(
        RunnerDeps {
            tools: build_tools(&settings, &store, &sandbox)?,
            store,
            llm,
            workspaces,
            sandbox,
        },
        config,
    );
    tracing::info!(
        node = runner.node_id(),
        database = database.backend().as_str(),
        "agentd worker is running"
    );
    signals.recv().await;
    runner.stop().await;
    database.close().await;
    tracing::info!("agentd worker stopped");
    Ok(())
}

/// `agentd serve`: build, serve, and stop gracefully on SIGTERM or SIGINT.
///
/// # Errors
/// Startup failures, and failures that make serving impossible.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let signals = StopSignals::install()?;
    let app = Application::build(settings).await?;
    let token = app.shutdown_token();
    let watcher = tokio::spawn(async move {
        signals.recv().await;
        token.cancel();
    });
    let result = app.run_until_stopped().await;
    watcher.abort();
    result
}
