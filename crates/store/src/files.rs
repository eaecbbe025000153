//! Managed files, content-addressed blobs and the revision log.
//!
//! Every mutation is one transaction that first locks the project's row (a no-op `UPDATE`,
//! which takes the row lock on PostgreSQL and the write lock on SQLite), so the precondition,
//! the limits and the revision number are all checked against the state the change applies to.
//! Content lives once per project in `file_blobs`, keyed by its SHA-256: a file row points at
//! its blob, and the change log names blobs by hash, so unchanged content costs nothing.

use agentd_core::page::{Page, PageRequest};
use agentd_core::revision::{check_revision, revert_targets};
use agentd_core::store::FileStore;
use agentd_core::workspace::{
    ApplyOutcome, Author, Blob, Change, ChangeCursor, ContentHash, DeleteOutcome, FileContent,
    FileEdit, FileEntry, FileWrite, NewChange, Precondition, RevertOutcome, WorkspaceError,
    WorkspaceLimits, WorkspaceResult, WriteOutcome, detect_language,
};
use agentd_core::{ProjectId, StoreError, StoreResult, WorkspacePath};
use time::OffsetDateTime;

use crate::error::map_err;
use crate::sql::{impl_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid};

const FILE: &str = "file";
const PROJECT: &str = "project";
const BLOB: &str = "blob";
const CHANGE: &str = "change";

#[derive(sqlx::FromRow)]
struct FileRow {
    path: String,
    sha256: String,
    size: i64,
    language: Option<String>,
    updated_at: DbTime,
}

impl TryFrom<FileRow> for FileEntry {
    type Error = StoreError;

