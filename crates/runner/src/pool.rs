//! The worker pool: claiming, heartbeats, cancellation, and a clean stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_core::run::{Finish, Lease, Run, RunError, RunStatus};
use agentd_core::signal::Signal;
use agentd_core::{RunId, Store, StoreError};
use agentd_llm::LlmRouter;
use agentd_tools::ToolRegistry;
use agentd_workspace::Workspaces;
use tokio::sync::{Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::RunnerConfig;
use crate::agent::{Attempt, Outcome, Progress};
use crate::workdir::RunDir;

/// What workers work with.
#[derive(Debug, Clone)]
pub struct RunnerDeps {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The language models.
    pub llm: Arc<LlmRouter>,
    /// The tools.
    pub tools: ToolRegistry,
    /// Project workspaces.
    pub workspaces: Arc<Workspaces>,
    /// The OS sandbox every command runs in.
    pub sandbox: agentd_sandbox::Sandbox,
}

/// Why an attempt was interrupted.
const NOT_INTERRUPTED: u8 = 0;
const CANCELLED_BY_USER: u8 = 1;
const LEASE_LOST: u8 = 2;
const SHUTTING_DOWN: u8 = 3;

#[derive(Debug)]
struct Active {
    cancel: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl Active {
    fn interrupt(&self, reason: u8) {
        let _ = self.reason.compare_exchange(
            NOT_INTERRUPTED,
            reason,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.cancel.cancel();
    }
}

#[derive(Debug)]
struct Shared {
    deps: RunnerDeps,
    config: Arc<RunnerConfig>,
    node: String,
    active: Mutex<HashMap<RunId, Active>>,
    slots: Arc<Semaphore>,
    wake: Notify,
    stop: CancellationToken,
    tracker: TaskTracker,
}

/// A running worker pool.
#[derive(Debug)]
pub struct Runner {
    shared: Arc<Shared>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Runner {
    /// Starts the workers and the maintenance loops of this node.
    #[must_use]
    pub fn start(deps: RunnerDeps, config: RunnerConfig) -> Self {
        let node = format!("node-{}", uuid::Uuid::new_v4().simple());
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(config.workers.max(1))),
            config: Arc::new(config),
            deps,
            node,
            active: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        tracing::info!(node = %shared.node, workers = shared.config.workers, "workers started");
        let loops = vec![
            tokio::spawn(claim_loop(shared.clone())),
            tokio::spawn(cancel_loop(shared.clone())),
            tokio::spawn(rescue_loop(shared.clone())),
            tokio::spawn(crate::maintenance::sweep_loop(
                shared.deps.store.clone(),
                shared.node.clone(),
                shared.config.clone(),
                shared.stop.clone(),
            )),
        ];
        Self { shared, loops }
    }

    /// This node's worker id (the lease owner of the runs it holds).
    #[must_use]
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// How many runs this node is executing.
    #[must_use]
    pub fn active(&self) -> usize {
        self.shared.active.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Stops claiming, lets running attempts reach a step boundary and give their runs back
    /// (another worker resumes them from the journal), and after the grace period interrupts
    /// what is left (those runs are given back too).
    pub async fn stop(self) {
        let shared = self.shared;
        shared.stop.cancel();
        shared.tracker.close();
        if tokio::time::timeout(shared.config.stop_grace, shared.tracker.wait()).await.is_err() {
            tracing::warn!("workers did not stop in time: interrupting the remaining runs");
            if let Ok(active) = shared.active.lock() {
                for a in active.values() {
                    a.interrupt(SHUTTING_DOWN);
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), shared.tracker.wait()).await;
        }
        for l in self.loops {
            l.abort();
        }
        tracing::info!(node = %shared.node, "workers stopped");
    }
}

async fn claim_loop(shared: Arc<Shared>) {
    let mut signals = shared.deps.store.subscribe();
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let free = shared.slots.available_permits();
        if free > 0 {
            let limit = u32::try_from(free.min(64)).unwrap_or(64);
            match shared.deps.store.claim_runs(&shared.node, limit, shared.config.lease).await {
                Ok(runs) => {
                    let claimed = runs.len();
                    for run in runs {
                        spawn_attempt(&shared, run);
                    }
                    if claimed == limit as usize {
                        // There may be more: claim again at once.
                        continue;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "claiming runs failed"),
            }
        }
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(shared.config.poll_interval) => {}
            signal = signals.recv() => match signal {
                Ok(Signal::RunsReady) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(Signal::RunEvent { .. } | Signal::CancelRequested { .. }) => {
                    // Not for us: wait again without a claim.
                    continue_waiting(&shared, &mut signals).await;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    tokio::time::sleep(shared.config.poll_interval).await;
                }
            },
        }
    }
}

/// Waits for a reason to claim, ignoring signals that are not about new work.
async fn continue_waiting(shared: &Shared, signals: &mut broadcast::Receiver<Signal>) {
    let deadline = tokio::time::sleep(shared.config.poll_interval);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = shared.wake.notified() => return,
            () = &mut deadline => return,
            signal = signals.recv() => match signal {
                Ok(Signal::RunEvent { .. } | Signal::CancelRequested { .. }) => {}
                Ok(Signal::RunsReady) | Err(_) => return,
            },
        }
    }
}

fn spawn_attempt(shared: &Arc<Shared>, run: Run) {
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        // Cannot happen (the claim asked for at most the free slots); the lease will expire and
        // the rescuer will re-queue the run.
        tracing::error!(run = %run.id, "claimed a run without a free slot");
        return;
    };
    let cancel = CancellationToken::new();
    let reason = Arc::new(AtomicU8::new(NOT_INTERRUPTED));
    if let Ok(mut active) = shared.active.lock() {
        active.insert(run.id, Active { cancel: cancel.clone(), reason: reason.clone() });
    }
    let shared2 = shared.clone();
    let span =
        tracing::info_span!("run", run_id = %run.id, attempt = run.attempt, agent = %run.agent);
    shared.tracker.spawn(
        async move {
            let run_id = run.id;
            attempt(&shared2, run, cancel, reason).await;
            if let Ok(mut active) = shared2.active.lock() {
                active.remove(&run_id);
            }
            drop(permit);
            shared2.wake.notify_one();
        }
        .instrument(span),
    );
}

