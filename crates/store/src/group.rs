//! Group commit for SQLite: the writes of many callers in one transaction and one flush.
//!
//! SQLite has one writer, and with sqlx every statement is a hand-over to the connection's own
//! thread and back. Under load those hand-overs, and one WAL flush per commit, are what a run
//! waits for, not the work. The hot writes of runs (a new run, a claim, a journal step, the end
//! of an attempt, heartbeats, usage) therefore go through [`GroupWriter`]: each is a closure of
//! plain synchronous SQLite calls. A thread of its own takes every closure that is waiting,
//! locks the writer connection's handle out of sqlx once, and runs them back to back in one
//! `BEGIN IMMEDIATE` transaction, each inside its own savepoint: a closure that fails is rolled
//! back alone, the others still commit. Nobody hears back before the commit, so a caller that was told "done"
//! is durable exactly as with a transaction of its own; when the commit fails, every closure of
//! the batch gets the error and none of their changes stays.
//!
//! Writes that are not on a run's hot path keep using sqlx's transactions on the same
//! connection: the pool hands it out in turn, so both kinds are serialised as before.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use agentd_core::{StoreError, StoreResult};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use crate::sqlite_calls::map_sqlite;

/// The most closures one transaction takes: bounds how long the writer is held.
const MAX_BATCH: usize = 512;

/// How to answer a caller once its batch's fate is known.
type Answer = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// What a closure leaves for after the commit: whether its savepoint stays, and its answer.
type Finished = (bool, Answer);

/// A caller's closure; called with `None` when the batch failed before reaching it, to get the
/// caller's answer without running it.
type Job = Box<dyn FnOnce(Option<&rusqlite::Connection>) -> Finished + Send>;

/// Runs closures on the SQLite writer connection, many per transaction.
#[derive(Debug, Clone)]
pub(crate) struct GroupWriter {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupWriter {
    /// Starts the thread that runs the closures on `pool`'s connection (the one writer). A
    /// thread of its own, not a task: a commit blocks on the disk, and the runtime's threads
    /// must not.
    pub(crate) fn spawn(pool: SqlitePool) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("agentd-sqlite-writer".into())
            .spawn(move || run(&runtime, &pool, rx))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in a transaction (shared with other callers' closures) and returns its result
    /// once that transaction committed. An error from `f` rolls back what `f` wrote, and only
    /// that. `f` must not block on anything but the database.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let result = match db {
                Some(db) => {
                    std::panic::catch_unwind(AssertUnwindSafe(|| f(db))).unwrap_or_else(|_| {
                        Err(StoreError::Backend("a database write panicked".into()))
                    })
                }
                // Not run: the answer below carries the batch's error instead.
                None => Err(StoreError::Backend("not run".into())),
            };
            let keep = result.is_ok();
            let answer = Box::new(move |commit: Result<(), &StoreError>| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(copy_error(e)),
                };
                // The caller may have gone away; what committed stays committed.
                let _ = reply.send(out);
            });
            (keep, answer as Answer)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the database writer stopped".into()))?
    }
}

/// The same error again, for every caller of a batch whose commit failed.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(inner) => StoreError::Unavailable(inner.to_string().into()),
        other => StoreError::Backend(other.to_string().into()),
    }
}

/// The writer thread: a batch per wake-up, until every sender is gone.
fn run(runtime: &tokio::runtime::Handle, pool: &SqlitePool, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        let answers = runtime.block_on(async {
            let mut conn = match pool.acquire().await {
                Ok(conn) => conn,
                Err(e) => return fail_all(&mut jobs, &crate::error::map_err("database", e)),
            };
            let ran = match conn.lock_handle().await {
                Ok(mut handle) => {
                    // Whatever arrived until now joins this batch.
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    Ok(batch(handle.as_raw_handle().as_ptr(), std::mem::take(&mut jobs)))
                }
                Err(e) => Err(e),
            };
            match ran {
                Ok((answers, stuck)) => {
                    if stuck {
                        // The handle is still inside a transaction: sqlx must not reuse it.
                        conn.close_on_drop();
                    }
                    answers
                }
                Err(e) => fail_all(&mut jobs, &crate::error::map_err("database", e)),
            }
        });
        for (answer, outcome) in answers {
            answer(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(e.as_ref()),
            });
        }
    }
}

type Answers = Vec<(Answer, Result<(), Arc<StoreError>>)>;

/// Answers every waiting caller with `error`, without running their closures.
fn fail_all(jobs: &mut Vec<Job>, error: &StoreError) -> Answers {
    let error = Arc::new(copy_error(error));
    jobs.drain(..).map(|job| (not_run(job), Err(error.clone()))).collect()
}

