//! The one typed configuration, loaded from compiled-in defaults, then an optional TOML file,
//! then `AGENTD_*` environment variables, and validated at load.
//!
//! Every environment variable is declared once, in [`ENV_VARS`], with the TOML key it sets: the
//! loader, the error messages ("which key is wrong") and the documentation table in
//! `docs/configuration.md` all follow that list. The loader never reads the process environment
//! itself; callers pass the variables in, so tests build settings without touching global state.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_core::workspace::WorkspaceLimits;
use agentd_core::{CommandPolicy, CommandPolicySettings};
use agentd_llm::{AgentRoute, LlmSettings};
use agentd_runner::{ApprovalPolicy, ProfileOverrides};
use agentd_sandbox::{SandboxMode, SandboxSettings};
use agentd_store::{Backend, DatabaseOptions};
use agentd_workspace::{AllowedRoots, WorkspaceConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// The deployment environment. Production turns on strict checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Local work: generated secrets allowed, pretty logs.
    #[default]
    Development,
    /// Like production, for rehearsal.
    Staging,
    /// Strict: a real secret key is required, debug features are refused, JSON logs.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// All of agentd's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `AGENTD_ENV`.
    pub env: Environment,
    /// `AGENTD_DATA_DIR`: where agentd keeps its files (the SQLite database by default).
    pub data_dir: PathBuf,
    /// `AGENTD_SECRET_KEY`: the root secret that signing keys are derived from.
    #[serde(serialize_with = "redact_secret")]
    pub secret_key: Option<SecretString>,
    /// `AGENTD_SHUTDOWN_GRACE_SECONDS`: how long in-flight requests may take after a stop signal.
    pub shutdown_grace_seconds: u64,
    /// `AGENTD_SHUTDOWN_DELAY_SECONDS`: after a stop signal, how long to keep accepting requests
    /// while readiness answers 503, so that load balancers stop routing here first.
    pub shutdown_delay_seconds: u64,
    /// The HTTP server.
    pub http: HttpSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// Logging.
    pub log: LogSettings,
    /// The sandbox agent commands run in (`[sandbox]`, `[sandbox.limits]`).
    pub sandbox: SandboxSettings,
    /// Which agent commands run, wait for approval, or are refused (`[command_policy]`).
    pub command_policy: CommandPolicySettings,
    /// Sign-in, tokens and passwords.
    pub auth: AuthSettings,
    /// Rate limits.
    pub rate_limit: RateLimitSettings,
    /// Project workspaces: where directory workspaces may live, and the file limits.
    pub workspace: WorkspaceSettings,
    /// Language models: providers, per-model facts, retries, breakers, the cache.
    pub llm: LlmSettings,
    /// Agent types by name.
    pub agents: BTreeMap<String, AgentSettings>,
    /// Workers and retention.
    pub runs: RunSettings,
}

/// Workers, leases, retries and retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSettings {
    /// `AGENTD_WORKERS`: runs executed at once on this node (0: this node serves the API only).
    pub workers: usize,
    /// `AGENTD_RUN_LEASE_SECONDS`: how long a worker holds a run without a heartbeat.
    pub lease_seconds: u64,
    /// `AGENTD_RESCUE_INTERVAL_SECONDS`: how often runs of dead workers are looked for.
    pub rescue_interval_seconds: u64,
    /// `AGENTD_RUN_MAX_ATTEMPTS`: retryable failures before a run fails.
    pub max_attempts: u32,
    /// `AGENTD_RUN_RETRY_BASE_SECONDS`: the first retry delay (doubling, with jitter).
    pub retry_base_seconds: u64,
    /// `AGENTD_CONVERSATION_TTL_HOURS`: idle conversations are deleted after this long.
    pub conversation_ttl_hours: u64,
    /// `AGENTD_RUN_RETENTION_DAYS`: finished runs are deleted after this long.
    pub retention_days: u64,
    /// `AGENTD_APPROVAL_TTL_HOURS`: an approval nobody decides within this long counts as a
    /// rejection.
    pub approval_ttl_hours: u64,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            workers: 16,
            lease_seconds: 30,
            rescue_interval_seconds: 10,
            max_attempts: 3,
            retry_base_seconds: 5,
            conversation_ttl_hours: 168,
            retention_days: 30,
            approval_ttl_hours: 24,
        }
    }
}

/// One agent type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Its model, `provider-name/model`; the default model when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Models tried in order when the model is unavailable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Cache its answers even when the temperature is not 0.
    pub cache: bool,
    /// What it is for (shown by `GET /v1/agents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the model is told first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The tools it may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// `always`, `risky` or `never`: which side-effecting tool calls need a human's approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalPolicy>,
    /// Model calls per run (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Working time per run, in seconds (default 1800); waiting for a human does not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_active_seconds: Option<u64>,
    /// Tokens per run (input plus output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// USD per run (of priced calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens one answer may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

impl AgentSettings {
    /// The changes this makes to the agent type's profile.
    #[must_use]
    pub fn overrides(&self) -> ProfileOverrides {
        ProfileOverrides {
            description: self.description.clone(),
            system_prompt: self.system_prompt.clone(),
            tools: self.tools.clone(),
            approval: self.approval,
            max_steps: self.max_steps,
            max_active_seconds: self.max_active_seconds,
            max_tokens: self.max_tokens,
            max_cost_usd: self.max_cost_usd,
            temperature: self.temperature,
            max_output_tokens: self.max_output_tokens,
        }
    }

    /// The route the LLM layer follows, when the agent type names a model.
    #[must_use]
    pub fn route(&self) -> Option<AgentRoute> {
        self.model.as_ref().map(|model| AgentRoute {
            model: model.clone(),
            fallbacks: self.fallbacks.clone(),
            cache: self.cache,
        })
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `AGENTD_BIND`: the listening address.
    pub bind: SocketAddr,
    /// `AGENTD_REQUEST_BODY_MAX_BYTES`: the largest request body accepted.
    pub request_body_max_bytes: usize,
    /// `AGENTD_REQUEST_TIMEOUT_SECONDS`: the deadline of an ordinary (non-streaming) request.
    pub request_timeout_seconds: u64,
    /// `AGENTD_HEADER_READ_TIMEOUT_SECONDS`: how long a client may take to send request headers.
    pub header_read_timeout_seconds: u64,
    /// `AGENTD_MAX_CONNECTIONS`: concurrent connections; more wait in the accept queue.
    pub max_connections: usize,
    /// `AGENTD_DEBUG_ROUTES`: serve the `/debug/*` routes (refused in production).
    pub debug_routes: bool,
    /// `AGENTD_PUBLIC_URL`: the URL clients use; https turns on HSTS and `Secure` cookies.
    pub public_url: Option<String>,
    /// `AGENTD_CORS_ORIGINS`: origins allowed to call the API from browsers.
    pub cors_origins: Vec<String>,
    /// `AGENTD_CORS_ALLOW_CREDENTIALS`: whether those cross-origin calls may carry cookies.
    pub cors_allow_credentials: bool,
    /// `AGENTD_ALLOWED_HOSTS`: `Host` values served; empty serves any.
    pub allowed_hosts: Vec<String>,
    /// `AGENTD_TRUSTED_PROXIES`: addresses or networks whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
}

/// Sign-in, token and password settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `AGENTD_ACCESS_TOKEN_TTL_SECONDS`.
    pub access_token_ttl_seconds: u64,
    /// `AGENTD_REFRESH_TOKEN_TTL_DAYS`.
    pub refresh_token_ttl_days: u64,
    /// `AGENTD_LOGIN_MAX_FAILURES`: failed sign-ins per account before lock-outs start.
    pub login_max_failures: u32,
    /// `AGENTD_PASSWORD_HASH_MEMORY_KIB`: argon2id memory cost.
    pub password_hash_memory_kib: u32,
    /// `AGENTD_PASSWORD_HASH_ITERATIONS`: argon2id time cost.
    pub password_hash_iterations: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_seconds: 900,
            refresh_token_ttl_days: 30,
            login_max_failures: 5,
            password_hash_memory_kib: 19 * 1024,
            password_hash_iterations: 2,
        }
    }
}

