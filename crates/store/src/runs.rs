//! Runs: the queue with leases and fencing, the journal, the event log.
//!
//! Every status change appends its events in the same transaction, and every event append takes
//! its sequence numbers from the run row (`event_seq`), whose update also serialises concurrent
//! appends to one run: the log has no gaps and no duplicates. Worker writes are fenced: they
//! touch the run row only `WHERE id = … AND attempt = … AND lease_owner = …`, and when that
//! changes no row the worker has lost the run ([`StoreError::LeaseLost`]).

use std::time::Duration;

use agentd_core::page::{Page, PageRequest};
use agentd_core::run::{
    Created, Finish, Heartbeat, Lease, NewEvent, NewRun, Run, RunError, RunEvent, RunFilter,
    RunInput, RunStatus, RunUsage, Step, event,
};
use agentd_core::signal::Signal;
use agentd_core::store::RunStore;
use agentd_core::{RunId, StoreError, StoreResult, UserId};
use serde_json::{Value, json};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::map_err;
use crate::sql::{Arg, bind_args, impl_for_backends, impl_inherent_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid};

const ENTITY: &str = "run";

/// A run as a claim returns it, with the number of its last event.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    run: RunRow,
    event_seq: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: DbUuid,
    owner_id: DbUuid,
    project_id: Option<DbUuid>,
    conversation_id: Option<DbUuid>,
    agent: String,
    input: Json<RunInput>,
    status: String,
    progress: i64,
    current_step: Option<String>,
    attempt: i64,
    failures: i64,
    max_attempts: i64,
    usage: Json<RunUsage>,
    result: Option<Json<Value>>,
    error_type: Option<String>,
    error_message: Option<String>,
    idempotency_key: Option<String>,
    active_ms: i64,
    scheduled_at: DbTime,
    lease_expires_at: Option<DbTime>,
    cancel_requested_at: Option<DbTime>,
    created_at: DbTime,
    started_at: Option<DbTime>,
    finished_at: Option<DbTime>,
    updated_at: DbTime,
}

impl RunRow {
    /// The row of an SQLite query that selected [`run_columns!`] from column `at` on.
    pub(crate) fn from_sqlite(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Self> {
        use crate::sqlite_calls::JsonText;
        Ok(Self {
            id: row.get(at)?,
            owner_id: row.get(at + 1)?,
            project_id: row.get(at + 2)?,
            conversation_id: row.get(at + 3)?,
            agent: row.get(at + 4)?,
            input: Json(row.get::<_, JsonText<RunInput>>(at + 5)?.0),
            status: row.get(at + 6)?,
            progress: row.get(at + 7)?,
            current_step: row.get(at + 8)?,
            attempt: row.get(at + 9)?,
            failures: row.get(at + 10)?,
            max_attempts: row.get(at + 11)?,
            usage: Json(row.get::<_, JsonText<RunUsage>>(at + 12)?.0),
            result: row.get::<_, Option<JsonText<Value>>>(at + 13)?.map(|j| Json(j.0)),
            error_type: row.get(at + 14)?,
            error_message: row.get(at + 15)?,
            idempotency_key: row.get(at + 16)?,
            active_ms: row.get(at + 17)?,
            scheduled_at: row.get(at + 18)?,
            lease_expires_at: row.get(at + 19)?,
            cancel_requested_at: row.get(at + 20)?,
            created_at: row.get(at + 21)?,
            started_at: row.get(at + 22)?,
            finished_at: row.get(at + 23)?,
            updated_at: row.get(at + 24)?,
        })
    }
}

/// The number of columns [`run_columns!`] selects.
pub(crate) const RUN_COLUMNS: usize = 25;

fn count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl TryFrom<RunRow> for Run {
    type Error = StoreError;

    fn try_from(r: RunRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id.0.into(),
            owner_id: r.owner_id.0.into(),
            project_id: r.project_id.map(|p| p.0.into()),
            conversation_id: r.conversation_id.map(|c| c.0.into()),
            agent: r.agent,
            input: r.input.0,
            status: r.status.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            progress: u8::try_from(r.progress.clamp(0, 100)).unwrap_or(100),
            current_step: r.current_step,
            attempt: count(r.attempt),
            failures: count(r.failures),
            max_attempts: count(r.max_attempts),
            usage: r.usage.0,
            result: r.result.map(|j| j.0),
            error: r.error_type.map(|t| RunError::new(t, r.error_message.unwrap_or_default())),
            idempotency_key: r.idempotency_key,
            active_ms: u64::try_from(r.active_ms).unwrap_or(0),
            scheduled_at: r.scheduled_at.0,
            lease_expires_at: r.lease_expires_at.map(|t| t.0),
            cancel_requested_at: r.cancel_requested_at.map(|t| t.0),
            created_at: r.created_at.0,
            started_at: r.started_at.map(|t| t.0),
            finished_at: r.finished_at.map(|t| t.0),
            updated_at: r.updated_at.0,
        })
    }
}

