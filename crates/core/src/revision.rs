//! The revision model: what a project's files were at any revision, diffs between two
//! revisions, and what a revert must change.
//!
//! Every change to a project's files is recorded as (revision, path, old hash, new hash,
//! author), and the content of every version is kept in the blob store, keyed by its hash. A
//! file's state at revision R follows from the log alone: the new hash of its last change at or
//! before R, or, if its first recorded change is after R, that change's old hash (which is how a
//! directory workspace's files that existed before agentd touched them are known). So a diff of
//! R1..R2 needs only the changes in (R1, R2], and a revert to R only those after R.
//!
//! Nothing here does I/O beyond the [`FileStore`] calls it is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::ProjectId;
use crate::store::FileStore;
use crate::workspace::{Change, ContentHash, WorkspaceError, WorkspaceResult};
use crate::workspace_path::WorkspacePath;

/// A file's state at the two ends of a range of revisions; `None` means "did not exist".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpan {
    /// The state at the lower revision.
    pub before: Option<ContentHash>,
    /// The state at the upper revision.
    pub after: Option<ContentHash>,
}

/// For each path changed in `changes` (the changes of a range (R1, R2], in revision order), its
/// state at R1 and at R2. Paths whose state is the same at both ends are left out.
#[must_use]
pub fn spans(changes: &[Change]) -> BTreeMap<WorkspacePath, FileSpan> {
    let mut out: BTreeMap<WorkspacePath, FileSpan> = BTreeMap::new();
    for change in changes {
        out.entry(change.path.clone())
            .and_modify(|span| span.after.clone_from(&change.new_sha256))
            .or_insert_with(|| FileSpan {
                before: change.old_sha256.clone(),
                after: change.new_sha256.clone(),
            });
    }
    out.retain(|_, span| span.before != span.after);
    out
}

/// Checks that `revision` exists for a project at `current`.
///
/// # Errors
/// [`WorkspaceError::UnknownRevision`] when it is negative or in the future.
pub fn check_revision(revision: i64, current: i64) -> WorkspaceResult<()> {
    if (0..=current).contains(&revision) {
        Ok(())
    } else {
        Err(WorkspaceError::UnknownRevision { requested: revision, current })
    }
}

/// A unified diff (git style) of a project's files from revision `from` to revision `to`, for
/// a project now at `current`. `from` may be after `to` (the diff then undoes the changes).
/// Files that are not UTF-8 text show as `Binary files a/x and b/x differ`.
///
/// # Errors
/// `UnknownRevision` for a revision outside 0..=current; store failures.
pub async fn diff(
    store: &dyn FileStore,
    project: ProjectId,
    from: i64,
    to: i64,
    current: i64,
) -> WorkspaceResult<String> {
    check_revision(from, current)?;
    check_revision(to, current)?;
    let (low, high) = if from <= to { (from, to) } else { (to, from) };
    let changes = store.changes_between(project, low, high).await?;
    let mut out = String::new();
    for (path, span) in spans(&changes) {
        let (old, new) =
            if from <= to { (span.before, span.after) } else { (span.after, span.before) };
        let old_content = match &old {
            Some(sha) => Some(store.blob(project, sha).await?),
            None => None,
        };
        let new_content = match &new {
            Some(sha) => Some(store.blob(project, sha).await?),
            None => None,
        };
        write_file_diff(&mut out, &path, old_content.as_deref(), new_content.as_deref());
    }
    Ok(out)
}

/// Appends one file's diff to `out`.
fn write_file_diff(out: &mut String, path: &WorkspacePath, old: Option<&[u8]>, new: Option<&[u8]>) {
    let a = format!("a/{path}");
    let b = format!("b/{path}");
    let _ = writeln!(out, "diff --git {a} {b}");
    match (old, new) {
        (None, Some(_)) => out.push_str("new file mode 100644\n"),
        (Some(_), None) => out.push_str("deleted file mode 100644\n"),
        _ => {}
    }
    let old_text = old.map(as_text);
    let new_text = new.map(as_text);
    if matches!(old_text, Some(None)) || matches!(new_text, Some(None)) {
        let from = if old.is_some() { a.as_str() } else { "/dev/null" };
        let to = if new.is_some() { b.as_str() } else { "/dev/null" };
        let _ = writeln!(out, "Binary files {from} and {to} differ");
        return;
    }
    let old_text = old_text.flatten().unwrap_or_default();
    let new_text = new_text.flatten().unwrap_or_default();
    let from = if old.is_some() { a } else { "/dev/null".to_owned() };
    let to = if new.is_some() { b } else { "/dev/null".to_owned() };
    let diff = similar::TextDiff::from_lines(old_text, new_text);
    let _ = write!(out, "{}", diff.unified_diff().context_radius(3).header(&from, &to));
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

/// The content as text, or `None` for binary (not UTF-8, or containing NUL).
fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) { None } else { std::str::from_utf8(bytes).ok() }
}

