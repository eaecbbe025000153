//! Parsing a model's arguments, with errors the model can act on.

use agentd_core::WorkspacePath;
use agentd_core::tool::ToolOutput;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The arguments as `T`, or an error result saying what is wrong with them.
pub(crate) fn parse<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, ToolOutput> {
    serde_json::from_value(arguments)
        .map_err(|e| ToolOutput::error(format!("invalid arguments for {tool}: {e}")))
}

/// A workspace path from the model, or an error result.
pub(crate) fn path(text: &str) -> Result<WorkspacePath, ToolOutput> {
    WorkspacePath::parse(text).map_err(|e| ToolOutput::error(format!("invalid path {text:?}: {e}")))
}
