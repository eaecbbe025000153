use std::collections::HashSet;
use std::time::Duration;

use agentd_core::conversation::{MessageRole, NewConversation, NewMessage};
use agentd_core::page::PageRequest;
use agentd_core::run::{
    Created, Finish, Lease, NewEvent, NewRun, Run, RunError, RunFilter, RunInput, RunStatus,
    RunUsage, Step, StepKind, StepStatus, event,
};
use agentd_core::signal::Signal;
use agentd_core::user::{NewUser, Role, User};
use agentd_core::{ConversationId, StoreError};
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

fn new_run(owner: &User) -> NewRun {
    NewRun {
        owner_id: owner.id,
        project_id: None,
        conversation_id: None,
        agent: "code".into(),
        input: RunInput { task: "do it".into(), context: Some(json!({"k": 1})) },
        idempotency_key: None,
        max_attempts: 3,
        reject_if_busy: false,
    }
}

async fn create(db: &Database, new: NewRun) -> Run {
    match db.store().create_run(new).await.unwrap() {
        Created::New(run) => run,
        other => panic!("expected a new run, got {other:?}"),
    }
}

fn lease(run: &Run, worker: &str) -> Lease {
    Lease { run_id: run.id, attempt: run.attempt, worker: worker.into() }
}

async fn event_types(db: &Database, run: &Run) -> Vec<String> {
    let events = db.store().events(run.id, 0, 1000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=i64::try_from(events.len()).unwrap()).collect();
    assert_eq!(seqs, expected, "event sequence numbers have gaps or repeats");
    events.into_iter().map(|e| e.event_type).collect()
}

async fn a_new_run_is_queued_with_its_first_event(db: &Database) {
    let owner = user(db, "o@example.com").await;
    let run = create(db, new_run(&owner)).await;
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.attempt, 0);
    assert_eq!(run.input.task, "do it");
    assert_eq!(db.store().run(Some(owner.id), run.id).await.unwrap(), run);
    let other = user(db, "x@example.com").await;
    assert!(matches!(
        db.store().run(Some(other.id), run.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(event_types(db, &run).await, [event::RUN_STATUS]);
}

async fn the_same_idempotency_key_returns_the_same_run(db: &Database) {
    let owner = user(db, "i@example.com").await;
    let mut new = new_run(&owner);
    new.idempotency_key = Some("key-1".into());
    let first = create(db, new.clone()).await;
    let Created::Existing(again) = db.store().create_run(new.clone()).await.unwrap() else {
        panic!("a second run was created for the same key");
    };
    assert_eq!(again.id, first.id);
    // Another owner's key space is separate.
    let other = user(db, "j@example.com").await;
    let mut theirs = new_run(&other);
    theirs.idempotency_key = Some("key-1".into());
    assert_ne!(create(db, theirs).await.id, first.id);
}

async fn claims_take_each_run_once_in_order(db: &Database) {
    let owner = user(db, "c@example.com").await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(create(db, new_run(&owner)).await.id);
    }
    let first = db.store().claim_runs("w1", 3, LEASE).await.unwrap();
    let second = db.store().claim_runs("w2", 10, LEASE).await.unwrap();
    let third = db.store().claim_runs("w3", 10, LEASE).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), made[..3]);
    assert_eq!(second.iter().map(|r| r.id).collect::<Vec<_>>(), made[3..]);
    assert!(third.is_empty());
    for run in first.iter().chain(&second) {
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.attempt, 1);
        assert!(run.lease_expires_at.is_some());
    }
    assert_eq!(event_types(db, &first[0]).await, [event::RUN_STATUS, event::RUN_STATUS]);
}

