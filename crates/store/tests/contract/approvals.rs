use std::sync::Arc;
use std::time::Duration;

use agentd_core::approval::{ApprovalStatus, Decided, Decision, GrantScope, NewApproval, Risk};
use agentd_core::page::PageRequest;
use agentd_core::project::NewProject;
use agentd_core::run::{Created, Finish, Lease, NewRun, Run, RunInput, RunStatus, event};
use agentd_core::user::{NewUser, Role, User};
use agentd_core::{ProjectId, StoreError};
use agentd_store::Database;
use serde_json::json;
use time::OffsetDateTime;

use crate::contract;

const LEASE: Duration = Duration::from_secs(30);

async fn user(db: &Database, email: &str) -> User {
    db.store()
        .create_user(NewUser { email: email.into(), password_hash: "h".into(), role: Role::Member })
        .await
        .unwrap()
}

async fn project(db: &Database, owner: &User) -> ProjectId {
    db.store().create_project(NewProject::managed(owner.id, "p")).await.unwrap().id
}

/// A run of `owner`, claimed by worker `w`.
async fn claimed(db: &Database, owner: &User, project: Option<ProjectId>) -> (Run, Lease) {
    let created = db
        .store()
        .create_run(NewRun {
            owner_id: owner.id,
            project_id: project,
            conversation_id: None,
            agent: "code".into(),
            input: RunInput { task: "do it".into(), context: None },
            idempotency_key: None,
            max_attempts: 3,
            reject_if_busy: false,
        })
        .await
        .unwrap();
    let Created::New(run) = created else { panic!("expected a new run") };
    let claimed = db.store().claim_runs("w", 1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, run.id);
    let run = claimed.into_iter().next().unwrap();
    let lease = Lease { run_id: run.id, attempt: run.attempt, worker: "w".into() };
    (run, lease)
}

fn ask(call: &str, command: &str, ttl: time::Duration) -> NewApproval {
    NewApproval {
        call_id: call.into(),
        tool: "run_terminal".into(),
        arguments: json!({"command": command, "timeout_seconds": 60}),
        risk: Risk::Medium,
        reason: "no rule allows this command".into(),
        grant_key: Some(command.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
        expires_at: OffsetDateTime::now_utc() + ttl,
    }
}

const DAY: time::Duration = time::Duration::DAY;

async fn event_types(db: &Database, run: &Run) -> Vec<String> {
    let events = db.store().events(run.id, 0, 1000).await.unwrap();
    events.into_iter().map(|e| e.event_type).collect()
}

async fn an_approval_parks_the_run_and_a_decision_resumes_it(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let (run, lease) = claimed(db, &owner, None).await;
    let approval = s.request_approval(&lease, ask("c1", "cargo test --all", DAY)).await.unwrap();
    assert_eq!(approval.status, ApprovalStatus::Pending);
    assert_eq!(approval.owner_id, owner.id);
    assert_eq!(approval.grant_key.as_deref(), Some("cargo test"));
    assert_eq!(approval.action_hash.len(), 64);
    // Asking again for the same call (after a crash, say) finds the same approval.
    let again = s.request_approval(&lease, ask("c1", "cargo test --all", DAY)).await.unwrap();
    assert_eq!(again.id, approval.id);
    assert_eq!(s.approval_for_call(run.id, "c1").await.unwrap().unwrap().id, approval.id);
    assert!(s.approval_for_call(run.id, "c2").await.unwrap().is_none());

    let parked = s.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    assert_eq!(parked.status, RunStatus::WaitingApproval);
    assert!(parked.lease_expires_at.is_none(), "a waiting run holds no worker");
    assert!(s.claim_runs("w2", 10, LEASE).await.unwrap().is_empty(), "nothing to claim");

    let decided = s
        .decide_approval(
            Some(owner.id),
            approval.id,
            Decision::Approve,
            GrantScope::Once,
            owner.id,
            None,
        )
        .await
        .unwrap();
    let Decided::Now(decided) = decided else { panic!("the first decision stands") };
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.decided_by, Some(owner.id));
    assert_eq!(s.run(None, run.id).await.unwrap().status, RunStatus::Running);
    let resumed = s.claim_runs("w2", 10, LEASE).await.unwrap();
    assert_eq!(resumed.len(), 1, "the run is back in the queue");
    assert_eq!(resumed[0].attempt, run.attempt + 1);
    let types = event_types(db, &run).await;
    let tail: Vec<&str> = types.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [event::APPROVAL_REQUESTED, event::RUN_STATUS, event::APPROVAL_DECIDED, event::RUN_STATUS]
    );
}

async fn the_first_decision_wins(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let (_, lease) = claimed(db, &owner, None).await;
    let a = s.request_approval(&lease, ask("c1", "make deploy", DAY)).await.unwrap();
    s.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    let first = s
        .decide_approval(
            None,
            a.id,
            Decision::Reject,
            GrantScope::Once,
            owner.id,
            Some("no".into()),
        )
        .await
        .unwrap();
    assert!(matches!(first, Decided::Now(ref x) if x.status == ApprovalStatus::Rejected));
    let second = s
        .decide_approval(None, a.id, Decision::Approve, GrantScope::Project, owner.id, None)
        .await
        .unwrap();
    let Decided::Already(stands) = second else { panic!("a second decision must not win") };
    assert_eq!(stands.status, ApprovalStatus::Rejected);
    assert_eq!(stands.decision_reason.as_deref(), Some("no"));
    assert!(s.list_grants(None, PageRequest::first(10)).await.unwrap().items.is_empty());
}

