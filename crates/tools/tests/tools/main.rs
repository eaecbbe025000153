//! The tools against real parts: a real database behind the workspace, the real sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod edit;
mod terminal;

use std::path::PathBuf;
use std::sync::Arc;

use agentd_core::RunId;
use agentd_core::tool::ToolContext;
use agentd_core::workspace::Workspace;
use tokio_util::sync::CancellationToken;

/// A context for a call of run `run` on `workspace`, working in `dir`.
pub(crate) fn context(
    workspace: Option<Arc<dyn Workspace>>,
    dir: Option<PathBuf>,
    log_dir: Option<PathBuf>,
) -> ToolContext {
    ToolContext {
        run_id: RunId::new(),
        workspace,
        dir,
        network: None,
        log_dir,
        cancel: CancellationToken::new(),
    }
}
