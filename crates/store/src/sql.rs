//! Writing a query once for both backends.
//!
//! Most of our SQL is the same on SQLite and PostgreSQL: `$n` placeholders work on both, and the
//! column types in `types.rs` encode natively on each. [`impl_for_backends!`] compiles one trait
//! implementation body for [`SqliteStore`](crate::SqliteStore) and [`PgStore`](crate::PgStore);
//! inside it, `self.reader()` and `self.writer()` give the right pool and `self.now()` the time.
//!
//! A `LIMIT` takes its parameter as `LIMIT +$n`. SQLite's planner reads the value of a plain
//! `LIMIT $n` when it prepares the statement, which marks the statement to be prepared again
//! whenever that parameter is bound: every execution of a cached statement would parse and plan
//! it anew. The unary plus (a no-op on both databases) keeps the plan independent of the value.

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

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    /// How often a cached statement was prepared again over ten executions with new values.
    fn reprepared(sql: &str) -> i32 {
        let db = rusqlite::Connection::open_in_memory().unwrap_or_else(|e| panic!("open: {e}"));
        db.execute_batch(
            "CREATE TABLE f (p TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (p, path))",
        )
        .unwrap_or_else(|e| panic!("create: {e}"));
        let mut times = 0;
        for i in 0..10_i64 {
            let mut stmt = db.prepare_cached(sql).unwrap_or_else(|e| panic!("prepare: {e}"));
            let params: [&dyn rusqlite::ToSql; 3] = [&format!("p{i}"), &format!("a{i}"), &(i + 1)];
            crate::sqlite_calls::bind(&mut stmt, &params).unwrap_or_else(|e| panic!("bind: {e}"));
            let mut rows = stmt.raw_query();
            while rows.next().unwrap_or_else(|e| panic!("step: {e}")).is_some() {}
            drop(rows);
            times = stmt.get_status(StatementStatus::RePrepare);
        }
        times
    }

    #[test]
    fn a_limit_parameter_with_a_plus_keeps_the_prepared_plan() {
        let select = "SELECT path FROM f WHERE p = $1 AND path > $2 ORDER BY path LIMIT ";
        assert_eq!(
            reprepared(&format!("{select}$3")),
            10,
            "SQLite no longer re-plans: update sql.rs"
        );
        assert_eq!(reprepared(&format!("{select}+$3")), 0);
    }

    #[test]
    fn no_statement_of_the_store_takes_a_plain_limit_parameter() {
        // Every source file of the store but this one, which states the rule.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let sources: Vec<(std::path::PathBuf, String)> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.unwrap_or_else(|e| panic!("{dir}: {e}")).path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .filter(|path| !path.ends_with("sql.rs"))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
                (path, text)
            })
            .collect();
        assert!(sources.len() > 15, "the store's sources were not found in {dir}");
        for (path, source) in sources {
            assert!(
                !source.contains("LIMIT $"),
                "{}: a `LIMIT $n` without the plus (see sql.rs)",
                path.display()
            );
        }
    }
}
