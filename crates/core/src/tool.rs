//! Tools: what an agent can do besides talking.
//!
//! Each tool declares its name, a description for the model, JSON-schema parameters and whether
//! it has side effects: the runner records a side-effecting call before running it and never
//! runs it twice (a call whose outcome is unknown after a crash is reported, not repeated), and
//! the approval policy looks at the same flag. Tools report failures to the model as error
//! results; they do not fail the run.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::RunId;
use crate::approval::Risk;
use crate::workspace::{Author, Workspace};

/// What a tool is, for the model and for the runner.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// Its arguments, as a JSON schema of an object.
    pub parameters: Value,
    /// Whether it changes anything (files, processes, the world).
    pub side_effects: bool,
}

/// What a tool call runs with.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The run making the call.
    pub run_id: RunId,
    /// The run's project workspace, if it has a project.
    pub workspace: Option<Arc<dyn Workspace>>,
    /// The directory commands run in: a directory workspace's root, or the per-run copy of a
    /// managed one. `None` when the run has no project.
    pub dir: Option<std::path::PathBuf>,
    /// Whether commands may use the network: the project's `sandbox.network` setting, or
    /// `None` for the sandbox's default.
    pub network: Option<bool>,
    /// Where command tools keep the full logs of this run's commands.
    pub log_dir: Option<std::path::PathBuf>,
    /// Cancelled when the run is cancelled or its worker stops.
    pub cancel: CancellationToken,
}

impl ToolContext {
    /// The author of the changes the call makes.
    #[must_use]
    pub const fn author(&self) -> Author {
        Author::Run(self.run_id)
    }
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The text the model gets back.
    pub content: String,
    /// Whether the call failed (the model is told so).
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> Self {
        Self { content: content.into(), is_error: false }
    }

    /// A failed result, explained to the model.
    pub fn error(content: impl Into<String>) -> Self {
        Self { content: content.into(), is_error: true }
    }
}

/// What a tool says about one call before it runs, for the approval policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Nothing a human needs to see under the `risky` policy: reads, writes inside the
    /// workspace, commands a rule allows.
    Routine,
    /// A human should approve it under the `risky` policy.
    Risky {
        /// How much harm it could do.
        risk: Risk,
        /// Why, for the human.
        reason: String,
        /// The key a `run` or `project` grant stores (a command prefix), when the action can be
        /// allowed more widely than once.
        grant_key: Option<String>,
    },
    /// It never runs, whatever the policy; the model is told why.
    Forbidden {
        /// Why.
        reason: String,
    },
}

/// A tool.
#[async_trait]
pub trait Tool: Send + Sync + std::fmt::Debug {
    /// Its specification.
    fn spec(&self) -> &ToolSpec;

    /// What the call with `arguments` would risk. Tools without their own rules are routine:
    /// whatever they change stays inside the workspace, where every change is a revision that
    /// can be reverted.
    fn assess(&self, _arguments: &Value) -> Assessment {
        Assessment::Routine
    }

    /// Whether it works in a directory ([`ToolContext::dir`]): a managed project's copy is
    /// made only for runs that call such a tool.
    fn needs_directory(&self) -> bool {
        false
    }

    /// Runs one call with the model's arguments.
    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput;
}
