//! Planning and running checks: which command each kind runs (configured, else detected, else
//! none), running it in the sandbox, and turning the sandbox's outcome into a [`CheckResult`].
//!
//! A check passes only when its command ran in the sandbox and exited 0. Whatever kept it from
//! running (no command, no directory, the sandbox unavailable or refusing) is `unavailable`
//! with the reason; nothing ever runs outside the sandbox from here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_core::check::{CheckKind, ChecksSettings};
use agentd_sandbox::{CommandOutcome, CommandSpec, Sandbox, SandboxError, Status};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::counts::{self, Counts};
use crate::detect::{self, Detection};

/// How much output a result keeps inline, head and tail together.
pub const OUTPUT_MAX_BYTES: usize = 64 * 1024;
/// The most bytes of a check's full log that are stored.
pub const LOG_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Its command ran in the sandbox and exited 0.
    Passed,
    /// Its command ran and exited non-zero, ran out of memory, or was cancelled.
    Failed,
    /// Its command ran past its timeout and was killed.
    TimedOut,
    /// It did not run: see `reason`.
    Unavailable,
}

impl CheckStatus {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Where a check's command came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum CommandSource {
    /// The project's `settings.checks`.
    Configured,
    /// Detected from a file of the project.
    Detected {
        /// The file.
        file: String,
    },
}

/// The kept output of a check: the first and last bytes, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutput {
    /// The first bytes.
    pub head: String,
    /// The last bytes (empty when `head` holds everything).
    pub tail: String,
    /// How many bytes the command wrote in all.
    pub total_bytes: u64,
    /// Whether bytes between `head` and `tail` were left out.
    pub truncated: bool,
}

/// Where a check's full log is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRef {
    /// The stored log's id (a run blob: `GET /v1/runs/{run_id}/blobs/{blob_id}`).
    pub blob_id: String,
    /// Its size.
    pub bytes: u64,
    /// Whether output past [`LOG_MAX_BYTES`] was left out.
    pub truncated: bool,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which check.
    pub kind: CheckKind,
    /// The command run (or that would have run), if there is one.
    pub command: Option<String>,
    /// Where the command came from.
    pub source: Option<CommandSource>,
    /// How it ended.
    pub status: CheckStatus,
    /// Why it did not pass, when the exit code alone does not say (unavailable, timed out,
    /// out of memory, cancelled).
    pub reason: Option<String>,
    /// The exit code, when the command ended by itself.
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub duration_ms: u64,
    /// The timeout it ran under, in seconds.
    pub timeout_seconds: Option<u64>,
    /// The head and tail of its output.
    pub output: CheckOutput,
    /// Its full log, when stored.
    pub log: Option<LogRef>,
    /// Counts read from the output, when the tool is recognised.
    pub counts: Option<Counts>,
}

impl CheckResult {
    /// A check that did not run.
    #[must_use]
    pub fn unavailable(kind: CheckKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            command: None,
            source: None,
            status: CheckStatus::Unavailable,
            reason: Some(reason.into()),
            exit_code: None,
            duration_ms: 0,
            timeout_seconds: None,
            output: CheckOutput::default(),
            log: None,
            counts: None,
        }
    }
}

/// What a check will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCheck {
    /// Which check.
    pub kind: CheckKind,
    /// The command and its limits, or why there is none.
    pub command: Result<PlannedCommand, String>,
}

/// A command to run for a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommand {
    /// The shell command line.
    pub line: String,
    /// Where it came from.
    pub source: CommandSource,
    /// Its wall-clock limit.
    pub timeout_seconds: u64,
}

/// Stores a check's full log and returns its id.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Stores `content`, the log of the `kind` check.
    ///
    /// # Errors
    /// Why it could not be stored (the result then carries no log reference).
    async fn store_log(&self, kind: CheckKind, content: Vec<u8>) -> Result<String, String>;
}

/// Runs checks through the sandbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Checker {
    sandbox: Sandbox,
}

impl Checker {
    /// A checker running commands in `sandbox`.
    #[must_use]
    pub const fn new(sandbox: Sandbox) -> Self {
        Self { sandbox }
    }

