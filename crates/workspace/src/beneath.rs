//! File access that cannot leave a directory: every open, stat, mkdir, unlink and rename is
//! relative to the root's directory descriptor, and every path walk goes through
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so the kernel refuses `..` above the root,
//! absolute symbolic links, symbolic links that lead outside and `/proc` magic links while it
//! resolves, atomically. Nothing here canonicalises a path and then opens it: that would leave a
//! window in which a component can be swapped for a symbolic link.
//!
//! Reads follow symbolic links only while they stay inside the root. Writes and deletes never
//! act through a symbolic link in the last component: they refuse it. Writes are atomic: the
//! content goes to a new temporary file beside the target, which is then renamed over it.
//! Listings walk without following any symbolic link.
//!
//! The functions are blocking; the async callers run them on the blocking pool.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use agentd_core::WorkspacePath;
use agentd_core::workspace::{ContentHash, WorkspaceError, WorkspaceResult};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use time::OffsetDateTime;

/// Files whose names start with this are agentd's temporary files: never listed.
pub const TEMP_PREFIX: &str = ".agentd-tmp-";

/// The deepest directory nesting a listing descends into.
const MAX_DEPTH: usize = 128;

/// How path resolution is confined.
fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// An open directory that every access stays beneath.
#[derive(Debug)]
pub struct BeneathRoot {
    fd: OwnedFd,
}

/// A regular file as read, with what a listing shows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    /// The content.
    pub content: Vec<u8>,
    /// When it was last modified.
    pub modified: OffsetDateTime,
}

/// A regular file found by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// Where it is.
    pub path: WorkspacePath,
    /// Its size.
    pub size: u64,
    /// When it was last modified.
    pub modified: OffsetDateTime,
}

/// The place of one file: its parent directory, opened beneath the root, and its name. Writes
/// and deletes act on the name inside that directory, so nothing can redirect them elsewhere.
#[derive(Debug)]
pub struct Slot {
    parent: OwnedFd,
    name: String,
    path: WorkspacePath,
}

impl BeneathRoot {
    /// Opens `root` (which must be a directory, and not itself a symbolic link).
    ///
    /// # Errors
    /// When it cannot be opened.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    fn open_beneath(&self, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        rustix::fs::openat2(&self.fd, path, flags | OFlags::CLOEXEC, Mode::empty(), beneath())
    }

    /// Reads a regular file, following symbolic links only while they stay beneath the root.
    /// Files larger than `max_bytes` are refused without being read whole.
    ///
    /// # Errors
    /// `FileNotFound`, `OutsideWorkspace`, `NotAFile`, `FileTooLarge`, or `Io`.
    pub fn read(&self, path: &WorkspacePath, max_bytes: u64) -> WorkspaceResult<FileData> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = self.open_beneath(path.as_str(), flags).map_err(|e| read_error(e, path))?;
        read_regular(fd, path, max_bytes)
    }

    /// The place of `path`, creating its missing parent directories when `create_parents`.
    ///
    /// # Errors
    /// `OutsideWorkspace` when a parent leads outside; `PathConflict` when a parent is a file;
    /// `FileNotFound` when a parent is missing and not to be created.
    pub fn slot(&self, path: &WorkspacePath, create_parents: bool) -> WorkspaceResult<Slot> {
        let name = path.file_name().to_owned();
        let parent = match path.parent() {
            None => rustix::io::fcntl_dupfd_cloexec(&self.fd, 0).map_err(io("open the root"))?,
            Some(dir) => self.directory(&dir, create_parents).map_err(|e| match e {
                WorkspaceError::FileNotFound(_) => WorkspaceError::FileNotFound(path.clone()),
                other => other,
            })?,
        };
        Ok(Slot { parent, name, path: path.clone() })
    }

    /// Opens directory `dir` beneath the root, creating it (and its parents) when asked.
    fn directory(&self, dir: &WorkspacePath, create: bool) -> WorkspaceResult<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        match self.open_beneath(dir.as_str(), flags) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) if create => {}
            Err(e) => return Err(dir_error(e, dir)),
        }
        // Walk down from the root, creating what is missing. Each prefix is opened beneath the
        // root again, so a component swapped for a symbolic link meanwhile is still refused.
        let mut current =
            rustix::io::fcntl_dupfd_cloexec(&self.fd, 0).map_err(io("open the root"))?;
        let components: Vec<&str> = dir.components().collect();
        for depth in 1..=components.len() {
            let prefix = components[..depth].join("/");
            let next = match self.open_beneath(&prefix, flags) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(
                        &current,
                        components[depth - 1],
                        Mode::from_raw_mode(0o755),
                    ) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(dir_error(e, dir)),
                    }
                    self.open_beneath(&prefix, flags).map_err(|e| dir_error(e, dir))?
                }
                Err(e) => return Err(dir_error(e, dir)),
            };
            current = next;
        }
        Ok(current)
    }

    /// Every regular file under `prefix` (the whole root when `None`), without following
    /// symbolic links. Names that are not valid workspace paths (not UTF-8, a backslash, ...)
    /// and agentd's temporary files are skipped. More than `max_entries` entries is an error.
    ///
    /// # Errors
    /// `OutsideWorkspace` when the prefix is a symbolic link, `TooManyFiles`, or `Io`.
    pub fn walk(
        &self,
        prefix: Option<&WorkspacePath>,
        max_entries: u64,
    ) -> WorkspaceResult<Vec<FoundFile>> {
        let start = match prefix {
            None => rustix::io::fcntl_dupfd_cloexec(&self.fd, 0).map_err(io("open the root"))?,
            Some(dir) => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let resolve = beneath() | ResolveFlags::NO_SYMLINKS;
                match rustix::fs::openat2(&self.fd, dir.as_str(), flags, Mode::empty(), resolve) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT | Errno::NOTDIR) => return Ok(Vec::new()),
                    Err(e) => return Err(dir_error(e, dir)),
                }
            }
        };
        let mut found = Vec::new();
        let mut seen = 0u64;
        walk_dir(&start, prefix.map(WorkspacePath::as_str), 0, max_entries, &mut seen, &mut found)?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }
}

