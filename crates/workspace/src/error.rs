//! Errors of this crate's own: configuring the allowed roots. File operations fail with core's
//! `WorkspaceError`, which the HTTP layer already maps.

use std::path::PathBuf;

/// An allowed root the operator configured cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// A root is not an absolute path.
    #[error("{0} is not an absolute path")]
    NotAbsolute(PathBuf),
    /// A root does not exist or cannot be resolved.
    #[error("{path} cannot be resolved: {source}")]
    Unresolvable {
        /// The root.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A root is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
}
