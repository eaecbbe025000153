//! The OS sandbox that runs every agent command: the only crate of agentd that starts
//! processes, and the only one allowed `unsafe` (the `fork`-to-`exec` set-up in `launch`, and
//! one read-only system call in the probe).
//!
//! A [`Sandbox`] is built once at start-up from [`SandboxSettings`]; building it probes the
//! machine ([`Capabilities`]: bubblewrap, user namespaces, seccomp, cgroups, the uid, and a
//! trial command that checks what a command really gets). [`Sandbox::run`] then runs one
//! [`CommandSpec`] and returns a [`CommandOutcome`]: `exited`, `timed_out`, `killed`, `oom`
//! or `sandbox_denied`, with the head and tail of the output and the full log written to a
//! file. When a required layer is missing it returns [`SandboxError::Unavailable`] and runs
//! nothing: the sandbox fails closed. Only `AGENTD_SANDBOX=none` ([`SandboxMode::None`]) runs
//! commands without isolation, still with timeouts, output caps and a process-group kill.
//!
//! Layers of one command (see `docs/sandbox.md`): a cleared environment, inherited descriptors
//! closed, a new session, a non-root uid, no-new-privileges, rlimits, a cgroup per command
//! (pids, memory, CPU; killed as a whole), and bubblewrap with every namespace unshared, the
//! host read-only, only the workspace writable, secrets hidden, `.git/hooks` and
//! `.git/config` read-only, and a seccomp filter.
//!
//! This crate must not decide *whether* a command may run (that is the command policy of
//! `agentd-core` and the approvals); it only makes running it safe.

// `unsafe` is needed for the child's set-up between fork and exec (`launch.rs`) and for one
// read-only system call of the probe (the Landlock ABI version); every block carries a
// `// SAFETY:` comment. No other crate of agentd may use `unsafe`.
#![allow(unsafe_code)]

mod bwrap;
mod capabilities;
mod capture;
mod cgroup;
mod command;
mod error;
mod launch;
mod probe;
mod run;
mod seccomp;
mod settings;
mod workspace;

use std::path::PathBuf;
use std::sync::Arc;

pub use capabilities::{BwrapReport, Capabilities, TrialReport};
pub use cgroup::CgroupReport;
pub use command::{
    CommandOutcome, CommandSpec, Limits, LogSummary, Output, Program, Status, TimeoutKind,
};
pub use error::{Result, SandboxError};
pub use settings::{
    CgroupVersion, InvalidSetting, LimitSettings, PIDS_MAX_LIMIT, SandboxMode, SandboxSettings,
};

/// The sandbox, ready to run commands (or to refuse them, when unavailable). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: SandboxSettings,
    capabilities: Capabilities,
    /// What `run` needs, present only when the sandbox is available in `bwrap` mode.
    isolation: Option<Isolation>,
}

/// Everything the probe found that commands need.
#[derive(Debug)]
struct Isolation {
    bwrap: PathBuf,
    layout: cgroup::Layout,
    /// Absolute paths to hide.
    hide: Vec<PathBuf>,
    /// `(uid, gid)` to switch to, when agentd runs as root.
    switch_to: Option<(u32, u32)>,
    disable_userns: bool,
    /// The seccomp program without and with network.
    filters: [Vec<u8>; 2],
    /// When each workspace's last complete adoption walk started.
    adopted: std::sync::Mutex<std::collections::HashMap<PathBuf, workspace::Nanos>>,
}

/// The most workspaces whose last adoption is remembered; past it, all are walked in full again.
const ADOPTED_REMEMBERED: usize = 10_000;

impl Isolation {
    fn adopted(&self, workspace: &std::path::Path) -> Option<workspace::Nanos> {
        self.adopted.lock().ok()?.get(workspace).copied()
    }

    fn set_adopted(&self, workspace: &std::path::Path, started: workspace::Nanos) {
        if let Ok(mut map) = self.adopted.lock() {
            if map.len() >= ADOPTED_REMEMBERED {
                map.clear();
            }
            map.insert(workspace.to_path_buf(), started);
        }
    }
}

impl Sandbox {
    /// Probes the machine and builds the sandbox. Never fails: an unusable machine gives a
    /// sandbox whose [`Sandbox::capabilities`] say why and whose [`Sandbox::run`] refuses.
    pub async fn new(settings: SandboxSettings) -> Self {
        let (capabilities, isolation) = probe::probe(&settings).await;
        match (settings.mode, capabilities.available) {
            (SandboxMode::None, _) => tracing::warn!(
                "AGENTD_SANDBOX=none: agent commands run WITHOUT isolation, as agentd's own user, \
                 with agentd's file system and network; never use this in production"
            ),
            (SandboxMode::Bwrap, true) => tracing::info!(
                uid = capabilities.uid,
                cgroup = %capabilities.cgroup.version,
                bwrap = capabilities.bwrap.version.as_deref().unwrap_or("?"),
                "sandbox ready"
            ),
            (SandboxMode::Bwrap, false) => tracing::error!(
                reasons = %capabilities.reasons.join("; "),
                "sandbox unavailable: agent commands will be refused (sandbox_unavailable)"
            ),
        }
        Self { inner: Arc::new(Inner { settings, capabilities, isolation }) }
    }

    /// What the probe found.
    #[must_use]
    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.capabilities
    }

    /// The settings it was built from.
    #[must_use]
    pub fn settings(&self) -> &SandboxSettings {
        &self.inner.settings
    }

    /// Whether commands can run.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.inner.capabilities.available
    }

    /// The default limits of a command.
    #[must_use]
    pub fn default_limits(&self) -> Limits {
        self.inner.settings.default_limits()
    }
}

/// Probes the machine for `settings` and reports what commands would get; what agentd calls at
/// start-up for readiness and `GET /v1/system/capabilities` (or use
/// [`Sandbox::capabilities`] of the sandbox it builds anyway).
pub async fn probe(settings: &SandboxSettings) -> Capabilities {
    probe::probe(settings).await.0
}
