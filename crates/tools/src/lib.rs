//! The tools agents can use, and the registry that hands a profile its allowed tools.
//!
//! Tools here work on a project's files through the `Workspace` abstraction (managed or
//! directory workspaces alike). They never spawn processes: commands run through the sandbox.

mod args;
pub mod files;
pub mod registry;

pub use registry::{ToolRegistry, UnknownTool};
