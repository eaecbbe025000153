//! agentd's workers.
//!
//! A [`Runner`] claims runs from the store with a lease, executes each attempt (the agent loop in
//! `agent.rs`) while a heartbeat renews the lease and watches for cancellation, and ends the
//! attempt through the store. Beside it run the maintenance loops every node shares: the rescuer
//! (re-queues runs whose worker died) and the retention sweeper (claimed in the database, so one
//! node sweeps at a time). Runs on other nodes are found and woken through the store's signals;
//! every loop also polls, so a lost signal costs latency, never a stuck run.

mod agent;
mod checks;
pub mod maintenance;
mod pool;
pub mod profile;
mod workdir;

use std::collections::BTreeMap;
use std::time::Duration;

pub use maintenance::{Cleanup, cleanup};
pub use pool::{Runner, RunnerDeps};
pub use profile::{AgentProfile, ApprovalPolicy, ProfileOverrides, RunLimits};

/// How workers behave.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Runs executed at once on this node.
    pub workers: usize,
    /// How long a claim holds a run without a heartbeat.
    pub lease: Duration,
    /// How often the queue is polled when no signal arrives.
    pub poll_interval: Duration,
    /// How often expired leases are looked for.
    pub rescue_interval: Duration,
    /// How often this node's running runs are checked for cancellation requests (signals make
    /// it faster when they arrive).
    pub cancel_poll_interval: Duration,
    /// Retryable failures before a run fails.
    pub max_attempts: u32,
    /// The first retry delay; each further retry doubles it, with jitter.
    pub retry_base: Duration,
    /// The longest retry delay.
    pub retry_cap: Duration,
    /// How long a stopping worker lets attempts reach a step boundary before cancelling them.
    pub stop_grace: Duration,
    /// How much of a tool's output goes into the prompt (head and tail).
    pub tool_output_prompt_bytes: usize,
    /// Tool outputs larger than this are stored as blobs.
    pub inline_output_bytes: usize,
    /// Streamed text is published as `llm.delta` once this much has gathered…
    pub delta_flush_bytes: usize,
    /// …or this long has passed.
    pub delta_flush_interval: Duration,
    /// Conversations idle this long are deleted.
    pub conversation_ttl: Duration,
    /// Finished runs older than this are deleted.
    pub run_retention: Duration,
    /// How often the retention sweep runs.
    pub sweep_interval: Duration,
    /// How long an approval waits for a decision before it counts as a rejection.
    pub approval_ttl: Duration,
    /// The agent types.
    pub profiles: BTreeMap<String, AgentProfile>,
    /// Where each run gets its directory (`<runs_dir>/<run_id>`: `work-<attempt>/`, the copy of a
    /// managed workspace, and `logs/`, its commands' full logs). `None` leaves managed runs
    /// without a directory, so commands and searches cannot run.
    pub runs_dir: Option<std::path::PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(10),
            cancel_poll_interval: Duration::from_secs(1),
            max_attempts: 3,
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(600),
            stop_grace: Duration::from_secs(10),
            tool_output_prompt_bytes: 16 * 1024,
            inline_output_bytes: 64 * 1024,
            delta_flush_bytes: 512,
            delta_flush_interval: Duration::from_millis(200),
            conversation_ttl: Duration::from_secs(168 * 3600),
            run_retention: Duration::from_secs(30 * 24 * 3600),
            sweep_interval: Duration::from_secs(600),
            approval_ttl: Duration::from_secs(24 * 3600),
            profiles: profile::builtins(),
            runs_dir: None,
        }
    }
}

impl RunnerConfig {
    /// The delay before retry number `failures + 1`: exponential from `retry_base`, capped,
    /// with full jitter in the upper half (so retries of many runs spread out).
    #[must_use]
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let exp =
            self.retry_base.saturating_mul(1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX));
        let capped = exp.min(self.retry_cap);
        capped.mul_f64(rand::random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let c = RunnerConfig::default();
        for _ in 0..50 {
            let first = c.retry_delay(0);
            assert!(first >= Duration::from_millis(2500) && first <= Duration::from_secs(5));
            let third = c.retry_delay(2);
            assert!(third >= Duration::from_secs(10) && third <= Duration::from_secs(20));
            assert!(c.retry_delay(30) <= Duration::from_secs(600));
        }
    }
}
