//! The usage ledger writer: every attempt is recorded through the store's `UsageStore`.
//!
//! Records go through a bounded channel to one writer task, so that a slow database never adds
//! latency to a model call. If the channel is full the record is dropped and counted (the status
//! view shows the count) rather than blocking the caller. [`UsageLedger::flush`] waits until
//! everything sent so far is written (tests and shutdown use it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agentd_core::{NewUsage, UsageStore};
use tokio::sync::{mpsc, oneshot};

/// Records queued before new ones are dropped.
const CAPACITY: usize = 8192;

enum Message {
    Record(Box<NewUsage>),
    Flush(oneshot::Sender<()>),
}

/// A handle on the writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageLedger {
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Record(_) => "Record",
            Self::Flush(_) => "Flush",
        })
    }
}

impl UsageLedger {
    /// Starts the writer task on the current runtime. It stops when every handle is dropped.
    #[must_use]
    pub fn spawn(store: Arc<dyn UsageStore>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(CAPACITY);
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                match message {
                    Message::Record(usage) => {
                        if let Err(error) = store.record_usage(*usage).await {
                            tracing::warn!(%error, "cannot record LLM usage");
                        }
                    }
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { tx, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Queues one attempt; never waits.
    pub(crate) fn record(&self, usage: NewUsage) {
        if self.tx.try_send(Message::Record(Box::new(usage))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("the usage ledger is behind; a record was dropped");
        }
    }

    /// Waits until every record queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Records dropped because the writer was behind.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
