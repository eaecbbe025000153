//! Writing a query once for both backends.
//!
//! Most of our SQL is the same on SQLite and PostgreSQL: `$n` placeholders work on both, and the
//! column types in `types.rs` encode natively on each. [`impl_for_backends!`] compiles one trait
//! implementation body for [`SqliteStore`](crate::SqliteStore) and [`PgStore`](crate::PgStore);
//! inside it, `self.reader()` and `self.writer()` give the right pool and `self.now()` the time.

/// Implements an `#[async_trait]` store trait for both backends from a single body.
macro_rules! impl_for_backends {
    ($trait:path { $($body:tt)* }) => {
        #[async_trait::async_trait]
        impl $trait for crate::SqliteStore {
            $($body)*
        }

        #[async_trait::async_trait]
        impl $trait for crate::PgStore {
            $($body)*
        }
    };
}

pub(crate) use impl_for_backends;

/// Implements inherent methods for both backends from a single body, in which `$db` names the
/// backend's sqlx database type (for transactions and connections).
macro_rules! impl_inherent_for_backends {
    ($db:ident => { $($body:tt)* }) => {
        const _: () = {
            type $db = sqlx::Sqlite;
            impl crate::SqliteStore {
                $($body)*
            }
        };
        const _: () = {
            type $db = sqlx::Postgres;
            impl crate::PgStore {
                $($body)*
            }
        };
    };
}

pub(crate) use impl_inherent_for_backends;

/// A page limit as the `LIMIT` parameter, fetching one row more than the page holds so that the
/// presence of a next page is known without a count.
pub(crate) fn overfetch_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// A bind value of a statement whose arguments are computed once for both backends (and, on
/// SQLite, for the plain SQLite calls of `sqlite_calls.rs`). `None` is NULL.
pub(crate) enum Arg {
    Uuid(Option<uuid::Uuid>),
    Time(Option<time::OffsetDateTime>),
    Int(Option<i64>),
    Bool(bool),
    Text(Option<String>),
    Json(Option<serde_json::Value>),
}

impl Arg {
    /// An id.
    pub(crate) fn id(v: impl Into<uuid::Uuid>) -> Self {
        Self::Uuid(Some(v.into()))
    }

    /// A time.
    pub(crate) const fn time(v: time::OffsetDateTime) -> Self {
        Self::Time(Some(v))
    }

    /// An integer.
    pub(crate) const fn int(v: i64) -> Self {
        Self::Int(Some(v))
    }

    /// Text.
    pub(crate) fn text(v: impl Into<String>) -> Self {
        Self::Text(Some(v.into()))
    }
}

/// Binds a list of [`Arg`]s to an sqlx query, in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                crate::sql::Arg::Uuid(v) => query.bind(v.map(crate::types::DbUuid)),
                crate::sql::Arg::Time(v) => query.bind(v.map(crate::types::DbTime)),
                crate::sql::Arg::Int(v) => query.bind(v),
                crate::sql::Arg::Bool(v) => query.bind(v),
                crate::sql::Arg::Text(v) => query.bind(v),
                crate::sql::Arg::Json(v) => query.bind(v.map(sqlx::types::Json)),
            };
        }
        query
    }};
}

pub(crate) use bind_args;
