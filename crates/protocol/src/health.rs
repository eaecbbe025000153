//! Liveness and readiness bodies.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /health`: the process is alive. Touches no dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The agentd version.
    pub version: String,
}

/// `GET /health/ready` when every dependency answers: 200 with this body. When one does not, the
/// response is a 503 `service_unavailable` error envelope whose details name the failing checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// The agentd version.
    pub version: String,
    /// One entry per dependency checked.
    pub checks: Vec<ReadinessCheck>,
    /// What the sandbox probe found at start-up. An unavailable sandbox does not make the
    /// server unready (only command tools are refused, with `sandbox_unavailable`); the full
    /// report is at `GET /v1/system/capabilities`.
    pub sandbox: SandboxSummary,
}

/// The sandbox as readiness shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxSummary {
    /// `bwrap` or `none` (`AGENTD_SANDBOX`).
    pub mode: String,
    /// Whether commands can run.
    pub available: bool,
}

/// `GET /v1/system/capabilities`: what this server can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemCapabilities {
    /// The sandbox probe's report: `mode`, `available`, `reasons`, `bwrap`, `user_namespaces`,
    /// `seccomp`, `cgroup`, `landlock_abi`, `uid`, `gid`, `network_default`, `trial`,
    /// `probe_duration_ms` (see `docs/sandbox.md`).
    #[schema(value_type = Object)]
    pub sandbox: serde_json::Value,
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadinessCheck {
    /// The dependency: `database`, ...
    pub name: String,
    /// `ok` or `failing`.
    pub status: String,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
}
