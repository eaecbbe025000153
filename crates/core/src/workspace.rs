//! Workspaces: the files of a project, whichever kind of storage holds them.
//!
//! [`Workspace`] is what the HTTP layer and the agent tools use: list, read, write (with an
//! ETag precondition), delete and revert. Two implementations exist: [`ManagedWorkspace`] here,
//! which delegates to the database through [`FileStore`], and the directory workspace in
//! `agentd-workspace`, which reads and writes a directory on the server and records its changes
//! through the same [`FileStore`]. Both keep the revision log (see `revision`), so changes, diffs
//! and reverts work the same way for both.
//!
//! This module owns the vocabulary (ETags, preconditions, authors, limits, errors); it does no
//! I/O itself.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::id::{ProjectId, RunId, UserId};
use crate::page::{Page, PageRequest};
use crate::store::FileStore;
use crate::workspace_path::{PathError, WorkspacePath};

/// The SHA-256 of a file's content as 64 lowercase hex digits: its identity in the blob store
/// and its HTTP ETag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(String);

impl ContentHash {
    /// The hash of `content`.
    #[must_use]
    pub fn of(content: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(content))
    }

    /// The hash of everything `reader` yields, read in chunks (for files too large to hold).
    ///
    /// # Errors
    /// When reading fails.
    pub fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self::from_digest(&hasher.finalize()))
    }

    fn from_digest(digest: &[u8]) -> Self {
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// The hash as hex.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The quoted form used in `ETag`, `If-Match` and `If-None-Match` headers.
    #[must_use]
    pub fn to_etag(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Parses an entity tag as a client sends it back: `"hex"`, `W/"hex"` or bare hex. Weak tags
    /// are accepted because the tag is a content hash, which is always strong.
    ///
    /// # Errors
    /// When the text is not a SHA-256 in hex.
    pub fn from_etag(text: &str) -> Result<Self, InvalidContentHash> {
        let text = text.trim();
        let text = text.strip_prefix("W/").unwrap_or(text);
        let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        text.parse()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 content hash (64 hex digits)")]
pub struct InvalidContentHash;

impl FromStr for ContentHash {
    type Err = InvalidContentHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(InvalidContentHash)
        }
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who made a change: a user through the API, or an agent run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Author {
    /// A user.
    User(UserId),
    /// An agent run.
    Run(RunId),
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Run(id) => write!(f, "run:{id}"),
        }
    }
}

/// Text that is not `user:<uuid>` or `run:<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an author (user:<id> or run:<id>): {0:?}")]
pub struct InvalidAuthor(pub String);

impl FromStr for Author {
    type Err = InvalidAuthor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidAuthor(s.to_owned());
        match s.split_once(':') {
            Some(("user", id)) => id.parse().map(Self::User).map_err(|_| bad()),
            Some(("run", id)) => id.parse().map(Self::Run).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// What must hold for a write or delete to go ahead, from `If-Match` / `If-None-Match`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Unconditional.
    #[default]
    None,
    /// `If-Match: "<sha>"`: the file exists with exactly this content.
    IfMatch(ContentHash),
    /// `If-Match: *`: the file exists.
    IfExists,
    /// `If-None-Match: *`: the file does not exist (create only).
    IfNotExists,
}

impl Precondition {
    /// Checks the precondition against the file's current hash (`None` when it does not exist).
    ///
    /// # Errors
    /// [`WorkspaceError::PreconditionFailed`] when it does not hold.
    pub fn check(&self, current: Option<&ContentHash>) -> Result<(), WorkspaceError> {
        let holds = match self {
            Self::None => true,
            Self::IfMatch(expected) => current == Some(expected),
            Self::IfExists => current.is_some(),
            Self::IfNotExists => current.is_none(),
        };
        if holds {
            Ok(())
        } else {
            Err(WorkspaceError::PreconditionFailed { current: current.cloned() })
        }
    }
}

/// The size limits of a workspace, from `AGENTD_MAX_FILE_BYTES`, `AGENTD_MAX_PROJECT_BYTES` and
/// `AGENTD_MAX_PROJECT_FILES`. Managed workspaces enforce all three inside the write
/// transaction; directory workspaces enforce the file limit (the directory's total is the
/// filesystem's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkspaceLimits {
    /// The largest single file, in bytes.
    pub max_file_bytes: u64,
    /// The most bytes all of a project's current files may take together.
    pub max_project_bytes: u64,
    /// The most files a project may have.
    pub max_project_files: u64,
}

impl Default for WorkspaceLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            max_project_bytes: 100 * 1024 * 1024,
            max_project_files: 10_000,
        }
    }
}