/// Rate-limit settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `AGENTD_RATE_LIMIT_PER_MINUTE`: requests per client address (0: no limit).
    pub per_minute: u32,
    /// `AGENTD_RATE_LIMIT_RUNS_PER_MINUTE`: expensive requests per principal (0: no limit).
    pub runs_per_minute: u32,
    /// `AGENTD_REDIS_URL`: share the limits between nodes through this Redis.
    #[serde(serialize_with = "redact_url")]
    pub redis_url: Option<SecretString>,
    /// `AGENTD_REDIS_KEY_PREFIX`: prefix of agentd's Redis keys.
    pub redis_key_prefix: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_minute: 600,
            runs_per_minute: 60,
            redis_url: None,
            redis_key_prefix: "agentd:".into(),
        }
    }
}

/// Database settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `AGENTD_DATABASE_URL`: `sqlite://…` or `postgres://…`; default: `agentd.db` in the data dir.
    #[serde(serialize_with = "redact_url")]
    pub url: Option<SecretString>,
    /// `AGENTD_DATABASE_MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// `AGENTD_DATABASE_MIN_CONNECTIONS`.
    pub min_connections: u32,
    /// `AGENTD_DATABASE_CONNECT_TIMEOUT_SECONDS`.
    pub connect_timeout_seconds: u64,
    /// `AGENTD_DATABASE_BUSY_TIMEOUT_MS` (SQLite).
    pub sqlite_busy_timeout_ms: u64,
    /// `AGENTD_DATABASE_SQLITE_SYNCHRONOUS`: `full` or `normal`.
    pub sqlite_synchronous: agentd_store::SqliteSynchronous,
    /// `AGENTD_READY_TIMEOUT_MS`: how long readiness waits for the database.
    pub ready_timeout_ms: u64,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `AGENTD_LOG_FORMAT`; default `json` in production, `pretty` otherwise.
    pub format: Option<LogFormat>,
    /// `AGENTD_LOG`: filter directives (`info`, `agentd_api=debug,info`, ...).
    pub filter: String,
}

/// Workspace settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// `AGENTD_WORKSPACE_ALLOWED_ROOTS`: the directories under which directory workspaces may be
    /// created; empty disables directory workspaces.
    pub allowed_roots: Vec<PathBuf>,
    /// `AGENTD_MAX_FILE_BYTES`: the largest file a workspace accepts.
    pub max_file_bytes: u64,
    /// `AGENTD_MAX_PROJECT_BYTES`: the most bytes a managed workspace's files may take.
    pub max_project_bytes: u64,
    /// `AGENTD_MAX_PROJECT_FILES`: the most files a managed workspace may hold.
    pub max_project_files: u64,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        let limits = WorkspaceLimits::default();
        Self {
            allowed_roots: Vec::new(),
            max_file_bytes: limits.max_file_bytes,
            max_project_bytes: limits.max_project_bytes,
            max_project_files: limits.max_project_files,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            data_dir: PathBuf::from("./agentd-data"),
            secret_key: None,
            shutdown_grace_seconds: 30,
            shutdown_delay_seconds: 0,
            http: HttpSettings::default(),
            database: DatabaseSettings::default(),
            log: LogSettings::default(),
            sandbox: SandboxSettings::default(),
            command_policy: CommandPolicySettings::default(),
            auth: AuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            workspace: WorkspaceSettings::default(),
            llm: LlmSettings::default(),
            agents: BTreeMap::new(),
            runs: RunSettings::default(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_body_max_bytes: 1_048_576,
            request_timeout_seconds: 30,
            header_read_timeout_seconds: 10,
            max_connections: 1024,
            debug_routes: false,
            public_url: None,
            cors_origins: Vec::new(),
            cors_allow_credentials: false,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            min_connections: 0,
            connect_timeout_seconds: 5,
            sqlite_busy_timeout_ms: 5_000,
            sqlite_synchronous: agentd_store::SqliteSynchronous::Full,
            ready_timeout_ms: 1_000,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: None, filter: "info".into() }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// Taken as is.
    Text,
    /// A whole number.
    Integer,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Boolean,
    /// Comma-separated text items.
    List,
}

/// One `AGENTD_*` variable: its name, the TOML key it sets, how it is parsed.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// The dotted TOML key it overrides.
    pub key: &'static str,
    /// How its text is parsed.
    pub kind: EnvKind,
}

const fn var(name: &'static str, key: &'static str, kind: EnvKind) -> EnvVar {
    EnvVar { name, key, kind }
}

