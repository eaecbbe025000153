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