/// What a revert to R must do, given the changes after R in revision order: for each path, the
/// content it must get back (`None`: delete it). The caller compares with the current state
/// and skips paths that already match.
#[must_use]
pub fn revert_targets(changes_after: &[Change]) -> BTreeMap<WorkspacePath, Option<ContentHash>> {
    let mut targets = BTreeMap::new();
    for change in changes_after {
        targets.entry(change.path.clone()).or_insert_with(|| change.old_sha256.clone());
    }
    targets
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::UserId;
    use crate::workspace::Author;

    fn change(revision: i64, path: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Change {
        Change {
            revision,
            path: WorkspacePath::parse(path).unwrap_or_else(|e| panic!("{e}")),
            old_sha256: old.map(ContentHash::of),
            new_sha256: new.map(ContentHash::of),
            author: Author::User(UserId::new()),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn spans_take_the_first_old_and_the_last_new_state() {
        let log = [
            change(1, "a", None, Some(b"1")),
            change(2, "a", Some(b"1"), Some(b"2")),
            change(2, "b", Some(b"x"), None),
            change(3, "c", None, Some(b"c")),
            change(4, "c", Some(b"c"), None),
        ];
        let s = spans(&log);
        let keys: Vec<_> = s.keys().map(WorkspacePath::as_str).collect();
        assert_eq!(keys, ["a", "b"], "c was created and deleted again: no net change");
        let a = &s[&log[0].path];
        assert_eq!(a.before, None);
        assert_eq!(a.after, Some(ContentHash::of(b"2")));
    }

    #[test]
    fn revert_targets_are_the_state_before_the_first_later_change() {
        let log = [
            change(3, "a", Some(b"0"), Some(b"1")),
            change(4, "a", Some(b"1"), Some(b"2")),
            change(4, "new", None, Some(b"n")),
        ];
        let t = revert_targets(&log);
        assert_eq!(t[&log[0].path], Some(ContentHash::of(b"0")));
        assert_eq!(t[&log[2].path], None);
    }

    #[test]
    fn revisions_outside_the_history_are_unknown() {
        assert!(check_revision(0, 0).is_ok());
        assert!(check_revision(3, 3).is_ok());
        assert!(matches!(
            check_revision(4, 3),
            Err(WorkspaceError::UnknownRevision { requested: 4, current: 3 })
        ));
        assert!(check_revision(-1, 3).is_err());
    }

    #[test]
    fn file_diffs_are_unified_and_binary_files_are_named() {
        let p = WorkspacePath::parse("src/lib.rs").unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        write_file_diff(&mut out, &p, Some(b"a\nb\nc\n"), Some(b"a\nB\nc\n"));
        assert!(
            out.starts_with(
                "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n"
            ),
            "{out}"
        );
        assert!(out.contains("@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"), "{out}");

        let mut out = String::new();
        write_file_diff(&mut out, &p, None, Some(b"new\n"));
        assert!(out.contains("new file mode 100644\n--- /dev/null\n+++ b/src/lib.rs\n"), "{out}");
        assert!(out.contains("+new\n"), "{out}");

        let mut out = String::new();
        write_file_diff(&mut out, &p, Some(b"\x00\x01"), Some(b"\x00\x02"));
        assert!(out.contains("Binary files a/src/lib.rs and b/src/lib.rs differ\n"), "{out}");

        let mut out = String::new();
        write_file_diff(&mut out, &p, Some(b"\xff\xfe"), None);
        assert!(
            out.contains(
                "deleted file mode 100644\nBinary files a/src/lib.rs and /dev/null differ\n"
            ),
            "{out}"
        );
    }
}