    fn try_from(r: FileRow) -> Result<Self, Self::Error> {
        Ok(Self {
            path: stored_path(&r.path)?,
            size: u64::try_from(r.size).map_err(|e| StoreError::Backend(Box::new(e)))?,
            sha256: stored_hash(&r.sha256)?,
            language: r.language,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ContentRow {
    #[sqlx(flatten)]
    file: FileRow,
    content: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    revision: i64,
    path: String,
    old_sha256: Option<String>,
    new_sha256: Option<String>,
    author: String,
    created_at: DbTime,
}

impl TryFrom<ChangeRow> for Change {
    type Error = StoreError;

    fn try_from(r: ChangeRow) -> Result<Self, Self::Error> {
        Ok(Self {
            revision: r.revision,
            path: stored_path(&r.path)?,
            old_sha256: r.old_sha256.as_deref().map(stored_hash).transpose()?,
            new_sha256: r.new_sha256.as_deref().map(stored_hash).transpose()?,
            author: r.author.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            created_at: r.created_at.0,
        })
    }
}

/// A path read back from the database; only validated paths are ever written.
fn stored_path(text: &str) -> StoreResult<WorkspacePath> {
    WorkspacePath::parse(text).map_err(|e| StoreError::Backend(Box::new(e)))
}

fn stored_hash(text: &str) -> StoreResult<ContentHash> {
    text.parse().map_err(|e| StoreError::Backend(Box::new(e)))
}

fn to_i64(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|e| StoreError::Backend(Box::new(e)))
}

fn to_u64(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// The exclusive upper bound of the paths inside directory `dir`: `dir/` < inside < `dir0`
/// (`0` is the byte after `/`), in byte order.
fn inside_bounds(dir: &WorkspacePath) -> (String, String) {
    (format!("{dir}/"), format!("{dir}0"))
}

macro_rules! select_changes {
    ($($rest:literal),*) => {
        concat!(
            "SELECT revision, path, old_sha256, new_sha256, author, created_at FROM file_changes ",
            $($rest),*
        )
    };
}

/// What one step of a revert does.
enum RevertStep {
    Delete { path: WorkspacePath, old: ContentHash },
    Restore { path: WorkspacePath, old: Option<ContentHash>, target: ContentHash, size: u64 },
}

/// Transaction steps shared by the operations, once per backend.
macro_rules! transaction_steps {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Locks the project's row until the transaction ends; returns its revision.
            async fn lock_project(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
            ) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>(
                    "UPDATE projects SET revision = revision WHERE id = $1 RETURNING revision",
                )
                .bind(DbUuid::from(project))
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| map_err(PROJECT, e))
            }

            /// The hash and size of the current file at `path`, if any.
            async fn current(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                path: &WorkspacePath,
            ) -> StoreResult<Option<(ContentHash, u64)>> {
                let row = sqlx::query_as::<_, (String, i64)>(
                    "SELECT sha256, size FROM project_files WHERE project_id = $1 AND path = $2",
                )
                .bind(DbUuid::from(project))
                .bind(path.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| map_err(FILE, e))?;
                row.map(|(sha, size)| Ok((stored_hash(&sha)?, to_u64(size)?))).transpose()
            }

            /// The number of files and their total size.
            async fn totals(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
            ) -> StoreResult<(u64, u64)> {
                let (files, bytes) = sqlx::query_as::<_, (i64, i64)>(
                    "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM project_files \
                     WHERE project_id = $1",
                )
                .bind(DbUuid::from(project))
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| map_err(FILE, e))?;
                Ok((to_u64(files)?, to_u64(bytes)?))
            }

            /// Refuses a new file where a file is needed as a directory (`a` for `a/b`), or
            /// where files already live inside it (`a` when `a/b` exists).
            async fn check_tree(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                path: &WorkspacePath,
            ) -> WorkspaceResult<()> {
                for dir in path.ancestors() {
                    if Self::current(tx, project, &dir).await?.is_some() {
                        return Err(WorkspaceError::PathConflict { path: dir, existing: "file" });
                    }
                }
                let (low, high) = inside_bounds(path);
                let inside = sqlx::query_scalar::<_, String>(
                    "SELECT path FROM project_files WHERE project_id = $1 AND path > $2 \
                     AND path < $3 LIMIT 1",
                )
                .bind(DbUuid::from(project))
                .bind(low)
                .bind(high)
                .fetch_optional(&mut **tx)
                .await
                .map_err(|e| map_err(FILE, e))?;
                match inside {
                    Some(_) => {
                        Err(WorkspaceError::PathConflict { path: path.clone(), existing: "directory" })
                    }
                    None => Ok(()),
                }
            }

            async fn store_blob(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                blob: &Blob,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO file_blobs (project_id, sha256, size, content) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, sha256) DO NOTHING",
                )
                .bind(DbUuid::from(project))
                .bind(blob.sha256.as_str())
                .bind(to_i64(blob.content.len() as u64)?)
                .bind(&blob.content)
                .execute(&mut **tx)
                .await
                .map_err(|e| map_err(BLOB, e))?;
                Ok(())
            }

            async fn blob_size(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                sha: &ContentHash,
            ) -> StoreResult<u64> {
                let size = sqlx::query_scalar::<_, i64>(
                    "SELECT size FROM file_blobs WHERE project_id = $1 AND sha256 = $2",
                )
                .bind(DbUuid::from(project))
                .bind(sha.as_str())
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| map_err(BLOB, e))?;
                to_u64(size)
            }

            async fn put_file(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                path: &WorkspacePath,
                sha: &ContentHash,
                size: u64,
                now: OffsetDateTime,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO project_files \
                     (project_id, path, sha256, size, language, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (project_id, path) \
                     DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, \
                     language = excluded.language, updated_at = excluded.updated_at",
                )
                .bind(DbUuid::from(project))
                .bind(path.as_str())
                .bind(sha.as_str())
                .bind(to_i64(size)?)
                .bind(detect_language(path))
                .bind(DbTime(now))
                .execute(&mut **tx)
                .await
                .map_err(|e| map_err(FILE, e))?;
                Ok(())
            }

            async fn remove_file(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                path: &WorkspacePath,
            ) -> StoreResult<()> {
                sqlx::query("DELETE FROM project_files WHERE project_id = $1 AND path = $2")
                    .bind(DbUuid::from(project))
                    .bind(path.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| map_err(FILE, e))?;
                Ok(())
            }

            /// Increments the project's revision; returns the new one.
            async fn next_revision(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                now: OffsetDateTime,
            ) -> StoreResult<i64> {
                sqlx::query_scalar::<_, i64>(
                    "UPDATE projects SET revision = revision + 1, updated_at = $2 WHERE id = $1 \
                     RETURNING revision",
                )
                .bind(DbUuid::from(project))
                .bind(DbTime(now))
                .fetch_one(&mut **tx)
                .await
                .map_err(|e| map_err(PROJECT, e))
            }

            #[allow(clippy::too_many_arguments)]
            async fn log_change(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                revision: i64,
                path: &WorkspacePath,
                old: Option<&ContentHash>,
                new: Option<&ContentHash>,
                author: Author,
                now: OffsetDateTime,
            ) -> StoreResult<Change> {
                sqlx::query(
                    "INSERT INTO file_changes \
                     (project_id, revision, path, old_sha256, new_sha256, author, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(DbUuid::from(project))
                .bind(revision)
                .bind(path.as_str())
                .bind(old.map(ContentHash::as_str))
                .bind(new.map(ContentHash::as_str))
                .bind(author.to_string())
                .bind(DbTime(now))
                .execute(&mut **tx)
                .await
                .map_err(|e| map_err(CHANGE, e))?;
                Ok(Change {
                    revision,
                    path: path.clone(),
                    old_sha256: old.cloned(),
                    new_sha256: new.cloned(),
                    author,
                    created_at: now,
                })
            }

            async fn changes_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                project: ProjectId,
                after: i64,
                up_to: i64,
            ) -> StoreResult<Vec<Change>> {
                sqlx::query_as::<_, ChangeRow>(select_changes!(
                    "WHERE project_id = $1 AND revision > $2 AND revision <= $3 \
                     ORDER BY revision, path"
                ))
                .bind(DbUuid::from(project))
                .bind(after)
                .bind(up_to)
                .fetch_all(&mut **tx)
                .await
                .map_err(|e| map_err(CHANGE, e))?
                .into_iter()
                .map(Change::try_from)
                .collect()
            }
        }
    };
}

