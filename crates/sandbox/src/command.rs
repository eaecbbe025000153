//! What a caller asks the sandbox to run ([`CommandSpec`]) and what it gets back
//! ([`CommandOutcome`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::settings::LimitSettings;

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// A program and its arguments, executed directly (looked up in the sandbox's `PATH`).
    Argv(Vec<String>),
    /// A command line for the configured shell (`<shell> -c <line>`).
    Shell(String),
}

/// The limits of one command; start from [`crate::SandboxSettings::default_limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Stop the command after this long.
    pub wall_timeout: Duration,
    /// Stop the command when it has printed nothing for this long.
    pub idle_timeout: Duration,
    /// Output kept and returned, half from the start and half from the end.
    pub output_max_bytes: usize,
    /// The most bytes written to the full log.
    pub log_max_bytes: u64,
    /// The memory limit (no swap).
    pub memory_max_bytes: u64,
    /// The most processes and threads at once.
    pub pids_max: u64,
    /// The CPU quota in thousandths of a core.
    pub cpu_millis: u64,
    /// `RLIMIT_FSIZE`.
    pub file_size_max_bytes: u64,
    /// `RLIMIT_NOFILE`.
    pub open_files_max: u64,
    /// `RLIMIT_CPU`, in seconds.
    pub cpu_seconds_max: u64,
}

impl From<&LimitSettings> for Limits {
    fn from(s: &LimitSettings) -> Self {
        Self {
            wall_timeout: Duration::from_secs(s.wall_timeout_seconds),
            idle_timeout: Duration::from_secs(s.idle_timeout_seconds),
            output_max_bytes: usize::try_from(s.output_max_bytes).unwrap_or(usize::MAX),
            log_max_bytes: s.log_max_bytes,
            memory_max_bytes: s.memory_max_bytes,
            pids_max: s.pids_max,
            cpu_millis: s.cpu_millis,
            file_size_max_bytes: s.file_size_max_bytes,
            open_files_max: s.open_files_max,
            cpu_seconds_max: s.cpu_seconds_max,
        }
    }
}

/// One command to run in a workspace.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// What to execute.
    pub program: Program,
    /// The workspace: an absolute, canonical directory, the only place the command may write.
    pub workspace: PathBuf,
    /// Variables added to the command's environment (on top of the sandbox's small base set).
    pub env: Vec<(String, String)>,
    /// Network access; `None` takes the sandbox's default.
    pub network: Option<bool>,
    /// Limits; `None` takes the sandbox's defaults.
    pub limits: Option<Limits>,
    /// Where to write the full output log (created or truncated), if anywhere.
    pub log_path: Option<PathBuf>,
    /// Cancelling this token kills the command's whole process tree.
    pub cancel: CancellationToken,
    /// Receives output chunks as they arrive, best effort: chunks are dropped when it is full.
    pub live_output: Option<mpsc::Sender<Vec<u8>>>,
}

impl CommandSpec {
    /// A shell command line run in `workspace`.
    pub fn shell(line: impl Into<String>, workspace: impl Into<PathBuf>) -> Self {
        Self::new(Program::Shell(line.into()), workspace.into())
    }

    /// A program with arguments run in `workspace`.
    pub fn argv<I, S>(argv: I, workspace: impl Into<PathBuf>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Program::Argv(argv.into_iter().map(Into::into).collect()), workspace.into())
    }

    fn new(program: Program, workspace: PathBuf) -> Self {
        Self {
            program,
            workspace,
            env: Vec::new(),
            network: None,
            limits: None,
            log_path: None,
            cancel: CancellationToken::new(),
            live_output: None,
        }
    }

    /// Adds a variable to the command's environment.
    #[must_use]
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Allows or forbids the network for this command.
    #[must_use]
    pub fn with_network(mut self, allowed: bool) -> Self {
        self.network = Some(allowed);
        self
    }

    /// Sets the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Writes the full log to `path`.
    #[must_use]
    pub fn with_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_path = Some(path.into());
        self
    }

    /// Uses `token` for cancellation.
    #[must_use]
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Streams output chunks to `sender` as they arrive.
    #[must_use]
    pub fn with_live_output(mut self, sender: mpsc::Sender<Vec<u8>>) -> Self {
        self.live_output = Some(sender);
        self
    }
}