/// Every environment variable agentd reads, and the key it sets.
pub const ENV_VARS: &[EnvVar] = &[
    var("AGENTD_ENV", "env", EnvKind::Text),
    var("AGENTD_DATA_DIR", "data_dir", EnvKind::Text),
    var("AGENTD_SECRET_KEY", "secret_key", EnvKind::Text),
    var("AGENTD_SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds", EnvKind::Integer),
    var("AGENTD_SHUTDOWN_DELAY_SECONDS", "shutdown_delay_seconds", EnvKind::Integer),
    var("AGENTD_BIND", "http.bind", EnvKind::Text),
    var("AGENTD_REQUEST_BODY_MAX_BYTES", "http.request_body_max_bytes", EnvKind::Integer),
    var("AGENTD_REQUEST_TIMEOUT_SECONDS", "http.request_timeout_seconds", EnvKind::Integer),
    var("AGENTD_HEADER_READ_TIMEOUT_SECONDS", "http.header_read_timeout_seconds", EnvKind::Integer),
    var("AGENTD_MAX_CONNECTIONS", "http.max_connections", EnvKind::Integer),
    var("AGENTD_DEBUG_ROUTES", "http.debug_routes", EnvKind::Boolean),
    var("AGENTD_PUBLIC_URL", "http.public_url", EnvKind::Text),
    var("AGENTD_CORS_ORIGINS", "http.cors_origins", EnvKind::List),
    var("AGENTD_CORS_ALLOW_CREDENTIALS", "http.cors_allow_credentials", EnvKind::Boolean),
    var("AGENTD_ALLOWED_HOSTS", "http.allowed_hosts", EnvKind::List),
    var("AGENTD_TRUSTED_PROXIES", "http.trusted_proxies", EnvKind::List),
    var("AGENTD_DATABASE_URL", "database.url", EnvKind::Text),
    var("AGENTD_DATABASE_MAX_CONNECTIONS", "database.max_connections", EnvKind::Integer),
    var("AGENTD_DATABASE_MIN_CONNECTIONS", "database.min_connections", EnvKind::Integer),
    var(
        "AGENTD_DATABASE_CONNECT_TIMEOUT_SECONDS",
        "database.connect_timeout_seconds",
        EnvKind::Integer,
    ),
    var("AGENTD_DATABASE_BUSY_TIMEOUT_MS", "database.sqlite_busy_timeout_ms", EnvKind::Integer),
    var("AGENTD_DATABASE_SQLITE_SYNCHRONOUS", "database.sqlite_synchronous", EnvKind::Text),
    var("AGENTD_READY_TIMEOUT_MS", "database.ready_timeout_ms", EnvKind::Integer),
    var("AGENTD_LOG_FORMAT", "log.format", EnvKind::Text),
    var("AGENTD_LOG", "log.filter", EnvKind::Text),
    var("AGENTD_SANDBOX", "sandbox.mode", EnvKind::Text),
    var("AGENTD_SANDBOX_BWRAP", "sandbox.bwrap_path", EnvKind::Text),
    var("AGENTD_SANDBOX_SHELL", "sandbox.shell", EnvKind::Text),
    var("AGENTD_SANDBOX_UID", "sandbox.uid", EnvKind::Integer),
    var("AGENTD_SANDBOX_GID", "sandbox.gid", EnvKind::Integer),
    var("AGENTD_SANDBOX_CGROUP_ROOT", "sandbox.cgroup_root", EnvKind::Text),
    var("AGENTD_SANDBOX_CGROUP_VERSION", "sandbox.cgroup_version", EnvKind::Text),
    var("AGENTD_SANDBOX_CGROUP_PARENT", "sandbox.cgroup_parent", EnvKind::Text),
    var("AGENTD_SANDBOX_NETWORK", "sandbox.network", EnvKind::Boolean),
    var("AGENTD_SANDBOX_HIDE_PATHS", "sandbox.hide_paths", EnvKind::List),
    var("AGENTD_SANDBOX_PROTECTED_PATHS", "sandbox.protected_paths", EnvKind::List),
    var("AGENTD_SANDBOX_ENV_PASSTHROUGH", "sandbox.env_passthrough", EnvKind::List),
    var("AGENTD_SANDBOX_ADOPT_WORKSPACE", "sandbox.adopt_workspace", EnvKind::Boolean),
    var("AGENTD_SANDBOX_TIMEOUT_SECONDS", "sandbox.limits.wall_timeout_seconds", EnvKind::Integer),
    var(
        "AGENTD_SANDBOX_IDLE_TIMEOUT_SECONDS",
        "sandbox.limits.idle_timeout_seconds",
        EnvKind::Integer,
    ),
    var("AGENTD_SANDBOX_OUTPUT_MAX_BYTES", "sandbox.limits.output_max_bytes", EnvKind::Integer),
    var("AGENTD_SANDBOX_LOG_MAX_BYTES", "sandbox.limits.log_max_bytes", EnvKind::Integer),
    var("AGENTD_SANDBOX_MEMORY_MAX_BYTES", "sandbox.limits.memory_max_bytes", EnvKind::Integer),
    var("AGENTD_SANDBOX_PIDS_MAX", "sandbox.limits.pids_max", EnvKind::Integer),
    var("AGENTD_SANDBOX_CPU_MILLIS", "sandbox.limits.cpu_millis", EnvKind::Integer),
    var(
        "AGENTD_SANDBOX_FILE_SIZE_MAX_BYTES",
        "sandbox.limits.file_size_max_bytes",
        EnvKind::Integer,
    ),
    var("AGENTD_SANDBOX_OPEN_FILES_MAX", "sandbox.limits.open_files_max", EnvKind::Integer),
    var("AGENTD_SANDBOX_CPU_SECONDS_MAX", "sandbox.limits.cpu_seconds_max", EnvKind::Integer),
    var("AGENTD_COMMAND_POLICY_DEFAULTS", "command_policy.include_defaults", EnvKind::Boolean),
    var("AGENTD_COMMAND_POLICY_DEFAULT_DECISION", "command_policy.default_decision", EnvKind::Text),
    var("AGENTD_ACCESS_TOKEN_TTL_SECONDS", "auth.access_token_ttl_seconds", EnvKind::Integer),
    var("AGENTD_REFRESH_TOKEN_TTL_DAYS", "auth.refresh_token_ttl_days", EnvKind::Integer),
    var("AGENTD_LOGIN_MAX_FAILURES", "auth.login_max_failures", EnvKind::Integer),
    var("AGENTD_PASSWORD_HASH_MEMORY_KIB", "auth.password_hash_memory_kib", EnvKind::Integer),
    var("AGENTD_PASSWORD_HASH_ITERATIONS", "auth.password_hash_iterations", EnvKind::Integer),
    var("AGENTD_RATE_LIMIT_PER_MINUTE", "rate_limit.per_minute", EnvKind::Integer),
    var("AGENTD_RATE_LIMIT_RUNS_PER_MINUTE", "rate_limit.runs_per_minute", EnvKind::Integer),
    var("AGENTD_REDIS_URL", "rate_limit.redis_url", EnvKind::Text),
    var("AGENTD_REDIS_KEY_PREFIX", "rate_limit.redis_key_prefix", EnvKind::Text),
    var("AGENTD_WORKSPACE_ALLOWED_ROOTS", "workspace.allowed_roots", EnvKind::List),
    var("AGENTD_MAX_FILE_BYTES", "workspace.max_file_bytes", EnvKind::Integer),
    var("AGENTD_MAX_PROJECT_BYTES", "workspace.max_project_bytes", EnvKind::Integer),
    var("AGENTD_MAX_PROJECT_FILES", "workspace.max_project_files", EnvKind::Integer),
    var("AGENTD_WORKERS", "runs.workers", EnvKind::Integer),
    var("AGENTD_RUN_LEASE_SECONDS", "runs.lease_seconds", EnvKind::Integer),
    var("AGENTD_RESCUE_INTERVAL_SECONDS", "runs.rescue_interval_seconds", EnvKind::Integer),
    var("AGENTD_RUN_MAX_ATTEMPTS", "runs.max_attempts", EnvKind::Integer),
    var("AGENTD_RUN_RETRY_BASE_SECONDS", "runs.retry_base_seconds", EnvKind::Integer),
    var("AGENTD_CONVERSATION_TTL_HOURS", "runs.conversation_ttl_hours", EnvKind::Integer),
    var("AGENTD_RUN_RETENTION_DAYS", "runs.retention_days", EnvKind::Integer),
    var("AGENTD_APPROVAL_TTL_HOURS", "runs.approval_ttl_hours", EnvKind::Integer),
    var("AGENTD_LLM_BASE_URL", "llm.local.base_url", EnvKind::Text),
    var("AGENTD_LLM_MODEL", "llm.local.model", EnvKind::Text),
    var("AGENTD_LLM_API_KEY", "llm.local.api_key", EnvKind::Text),
];

