//! The directories under which directory workspaces may live (`AGENTD_WORKSPACE_ALLOWED_ROOTS`).
//!
//! A requested workspace directory is accepted only when its real path (every symbolic link
//! resolved) exists, is a directory and lies inside the real path of an allowed root. This is a
//! check made when a project is created and again whenever its workspace is opened (so removing a
//! root from the configuration closes its workspaces); it is never how files are opened, which
//! always goes through the beneath-the-root primitive.

use std::path::{Path, PathBuf};

use agentd_core::workspace::{WorkspaceError, WorkspaceResult};

use crate::error::RootsError;

/// The operator's allowed roots, each resolved to its real path. Empty: directory workspaces
/// are disabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedRoots(Vec<PathBuf>);

impl AllowedRoots {
    /// Resolves each configured root; each must be absolute, exist and be a directory.
    ///
    /// # Errors
    /// The first root that does not qualify.
    pub fn new(roots: &[PathBuf]) -> Result<Self, RootsError> {
        let mut resolved = Vec::with_capacity(roots.len());
        for root in roots {
            if !root.is_absolute() {
                return Err(RootsError::NotAbsolute(root.clone()));
            }
            let real = std::fs::canonicalize(root)
                .map_err(|source| RootsError::Unresolvable { path: root.clone(), source })?;
            if !real.is_dir() {
                return Err(RootsError::NotADirectory(root.clone()));
            }
            resolved.push(real);
        }
        Ok(Self(resolved))
    }

    /// No roots: directory workspaces disabled.
    #[must_use]
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Whether directory workspaces are enabled.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// The resolved roots.
    #[must_use]
    pub fn roots(&self) -> &[PathBuf] {
        &self.0
    }

    /// The real path of a requested workspace directory, if it may be one.
    ///
    /// # Errors
    /// `NotAllowed` with a message saying why: disabled, not absolute, missing, not a
    /// directory, or outside every root.
    pub fn resolve(&self, requested: &str) -> WorkspaceResult<PathBuf> {
        if !self.is_enabled() {
            return Err(WorkspaceError::NotAllowed(
                "directory workspaces are disabled: the operator has not set \
                 AGENTD_WORKSPACE_ALLOWED_ROOTS"
                    .into(),
            ));
        }
        let path = Path::new(requested);
        if requested.contains('\0') || !path.is_absolute() {
            return Err(WorkspaceError::NotAllowed(
                "a directory workspace must be given as an absolute path".into(),
            ));
        }
        let Ok(real) = std::fs::canonicalize(path) else {
            return Err(WorkspaceError::NotAllowed(format!(
                "{requested} does not exist on the server"
            )));
        };
        if !real.is_dir() {
            return Err(WorkspaceError::NotAllowed(format!("{requested} is not a directory")));
        }
        if !self.contains(&real) {
            return Err(WorkspaceError::NotAllowed(format!(
                "{requested} is outside the directories allowed for workspaces"
            )));
        }
        Ok(real)
    }

    /// Whether the real path `real` is one of the roots or inside one (component-wise, so
    /// `/srv/ws-evil` is not inside `/srv/ws`).
    #[must_use]
    pub fn contains(&self, real: &Path) -> bool {
        self.0.iter().any(|root| real.starts_with(root))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn roots_must_be_absolute_existing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(AllowedRoots::new(&["relative".into()]), Err(RootsError::NotAbsolute(_))));
        assert!(matches!(
            AllowedRoots::new(&[dir.path().join("missing")]),
            Err(RootsError::Unresolvable { .. })
        ));
        assert!(matches!(AllowedRoots::new(&[file]), Err(RootsError::NotADirectory(_))));
        assert!(AllowedRoots::new(&[dir.path().to_owned()]).unwrap().is_enabled());
    }

    #[test]
    fn only_real_directories_inside_a_root_are_accepted() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("ws");
        let inside = root.join("project");
        let sibling = top.path().join("ws-evil");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&sibling).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(&sibling, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(&inside, top.path().join("link-in")).unwrap();
        let roots = AllowedRoots::new(std::slice::from_ref(&root)).unwrap();
        let real_inside = std::fs::canonicalize(&inside).unwrap();
        assert_eq!(roots.resolve(inside.to_str().unwrap()).unwrap(), real_inside);
        assert_eq!(
            roots.resolve(root.to_str().unwrap()).unwrap(),
            std::fs::canonicalize(&root).unwrap()
        );
        // A link from outside to inside resolves to the real, allowed place.
        let via_link = top.path().join("link-in");
        assert_eq!(roots.resolve(via_link.to_str().unwrap()).unwrap(), real_inside);
        let dotdot = format!("{}/project/../../ws-evil", root.display());
        for bad in [
            "/",
            "/etc",
            "relative/path",
            sibling.to_str().unwrap(),
            root.join("escape").to_str().unwrap(),
            root.join("file").to_str().unwrap(),
            root.join("missing").to_str().unwrap(),
            dotdot.as_str(),
        ] {
            let err = roots.resolve(bad).unwrap_err();
            assert!(matches!(err, WorkspaceError::NotAllowed(_)), "{bad}: {err:?}");
        }
        let err = AllowedRoots::none().resolve(inside.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("AGENTD_WORKSPACE_ALLOWED_ROOTS"), "{err}");
    }

    #[test]
    fn a_root_the_operator_names_may_be_anywhere() {
        let roots = AllowedRoots::new(&["/".into()]).unwrap();
        assert!(roots.resolve("/etc").is_ok());
    }
}