/// One transaction of `jobs` on the raw connection `raw`. Returns the answers and whether the
/// connection was left inside a transaction (when even the rollback failed).
#[allow(unsafe_code)] // the one use of the raw handle, explained below
fn batch(raw: *mut rusqlite::ffi::sqlite3, jobs: Vec<Job>) -> (Answers, bool) {
    // SAFETY: sqlx's worker thread has handed the handle over (`lock_handle`) until the guard
    // is dropped, after this returns; the connection made here does not close the handle, and
    // it and its cached statements are dropped before the guard.
    let db = match unsafe { rusqlite::Connection::from_handle(raw) } {
        Ok(db) => db,
        Err(e) => {
            let error = Arc::new(map_sqlite(e));
            return (jobs.into_iter().map(|j| (not_run(j), Err(error.clone()))).collect(), false);
        }
    };
    if let Err(e) = db.execute_batch("BEGIN IMMEDIATE") {
        let error = Arc::new(map_sqlite(e));
        return (jobs.into_iter().map(|j| (not_run(j), Err(error.clone()))).collect(), false);
    }
    let mut answers = Vec::with_capacity(jobs.len());
    let mut broken = None;
    for job in jobs {
        if let Some(e) = &broken {
            answers.push((not_run(job), Err(Arc::clone(e))));
            continue;
        }
        if let Err(e) = db.execute_batch("SAVEPOINT job") {
            let e = Arc::new(map_sqlite(e));
            answers.push((not_run(job), Err(Arc::clone(&e))));
            broken = Some(e);
            continue;
        }
        let (keep, answer) = job(Some(&db));
        let end = if keep { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = db.execute_batch(end) {
            broken = Some(Arc::new(map_sqlite(e)));
        }
        answers.push((answer, Ok(())));
    }
    let commit = match &broken {
        Some(e) => Err(Arc::clone(e)),
        None => db.execute_batch("COMMIT").map_err(|e| Arc::new(map_sqlite(e))),
    };
    if let Err(error) = commit {
        let _ = db.execute_batch("ROLLBACK");
        for answer in &mut answers {
            answer.1 = Err(Arc::clone(&error));
        }
    }
    let stuck = !db.is_autocommit();
    drop(db);
    (answers, stuck)
}

/// The answer of a closure that is not run: its caller hears of the batch's error.
fn not_run(job: Job) -> Answer {
    job(None).1
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;
    use crate::sqlite_calls::execute;

    async fn pool(dir: &std::path::Path) -> SqlitePool {
        let url = format!("sqlite://{}", dir.join("group.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .map(|o| o.create_if_missing(true).journal_mode(SqliteJournalMode::Wal));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.unwrap_or_else(|e| panic!("options: {e}")))
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        pool
    }

    async fn ids(dir: &std::path::Path) -> Vec<i64> {
        // A separate connection sees only what committed.
        let url = format!("sqlite://{}", dir.join("group.db").display());
        let other = SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM t ORDER BY id")
            .fetch_all(&other)
            .await
            .unwrap_or_else(|e| panic!("select: {e}"));
        rows.into_iter().map(|(id,)| id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_together_commit_together_and_a_failing_one_rolls_back_alone() {
        let dir = std::env::temp_dir().join(format!("agentd-group-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("dir: {e}"));
        let pool = pool(&dir).await;
        let writer = GroupWriter::spawn(pool.clone()).unwrap_or_else(|e| panic!("spawn: {e}"));
        // While the connection is taken, every write queues: they all go into one batch.
        let held = pool.acquire().await.unwrap_or_else(|e| panic!("acquire: {e}"));
        let tasks: Vec<_> = (0_i64..60)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .write(move |db| {
                            execute(db, "INSERT INTO t (id, v) VALUES ($1, $2)", &[&i, &"x"])?;
                            match i % 10 {
                                3 => Err(StoreError::LeaseLost),
                                7 => panic!("a closure that panics"),
                                _ => Ok(i),
                            }
                        })
                        .await
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(ids(&dir).await.is_empty(), "nothing commits while the connection is taken");
        drop(held);
        for (i, task) in (0_i64..).zip(tasks) {
            let result = task.await.unwrap_or_else(|e| panic!("task: {e}"));
            match i % 10 {
                3 => assert!(matches!(result, Err(StoreError::LeaseLost)), "{i}: {result:?}"),
                7 => assert!(matches!(result, Err(StoreError::Backend(_))), "{i}: {result:?}"),
                _ => assert_eq!(result.ok(), Some(i)),
            }
        }
        let expected: Vec<i64> = (0..60).filter(|i| i % 10 != 3 && i % 10 != 7).collect();
        assert_eq!(ids(&dir).await, expected);
        // A write that returned has committed: another connection sees it at once.
        writer
            .write(|db| execute(db, "INSERT INTO t (id, v) VALUES (1000, 'y')", &[]))
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(ids(&dir).await.last(), Some(&1000));
        // A write that breaks the statement's own constraints is refused as a conflict.
        let again =
            writer.write(|db| execute(db, "INSERT INTO t (id, v) VALUES (1000, 'z')", &[])).await;
        assert!(matches!(again, Err(StoreError::Conflict { .. })), "{again:?}");
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