/// Variables with the `AGENTD_` prefix that agentd itself does not read, and so does not warn
/// about: the config file path (read by the CLI) and those the test suite uses.
const NOT_SETTINGS: &[&str] = &["AGENTD_CONFIG"];
const NOT_SETTINGS_PREFIXES: &[&str] = &["AGENTD_TEST_"];

/// Values that must never be used as a production secret key.
const PLACEHOLDER_SECRETS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "secret",
    "secret-key",
    "your-secret-key",
    "your_secret_key",
    "supersecret",
    "development",
    "insecure",
    "password",
    "default",
    "example",
    "test",
    "xxx",
];

/// The secret key's minimum length in production, in bytes.
pub const MIN_SECRET_KEY_BYTES: usize = 32;

/// A configuration problem, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The environment variable (and TOML key) at fault, e.g. `AGENTD_BIND (http.bind)`, or the
    /// config file path when the file itself is unreadable.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }

    /// An error about the setting at a dotted TOML key, named by its environment variable too.
    fn at_key(key: &str, message: impl Into<String>) -> Self {
        Self::new(describe_key(key), message)
    }
}

/// `AGENTD_BIND (http.bind)` for a key that has a variable, the key alone otherwise.
fn describe_key(key: &str) -> String {
    ENV_VARS
        .iter()
        .find(|v| v.key == key)
        .map_or_else(|| key.to_owned(), |v| format!("{} ({})", v.name, v.key))
}

