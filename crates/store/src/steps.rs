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

impl_inherent_for_backends!(Db => {
    /// Proves `lease` still holds the run (touching it, which on PostgreSQL also locks the row
    /// until commit) and returns the run's usage so far.
    pub(crate) async fn fence(
        &self,
        tx: &mut sqlx::Transaction<'_, Db>,
        lease: &Lease,
        now: OffsetDateTime,
    ) -> StoreResult<RunUsage> {
        let row: Option<(Json<RunUsage>,)> = sqlx::query_as(
            "UPDATE runs SET updated_at = $4 WHERE id = $1 AND attempt = $2 AND lease_owner = $3 \
             RETURNING usage",
        )
        .bind(DbUuid::from(lease.run_id))
        .bind(i64::from(lease.attempt))
        .bind(&lease.worker)
        .bind(DbTime(now))
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| map_err("run", e))?;
        row.map(|(usage,)| usage.0).ok_or(StoreError::LeaseLost)
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
        let mut seq = last - n;
        for event in events {
            seq += 1;
            sqlx::query(
                "INSERT INTO run_events (run_id, seq, event_type, data, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(DbUuid::from(run))
            .bind(seq)
            .bind(event.event_type)
            .bind(Json(&event.data))
            .bind(DbTime(now))
            .execute(&mut **tx)
            .await
            .map_err(|e| map_err("run", e))?;
        }
        Ok(last)
    }
});
