//! The workspace of a command: which directories may be one, which paths inside it stay
//! read-only, and handing its files to the sandbox uid.
//!
//! Ownership model: when agentd runs as root, commands run as the configured non-root uid, so
//! that uid must own the workspace to write in it. Before each command the workspace tree is
//! walked and every entry not yet owned by the sandbox uid is given to it ([`adopt`]). The
//! walk goes through directory file descriptors (`openat` with `O_NOFOLLOW`, `fchownat` on an
//! `O_PATH` descriptor), never through paths, so a symlink or a directory swapped in by a
//! concurrent command cannot redirect it outside the tree; it does not follow symlinks, does
//! not cross mount points, and leaves alone files with several hard links (one may live
//! outside the workspace).
//!
//! After a first full walk, later walks of the same workspace only look at the files of
//! directories changed since (by their `ctime`): a file can only gain a foreign owner by being
//! created, renamed or linked into a directory, which changes the directory, or by an explicit
//! `chown`, which only root can do and agentd does not. Every directory is still visited.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::{Dir, Type};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{Gid, Uid, fchownat};

/// Directories that can never be a workspace, nor contain one.
const SYSTEM_TREES: &[&str] = &[
    "/proc", "/sys", "/dev", "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
    "/libx32",
];

/// Directories that can never be a workspace themselves (their subdirectories may be).
const SYSTEM_ROOTS: &[&str] =
    &["/", "/var", "/run", "/srv", "/opt", "/home", "/root", "/tmp", "/mnt", "/media"];

/// The deepest directory nesting [`adopt`] descends into.
const MAX_DEPTH: usize = 256;

/// Why a directory cannot be a workspace, if it cannot.
pub(crate) fn refusal(path: &Path) -> Option<String> {
    if !path.is_absolute() {
        return Some(format!("the workspace {} is not an absolute path", path.display()));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Some(format!("the workspace {} is not a normalised path", path.display()));
    }
    let canonical = match fs::canonicalize(path) {
        Ok(c) => c,
        Err(e) => return Some(format!("the workspace {} cannot be opened: {e}", path.display())),
    };
    if canonical != path {
        return Some(format!(
            "the workspace {} goes through a symlink (it is {})",
            path.display(),
            canonical.display()
        ));
    }
    if !canonical.is_dir() {
        return Some(format!("the workspace {} is not a directory", path.display()));
    }
    if SYSTEM_ROOTS.iter().any(|r| Path::new(r) == path)
        || SYSTEM_TREES.iter().any(|t| path.starts_with(t) || Path::new(t).starts_with(path))
    {
        return Some(format!("{} is a system directory and cannot be a workspace", path.display()));
    }
    None
}

/// The protected paths of `workspace` that exist (as real files or directories, reached
/// without symlinks), to be bound read-only. A missing `.git/hooks` in an existing `.git`
/// directory is created first (empty, owned by agentd), so that no command can add hooks.
pub(crate) fn protected_paths(workspace: &Path, relative: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for rel in relative {
        let path = workspace.join(rel);
        if rel == Path::new(".git/hooks") && is_real_dir(&workspace.join(".git")) {
            let _ = fs::create_dir(&path);
        }
        let mut reached = workspace.to_path_buf();
        let mut real = true;
        for part in rel.components() {
            reached.push(part);
            match fs::symlink_metadata(&reached) {
                Ok(meta) if !meta.file_type().is_symlink() => {}
                _ => {
                    real = false;
                    break;
                }
            }
        }
        if real {
            out.push(path);
        }
    }
    out
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// What [`adopt`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Adoption {
    /// Entries given to the sandbox uid.
    pub changed: u64,
    /// Entries left alone: symlinks, other mounts, hard-linked files, protected paths.
    pub skipped: u64,
}

/// A point in time as nanoseconds since the Unix epoch, comparable with a file's `ctime`.
pub(crate) type Nanos = i128;

/// Now, minus a second of margin for file systems whose timestamps lag the clock.
pub(crate) fn walk_started() -> Nanos {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    now - 1_000_000_000
}

