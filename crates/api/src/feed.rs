//! Following a run's event log: from a sequence number, in order, without gaps, until the run
//! has ended. Everything that streams events to clients (SSE, WebSocket, chat, long-polls) reads
//! through this, from the store, so a client that reconnects with its last sequence number
//! misses nothing, whichever node it reconnects to.

use std::sync::Arc;
use std::time::Duration;

use agentd_core::run::{RunEvent, event};
use agentd_core::signal::Signal;
use agentd_core::{RunId, Store, StoreResult};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often the log is re-read when no signal arrives (a lost signal costs at most this).
const POLL: Duration = Duration::from_secs(1);
/// Events read per store query.
const BATCH: u32 = 500;

/// A cursor over one run's events.
#[derive(Debug)]
pub(crate) struct EventFeed {
    store: Arc<dyn Store>,
    run: RunId,
    after: i64,
    signals: broadcast::Receiver<Signal>,
    finished: bool,
    stop: CancellationToken,
}

impl EventFeed {
    /// A feed of `run`'s events after `after`, ending early when `stop` is cancelled (the
    /// server is shutting down: the client reconnects elsewhere and resumes).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        run: RunId,
        after: i64,
        stop: CancellationToken,
    ) -> Self {
        // Subscribe before the first read, so nothing appended in between is missed.
        let signals = store.subscribe();
        Self { store, run, after, signals, finished: false, stop }
    }

    /// The next events, waiting for at least one; `None` once the run's final event
    /// (`run.completed`) has been delivered, or the feed was stopped.
    pub(crate) async fn next(&mut self) -> StoreResult<Option<Vec<RunEvent>>> {
        loop {
            if self.finished || self.stop.is_cancelled() {
                return Ok(None);
            }
            let events = self.store.events(self.run, self.after, BATCH).await?;
            if let Some(last) = events.last() {
                self.after = last.seq;
                if events.iter().any(|e| e.event_type == event::RUN_COMPLETED) {
                    self.finished = true;
                }
                return Ok(Some(events));
            }
            // Nothing new. If the run has ended, its final event is behind us: we are done.
            let run = self.store.run(None, self.run).await?;
            if run.status.is_terminal() {
                let late = self.store.events(self.run, self.after, BATCH).await?;
                if late.is_empty() {
                    self.finished = true;
                    return Ok(None);
                }
                continue;
            }
            self.wait().await;
        }
    }

    async fn wait(&mut self) {
        let deadline = tokio::time::sleep(POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = &mut deadline => return,
                signal = self.signals.recv() => match signal {
                    Ok(Signal::RunEvent { run, seq }) if run == self.run && seq > self.after => return,
                    Ok(_) => {}
                    // Lagged: something may have been missed; closed: nothing more will come.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        (&mut deadline).await;
                        return;
                    }
                },
            }
        }
    }
}
