//! The `checks` agent type: a run that executes its project's checks instead of a model's tool
//! loop (`POST /v1/projects/{id}/checks` starts one).
//!
//! Each check is a journal step (`check.<kind>`) with a `check.started` and a `check.completed`
//! event; a completed check is read back on replay, never run again, and a check interrupted by
//! a crash runs again (checks are meant to be repeatable). Full logs are stored as run blobs.
//! The run succeeds when every check has a result, whatever the results: the statuses are in
//! `result.checks`.

use std::path::Path;
use std::sync::atomic::Ordering;

use agentd_checks::{CheckResult, CheckStatus, Checker, LogStore, PlannedCheck};
use agentd_core::check::CheckKind;
use agentd_core::run::{
    Finish, Lease, NewEvent, Run, RunError, RunStatus, Step, StepKind, StepStatus, event,
};
use agentd_core::{Store, StoreError};
use async_trait::async_trait;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::agent::{Outcome, Progress};
use crate::pool::RunnerDeps;

/// Why checks cannot run without a working directory (a managed project on a node without a
/// runs directory).
const NO_DIRECTORY: &str = "the project has no working directory on this node, so its checks \
    cannot run";

/// The kinds a checks run was asked for (`input.context.kinds`; all when absent).
fn requested_kinds(run: &Run) -> Result<Vec<CheckKind>, String> {
    let Some(kinds) = run.input.context.as_ref().and_then(|c| c.get("kinds")) else {
        return Ok(CheckKind::ALL.to_vec());
    };
    let kinds: Vec<CheckKind> =
        serde_json::from_value(kinds.clone()).map_err(|e| format!("invalid kinds: {e}"))?;
    if kinds.is_empty() {
        return Err("no check kinds were asked for".into());
    }
    Ok(agentd_checks::dedup(kinds))
}

struct RunBlobs<'a> {
    store: &'a dyn Store,
    lease: &'a Lease,
}

#[async_trait]
impl LogStore for RunBlobs<'_> {
    async fn store_log(&self, _kind: CheckKind, content: Vec<u8>) -> Result<String, String> {
        self.store
            .put_run_blob(self.lease, content)
            .await
            .map(|id| id.to_string())
            .map_err(|e| e.to_string())
    }
}

fn now() -> OffsetDateTime {
    agentd_core::clock::truncate_to_micros(OffsetDateTime::now_utc())
}

fn failed(error_type: &str, message: impl Into<String>) -> Outcome {
    Outcome::Finish(Finish::Done {
        status: RunStatus::Failed,
        result: None,
        error: Some(RunError::new(error_type, message)),
    })
}

fn store_failure(err: StoreError) -> Outcome {
    match err {
        StoreError::LeaseLost => Outcome::LeaseLost,
        other => Outcome::Finish(Finish::Retry {
            after: std::time::Duration::from_secs(5),
            error: RunError::new("store_unavailable", format!("the store failed: {other}")),
        }),
    }
}

/// Runs one attempt of a checks run.
pub(crate) async fn attempt(
    deps: &RunnerDeps,
    run: &Run,
    lease: &Lease,
    dir: Option<&Path>,
    cancel: &CancellationToken,
    stop: &CancellationToken,
    progress: &Progress,
) -> Outcome {
    let kinds = match requested_kinds(run) {
        Ok(k) => k,
        Err(message) => return failed("invalid_input", message),
    };
    let Some(project_id) = run.project_id else {
        return failed("invalid_input", "a checks run needs a project");
    };
    let project = match deps.store.project(None, project_id).await {
        Ok(p) => p,
        Err(StoreError::NotFound { .. }) => {
            return failed("project_not_found", "the run's project was deleted");
        }
        Err(err) => return store_failure(err),
    };
    let dir = dir.ok_or(NO_DIRECTORY);
    let journal = match deps.store.steps(run.id).await {
        Ok(j) => j,
        Err(err) => return store_failure(err),
    };
    let checker = Checker::new(deps.sandbox.clone());
    let plan = checker.plan(dir, &project.settings, &kinds).await;
    let logs = RunBlobs { store: deps.store.as_ref(), lease };
    let mut results: Vec<Value> = Vec::with_capacity(plan.len());
    for (index, check) in plan.iter().enumerate() {
        let seq = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let done = journal
            .iter()
            .find(|s| s.seq == seq && s.status == StepStatus::Completed && s.output.is_some());
        if let Some(step) = done {
            results.push(step.output.clone().unwrap_or_default());
            continue;
        }
        if cancel.is_cancelled() {
            return Outcome::Finish(Finish::Done {
                status: RunStatus::Cancelled,
                result: None,
                error: Some(RunError::new("cancelled", "the run was cancelled")),
            });
        }
        if stop.is_cancelled() {
            return Outcome::Finish(Finish::Release);
        }
        let percent = u8::try_from(index * 100 / plan.len().max(1)).unwrap_or(99);
        progress.percent.store(percent, Ordering::Relaxed);
        if let Ok(mut s) = progress.step.lock() {
            *s = format!("check {}", check.kind);
        }
        let result = match run_check(deps, &checker, lease, seq, check, dir, cancel, &logs).await {
            Ok(r) => r,
            Err(err) => return store_failure(err),
        };
        results.push(result);
    }
    if cancel.is_cancelled() {
        return Outcome::Finish(Finish::Done {
            status: RunStatus::Cancelled,
            result: None,
            error: Some(RunError::new("cancelled", "the run was cancelled")),
        });
    }
    Outcome::Finish(Finish::Done {
        status: RunStatus::Succeeded,
        result: Some(result_of(results)),
        error: None,
    })
}