async fn a_dead_workers_runs_are_all_rescued_in_one_pass(db: &Database) {
    let owner = user(db, "dead@example.com").await;
    for _ in 0..30 {
        create(db, new_run(&owner)).await;
    }
    let held = db.store().claim_runs("dead", 64, Duration::from_millis(1)).await.unwrap();
    assert_eq!(held.len(), 30);
    for run in &held {
        assert_eq!(event_types(db, run).await, [event::RUN_STATUS, event::RUN_STATUS]);
    }
    db.store().request_cancel(None, held[0].id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(db.store().rescue_expired("worker_lost").await.unwrap(), 30);
    assert_eq!(db.store().rescue_expired("worker_lost").await.unwrap(), 0);
    let cancelled = db.store().run(None, held[0].id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    for run in &held[1..] {
        let after = db.store().run(None, run.id).await.unwrap();
        assert_eq!((after.status, after.failures), (RunStatus::Queued, 1));
        assert_eq!(after.error.as_ref().map(|e| e.error_type.as_str()), Some("worker_lost"));
        assert_eq!(
            event_types(db, run).await,
            [event::RUN_STATUS, event::RUN_STATUS, event::RUN_RETRY, event::RUN_STATUS]
        );
    }
    let taken = db.store().claim_runs("alive", 64, LEASE).await.unwrap();
    assert_eq!(taken.len(), 29);
    assert!(taken.iter().all(|r| r.attempt == 2 && r.status == RunStatus::Running));
    assert_eq!(event_types(db, &taken[0]).await.len(), 5);
}

async fn concurrent_claimers_never_share_a_run(db: &Database) {
    let owner = user(db, "cc@example.com").await;
    for _ in 0..40 {
        create(db, new_run(&owner)).await;
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = db.store();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_runs(&format!("w{w}"), 3, LEASE).await.unwrap();
                if claimed.is_empty() {
                    break;
                }
                mine.extend(claimed.into_iter().map(|r| r.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(unique.len(), 40);
}

async fn a_conversation_runs_one_at_a_time_in_order(db: &Database) {
    let owner = user(db, "conv@example.com").await;
    let conversation = db
        .store()
        .create_conversation(NewConversation {
            owner_id: owner.id,
            project_id: None,
            task_id: None,
            title: None,
        })
        .await
        .unwrap();
    let mut in_conv = new_run(&owner);
    in_conv.conversation_id = Some(conversation.id);
    let a = create(db, in_conv.clone()).await;
    let b = create(db, in_conv.clone()).await;
    let loose = create(db, new_run(&owner)).await;
    let claimed = db.store().claim_runs("w", 10, LEASE).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(ids, [a.id, loose.id], "b must wait for a");
    // With reject_if_busy, a new run is refused while the conversation is busy.
    let mut reject = in_conv.clone();
    reject.reject_if_busy = true;
    assert_eq!(db.store().create_run(reject).await.unwrap(), Created::ConversationBusy);
    // When a ends, b becomes claimable.
    db.store()
        .finish_attempt(
            &lease(&claimed[0], "w"),
            Finish::Done { status: RunStatus::Succeeded, result: Some(json!("ok")), error: None },
        )
        .await
        .unwrap();
    let next = db.store().claim_runs("w", 10, LEASE).await.unwrap();
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), [b.id]);
}

async fn a_stale_worker_is_fenced_out(db: &Database) {
    let owner = user(db, "f@example.com").await;
    create(db, new_run(&owner)).await;
    let run = db.store().claim_runs("old", 1, Duration::from_millis(1)).await.unwrap().remove(0);
    let old = lease(&run, "old");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(db.store().rescue_expired("lease_expired").await.unwrap(), 1);
    let rescued = db.store().run(None, run.id).await.unwrap();
    assert_eq!((rescued.status, rescued.failures), (RunStatus::Queued, 1));
    let taken = db.store().claim_runs("new", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(taken.attempt, 2);
    // Every write of the old worker is refused.
    let step = Step {
        seq: 1,
        kind: StepKind::Llm,
        name: "m".into(),
        status: StepStatus::Completed,
        side_effects: false,
        input: json!({}),
        output: Some(json!({"text": "stale"})),
        attempt: 1,
        started_at: OffsetDateTime::now_utc(),
        completed_at: Some(OffsetDateTime::now_utc()),
    };
    let logged = db.store().events(run.id, 0, 100).await.unwrap().len();
    assert!(matches!(
        db.store().record_step(&old, step.clone(), None, vec![]).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        db.store()
            .record_step(&old, step.clone(), None, vec![NewEvent::new(event::TOOL_CALL, json!({}))])
            .await,
        Err(StoreError::LeaseLost)
    ));
    let usage = RunUsage { llm_calls: 1, ..Default::default() };
    assert!(matches!(
        db.store()
            .record_step(
                &old,
                step,
                Some(usage),
                vec![NewEvent::new(event::LLM_MESSAGE, json!({}))]
            )
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(db.store().events(run.id, 0, 100).await.unwrap().len(), logged);
    assert!(matches!(db.store().heartbeat(&old, LEASE, None).await, Err(StoreError::LeaseLost)));
    assert!(matches!(
        db.store().append_events(&old, vec![NewEvent::new("x", json!({}))]).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        db.store().end_attempt(&old, 5, Finish::Release).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        db.store().finish_attempt(&old, Finish::Release).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(db.store().steps(run.id).await.unwrap().is_empty());
    // The new worker's writes go through.
    db.store()
        .heartbeat(&lease(&taken, "new"), LEASE, Some((10, "thinking".into())))
        .await
        .unwrap();
    assert_eq!(db.store().run(None, run.id).await.unwrap().progress, 10);
}

async fn steps_and_usage_are_journaled_with_their_events(db: &Database) {
    let owner = user(db, "s@example.com").await;
    create(db, new_run(&owner)).await;
    let run = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
    let l = lease(&run, "w");
    let now = agentd_core::clock::truncate_to_micros(OffsetDateTime::now_utc());
    let started = Step {
        seq: 1,
        kind: StepKind::Tool,
        name: "write_file".into(),
        status: StepStatus::Started,
        side_effects: true,
        input: json!({"call_id": "c1", "arguments": {"path": "a"}}),
        output: None,
        attempt: run.attempt,
        started_at: now,
        completed_at: None,
    };
    db.store()
        .record_step(
            &l,
            started.clone(),
            None,
            vec![NewEvent::new(event::TOOL_CALL, json!({"step": 1}))],
        )
        .await
        .unwrap();
    let completed = Step {
        status: StepStatus::Completed,
        output: Some(json!({"ok": true})),
        completed_at: Some(now),
        ..started.clone()
    };
    let usage = RunUsage {
        llm_calls: 1,
        input_tokens: 10,
        output_tokens: 5,
        cost_usd: Some(0.25),
        ..Default::default()
    };
    db.store()
        .record_step(
            &l,
            completed.clone(),
            Some(usage.clone()),
            vec![NewEvent::new(event::TOOL_RESULT, json!({"step": 1}))],
        )
        .await
        .unwrap();
    db.store().record_step(&l, completed.clone(), Some(usage), vec![]).await.unwrap();
    assert_eq!(db.store().steps(run.id).await.unwrap(), vec![completed]);
    let after = db.store().run(None, run.id).await.unwrap();
    assert_eq!((after.usage.llm_calls, after.usage.total_tokens()), (2, 30));
    assert_eq!(after.usage.cost_usd, Some(0.5));
    let types = event_types(db, &run).await;
    assert_eq!(types, [event::RUN_STATUS, event::RUN_STATUS, event::TOOL_CALL, event::TOOL_RESULT]);
    let page = db.store().events(run.id, 2, 1).await.unwrap();
    assert_eq!((page.len(), page[0].seq, page[0].event_type.as_str()), (1, 3, event::TOOL_CALL));
}

async fn finishing_ends_with_a_completed_event_and_retries_are_bounded(db: &Database) {
    let owner = user(db, "fin@example.com").await;
    let made = create(db, new_run(&owner)).await;
    for attempt in 1..=3 {
        let run = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
        assert_eq!(run.attempt, attempt);
        let after = db
            .store()
            .finish_attempt(
                &lease(&run, "w"),
                Finish::Retry {
                    after: Duration::ZERO,
                    error: RunError::new("llm_unavailable", "try later"),
                },
            )
            .await
            .unwrap();
        if attempt < 3 {
            assert_eq!(after.status, RunStatus::Queued);
        } else {
            assert_eq!(after.status, RunStatus::Failed);
            assert_eq!(after.error.as_ref().unwrap().error_type, "llm_unavailable");
            assert!(after.finished_at.is_some());
        }
    }
    let types = event_types(db, &made).await;
    assert_eq!(types.last().map(String::as_str), Some(event::RUN_COMPLETED));
    assert_eq!(types.iter().filter(|t| *t == event::RUN_RETRY).count(), 2);
    assert!(db.store().claim_runs("w", 1, LEASE).await.unwrap().is_empty());
}

async fn cancelling_a_queued_run_ends_it_and_a_running_one_is_flagged(db: &Database) {
    let owner = user(db, "x@example.com").await;
    let queued = create(db, new_run(&owner)).await;
    let cancelled = db.store().request_cancel(Some(owner.id), queued.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(
        event_types(db, &queued).await.last().map(String::as_str),
        Some(event::RUN_COMPLETED)
    );
    let other = create(db, new_run(&owner)).await;
    let running = db.store().claim_runs("node-a/1", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(running.id, other.id);
    let flagged = db.store().request_cancel(Some(owner.id), running.id).await.unwrap();
    assert_eq!(flagged.status, RunStatus::Running);
    assert!(flagged.cancel_requested_at.is_some());
    assert_eq!(db.store().cancel_requested("node-a/").await.unwrap(), vec![running.id]);
    assert!(db.store().cancel_requested("node-b/").await.unwrap().is_empty());
    assert!(
        db.store()
            .heartbeat(&lease(&running, "node-a/1"), LEASE, None)
            .await
            .unwrap()
            .cancel_requested
    );
    // A terminal run is returned unchanged.
    assert_eq!(
        db.store().request_cancel(None, queued.id).await.unwrap().status,
        RunStatus::Cancelled
    );
}

async fn waiting_for_approval_frees_the_worker(db: &Database) {
    let owner = user(db, "wa@example.com").await;
    create(db, new_run(&owner)).await;
    let run = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
    db.store()
        .request_approval(
            &lease(&run, "w"),
            agentd_core::approval::NewApproval {
                call_id: "c1".into(),
                tool: "run_terminal".into(),
                arguments: json!({"command": "make"}),
                risk: agentd_core::approval::Risk::Medium,
                reason: "no rule allows it".into(),
                grant_key: None,
                expires_at: OffsetDateTime::now_utc() + time::Duration::HOUR,
            },
        )
        .await
        .unwrap();
    let waiting =
        db.store().finish_attempt(&lease(&run, "w"), Finish::WaitForApproval).await.unwrap();
    assert_eq!(waiting.status, RunStatus::WaitingApproval);
    assert!(waiting.lease_expires_at.is_none());
    assert!(db.store().claim_runs("w", 1, LEASE).await.unwrap().is_empty());
}

async fn listing_filters_by_status_and_pages(db: &Database) {
    let owner = user(db, "l@example.com").await;
    for _ in 0..5 {
        create(db, new_run(&owner)).await;
    }
    db.store().claim_runs("w", 2, LEASE).await.unwrap();
    let running = db
        .store()
        .list_runs(
            Some(owner.id),
            RunFilter { status: Some(RunStatus::Running), ..Default::default() },
            PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(running.items.len(), 2);
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let p =
            db.store().list_runs(Some(owner.id), RunFilter::default(), page.clone()).await.unwrap();
        seen.extend(p.items.iter().map(|r| r.id));
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
}

async fn signals_announce_new_runs_and_events(db: &Database) {
    let mut rx = db.store().subscribe();
    let owner = user(db, "sig@example.com").await;
    let run = create(db, new_run(&owner)).await;
    let mut saw_ready = false;
    let mut saw_event = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(saw_ready && saw_event) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Signal::RunsReady)) => saw_ready = true,
            Ok(Ok(Signal::RunEvent { run: r, seq: 1 })) if r == run.id => saw_event = true,
            Ok(Ok(_)) => {}
            other => panic!("no signal: {other:?}"),
        }
    }
}

async fn retention_deletes_old_finished_runs_and_idle_conversations(db: &Database) {
    let owner = user(db, "r@example.com").await;
    let conversation = db
        .store()
        .create_conversation(NewConversation {
            owner_id: owner.id,
            project_id: None,
            task_id: Some("t".into()),
            title: Some("c".into()),
        })
        .await
        .unwrap();
    db.store()
        .append_messages(
            conversation.id,
            None,
            vec![NewMessage { role: MessageRole::User, content: "hi".into() }],
        )
        .await
        .unwrap();
    let messages = db.store().messages(conversation.id).await.unwrap();
    assert_eq!((messages.len(), messages[0].seq, messages[0].content.as_str()), (1, 1, "hi"));
    let done = create(db, new_run(&owner)).await;
    let claimed = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(claimed.id, done.id);
    db.store()
        .finish_attempt(
            &lease(&claimed, "w"),
            Finish::Done { status: RunStatus::Succeeded, result: None, error: None },
        )
        .await
        .unwrap();
    let pending = create(db, new_run(&owner)).await;
    let future = OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert_eq!(db.store().delete_runs_before(future, 100).await.unwrap(), 1);
    assert!(matches!(db.store().run(None, done.id).await, Err(StoreError::NotFound { .. })));
    assert!(db.store().run(None, pending.id).await.is_ok());
    assert!(db.store().events(done.id, 0, 10).await.unwrap().is_empty());
    assert_eq!(db.store().delete_conversations_before(future, 100).await.unwrap(), 1);
    assert!(matches!(
        db.store().conversation(None, conversation.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        db.store().delete_conversation(None, ConversationId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn a_maintenance_lock_has_one_holder_at_a_time(db: &Database) {
    let store = db.store();
    assert!(store.try_lock("sweep", "a", Duration::from_secs(60)).await.unwrap());
    assert!(!store.try_lock("sweep", "b", Duration::from_secs(60)).await.unwrap());
    assert!(store.try_lock("sweep", "a", Duration::from_secs(60)).await.unwrap());
    assert!(store.try_lock("other", "b", Duration::from_millis(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(store.try_lock("other", "c", Duration::from_secs(60)).await.unwrap());
}

async fn a_step_numbers_all_its_events_in_order_and_announces_the_last(db: &Database) {
    let owner = user(db, "ev@example.com").await;
    create(db, new_run(&owner)).await;
    let run = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
    let l = lease(&run, "w");
    let mut rx = db.store().subscribe();
    let now = agentd_core::clock::truncate_to_micros(OffsetDateTime::now_utc());
    let step = Step {
        seq: 1,
        kind: StepKind::Llm,
        name: "p/m".into(),
        status: StepStatus::Completed,
        side_effects: false,
        input: json!({}),
        output: Some(json!({"text": "hi"})),
        attempt: run.attempt,
        started_at: now,
        completed_at: Some(now),
    };
    let usage = RunUsage { llm_calls: 1, input_tokens: 3, ..Default::default() };
    let events: Vec<NewEvent> =
        (0..3).map(|i| NewEvent::new(event::LLM_MESSAGE, json!({"step": 1, "i": i}))).collect();
    db.store().record_step(&l, step.clone(), Some(usage), events).await.unwrap();
    // Claimed: events 1 and 2 are the run's; this step's are 3, 4 and 5, in the given order.
    let logged = db.store().events(run.id, 2, 100).await.unwrap();
    let got: Vec<(i64, &str, i64)> = logged
        .iter()
        .map(|e| (e.seq, e.event_type.as_str(), e.data["i"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        got,
        [(3, event::LLM_MESSAGE, 0), (4, event::LLM_MESSAGE, 1), (5, event::LLM_MESSAGE, 2)]
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            // The claim's own signal may still be on its way (PostgreSQL's NOTIFY).
            Ok(Ok(Signal::RunEvent { run: r, seq })) if r == run.id && seq > 2 => {
                assert_eq!(seq, 5);
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("no signal: {other:?}"),
        }
    }
    // A step with usage and no events, then events alone: the numbering goes on without gaps.
    let usage = RunUsage { llm_calls: 1, output_tokens: 4, ..Default::default() };
    db.store().record_step(&l, Step { seq: 2, ..step.clone() }, Some(usage), vec![]).await.unwrap();
    db.store()
        .append_events(
            &l,
            vec![
                NewEvent::new(event::LLM_DELTA, json!({})),
                NewEvent::new(event::LLM_DELTA, json!({})),
            ],
        )
        .await
        .unwrap();
    let types = event_types(db, &run).await;
    assert_eq!(types.len(), 7);
    let after = db.store().run(None, run.id).await.unwrap();
    assert_eq!((after.usage.llm_calls, after.usage.total_tokens()), (2, 7));
    assert_eq!(db.store().steps(run.id).await.unwrap().len(), 2);
    // A reply and the call it starts, in one write: both steps, and the events after the
    // others.
    let call = Step {
        seq: 4,
        kind: StepKind::Tool,
        name: "list_files".into(),
        status: StepStatus::Started,
        output: None,
        completed_at: None,
        input: json!({"call_id": "c1", "arguments": {}}),
        ..step.clone()
    };
    let usage = RunUsage { llm_calls: 1, output_tokens: 1, ..Default::default() };
    db.store()
        .record_steps(
            &l,
            vec![Step { seq: 3, ..step.clone() }, call.clone()],
            Some(usage),
            vec![
                NewEvent::new(event::LLM_MESSAGE, json!({"step": 3})),
                NewEvent::new(event::TOOL_CALL, json!({"step": 4})),
            ],
        )
        .await
        .unwrap();
    let steps = db.store().steps(run.id).await.unwrap();
    assert_eq!(steps.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(steps[3], call);
    let logged = db.store().events(run.id, 7, 100).await.unwrap();
    let got: Vec<(i64, &str)> = logged.iter().map(|e| (e.seq, e.event_type.as_str())).collect();
    assert_eq!(got, [(8, event::LLM_MESSAGE), (9, event::TOOL_CALL)]);
    let after = db.store().run(None, run.id).await.unwrap();
    assert_eq!((after.usage.llm_calls, after.usage.total_tokens()), (3, 8));
}

async fn ending_an_attempt_adds_its_active_time_with_the_end(db: &Database) {
    let owner = user(db, "end@example.com").await;
    let made = create(db, new_run(&owner)).await;
    let run = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
    let retried = db
        .store()
        .end_attempt(
            &lease(&run, "w"),
            700,
            Finish::Retry {
                after: Duration::ZERO,
                error: RunError::new("llm_unavailable", "later"),
            },
        )
        .await
        .unwrap();
    assert_eq!((retried.status, retried.active_ms), (RunStatus::Queued, 700));
    let run = db.store().claim_runs("w", 1, LEASE).await.unwrap().remove(0);
    let done = db
        .store()
        .end_attempt(
            &lease(&run, "w"),
            300,
            Finish::Done { status: RunStatus::Succeeded, result: Some(json!("ok")), error: None },
        )
        .await
        .unwrap();
    assert_eq!((done.status, done.active_ms, done.progress), (RunStatus::Succeeded, 1000, 100));
    assert_eq!(db.store().run(None, made.id).await.unwrap().active_ms, 1000);
    // The end is fenced: a second end of the same attempt changes nothing.
    assert!(matches!(
        db.store().end_attempt(&lease(&run, "w"), 5, Finish::Release).await,
        Err(StoreError::LeaseLost)
    ));
    let events = db.store().events(made.id, 0, 100).await.unwrap();
    let completed = events.last().unwrap();
    assert_eq!(completed.event_type, event::RUN_COMPLETED);
    assert_eq!(
        (completed.data["status"].as_str(), &completed.data["result"]),
        (Some("succeeded"), &json!("ok"))
    );
    assert_eq!(
        event_types(db, &made).await,
        [
            event::RUN_STATUS,
            event::RUN_STATUS,
            event::RUN_RETRY,
            event::RUN_STATUS,
            event::RUN_STATUS,
            event::RUN_STATUS,
            event::RUN_COMPLETED
        ]
    );
}

contract!(
    runs: a_new_run_is_queued_with_its_first_event,
    the_same_idempotency_key_returns_the_same_run,
    claims_take_each_run_once_in_order,
    concurrent_claimers_never_share_a_run,
    a_conversation_runs_one_at_a_time_in_order,
    a_stale_worker_is_fenced_out,
    a_dead_workers_runs_are_all_rescued_in_one_pass,
    steps_and_usage_are_journaled_with_their_events,
    a_step_numbers_all_its_events_in_order_and_announces_the_last,
    ending_an_attempt_adds_its_active_time_with_the_end,
    finishing_ends_with_a_completed_event_and_retries_are_bounded,
    cancelling_a_queued_run_ends_it_and_a_running_one_is_flagged,
    waiting_for_approval_frees_the_worker,
    listing_filters_by_status_and_pages,
    signals_announce_new_runs_and_events,
    retention_deletes_old_finished_runs_and_idle_conversations,
    a_maintenance_lock_has_one_holder_at_a_time,
);