/// Settings as loaded, with what the loader noticed along the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub settings: Settings,
    /// `AGENTD_*` variables that were set but are not settings (probably typos).
    pub unknown_env: Vec<String>,
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the `AGENTD_*` entries of `env`, reads LLM
    /// API keys from `env` (the variables providers name, and `OPENAI_API_KEY`,
    /// `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` when no provider is configured), and validates the
    /// result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending key.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut table = match file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let mut unknown_env = Vec::new();
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for (name, value) in &env {
            let name = name.clone();
            if !name.starts_with("AGENTD_") {
                continue;
            }
            match ENV_VARS.iter().find(|v| v.name == name) {
                Some(var) => set_key(&mut table, var.key, env_value(var, value)?),
                None => {
                    let ignored = NOT_SETTINGS.contains(&name.as_str())
                        || NOT_SETTINGS_PREFIXES.iter().any(|p| name.starts_with(p));
                    if !ignored {
                        unknown_env.push(name);
                    }
                }
            }
        }
        unknown_env.sort();
        let mut settings = Self::from_table(table)?;
        settings.hide_data_dir_from_commands();
        settings.llm.apply_env(&env);
        settings.validate()?;
        Ok(Loaded { settings, unknown_env })
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(table).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().message().to_owned();
            ConfigError::at_key(&key, message)
        })
    }

    /// Adds the data directory (the database, keys, logs) to the paths the sandbox hides from
    /// commands; the loader does this, so it shows in `agentd config check`.
    pub fn hide_data_dir_from_commands(&mut self) {
        if !self.sandbox.hide_paths.contains(&self.data_dir) {
            self.sandbox.hide_paths.push(self.data_dir.clone());
        }
    }

    /// Checks the rules that span fields or depend on the environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.env == Environment::Production && self.sandbox.mode == SandboxMode::None {
            return Err(ConfigError::at_key(
                "sandbox.mode",
                "AGENTD_SANDBOX=none (commands without isolation) is refused when \
                 AGENTD_ENV=production",
            ));
        }
        if let Err(e) = self.sandbox.validate() {
            return Err(ConfigError::at_key(&format!("sandbox.{}", e.key), e.message));
        }
        if let Err(e) = CommandPolicy::from_settings(&self.command_policy) {
            let key = match e.origin {
                agentd_core::command_policy::RuleSource::Configured(i) => {
                    format!("command_policy.rules[{i}]")
                }
                agentd_core::command_policy::RuleSource::Default(_) => {
                    "command_policy.include_defaults".to_owned()
                }
            };
            return Err(ConfigError::new(key, e.to_string()));
        }
        if self.env == Environment::Production {
            check_production_secret(self.secret_key.as_ref())?;
            if self.http.debug_routes {
                return Err(ConfigError::at_key(
                    "http.debug_routes",
                    "debug routes are refused when AGENTD_ENV=production",
                ));
            }
        }
        self.validate_http()?;
        self.validate_runs()?;
        self.validate_auth()?;
        if let Some(url) = &self.rate_limit.redis_url
            && !(url.expose_secret().starts_with("redis://")
                || url.expose_secret().starts_with("rediss://"))
        {
            return Err(ConfigError::at_key(
                "rate_limit.redis_url",
                "must start with redis:// or rediss://",
            ));
        }
        if let Some(url) = &self.database.url
            && Backend::from_url(url.expose_secret()).is_none()
        {
            return Err(ConfigError::at_key(
                "database.url",
                "must start with sqlite:// or postgres:// (or postgresql://)",
            ));
        }
        let positive: [(&str, u64); 6] = [
            ("http.request_body_max_bytes", self.http.request_body_max_bytes as u64),
            ("http.request_timeout_seconds", self.http.request_timeout_seconds),
            ("http.header_read_timeout_seconds", self.http.header_read_timeout_seconds),
            ("http.max_connections", self.http.max_connections as u64),
            ("database.max_connections", u64::from(self.database.max_connections)),
            ("database.connect_timeout_seconds", self.database.connect_timeout_seconds),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::at_key(key, "must be greater than 0"));
        }
        let limits: [(&str, u64); 3] = [
            ("workspace.max_file_bytes", self.workspace.max_file_bytes),
            ("workspace.max_project_bytes", self.workspace.max_project_bytes),
            ("workspace.max_project_files", self.workspace.max_project_files),
        ];
        if let Some((key, _)) = limits.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::at_key(key, "must be greater than 0"));
        }
        self.workspace_config()?;
        if self.database.ready_timeout_ms == 0 {
            return Err(ConfigError::at_key("database.ready_timeout_ms", "must be greater than 0"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.filter) {
            return Err(ConfigError::at_key("log.filter", e.to_string()));
        }
        let routes = self.agent_routes();
        self.llm
            .validate(routes.iter().map(|(name, route)| (name.as_str(), route)))
            .map_err(|e| ConfigError::at_key(&e.key, e.message))?;
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.http.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::at_key("http.public_url", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(ConfigError::at_key(
                    "http.public_url",
                    "must be an http(s) URL with a host",
                ));
            }
        }
        for origin in &self.http.cors_origins {
            if origin != "*" && !is_origin(origin) {
                return Err(ConfigError::at_key(
                    "http.cors_origins",
                    format!("{origin:?} is not an origin such as https://console.example.com"),
                ));
            }
        }
        let wildcard = self.http.cors_origins.iter().any(|o| o == "*");
        if wildcard && self.http.cors_allow_credentials && self.env == Environment::Production {
            return Err(ConfigError::at_key(
                "http.cors_origins",
                "a wildcard origin with AGENTD_CORS_ALLOW_CREDENTIALS=true is refused in production",
            ));
        }
        agentd_api::client::TrustedProxies::parse(&self.http.trusted_proxies)
            .map_err(|e| ConfigError::at_key("http.trusted_proxies", e.to_string()))?;
        if let Some(host) = self.http.allowed_hosts.iter().find(|h| h.is_empty() || h.contains('/'))
        {
            return Err(ConfigError::at_key(
                "http.allowed_hosts",
                format!("{host:?} is not a host name"),
            ));
        }
        Ok(())
    }

    fn validate_runs(&self) -> Result<(), ConfigError> {
        let r = &self.runs;
        let positive: [(&str, u64); 5] = [
            ("runs.lease_seconds", r.lease_seconds),
            ("runs.approval_ttl_hours", r.approval_ttl_hours),
            ("runs.rescue_interval_seconds", r.rescue_interval_seconds),
            ("runs.max_attempts", u64::from(r.max_attempts)),
            ("runs.retention_days", r.retention_days),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::at_key(key, "must be greater than 0"));
        }
        if r.conversation_ttl_hours == 0 {
            return Err(ConfigError::at_key(
                "runs.conversation_ttl_hours",
                "must be greater than 0",
            ));
        }
        for (name, agent) in &self.agents {
            if agent.max_steps == Some(0) || agent.max_active_seconds == Some(0) {
                return Err(ConfigError::new(
                    format!("agents.{name}"),
                    "max_steps and max_active_seconds must be greater than 0",
                ));
            }
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::new(
                    format!("agents.{name}"),
                    "agent type names use letters, digits, _ and -",
                ));
            }
            if name == agentd_core::check::CHECKS_AGENT {
                return Err(ConfigError::new(
                    format!("agents.{name}"),
                    "`checks` is the built-in agent type of checks runs and cannot be configured",
                ));
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let a = &self.auth;
        if a.access_token_ttl_seconds == 0 {
            return Err(ConfigError::at_key(
                "auth.access_token_ttl_seconds",
                "must be greater than 0",
            ));
        }
        if a.refresh_token_ttl_days == 0 {
            return Err(ConfigError::at_key(
                "auth.refresh_token_ttl_days",
                "must be greater than 0",
            ));
        }
        if a.password_hash_iterations == 0 {
            return Err(ConfigError::at_key(
                "auth.password_hash_iterations",
                "must be greater than 0",
            ));
        }
        if a.password_hash_memory_kib < 8 {
            return Err(ConfigError::at_key("auth.password_hash_memory_kib", "must be at least 8"));
        }
        Ok(())
    }

    /// Whether agentd is reached over https (per `AGENTD_PUBLIC_URL`).
    #[must_use]
    pub fn https(&self) -> bool {
        self.http.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    /// The worker configuration these settings describe.
    #[must_use]
    pub fn runner_config(&self) -> agentd_runner::RunnerConfig {
        let r = &self.runs;
        agentd_runner::RunnerConfig {
            workers: r.workers,
            lease: Duration::from_secs(r.lease_seconds),
            rescue_interval: Duration::from_secs(r.rescue_interval_seconds),
            max_attempts: r.max_attempts,
            retry_base: Duration::from_secs(r.retry_base_seconds),
            conversation_ttl: Duration::from_secs(r.conversation_ttl_hours.saturating_mul(3600)),
            run_retention: Duration::from_secs(r.retention_days.saturating_mul(24 * 3600)),
            approval_ttl: Duration::from_secs(r.approval_ttl_hours.saturating_mul(3600)),
            profiles: agentd_runner::profile::resolve(
                self.agents.iter().map(|(name, a)| (name.clone(), a.overrides())).collect(),
            ),
            runs_dir: Some(self.data_dir.join("runs")),
            ..agentd_runner::RunnerConfig::default()
        }
    }

    /// The routes of the agent types that name a model.
    #[must_use]
    pub fn agent_routes(&self) -> BTreeMap<String, AgentRoute> {
        self.agents.iter().filter_map(|(name, a)| Some((name.clone(), a.route()?))).collect()
    }

    /// The log format: as configured, else JSON in production and pretty elsewhere.
    #[must_use]
    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or(match self.env {
            Environment::Production => LogFormat::Json,
            Environment::Development | Environment::Staging => LogFormat::Pretty,
        })
    }

    /// The database URL: as configured, else the SQLite file `agentd.db` in the data dir.
    #[must_use]
    pub fn database_url(&self) -> SecretString {
        self.database.url.clone().unwrap_or_else(|| {
            let path = self.data_dir.join("agentd.db");
            SecretString::from(format!("sqlite://{}", path.display()))
        })
    }

    /// The workspace configuration: the allowed roots resolved to their real paths, and the
    /// limits.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `AGENTD_WORKSPACE_ALLOWED_ROOTS` when a root is not an absolute
    /// path of an existing directory.
    pub fn workspace_config(&self) -> Result<WorkspaceConfig, ConfigError> {
        let allowed_roots = AllowedRoots::new(&self.workspace.allowed_roots)
            .map_err(|e| ConfigError::at_key("workspace.allowed_roots", e.to_string()))?;
        Ok(WorkspaceConfig {
            allowed_roots,
            limits: WorkspaceLimits {
                max_file_bytes: self.workspace.max_file_bytes,
                max_project_bytes: self.workspace.max_project_bytes,
                max_project_files: self.workspace.max_project_files,
            },
        })
    }

    /// The options the store opens the database with.
    #[must_use]
    pub fn database_options(&self) -> DatabaseOptions {
        DatabaseOptions {
            url: self.database_url(),
            max_connections: self.database.max_connections,
            min_connections: self.database.min_connections,
            connect_timeout: Duration::from_secs(self.database.connect_timeout_seconds),
            sqlite_busy_timeout: Duration::from_millis(self.database.sqlite_busy_timeout_ms),
            sqlite_synchronous: self.database.sqlite_synchronous,
        }
    }

    /// The effective configuration as TOML, every secret redacted: what `agentd config check`
    /// prints.
    ///
    /// # Errors
    /// Only if serialisation fails, which would be a bug.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

/// `scheme://host[:port]` with nothing after it.
fn is_origin(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.path() == "/"
            && !text.ends_with('/')
            && u.query().is_none()
    })
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let key = format!("config file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&key, e.to_string()))?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::new(&key, e.to_string()))
}