    /// What each of `kinds` will run in `dir` under the project's `settings`: the configured
    /// command, else the detected one, else none (with the reason). `dir` is `Err` with the
    /// reason when there is no directory to run in.
    pub async fn plan(
        &self,
        dir: Result<&Path, &str>,
        settings: &serde_json::Map<String, serde_json::Value>,
        kinds: &[CheckKind],
    ) -> Vec<PlannedCheck> {
        let configured = match ChecksSettings::from_project_settings(settings) {
            Ok(c) => Ok(c),
            Err(problems) => {
                Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            }
        };
        let detection = match dir {
            Ok(dir) => {
                let dir = dir.to_path_buf();
                tokio::task::spawn_blocking(move || detect::detect(&dir)).await.unwrap_or_default()
            }
            Err(_) => Detection::default(),
        };
        kinds
            .iter()
            .map(|&kind| PlannedCheck {
                kind,
                command: plan_one(kind, dir, configured.as_ref(), &detection),
            })
            .collect()
    }

    /// Runs one planned check in `dir`. `log` stores the full log (none: not stored).
    pub async fn run(
        &self,
        check: &PlannedCheck,
        dir: Result<&Path, &str>,
        cancel: &CancellationToken,
        log: Option<&dyn LogStore>,
    ) -> CheckResult {
        let kind = check.kind;
        let command = match &check.command {
            Err(reason) => return CheckResult::unavailable(kind, reason.clone()),
            Ok(command) => command,
        };
        let mut result = CheckResult {
            command: Some(command.line.clone()),
            source: Some(command.source.clone()),
            timeout_seconds: Some(command.timeout_seconds),
            ..CheckResult::unavailable(kind, "")
        };
        let dir = match dir {
            Ok(dir) => dir,
            Err(reason) => {
                result.reason = Some(reason.to_owned());
                return result;
            }
        };
        let logs = match tempfile::Builder::new().prefix("agentd-check-").tempdir() {
            Ok(d) => d,
            Err(e) => {
                result.reason = Some(format!("cannot create a directory for the log: {e}"));
                return result;
            }
        };
        let log_path = logs.path().join(format!("{kind}.log"));
        let spec = CommandSpec::shell(&command.line, dir)
            .with_limits(self.limits(command.timeout_seconds))
            .with_log(&log_path)
            .with_cancel(cancel.clone());
        match self.sandbox.run(spec).await {
            Ok(outcome) => {
                describe(&mut result, &outcome);
                if let (Some(store), Some(summary)) = (log, &outcome.log) {
                    result.log = store_log(store, kind, &summary.path, summary.truncated).await;
                }
            }
            Err(SandboxError::Unavailable { reason }) => {
                result.reason = Some(format!("the sandbox is unavailable: {reason}"));
            }
            Err(err @ (SandboxError::InvalidCommand { .. } | SandboxError::Log { .. })) => {
                result.reason = Some(err.to_string());
            }
        }
        result
    }

    /// Plans and runs `kinds`, one after the other.
    pub async fn run_all(
        &self,
        dir: Result<&Path, &str>,
        settings: &serde_json::Map<String, serde_json::Value>,
        kinds: &[CheckKind],
        cancel: &CancellationToken,
        log: Option<&dyn LogStore>,
    ) -> Vec<CheckResult> {
        let mut results = Vec::new();
        for check in self.plan(dir, settings, kinds).await {
            results.push(self.run(&check, dir, cancel, log).await);
        }
        results
    }

    /// The sandbox's defaults with the check's timeout. The no-output timeout is the wall one:
    /// a compiler or test may rightly be silent for minutes, and the check's timeout is the
    /// limit its owner chose.
    fn limits(&self, timeout_seconds: u64) -> agentd_sandbox::Limits {
        let mut limits = self.sandbox.default_limits();
        limits.wall_timeout = Duration::from_secs(timeout_seconds);
        limits.idle_timeout = limits.wall_timeout;
        limits.output_max_bytes = OUTPUT_MAX_BYTES;
        limits.log_max_bytes = LOG_MAX_BYTES;
        limits
    }
}

fn plan_one(
    kind: CheckKind,
    dir: Result<&Path, &str>,
    configured: Result<&ChecksSettings, &String>,
    detection: &Detection,
) -> Result<PlannedCommand, String> {
    let configured = configured
        .map_err(|problems| format!("the project's checks setting is invalid: {problems}"))?;
    if let Some(profile) = configured.get(kind) {
        return Ok(PlannedCommand {
            line: profile.command.clone(),
            source: CommandSource::Configured,
            timeout_seconds: profile.timeout_seconds,
        });
    }
    if let Err(reason) = dir {
        return Err(format!(
            "no {kind} command is configured in the project's settings.checks.{kind}, and none \
             can be detected: {reason}"
        ));
    }
    match detection.get(kind) {
        Some(found) => Ok(PlannedCommand {
            line: found.command.clone(),
            source: CommandSource::Detected { file: found.source.to_owned() },
            timeout_seconds: kind.default_timeout_seconds(),
        }),
        None => Err(format!(
            "no {kind} command is configured in the project's settings.checks.{kind}, and none \
             was detected from its files (Cargo.toml, go.mod, pyproject.toml, setup.py, \
             setup.cfg, requirements.txt, pytest.ini, package.json scripts)"
        )),
    }
}