/// Which timeout stopped a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutKind {
    /// The wall-clock timeout.
    Wall,
    /// The no-output timeout.
    Idle,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// The command ended by itself. A death by signal `n` is reported as `128 + n`, as shells do.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// A timeout stopped it; its whole process tree was killed.
    TimedOut {
        /// Which timeout.
        timeout: TimeoutKind,
    },
    /// It was cancelled; its whole process tree was killed.
    Killed,
    /// It ran out of memory: the kernel killed a process at the memory limit.
    Oom,
    /// The sandbox refused to start it (the workspace is not allowed, or bubblewrap could not
    /// set this command up); the command did not run.
    SandboxDenied {
        /// Why.
        reason: String,
    },
}

/// Output kept in memory: the first and last bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The first bytes, up to half the cap.
    pub head: Vec<u8>,
    /// The bytes after `head`, up to half the cap: the very last ones when the output was
    /// longer than the cap. When nothing was omitted, `head` then `tail` is the whole output.
    pub tail: Vec<u8>,
    /// How many bytes the command wrote in all.
    pub total_bytes: u64,
}

impl Output {
    /// Whether bytes between `head` and `tail` were left out.
    #[must_use]
    pub fn truncated(&self) -> bool {
        self.omitted_bytes() > 0
    }

    /// How many bytes were left out between `head` and `tail`.
    #[must_use]
    pub fn omitted_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub((self.head.len() + self.tail.len()) as u64)
    }

    /// The kept output as text (invalid UTF-8 replaced), with a marker where bytes were left
    /// out.
    #[must_use]
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.truncated() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[... {} bytes of output omitted ({} in all) ...]\n",
                self.omitted_bytes(),
                self.total_bytes
            ));
        }
        text.push_str(&String::from_utf8_lossy(&self.tail));
        text
    }
}

/// Where the full log went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// The file.
    pub path: PathBuf,
    /// Bytes written to it.
    pub bytes: u64,
    /// Whether output past `log_max_bytes` was left out.
    pub truncated: bool,
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// From start to the end of clean-up, in milliseconds.
    pub duration_ms: u64,
    /// stdout and stderr, interleaved as written.
    pub output: Output,
    /// The full log, if a path was given.
    pub log: Option<LogSummary>,
    /// Whether the command hit its process limit at some point.
    pub pids_limit_reached: bool,
    /// Whether it ran isolated (`false` only with `AGENTD_SANDBOX=none`).
    pub isolated: bool,
}

impl CommandOutcome {
    /// The duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }

    /// The exit code, when the command ended by itself.
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        match self.status {
            Status::Exited { code } => Some(code),
            Status::TimedOut { .. }
            | Status::Killed
            | Status::Oom
            | Status::SandboxDenied { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_returned_whole_without_a_marker() {
        let out = Output { head: b"hello\n".to_vec(), tail: Vec::new(), total_bytes: 6 };
        assert!(!out.truncated());
        assert_eq!(out.text(), "hello\n");
    }

    #[test]
    fn long_output_carries_a_marker_with_the_omitted_size() {
        let out = Output { head: b"aaaa".to_vec(), tail: b"zzzz".to_vec(), total_bytes: 108 };
        assert_eq!(out.omitted_bytes(), 100);
        assert_eq!(out.text(), "aaaa\n[... 100 bytes of output omitted (108 in all) ...]\nzzzz");
    }

    #[test]
    fn the_status_serialises_with_a_stable_tag() {
        let outcome = CommandOutcome {
            status: Status::TimedOut { timeout: TimeoutKind::Idle },
            duration_ms: 5,
            output: Output::default(),
            log: None,
            pids_limit_reached: false,
            isolated: true,
        };
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["status"], "timed_out");
        assert_eq!(json["timeout"], "idle");
        let exited = serde_json::to_value(Status::Exited { code: 3 }).unwrap();
        assert_eq!(exited, serde_json::json!({"status": "exited", "code": 3}));
        let denied = serde_json::to_value(Status::SandboxDenied { reason: "x".into() }).unwrap();
        assert_eq!(denied["status"], "sandbox_denied");
        assert_eq!(serde_json::to_value(Status::Oom).unwrap()["status"], "oom");
        assert_eq!(serde_json::to_value(Status::Killed).unwrap()["status"], "killed");
    }
}
