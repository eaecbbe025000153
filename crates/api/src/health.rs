//! `GET /health` (liveness) and `GET /health/ready` (readiness).

use std::time::Instant;

use agentd_protocol::{
    ErrorDetail, ErrorEnvelope, Health, Readiness, ReadinessCheck, SandboxSummary,
    SystemCapabilities,
};
use axum::extract::State;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// The agentd version, reported by both endpoints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Liveness: the process answers. Touches no dependency, so a database outage never makes an
/// orchestrator restart a healthy process.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "health",
    responses((status = 200, description = "The process is alive.", body = Health)),
)]
pub async fn health() -> ApiJson<Health> {
    ApiJson(Health { status: "ok".into(), version: VERSION.into() })
}

/// Readiness: every dependency answers within the readiness timeout and the server is not
/// draining. The sandbox probe's result is shown but does not decide readiness: without a
/// sandbox the API and runs still work, and only command tools are refused
/// (`sandbox_unavailable`), which a load balancer cannot fix by routing elsewhere.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready: a dependency is failing (named in `details`) or \
            the server is shutting down.", body = ErrorEnvelope),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> ApiResult<ApiJson<Readiness>> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::Unavailable {
            message: "not ready: agentd is shutting down".into(),
            details: vec![ErrorDetail::field("server", "draining")],
            source: None,
        });
    }
    let started = Instant::now();
    let outcome = tokio::time::timeout(state.config.ready_timeout, state.store.ping()).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(Ok(())) => Ok(ApiJson(Readiness {
            status: "ready".into(),
            version: VERSION.into(),
            checks: vec![ReadinessCheck {
                name: "database".into(),
                status: "ok".into(),
                latency_ms,
            }],
            sandbox: SandboxSummary {
                mode: state.sandbox.capabilities().mode.to_string(),
                available: state.sandbox.is_available(),
            },
        })),
        Ok(Err(err)) => Err(ApiError::Unavailable {
            message: "not ready: the database is unreachable".into(),
            details: vec![ErrorDetail::field("database", "unreachable")],
            source: Some(Box::new(err)),
        }),
        Err(_elapsed) => Err(ApiError::Unavailable {
            message: "not ready: the database did not answer in time".into(),
            details: vec![ErrorDetail::field(
                "database",
                format!("no answer within {} ms", state.config.ready_timeout.as_millis()),
            )],
            source: None,
        }),
    }
}

/// What the start-up probe found: the sandbox commands run in (bubblewrap, namespaces,
/// seccomp, cgroups, the uid, a trial command), for operators and clients deciding whether
/// command tools will work.
#[utoipa::path(
    get,
    path = "/v1/system/capabilities",
    tag = "system",
    operation_id = "system_capabilities",
    responses(
        (status = 200, description = "The capabilities of this server.", body = SystemCapabilities),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn capabilities(
    State(state): State<AppState>,
    crate::auth::middleware::Caller(_caller): crate::auth::middleware::Caller,
) -> ApiResult<ApiJson<SystemCapabilities>> {
    let sandbox = serde_json::to_value(state.sandbox.capabilities())
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(ApiJson(SystemCapabilities { sandbox }))
}
