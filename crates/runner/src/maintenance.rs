//! Retention: deleting idle conversations and old finished runs, by a sweeper that one node at a
//! time runs (it takes a lock in the database), and on demand (`agentd cleanup`). Each node also
//! removes, on its own disk, the directories (command logs, leftover copies) of runs the database
//! no longer has.

use std::sync::Arc;
use std::time::Duration;

use agentd_core::{RunId, Store, StoreError, StoreResult};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::RunnerConfig;

/// What one cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Conversations idle longer than their time to live (with their messages).
    pub conversations: u64,
    /// Finished runs older than the retention period (with their journals and events).
    pub runs: u64,
}

const BATCH: u32 = 500;

fn ago(d: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// Deletes conversations idle longer than `conversation_ttl` and finished runs older than
/// `run_retention`, in batches.
///
/// # Errors
/// Store failures (what was deleted before stays deleted).
pub async fn cleanup(
    store: &dyn Store,
    conversation_ttl: Duration,
    run_retention: Duration,
) -> StoreResult<Cleanup> {
    let mut done = Cleanup::default();
    let runs_before = ago(run_retention);
    loop {
        let n = store.delete_runs_before(runs_before, BATCH).await?;
        done.runs += n;
        if n < u64::from(BATCH) {
            break;
        }
    }
    let conversations_before = ago(conversation_ttl);
    loop {
        let n = store.delete_conversations_before(conversations_before, BATCH).await?;
        done.conversations += n;
        if n < u64::from(BATCH) {
            break;
        }
    }
    Ok(done)
}

/// Removes the directories under `runs_dir` of runs that no longer exist (deleted by retention,
/// or with their project), and returns how many it removed. Names that are not run ids are left
/// alone.
///
/// # Errors
/// Store failures other than a missing run.
pub async fn prune_run_dirs(store: &dyn Store, runs_dir: &std::path::Path) -> StoreResult<u64> {
    let Ok(mut entries) = tokio::fs::read_dir(runs_dir).await else { return Ok(0) };
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<RunId>().ok()) else {
            continue;
        };
        match store.run(None, id).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => match tokio::fs::remove_dir_all(entry.path()).await
            {
                Ok(()) => removed += 1,
                Err(err) => {
                    tracing::warn!(run = %id, error = %err, "could not remove a run's directory");
                }
            },
            Err(err) => return Err(err),
        }
    }
    Ok(removed)
}

/// Sweeps at once and then at every interval, whenever this node holds the retention lock.
/// Every [`crate::Runner`] runs one; a node without workers runs it alone.
pub async fn sweep_loop(
    store: Arc<dyn Store>,
    node: String,
    config: Arc<RunnerConfig>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(config.sweep_interval);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.try_lock("retention", &node, config.sweep_interval * 2).await {
            Ok(true) => {
                match cleanup(store.as_ref(), config.conversation_ttl, config.run_retention).await {
                    Ok(c) if c == Cleanup::default() => {}
                    Ok(c) => tracing::info!(
                        conversations = c.conversations,
                        runs = c.runs,
                        "retention sweep"
                    ),
                    Err(err) => tracing::warn!(error = %err, "retention sweep failed"),
                }
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "retention lock failed"),
        }
        // Run directories are on this node's disk: every node prunes its own.
        if let Some(runs_dir) = &config.runs_dir {
            match prune_run_dirs(store.as_ref(), runs_dir).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(directories = n, "removed the directories of deleted runs"),
                Err(err) => tracing::warn!(error = %err, "pruning run directories failed"),
            }
        }
    }
}
