//! The PostgreSQL backend: one pool shared by readers and writers.

use std::str::FromStr;
use std::sync::Arc;

use agentd_core::{Clock, StoreResult, SystemClock};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use time::OffsetDateTime;

use crate::DatabaseOptions;
use crate::error::{map_err, map_migrate_err};

/// The store on a PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgStore {
    pub(crate) async fn connect(options: &DatabaseOptions) -> StoreResult<Self> {
        let connect = PgConnectOptions::from_str(options.url.expose_secret())
            .map_err(|e| map_err("database", e))?
            .application_name("agentd");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.connect_timeout)
            // A connection that died with the server is noticed before it is handed out.
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(|e| map_err("database", e))?;
        Ok(Self { pool, clock: Arc::new(SystemClock) })
    }

    pub(crate) fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await.map_err(map_migrate_err)
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}