async fn concurrent_decisions_end_with_exactly_one(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let mut approvals = Vec::new();
    for i in 0..40 {
        let (_, lease) = claimed(db, &owner, None).await;
        approvals.push(s.request_approval(&lease, ask(&format!("c{i}"), "ls", DAY)).await.unwrap());
        s.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    }
    let mut tasks = Vec::new();
    for a in &approvals {
        for (i, d) in [Decision::Approve, Decision::Reject, Decision::Approve, Decision::Reject]
            .into_iter()
            .enumerate()
        {
            let store = Arc::clone(&s);
            let (id, who) = (a.id, owner.id);
            tasks.push(tokio::spawn(async move {
                let r = store
                    .decide_approval(
                        None,
                        id,
                        d,
                        GrantScope::Once,
                        who,
                        Some(format!("decider {i}")),
                    )
                    .await
                    .unwrap();
                (id, matches!(r, Decided::Now(_)))
            }));
        }
    }
    let mut wins = std::collections::HashMap::new();
    for t in tasks {
        let (id, won) = t.await.unwrap();
        *wins.entry(id).or_insert(0) += u32::from(won);
    }
    for a in &approvals {
        assert_eq!(wins[&a.id], 1, "exactly one decision wins");
        let stands = s.approval(None, a.id).await.unwrap();
        assert_ne!(stands.status, ApprovalStatus::Pending);
        let decided = s
            .events(a.run_id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == event::APPROVAL_DECIDED)
            .count();
        assert_eq!(decided, 1);
        assert_eq!(s.run(None, a.run_id).await.unwrap().status, RunStatus::Running);
    }
}

async fn a_decision_that_lands_before_the_run_is_parked_is_not_lost(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let (run, lease) = claimed(db, &owner, None).await;
    let a = s.request_approval(&lease, ask("c1", "npm test", DAY)).await.unwrap();
    // The human is quick: the worker has not parked the run yet.
    s.decide_approval(None, a.id, Decision::Approve, GrantScope::Once, owner.id, None)
        .await
        .unwrap();
    assert_eq!(s.run(None, run.id).await.unwrap().status, RunStatus::Running);
    let after = s.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    assert_eq!(after.status, RunStatus::Running, "nothing left to wait for");
    assert!(after.lease_expires_at.is_none());
    assert_eq!(s.claim_runs("w2", 10, LEASE).await.unwrap().len(), 1, "claimable again");
}

async fn wider_scopes_leave_grants_that_can_be_revoked(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let other = user(db, "x@example.com").await;
    let p = project(db, &owner).await;
    let (run1, lease1) = claimed(db, &owner, Some(p)).await;
    let a = s.request_approval(&lease1, ask("c1", "cargo test -p x", DAY)).await.unwrap();
    assert!(!s.granted(owner.id, Some(p), run1.id, "run_terminal", "cargo test").await.unwrap());
    s.decide_approval(None, a.id, Decision::Approve, GrantScope::Run, owner.id, None)
        .await
        .unwrap();
    assert!(s.granted(owner.id, Some(p), run1.id, "run_terminal", "cargo test").await.unwrap());
    assert!(!s.granted(owner.id, Some(p), run1.id, "run_terminal", "cargo build").await.unwrap());
    assert!(!s.granted(owner.id, Some(p), run1.id, "write_file", "cargo test").await.unwrap());
    s.finish_attempt(&lease1, Finish::WaitForApproval).await.unwrap();
    s.claim_runs("w", 10, LEASE).await.unwrap();

    let (run2, lease2) = claimed(db, &owner, Some(p)).await;
    assert!(
        !s.granted(owner.id, Some(p), run2.id, "run_terminal", "cargo test").await.unwrap(),
        "a run grant ends with its run"
    );
    let b = s.request_approval(&lease2, ask("c1", "cargo test", DAY)).await.unwrap();
    s.decide_approval(None, b.id, Decision::Approve, GrantScope::Project, owner.id, None)
        .await
        .unwrap();
    let (run3, _) = {
        s.finish_attempt(&lease2, Finish::WaitForApproval).await.unwrap();
        s.claim_runs("w", 10, LEASE).await.unwrap();
        claimed(db, &owner, Some(p)).await
    };
    assert!(s.granted(owner.id, Some(p), run3.id, "run_terminal", "cargo test").await.unwrap());
    let elsewhere = project(db, &owner).await;
    assert!(
        !s.granted(owner.id, Some(elsewhere), run3.id, "run_terminal", "cargo test").await.unwrap(),
        "a project grant stays in its project"
    );

    let grants = s.list_grants(Some(owner.id), PageRequest::first(10)).await.unwrap().items;
    assert_eq!(grants.len(), 2);
    assert!(s.list_grants(Some(other.id), PageRequest::first(10)).await.unwrap().items.is_empty());
    let project_grant = grants.iter().find(|g| g.run_id.is_none()).unwrap();
    assert_eq!(project_grant.project_id, Some(p));
    assert!(matches!(
        s.delete_grant(Some(other.id), project_grant.id).await,
        Err(StoreError::NotFound { .. })
    ));
    s.delete_grant(Some(owner.id), project_grant.id).await.unwrap();
    assert!(!s.granted(owner.id, Some(p), run3.id, "run_terminal", "cargo test").await.unwrap());
}