impl Slot {
    /// The regular file in this slot now, if any (`None` when there is none). A symbolic link
    /// here is refused, wherever it points.
    ///
    /// # Errors
    /// `OutsideWorkspace` for a symbolic link, `NotAFile`, `FileTooLarge`, or `Io`.
    pub fn current(&self, max_bytes: u64) -> WorkspaceResult<Option<FileData>> {
        let flags =
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve = beneath() | ResolveFlags::NO_SYMLINKS;
        match rustix::fs::openat2(&self.parent, self.name.as_str(), flags, Mode::empty(), resolve) {
            Ok(fd) => read_regular(fd, &self.path, max_bytes).map(Some),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(read_error(e, &self.path)),
        }
    }

    /// Puts `content` in place atomically: a new temporary file in the same directory, synced,
    /// then renamed over the name. A symbolic link or directory at the name is refused (the
    /// rename would replace the link itself; refusing keeps writes through links failing).
    ///
    /// # Errors
    /// `OutsideWorkspace`, `NotAFile`, or `Io`.
    pub fn replace(&self, content: &[u8]) -> WorkspaceResult<OffsetDateTime> {
        let existing = self.refuse_non_file()?;
        let temp = format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat2(
            &self.parent,
            temp.as_str(),
            flags,
            Mode::from_raw_mode(0o644),
            beneath(),
        )
        .map_err(|e| io("create a temporary file")(e))?;
        let mut file = File::from(fd);
        keep_ownership(&file, existing.as_ref(), &self.parent);
        let written = file.write_all(content).and_then(|()| file.sync_all());
        if let Err(source) = written {
            let _ = rustix::fs::unlinkat(&self.parent, temp.as_str(), AtFlags::empty());
            return Err(WorkspaceError::Io { op: "write the file", source });
        }
        let modified = stat_modified(&rustix::fs::fstat(&file).map_err(io("stat the file"))?);
        if let Err(e) =
            rustix::fs::renameat(&self.parent, temp.as_str(), &self.parent, self.name.as_str())
        {
            let _ = rustix::fs::unlinkat(&self.parent, temp.as_str(), AtFlags::empty());
            return Err(match e {
                Errno::ISDIR | Errno::NOTEMPTY => WorkspaceError::NotAFile(self.path.clone()),
                other => io("rename the file into place")(other),
            });
        }
        Ok(modified)
    }

    /// Removes the file at the name. A symbolic link or directory is refused.
    ///
    /// # Errors
    /// `FileNotFound`, `OutsideWorkspace`, `NotAFile`, or `Io`.
    pub fn remove(&self) -> WorkspaceResult<()> {
        self.refuse_non_file()?;
        match rustix::fs::unlinkat(&self.parent, self.name.as_str(), AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(WorkspaceError::FileNotFound(self.path.clone())),
            Err(Errno::ISDIR) => Err(WorkspaceError::NotAFile(self.path.clone())),
            Err(e) => Err(io("delete the file")(e)),
        }
    }

    /// The regular file at the name, if any; a link or anything else is refused.
    fn refuse_non_file(&self) -> WorkspaceResult<Option<Stat>> {
        match rustix::fs::statat(&self.parent, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => Ok(Some(stat)),
                FileType::Symlink => Err(WorkspaceError::OutsideWorkspace),
                _ => Err(WorkspaceError::NotAFile(self.path.clone())),
            },
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io("stat the file")(e)),
        }
    }
}