transaction_steps!(crate::SqliteStore, sqlx::Sqlite);
transaction_steps!(crate::PgStore, sqlx::Postgres);

/// Whether going from `before` to `after` breaks a limit that was not already broken: a change
/// that shrinks a project that is over a (since lowered) limit is still allowed.
fn check_growth(
    limits: WorkspaceLimits,
    before: (u64, u64),
    after: (u64, u64),
) -> WorkspaceResult<()> {
    let files = if after.0 > before.0 { after.0 } else { 0 };
    let bytes = if after.1 > before.1 { after.1 } else { 0 };
    limits.check_project(files, bytes)
}

/// A project's files in path order from after `$2` to before `$3` (when not NULL), `$4` of them.
const FILE_ROWS_SQL: &str = "SELECT path, sha256, size, language, updated_at FROM project_files \
     WHERE project_id = $1 AND path > $2 AND ($3 IS NULL OR path < $3) ORDER BY path LIMIT +$4";

/// A file with its content.
const CONTENT_ROW_SQL: &str = "SELECT f.path, f.sha256, f.size, f.language, f.updated_at, \
     b.content FROM project_files f JOIN file_blobs b \
     ON b.project_id = f.project_id AND b.sha256 = f.sha256 \
     WHERE f.project_id = $1 AND f.path = $2";

fn sqlite_file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        path: r.get(0)?,
        sha256: r.get(1)?,
        size: r.get(2)?,
        language: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

// The file tools read on every call: on SQLite on the caller's thread (see `Readers`).
impl crate::SqliteStore {
    async fn file_rows(
        &self,
        project: ProjectId,
        low: String,
        high: Option<String>,
        limit: i64,
    ) -> StoreResult<Vec<FileRow>> {
        let args: [&dyn rusqlite::ToSql; 4] = [&DbUuid::from(project), &low, &high, &limit];
        self.readers()
            .read(|db| crate::sqlite_calls::query(db, FILE_ROWS_SQL, &args, sqlite_file_row))
    }

    async fn content_row(
        &self,
        project: ProjectId,
        path: &WorkspacePath,
    ) -> StoreResult<Option<ContentRow>> {
        let args: [&dyn rusqlite::ToSql; 2] = [&DbUuid::from(project), &path.as_str()];
        self.readers().read(|db| {
            crate::sqlite_calls::query_opt(db, CONTENT_ROW_SQL, &args, |r| {
                Ok(ContentRow { file: sqlite_file_row(r)?, content: r.get(5)? })
            })
        })
    }
}