macro_rules! run_columns {
    () => {
        "id, owner_id, project_id, conversation_id, agent, input, status, progress, \
         current_step, attempt, failures, max_attempts, usage, result, error_type, error_message, \
         idempotency_key, active_ms, scheduled_at, lease_expires_at, cancel_requested_at, \
         created_at, started_at, finished_at, updated_at"
    };
}

pub(crate) use run_columns;

macro_rules! select_runs {
    ($($rest:literal),*) => {
        concat!("SELECT ", run_columns!(), " FROM runs ", $($rest),*)
    };
}

/// A caller's run by its idempotency key: `$1` the owner, `$2` the key.
pub(crate) const RUN_BY_KEY_SQL: &str =
    select_runs!("WHERE owner_id = $1 AND idempotency_key = $2");

/// Whether conversation `$1` has an active run.
pub(crate) const BUSY_SQL: &str = "SELECT id FROM runs WHERE conversation_id = $1 \
    AND status IN ('queued', 'running', 'waiting_approval') LIMIT 1";

/// A new queued run whose first event (number 1) is written beside it.
pub(crate) const INSERT_RUN_SQL: &str = concat!(
    "INSERT INTO runs (id, owner_id, project_id, conversation_id, agent, input, status, ",
    "max_attempts, usage, idempotency_key, scheduled_at, event_seq, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, 1, $10, $10) RETURNING ",
    run_columns!()
);

/// A heartbeat: extends the lease of `$1`'s attempt `$2` held by `$3` to `$4`, with the
/// progress; returns whether a cancel was requested.
pub(crate) const HEARTBEAT_SQL: &str = concat!(
    "UPDATE runs SET lease_expires_at = $4, updated_at = $5, ",
    "progress = COALESCE($6, progress), current_step = COALESCE($7, current_step) ",
    "WHERE id = $1 AND attempt = $2 AND lease_owner = $3 RETURNING cancel_requested_at"
);

/// The claimable runs, oldest first: queued ones and running ones no worker holds, that are
/// due, and whose conversation has no other active run and no older queued run.
macro_rules! claimable {
    ($lock:literal) => {
        concat!(
            "SELECT r.id, r.status FROM runs r \
             WHERE r.lease_owner IS NULL AND r.status IN ('queued', 'running') \
             AND r.scheduled_at <= $1 \
             AND (r.conversation_id IS NULL OR ( \
                 NOT EXISTS (SELECT 1 FROM runs a WHERE a.conversation_id = r.conversation_id \
                     AND a.id <> r.id AND a.status IN ('running', 'waiting_approval')) \
                 AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.conversation_id = r.conversation_id \
                     AND q.status = 'queued' AND q.id < r.id))) \
             ORDER BY r.scheduled_at, r.id LIMIT +$2",
            $lock
        )
    };
}

/// SQLite has one writer; `BEGIN IMMEDIATE` already excludes other claimers.
pub(crate) const CLAIM_SQLITE: &str = claimable!("");
/// PostgreSQL: concurrent claimers skip each other's rows.
pub(crate) const CLAIM_POSTGRES: &str = claimable!(" FOR UPDATE OF r SKIP LOCKED");

fn event_data(status: RunStatus, previous: RunStatus, error: Option<&RunError>) -> Value {
    let mut data = json!({"status": status, "previous": previous});
    if let Some(error) = error {
        data["error"] = json!(error);
    }
    data
}

fn completed_data(run: &Run) -> Value {
    json!({
        "status": run.status,
        "result": run.result,
        "error": run.error,
        "usage": run.usage,
    })
}

/// The data of the `run.status` event of a claim that took a queued run.
pub(crate) fn claimed_data(run: &Run) -> Value {
    json!({"status": RunStatus::Running, "previous": RunStatus::Queued, "attempt": run.attempt})
}

