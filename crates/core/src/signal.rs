//! Wake-ups: what stores announce so that waiting parts of agentd react at once instead of
//! polling. Signals are hints: a missed one costs latency, never correctness, because every
//! waiter also polls the store at a slow interval.

use crate::RunId;

/// Something changed that someone may be waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A run's event log grew up to `seq`.
    RunEvent {
        /// The run.
        run: RunId,
        /// The last event's number.
        seq: i64,
    },
    /// Runs became claimable (created, re-queued, resumed).
    RunsReady,
    /// A run's cancellation was requested.
    CancelRequested {
        /// The run.
        run: RunId,
    },
}

/// A source of signals: every node's own changes, and (on PostgreSQL) every other node's.
pub trait Signals: Send + Sync {
    /// A new receiver of signals from now on. A receiver that lags loses the oldest signals,
    /// which is safe (see the module documentation).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Signal>;
}
