//! The directory workspace: a project's files in a directory on the server.
//!
//! Every file operation runs on the blocking pool through [`BeneathRoot`], so nothing outside
//! the root is ever opened. Changes made through agentd are recorded in the store's revision log
//! with both contents as blobs, so changes, diffs and reverts work as for managed workspaces (for
//! the changes agentd made; edits made by other means, such as an agent's shell commands, are on
//! disk but not in the log). Writers to one project are serialised within this process, so a
//! precondition checked against the disk still holds when the file is replaced.

use std::path::PathBuf;
use std::sync::Arc;

use agentd_core::page::{Page, PageRequest};
use agentd_core::revision::{check_revision, revert_targets};
use agentd_core::store::FileStore;
use agentd_core::workspace::{
    ApplyOutcome, Author, Blob, ContentHash, DeleteOutcome, FileContent, FileEdit, FileEntry,
    NewChange, Precondition, RevertOutcome, Workspace, WorkspaceError, WorkspaceLimits,
    WorkspaceResult, WriteOutcome, detect_language, distinct_edits,
};
use agentd_core::{ProjectId, WorkspacePath};
use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::beneath::{BeneathRoot, FileData, hash_file};
use crate::roots::AllowedRoots;

/// The most directory entries a listing walks before giving up.
pub const MAX_WALK_ENTRIES: u64 = 200_000;

/// A project's files in a directory on this server.
#[derive(Debug, Clone)]
pub struct DirectoryWorkspace {
    root: PathBuf,
    roots: AllowedRoots,
    project: ProjectId,
    store: Arc<dyn FileStore>,
    limits: WorkspaceLimits,
    writers: Arc<Mutex<()>>,
}

impl DirectoryWorkspace {
    /// The workspace of `project` at `root` (its canonical path, as stored at creation).
    /// `writers` serialises changes to this project; pass the same lock to every instance for
    /// one project.
    #[must_use]
    pub fn new(
        root: PathBuf,
        roots: AllowedRoots,
        project: ProjectId,
        store: Arc<dyn FileStore>,
        limits: WorkspaceLimits,
        writers: Arc<Mutex<()>>,
    ) -> Self {
        Self { root, roots, project, store, limits, writers }
    }

    /// Runs `f` on the opened root, on the blocking pool.
    async fn with_root<T, F>(&self, f: F) -> WorkspaceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&BeneathRoot) -> WorkspaceResult<T> + Send + 'static,
    {
        let root = self.root.clone();
        let roots = self.roots.clone();
        tokio::task::spawn_blocking(move || {
            // The root must still be an allowed, real directory: a root removed from the
            // configuration, or the workspace directory replaced by a link, closes it.
            let unavailable =
                |source| WorkspaceError::Unavailable { root: root.display().to_string(), source };
            let real = std::fs::canonicalize(&root).map_err(unavailable)?;
            if real != root || !roots.contains(&real) {
                return Err(WorkspaceError::NotAllowed(
                    "the workspace directory is no longer inside an allowed root".into(),
                ));
            }
            let opened = BeneathRoot::open(&root).map_err(unavailable)?;
            f(&opened)
        })
        .await
        .map_err(|join| WorkspaceError::Io {
            op: "run a file operation",
            source: std::io::Error::other(join),
        })?
    }

    /// Puts back what a failed recording of a change had replaced, best effort.
    async fn restore(&self, path: &WorkspacePath, old: Option<Vec<u8>>) {
        let path = path.clone();
        let _ = self
            .with_root(move |root| {
                let slot = root.slot(&path, false)?;
                match old {
                    Some(content) => slot.replace(&content).map(|_| ()),
                    None => slot.remove(),
                }
            })
            .await;
    }
}

/// What a write did on disk.
enum Applied {
    /// The file already had this content.
    Unchanged { modified: OffsetDateTime },
    /// The file was created (`old` is `None`) or replaced.
    Replaced { old: Option<Vec<u8>>, modified: OffsetDateTime },
}

fn entry(path: &WorkspacePath, content: &[u8], modified: OffsetDateTime) -> FileEntry {
    FileEntry {
        path: path.clone(),
        size: content.len() as u64,
        sha256: ContentHash::of(content),
        language: detect_language(path).map(str::to_owned),
        updated_at: modified,
    }
}