/// A heartbeat's progress as the columns of `HEARTBEAT_SQL` (`$6`, `$7`).
pub(crate) fn progress_columns(progress: Option<(u8, String)>) -> (Option<i64>, Option<String>) {
    progress.map_or((None, None), |(p, s)| (Some(i64::from(p)), Some(s)))
}

pub(crate) fn duration_ms(d: Duration) -> time::Duration {
    time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The fence of the end of an attempt: touches the run (adding `$5` ms of active time) while
/// `$1`'s attempt `$2` is held by `$3`, and returns it as it was otherwise.
pub(crate) const FENCE_FINISH_SQL: &str = concat!(
    "UPDATE runs SET updated_at = $4, active_ms = active_ms + $5 ",
    "WHERE id = $1 AND attempt = $2 AND lease_owner = $3 RETURNING ",
    run_columns!()
);

/// What ending an attempt writes, decided from the run as the fence returned it: one update
/// of the run (returning it and its last event number, having reserved `n` numbers), then the
/// events (and, when the run ended, `run.completed` as the last of the `n`).
pub(crate) struct FinishPlan {
    pub(crate) sql: &'static str,
    pub(crate) args: Vec<Arg>,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) n: i64,
    /// Whether the run goes back to the queue.
    pub(crate) ready: bool,
}

/// Plans the end of an attempt of `before` (see [`RunStore::finish_attempt`]). `pending` tells
/// whether the run has pending approvals (only asked for `WaitForApproval`).
pub(crate) fn plan_finish(
    before: &Run,
    finish: Finish,
    pending: bool,
    now: OffsetDateTime,
) -> FinishPlan {
    let run = Arg::id(before.id);
    let finish = match finish {
        Finish::Retry { error, .. } if before.failures + 1 >= before.max_attempts => {
            let error = RunError::new(
                error.error_type,
                format!("{} (gave up after {} attempts)", error.message, before.failures + 1),
            );
            Finish::Done { status: RunStatus::Failed, result: None, error: Some(error) }
        }
        other => other,
    };
    match finish {
        Finish::Done { status, result, error } => {
            let n = if status.is_terminal() { 2 } else { 1 };
            FinishPlan {
                sql: concat!(
                    "UPDATE runs SET status = $2, result = $3, error_type = $4, error_message = $5, ",
                    "progress = CASE WHEN $2 = 'succeeded' THEN 100 ELSE progress END, ",
                    "finished_at = $6, updated_at = $6, lease_owner = NULL, lease_expires_at = NULL, ",
                    "event_seq = event_seq + $7 WHERE id = $1 RETURNING ",
                    run_columns!(),
                    ", event_seq"
                ),
                events: vec![NewEvent::new(
                    event::RUN_STATUS,
                    event_data(status, before.status, error.as_ref()),
                )],
                args: vec![
                    run,
                    Arg::text(status.as_str()),
                    Arg::Json(result),
                    Arg::Text(error.as_ref().map(|e| e.error_type.clone())),
                    Arg::Text(error.map(|e| e.message)),
                    Arg::time(now),
                    Arg::int(n),
                ],
                n,
                ready: false,
            }
        }
        Finish::Retry { after, error } => {
            let at = now + duration_ms(after);
            FinishPlan {
                sql: concat!(
                    "UPDATE runs SET status = 'queued', failures = failures + 1, scheduled_at = $2, ",
                    "error_type = $3, error_message = $4, updated_at = $5, lease_owner = NULL, ",
                    "lease_expires_at = NULL, event_seq = event_seq + 2 WHERE id = $1 RETURNING ",
                    run_columns!(),
                    ", event_seq"
                ),
                events: vec![
                    NewEvent::new(
                        event::RUN_RETRY,
                        json!({"error": error, "retry_at": crate::types::rfc3339(at), "failures": before.failures + 1}),
                    ),
                    NewEvent::new(
                        event::RUN_STATUS,
                        event_data(RunStatus::Queued, before.status, Some(&error)),
                    ),
                ],
                args: vec![
                    run,
                    Arg::time(at),
                    Arg::text(error.error_type),
                    Arg::text(error.message),
                    Arg::time(now),
                ],
                n: 2,
                ready: true,
            }
        }
        Finish::Release => FinishPlan {
            sql: concat!(
                "UPDATE runs SET status = 'queued', scheduled_at = $2, updated_at = $2, ",
                "lease_owner = NULL, lease_expires_at = NULL, event_seq = event_seq + 1 ",
                "WHERE id = $1 RETURNING ",
                run_columns!(),
                ", event_seq"
            ),
            events: vec![NewEvent::new(
                event::RUN_STATUS,
                event_data(RunStatus::Queued, before.status, None),
            )],
            args: vec![run, Arg::time(now)],
            n: 1,
            ready: true,
        },
        // Decided while the worker was parking the run: back to the queue at once.
        Finish::WaitForApproval if !pending => FinishPlan {
            sql: concat!(
                "UPDATE runs SET scheduled_at = $2, updated_at = $2, lease_owner = NULL, ",
                "lease_expires_at = NULL WHERE id = $1 RETURNING ",
                run_columns!(),
                ", event_seq"
            ),
            events: Vec::new(),
            args: vec![run, Arg::time(now)],
            n: 0,
            ready: true,
        },
        Finish::WaitForApproval => FinishPlan {
            sql: concat!(
                "UPDATE runs SET status = 'waiting_approval', updated_at = $2, ",
                "lease_owner = NULL, lease_expires_at = NULL, event_seq = event_seq + 1 ",
                "WHERE id = $1 RETURNING ",
                run_columns!(),
                ", event_seq"
            ),
            events: vec![NewEvent::new(
                event::RUN_STATUS,
                event_data(RunStatus::WaitingApproval, before.status, None),
            )],
            args: vec![run, Arg::time(now)],
            n: 1,
            ready: false,
        },
    }
}