fn env_value(var: &EnvVar, raw: &str) -> Result<toml::Value, ConfigError> {
    let bad = |expected: &str| {
        ConfigError::new(describe_key(var.key), format!("expected {expected}, got {raw:?}"))
    };
    Ok(match var.kind {
        EnvKind::Text => toml::Value::String(raw.to_owned()),
        EnvKind::Integer => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| bad("a whole number"))?)
        }
        EnvKind::Boolean => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            _ => return Err(bad("true or false")),
        }),
        EnvKind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

/// Sets a dotted key in a TOML table, creating intermediate tables.
fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else { return };
        current = next;
    }
}

fn check_production_secret(secret: Option<&SecretString>) -> Result<(), ConfigError> {
    let key = describe_key("secret_key");
    let Some(secret) = secret else {
        return Err(ConfigError::new(key, "is required when AGENTD_ENV=production"));
    };
    let value = secret.expose_secret();
    if value.len() < MIN_SECRET_KEY_BYTES {
        return Err(ConfigError::new(
            key,
            format!("must be at least {MIN_SECRET_KEY_BYTES} bytes when AGENTD_ENV=production"),
        ));
    }
    if is_placeholder(value) {
        return Err(ConfigError::new(
            key,
            "is a placeholder value; generate one with `openssl rand -hex 32`",
        ));
    }
    Ok(())
}

/// A known placeholder, a placeholder repeated to length, or a single repeated character.
fn is_placeholder(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    let single_char = lower.chars().next().is_some_and(|c| lower.chars().all(|d| d == c));
    single_char
        || PLACEHOLDER_SECRETS.iter().any(|p| {
            let stripped = lower.replace(p, "");
            stripped.chars().all(|c| !c.is_ascii_alphanumeric())
        })
}

fn redact_secret<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("[redacted]"),
        None => s.serialize_none(),
    }
}

/// A database URL with its password (if any) replaced.
fn redact_url<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(url) => s.serialize_str(&redacted_url(url.expose_secret())),
        None => s.serialize_none(),
    }
}

/// `postgres://user:[redacted]@host/db` for a URL with a password; other URLs unchanged.
#[must_use]
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("[redacted]"));
            parsed.to_string().replace("%5Bredacted%5D", "[redacted]")
        }
        Ok(_) => url.to_owned(),
        Err(_) => "[unparseable URL redacted]".to_owned(),
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        })
    }
}

