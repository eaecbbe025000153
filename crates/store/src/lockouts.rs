//! Failed sign-in counters.

use agentd_core::StoreResult;
use agentd_core::auth::Lockout;
use agentd_core::store::LockoutStore;
use time::{Duration, OffsetDateTime};

use crate::error::map_err;
use crate::sql::impl_for_backends;
use crate::types::DbTime;

const ENTITY: &str = "lockout";

/// Counters untouched for this long are forgotten.
const FORGET_AFTER: Duration = Duration::days(1);

impl_for_backends!(LockoutStore {
    async fn lockout(&self, key: &str) -> StoreResult<Lockout> {
        let row: Option<(i64, Option<DbTime>)> =
            sqlx::query_as("SELECT failures, locked_until FROM auth_lockouts WHERE key = $1")
                .bind(key)
                .fetch_optional(self.reader())
                .await
                .map_err(|e| map_err(ENTITY, e))?;
        Ok(row.map_or(Lockout { failures: 0, locked_until: None }, |(failures, until)| Lockout {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            locked_until: until.map(|t| t.0),
        }))
    }

    async fn record_failure(&self, key: &str) -> StoreResult<u32> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        sqlx::query("DELETE FROM auth_lockouts WHERE updated_at < $1")
            .bind(DbTime(now - FORGET_AFTER))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        let (failures,): (i64,) = sqlx::query_as(
            "INSERT INTO auth_lockouts (key, failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = auth_lockouts.failures + 1, \
             updated_at = $2 RETURNING failures",
        )
        .bind(key)
        .bind(DbTime(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        Ok(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    async fn lock_until(&self, key: &str, until: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE auth_lockouts SET locked_until = $2 WHERE key = $1")
            .bind(key)
            .bind(DbTime(until))
            .execute(self.writer())
            .await
            .map(drop)
            .map_err(|e| map_err(ENTITY, e))
    }

    async fn clear_lockout(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM auth_lockouts WHERE key = $1")
            .bind(key)
            .execute(self.writer())
            .await
            .map(drop)
            .map_err(|e| map_err(ENTITY, e))
    }
});
