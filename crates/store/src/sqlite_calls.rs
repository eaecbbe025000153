//! Plain SQLite calls beside sqlx, on the same `libsqlite3-sys`: statements written with `$n`
//! placeholders (the text sqlx runs) bound by number, the column types as `types.rs` stores
//! them, and the point reads that run on the caller's thread ([`Readers`]). The group writer
//! (`group.rs`) runs its closures with these.

use agentd_core::{StoreError, StoreResult};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::sql::Arg;
use crate::types::{DbTime, DbUuid};

/// Point reads on SQLite (a session, a project, a run's journal), run by the calling task on a
/// read-only connection of its own. Through sqlx each read is a hand-over to a connection's
/// thread and back; these take microseconds of the caller's time instead. Only reads of a few
/// rows by key belong here: the caller's thread is busy while they run.
#[derive(Debug)]
pub(crate) struct Readers {
    path: std::path::PathBuf,
    busy_timeout: std::time::Duration,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

impl Readers {
    pub(crate) fn new(path: std::path::PathBuf, busy_timeout: std::time::Duration) -> Self {
        Self { path, busy_timeout, idle: std::sync::Mutex::new(Vec::new()) }
    }

    /// Runs `f` on an idle read connection, or a new one.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let db = match idle {
            Some(db) => db,
            None => {
                use rusqlite::OpenFlags;
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let db =
                    rusqlite::Connection::open_with_flags(&self.path, flags).map_err(map_sqlite)?;
                db.busy_timeout(self.busy_timeout).map_err(map_sqlite)?;
                db
            }
        };
        let out = f(&db);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(db);
        }
        out
    }
}

/// Maps an SQLite error to the store's error.
pub(crate) fn map_sqlite(err: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &err {
        rusqlite::Error::SqliteFailure(e, message) => match e.code {
            ErrorCode::ConstraintViolation
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                let field = ["idempotency_key", "email", "path"]
                    .into_iter()
                    .find(|f| message.as_deref().is_some_and(|m| m.contains(f)))
                    .unwrap_or("key");
                StoreError::Conflict { entity: "run", field }
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen => StoreError::Unavailable(Box::new(err)),
            _ => StoreError::Backend(Box::new(err)),
        },
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound { entity: "run" },
        _ => StoreError::Backend(Box::new(err)),
    }
}

/// Binds `args` to a statement written with `$n` placeholders (the same text sqlx runs):
/// `$n` takes `args[n - 1]`, wherever and however often it appears.
pub(crate) fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[&dyn ToSql]) -> StoreResult<()> {
    for index in 1..=stmt.parameter_count() {
        let n: usize = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                StoreError::Backend("a statement parameter is not of the form $n".into())
            })?;
        let arg = args
            .get(n - 1)
            .ok_or_else(|| StoreError::Backend(format!("no argument for ${n}").into()))?;
        stmt.raw_bind_parameter(index, arg).map_err(map_sqlite)?;
    }
    Ok(())
}

/// Runs a statement that changes rows; returns how many.
pub(crate) fn execute(
    db: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn ToSql],
) -> StoreResult<usize> {
    let mut stmt = db.prepare_cached(sql).map_err(map_sqlite)?;
    bind(&mut stmt, args)?;
    stmt.raw_execute().map_err(map_sqlite)
}

/// Runs a statement and maps each row it returns with `f`.
pub(crate) fn query<T>(
    db: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn ToSql],
    mut f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = db.prepare_cached(sql).map_err(map_sqlite)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_sqlite)? {
        out.push(f(row).map_err(map_sqlite)?);
    }
    Ok(out)
}

/// As [`query`], for at most one row.
pub(crate) fn query_opt<T>(
    db: &rusqlite::Connection,
    sql: &str,
    args: &[&dyn ToSql],
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    Ok(query(db, sql, args, f)?.into_iter().next())
}

impl ToSql for DbUuid {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.hyphenated().to_string()))
    }
}

impl FromSql for DbUuid {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        uuid::Uuid::parse_str(text).map(Self).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// A time as SQLite stores it: microseconds since the epoch (see `types.rs`).
fn micros(t: time::OffsetDateTime) -> rusqlite::Result<i64> {
    i64::try_from(t.unix_timestamp_nanos() / 1_000)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl ToSql for DbTime {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(micros(self.0)?))
    }
}

impl FromSql for DbTime {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let micros = value.as_i64()?;
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map(Self)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// A JSON column: text on SQLite, as sqlx's `Json` writes it.
pub(crate) struct JsonText<T>(pub(crate) T);

impl<T: serde::Serialize> ToSql for JsonText<T> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        serde_json::to_string(&self.0)
            .map(ToSqlOutput::from)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

impl<T: serde::de::DeserializeOwned> FromSql for JsonText<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let bytes = match value {
            ValueRef::Text(b) | ValueRef::Blob(b) => b,
            _ => return Err(FromSqlError::InvalidType),
        };
        serde_json::from_slice(bytes).map(Self).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let null = || Ok(ToSqlOutput::from(rusqlite::types::Null));
        match self {
            Self::Uuid(Some(v)) => Ok(ToSqlOutput::from(v.hyphenated().to_string())),
            Self::Time(Some(v)) => Ok(ToSqlOutput::from(micros(*v)?)),
            Self::Json(Some(v)) => serde_json::to_string(v)
                .map(ToSqlOutput::from)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
            Self::Uuid(None) | Self::Time(None) | Self::Json(None) => null(),
            Self::Int(v) => v.to_sql(),
            Self::Bool(v) => v.to_sql(),
            Self::Text(v) => v.to_sql(),
        }
    }
}
