//! The SQLite backend: WAL, one writer connection, a pool of readers.
//!
//! SQLite has a single writer. Funnelling every write through one connection avoids
//! `SQLITE_BUSY` between our own connections (the busy timeout then only matters for other
//! processes, such as `agentd migrate` run beside a server) and keeps write latency predictable.

use std::str::FromStr;
use std::sync::Arc;

use agentd_core::{Clock, StoreResult, SystemClock};
use secrecy::ExposeSecret;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use crate::DatabaseOptions;
use crate::error::{map_err, map_migrate_err};

/// The store on an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    pub(crate) async fn connect(options: &DatabaseOptions) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(options.url.expose_secret())
            .map_err(|e| map_err("database", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit survives power loss, not only a crash of agentd.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.sqlite_busy_timeout)
            .foreign_keys(true);
        // The writer opens (and creates) the file first; readers then open it read-only.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.connect_timeout)
            .connect_with(base.clone())
            .await
            .map_err(|e| map_err("database", e))?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.connect_timeout)
            .connect_with(base.read_only(true).create_if_missing(false))
            .await
            .map_err(|e| map_err("database", e))?;
        Ok(Self { write, read, clock: Arc::new(SystemClock) })
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.write
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.write).await.map_err(map_migrate_err)
    }

    pub(crate) async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}
