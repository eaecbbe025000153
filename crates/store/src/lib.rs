//! SQLite and PostgreSQL implementations of the `agentd-core` store traits.
//!
//! One deployment uses one database. SQLite (the default) runs in WAL mode with a single writer
//! connection and a small pool of readers; PostgreSQL is for several nodes sharing one database.
//! Queries are sqlx runtime queries written once and compiled for both backends (see `sql.rs`);
//! where the dialects must differ, each backend has its own code. Migrations per dialect are
//! embedded in the binary. This crate maps every driver error to a `StoreError`: nothing above it
//! sees `sqlx::Error`.

mod api_keys;
mod approvals;
mod conversations;
mod error;
mod files;
mod group;
mod health;
mod lockouts;
mod postgres;
mod projects;
mod runs;
mod sessions;
mod signals;
mod sql;
mod sqlite;
mod sqlite_calls;
mod sqlite_runs;
mod steps;
mod types;
mod usage;
mod users;

use std::sync::Arc;
use std::time::Duration;

use agentd_core::{Clock, Store, StoreError, StoreResult, SystemClock};
use secrecy::{ExposeSecret, SecretString};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`sqlite://path`).
    Sqlite,
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres,
}

impl Backend {
    /// The backend a database URL selects, or `None` for an unknown scheme.
    #[must_use]
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How to reach the database and size its pools.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    /// `sqlite://path` or `postgres://user:password@host/db`.
    pub url: SecretString,
    /// PostgreSQL: pool size. SQLite: the number of reader connections (there is one writer).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a connection: at startup, and for each query when the pool is busy.
    pub connect_timeout: Duration,
    /// SQLite: how long a writer waits on a lock held by another process before failing.
    pub sqlite_busy_timeout: Duration,
    /// SQLite: whether each commit waits for the disk.
    pub sqlite_synchronous: SqliteSynchronous,
}

/// How SQLite makes a commit durable (its `synchronous` pragma, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSynchronous {
    /// Every commit is flushed to the disk before it returns: it survives an OS crash or a power
    /// loss.
    #[default]
    Full,
    /// Commits are flushed at checkpoints: a crash of agentd loses nothing, an OS crash or power
    /// loss may lose the last commits (the database stays consistent). Commits are much faster.
    Normal,
}

/// An open database: its pools and the store built on them.
#[derive(Debug, Clone)]
pub struct Database {
    backend: Backend,
    store: Arc<dyn Store>,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Database {
    /// Opens the database and proves it answers. Fails fast, within `connect_timeout`, when it is
    /// unreachable. For SQLite the file and its directory must be creatable.
    ///
    /// # Errors
    /// `Unavailable` when the database cannot be reached; `Backend` when the URL is invalid.
    pub async fn connect(options: &DatabaseOptions) -> StoreResult<Self> {
        Self::connect_with_clock(options, Arc::new(SystemClock)).await
    }

    /// Opens the database as [`Database::connect`] does, with a store that takes the time from
    /// `clock` (so that tests can write rows as if at another time).
    ///
    /// # Errors
    /// As [`Database::connect`].
    pub async fn connect_with_clock(
        options: &DatabaseOptions,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let url = options.url.expose_secret();
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::Backend("database URL must start with sqlite:// or postgres://".into())
        })?;
        let connect = async {
            match backend {
                Backend::Sqlite => {
                    SqliteStore::connect(options, clock).await.map(|s| Inner::Sqlite(Arc::new(s)))
                }
                Backend::Postgres => {
                    PgStore::connect(options, clock).await.map(|s| Inner::Postgres(Arc::new(s)))
                }
            }
        };
        let inner = tokio::time::timeout(options.connect_timeout, connect).await.map_err(
            |_elapsed| {
                StoreError::Unavailable(
                    format!("no connection within {:?}", options.connect_timeout).into(),
                )
            },
        )??;
        let store: Arc<dyn Store> = match &inner {
            Inner::Sqlite(s) => s.clone(),
            Inner::Postgres(s) => s.clone(),
        };
        store.ping().await?;
        Ok(Self { backend, store, inner })
    }

    /// Applies the embedded migrations that have not run yet.
    ///
    /// # Errors
    /// When a migration fails or the database history does not match the embedded migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.inner {
            Inner::Sqlite(s) => s.migrate().await,
            Inner::Postgres(s) => s.migrate().await,
        }
    }

    /// The store the application uses.
    #[must_use]
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Which backend this is.
    #[must_use]
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every pooled connection, waiting for checked-out ones to come back.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Sqlite(s) => s.close().await,
            Inner::Postgres(s) => s.close().await,
        }
    }
}
