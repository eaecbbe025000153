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
