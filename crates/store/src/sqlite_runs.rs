//! The hot writes of runs on SQLite, as closures of the group writer (see `group.rs`): a new
//! run, a claim, a heartbeat, a journal step, events, the end of an attempt and a usage record.
//!
//! They run the same SQL as PostgreSQL's (the constants beside the sqlx code) with the same
//! guarantees: every worker write is fenced by run id, attempt and worker, events take their
//! numbers from the run row, and each call is all or nothing (its own savepoint inside the
//! group's transaction). Signals are broadcast only after the commit.

use std::time::Duration;

use agentd_core::run::{
    Created, Finish, Heartbeat, Lease, NewEvent, NewRun, Run, RunStatus, RunUsage, Step, event,
};
use agentd_core::signal::Signal;
use agentd_core::usage::NewUsage;
use agentd_core::{RunId, StoreError, StoreResult};
use rusqlite::types::ToSql;
use serde_json::json;
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::approvals::{CANCEL_PENDING_SQL, PENDING_COUNT_SQL};
use crate::runs::{
    BUSY_SQL, CLAIM_SQLITE, FENCE_FINISH_SQL, HEARTBEAT_SQL, INSERT_RUN_SQL, RUN_BY_KEY_SQL,
    RUN_COLUMNS, RunRow, claimed_data, complete_plan, duration_ms, plan_finish, progress_columns,
    run_columns,
};
use crate::sql::Arg;
use crate::sqlite_calls::{JsonText, execute, query, query_opt};
use crate::steps::{FENCE_RESERVING_SQL, INSERT_EVENT_SQL, STEP_UPSERT_SQL};
use crate::types::{DbTime, DbUuid};
use crate::usage::{INSERT_USAGE_SQL, usage_args};

/// Takes one queued (or released) run for `$2` until `$3`, at `$4`; returns it and its last
/// event number, having reserved one for `running` when it was queued.
const CLAIM_ONE_SQL: &str = concat!(
    "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = $2, ",
    "lease_expires_at = $3, started_at = COALESCE(started_at, $4), updated_at = $4, ",
    "event_seq = event_seq + CASE WHEN status = 'queued' THEN 1 ELSE 0 END ",
    "WHERE id = $1 RETURNING ",
    run_columns!(),
    ", event_seq"
);

/// A run and its last event number, from a statement returning [`run_columns!`] then it.
fn run_and_seq(row: &rusqlite::Row<'_>) -> rusqlite::Result<(RunRow, i64)> {
    Ok((RunRow::from_sqlite(row, 0)?, row.get(RUN_COLUMNS)?))
}

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    RunRow::from_sqlite(row, 0)
}

fn fence_args(lease: &Lease, now: OffsetDateTime, n: i64) -> [Arg; 5] {
    [
        Arg::id(lease.run_id),
        Arg::int(i64::from(lease.attempt)),
        Arg::text(lease.worker.clone()),
        Arg::time(now),
        Arg::int(n),
    ]
}

fn refs(args: &[Arg]) -> Vec<&dyn ToSql> {
    args.iter().map(|a| a as &dyn ToSql).collect()
}

/// The fence of a worker write (see `FENCE_RESERVING_SQL`): the run's usage and its last event
/// number after reserving `n`.
fn fence_reserving(
    db: &rusqlite::Connection,
    lease: &Lease,
    n: usize,
    now: OffsetDateTime,
) -> StoreResult<(RunUsage, i64)> {
    let args = fence_args(lease, now, i64::try_from(n).unwrap_or(i64::MAX));
    query_opt(db, FENCE_RESERVING_SQL, &refs(&args), |r| {
        Ok((r.get::<_, JsonText<RunUsage>>(0)?.0, r.get(1)?))
    })?
    .ok_or(StoreError::LeaseLost)
}

/// Inserts `events` of `run` numbered from `first` (reserved by the caller).
fn insert_events(
    db: &rusqlite::Connection,
    run: RunId,
    first: i64,
    events: &[NewEvent],
    now: OffsetDateTime,
) -> StoreResult<()> {
    let run = DbUuid::from(run);
    for (seq, event) in (first..).zip(events) {
        execute(
            db,
            INSERT_EVENT_SQL,
            &[&run, &seq, &event.event_type, &JsonText(&event.data), &DbTime(now)],
        )?;
    }
    Ok(())
}