async fn an_expired_approval_counts_as_rejected(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let (run, lease) = claimed(db, &owner, None).await;
    let late = s
        .request_approval(&lease, ask("c1", "rm -rf build", -time::Duration::SECOND))
        .await
        .unwrap();
    s.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    let r = s
        .decide_approval(None, late.id, Decision::Approve, GrantScope::Once, owner.id, None)
        .await
        .unwrap();
    let Decided::Already(expired) = r else { panic!("too late to decide") };
    assert_eq!(expired.status, ApprovalStatus::Expired);
    assert!(expired.refusal().contains("expired"), "{}", expired.refusal());
    assert_eq!(s.run(None, run.id).await.unwrap().status, RunStatus::Running, "the run resumes");

    // The sweeper does the same without anyone asking.
    s.claim_runs("w", 10, LEASE).await.unwrap();
    let (_, lease2) = claimed(db, &owner, None).await;
    let b = s.request_approval(&lease2, ask("c1", "ls", -time::Duration::SECOND)).await.unwrap();
    let (_, lease3) = claimed(db, &owner, None).await;
    let c = s.request_approval(&lease3, ask("c1", "ls", DAY)).await.unwrap();
    s.finish_attempt(&lease2, Finish::WaitForApproval).await.unwrap();
    s.finish_attempt(&lease3, Finish::WaitForApproval).await.unwrap();
    assert_eq!(s.expire_approvals(100).await.unwrap(), 1);
    assert_eq!(s.approval(None, b.id).await.unwrap().status, ApprovalStatus::Expired);
    assert_eq!(s.approval(None, c.id).await.unwrap().status, ApprovalStatus::Pending);
    assert_eq!(s.expire_approvals(100).await.unwrap(), 0);
}

async fn cancelling_a_waiting_run_cancels_its_approvals(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let (run, lease) = claimed(db, &owner, None).await;
    let a = s.request_approval(&lease, ask("c1", "ls", DAY)).await.unwrap();
    s.finish_attempt(&lease, Finish::WaitForApproval).await.unwrap();
    let cancelled = s.request_cancel(Some(owner.id), run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    let a = s.approval(None, a.id).await.unwrap();
    assert_eq!(a.status, ApprovalStatus::Cancelled);
    let r = s
        .decide_approval(None, a.id, Decision::Approve, GrantScope::Once, owner.id, None)
        .await
        .unwrap();
    assert!(matches!(r, Decided::Already(_)));
    assert_eq!(s.run(None, run.id).await.unwrap().status, RunStatus::Cancelled);
}

async fn approvals_are_visible_to_their_owner_only(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let other = user(db, "x@example.com").await;
    let (_, lease) = claimed(db, &owner, None).await;
    let a = s.request_approval(&lease, ask("c1", "ls", DAY)).await.unwrap();
    assert!(matches!(s.approval(Some(other.id), a.id).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        s.decide_approval(
            Some(other.id),
            a.id,
            Decision::Approve,
            GrantScope::Once,
            other.id,
            None
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
    let mine = s
        .list_approvals(Some(owner.id), Some(ApprovalStatus::Pending), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1);
    let theirs = s.list_approvals(Some(other.id), None, PageRequest::first(10)).await.unwrap();
    assert!(theirs.items.is_empty());
    let approved = s
        .list_approvals(Some(owner.id), Some(ApprovalStatus::Approved), PageRequest::first(10))
        .await
        .unwrap();
    assert!(approved.items.is_empty());
    assert_eq!(s.approval(Some(owner.id), a.id).await.unwrap().status, ApprovalStatus::Pending);
}

async fn only_the_lease_holder_may_ask(db: &Database) {
    let s = db.store();
    let owner = user(db, "o@example.com").await;
    let (_, lease) = claimed(db, &owner, None).await;
    let stale = Lease { worker: "someone-else".into(), ..lease };
    assert!(matches!(
        s.request_approval(&stale, ask("c1", "ls", DAY)).await,
        Err(StoreError::LeaseLost)
    ));
}

contract!(
    approvals: an_approval_parks_the_run_and_a_decision_resumes_it,
    the_first_decision_wins,
    concurrent_decisions_end_with_exactly_one,
    a_decision_that_lands_before_the_run_is_parked_is_not_lost,
    wider_scopes_leave_grants_that_can_be_revoked,
    an_expired_approval_counts_as_rejected,
    cancelling_a_waiting_run_cancels_its_approvals,
    approvals_are_visible_to_their_owner_only,
    only_the_lease_holder_may_ask,
);
