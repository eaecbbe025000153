//! The directory a run's commands and searches work in, and how it stays consistent with the
//! project's files.
//!
//! - A **directory** workspace is used in place: the directory is the project's root, the file
//!   tools write to it through the workspace (recording revisions), and commands change it
//!   directly.
//! - A **managed** workspace lives in the database, so an attempt materialises it into
//!   `<runs_dir>/<run_id>/work-<attempt>` when it first needs a directory ([`RunDir`]) and
//!   removes that copy when the attempt ends (a resumed attempt materialises it again from the
//!   project). The project stays the source of truth: the file
//!   tools keep writing through the workspace, and after every call of a tool with side effects
//!   [`WorkDir::sync`] reconciles the two against a manifest of the copy as last synced: what
//!   changed in the copy (a command's doing) is written to the project as one revision authored
//!   by the run, then what changed in the project (a file tool's write, a user's edit) is
//!   written into the copy.
//!
//! Only regular files travel: symbolic links and special files a command creates stay in the
//! copy, and every file is read and written beneath the copy's root, so nothing outside it is
//! ever read into the project. Files the copy's root `.gitignore` ignores, and `.git/`, are
//! local to the copy (build outputs such as `target/` or `node_modules/` never become
//! revisions) unless the project already has them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentd_core::page::PageRequest;
use agentd_core::project::{Project, WorkspaceKind};
use agentd_core::workspace::{Author, ContentHash, FileEdit, Precondition, Workspace};
use agentd_core::{RunId, WorkspaceError, WorkspacePath};
use agentd_workspace::beneath::{BeneathRoot, hash_file};
use agentd_workspace::directory::MAX_WALK_ENTRIES;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

type Manifest = BTreeMap<WorkspacePath, ContentHash>;

/// A run's working directory for one attempt.
#[derive(Debug)]
pub(crate) struct WorkDir {
    /// Where commands run and searches look.
    pub(crate) path: PathBuf,
    /// Where full command logs go.
    pub(crate) logs: Option<PathBuf>,
    /// For a managed workspace: the copy's manifest as last synced.
    copy: Option<tokio::sync::Mutex<Manifest>>,
    max_file_bytes: u64,
}

/// A run's working directory for one attempt, made on first need: a managed project is copied
/// only when the attempt calls a tool that works in a directory (a search, a command, the
/// checks), so that runs that only read and write files through the workspace cost no copy.
#[derive(Debug)]
pub(crate) struct RunDir {
    runs_dir: Option<PathBuf>,
    run: RunId,
    attempt: u32,
    project: Project,
    workspace: Arc<dyn Workspace>,
    max_file_bytes: u64,
    made: tokio::sync::OnceCell<Option<Arc<WorkDir>>>,
}

impl RunDir {
    /// The directory of `attempt` of `run` on `project`, not made yet.
    pub(crate) fn new(
        runs_dir: Option<PathBuf>,
        run: RunId,
        attempt: u32,
        project: Project,
        workspace: Arc<dyn Workspace>,
        max_file_bytes: u64,
    ) -> Self {
        Self {
            runs_dir,
            run,
            attempt,
            project,
            workspace,
            max_file_bytes,
            made: tokio::sync::OnceCell::new(),
        }
    }

    /// The directory, made now if it was not yet (see [`WorkDir::prepare`]). `None` when the
    /// node keeps no run directories.
    pub(crate) async fn get(&self) -> Result<Option<&Arc<WorkDir>>, WorkspaceError> {
        let made = self
            .made
            .get_or_try_init(|| async {
                WorkDir::prepare(
                    self.runs_dir.as_deref(),
                    self.run,
                    self.attempt,
                    &self.project,
                    &self.workspace,
                    self.max_file_bytes,
                )
                .await
                .map(|w| w.map(Arc::new))
            })
            .await?;
        Ok(made.as_ref())
    }

    /// The directory if it was made.
    pub(crate) fn made(&self) -> Option<&Arc<WorkDir>> {
        self.made.get().and_then(Option::as_ref)
    }

    /// Ends the attempt's use of the directory: removes the copy it made or, when it made none,
    /// the copies earlier attempts left behind (after a crash), which making one would have
    /// cleared. Later attempts' copies stay: an attempt that lost its lease may end late.
    pub(crate) async fn finish(&self) {
        if let Some(made) = self.made() {
            made.remove().await;
            return;
        }
        if !matches!(self.project.workspace, WorkspaceKind::Managed) {
            return;
        }
        let Some(run_root) = self.runs_dir.as_ref().map(|d| d.join(self.run.to_string())) else {
            return;
        };
        let attempt = self.attempt;
        let _ = tokio::task::spawn_blocking(move || {
            // Usually there is nothing: the run directory does not exist.
            let Ok(entries) = std::fs::read_dir(&run_root) else { return };
            for entry in entries.flatten() {
                let earlier = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("work-"))
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n < attempt);
                if earlier && let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(error = %e, "could not remove an earlier attempt's copy");
                }
            }
        })
        .await;
    }
}

