//! Tools by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentd_core::command_policy::CommandPolicy;
use agentd_core::tool::Tool;
use agentd_sandbox::Sandbox;

/// The tools agentd knows.
#[derive(Debug, Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

/// A profile names a tool that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tool {0:?}")]
pub struct UnknownTool(pub String);

impl ToolRegistry {
    /// The built-in tools that need no sandbox: listing, reading and writing files.
    #[must_use]
    pub fn with_file_tools() -> Self {
        let mut registry = Self::default();
        registry.add(Arc::new(crate::files::ListFiles::new()));
        registry.add(Arc::new(crate::files::ReadFile::new()));
        registry.add(Arc::new(crate::files::WriteFile::new()));
        registry
    }

    /// Every built-in tool: the file tools, `edit_file`, `search`, and `run_terminal` running
    /// commands in `sandbox` under `policy`. Profiles choose among them by name.
    #[must_use]
    pub fn standard(sandbox: Sandbox, policy: Arc<CommandPolicy>) -> Self {
        let mut registry = Self::with_file_tools();
        registry.add(Arc::new(crate::edit::EditFile::new()));
        registry.add(Arc::new(crate::search::Search::new()));
        registry.add(Arc::new(crate::terminal::RunTerminal::new(sandbox, policy)));
        registry
    }

    /// Adds (or replaces) a tool.
    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name, tool);
    }

    /// The tool called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    /// Every tool's name.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tools.keys().copied()
    }

    /// The tools called `names`, in that order.
    ///
    /// # Errors
    /// The first name that is not a tool.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<Arc<dyn Tool>>, UnknownTool> {
        names
            .iter()
            .map(|n| self.get(n.as_ref()).ok_or_else(|| UnknownTool(n.as_ref().to_owned())))
            .collect()
    }
}