/// The settings as a flat map of dotted keys to redacted values, for tests and diagnostics.
#[must_use]
pub fn flatten(settings: &Settings) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(value) = toml::Value::try_from(settings) {
        walk("", &value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(None, env(pairs)).map(|l| l.settings)
    }

    #[test]
    fn defaults_need_no_configuration() {
        let s = load(&[]).unwrap();
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./agentd-data"));
        assert_eq!(s.env, Environment::Development);
        assert_eq!(s.http.request_body_max_bytes, 1_048_576);
        assert_eq!(s.shutdown_grace_seconds, 30);
        assert_eq!(s.log_format(), LogFormat::Pretty);
        assert_eq!(s.database_url().expose_secret(), "sqlite://./agentd-data/agentd.db");
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentd.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/agentd\"\n[http]\nbind = \"0.0.0.0:9000\"\nrequest_timeout_seconds = 5\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), env(&[("AGENTD_BIND", "127.0.0.1:9100")]))
            .unwrap()
            .settings;
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:9100");
        assert_eq!(s.data_dir, PathBuf::from("/srv/agentd"));
        assert_eq!(s.http.request_timeout_seconds, 5);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = load(&[("AGENTD_BIND", "not-an-address")]).unwrap_err();
        assert_eq!(err.key, "AGENTD_BIND (http.bind)");
        let err = load(&[("AGENTD_REQUEST_BODY_MAX_BYTES", "lots")]).unwrap_err();
        assert_eq!(err.key, "AGENTD_REQUEST_BODY_MAX_BYTES (http.request_body_max_bytes)");
        let err = load(&[("AGENTD_ENV", "prod")]).unwrap_err();
        assert_eq!(err.key, "AGENTD_ENV (env)");
        let err = load(&[("AGENTD_LOG", "info,[[[")]).unwrap_err();
        assert_eq!(err.key, "AGENTD_LOG (log.filter)");
        let err = load(&[("AGENTD_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.key, "AGENTD_DATABASE_URL (database.url)");
    }

    #[test]
    fn an_unknown_file_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentd.toml");
        std::fs::write(&path, "[http]\nbnid = \"0.0.0.0:9000\"\n").unwrap();
        let err = Settings::load(Some(&path), env(&[])).unwrap_err();
        assert!(err.to_string().contains("bnid"), "{err}");
    }

    #[test]
    fn unknown_agentd_variables_are_reported() {
        let loaded =
            Settings::load(None, env(&[("AGENTD_BNID", "x"), ("AGENTD_TEST_DATABASE_URL", "y")]))
                .unwrap();
        assert_eq!(loaded.unknown_env, vec!["AGENTD_BNID".to_owned()]);
    }

    #[test]
    fn production_requires_a_real_secret_key() {
        for secret in [None, Some("short"), Some(&*"changeme".repeat(5)), Some(&*"a".repeat(40))] {
            let mut pairs = vec![("AGENTD_ENV", "production")];
            if let Some(s) = secret {
                pairs.push(("AGENTD_SECRET_KEY", s));
            }
            let err = load(&pairs).unwrap_err();
            assert!(err.to_string().contains("AGENTD_SECRET_KEY"), "{secret:?}: {err}");
        }
        let good = "3f9c2b7d1e8a4c6f0b5d9e2a7c1f4b8d3e6a9c2f5b8e1d4a";
        let s = load(&[("AGENTD_ENV", "production"), ("AGENTD_SECRET_KEY", good)]).unwrap();
        assert_eq!(s.log_format(), LogFormat::Json);
    }

    #[test]
    fn browser_settings_are_validated() {
        let err =
            load(&[("AGENTD_CORS_ORIGINS", "https://ok.example, not an origin")]).unwrap_err();
        assert!(err.key.starts_with("AGENTD_CORS_ORIGINS"), "{err}");
        let err = load(&[("AGENTD_CORS_ORIGINS", "https://x.example/path")]).unwrap_err();
        assert!(err.key.starts_with("AGENTD_CORS_ORIGINS"), "{err}");
        let err = load(&[("AGENTD_TRUSTED_PROXIES", "10.0.0.0/8,proxy")]).unwrap_err();
        assert!(err.key.starts_with("AGENTD_TRUSTED_PROXIES"), "{err}");
        let err = load(&[("AGENTD_PUBLIC_URL", "ftp://x")]).unwrap_err();
        assert!(err.key.starts_with("AGENTD_PUBLIC_URL"), "{err}");
        let err = load(&[("AGENTD_REDIS_URL", "http://x")]).unwrap_err();
        assert!(err.key.starts_with("AGENTD_REDIS_URL"), "{err}");
        let s = load(&[
            ("AGENTD_CORS_ORIGINS", "https://a.example, http://localhost:3000"),
            ("AGENTD_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ])
        .unwrap();
        assert_eq!(s.http.cors_origins, ["https://a.example", "http://localhost:3000"]);
        let good = "3f9c2b7d1e8a4c6f0b5d9e2a7c1f4b8d3e6a9c2f5b8e1d4a";
        let err = load(&[
            ("AGENTD_ENV", "production"),
            ("AGENTD_SECRET_KEY", good),
            ("AGENTD_CORS_ORIGINS", "*"),
            ("AGENTD_CORS_ALLOW_CREDENTIALS", "true"),
        ])
        .unwrap_err();
        assert!(err.key.starts_with("AGENTD_CORS_ORIGINS"), "{err}");
        assert!(
            load(&[("AGENTD_CORS_ORIGINS", "*"), ("AGENTD_CORS_ALLOW_CREDENTIALS", "true")])
                .is_ok()
        );
    }

    #[test]
    fn production_refuses_debug_routes() {
        let good = "3f9c2b7d1e8a4c6f0b5d9e2a7c1f4b8d3e6a9c2f5b8e1d4a";
        let err = load(&[
            ("AGENTD_ENV", "production"),
            ("AGENTD_SECRET_KEY", good),
            ("AGENTD_DEBUG_ROUTES", "true"),
        ])
        .unwrap_err();
        assert!(err.key.starts_with("AGENTD_DEBUG_ROUTES"));
    }

    #[test]
    fn the_sandbox_defaults_isolate_with_a_one_minute_timeout_and_a_one_mebibyte_cap() {
        let s = load(&[]).unwrap();
        assert_eq!(s.sandbox.mode, SandboxMode::Bwrap);
        assert!(!s.sandbox.network);
        assert_eq!(s.sandbox.limits.wall_timeout_seconds, 60);
        assert_eq!(s.sandbox.limits.output_max_bytes, 1 << 20);
        assert!(s.sandbox.limits.pids_max <= 256);
        assert!(s.command_policy.include_defaults);
    }

    #[test]
    fn the_data_dir_is_hidden_from_commands() {
        let s = load(&[("AGENTD_DATA_DIR", "/srv/agentd-data")]).unwrap();
        assert!(s.sandbox.hide_paths.contains(&PathBuf::from("/srv/agentd-data")));
        assert!(s.sandbox.hide_paths.contains(&PathBuf::from("/home")));
    }

    #[test]
    fn production_refuses_an_unsandboxed_mode_naming_the_variable() {
        let good = "3f9c2b7d1e8a4c6f0b5d9e2a7c1f4b8d3e6a9c2f5b8e1d4a";
        let err = load(&[
            ("AGENTD_ENV", "production"),
            ("AGENTD_SECRET_KEY", good),
            ("AGENTD_SANDBOX", "none"),
        ])
        .unwrap_err();
        assert_eq!(err.key, "AGENTD_SANDBOX (sandbox.mode)");
        assert!(err.to_string().contains("AGENTD_SANDBOX=none"), "{err}");
        assert!(!err.to_string().contains('\n'));
        let s = load(&[("AGENTD_SANDBOX", "none")]).unwrap();
        assert_eq!(s.sandbox.mode, SandboxMode::None);
    }

    #[test]
    fn bad_sandbox_values_name_their_variable() {
        let cases = [
            ("AGENTD_SANDBOX", "docker", "AGENTD_SANDBOX (sandbox.mode)"),
            ("AGENTD_SANDBOX_UID", "0", "AGENTD_SANDBOX_UID (sandbox.uid)"),
            ("AGENTD_SANDBOX_PIDS_MAX", "0", "AGENTD_SANDBOX_PIDS_MAX (sandbox.limits.pids_max)"),
            (
                "AGENTD_SANDBOX_TIMEOUT_SECONDS",
                "0",
                "AGENTD_SANDBOX_TIMEOUT_SECONDS (sandbox.limits.wall_timeout_seconds)",
            ),
            (
                "AGENTD_SANDBOX_ENV_PASSTHROUGH",
                "LANG,OPENAI_API_KEY",
                "AGENTD_SANDBOX_ENV_PASSTHROUGH (sandbox.env_passthrough)",
            ),
            (
                "AGENTD_SANDBOX_CGROUP_VERSION",
                "v3",
                "AGENTD_SANDBOX_CGROUP_VERSION (sandbox.cgroup_version)",
            ),
        ];
        for (name, value, key) in cases {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.key, key, "{name}={value}: {err}");
        }
        let s = load(&[("AGENTD_SANDBOX_HIDE_PATHS", "/srv/secrets, /opt/keys")]).unwrap();
        assert!(s.sandbox.hide_paths.contains(&PathBuf::from("/opt/keys")));
    }

    #[test]
    fn a_command_rule_whose_example_fails_is_named_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentd.toml");
        std::fs::write(
            &path,
            "[command_policy]\ndefault_decision = \"allow\"\n\n[[command_policy.rules]]\n\
             name = \"ask-before-push\"\ndecision = \"prompt\"\nprefix = \"git push\"\n\
             match = [\"git push origin main\", \"git pull\"]\n",
        )
        .unwrap();
        let err = Settings::load(Some(&path), env(&[])).unwrap_err();
        assert_eq!(err.key, "command_policy.rules[0]");
        assert!(
            err.message.contains("ask-before-push") && err.message.contains("git pull"),
            "{err}"
        );

        std::fs::write(
            &path,
            "[[command_policy.rules]]\nname = \"ask-before-push\"\ndecision = \"prompt\"\n\
             prefix = \"git push\"\nmatch = [\"git push origin main\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), env(&[])).unwrap().settings;
        let policy = CommandPolicy::from_settings(&s.command_policy).unwrap();
        assert_eq!(policy.evaluate("git push").decision, agentd_core::Decision::Prompt);
    }

    #[test]
    fn secrets_are_redacted_in_the_printed_configuration() {
        let s = load(&[
            ("AGENTD_SECRET_KEY", "very-secret-value-0123456789abcdef"),
            ("AGENTD_DATABASE_URL", "postgres://agentd:hunter2@db.internal:5432/agentd"),
        ])
        .unwrap();
        let printed = s.to_redacted_toml().unwrap();
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("postgres://agentd:[redacted]@db.internal:5432/agentd"));
        let flat = flatten(&s);
        assert_eq!(flat.get("secret_key").map(String::as_str), Some("\"[redacted]\""));
    }

    #[test]
    fn workspace_limits_default_to_one_mib_a_hundred_mib_and_ten_thousand_files() {
        let s = load(&[]).unwrap();
        let config = s.workspace_config().unwrap();
        assert_eq!(config.limits.max_file_bytes, 1_048_576);
        assert_eq!(config.limits.max_project_bytes, 104_857_600);
        assert_eq!(config.limits.max_project_files, 10_000);
        assert!(!config.allowed_roots.is_enabled(), "directory workspaces are off by default");
        let s = load(&[
            ("AGENTD_MAX_FILE_BYTES", "10"),
            ("AGENTD_MAX_PROJECT_BYTES", "100"),
            ("AGENTD_MAX_PROJECT_FILES", "3"),
        ])
        .unwrap();
        let limits = s.workspace_config().unwrap().limits;
        assert_eq!(
            (limits.max_file_bytes, limits.max_project_bytes, limits.max_project_files),
            (10, 100, 3)
        );
        let err = load(&[("AGENTD_MAX_PROJECT_FILES", "0")]).unwrap_err();
        assert_eq!(err.key, "AGENTD_MAX_PROJECT_FILES (workspace.max_project_files)");
    }

    #[test]
    fn allowed_roots_are_a_comma_separated_list_of_existing_absolute_directories() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let list = format!("{}, {}", a.path().display(), b.path().display());
        let s = load(&[("AGENTD_WORKSPACE_ALLOWED_ROOTS", &list)]).unwrap();
        assert_eq!(s.workspace.allowed_roots, [a.path().to_owned(), b.path().to_owned()]);
        let roots = s.workspace_config().unwrap().allowed_roots;
        assert_eq!(roots.roots().len(), 2);

        let key = "AGENTD_WORKSPACE_ALLOWED_ROOTS (workspace.allowed_roots)";
        let err = load(&[("AGENTD_WORKSPACE_ALLOWED_ROOTS", "relative/dir")]).unwrap_err();
        assert_eq!(err.key, key);
        assert!(err.message.contains("absolute"), "{err}");
        let missing = a.path().join("missing");
        let err =
            load(&[("AGENTD_WORKSPACE_ALLOWED_ROOTS", missing.to_str().unwrap())]).unwrap_err();
        assert_eq!(err.key, key);
        let file = a.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = load(&[("AGENTD_WORKSPACE_ALLOWED_ROOTS", file.to_str().unwrap())]).unwrap_err();
        assert_eq!(err.key, key);
        assert!(err.message.contains("not a directory"), "{err}");
    }

    #[test]
    fn every_variable_maps_to_a_real_key() {
        let flat_keys: Vec<String> = {
            let s = Settings {
                secret_key: Some(SecretString::from("x")),
                database: DatabaseSettings {
                    url: Some(SecretString::from("sqlite://x")),
                    ..DatabaseSettings::default()
                },
                log: LogSettings { format: Some(LogFormat::Json), ..LogSettings::default() },
                http: HttpSettings {
                    public_url: Some("https://x".into()),
                    ..HttpSettings::default()
                },
                rate_limit: RateLimitSettings {
                    redis_url: Some(SecretString::from("redis://x")),
                    ..RateLimitSettings::default()
                },
                llm: LlmSettings {
                    local: agentd_llm::config::LocalServerSettings {
                        base_url: Some("http://127.0.0.1:11434/v1".into()),
                        model: Some("m".into()),
                        api_key: Some(SecretString::from("k")),
                    },
                    ..LlmSettings::default()
                },
                ..Settings::default()
            };
            flatten(&s).into_keys().collect()
        };
        for var in ENV_VARS {
            assert!(flat_keys.iter().any(|k| k == var.key), "{} -> {}", var.name, var.key);
        }
    }
}

#[cfg(test)]
mod llm_tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn with_file(text: &str, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentd.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), env(pairs)).map(|l| l.settings)
    }

    const FILE: &str = r#"