/// After the plan's update returned the run `after` with its last event number `seq`: adds
/// `run.completed` when the run ended, and returns the signals to announce.
pub(crate) fn complete_plan(plan: &mut FinishPlan, after: &Run, seq: i64) -> Vec<Signal> {
    if after.status.is_terminal() {
        plan.events.push(NewEvent::new(event::RUN_COMPLETED, completed_data(after)));
    }
    debug_assert_eq!(i64::try_from(plan.events.len()).ok(), Some(plan.n));
    let mut signals = vec![Signal::RunEvent { run: after.id, seq }];
    if plan.ready || after.status.is_terminal() {
        // A terminal run may free its conversation for the next queued run.
        signals.push(Signal::RunsReady);
    }
    signals
}

impl_inherent_for_backends!(Db => {
    /// Ends the attempt of `lease` inside `tx` (see [`RunStore::finish_attempt`]), adding
    /// `active_ms` to the run's active time; returns the run afterwards and the signals to
    /// broadcast once `tx` commits.
    async fn finish_in(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        lease: &Lease,
        active_ms: u64,
        finish: Finish,
        now: OffsetDateTime,
    ) -> StoreResult<(Run, Vec<Signal>)> {
        // The fence reads the run as it was (bar `updated_at` and the active time).
        let before: Run = sqlx::query_as::<_, RunRow>(FENCE_FINISH_SQL)
            .bind(DbUuid::from(lease.run_id))
            .bind(i64::from(lease.attempt))
            .bind(&lease.worker)
            .bind(DbTime(now))
            .bind(i64::try_from(active_ms).unwrap_or(i64::MAX))
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .ok_or(StoreError::LeaseLost)?
            .try_into()?;
        let pending = matches!(finish, Finish::WaitForApproval)
            && self.has_pending_approvals(tx, lease.run_id).await?;
        let mut plan = plan_finish(&before, finish, pending, now);
        let update =
            bind_args!(sqlx::query_as::<_, ClaimedRow>(plan.sql), std::mem::take(&mut plan.args));
        let row = update.fetch_one(&mut **tx).await.map_err(|e| map_err(ENTITY, e))?;
        let seq = row.event_seq;
        let after: Run = row.run.try_into()?;
        if after.status.is_terminal() {
            self.cancel_pending_approvals(tx, lease.run_id, now).await?;
        }
        let signals = complete_plan(&mut plan, &after, seq);
        self.insert_reserved_events(tx, lease.run_id, seq - plan.n + 1, &plan.events, now).await?;
        self.announce_all(tx, &signals).await.map_err(|e| map_err(ENTITY, e))?;
        Ok((after, signals))
    }
});