fn io_error(op: &'static str) -> impl Fn(std::io::Error) -> WorkspaceError {
    move |source| WorkspaceError::Io { op, source }
}

/// Creates `dir` (and its parents) and makes it searchable by the sandbox uid, which resolves
/// the workspace path as itself.
fn traversable_dir(dir: &Path) -> Result<(), WorkspaceError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(io_error("create the run directory"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(io_error("set the run directory's permissions"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(f).await.map_err(|join| WorkspaceError::Io {
        op: "run a file task",
        source: std::io::Error::other(join),
    })?
}

/// Every file of the project with its hash.
async fn project_files(ws: &dyn Workspace) -> Result<Manifest, WorkspaceError> {
    let mut files = Manifest::new();
    let mut page: PageRequest<WorkspacePath> = PageRequest::first(500);
    loop {
        let listed = ws.list(None, page.clone()).await?;
        for entry in listed.items {
            files.insert(entry.path, entry.sha256);
        }
        match listed.next {
            Some(next) => page.after = Some(next),
            None => return Ok(files),
        }
    }
}

impl WorkDir {
    /// The working directory of `run` on `project`. `runs_dir` is where per-run directories
    /// live; without it a managed project gets no directory (commands and searches then fail
    /// with a clear message).
    pub(crate) async fn prepare(
        runs_dir: Option<&Path>,
        run: RunId,
        attempt: u32,
        project: &Project,
        ws: &Arc<dyn Workspace>,
        max_file_bytes: u64,
    ) -> Result<Option<Self>, WorkspaceError> {
        let run_root = runs_dir.map(|d| d.join(run.to_string()));
        let logs = run_root.as_ref().map(|r| r.join("logs"));
        match &project.workspace {
            WorkspaceKind::Directory { root } => {
                Ok(Some(Self { path: PathBuf::from(root), logs, copy: None, max_file_bytes }))
            }
            WorkspaceKind::Managed => {
                let (Some(runs_dir), Some(run_root)) = (runs_dir, run_root) else {
                    return Ok(None);
                };
                let files = project_files(ws.as_ref()).await?;
                // One copy per attempt, so that an attempt that lost its lease and ends late
                // never removes the copy of the attempt that took over.
                let name = format!("work-{attempt}");
                let (runs_dir, run_root2) = (runs_dir.to_path_buf(), run_root.clone());
                let path = blocking(move || {
                    traversable_dir(&runs_dir)?;
                    traversable_dir(&run_root2)?;
                    // A resumed attempt starts again from the project, not from what a crashed
                    // one left behind.
                    let entries = std::fs::read_dir(&run_root2)
                        .map_err(io_error("list the run directory"))?;
                    for entry in entries.flatten() {
                        if entry.file_name().to_string_lossy().starts_with("work") {
                            std::fs::remove_dir_all(entry.path())
                                .map_err(io_error("clear an earlier copy"))?;
                        }
                    }
                    let work = run_root2.join(name);
                    std::fs::create_dir(&work).map_err(io_error("create the run's copy"))?;
                    std::fs::canonicalize(&work).map_err(io_error("resolve the run's copy"))
                })
                .await?;
                let dir = Self {
                    path,
                    logs,
                    copy: Some(tokio::sync::Mutex::new(Manifest::new())),
                    max_file_bytes,
                };
                dir.pull(ws.as_ref(), &files, &Manifest::new()).await?;
                if let Some(copy) = &dir.copy {
                    *copy.lock().await = files;
                }
                Ok(Some(dir))
            }
        }
    }

    /// Writes into the copy every file whose project hash differs from `have`'s, and removes
    /// the files `have` lists that the project no longer has.
    async fn pull(
        &self,
        ws: &dyn Workspace,
        want: &Manifest,
        have: &Manifest,
    ) -> Result<(), WorkspaceError> {
        let mut writes = Vec::new();
        for (path, sha) in want {
            if have.get(path) != Some(sha) {
                writes.push((path.clone(), Some(ws.read(path).await?.content)));
            }
        }
        let deletes = have.keys().filter(|p| !want.contains_key(*p)).map(|p| (p.clone(), None));
        let mut changes: Vec<(WorkspacePath, Option<Vec<u8>>)> = deletes.collect();
        changes.append(&mut writes);
        if changes.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        blocking(move || {
            let root = BeneathRoot::open(&path).map_err(io_error("open the run's copy"))?;
            for (file, content) in changes {
                match content {
                    Some(bytes) => {
                        root.slot(&file, true)?.replace(&bytes)?;
                    }
                    None => match root.slot(&file, false).and_then(|s| s.remove()) {
                        Ok(()) | Err(WorkspaceError::FileNotFound(_)) => {}
                        Err(e) => return Err(e),
                    },
                }
            }
            Ok(())
        })
        .await
    }

    /// The regular files of the copy with their hashes, and which paths are local to it.
    async fn scan(&self) -> Result<(Manifest, LocalOnly), WorkspaceError> {
        let path = self.path.clone();
        blocking(move || {
            let root = BeneathRoot::open(&path).map_err(io_error("open the run's copy"))?;
            let mut files = Manifest::new();
            for found in root.walk(None, MAX_WALK_ENTRIES)? {
                // Removed or swapped for a link since the walk: not a file of the copy.
                if let Ok(sha) = hash_file(&root, &found.path) {
                    files.insert(found.path, sha);
                }
            }
            Ok((files, LocalOnly::of(&root)))
        })
        .await
    }

    /// After a call with side effects: writes what changed in the copy to the project (one
    /// revision authored by `author`), then what changed in the project into the copy. Returns
    /// a note for the model when some of the copy's changes could not be kept. A directory
    /// workspace needs nothing.
    pub(crate) async fn sync(
        &self,
        ws: &dyn Workspace,
        author: Author,
    ) -> Result<Option<String>, WorkspaceError> {
        let Some(copy) = &self.copy else { return Ok(None) };
        let mut manifest = copy.lock().await;
        let (on_disk, local) = self.scan().await?;
        let in_project = project_files(ws).await?;
        let touched: BTreeSet<&WorkspacePath> = on_disk
            .keys()
            .chain(manifest.keys())
            .filter(|p| on_disk.get(*p) != manifest.get(*p))
            .filter(|p| in_project.contains_key(*p) || !local.contains(p))
            .collect();
        let mut note = None;
        if !touched.is_empty() {
            let mut edits = Vec::new();
            let mut skipped = Vec::new();
            let root_path = self.path.clone();
            let wanted: Vec<WorkspacePath> = touched
                .iter()
                .filter(|p| on_disk.contains_key(**p))
                .map(|p| (*p).clone())
                .collect();
            let max = self.max_file_bytes;
            let contents = blocking(move || {
                let root =
                    BeneathRoot::open(&root_path).map_err(io_error("open the run's copy"))?;
                Ok(wanted
                    .into_iter()
                    .map(|p| {
                        let read = root.read(&p, max).map(|d| d.content);
                        (p, read)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
            for (path, read) in contents {
                match read {
                    Ok(content) => edits.push(FileEdit {
                        path,
                        content: Some(content),
                        precondition: Precondition::None,
                    }),
                    Err(e) => skipped.push(format!("{path} ({e})")),
                }
            }
            for path in touched.iter().filter(|p| !on_disk.contains_key(**p)) {
                if in_project.contains_key(*path) {
                    edits.push(FileEdit {
                        path: (*path).clone(),
                        content: None,
                        precondition: Precondition::None,
                    });
                }
            }
            if !edits.is_empty()
                && let Err(e) = ws.apply(edits, author).await
            {
                skipped.push(format!("all of them ({e})"));
            }
            if !skipped.is_empty() {
                note = Some(format!(
                    "note: some changes in the working directory were not saved to the project \
                     and were undone: {}",
                    skipped.join(", ")
                ));
            }
        }
        let now = project_files(ws).await?;
        // Files local to the copy are not the project's to delete.
        let have: Manifest = on_disk
            .into_iter()
            .filter(|(p, _)| now.contains_key(p) || !local.contains(p))
            .collect();
        self.pull(ws, &now, &have).await?;
        *manifest = now;
        Ok(note)
    }

    /// Removes the copy of a managed workspace (the logs stay).
    pub(crate) async fn remove(&self) {
        if self.copy.is_none() {
            return;
        }
        let path = self.path.clone();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(error = %e, "could not remove the run's working copy");
        }
    }
}

/// The paths that stay in the copy: `.git/` and what the root `.gitignore` ignores.
struct LocalOnly(Option<Gitignore>);

impl LocalOnly {
    fn of(root: &BeneathRoot) -> Self {
        let Ok(path) = WorkspacePath::parse(".gitignore") else { return Self(None) };
        let Ok(file) = root.read(&path, 1024 * 1024) else { return Self(None) };
        let mut builder = GitignoreBuilder::new("");
        for line in String::from_utf8_lossy(&file.content).lines() {
            // A line that is not a valid pattern is ignored, as git does.
            let _ = builder.add_line(None, line);
        }
        Self(builder.build().ok())
    }

    fn contains(&self, path: &WorkspacePath) -> bool {
        path.as_str() == ".git"
            || path.as_str().starts_with(".git/")
            || self
                .0
                .as_ref()
                .is_some_and(|g| g.matched_path_or_any_parents(path.as_str(), false).is_ignore())
    }
}
