//! Runs parked on an approval, arranged through the store (no model needed).

use std::time::Duration;

use agentd_core::RunId;
use agentd_core::Store;
use agentd_core::approval::{Approval, NewApproval, Risk};
use agentd_core::run::{Finish, Lease, RunStatus};
use serde_json::Value;
use time::OffsetDateTime;

/// The worker name fixtures claim runs under.
pub const FIXTURE_WORKER: &str = "fixture-worker";

/// Claims every claimable run as [`FIXTURE_WORKER`] and parks each on an approval for a
/// `run_terminal` call (`command`, grant key `command`) that expires in `ttl` (negative: already
/// expired). Servers under test should run no workers of their own (`runs.workers = 0`), or they
/// may take the runs first. Returns the approvals, one per run parked.
pub async fn park_all(store: &dyn Store, command: &str, ttl: time::Duration) -> Vec<Approval> {
    let mut parked = Vec::new();
    loop {
        let runs = store.claim_runs(FIXTURE_WORKER, 100, Duration::from_secs(300)).await.unwrap();
        if runs.is_empty() {
            return parked;
        }
        for run in runs {
            parked.push(park(store, run.id, run.attempt, command, ttl).await);
        }
    }
}

/// Parks the run `run_id` (claimed as [`FIXTURE_WORKER`] at `attempt`) on an approval.
pub async fn park(
    store: &dyn Store,
    run_id: RunId,
    attempt: u32,
    command: &str,
    ttl: time::Duration,
) -> Approval {
    let lease = Lease { run_id, attempt, worker: FIXTURE_WORKER.into() };
    let arguments: Value = serde_json::json!({"command": command});
    let approval = store
        .request_approval(
            &lease,
            NewApproval {
                call_id: format!("call-{run_id}"),
                tool: "run_terminal".into(),
                arguments,
                risk: Risk::Medium,
                reason: "a shell command no rule allows".into(),
                grant_key: Some(command.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
                expires_at: OffsetDateTime::now_utc() + ttl,
            },
        )
        .await
        .unwrap();
    let after = store.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    assert_eq!(after.status, RunStatus::WaitingApproval);
    approval
}
