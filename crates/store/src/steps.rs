//! The run journal's rows, and the transaction helpers every run write shares: the lease fence
//! and gap-free event appends.

use agentd_core::run::{Lease, NewEvent, RunUsage, Step};
use agentd_core::{RunId, StoreError, StoreResult};
use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::error::map_err;
use crate::sql::impl_inherent_for_backends;
use crate::types::{DbTime, DbUuid};

#[derive(sqlx::FromRow)]
pub(crate) struct StepRow {
    seq: i64,
    kind: String,
    name: String,
    status: String,
    side_effects: bool,
    input: Json<Value>,
    output: Option<Json<Value>>,
    attempt: i64,
    started_at: DbTime,
    completed_at: Option<DbTime>,
}

/// A run's journal (`$1`), in order.
pub(crate) const STEPS_SQL: &str = "SELECT seq, kind, name, status, side_effects, input, \
    output, attempt, started_at, completed_at FROM run_steps WHERE run_id = $1 ORDER BY seq";

impl crate::SqliteStore {
    pub(crate) async fn step_rows(&self, run: RunId) -> StoreResult<Vec<StepRow>> {
        use crate::sqlite_calls::JsonText;
        self.readers().read(|db| {
            crate::sqlite_calls::query(db, STEPS_SQL, &[&DbUuid::from(run)], |r| {
                Ok(StepRow {
                    seq: r.get(0)?,
                    kind: r.get(1)?,
                    name: r.get(2)?,
                    status: r.get(3)?,
                    side_effects: r.get(4)?,
                    input: Json(r.get::<_, JsonText<Value>>(5)?.0),
                    output: r.get::<_, Option<JsonText<Value>>>(6)?.map(|j| Json(j.0)),
                    attempt: r.get(7)?,
                    started_at: r.get(8)?,
                    completed_at: r.get(9)?,
                })
            })
        })
    }
}

impl TryFrom<StepRow> for Step {
    type Error = StoreError;

    fn try_from(r: StepRow) -> Result<Self, Self::Error> {
        Ok(Self {
            seq: u32::try_from(r.seq).map_err(|e| StoreError::Backend(Box::new(e)))?,
            kind: r.kind.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            name: r.name,
            status: r.status.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            side_effects: r.side_effects,
            input: r.input.0,
            output: r.output.map(|o| o.0),
            attempt: u32::try_from(r.attempt).unwrap_or(u32::MAX),
            started_at: r.started_at.0,
            completed_at: r.completed_at.map(|t| t.0),
        })
    }
}