impl_for_backends!(RunStore {
    async fn create_run(&self, new: NewRun) -> StoreResult<Created> {
        self.insert_run(new).await
    }

    async fn run(&self, owner: Option<UserId>, id: RunId) -> StoreResult<Run> {
        sqlx::query_as::<_, RunRow>(select_runs!("WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)"))
            .bind(DbUuid::from(id))
            .bind(owner.map(DbUuid::from))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()
    }

    async fn list_runs(
        &self,
        owner: Option<UserId>,
        filter: RunFilter,
        page: PageRequest<RunId>,
    ) -> StoreResult<Page<Run, RunId>> {
        let rows = sqlx::query_as::<_, RunRow>(select_runs!(
            "WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR project_id = $2) ",
            "AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT +$5"
        ))
        .bind(owner.map(DbUuid::from))
        .bind(filter.project_id.map(DbUuid::from))
        .bind(filter.status.map(RunStatus::as_str))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let runs = rows.into_iter().map(Run::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(runs, page.limit, |r| r.id))
    }

    async fn request_cancel(&self, owner: Option<UserId>, id: RunId) -> StoreResult<Run> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let run: Run = sqlx::query_as::<_, RunRow>(select_runs!(
            "WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)"
        ))
        .bind(DbUuid::from(id))
        .bind(owner.map(DbUuid::from))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?
        .try_into()?;
        let held = run.lease_expires_at.is_some();
        if run.status.is_terminal() {
            return Ok(run);
        }
        let mut signals = Vec::new();
        if run.status == RunStatus::Running && held {
            // A worker holds it: flag it; the worker stops within its cancel-poll interval.
            sqlx::query(
                "UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, $2), \
                 updated_at = $2 WHERE id = $1",
            )
            .bind(DbUuid::from(id))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
            signals.push(Signal::CancelRequested { run: id });
        } else {
            let error = RunError::new("cancelled", "the run was cancelled");
            sqlx::query(
                "UPDATE runs SET status = 'cancelled', cancel_requested_at = COALESCE(cancel_requested_at, $2), \
                 error_type = $3, error_message = $4, finished_at = $2, updated_at = $2, \
                 lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
            )
            .bind(DbUuid::from(id))
            .bind(DbTime(now))
            .bind(&error.error_type)
            .bind(&error.message)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
            let mut after: Run = sqlx::query_as::<_, RunRow>(select_runs!("WHERE id = $1"))
                .bind(DbUuid::from(id))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| map_err(ENTITY, e))?
                .try_into()?;
            after.status = RunStatus::Cancelled;
            let events = vec![
                NewEvent::new(
                    event::RUN_STATUS,
                    event_data(RunStatus::Cancelled, run.status, Some(&error)),
                ),
                NewEvent::new(event::RUN_COMPLETED, completed_data(&after)),
            ];
            self.cancel_pending_approvals(&mut tx, id, now).await?;
            let seq = self.insert_events(&mut tx, id, events, now).await?;
            signals.push(Signal::RunEvent { run: id, seq });
        }
        for s in &signals {
            self.announce(&mut tx, *s).await.map_err(|e| map_err(ENTITY, e))?;
        }
        let run: Run = sqlx::query_as::<_, RunRow>(select_runs!("WHERE id = $1"))
            .bind(DbUuid::from(id))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        for s in signals {
            self.broadcast(s);
        }
        Ok(run)
    }

    async fn claim_runs(&self, worker: &str, limit: u32, lease: Duration) -> StoreResult<Vec<Run>> {
        self.claim(worker, limit, lease).await
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        extend: Duration,
        progress: Option<(u8, String)>,
    ) -> StoreResult<Heartbeat> {
        self.renew(lease, extend, progress).await
    }

    async fn steps(&self, run: RunId) -> StoreResult<Vec<Step>> {
        self.step_rows(run).await?.into_iter().map(Step::try_from).collect()
    }

    async fn record_steps(
        &self,
        lease: &Lease,
        steps: Vec<Step>,
        usage: Option<RunUsage>,
        events: Vec<NewEvent>,
    ) -> StoreResult<()> {
        self.journal(lease, steps, usage, events).await
    }

    async fn append_events(&self, lease: &Lease, events: Vec<NewEvent>) -> StoreResult<()> {
        self.append(lease, events).await
    }

    async fn events(&self, run: RunId, after: i64, limit: u32) -> StoreResult<Vec<RunEvent>> {
        let rows: Vec<(i64, String, Json<Value>, DbTime)> = sqlx::query_as(
            "SELECT seq, event_type, data, created_at FROM run_events \
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT +$3",
        )
        .bind(DbUuid::from(run))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(rows
            .into_iter()
            .map(|(seq, event_type, data, created_at)| RunEvent {
                run_id: run,
                seq,
                event_type,
                data: data.0,
                created_at: created_at.0,
            })
            .collect())
    }

    async fn end_attempt(&self, lease: &Lease, active_ms: u64, finish: Finish) -> StoreResult<Run> {
        self.end(lease, active_ms, finish).await
    }

    async fn rescue_expired(&self, max_attempts_error: &str) -> StoreResult<u32> {
        let now = self.now();
        let expired: Vec<(DbUuid, i64, String, bool)> = sqlx::query_as(
            "SELECT id, attempt, lease_owner, cancel_requested_at IS NOT NULL FROM runs \
             WHERE lease_owner IS NOT NULL AND lease_expires_at < $1 \
             ORDER BY lease_expires_at LIMIT 100",
        )
        .bind(DbTime(now))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        if expired.is_empty() {
            return Ok(0);
        }
        // After a node dies, all its runs expire together: one transaction (one commit to wait
        // for) rescues them all, so the last is not a hundred commits late.
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let mut rescued = 0;
        let mut signals = Vec::new();
        for (id, attempt, owner, cancel_requested) in expired {
            let lease = Lease { run_id: id.0.into(), attempt: count(attempt), worker: owner };
            let finish = if cancel_requested {
                Finish::Done {
                    status: RunStatus::Cancelled,
                    result: None,
                    error: Some(RunError::new("cancelled", "the run was cancelled")),
                }
            } else {
                let error =
                    RunError::new(max_attempts_error, "the worker running this run stopped responding");
                Finish::Retry { after: Duration::ZERO, error }
            };
            match self.finish_in(&mut tx, &lease, 0, finish, now).await {
                Ok((_, more)) => {
                    rescued += 1;
                    signals.extend(more);
                }
                // Its worker came back, or another node rescued it first.
                Err(StoreError::LeaseLost) => {}
                Err(e) => return Err(e),
            }
        }
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        for s in signals {
            self.broadcast(s);
        }
        Ok(rescued)
    }

    async fn cancel_requested(&self, worker_prefix: &str) -> StoreResult<Vec<RunId>> {
        let rows: Vec<(DbUuid,)> = sqlx::query_as(
            "SELECT id FROM runs WHERE status = 'running' AND cancel_requested_at IS NOT NULL \
             AND lease_owner LIKE $1",
        )
        .bind(format!("{worker_prefix}%"))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(rows.into_iter().map(|(id,)| id.0.into()).collect())
    }

    async fn put_run_blob(&self, lease: &Lease, content: Vec<u8>) -> StoreResult<uuid::Uuid> {
        let now = self.now();
        let id = uuid::Uuid::now_v7();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        self.fence(&mut tx, lease, now).await?;
        sqlx::query("INSERT INTO run_blobs (id, run_id, content, created_at) VALUES ($1, $2, $3, $4)")
            .bind(DbUuid(id))
            .bind(DbUuid::from(lease.run_id))
            .bind(content)
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        Ok(id)
    }

    async fn run_blob(&self, run: RunId, id: uuid::Uuid) -> StoreResult<Vec<u8>> {
        let (content,): (Vec<u8>,) =
            sqlx::query_as("SELECT content FROM run_blobs WHERE id = $1 AND run_id = $2")
                .bind(DbUuid(id))
                .bind(DbUuid::from(run))
                .fetch_one(self.reader())
                .await
                .map_err(|e| map_err("blob", e))?;
        Ok(content)
    }

    async fn delete_runs_before(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        sqlx::query(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE finished_at IS NOT NULL \
             AND finished_at < $1 AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
             ORDER BY finished_at LIMIT +$2)",
        )
        .bind(DbTime(before))
        .bind(i64::from(limit))
        .execute(self.writer())
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| map_err(ENTITY, e))
    }
});

