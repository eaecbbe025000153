//! The bubblewrap command line of one command. Pure: it only builds arguments.
//!
//! The mount order matters, since later mounts cover earlier ones:
//! 1. the host root read-only, a fresh `/dev`, a fresh `/proc` (of the new PID namespace),
//!    and a private `/tmp`;
//! 2. an empty tmpfs over every hidden path (home directories, `/run`, agentd's data dir, ...)
//!    that does not lie inside the workspace;
//! 3. the workspace, read-write, at its own path (its parents are created inside the tmpfs
//!    when it lives under a hidden path);
//! 4. hidden paths inside the workspace, then the protected paths read-only.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// Everything the command line depends on.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub workspace: &'a Path,
    /// Absolute host paths to hide.
    pub hide: &'a [PathBuf],
    /// Absolute paths inside the workspace to bind read-only.
    pub protected: &'a [PathBuf],
    pub network: bool,
    pub disable_userns: bool,
    pub seccomp_fd: RawFd,
    pub argv: &'a [String],
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

fn push_path(args: &mut Vec<OsString>, flag: &str, a: &Path, b: Option<&Path>) {
    args.push(flag.into());
    args.push(a.as_os_str().to_owned());
    if let Some(b) = b {
        args.push(b.as_os_str().to_owned());
    }
}

fn hide(args: &mut Vec<OsString>, path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => push_path(args, "--tmpfs", path, None),
        Ok(meta) if !meta.file_type().is_symlink() => {
            push_path(args, "--ro-bind", Path::new("/dev/null"), Some(path));
        }
        // Missing paths need no hiding; a symlink is hidden by hiding its target, which the
        // operator lists separately (bwrap would mount over the target anyway).
        _ => {}
    }
}

/// The arguments after `bwrap`.
pub(crate) fn arguments(plan: &Plan<'_>) -> Vec<OsString> {
    let mut args = Vec::with_capacity(48 + plan.argv.len());
    push(&mut args, &["--unshare-all", "--unshare-user"]);
    if plan.network {
        push(&mut args, &["--share-net"]);
    }
    if plan.disable_userns {
        push(&mut args, &["--disable-userns"]);
    }
    push(
        &mut args,
        &[
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--cap-drop",
            "ALL",
            "--hostname",
            "agentd-sandbox",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
        ],
    );
    let inside = |p: &PathBuf| p.starts_with(plan.workspace);
    for path in plan.hide.iter().filter(|p| !inside(p) && p.as_path() != Path::new("/tmp")) {
        hide(&mut args, path);
    }
    push_path(&mut args, "--bind", plan.workspace, Some(plan.workspace));
    for path in plan.hide.iter().filter(|p| inside(p)) {
        hide(&mut args, path);
    }
    for path in plan.protected {
        push_path(&mut args, "--ro-bind", path, Some(path));
    }
    push_path(&mut args, "--chdir", plan.workspace, None);
    args.push("--seccomp".into());
    args.push(plan.seccomp_fd.to_string().into());
    args.push("--".into());
    args.extend(plan.argv.iter().map(OsString::from));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn position(args: &[String], window: &[&str]) -> usize {
        args.windows(window.len())
            .position(|w| w.iter().zip(window).all(|(a, b)| a == b))
            .unwrap_or_else(|| panic!("{window:?} not in {args:?}"))
    }

    #[test]
    fn the_command_line_isolates_everything_by_default() {
        let ws = tempfile::tempdir().unwrap();
        let hidden = tempfile::tempdir().unwrap();
        let hide = vec![hidden.path().to_path_buf(), PathBuf::from("/nonexistent-agentd-path")];
        let protected = vec![ws.path().join(".git/hooks")];
        let argv = vec!["echo".to_owned(), "hi there".to_owned()];
        let plan = Plan {
            workspace: ws.path(),
            hide: &hide,
            protected: &protected,
            network: false,
            disable_userns: true,
            seccomp_fd: 7,
            argv: &argv,
        };
        let args = strings(&arguments(&plan));
        for flag in [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing from {args:?}");
        }
        assert!(!args.iter().any(|a| a == "--share-net"));
        position(&args, &["--cap-drop", "ALL"]);
        position(&args, &["--seccomp", "7"]);
        let ws_s = ws.path().to_string_lossy().into_owned();
        let hidden_s = hidden.path().to_string_lossy().into_owned();
        let root = position(&args, &["--ro-bind", "/", "/"]);
        let hidden_at = position(&args, &["--tmpfs", &hidden_s]);
        let bind = position(&args, &["--bind", &ws_s, &ws_s]);
        let hooks = ws.path().join(".git/hooks").to_string_lossy().into_owned();
        let protect = position(&args, &["--ro-bind", &hooks, &hooks]);
        assert!(root < hidden_at && hidden_at < bind && bind < protect);
        assert!(!args.iter().any(|a| a == "/nonexistent-agentd-path"));
        assert_eq!(&args[args.len() - 3..], ["--", "echo", "hi there"]);
    }

    #[test]
    fn network_is_shared_only_when_allowed() {
        let ws = tempfile::tempdir().unwrap();
        let argv = vec!["true".to_owned()];
        let plan = Plan {
            workspace: ws.path(),
            hide: &[],
            protected: &[],
            network: true,
            disable_userns: false,
            seccomp_fd: 3,
            argv: &argv,
        };
        let args = strings(&arguments(&plan));
        assert!(args.iter().any(|a| a == "--share-net"));
        assert!(!args.iter().any(|a| a == "--disable-userns"));
    }
}