#[async_trait]
impl Workspace for DirectoryWorkspace {
    async fn list(
        &self,
        prefix: Option<&WorkspacePath>,
        page: PageRequest<WorkspacePath>,
    ) -> WorkspaceResult<Page<FileEntry, WorkspacePath>> {
        let prefix = prefix.cloned();
        self.with_root(move |root| {
            let found = root.walk(prefix.as_ref(), MAX_WALK_ENTRIES)?;
            let rows: Vec<_> = found
                .into_iter()
                .filter(|f| page.after.as_ref().is_none_or(|after| f.path > *after))
                .take(page.limit as usize + 1)
                .collect();
            let mut entries = Vec::with_capacity(rows.len());
            for file in rows {
                // Removed or swapped since the walk: leave it out of this page.
                let Ok(sha256) = hash_file(root, &file.path) else { continue };
                entries.push(FileEntry {
                    language: detect_language(&file.path).map(str::to_owned),
                    path: file.path,
                    size: file.size,
                    sha256,
                    updated_at: file.modified,
                });
            }
            Ok(Page::from_overfetch(entries, page.limit, |f| f.path.clone()))
        })
        .await
    }

    async fn read(&self, path: &WorkspacePath) -> WorkspaceResult<FileContent> {
        let path = path.clone();
        let max = self.limits.max_file_bytes;
        self.with_root(move |root| {
            let FileData { content, modified } = root.read(&path, max)?;
            Ok(FileContent { entry: entry(&path, &content, modified), content })
        })
        .await
    }

