//! A project's checks: its lint, test and build commands, run in the sandbox, with results
//! that say exactly what happened.
//!
//! - [`detect`] finds default commands from the project's files (Cargo, Go, Python, npm);
//!   a project's `settings.checks` (validated in `agentd-core`) overrides them per kind.
//! - [`Checker`] plans each check (configured, detected, or none with the reason) and runs it
//!   through [`agentd_sandbox::Sandbox`], turning the outcome into a [`CheckResult`]: `passed`
//!   only when the command ran and exited 0; `failed`, `timed_out`, or `unavailable` with the
//!   reason (no command, no directory, the sandbox unavailable or refusing).
//! - [`counts`] reads test and diagnostic counts from the output of the tools it recognises.
//! - [`RunChecks`] is the `run_checks` tool agents call; the runner's `checks` agent type uses
//!   the same [`Checker`] for `POST /v1/projects/{id}/checks`.
//!
//! This crate must not start processes itself (only the sandbox does) and must not report a
//! check as passed unless its command ran and exited 0.

pub mod counts;
pub mod detect;
mod run;
mod tool;

pub use counts::{Counts, Tool as CountedTool};
pub use run::{
    CheckOutput, CheckResult, CheckStatus, Checker, CommandSource, LOG_MAX_BYTES, LogRef, LogStore,
    OUTPUT_MAX_BYTES, PlannedCheck, PlannedCommand,
};
pub use tool::{NO_DIRECTORY, RunChecks, dedup, summary};
