//! `run_checks`: the project's checks, for agents, with a compact summary for the model.
//!
//! The same planning and execution as a checks run (`POST /v1/projects/{id}/checks`), in the
//! call's directory (`ToolContext::dir`). The commands are the project's (configured or
//! detected), never the model's; what the model can influence is the project's code, which the
//! sandbox contains like any other command.

use std::fmt::Write as _;
use std::sync::Arc;

use agentd_core::Store;
use agentd_core::check::CheckKind;
use agentd_core::tool::{Tool, ToolContext, ToolOutput, ToolSpec};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::counts::Counts;
use crate::run::{CheckResult, CheckStatus, Checker};

/// How much of a failing check's output the model gets (its end, where the errors are).
const FAILURE_TAIL_BYTES: usize = 3000;

/// Why a call has no directory to run in.
pub const NO_DIRECTORY: &str = "this run has no working directory for commands (a run without \
    a project, or a managed project whose files are not materialised for commands), so no check \
    can run";

/// The `run_checks` tool.
#[derive(Debug)]
pub struct RunChecks {
    spec: ToolSpec,
    checker: Checker,
    store: Arc<dyn Store>,
}

impl RunChecks {
    /// The tool, running checks with `checker` and reading project settings from `store`.
    #[must_use]
    pub fn new(checker: Checker, store: Arc<dyn Store>) -> Self {
        Self {
            spec: ToolSpec {
                name: "run_checks",
                description: "Run the project's lint, test and build checks (the commands its \
                    settings configure, or the defaults detected from its files) and get each \
                    one's status, counts and, for failures, the end of its output. Use it to \
                    verify a change.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "kinds": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["lint", "test", "build"]},
                            "minItems": 1,
                            "uniqueItems": true,
                            "description": "Which checks to run (default: all three, in the order lint, test, build)."
                        }
                    },
                    "additionalProperties": false
                }),
                // Builds and tests write to the project's directory (targets, caches).
                side_effects: true,
            },
            checker,
            store,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    kinds: Option<Vec<CheckKind>>,
}

#[async_trait]
impl Tool for RunChecks {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn needs_directory(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput {
        let args: Args = match serde_json::from_value(arguments) {
            Ok(a) => a,
            Err(e) => return ToolOutput::error(format!("invalid arguments for run_checks: {e}")),
        };
        let kinds = match args.kinds {
            Some(k) if k.is_empty() => {
                return ToolOutput::error("kinds must name at least one of lint, test, build");
            }
            Some(k) => dedup(k),
            None => CheckKind::ALL.to_vec(),
        };
        let settings = match self.project_settings(ctx).await {
            Ok(s) => s,
            Err(message) => return ToolOutput::error(message),
        };
        let dir = ctx.dir.as_deref().ok_or(NO_DIRECTORY);
        let results = self.checker.run_all(dir, &settings, &kinds, &ctx.cancel, None).await;
        ToolOutput::ok(summary(&results))
    }
}

impl RunChecks {
    async fn project_settings(
        &self,
        ctx: &ToolContext,
    ) -> Result<serde_json::Map<String, Value>, String> {
        let run = self
            .store
            .run(None, ctx.run_id)
            .await
            .map_err(|e| format!("cannot read this run: {e}"))?;
        let Some(project) = run.project_id else {
            return Err("this run has no project, so it has no checks".into());
        };
        let project = self
            .store
            .project(None, project)
            .await
            .map_err(|e| format!("cannot read this run's project: {e}"))?;
        Ok(project.settings)
    }
}

/// `kinds` without repeats, in their first order.
#[must_use]
pub fn dedup(kinds: Vec<CheckKind>) -> Vec<CheckKind> {
    let mut seen = Vec::with_capacity(kinds.len());
    for k in kinds {
        if !seen.contains(&k) {
            seen.push(k);
        }
    }
    seen
}

/// One line per check, then the end of each failing check's output: what a model needs.
#[must_use]
pub fn summary(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        let _ = write!(out, "{}: {}", r.kind, r.status.as_str());
        if let Some(code) = r.exit_code.filter(|_| r.status != CheckStatus::Passed) {
            let _ = write!(out, " (exit code {code})");
        }
        if let Some(command) = &r.command {
            let _ = write!(out, " — `{command}`");
        }
        if r.status != CheckStatus::Unavailable {
            let _ = write!(out, " in {:.1} s", r.duration_ms as f64 / 1000.0);
        }
        match r.counts {
            Some(Counts::Tests { total, passed, failed, skipped, .. }) => {
                let _ = write!(
                    out,
                    "; {total} tests: {passed} passed, {failed} failed, {skipped} skipped"
                );
            }
            Some(Counts::Diagnostics { warnings, errors, .. }) => {
                let _ = write!(out, "; {errors} errors, {warnings} warnings");
            }
            None => {}
        }
        if let Some(reason) = &r.reason {
            let _ = write!(out, "; {reason}");
        }
        out.push('\n');
    }
    for r in
        results.iter().filter(|r| matches!(r.status, CheckStatus::Failed | CheckStatus::TimedOut))
    {
        let _ = write!(out, "\n--- end of the {} output ---\n", r.kind);
        let text = format!("{}{}", r.output.head, r.output.tail);
        out.push_str(last_bytes(&text, FAILURE_TAIL_BYTES));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn last_bytes(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::Tool as CountTool;
    use crate::run::CheckOutput;

    #[test]
    fn the_summary_gives_statuses_counts_and_the_end_of_failures() {
        let failed = CheckResult {
            command: Some("cargo test".into()),
            status: CheckStatus::Failed,
            exit_code: Some(101),
            duration_ms: 1500,
            output: CheckOutput {
                head: format!("{}\nthread 'tests::sub' panicked\n", "x".repeat(10_000)),
                ..CheckOutput::default()
            },
            counts: Some(Counts::Tests {
                tool: CountTool::CargoTest,
                total: 3,
                passed: 2,
                failed: 1,
                skipped: 0,
            }),
            ..CheckResult::unavailable(CheckKind::Test, "")
        };
        let failed = CheckResult { reason: None, ..failed };
        let missing = CheckResult::unavailable(CheckKind::Build, "no build command");
        let text = summary(&[failed, missing]);
        assert!(text.starts_with(
            "test: failed (exit code 101) — `cargo test` in 1.5 s; 3 tests: 2 passed, 1 failed, 0 skipped\n"
        ), "{text}");
        assert!(text.contains("build: unavailable; no build command\n"), "{text}");
        assert!(text.contains("panicked"), "{text}");
        assert!(text.len() < 4000, "{}", text.len());
        assert_eq!(
            dedup(vec![CheckKind::Test, CheckKind::Lint, CheckKind::Test]),
            [CheckKind::Test, CheckKind::Lint]
        );
    }
}