    async fn write(
        &self,
        path: &WorkspacePath,
        content: Vec<u8>,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<WriteOutcome> {
        self.limits.check_file(content.len() as u64)?;
        let _writer = self.writers.lock().await;
        let new = Blob::new(content);
        let max = self.limits.max_file_bytes;
        let (target, blob) = (path.clone(), new.clone());
        let applied = self
            .with_root(move |root| {
                // Parents are created only once the precondition holds.
                let slot = match root.slot(&target, false) {
                    Ok(slot) => Some(slot),
                    Err(WorkspaceError::FileNotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                let old = match &slot {
                    Some(slot) => slot.current(max)?,
                    None => None,
                };
                let old_sha = old.as_ref().map(|o| ContentHash::of(&o.content));
                precondition.check(old_sha.as_ref())?;
                if old_sha.as_ref() == Some(&blob.sha256) {
                    let modified = old.map_or(OffsetDateTime::UNIX_EPOCH, |o| o.modified);
                    return Ok(Applied::Unchanged { modified });
                }
                let slot = match slot {
                    Some(slot) => slot,
                    None => root.slot(&target, true)?,
                };
                let modified = slot.replace(&blob.content)?;
                Ok(Applied::Replaced { old: old.map(|o| o.content), modified })
            })
            .await?;
        match applied {
            Applied::Unchanged { modified } => {
                let revision = self.store.revision(self.project).await?;
                let file = entry(path, &new.content, modified);
                Ok(WriteOutcome { file, created: false, revision, changed: false })
            }
            Applied::Replaced { old, modified } => {
                let created = old.is_none();
                let file = entry(path, &new.content, modified);
                let change = NewChange {
                    path: path.clone(),
                    old: old.clone().map(Blob::new),
                    new: Some(new),
                };
                match self.store.record_changes(self.project, vec![change], author).await {
                    Ok(revision) => Ok(WriteOutcome { file, created, revision, changed: true }),
                    Err(e) => {
                        self.restore(path, old).await;
                        Err(e.into())
                    }
                }
            }
        }
    }

    async fn delete(
        &self,
        path: &WorkspacePath,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<DeleteOutcome> {
        let _writer = self.writers.lock().await;
        let max = self.limits.max_file_bytes;
        let target = path.clone();
        let old = self
            .with_root(move |root| {
                let slot = match root.slot(&target, false) {
                    Ok(slot) => Some(slot),
                    Err(WorkspaceError::FileNotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                let old = match &slot {
                    Some(slot) => slot.current(max)?,
                    None => None,
                };
                precondition.check(old.as_ref().map(|o| ContentHash::of(&o.content)).as_ref())?;
                let (Some(slot), Some(old)) = (slot, old) else {
                    return Err(WorkspaceError::FileNotFound(target.clone()));
                };
                slot.remove()?;
                Ok(old.content)
            })
            .await?;
        let change = NewChange { path: path.clone(), old: Some(Blob::new(old.clone())), new: None };
        match self.store.record_changes(self.project, vec![change], author).await {
            Ok(revision) => Ok(DeleteOutcome { revision }),
            Err(e) => {
                self.restore(path, Some(old)).await;
                Err(e.into())
            }
        }
    }

    async fn revert(&self, to: i64, author: Author) -> WorkspaceResult<RevertOutcome> {
        let _writer = self.writers.lock().await;
        let current = self.store.revision(self.project).await?;
        check_revision(to, current)?;
        let later = self.store.changes_between(self.project, to, current).await?;
        let mut targets = Vec::new();
        for (path, target) in revert_targets(&later) {
            let content = match &target {
                Some(sha) => Some(self.store.blob(self.project, sha).await?),
                None => None,
            };
            targets.push((path, content));
        }
        // Deletions first, so that a file restored where a directory of newer files stood finds
        // its place free.
        targets.sort_by_key(|(path, content)| (content.is_some(), path.clone()));
        let max = self.limits.max_file_bytes;
        let (applied, failure) = self
            .with_root(move |root| {
                let mut applied = Vec::new();
                for (path, content) in targets {
                    let step = (|| {
                        let slot = match root.slot(&path, content.is_some()) {
                            Ok(slot) => slot,
                            // Its directory is gone, so the file is too: nothing to delete.
                            Err(WorkspaceError::FileNotFound(_)) if content.is_none() => {
                                return Ok(None);
                            }
                            Err(e) => return Err(e),
                        };
                        let old = slot.current(max)?.map(|o| o.content);
                        if old.as_deref().map(ContentHash::of)
                            == content.as_deref().map(ContentHash::of)
                        {
                            return Ok(None);
                        }
                        match &content {
                            Some(bytes) => {
                                slot.replace(bytes)?;
                            }
                            None => slot.remove()?,
                        }
                        Ok(Some(NewChange {
                            path: path.clone(),
                            old: old.map(Blob::new),
                            new: content.map(Blob::new),
                        }))
                    })();
                    match step {
                        Ok(Some(change)) => applied.push(change),
                        Ok(None) => {}
                        Err(e) => return Ok((applied, Some(e))),
                    }
                }
                Ok((applied, None))
            })
            .await?;
        // What was applied is recorded even when a later step failed, so the log matches disk.
        let (revision, changes) = if applied.is_empty() {
            (current, Vec::new())
        } else {
            let revision = self.store.record_changes(self.project, applied, author).await?;
            (revision, self.store.changes_between(self.project, revision - 1, revision).await?)
        };
        match failure {
            Some(e) => Err(e),
            None => Ok(RevertOutcome { revision, changes }),
        }
    }

    async fn apply(&self, edits: Vec<FileEdit>, author: Author) -> WorkspaceResult<ApplyOutcome> {
        for edit in &edits {
            if let Some(content) = &edit.content {
                self.limits.check_file(content.len() as u64)?;
            }
        }
        let edits = distinct_edits(edits);
        let _writer = self.writers.lock().await;
        let max = self.limits.max_file_bytes;
        let applied = self
            .with_root(move |root| {
                // Every precondition first, against the files as they are.
                let mut planned = Vec::new();
                for edit in edits {
                    let old = match root.slot(&edit.path, false) {
                        Ok(slot) => slot.current(max)?.map(|o| o.content),
                        Err(WorkspaceError::FileNotFound(_)) => None,
                        Err(e) => return Err(e),
                    };
                    let old_sha = old.as_deref().map(ContentHash::of);
                    edit.precondition.check(old_sha.as_ref())?;
                    match (&edit.content, &old) {
                        (None, None) => return Err(WorkspaceError::FileNotFound(edit.path)),
                        (Some(new), Some(old)) if new == old => {}
                        _ => planned.push(NewChange {
                            path: edit.path,
                            old: old.map(Blob::new),
                            new: edit.content.map(Blob::new),
                        }),
                    }
                }
                // Deletions first, as in a revert.
                planned.sort_by_key(|c| (c.new.is_some(), c.path.clone()));
                let mut done: Vec<&NewChange> = Vec::new();
                for change in &planned {
                    let step =
                        root.slot(&change.path, change.new.is_some()).and_then(
                            |slot| match &change.new {
                                Some(blob) => slot.replace(&blob.content).map(|_| ()),
                                None => slot.remove(),
                            },
                        );
                    if let Err(e) = step {
                        undo(root, &done);
                        return Err(e);
                    }
                    done.push(change);
                }
                Ok(planned)
            })
            .await?;
        if applied.is_empty() {
            let revision = self.store.revision(self.project).await?;
            return Ok(ApplyOutcome { revision, changed: Vec::new() });
        }
        let mut changed: Vec<WorkspacePath> = applied.iter().map(|c| c.path.clone()).collect();
        changed.sort();
        match self.store.record_changes(self.project, applied.clone(), author).await {
            Ok(revision) => Ok(ApplyOutcome { revision, changed }),
            Err(e) => {
                let _ = self
                    .with_root(move |root| {
                        undo(root, &applied.iter().collect::<Vec<_>>());
                        Ok(())
                    })
                    .await;
                Err(e.into())
            }
        }
    }
}

/// Puts back what `done` changed, newest first, best effort.
fn undo(root: &BeneathRoot, done: &[&NewChange]) {
    for change in done.iter().rev() {
        let Ok(slot) = root.slot(&change.path, true) else { continue };
        let _ = match &change.old {
            Some(old) => slot.replace(&old.content).map(|_| ()),
            None => slot.remove(),
        };
    }
}