async fn attempt(shared: &Arc<Shared>, run: Run, cancel: CancellationToken, reason: Arc<AtomicU8>) {
    let started = Instant::now();
    let lease = Lease { run_id: run.id, attempt: run.attempt, worker: shared.node.clone() };
    let store = shared.deps.store.clone();
    if run.cancel_requested_at.is_some() {
        reason.store(CANCELLED_BY_USER, Ordering::SeqCst);
        cancel.cancel();
    }
    let progress = Arc::new(Progress::default());
    let heartbeat = tokio::spawn(heartbeat(
        store.clone(),
        lease.clone(),
        shared.config.lease,
        cancel.clone(),
        reason.clone(),
        progress.clone(),
    ));
    let outcome = match prepare(shared, &run).await {
        Ok(Prepared { agent, workspace, workdir, network }) => {
            let outcome = match agent {
                // A checks run has no model: it runs the project's checks in the directory.
                None => {
                    let dir = workdir.as_deref().and_then(RunDir::made).map(|w| w.path.as_path());
                    crate::checks::attempt(
                        &shared.deps,
                        &run,
                        &lease,
                        dir,
                        &cancel,
                        &shared.stop,
                        &progress,
                    )
                    .await
                }
                Some((profile, tools)) => {
                    Attempt {
                        run,
                        lease: lease.clone(),
                        profile,
                        tools,
                        workspace,
                        workdir: workdir.clone(),
                        network,
                        store: store.clone(),
                        llm: shared.deps.llm.clone(),
                        config: shared.config.clone(),
                        cancel: cancel.clone(),
                        stop: shared.stop.clone(),
                        progress,
                    }
                    .execute()
                    .await
                }
            };
            // The copy of a managed workspace lives for one attempt: everything it changed is
            // in the project by now, and a later attempt starts from the project again.
            if let Some(workdir) = &workdir {
                workdir.finish().await;
            }
            outcome
        }
        Err(finish) => Outcome::Finish(finish),
    };
    heartbeat.abort();
    let why = reason.load(Ordering::SeqCst);
    if why == LEASE_LOST {
        tracing::warn!(run = %lease.run_id, "lost the lease: another worker has the run");
        return;
    }
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let finish = match (outcome, why) {
        (Outcome::LeaseLost, _) => return,
        // Interrupted because this worker is stopping, not because anyone cancelled the run.
        (Outcome::Finish(_), SHUTTING_DOWN) => Finish::Release,
        (Outcome::Finish(finish), _) => finish,
    };
    // The active time and the end of the attempt in one transaction.
    match store.end_attempt(&lease, elapsed, finish).await {
        Ok(run) => tracing::info!(run = %run.id, status = %run.status, "attempt ended"),
        Err(StoreError::LeaseLost) => {
            tracing::warn!(run = %lease.run_id, "lost the lease before finishing")
        }
        Err(err) => {
            tracing::error!(run = %lease.run_id, error = %err, "could not record the end of the attempt")
        }
    }
}

/// What an attempt works with.
struct Prepared {
    /// The profile and its tools; `None` for a checks run, which has no model.
    agent: Option<(crate::AgentProfile, Vec<Arc<dyn agentd_core::tool::Tool>>)>,
    workspace: Option<Arc<dyn agentd_core::Workspace>>,
    workdir: Option<Arc<RunDir>>,
    network: Option<bool>,
}

