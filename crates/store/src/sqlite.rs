//! The SQLite backend: WAL, one writer connection, a pool of readers.
//!
//! SQLite has a single writer. Funnelling every write through one connection avoids
//! `SQLITE_BUSY` between our own connections (the busy timeout then only matters for other
//! processes, such as `agentd migrate` run beside a server) and keeps write latency
//! predictable. The hot writes of runs share transactions on it (see `group.rs`).

use std::str::FromStr;
use std::sync::Arc;

use agentd_core::{Clock, StoreError, StoreResult};
use secrecy::ExposeSecret;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use agentd_core::signal::{Signal, Signals};

use crate::DatabaseOptions;
use crate::error::{map_err, map_migrate_err};
use crate::group::GroupWriter;
use crate::signals::SIGNAL_CAPACITY;
use crate::sqlite_calls::Readers;

/// The store on an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    clock: Arc<dyn Clock>,
    signals: tokio::sync::broadcast::Sender<Signal>,
    group: GroupWriter,
    readers: Readers,
}

impl SqliteStore {
    pub(crate) async fn connect(
        options: &DatabaseOptions,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(options.url.expose_secret())
            .map_err(|e| map_err("database", e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL (the default): a commit survives power loss, not only a crash of agentd.
            .synchronous(match options.sqlite_synchronous {
                crate::SqliteSynchronous::Full => SqliteSynchronous::Full,
                crate::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(options.sqlite_busy_timeout)
            .foreign_keys(true);
        let path = base.get_filename().to_path_buf();
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
        let group =
            GroupWriter::spawn(write.clone()).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let readers = Readers::new(path, options.sqlite_busy_timeout);
        Ok(Self {
            write,
            read,
            clock,
            signals: tokio::sync::broadcast::channel(SIGNAL_CAPACITY).0,
            group,
            readers,
        })
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// The group writer, for the hot writes of runs (see `group.rs`).
    pub(crate) const fn group(&self) -> &GroupWriter {
        &self.group
    }

    /// Point reads run by the caller (see `sqlite_calls.rs`).
    pub(crate) const fn readers(&self) -> &Readers {
        &self.readers
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Announces `signal` to other nodes from inside a transaction. One SQLite file has one
    /// node, so there is no one else to tell.
    pub(crate) async fn announce(
        &self,
        _conn: &mut sqlx::SqliteConnection,
        _signal: Signal,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to announce beyond this process (see `announce`).
    pub(crate) async fn announce_all(
        &self,
        _conn: &mut sqlx::SqliteConnection,
        _signals: &[Signal],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Tells this node's waiters, after the change committed.
    pub(crate) fn broadcast(&self, signal: Signal) {
        // No receiver is fine: nobody is waiting.
        let _ = self.signals.send(signal);
    }

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.write).await.map_err(map_migrate_err)
    }

    pub(crate) async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

impl Signals for SqliteStore {
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }
}