/// Ends the attempt of `lease` (see `finish_in` for the sqlx version of the same plan).
fn finish(
    db: &rusqlite::Connection,
    lease: &Lease,
    active_ms: u64,
    how: Finish,
    now: OffsetDateTime,
) -> StoreResult<(Run, Vec<Signal>)> {
    let args = fence_args(lease, now, i64::try_from(active_ms).unwrap_or(i64::MAX));
    let before: Run = query_opt(db, FENCE_FINISH_SQL, &refs(&args), run_row)?
        .ok_or(StoreError::LeaseLost)?
        .try_into()?;
    let run = DbUuid::from(lease.run_id);
    let pending = matches!(how, Finish::WaitForApproval)
        && query_opt(db, PENDING_COUNT_SQL, &[&run], |r| r.get::<_, i64>(0))?.unwrap_or(0) > 0;
    let mut plan = plan_finish(&before, how, pending, now);
    let args = std::mem::take(&mut plan.args);
    let (row, seq) = query_opt(db, plan.sql, &refs(&args), run_and_seq)?
        .ok_or(StoreError::NotFound { entity: "run" })?;
    let after: Run = row.try_into()?;
    if after.status.is_terminal() {
        execute(db, CANCEL_PENDING_SQL, &[&run, &DbTime(now)])?;
    }
    let signals = complete_plan(&mut plan, &after, seq);
    insert_events(db, lease.run_id, seq - plan.n + 1, &plan.events, now)?;
    Ok((after, signals))
}

impl SqliteStore {
    pub(crate) async fn insert_run(&self, new: NewRun) -> StoreResult<Created> {
        let now = self.now();
        let created = self
            .group()
            .write(move |db| {
                let owner = DbUuid::from(new.owner_id);
                let existing = |key: &String| -> StoreResult<Option<Created>> {
                    let row = query_opt(db, RUN_BY_KEY_SQL, &[&owner, key], run_row)?;
                    row.map(|r| Ok(Created::Existing(r.try_into()?))).transpose()
                };
                if let Some(key) = &new.idempotency_key
                    && let Some(found) = existing(key)?
                {
                    return Ok(found);
                }
                if let (true, Some(conversation)) = (new.reject_if_busy, new.conversation_id) {
                    let busy = query_opt(db, BUSY_SQL, &[&DbUuid::from(conversation)], |_| Ok(()))?;
                    if busy.is_some() {
                        return Ok(Created::ConversationBusy);
                    }
                }
                let id = RunId::new();
                let inserted = query_opt(
                    db,
                    INSERT_RUN_SQL,
                    &[
                        &DbUuid::from(id),
                        &owner,
                        &new.project_id.map(DbUuid::from),
                        &new.conversation_id.map(DbUuid::from),
                        &new.agent,
                        &JsonText(&new.input),
                        &i64::from(new.max_attempts),
                        &JsonText(RunUsage::default()),
                        &new.idempotency_key,
                        &DbTime(now),
                    ],
                    run_row,
                );
                let row = match (inserted, &new.idempotency_key) {
                    (Ok(row), _) => row.ok_or(StoreError::NotFound { entity: "run" })?,
                    // Another process on the same file took the key first: its run is the answer.
                    (Err(StoreError::Conflict { .. }), Some(key)) => {
                        return existing(key)?.ok_or(StoreError::NotFound { entity: "run" });
                    }
                    (Err(e), _) => return Err(e),
                };
                let data = json!({"status": RunStatus::Queued});
                execute(
                    db,
                    INSERT_EVENT_SQL,
                    &[&DbUuid::from(id), &1_i64, &event::RUN_STATUS, &JsonText(data), &DbTime(now)],
                )?;
                Ok(Created::New(row.try_into()?))
            })
            .await?;
        if let Created::New(run) = &created {
            self.broadcast(Signal::RunsReady);
            self.broadcast(Signal::RunEvent { run: run.id, seq: 1 });
        }
        Ok(created)
    }