/// The run's profile, tools, workspace and working directory, or the reason it cannot run.
async fn prepare(shared: &Shared, run: &Run) -> Result<Prepared, Finish> {
    let failed = |t: &str, m: String| Finish::Done {
        status: RunStatus::Failed,
        result: None,
        error: Some(RunError::new(t, m)),
    };
    let agent = if run.agent == agentd_core::check::CHECKS_AGENT {
        None
    } else {
        let profile = shared.config.profiles.get(&run.agent).cloned().ok_or_else(|| {
            failed("unknown_agent", format!("there is no agent type {:?}", run.agent))
        })?;
        let tools =
            shared.deps.tools.select(&profile.tools).map_err(|e| {
                failed("agent_misconfigured", format!("agent {:?}: {e}", run.agent))
            })?;
        Some((profile, tools))
    };
    let unavailable = |err: agentd_core::WorkspaceError| Finish::Retry {
        after: shared.config.retry_delay(run.failures),
        error: RunError::new("workspace_unavailable", err.to_string()),
    };
    let (workspace, workdir, network) = match run.project_id {
        None => (None, None, None),
        Some(project) => match shared.deps.workspaces.open(None, project).await {
            Ok((project, workspace)) => {
                let network = project
                    .settings
                    .get("sandbox")
                    .and_then(|s| s.get("network"))
                    .and_then(serde_json::Value::as_bool);
                let workdir = RunDir::new(
                    shared.config.runs_dir.clone(),
                    run.id,
                    run.attempt,
                    project,
                    workspace.clone(),
                    shared.deps.workspaces.limits().max_file_bytes,
                );
                if agent.is_none() {
                    // A checks run works in the directory from the start.
                    workdir.get().await.map_err(unavailable)?;
                }
                (Some(workspace), Some(Arc::new(workdir)), network)
            }
            Err(agentd_core::WorkspaceError::Store(StoreError::NotFound { .. })) => {
                return Err(failed("project_not_found", "the run's project was deleted".into()));
            }
            Err(err) => return Err(unavailable(err)),
        },
    };
    Ok(Prepared { agent, workspace, workdir, network })
}

/// Renews the lease every third of its length, publishes progress, and interrupts the attempt
/// when the run's cancellation is requested or the lease is lost.
async fn heartbeat(
    store: Arc<dyn Store>,
    lease: Lease,
    length: Duration,
    cancel: CancellationToken,
    reason: Arc<AtomicU8>,
    progress: Arc<Progress>,
) {
    let mut tick = tokio::time::interval(length / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        let step = progress.step.lock().map(|s| s.clone()).unwrap_or_default();
        let percent = progress.percent.load(Ordering::Relaxed);
        match store.heartbeat(&lease, length, Some((percent, step))).await {
            Ok(beat) if beat.cancel_requested => {
                let _ = reason.compare_exchange(
                    NOT_INTERRUPTED,
                    CANCELLED_BY_USER,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                cancel.cancel();
            }
            Ok(_) => {}
            Err(StoreError::LeaseLost) => {
                reason.store(LEASE_LOST, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            Err(err) => tracing::warn!(run = %lease.run_id, error = %err, "heartbeat failed"),
        }
    }
}

/// Interrupts this node's runs whose cancellation was requested: at once on a signal, and by
/// polling the store in case the signal was lost.
async fn cancel_loop(shared: Arc<Shared>) {
    let mut signals = shared.deps.store.subscribe();
    let mut tick = tokio::time::interval(shared.config.cancel_poll_interval);
    loop {
        let requested: Vec<RunId> = tokio::select! {
            () = shared.stop.cancelled() => return,
            signal = signals.recv() => match signal {
                Ok(Signal::CancelRequested { run }) => vec![run],
                Ok(_) => continue,
                Err(_) => Vec::new(),
            },
            _ = tick.tick() => {
                if shared.active.lock().map(|a| a.is_empty()).unwrap_or(true) {
                    continue;
                }
                match shared.deps.store.cancel_requested(&shared.node).await {
                    Ok(ids) => ids,
                    Err(err) => {
                        tracing::debug!(error = %err, "checking for cancellations failed");
                        continue;
                    }
                }
            }
        };
        if let Ok(active) = shared.active.lock() {
            for id in requested {
                if let Some(a) = active.get(&id) {
                    a.interrupt(CANCELLED_BY_USER);
                }
            }
        }
    }
}

/// Re-queues runs whose worker stopped renewing its lease, and expires approvals past their
/// deadline (their runs resume and are told).
async fn rescue_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.rescue_interval);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match shared.deps.store.rescue_expired("worker_lost").await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rescued = n, "re-queued runs whose worker stopped"),
            Err(err) => tracing::warn!(error = %err, "rescuing runs failed"),
        }
        match shared.deps.store.expire_approvals(100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired approvals nobody decided in time"),
            Err(err) => tracing::warn!(error = %err, "expiring approvals failed"),
        }
    }
}