fn ctime(stat: &FileStat) -> Nanos {
    i128::from(stat.st_ctime) * 1_000_000_000 + i128::from(stat.st_ctime_nsec)
}

/// Gives every entry of `workspace` (and the directory itself) to `uid:gid`, except the
/// `keep` paths (absolute) and what the module documentation lists. With `since` (the
/// [`walk_started`] of an earlier complete walk), files of directories unchanged since then are
/// not looked at.
pub(crate) fn adopt(
    workspace: &Path,
    uid: u32,
    gid: u32,
    keep: &[PathBuf],
    since: Option<Nanos>,
) -> io::Result<Adoption> {
    let owner = (Uid::from_raw(uid), Gid::from_raw(gid));
    let root = nix::fcntl::open(
        workspace,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let stat = fstat(&root)?;
    let mut walk = Walk { owner, device: stat.st_dev, keep, since, done: Adoption::default() };
    walk.chown_fd(root.as_fd(), &stat)?;
    walk.directory(root, &stat, workspace.to_path_buf(), 0)?;
    Ok(walk.done)
}

struct Walk<'a> {
    owner: (Uid, Gid),
    device: u64,
    keep: &'a [PathBuf],
    since: Option<Nanos>,
    done: Adoption,
}

impl Walk<'_> {
    fn owned(&self, stat: &FileStat) -> bool {
        stat.st_uid == self.owner.0.as_raw() && stat.st_gid == self.owner.1.as_raw()
    }

    fn chown_fd(&mut self, fd: BorrowedFd<'_>, stat: &FileStat) -> io::Result<()> {
        if !self.owned(stat) {
            fchownat(
                fd,
                "",
                Some(self.owner.0),
                Some(self.owner.1),
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )?;
            self.done.changed += 1;
        }
        Ok(())
    }

    fn directory(
        &mut self,
        fd: OwnedFd,
        stat: &FileStat,
        path: PathBuf,
        depth: usize,
    ) -> io::Result<()> {
        let unchanged = self.since.is_some_and(|since| ctime(stat) < since);
        let mut dir = Dir::from_fd(fd)?;
        let entries: Vec<(std::ffi::CString, Option<Type>)> = dir
            .iter()
            .filter_map(Result::ok)
            .map(|e| (e.file_name().to_owned(), e.file_type()))
            .filter(|(n, _)| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect();
        for (name, kind) in entries {
            if unchanged && kind.is_some_and(|k| k != Type::Directory) {
                continue;
            }
            let child = path.join(OsStr::from_bytes(name.as_bytes()));
            if self.keep.iter().any(|k| k == &child) {
                self.done.skipped += 1;
                continue;
            }
            let Ok(stat) =
                fstatat(dir.as_fd(), name.as_c_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
            if kind == SFlag::S_IFLNK || stat.st_dev != self.device {
                self.done.skipped += 1;
                continue;
            }
            if kind == SFlag::S_IFDIR {
                if depth >= MAX_DEPTH {
                    self.done.skipped += 1;
                    continue;
                }
                let Ok(sub) = openat(
                    dir.as_fd(),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                let stat = fstat(&sub)?;
                if stat.st_dev != self.device {
                    self.done.skipped += 1;
                    continue;
                }
                self.chown_fd(sub.as_fd(), &stat)?;
                self.directory(sub, &stat, child, depth + 1)?;
            } else if !self.owned(&stat) {
                // Re-check through a descriptor of the very inode that will be changed.
                let Ok(file) = openat(
                    dir.as_fd(),
                    name.as_c_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                let stat = fstat(&file)?;
                let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
                if kind == SFlag::S_IFLNK || stat.st_nlink > 1 || stat.st_dev != self.device {
                    self.done.skipped += 1;
                    continue;
                }
                self.chown_fd(file.as_fd(), &stat)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn system_directories_and_relative_paths_are_refused() {
        for p in ["/", "/etc", "/usr/lib", "/proc/self", "/tmp", "relative/ws"] {
            assert!(refusal(Path::new(p)).is_some(), "{p}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(refusal(dir.path()), None);
        assert!(refusal(&dir.path().join("missing")).is_some());
    }

    #[test]
    fn a_workspace_reached_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let reason = refusal(&dir.path().join("link")).unwrap();
        assert!(reason.contains("symlink"), "{reason}");
    }

    #[test]
    fn hooks_are_created_in_a_git_directory_and_symlinked_paths_are_not_protected() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        fs::create_dir(ws.join(".git")).unwrap();
        fs::write(ws.join(".git/config"), "[core]\n").unwrap();
        let rel =
            [PathBuf::from(".git/hooks"), PathBuf::from(".git/config"), PathBuf::from(".vscode")];
        let found = protected_paths(ws, &rel);
        assert_eq!(found, vec![ws.join(".git/hooks"), ws.join(".git/config")]);
        assert!(ws.join(".git/hooks").is_dir());

        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(other.path(), ws.join(".vscode")).unwrap();
        assert!(!protected_paths(ws, &rel).contains(&ws.join(".vscode")));
    }

    #[test]
    fn adoption_changes_owners_but_skips_symlinks_hard_links_and_kept_paths() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "changing owners needs root, as the sandbox does"
        );
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(ws.join("src/deep")).unwrap();
        fs::write(ws.join("src/deep/main.rs"), "fn main() {}").unwrap();
        fs::create_dir(ws.join(".git")).unwrap();
        fs::write(ws.join(".git/config"), "").unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "x").unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("link")).unwrap();
        fs::hard_link(&outside, ws.join("hard")).unwrap();

        let done = adopt(&ws, 65_534, 65_534, &[ws.join(".git/config")], None).unwrap();
        assert_eq!(done.changed, 5, "{done:?}"); // ws, src, deep, main.rs, .git
        for p in [&ws, &ws.join("src/deep/main.rs"), &ws.join(".git")] {
            assert_eq!(fs::metadata(p).unwrap().uid(), 65_534, "{}", p.display());
        }
        assert_eq!(fs::metadata(&outside).unwrap().uid(), 0);
        assert_eq!(fs::metadata(ws.join(".git/config")).unwrap().uid(), 0);
        assert_eq!(
            adopt(&ws, 65_534, 65_534, &[], None).unwrap().changed,
            1,
            "only .git/config is left"
        );
    }

    #[test]
    fn a_later_walk_finds_files_added_to_any_directory_since_the_last() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "changing owners needs root, as the sandbox does"
        );
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(ws.join("a/b")).unwrap();
        fs::write(ws.join("a/b/old.txt"), "x").unwrap();
        adopt(&ws, 65_534, 65_534, &[], None).unwrap();
        let after_first = walk_started() + 2_000_000_000;
        // Written by agentd (root) after the walk, deep in the tree.
        fs::write(ws.join("a/b/new.txt"), "y").unwrap();
        fs::create_dir(ws.join("a/c")).unwrap();
        fs::write(ws.join("a/c/other.txt"), "z").unwrap();
        let done = adopt(&ws, 65_534, 65_534, &[], Some(walk_started())).unwrap();
        assert_eq!(done.changed, 3, "{done:?}"); // new.txt, c, other.txt
        for p in ["a/b/new.txt", "a/c", "a/c/other.txt"] {
            assert_eq!(fs::metadata(ws.join(p)).unwrap().uid(), 65_534, "{p}");
        }
        // The files of a directory unchanged since `since` are not looked at: an in-place chown
        // by root goes unseen until the directory changes (or a full walk).
        std::os::unix::fs::chown(ws.join("a/b/old.txt"), Some(0), Some(0)).unwrap();
        assert_eq!(adopt(&ws, 65_534, 65_534, &[], Some(after_first)).unwrap().changed, 0);
        assert_eq!(adopt(&ws, 65_534, 65_534, &[], None).unwrap().changed, 1);
    }
}