    pub(crate) async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<Run>> {
        let now = self.now();
        let until = now + duration_ms(lease);
        let worker = worker.to_owned();
        let (claimed, signals) = self
            .group()
            .write(move |db| {
                let candidates =
                    query(db, CLAIM_SQLITE, &[&DbTime(now), &i64::from(limit)], |r| {
                        Ok((r.get::<_, DbUuid>(0)?, r.get::<_, String>(1)?))
                    })?;
                let mut claimed = Vec::with_capacity(candidates.len());
                let mut signals = Vec::new();
                for (id, previous) in candidates {
                    let args: [&dyn ToSql; 4] = [&id, &worker, &DbTime(until), &DbTime(now)];
                    let Some((row, seq)) = query_opt(db, CLAIM_ONE_SQL, &args, run_and_seq)? else {
                        continue;
                    };
                    let run: Run = row.try_into()?;
                    if previous == RunStatus::Queued.as_str() {
                        let data = JsonText(claimed_data(&run));
                        execute(
                            db,
                            INSERT_EVENT_SQL,
                            &[&id, &seq, &event::RUN_STATUS, &data, &DbTime(now)],
                        )?;
                        signals.push(Signal::RunEvent { run: run.id, seq });
                    }
                    claimed.push(run);
                }
                Ok((claimed, signals))
            })
            .await?;
        for s in signals {
            self.broadcast(s);
        }
        Ok(claimed)
    }

    pub(crate) async fn renew(
        &self,
        lease: &Lease,
        extend: Duration,
        progress: Option<(u8, String)>,
    ) -> StoreResult<Heartbeat> {
        let now = self.now();
        let lease = lease.clone();
        self.group()
            .write(move |db| {
                let (percent, step) = progress_columns(progress);
                let args: [&dyn ToSql; 7] = [
                    &DbUuid::from(lease.run_id),
                    &i64::from(lease.attempt),
                    &lease.worker,
                    &DbTime(now + duration_ms(extend)),
                    &DbTime(now),
                    &percent,
                    &step,
                ];
                match query_opt(db, HEARTBEAT_SQL, &args, |r| r.get::<_, Option<DbTime>>(0))? {
                    Some(cancel) => Ok(Heartbeat { cancel_requested: cancel.is_some() }),
                    None => Err(StoreError::LeaseLost),
                }
            })
            .await
    }

    pub(crate) async fn journal(
        &self,
        lease: &Lease,
        steps: Vec<Step>,
        usage: Option<RunUsage>,
        events: Vec<NewEvent>,
    ) -> StoreResult<()> {
        let now = self.now();
        let lease = lease.clone();
        let run = lease.run_id;
        let any = !events.is_empty();
        let last = self
            .group()
            .write(move |db| {
                let (current, last) = fence_reserving(db, &lease, events.len(), now)?;
                for step in &steps {
                    execute(
                        db,
                        STEP_UPSERT_SQL,
                        &[
                            &DbTime(now),
                            &DbUuid::from(lease.run_id),
                            &i64::from(step.seq),
                            &step.kind.as_str(),
                            &step.name,
                            &step.status.as_str(),
                            &step.side_effects,
                            &JsonText(&step.input),
                            &step.output.as_ref().map(JsonText),
                            &i64::from(step.attempt),
                            &DbTime(step.started_at),
                            &step.completed_at.map(DbTime),
                        ],
                    )?;
                }
                let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
                insert_events(db, lease.run_id, last - n + 1, &events, now)?;
                if let Some(delta) = usage {
                    let mut total = current;
                    total.add(&delta);
                    execute(
                        db,
                        "UPDATE runs SET usage = $2 WHERE id = $1",
                        &[&DbUuid::from(lease.run_id), &JsonText(total)],
                    )?;
                }
                Ok(last)
            })
            .await?;
        if any {
            self.broadcast(Signal::RunEvent { run, seq: last });
        }
        Ok(())
    }

    pub(crate) async fn append(&self, lease: &Lease, events: Vec<NewEvent>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let lease = lease.clone();
        let run = lease.run_id;
        let seq = self
            .group()
            .write(move |db| {
                let (_, last) = fence_reserving(db, &lease, events.len(), now)?;
                let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
                insert_events(db, lease.run_id, last - n + 1, &events, now)?;
                Ok(last)
            })
            .await?;
        self.broadcast(Signal::RunEvent { run, seq });
        Ok(())
    }

    pub(crate) async fn end(&self, lease: &Lease, active_ms: u64, how: Finish) -> StoreResult<Run> {
        let now = self.now();
        let lease = lease.clone();
        let (after, signals) =
            self.group().write(move |db| finish(db, &lease, active_ms, how, now)).await?;
        for s in signals {
            self.broadcast(s);
        }
        Ok(after)
    }

    pub(crate) async fn insert_usage(&self, usage: NewUsage) -> StoreResult<()> {
        let args = usage_args(usage);
        self.group().write(move |db| execute(db, INSERT_USAGE_SQL, &refs(&args)).map(drop)).await
    }
}
