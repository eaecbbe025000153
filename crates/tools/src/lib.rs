//! The tools agents can use, and the registry that hands a profile its allowed tools.
//!
//! File tools (`list_files`, `read_file`, `write_file`, `edit_file`) work on a project's files
//! through the `Workspace` abstraction (managed or directory workspaces alike); `search` and
//! `run_terminal` work on the run's directory (a directory workspace's root, or the run's copy
//! of a managed one). Nothing here spawns processes: commands run through the sandbox, and the
//! command policy decides beforehand whether they need approval.

mod args;
pub mod edit;
pub mod files;
pub mod registry;
pub mod search;
pub mod terminal;

pub use registry::{ToolRegistry, UnknownTool};