/// The hot writes on PostgreSQL: sqlx transactions (SQLite's are in `sqlite_runs.rs`).
impl crate::PgStore {
    pub(crate) async fn insert_run(&self, new: NewRun) -> StoreResult<Created> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        if let Some(key) = &new.idempotency_key {
            let existing = sqlx::query_as::<_, RunRow>(RUN_BY_KEY_SQL)
                .bind(DbUuid::from(new.owner_id))
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(ENTITY, e))?;
            if let Some(row) = existing {
                return Ok(Created::Existing(row.try_into()?));
            }
        }
        if let (true, Some(conversation)) = (new.reject_if_busy, new.conversation_id) {
            let busy: Option<(DbUuid,)> = sqlx::query_as(BUSY_SQL)
                .bind(DbUuid::from(conversation))
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| map_err(ENTITY, e))?;
            if busy.is_some() {
                return Ok(Created::ConversationBusy);
            }
        }
        let id = RunId::new();
        let inserted = sqlx::query_as::<_, RunRow>(INSERT_RUN_SQL)
            .bind(DbUuid::from(id))
            .bind(DbUuid::from(new.owner_id))
            .bind(new.project_id.map(DbUuid::from))
            .bind(new.conversation_id.map(DbUuid::from))
            .bind(&new.agent)
            .bind(Json(&new.input))
            .bind(i64::from(new.max_attempts))
            .bind(Json(RunUsage::default()))
            .bind(&new.idempotency_key)
            .bind(DbTime(now))
            .fetch_one(&mut *tx)
            .await;
        let row = match inserted {
            Ok(row) => row,
            Err(err) => {
                // Two requests with the same key raced: the other one's run is the answer.
                if let (Some(key), StoreError::Conflict { .. }) =
                    (&new.idempotency_key, map_err(ENTITY, err))
                {
                    drop(tx);
                    let row = sqlx::query_as::<_, RunRow>(RUN_BY_KEY_SQL)
                        .bind(DbUuid::from(new.owner_id))
                        .bind(key)
                        .fetch_one(self.writer())
                        .await
                        .map_err(|e| map_err(ENTITY, e))?;
                    return Ok(Created::Existing(row.try_into()?));
                }
                return Err(StoreError::Backend("creating the run failed".into()));
            }
        };
        sqlx::query(crate::steps::INSERT_EVENT_SQL)
            .bind(DbUuid::from(id))
            .bind(1_i64)
            .bind(event::RUN_STATUS)
            .bind(Json(json!({"status": RunStatus::Queued})))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        self.announce_all(&mut tx, &[Signal::RunsReady, Signal::RunEvent { run: id, seq: 1 }])
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        self.broadcast(Signal::RunsReady);
        self.broadcast(Signal::RunEvent { run: id, seq: 1 });
        Ok(Created::New(row.try_into()?))
    }

    pub(crate) async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<Run>> {
        let now = self.now();
        let mut tx = self.begin_claim().await.map_err(|e| map_err(ENTITY, e))?;
        let candidates: Vec<(DbUuid, String)> = sqlx::query_as(Self::CLAIM_SQL)
            .bind(DbTime(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        if candidates.is_empty() {
            tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
            return Ok(Vec::new());
        }
        // A claim is a handful of statements however many runs it takes: under load every
        // round trip inside the claim's transaction delays every run of the batch.
        let list = |from: usize, n: usize| {
            (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        };
        let sql = format!(
            "UPDATE runs SET status = 'running', attempt = attempt + 1, lease_owner = $1, \
             lease_expires_at = $2, started_at = COALESCE(started_at, $3), updated_at = $3, \
             event_seq = event_seq + CASE WHEN status = 'queued' THEN 1 ELSE 0 END \
             WHERE id IN ({}) RETURNING {}, event_seq",
            list(4, candidates.len()),
            run_columns!()
        );
        // Only placeholders and constant column names are interpolated.
        let mut update = sqlx::query_as::<_, ClaimedRow>(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(DbTime(now + duration_ms(lease)))
            .bind(DbTime(now));
        for (id, _) in &candidates {
            update = update.bind(*id);
        }
        let rows = update.fetch_all(&mut *tx).await.map_err(|e| map_err(ENTITY, e))?;
        let mut by_id: std::collections::HashMap<Uuid, (Run, i64)> =
            std::collections::HashMap::new();
        for row in rows {
            let seq = row.event_seq;
            let run: Run = row.run.try_into()?;
            by_id.insert(*run.id.as_uuid(), (run, seq));
        }
        let mut claimed = Vec::with_capacity(candidates.len());
        let mut events = Vec::new();
        for (id, previous) in candidates {
            let Some((run, seq)) = by_id.remove(&id.0) else { continue };
            if previous == RunStatus::Queued.as_str() {
                events.push((run.id, seq, claimed_data(&run)));
            }
            claimed.push(run);
        }
        if !events.is_empty() {
            let values = (0..events.len())
                .map(|i| {
                    format!(
                        "(${}, ${}, '{}', ${}, $1)",
                        2 + 3 * i,
                        3 + 3 * i,
                        event::RUN_STATUS,
                        4 + 3 * i
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO run_events (run_id, seq, event_type, data, created_at) VALUES {values}"
            );
            // Only placeholders and a constant event type are interpolated.
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(DbTime(now));
            for (run, seq, data) in &events {
                insert = insert.bind(DbUuid::from(*run)).bind(*seq).bind(Json(data));
            }
            insert.execute(&mut *tx).await.map_err(|e| map_err(ENTITY, e))?;
        }
        let signals: Vec<Signal> =
            events.iter().map(|(run, seq, _)| Signal::RunEvent { run: *run, seq: *seq }).collect();
        self.announce_all(&mut tx, &signals).await.map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
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
        let (progress_pct, step) = progress_columns(progress);
        let row: Option<(Option<DbTime>,)> = sqlx::query_as(HEARTBEAT_SQL)
            .bind(DbUuid::from(lease.run_id))
            .bind(i64::from(lease.attempt))
            .bind(&lease.worker)
            .bind(DbTime(now + duration_ms(extend)))
            .bind(DbTime(now))
            .bind(progress_pct)
            .bind(step)
            .fetch_optional(self.writer())
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        match row {
            Some((cancel,)) => Ok(Heartbeat { cancel_requested: cancel.is_some() }),
            None => Err(StoreError::LeaseLost),
        }
    }

    pub(crate) async fn journal(
        &self,
        lease: &Lease,
        steps: Vec<Step>,
        usage: Option<RunUsage>,
        events: Vec<NewEvent>,
    ) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        // Two round trips inside the transaction: the fence, which also reserves the events'
        // numbers and reads the usage to add to, then everything else as one statement.
        let (current, last) = self.fence_reserving(&mut tx, lease, events.len(), now).await?;
        let total = usage.map(|delta| {
            let mut total = current;
            total.add(&delta);
            total
        });
        let sql = crate::steps::journal_sql(steps.len(), total.is_some(), events.len());
        // Only placeholders and constant names are interpolated.
        let mut write = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(DbTime(now))
            .bind(DbUuid::from(lease.run_id));
        for step in &steps {
            write = write
                .bind(i64::from(step.seq))
                .bind(step.kind.as_str())
                .bind(&step.name)
                .bind(step.status.as_str())
                .bind(step.side_effects)
                .bind(Json(&step.input))
                .bind(step.output.as_ref().map(Json))
                .bind(i64::from(step.attempt))
                .bind(DbTime(step.started_at))
                .bind(step.completed_at.map(DbTime));
        }
        for (i, event) in (0_i64..).zip(&events) {
            write = write.bind(last - n + 1 + i).bind(event.event_type).bind(Json(&event.data));
        }
        if let Some(total) = &total {
            write = write.bind(Json(total));
        }
        let signal = Signal::RunEvent { run: lease.run_id, seq: last };
        if let (Some(channel), false) = (self.notify_channel(), events.is_empty()) {
            write = write.bind(channel.to_owned()).bind(crate::signals::encode(signal));
        }
        write.execute(&mut *tx).await.map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        if !events.is_empty() {
            self.broadcast(signal);
        }
        Ok(())
    }

    pub(crate) async fn append(&self, lease: &Lease, events: Vec<NewEvent>) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let (_, seq) = self.fence_reserving(&mut tx, lease, events.len(), now).await?;
        let first = seq - i64::try_from(events.len()).unwrap_or(i64::MAX) + 1;
        self.insert_reserved_events(&mut tx, lease.run_id, first, &events, now).await?;
        let signal = Signal::RunEvent { run: lease.run_id, seq };
        self.announce(&mut tx, signal).await.map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        self.broadcast(signal);
        Ok(())
    }

    pub(crate) async fn end(
        &self,
        lease: &Lease,
        active_ms: u64,
        finish: Finish,
    ) -> StoreResult<Run> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let (after, signals) = self.finish_in(&mut tx, lease, active_ms, finish, now).await?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        for s in signals {
            self.broadcast(s);
        }
        Ok(after)
    }
}

impl crate::PgStore {
    pub(crate) async fn step_rows(&self, run: RunId) -> StoreResult<Vec<crate::steps::StepRow>> {
        sqlx::query_as::<_, crate::steps::StepRow>(crate::steps::STEPS_SQL)
            .bind(DbUuid::from(run))
            .fetch_all(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))
    }
}
