//! The store contract suite: the same tests against SQLite (always) and PostgreSQL (when
//! `AGENTD_TEST_DATABASE_URL` is set), each on a fresh database or schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approvals;
mod files;
mod identity;
mod projects;
mod runs;
mod usage;
mod users;

use agentd_store::{Backend, Database};
use agentd_test_support::TestDatabase;

/// A migrated, empty database of `backend`, or `None` when PostgreSQL is not configured.
pub(crate) async fn fresh(backend: Backend) -> Option<(TestDatabase, Database)> {
    let test_db = TestDatabase::of(backend).await?;
    let db = test_db.open().await;
    Some((test_db, db))
}

/// Generates one `#[tokio::test]` per backend for each listed case. A case is an
/// `async fn(&Database)` in the named module.
macro_rules! contract {
    ($module:ident: $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_guard, db) = $crate::fresh(agentd_store::Backend::Sqlite).await.unwrap();
                    super::$case(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((_guard, db)) = $crate::fresh(agentd_store::Backend::Postgres).await else {
                        eprintln!("AGENTD_TEST_DATABASE_URL is not set: PostgreSQL variant skipped");
                        return;
                    };
                    super::$case(&db).await;
                }
            )*
        }
    };
}

pub(crate) use contract;

mod database {
    use super::*;

    async fn migrations_are_idempotent(db: &Database) {
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
    }

    async fn the_store_answers_pings(db: &Database) {
        db.store().ping().await.unwrap();
    }

    contract!(database: migrations_are_idempotent, the_store_answers_pings);
}