impl WorkspaceLimits {
    /// Checks one file's size.
    ///
    /// # Errors
    /// [`WorkspaceError::FileTooLarge`] over the limit.
    pub fn check_file(&self, size: u64) -> Result<(), WorkspaceError> {
        if size > self.max_file_bytes {
            Err(WorkspaceError::FileTooLarge { size, limit: self.max_file_bytes })
        } else {
            Ok(())
        }
    }

    /// Checks a project's totals after a change.
    ///
    /// # Errors
    /// [`WorkspaceError::ProjectTooLarge`] or [`WorkspaceError::TooManyFiles`].
    pub fn check_project(&self, files: u64, bytes: u64) -> Result<(), WorkspaceError> {
        if files > self.max_project_files {
            return Err(WorkspaceError::TooManyFiles { limit: self.max_project_files });
        }
        if bytes > self.max_project_bytes {
            return Err(WorkspaceError::ProjectTooLarge { limit: self.max_project_bytes });
        }
        Ok(())
    }
}

/// A file in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Where it is.
    pub path: WorkspacePath,
    /// Its size in bytes.
    pub size: u64,
    /// The hash of its content: the ETag.
    pub sha256: ContentHash,
    /// The language detected from its extension, if known.
    pub language: Option<String>,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A file with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// What the listing says about it.
    pub entry: FileEntry,
    /// The bytes.
    pub content: Vec<u8>,
}

/// The result of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The file as stored.
    pub file: FileEntry,
    /// Whether the file did not exist before (201 rather than 200).
    pub created: bool,
    /// The project's revision after the write. Unchanged when the content was identical.
    pub revision: i64,
    /// Whether anything changed (identical content is not a change).
    pub changed: bool,
}

/// The result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The project's revision after the delete.
    pub revision: i64,
}

/// The result of a revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertOutcome {
    /// The project's revision afterwards: a new one, or the current one when nothing differed.
    pub revision: i64,
    /// The changes the revert made, all at `revision`.
    pub changes: Vec<Change>,
}

/// One recorded change to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The revision it belongs to (several files may change in one revision).
    pub revision: i64,
    /// The file.
    pub path: WorkspacePath,
    /// The content before; `None` when the file was created.
    pub old_sha256: Option<ContentHash>,
    /// The content after; `None` when the file was deleted.
    pub new_sha256: Option<ContentHash>,
    /// Who made it.
    pub author: Author,
    /// When.
    pub created_at: OffsetDateTime,
}

/// Where a listing of changes continues: after this revision and path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangeCursor {
    /// The revision of the last change returned.
    pub revision: i64,
    /// Its path.
    pub path: WorkspacePath,
}

/// Content to keep in the blob store, with its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The hash of `content`.
    pub sha256: ContentHash,
    /// The bytes.
    pub content: Vec<u8>,
}

impl Blob {
    /// A blob of `content`, hashed.
    #[must_use]
    pub fn new(content: Vec<u8>) -> Self {
        Self { sha256: ContentHash::of(&content), content }
    }
}

/// One file of a batch applied as a whole ([`Workspace::apply`]): its new content, or its
/// deletion, if its precondition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The file.
    pub path: WorkspacePath,
    /// The new content; `None` deletes the file.
    pub content: Option<Vec<u8>>,
    /// What must hold for the file before the batch.
    pub precondition: Precondition,
}

/// What a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The project's revision afterwards: a new one, or the current one when nothing changed.
    pub revision: i64,
    /// The files that changed (identical content is not a change), in path order.
    pub changed: Vec<WorkspacePath>,
}