/// The SQL of one multi-row insert of `n` events of one run, all created at `$1`: the run is
/// `$2`, and event `i` binds its sequence number, type and data at `$3 + 3i` onwards.
fn events_values(n: usize, from: usize) -> String {
    (0..n)
        .map(|i| {
            format!("($2, ${}, ${}, ${}, $1)", from + 3 * i, from + 1 + 3 * i, from + 2 + 3 * i)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The start and the end of the upsert of journal steps by `seq` (the rows go between).
macro_rules! step_upsert {
    ($values:expr) => {
        concat!(
            "INSERT INTO run_steps (run_id, seq, kind, name, status, side_effects, input, \
             output, attempt, started_at, completed_at) VALUES ",
            $values,
            " ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status, \
             output = excluded.output, attempt = excluded.attempt, \
             completed_at = excluded.completed_at"
        )
    };
}

/// The upsert of a journal step by `seq`: `$2` the run, `$3`–`$12` the step.
pub(crate) const STEP_UPSERT_SQL: &str =
    step_upsert!("($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");

/// The rows of `n` steps of one run (`$2`), step `i` binding its ten columns from `$3 + 10i`.
fn steps_values(n: usize) -> String {
    (0..n)
        .map(|i| {
            let columns: Vec<String> = (0..10).map(|c| format!("${}", 3 + 10 * i + c)).collect();
            format!("($2, {})", columns.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fence of a worker's write: touches the run while `$1`'s attempt `$2` is held by `$3`,
/// reserving the numbers of `$5` events, and returns its usage and last event number.
pub(crate) const FENCE_RESERVING_SQL: &str = "UPDATE runs SET updated_at = $4, \
    event_seq = event_seq + $5 WHERE id = $1 AND attempt = $2 AND lease_owner = $3 \
    RETURNING usage, event_seq";

/// One event: `$1` the run, `$2` its number, `$3` its type, `$4` its data, `$5` the time.
pub(crate) const INSERT_EVENT_SQL: &str = "INSERT INTO run_events (run_id, seq, event_type, \
    data, created_at) VALUES ($1, $2, $3, $4, $5)";

/// The statement that writes journal steps on PostgreSQL after the fence (which reserved the
/// events' numbers): data-modifying CTEs for the `n_steps` steps (see [`STEP_UPSERT_SQL`]),
/// `n_events` events and, when `with_usage`, the run's usage, ending with the NOTIFY of the
/// events. Binds in this order: `$1` now, `$2` the run, ten per step (`seq` to
/// `completed_at`), three per event (see [`events_values`]), the usage when `with_usage`, then,
/// when there are events, the NOTIFY channel and payload. One round trip, where it used to be
/// one per statement.
pub(crate) fn journal_sql(n_steps: usize, with_usage: bool, n_events: usize) -> String {
    let events_from = 3 + 10 * n_steps;
    let mut next = events_from + 3 * n_events;
    let mut ctes = Vec::new();
    if n_steps > 0 {
        ctes.push(format!(concat!("s AS (", step_upsert!("{}"), ")"), steps_values(n_steps)));
    }
    if n_events > 0 {
        ctes.push(format!(
            "e AS (INSERT INTO run_events (run_id, seq, event_type, data, created_at) VALUES {})",
            events_values(n_events, events_from)
        ));
    }
    if with_usage {
        ctes.push(format!("u AS (UPDATE runs SET usage = ${next} WHERE id = $2)"));
        next += 1;
    }
    let last = if n_events > 0 {
        format!("SELECT pg_notify(${next}, ${})", next + 1)
    } else {
        "SELECT 1".to_owned()
    };
    if ctes.is_empty() { last } else { format!("WITH {} {last}", ctes.join(", ")) }
}

impl_inherent_for_backends!(Db => {
    /// Proves `lease` still holds the run (touching it, which on PostgreSQL also locks the row
    /// until commit) and returns the run's usage so far.
    pub(crate) async fn fence(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> StoreResult<RunUsage> {
        Ok(self.fence_reserving(tx, lease, 0, now).await?.0)
    }

    /// [`fence`](Self::fence) that also reserves the sequence numbers of `n` events in the same
    /// statement: returns the usage and the number of the last event reserved (the first is
    /// `last - n + 1`).
    pub(crate) async fn fence_reserving(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        lease: &Lease,
        n: usize,
        now: OffsetDateTime,
    ) -> StoreResult<(RunUsage, i64)> {
        let row: Option<(Json<RunUsage>, i64)> = sqlx::query_as(FENCE_RESERVING_SQL)
        .bind(DbUuid::from(lease.run_id))
        .bind(i64::from(lease.attempt))
        .bind(&lease.worker)
        .bind(DbTime(now))
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| map_err("run", e))?;
        row.map(|(usage, last)| (usage.0, last)).ok_or(StoreError::LeaseLost)
    }

    /// Appends `events` to the run's log with the next sequence numbers and returns the last.
    pub(crate) async fn insert_events(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        run: RunId,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> StoreResult<i64> {
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let (last,): (i64,) = sqlx::query_as(
            "UPDATE runs SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq",
        )
        .bind(DbUuid::from(run))
        .bind(n)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| map_err("run", e))?;
        self.insert_reserved_events(tx, run, last - n + 1, &events, now).await?;
        Ok(last)
    }

    /// Inserts `events` numbered from `first`, whose numbers the caller reserved on the run row
    /// in this transaction, with one statement.
    pub(crate) async fn insert_reserved_events(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        run: RunId,
        first: i64,
        events: &[NewEvent],
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO run_events (run_id, seq, event_type, data, created_at) VALUES {}",
            events_values(events.len(), 3)
        );
        // Only placeholders are interpolated.
        let mut insert =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(DbTime(now)).bind(DbUuid::from(run));
        for (i, event) in (0_i64..).zip(events) {
            insert = insert.bind(first + i).bind(event.event_type).bind(Json(&event.data));
        }
        insert.execute(&mut **tx).await.map_err(|e| map_err("run", e))?;
        Ok(())
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_statement_numbers_every_parameter_once_in_binding_order() {
        // Two steps, one event, usage, NOTIFY: $1 and $2, 20 step columns, 3 event columns,
        // the usage and the two NOTIFY arguments.
        let sql = journal_sql(2, true, 1);
        assert!(sql.contains("VALUES ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12), ($2, $13,"));
        assert!(sql.contains("$22) ON CONFLICT (run_id, seq)"));
        assert!(sql.contains("VALUES ($2, $23, $24, $25, $1)"));
        assert!(sql.contains("SET usage = $26 WHERE"));
        assert!(sql.ends_with("SELECT pg_notify($27, $28)"));
        assert_eq!(journal_sql(0, false, 0), "SELECT 1");
        assert_eq!(journal_sql(1, false, 0).matches("ON CONFLICT").count(), 1);
    }
}