/// Runs one check as a journal step and returns its result as stored.
#[allow(clippy::too_many_arguments)]
async fn run_check(
    deps: &RunnerDeps,
    checker: &Checker,
    lease: &Lease,
    seq: u32,
    check: &PlannedCheck,
    dir: Result<&std::path::Path, &str>,
    cancel: &CancellationToken,
    logs: &RunBlobs<'_>,
) -> Result<Value, StoreError> {
    let (command, source) = match &check.command {
        Ok(c) => (Some(c.line.clone()), serde_json::to_value(&c.source).ok()),
        Err(_) => (None, None),
    };
    let mut step = Step {
        seq,
        kind: StepKind::Tool,
        name: format!("check.{}", check.kind),
        status: StepStatus::Started,
        side_effects: false,
        input: json!({"check": check.kind, "command": command, "source": source}),
        output: None,
        attempt: lease.attempt,
        started_at: now(),
        completed_at: None,
    };
    deps.store
        .record_step(
            lease,
            step.clone(),
            None,
            vec![NewEvent::new(
                event::CHECK_STARTED,
                json!({"step": seq, "check": check.kind, "command": command, "source": source}),
            )],
        )
        .await?;
    let result: CheckResult = checker.run(check, dir, cancel, Some(logs)).await;
    let output = serde_json::to_value(&result).unwrap_or_default();
    step.status = StepStatus::Completed;
    step.output = Some(output.clone());
    step.completed_at = Some(now());
    deps.store
        .record_step(
            lease,
            step,
            None,
            vec![NewEvent::new(
                event::CHECK_COMPLETED,
                json!({
                    "step": seq,
                    "check": result.kind,
                    "status": result.status,
                    "exit_code": result.exit_code,
                    "duration_ms": result.duration_ms,
                    "counts": result.counts,
                    "reason": result.reason,
                }),
            )],
        )
        .await?;
    Ok(output)
}

/// The run's result: every check's result, and how many ended each way.
fn result_of(checks: Vec<Value>) -> Value {
    let mut tally = serde_json::Map::new();
    for status in
        [CheckStatus::Passed, CheckStatus::Failed, CheckStatus::TimedOut, CheckStatus::Unavailable]
    {
        let n = checks.iter().filter(|c| c["status"] == status.as_str()).count();
        tally.insert(status.as_str().to_owned(), json!(n));
    }
    let passed = !checks.is_empty() && checks.iter().all(|c| c["status"] == "passed");
    json!({"passed": passed, "summary": tally, "checks": checks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_passes_only_when_every_check_passed() {
        let r = result_of(vec![json!({"status": "passed"}), json!({"status": "unavailable"})]);
        assert_eq!(r["passed"], false);
        assert_eq!(r["summary"]["passed"], 1);
        assert_eq!(r["summary"]["unavailable"], 1);
        assert_eq!(r["summary"]["timed_out"], 0);
        assert_eq!(result_of(vec![json!({"status": "passed"})])["passed"], true);
        assert_eq!(result_of(vec![])["passed"], false);
    }
}