[llm.providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
timeout_seconds = 120

[llm.providers.anthropic]
kind = "anthropic"
api_key_env = "ANTHROPIC_API_KEY"

[llm.models."openai/gpt-4o"]
context_window = 128000
price = { input = 2.5, output = 10.0, cached_input = 1.25 }

[agents.code]
model = "openai/gpt-4o"
fallbacks = ["anthropic/claude-sonnet-4-5"]
"#;

    #[test]
    fn the_documented_llm_configuration_loads_with_keys_from_the_environment() {
        let s = with_file(
            FILE,
            &[("OPENAI_API_KEY", "sk-live-abc"), ("ANTHROPIC_API_KEY", "sk-ant-xyz")],
        )
        .unwrap();
        let key = s.llm.providers["openai"].api_key.as_ref().map(|k| k.expose_secret().to_owned());
        assert_eq!(key.as_deref(), Some("sk-live-abc"));
        let price = s.llm.models["openai/gpt-4o"].price.unwrap();
        assert_eq!(price.cached_input.map(|p| p.to_string()).as_deref(), Some("1.25"));
        let route = &s.agent_routes()["code"];
        assert_eq!(route.fallbacks, ["anthropic/claude-sonnet-4-5"]);
        let printed = s.to_redacted_toml().unwrap();
        assert!(!printed.contains("sk-live-abc") && !printed.contains("sk-ant-xyz"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn without_an_llm_section_the_environment_configures_providers() {
        let s = Settings::load(None, env(&[("ANTHROPIC_API_KEY", "k"), ("GEMINI_API_KEY", "g")]))
            .unwrap()
            .settings;
        assert_eq!(s.llm.default_model.as_deref(), Some("anthropic/claude-sonnet-4-5"));
        let s = Settings::load(
            None,
            env(&[
                ("AGENTD_LLM_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("AGENTD_LLM_MODEL", "qwen"),
                ("AGENTD_LLM_API_KEY", "local-secret"),
            ]),
        )
        .unwrap()
        .settings;
        assert_eq!(s.llm.default_model.as_deref(), Some("local/qwen"));
        assert!(!s.to_redacted_toml().unwrap().contains("local-secret"));
        let s = Settings::load(None, env(&[])).unwrap().settings;
        assert!(s.llm.providers.is_empty(), "no provider: agents fail with no_llm_configured");
    }

    #[test]
    fn llm_configuration_errors_name_their_key() {
        let err = with_file("[llm.providers.x]\nkind = \"mistral\"\n", &[]).unwrap_err();
        assert!(err.key.contains("llm.providers.x.kind"), "{err}");
        let err = with_file(&format!("{FILE}\n[agents.review]\nmodel = \"azure/gpt-4o\"\n"), &[])
            .unwrap_err();
        assert_eq!(err.key, "agents.review.model");
        let bad_price = FILE.replace("output = 10.0", "output = -1");
        let err = with_file(&bad_price, &[]).unwrap_err();
        assert_eq!(err.key, "llm.models.\"openai/gpt-4o\".price.output");
        let err = with_file("[agents.code]\nmodle = \"x\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("modle"), "{err}");
        let err = with_file("[agents.checks]\nmax_steps = 3\n", &[]).unwrap_err();
        assert_eq!(err.key, "agents.checks");
    }
}

#[cfg(test)]
mod docs_tests {
    use super::ENV_VARS;

    #[test]
    fn every_variable_is_documented_with_its_key() {
        let doc = include_str!("../../../docs/configuration.md");
        for var in ENV_VARS {
            let row = format!("| `{}` | `{}` |", var.name, var.key);
            assert!(doc.contains(&row), "docs/configuration.md lacks the row for {}", var.name);
        }
    }
}
