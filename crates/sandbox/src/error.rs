//! Errors of the sandbox. A command that ran, whatever its end, is a
//! [`crate::CommandOutcome`]; these are the cases where nothing ran.

/// Why a command could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A layer the sandbox requires (bubblewrap, seccomp, the cgroups, the uid switch) cannot be
    /// set up. Nothing ran. Reported to clients as `sandbox_unavailable`.
    #[error("the sandbox is unavailable: {reason}")]
    Unavailable {
        /// What is missing, for operators.
        reason: String,
    },
    /// The request itself is unusable (an empty argv, a variable name with `=`, ...). Nothing
    /// ran.
    #[error("invalid command: {reason}")]
    InvalidCommand {
        /// What is wrong.
        reason: String,
    },
    /// The log file could not be created. Nothing ran.
    #[error("cannot create the command log {path}")]
    Log {
        /// The log file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable { reason: reason.into() }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidCommand { reason: reason.into() }
    }
}

/// Result alias for the sandbox.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