/// Gives a replacement file the permission bits and owner of the file it replaces (a new file:
/// the owner of its directory), so that a script stays executable and files stay writable by
/// the user the workspace belongs to. Best effort: without the privilege to change owners the
/// file keeps agentd's.
fn keep_ownership(file: &File, existing: Option<&Stat>, parent: &OwnedFd) {
    let mode = existing.map_or(0o644, |s| s.st_mode & 0o777);
    let _ = rustix::fs::fchmod(file, Mode::from_raw_mode(mode));
    let owner = match existing {
        Some(stat) => Some((stat.st_uid, stat.st_gid)),
        None => rustix::fs::fstat(parent).ok().map(|s| (s.st_uid, s.st_gid)),
    };
    if let Some((uid, gid)) = owner {
        let _ = rustix::fs::fchown(
            file,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
    }
}

fn read_regular(fd: OwnedFd, path: &WorkspacePath, max_bytes: u64) -> WorkspaceResult<FileData> {
    let stat = rustix::fs::fstat(&fd).map_err(io("stat the file"))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(WorkspaceError::NotAFile(path.clone()));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > max_bytes {
        return Err(WorkspaceError::FileTooLarge { size, limit: max_bytes });
    }
    let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // The file may grow while it is read: never take more than the limit allows.
    File::from(fd)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut content)
        .map_err(|source| WorkspaceError::Io { op: "read the file", source })?;
    if content.len() as u64 > max_bytes {
        return Err(WorkspaceError::FileTooLarge { size: content.len() as u64, limit: max_bytes });
    }
    Ok(FileData { content, modified: stat_modified(&stat) })
}

/// The hash of a regular file (never following a symbolic link at the name), streamed.
///
/// # Errors
/// As [`Slot::current`], except that size is not limited.
pub fn hash_file(root: &BeneathRoot, path: &WorkspacePath) -> WorkspaceResult<ContentHash> {
    let slot = root.slot(path, false)?;
    let flags =
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = beneath() | ResolveFlags::NO_SYMLINKS;
    let fd = rustix::fs::openat2(&slot.parent, slot.name.as_str(), flags, Mode::empty(), resolve)
        .map_err(|e| read_error(e, path))?;
    let stat = rustix::fs::fstat(&fd).map_err(io("stat the file"))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(WorkspaceError::NotAFile(path.clone()));
    }
    ContentHash::of_reader(File::from(fd))
        .map_err(|source| WorkspaceError::Io { op: "read the file", source })
}

fn walk_dir(
    dir: &OwnedFd,
    prefix: Option<&str>,
    depth: usize,
    max_entries: u64,
    seen: &mut u64,
    found: &mut Vec<FoundFile>,
) -> WorkspaceResult<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = rustix::fs::Dir::read_from(dir).map_err(io("list the directory"))?;
    for entry in entries {
        let entry = entry.map_err(io("list the directory"))?;
        let Some(name) = entry_name(entry.file_name()) else { continue };
        if name == "." || name == ".." || name.starts_with(TEMP_PREFIX) {
            continue;
        }
        *seen += 1;
        if *seen > max_entries {
            return Err(WorkspaceError::TooManyFiles { limit: max_entries });
        }
        let rel = match prefix {
            Some(p) => format!("{p}/{name}"),
            None => name.to_owned(),
        };
        let Ok(path) = WorkspacePath::parse(&rel) else { continue };
        if path.as_str() != rel {
            continue;
        }
        let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => found.push(FoundFile {
                path,
                size: u64::try_from(stat.st_size).unwrap_or(0),
                modified: stat_modified(&stat),
            }),
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let resolve = beneath() | ResolveFlags::NO_SYMLINKS;
                // Swapped for a link or removed since the stat: skip it.
                if let Ok(sub) =
                    rustix::fs::openat2(dir.as_fd(), name, flags, Mode::empty(), resolve)
                {
                    walk_dir(&sub, Some(path.as_str()), depth + 1, max_entries, seen, found)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn entry_name(name: &CStr) -> Option<&str> {
    name.to_str().ok()
}

fn stat_modified(stat: &Stat) -> OffsetDateTime {
    let nanos = i128::from(stat.st_mtime) * 1_000_000_000 + i128::from(stat.st_mtime_nsec);
    let micros = nanos - nanos.rem_euclid(1_000);
    OffsetDateTime::from_unix_timestamp_nanos(micros).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An errno from resolving a path to read.
fn read_error(e: Errno, path: &WorkspacePath) -> WorkspaceError {
    match e {
        // EXDEV: RESOLVE_BENEATH refused to leave the root; ELOOP: a symbolic link where none
        // may be followed (or a loop).
        Errno::XDEV | Errno::LOOP => WorkspaceError::OutsideWorkspace,
        Errno::NOENT | Errno::NOTDIR => WorkspaceError::FileNotFound(path.clone()),
        Errno::ISDIR | Errno::NXIO => WorkspaceError::NotAFile(path.clone()),
        other => io("open the file")(other),
    }
}

/// An errno from resolving a directory to write into.
fn dir_error(e: Errno, dir: &WorkspacePath) -> WorkspaceError {
    match e {
        Errno::XDEV | Errno::LOOP => WorkspaceError::OutsideWorkspace,
        Errno::NOTDIR | Errno::EXIST => {
            WorkspaceError::PathConflict { path: dir.clone(), existing: "file" }
        }
        Errno::NOENT => WorkspaceError::FileNotFound(dir.clone()),
        other => io("open the directory")(other),
    }
}

fn io(op: &'static str) -> impl Fn(Errno) -> WorkspaceError {
    move |e| WorkspaceError::Io { op, source: std::io::Error::from(e) }
}