impl crate::PgStore {
    async fn file_rows(
        &self,
        project: ProjectId,
        low: String,
        high: Option<String>,
        limit: i64,
    ) -> StoreResult<Vec<FileRow>> {
        sqlx::query_as::<_, FileRow>(FILE_ROWS_SQL)
            .bind(DbUuid::from(project))
            .bind(low)
            .bind(high)
            .bind(limit)
            .fetch_all(self.reader())
            .await
            .map_err(|e| map_err(FILE, e))
    }

    async fn content_row(
        &self,
        project: ProjectId,
        path: &WorkspacePath,
    ) -> StoreResult<Option<ContentRow>> {
        sqlx::query_as::<_, ContentRow>(CONTENT_ROW_SQL)
            .bind(DbUuid::from(project))
            .bind(path.as_str())
            .fetch_optional(self.reader())
            .await
            .map_err(|e| map_err(FILE, e))
    }
}

impl_for_backends!(FileStore {
    async fn list_files(
        &self,
        project: ProjectId,
        prefix: Option<&WorkspacePath>,
        page: PageRequest<WorkspacePath>,
    ) -> StoreResult<Page<FileEntry, WorkspacePath>> {
        let (mut low, high) = match prefix {
            Some(dir) => {
                let (low, high) = inside_bounds(dir);
                (low, Some(high))
            }
            None => (String::new(), None),
        };
        if let Some(after) = &page.after
            && after.as_str() > low.as_str()
        {
            after.as_str().clone_into(&mut low);
        }
        let rows = self.file_rows(project, low, high, overfetch_limit(page.limit)).await?;
        let files = rows.into_iter().map(FileEntry::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(files, page.limit, |f| f.path.clone()))
    }

    async fn read_file(
        &self,
        project: ProjectId,
        path: &WorkspacePath,
    ) -> WorkspaceResult<FileContent> {
        let row = self
            .content_row(project, path)
            .await?
            .ok_or_else(|| WorkspaceError::FileNotFound(path.clone()))?;
        Ok(FileContent { entry: row.file.try_into()?, content: row.content })
    }

    async fn write_file(
        &self,
        project: ProjectId,
        write: FileWrite,
        limits: WorkspaceLimits,
    ) -> WorkspaceResult<WriteOutcome> {
        let size = write.blob.content.len() as u64;
        limits.check_file(size)?;
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(FILE, e))?;
        let revision = Self::lock_project(&mut tx, project).await?;
        let existing = Self::current(&mut tx, project, &write.path).await?;
        write.precondition.check(existing.as_ref().map(|(sha, _)| sha))?;
        let entry = |updated_at| FileEntry {
            path: write.path.clone(),
            size,
            sha256: write.blob.sha256.clone(),
            language: detect_language(&write.path).map(str::to_owned),
            updated_at,
        };
        if existing.as_ref().is_some_and(|(sha, _)| *sha == write.blob.sha256) {
            drop(tx);
            let current = self.read_file(project, &write.path).await?;
            return Ok(WriteOutcome { file: current.entry, created: false, revision, changed: false });
        }
        if existing.is_none() {
            Self::check_tree(&mut tx, project, &write.path).await?;
        }
        let before = Self::totals(&mut tx, project).await?;
        let after = match &existing {
            Some((_, old_size)) => (before.0, before.1 - old_size + size),
            None => (before.0 + 1, before.1 + size),
        };
        check_growth(limits, before, after)?;
        Self::store_blob(&mut tx, project, &write.blob).await?;
        Self::put_file(&mut tx, project, &write.path, &write.blob.sha256, size, now).await?;
        let revision = Self::next_revision(&mut tx, project, now).await?;
        let old = existing.as_ref().map(|(sha, _)| sha);
        Self::log_change(&mut tx, project, revision, &write.path, old, Some(&write.blob.sha256), write.author, now)
            .await?;
        tx.commit().await.map_err(|e| map_err(FILE, e))?;
        Ok(WriteOutcome { file: entry(now), created: existing.is_none(), revision, changed: true })
    }

    async fn delete_file(
        &self,
        project: ProjectId,
        path: &WorkspacePath,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<DeleteOutcome> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(FILE, e))?;
        Self::lock_project(&mut tx, project).await?;
        let existing = Self::current(&mut tx, project, path).await?;
        precondition.check(existing.as_ref().map(|(sha, _)| sha))?;
        let Some((old, _)) = existing else {
            return Err(WorkspaceError::FileNotFound(path.clone()));
        };
        Self::remove_file(&mut tx, project, path).await?;
        let revision = Self::next_revision(&mut tx, project, now).await?;
        Self::log_change(&mut tx, project, revision, path, Some(&old), None, author, now).await?;
        tx.commit().await.map_err(|e| map_err(FILE, e))?;
        Ok(DeleteOutcome { revision })
    }

    async fn revert_files(
        &self,
        project: ProjectId,
        to: i64,
        author: Author,
        limits: WorkspaceLimits,
    ) -> WorkspaceResult<RevertOutcome> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(FILE, e))?;
        let current = Self::lock_project(&mut tx, project).await?;
        check_revision(to, current)?;
        let later = Self::changes_in(&mut tx, project, to, current).await?;
        // Deletions first, so that a file restored where a directory of newer files stood
        // (or the reverse) finds its place free.
        let mut deletes = Vec::new();
        let mut restores = Vec::new();
        for (path, target) in revert_targets(&later) {
            let existing = Self::current(&mut tx, project, &path).await?.map(|(sha, _)| sha);
            match (existing, target) {
                (existing, target) if existing == target => {}
                (Some(old), None) => deletes.push(RevertStep::Delete { path, old }),
                (old, Some(target)) => {
                    let size = Self::blob_size(&mut tx, project, &target).await?;
                    restores.push(RevertStep::Restore { path, old, target, size });
                }
                (None, None) => {}
            }
        }
        if deletes.is_empty() && restores.is_empty() {
            return Ok(RevertOutcome { revision: current, changes: vec![] });
        }
        let before = Self::totals(&mut tx, project).await?;
        let revision = Self::next_revision(&mut tx, project, now).await?;
        let mut changes = Vec::new();
        for step in deletes.into_iter().chain(restores) {
            let change = match step {
                RevertStep::Delete { path, old } => {
                    Self::remove_file(&mut tx, project, &path).await?;
                    Self::log_change(&mut tx, project, revision, &path, Some(&old), None, author, now)
                        .await?
                }
                RevertStep::Restore { path, old, target, size } => {
                    limits.check_file(size)?;
                    if old.is_none() {
                        Self::check_tree(&mut tx, project, &path).await?;
                    }
                    Self::put_file(&mut tx, project, &path, &target, size, now).await?;
                    Self::log_change(&mut tx, project, revision, &path, old.as_ref(), Some(&target), author, now)
                        .await?
                }
            };
            changes.push(change);
        }
        let after = Self::totals(&mut tx, project).await?;
        check_growth(limits, before, after)?;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        tx.commit().await.map_err(|e| map_err(FILE, e))?;
        Ok(RevertOutcome { revision, changes })
    }

    async fn apply_files(
        &self,
        project: ProjectId,
        edits: Vec<FileEdit>,
        author: Author,
        limits: WorkspaceLimits,
    ) -> WorkspaceResult<ApplyOutcome> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(FILE, e))?;
        let current = Self::lock_project(&mut tx, project).await?;
        // Every precondition against the state before the batch, before anything is written.
        let mut deletes = Vec::new();
        let mut puts = Vec::new();
        for edit in edits {
            let existing = Self::current(&mut tx, project, &edit.path).await?;
            edit.precondition.check(existing.as_ref().map(|(sha, _)| sha))?;
            let old = existing.map(|(sha, _)| sha);
            match (edit.content, old) {
                (None, None) => return Err(WorkspaceError::FileNotFound(edit.path)),
                (None, Some(old)) => deletes.push((edit.path, old)),
                (Some(content), old) => {
                    limits.check_file(content.len() as u64)?;
                    let blob = Blob::new(content);
                    if old.as_ref() != Some(&blob.sha256) {
                        puts.push((edit.path, old, blob));
                    }
                }
            }
        }
        if deletes.is_empty() && puts.is_empty() {
            return Ok(ApplyOutcome { revision: current, changed: Vec::new() });
        }
        let before = Self::totals(&mut tx, project).await?;
        let revision = Self::next_revision(&mut tx, project, now).await?;
        let mut changed = Vec::new();
        // Deletions first, so that a file written where a deleted directory of files stood
        // (or the reverse) finds its place free.
        for (path, old) in deletes {
            Self::remove_file(&mut tx, project, &path).await?;
            Self::log_change(&mut tx, project, revision, &path, Some(&old), None, author, now).await?;
            changed.push(path);
        }
        for (path, old, blob) in puts {
            if old.is_none() {
                Self::check_tree(&mut tx, project, &path).await?;
            }
            let size = blob.content.len() as u64;
            Self::store_blob(&mut tx, project, &blob).await?;
            Self::put_file(&mut tx, project, &path, &blob.sha256, size, now).await?;
            Self::log_change(&mut tx, project, revision, &path, old.as_ref(), Some(&blob.sha256), author, now)
                .await?;
            changed.push(path);
        }
        let after = Self::totals(&mut tx, project).await?;
        check_growth(limits, before, after)?;
        tx.commit().await.map_err(|e| map_err(FILE, e))?;
        changed.sort();
        Ok(ApplyOutcome { revision, changed })
    }

    async fn record_changes(
        &self,
        project: ProjectId,
        changes: Vec<NewChange>,
        author: Author,
    ) -> StoreResult<i64> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(CHANGE, e))?;
        let current = Self::lock_project(&mut tx, project).await?;
        if changes.is_empty() {
            return Ok(current);
        }
        let revision = Self::next_revision(&mut tx, project, now).await?;
        for change in &changes {
            for blob in [&change.old, &change.new].into_iter().flatten() {
                Self::store_blob(&mut tx, project, blob).await?;
            }
            let old = change.old.as_ref().map(|b| &b.sha256);
            let new = change.new.as_ref().map(|b| &b.sha256);
            Self::log_change(&mut tx, project, revision, &change.path, old, new, author, now).await?;
        }
        tx.commit().await.map_err(|e| map_err(CHANGE, e))?;
        Ok(revision)
    }

    async fn revision(&self, project: ProjectId) -> StoreResult<i64> {
        sqlx::query_scalar::<_, i64>("SELECT revision FROM projects WHERE id = $1")
            .bind(DbUuid::from(project))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(PROJECT, e))
    }

    async fn list_changes(
        &self,
        project: ProjectId,
        since: i64,
        page: PageRequest<ChangeCursor>,
    ) -> StoreResult<Page<Change, ChangeCursor>> {
        let (after_revision, after_path) = match &page.after {
            Some(c) => (Some(c.revision), Some(c.path.as_str().to_owned())),
            None => (None, None),
        };
        let rows = sqlx::query_as::<_, ChangeRow>(select_changes!(
            "WHERE project_id = $1 AND revision > $2 \
             AND ($3 IS NULL OR revision > $3 OR (revision = $3 AND path > $4)) \
             ORDER BY revision, path LIMIT +$5"
        ))
        .bind(DbUuid::from(project))
        .bind(since)
        .bind(after_revision)
        .bind(after_path)
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(CHANGE, e))?;
        let changes = rows.into_iter().map(Change::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(changes, page.limit, |c| ChangeCursor {
            revision: c.revision,
            path: c.path.clone(),
        }))
    }

    async fn changes_between(
        &self,
        project: ProjectId,
        after: i64,
        up_to: i64,
    ) -> StoreResult<Vec<Change>> {
        sqlx::query_as::<_, ChangeRow>(select_changes!(
            "WHERE project_id = $1 AND revision > $2 AND revision <= $3 ORDER BY revision, path"
        ))
        .bind(DbUuid::from(project))
        .bind(after)
        .bind(up_to)
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(CHANGE, e))?
        .into_iter()
        .map(Change::try_from)
        .collect()
    }

    async fn blob(&self, project: ProjectId, sha256: &ContentHash) -> StoreResult<Vec<u8>> {
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT content FROM file_blobs WHERE project_id = $1 AND sha256 = $2",
        )
        .bind(DbUuid::from(project))
        .bind(sha256.as_str())
        .fetch_one(self.reader())
        .await
        .map_err(|e| map_err(BLOB, e))
    }
});