/// Keeps the last edit of each path, in path order.
#[must_use]
pub fn distinct_edits(edits: Vec<FileEdit>) -> Vec<FileEdit> {
    let mut by_path = std::collections::BTreeMap::new();
    for edit in edits {
        by_path.insert(edit.path.clone(), edit);
    }
    by_path.into_values().collect()
}

/// A change made outside the database (to a directory workspace) to be recorded in the log,
/// with both contents so that diffs and reverts can show and restore them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    /// The file.
    pub path: WorkspacePath,
    /// The content before, or `None` when the file did not exist.
    pub old: Option<Blob>,
    /// The content after, or `None` when the file was deleted.
    pub new: Option<Blob>,
}

/// What can go wrong with a file operation.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The path was refused by the normaliser (400 `invalid_path`).
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    /// A directory workspace's directory cannot be opened: removed, unmounted, or unreadable
    /// (503 `workspace_unavailable`).
    #[error("the workspace directory {root} cannot be opened: {source}")]
    Unavailable {
        /// The directory.
        root: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Resolving the path would leave a directory workspace, through a symbolic link or a
    /// magic link; or the path names a symbolic link where a file is expected (400
    /// `invalid_path`).
    #[error("the path leads outside the workspace or through a symbolic link")]
    OutsideWorkspace,
    /// No file at the path (404).
    #[error("no file at {0}")]
    FileNotFound(WorkspacePath),
    /// The path names something other than a regular file: a directory, a FIFO, a device (409).
    #[error("{0} is not a regular file")]
    NotAFile(WorkspacePath),
    /// A file is where a directory is needed, or the other way round (409).
    #[error("{path} conflicts with an existing {existing}")]
    PathConflict {
        /// The path written.
        path: WorkspacePath,
        /// `file` or `directory`: what is in the way.
        existing: &'static str,
    },
    /// `If-Match` or `If-None-Match` does not hold (412).
    #[error("{}", precondition_message(current.as_ref()))]
    PreconditionFailed {
        /// The file's current hash, `None` when it does not exist.
        current: Option<ContentHash>,
    },
    /// The file is larger than `AGENTD_MAX_FILE_BYTES` (413).
    #[error("the file is {size} bytes; the limit is {limit} bytes (AGENTD_MAX_FILE_BYTES)")]
    FileTooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The project would exceed `AGENTD_MAX_PROJECT_BYTES` (413).
    #[error("the project's files would exceed {limit} bytes (AGENTD_MAX_PROJECT_BYTES)")]
    ProjectTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The project would have more than `AGENTD_MAX_PROJECT_FILES` files (422).
    #[error("the project would have more than {limit} files (AGENTD_MAX_PROJECT_FILES)")]
    TooManyFiles {
        /// The limit.
        limit: u64,
    },
    /// A revision that does not exist (422 on the revision parameter).
    #[error("revision {requested} does not exist; the project is at revision {current}")]
    UnknownRevision {
        /// The revision asked for.
        requested: i64,
        /// The project's current revision.
        current: i64,
    },
    /// A directory workspace outside the allowed roots, or they are unset (400
    /// `workspace_not_allowed`).
    #[error("{0}")]
    NotAllowed(String),
    /// The filesystem failed (500; the cause goes to the log only).
    #[error("cannot {op} in the workspace")]
    Io {
        /// What was being done: `read the file`, `list the directory`.
        op: &'static str,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The store failed; `NotFound` here means the project.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn precondition_message(current: Option<&ContentHash>) -> String {
    match current {
        Some(sha) => format!("the file has changed: its ETag is now {}", sha.to_etag()),
        None => "the file does not exist".to_owned(),
    }
}

/// Result alias for workspace operations.
pub type WorkspaceResult<T> = Result<T, WorkspaceError>;

/// The files of one project, as the HTTP layer and the tools see them.
///
/// Paths are already validated ([`WorkspacePath`]); implementations must still never touch
/// anything outside the workspace whatever the storage does (symbolic links, races).
#[async_trait]
pub trait Workspace: Send + Sync + fmt::Debug {
    /// Files under `prefix` (everything when `None`), recursively, in path order, one page at a
    /// time: `page.after` is the last path of the previous page.
    async fn list(
        &self,
        prefix: Option<&WorkspacePath>,
        page: PageRequest<WorkspacePath>,
    ) -> WorkspaceResult<Page<FileEntry, WorkspacePath>>;

    /// A file's content and ETag.
    async fn read(&self, path: &WorkspacePath) -> WorkspaceResult<FileContent>;

    /// Creates or replaces a file if `precondition` holds, recording the change as a new
    /// revision (identical content is not a change).
    async fn write(
        &self,
        path: &WorkspacePath,
        content: Vec<u8>,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<WriteOutcome>;

    /// Deletes a file if `precondition` holds, recording the change as a new revision.
    async fn delete(
        &self,
        path: &WorkspacePath,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<DeleteOutcome>;

    /// Restores every file changed after revision `to` to its content at `to` (deleting files
    /// created since), as one new revision.
    async fn revert(&self, to: i64, author: Author) -> WorkspaceResult<RevertOutcome>;

    /// Applies several writes and deletes as one revision, or none of them: every precondition
    /// is checked first, against the state before the batch; a repeated path counts once (the
    /// last edit wins). Deleting a file that does not exist is `FileNotFound`.
    async fn apply(&self, edits: Vec<FileEdit>, author: Author) -> WorkspaceResult<ApplyOutcome>;
}

/// A workspace whose files live in the database.
#[derive(Debug, Clone)]
pub struct ManagedWorkspace {
    store: Arc<dyn FileStore>,
    project: ProjectId,
    limits: WorkspaceLimits,
}

impl ManagedWorkspace {
    /// The managed workspace of `project`. The caller has already checked that the principal
    /// may see the project.
    #[must_use]
    pub fn new(store: Arc<dyn FileStore>, project: ProjectId, limits: WorkspaceLimits) -> Self {
        Self { store, project, limits }
    }
}

#[async_trait]
impl Workspace for ManagedWorkspace {
    async fn list(
        &self,
        prefix: Option<&WorkspacePath>,
        page: PageRequest<WorkspacePath>,
    ) -> WorkspaceResult<Page<FileEntry, WorkspacePath>> {
        Ok(self.store.list_files(self.project, prefix, page).await?)
    }

    async fn read(&self, path: &WorkspacePath) -> WorkspaceResult<FileContent> {
        self.store.read_file(self.project, path).await
    }

    async fn write(
        &self,
        path: &WorkspacePath,
        content: Vec<u8>,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<WriteOutcome> {
        self.limits.check_file(content.len() as u64)?;
        let write =
            FileWrite { path: path.clone(), blob: Blob::new(content), precondition, author };
        self.store.write_file(self.project, write, self.limits).await
    }

    async fn delete(
        &self,
        path: &WorkspacePath,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<DeleteOutcome> {
        self.store.delete_file(self.project, path, precondition, author).await
    }

    async fn revert(&self, to: i64, author: Author) -> WorkspaceResult<RevertOutcome> {
        self.store.revert_files(self.project, to, author, self.limits).await
    }

    async fn apply(&self, edits: Vec<FileEdit>, author: Author) -> WorkspaceResult<ApplyOutcome> {
        for edit in &edits {
            if let Some(content) = &edit.content {
                self.limits.check_file(content.len() as u64)?;
            }
        }
        self.store.apply_files(self.project, distinct_edits(edits), author, self.limits).await
    }
}

/// A write to a managed workspace, as the store receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Where.
    pub path: WorkspacePath,
    /// The new content, hashed.
    pub blob: Blob,
    /// What must hold first.
    pub precondition: Precondition,
    /// Who writes.
    pub author: Author,
}

/// The language of a file, from its extension or well-known name, for syntax highlighting and
/// agent context. `None` when unknown.
#[must_use]
pub fn detect_language(path: &WorkspacePath) -> Option<&'static str> {
    let by_name = match path.file_name() {
        "Dockerfile" | "Containerfile" => Some("dockerfile"),
        "Makefile" | "GNUmakefile" | "makefile" => Some("makefile"),
        "CMakeLists.txt" => Some("cmake"),
        "Cargo.lock" => Some("toml"),
        _ => None,
    };
    if by_name.is_some() {
        return by_name;
    }
    let ext = path.extension()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" => "javascript",
        "jsx" => "javascriptreact",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "typescriptreact",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "scala" => "scala",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "cpp",
        "cs" => "csharp",
        "swift" => "swift",
        "rb" => "ruby",
        "php" => "php",
        "sh" | "bash" | "zsh" => "shell",
        "ps1" => "powershell",
        "sql" => "sql",
        "html" | "htm" => "html",
        "css" => "css",
        "scss" => "scss",
        "json" => "json",
        "yaml" | "yml" => "yaml",
        "toml" => "toml",
        "xml" => "xml",
        "md" | "markdown" => "markdown",
        "txt" => "plaintext",
        "lua" => "lua",
        "r" => "r",
        "dart" => "dart",
        "ex" | "exs" => "elixir",
        "erl" => "erlang",
        "hs" => "haskell",
        "ml" | "mli" => "ocaml",
        "vue" => "vue",
        "svelte" => "svelte",
        "proto" => "protobuf",
        "tf" => "terraform",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> WorkspacePath {
        WorkspacePath::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn content_hashes_are_sha256_hex_and_parse_back_from_etags() {
        let h = ContentHash::of(b"abc");
        assert_eq!(h.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(ContentHash::from_etag(&h.to_etag()), Ok(h.clone()));
        assert_eq!(ContentHash::from_etag(&format!("W/{}", h.to_etag())), Ok(h.clone()));
        assert_eq!(ContentHash::from_etag(&h.as_str().to_ascii_uppercase()), Ok(h));
        assert_eq!(ContentHash::from_etag("\"abc\""), Err(InvalidContentHash));
        let big = vec![7u8; 200_000];
        assert_eq!(ContentHash::of_reader(&big[..]).ok(), Some(ContentHash::of(&big)));
    }

    #[test]
    fn authors_round_trip_through_text() {
        let user = Author::User(UserId::new());
        let run = Author::Run(RunId::new());
        assert_eq!(user.to_string().parse::<Author>(), Ok(user));
        assert_eq!(run.to_string().parse::<Author>(), Ok(run));
        assert!("admin:1".parse::<Author>().is_err());
        assert!("user:nope".parse::<Author>().is_err());
    }

    #[test]
    fn preconditions_hold_only_in_their_state() {
        let a = ContentHash::of(b"a");
        let b = ContentHash::of(b"b");
        assert!(Precondition::None.check(None).is_ok());
        assert!(Precondition::IfMatch(a.clone()).check(Some(&a)).is_ok());
        assert!(Precondition::IfMatch(a.clone()).check(Some(&b)).is_err());
        assert!(Precondition::IfMatch(a).check(None).is_err());
        assert!(Precondition::IfExists.check(Some(&b)).is_ok());
        assert!(Precondition::IfExists.check(None).is_err());
        assert!(Precondition::IfNotExists.check(None).is_ok());
        let err = Precondition::IfNotExists.check(Some(&b)).unwrap_err();
        assert!(err.to_string().contains(&b.to_etag()), "{err}");
    }

    #[test]
    fn limits_name_their_setting() {
        let limits =
            WorkspaceLimits { max_file_bytes: 10, max_project_bytes: 100, max_project_files: 2 };
        assert!(limits.check_file(10).is_ok());
        assert!(limits.check_file(11).unwrap_err().to_string().contains("AGENTD_MAX_FILE_BYTES"));
        assert!(limits.check_project(2, 100).is_ok());
        assert!(matches!(
            limits.check_project(3, 0),
            Err(WorkspaceError::TooManyFiles { limit: 2 })
        ));
        assert!(matches!(
            limits.check_project(1, 101),
            Err(WorkspaceError::ProjectTooLarge { limit: 100 })
        ));
    }

    #[test]
    fn languages_come_from_extensions_and_names() {
        assert_eq!(detect_language(&path("src/main.rs")), Some("rust"));
        assert_eq!(detect_language(&path("web/App.TSX")), Some("typescriptreact"));
        assert_eq!(detect_language(&path("Dockerfile")), Some("dockerfile"));
        assert_eq!(detect_language(&path(".gitignore")), None);
        assert_eq!(detect_language(&path("image.png")), None);
    }
}