/// Fills `result` from the sandbox's outcome.
fn describe(result: &mut CheckResult, outcome: &CommandOutcome) {
    let out = &outcome.output;
    result.duration_ms = outcome.duration_ms;
    result.output = CheckOutput {
        head: String::from_utf8_lossy(&out.head).into_owned(),
        tail: String::from_utf8_lossy(&out.tail).into_owned(),
        total_bytes: out.total_bytes,
        truncated: out.truncated(),
    };
    result.exit_code = outcome.exit_code();
    let (status, reason) = match &outcome.status {
        Status::Exited { code: 0 } => (CheckStatus::Passed, None),
        Status::Exited { .. } => (CheckStatus::Failed, None),
        Status::TimedOut { .. } => (
            CheckStatus::TimedOut,
            Some(format!(
                "stopped after its timeout of {} s",
                result.timeout_seconds.unwrap_or_default()
            )),
        ),
        Status::Killed => (CheckStatus::Failed, Some("cancelled while running".to_owned())),
        Status::Oom => (CheckStatus::Failed, Some("ran out of memory".to_owned())),
        Status::SandboxDenied { reason } => {
            (CheckStatus::Unavailable, Some(format!("the sandbox refused to run it: {reason}")))
        }
    };
    result.status = status;
    result.reason = reason;
    if matches!(status, CheckStatus::Passed | CheckStatus::Failed) {
        let text = out.text();
        result.counts = counts::parse(result.kind, &text, result.exit_code);
    }
}

async fn store_log(
    store: &dyn LogStore,
    kind: CheckKind,
    path: &Path,
    truncated: bool,
) -> Option<LogRef> {
    let path: PathBuf = path.to_path_buf();
    let content = tokio::fs::read(&path).await;
    let content = match content {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(check = %kind, error = %e, "cannot read a check's log");
            return None;
        }
    };
    let bytes = content.len() as u64;
    match store.store_log(kind, content).await {
        Ok(blob_id) => Some(LogRef { blob_id, bytes, truncated }),
        Err(e) => {
            tracing::warn!(check = %kind, error = %e, "cannot store a check's log");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(checks: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("checks".into(), checks);
        map
    }

    #[test]
    fn a_configured_command_wins_over_detection() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        let detection = detect::detect(dir.path());
        let configured = ChecksSettings::from_project_settings(&settings(json!({
            "test": {"command": "cargo nextest run", "timeout_seconds": 60}
        })))
        .unwrap();
        let test = plan_one(CheckKind::Test, Ok(dir.path()), Ok(&configured), &detection);
        assert_eq!(
            test,
            Ok(PlannedCommand {
                line: "cargo nextest run".into(),
                source: CommandSource::Configured,
                timeout_seconds: 60
            })
        );
        let build = plan_one(CheckKind::Build, Ok(dir.path()), Ok(&configured), &detection);
        assert_eq!(build.unwrap().source, CommandSource::Detected { file: "Cargo.toml".into() });
    }

    #[test]
    fn a_check_with_no_command_says_why() {
        let detection = Detection::default();
        let none = ChecksSettings::default();
        let reason = plan_one(CheckKind::Lint, Ok(Path::new("/nowhere")), Ok(&none), &detection)
            .unwrap_err();
        assert!(reason.contains("settings.checks.lint"), "{reason}");
        let reason =
            plan_one(CheckKind::Test, Err("the run has no directory"), Ok(&none), &detection)
                .unwrap_err();
        assert!(reason.contains("the run has no directory"), "{reason}");
    }

    #[test]
    fn results_serialise_with_the_documented_fields() {
        let result = CheckResult::unavailable(CheckKind::Build, "no build command");
        let json = serde_json::to_value(&result).unwrap();
        for field in [
            "kind",
            "command",
            "source",
            "status",
            "reason",
            "exit_code",
            "duration_ms",
            "timeout_seconds",
            "output",
            "log",
            "counts",
        ] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
        assert_eq!(json["status"], "unavailable");
        assert_eq!(json["kind"], "build");
        let source =
            serde_json::to_value(CommandSource::Detected { file: "go.mod".into() }).unwrap();
        assert_eq!(source, json!({"from": "detected", "file": "go.mod"}));
    }
}
