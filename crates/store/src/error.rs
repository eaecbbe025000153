//! Mapping driver errors to domain errors.

use agentd_core::StoreError;

/// PostgreSQL SQLSTATE classes and codes that mean "the server is going away or not there".
fn is_pg_unavailable(code: &str) -> bool {
    // 08: connection exception; 57P01..57P03: admin/crash shutdown, cannot connect now;
    // 53300: too many connections.
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Maps a sqlx error for an operation on `entity` (`user`, `project`, ...).
pub(crate) fn map_err(entity: &'static str, err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound { entity },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
        sqlx::Error::Database(db) => {
            let unique = db.is_unique_violation();
            let code = db.code().map(|c| c.into_owned());
            if unique {
                StoreError::Conflict { entity, field: unique_field(db.message()) }
            } else if code.as_deref().is_some_and(is_pg_unavailable) {
                StoreError::Unavailable(Box::new(sqlx::Error::Database(db)))
            } else {
                StoreError::Backend(Box::new(sqlx::Error::Database(db)))
            }
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

/// The column a unique violation is about, from the constraint or column named in the message.
/// Only the names our schema uses are recognised; anything else is reported as `key`.
fn unique_field(message: &str) -> &'static str {
    const FIELDS: [&str; 3] = ["email", "idempotency_key", "path"];
    FIELDS.iter().copied().find(|f| message.contains(f)).unwrap_or("key")
}

/// Maps an error raised while migrating.
pub(crate) fn map_migrate_err(err: sqlx::migrate::MigrateError) -> StoreError {
    match err {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => map_err("migration", e),
        other => StoreError::Backend(Box::new(other)),
    }
}
