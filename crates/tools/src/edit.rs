//! `edit_file`: exact-string replacements in one file, or a patch across several files applied
//! as a whole.
//!
//! Every hunk is checked before anything is written: its `old_string` must occur in the file
//! exactly once (or, with `replace_all`, at least once). Hunks of one file apply in order, each
//! to the result of the previous one. Then all files are written as one revision through
//! [`Workspace::apply`], with each file's content as read as the precondition, so a file that
//! changed meanwhile fails the whole patch. One bad hunk writes nothing.

use std::collections::BTreeMap;

use agentd_core::WorkspacePath;
use agentd_core::tool::{Tool, ToolContext, ToolOutput, ToolSpec};
use agentd_core::workspace::{ContentHash, FileEdit, Precondition, WorkspaceError};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::args;
use crate::files::workspace;

/// Replaces exact text in files.
#[derive(Debug)]
pub struct EditFile {
    spec: ToolSpec,
}

impl EditFile {
    /// The tool.
    #[must_use]
    pub fn new() -> Self {
        let hunk = json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_string": {"type": "string", "description": "Exact text to replace, including whitespace; must occur exactly once unless replace_all."},
                "new_string": {"type": "string"},
                "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)."}
            },
            "required": ["path", "old_string", "new_string"],
            "additionalProperties": false
        });
        Self {
            spec: ToolSpec {
                name: "edit_file",
                description: "Replace exact text in a file: old_string must occur exactly once \
                    (include surrounding lines to make it unique) unless replace_all is true. \
                    To change several places or files at once, pass `edits` (a list of \
                    {path, old_string, new_string, replace_all?}) instead: every edit is checked \
                    first and either all are applied or none. Edits of one file apply in order. \
                    To create a file or replace it whole, use write_file.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "old_string": {"type": "string"},
                        "new_string": {"type": "string"},
                        "replace_all": {"type": "boolean"},
                        "edits": {"type": "array", "items": hunk, "minItems": 1, "maxItems": 100}
                    },
                    "additionalProperties": false
                }),
                side_effects: true,
            },
        }
    }
}

impl Default for EditFile {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hunk {
    path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    path: Option<String>,
    old_string: Option<String>,
    new_string: Option<String>,
    #[serde(default)]
    replace_all: bool,
    edits: Option<Vec<Hunk>>,
}

impl EditArgs {
    /// The hunks, from either form.
    fn hunks(self) -> Result<Vec<Hunk>, String> {
        match (self.edits, self.path, self.old_string, self.new_string) {
            (Some(edits), None, None, None) if !edits.is_empty() => Ok(edits),
            (Some(_), ..) => {
                Err("pass either `edits` or path/old_string/new_string, not both".into())
            }
            (None, Some(path), Some(old_string), Some(new_string)) => {
                Ok(vec![Hunk { path, old_string, new_string, replace_all: self.replace_all }])
            }
            (None, ..) => Err("path, old_string and new_string are required (or `edits`)".into()),
        }
    }
}

/// Applies the hunks of one file to its text, in order; every problem is reported.
fn apply_hunks(path: &str, mut text: String, hunks: &[(usize, &Hunk)]) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    for (index, hunk) in hunks {
        let n = index + 1;
        if hunk.old_string.is_empty() {
            problems.push(format!("edit {n} ({path}): old_string is empty"));
            continue;
        }
        if hunk.old_string == hunk.new_string {
            problems.push(format!("edit {n} ({path}): old_string and new_string are the same"));
            continue;
        }
        let count = text.matches(hunk.old_string.as_str()).count();
        match count {
            0 => problems.push(format!("edit {n} ({path}): old_string was not found")),
            1 => text = text.replacen(&hunk.old_string, &hunk.new_string, 1),
            _ if hunk.replace_all => text = text.replace(&hunk.old_string, &hunk.new_string),
            _ => problems.push(format!(
                "edit {n} ({path}): old_string occurs {count} times; include more surrounding \
                 text to make it unique, or set replace_all"
            )),
        }
    }
    (text, problems)
}

#[async_trait]
impl Tool for EditFile {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput {
        let run = async {
            let a: EditArgs = args::parse("edit_file", arguments)?;
            let hunks = a.hunks().map_err(|e| ToolOutput::error(format!("edit_file: {e}")))?;
            let ws = workspace(ctx)?;
            let mut by_file: BTreeMap<WorkspacePath, Vec<(usize, &Hunk)>> = BTreeMap::new();
            for (i, hunk) in hunks.iter().enumerate() {
                by_file.entry(args::path(&hunk.path)?).or_default().push((i, hunk));
            }
            let mut problems = Vec::new();
            let mut edits = Vec::new();
            let mut summary = Vec::new();
            for (path, file_hunks) in &by_file {
                let file = match ws.read(path).await {
                    Ok(file) => file,
                    Err(WorkspaceError::FileNotFound(_)) => {
                        problems.push(format!("{path}: no such file (create it with write_file)"));
                        continue;
                    }
                    Err(e) => {
                        problems.push(format!("{path}: {e}"));
                        continue;
                    }
                };
                let Ok(text) = String::from_utf8(file.content) else {
                    problems.push(format!("{path}: not a text file"));
                    continue;
                };
                let read_hash = ContentHash::of(text.as_bytes());
                let (edited, mut found) = apply_hunks(path.as_str(), text, file_hunks);
                if found.is_empty() {
                    summary.push(format!("{path} ({} edits)", file_hunks.len()));
                    edits.push(FileEdit {
                        path: path.clone(),
                        content: Some(edited.into_bytes()),
                        precondition: Precondition::IfMatch(read_hash),
                    });
                }
                problems.append(&mut found);
            }
            if !problems.is_empty() {
                return Err(ToolOutput::error(format!(
                    "nothing was changed:\n{}",
                    problems.join("\n")
                )));
            }
            let outcome = ws.apply(edits, ctx.author()).await.map_err(|e| {
                ToolOutput::error(format!("nothing was changed: {e}; read the files again"))
            })?;
            Ok(ToolOutput::ok(format!(
                "edited {} (revision {})",
                summary.join(", "),
                outcome.revision
            )))
        };
        run.await.unwrap_or_else(|e| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hunk(old: &str, new: &str, all: bool) -> Hunk {
        Hunk { path: "f".into(), old_string: old.into(), new_string: new.into(), replace_all: all }
    }

    #[test]
    fn a_hunk_must_match_exactly_once_unless_replace_all() {
        let one = hunk("b", "B", false);
        let (text, problems) = apply_hunks("f", "a b c".into(), &[(0, &one)]);
        assert_eq!((text.as_str(), problems.len()), ("a B c", 0));
        let twice = hunk("x", "y", false);
        let (_, problems) = apply_hunks("f", "x x".into(), &[(0, &twice)]);
        assert!(problems[0].contains("occurs 2 times"), "{problems:?}");
        let all = hunk("x", "y", true);
        let (text, problems) = apply_hunks("f", "x x".into(), &[(0, &all)]);
        assert_eq!((text.as_str(), problems.len()), ("y y", 0));
        let missing = hunk("zzz", "y", false);
        let (_, problems) = apply_hunks("f", "x".into(), &[(0, &missing)]);
        assert!(problems[0].contains("not found"), "{problems:?}");
    }

    #[test]
    fn hunks_of_one_file_apply_in_order() {
        let first = hunk("one", "two", false);
        let second = hunk("two", "three", false);
        let (text, problems) = apply_hunks("f", "one".into(), &[(0, &first), (1, &second)]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(text, "three");
    }

    #[test]
    fn both_forms_of_arguments_are_accepted_but_not_mixed() {
        let single: EditArgs =
            serde_json::from_value(json!({"path": "a", "old_string": "x", "new_string": "y"}))
                .unwrap();
        assert_eq!(single.hunks().unwrap().len(), 1);
        let many: EditArgs = serde_json::from_value(json!({"edits": [
            {"path": "a", "old_string": "x", "new_string": "y"},
            {"path": "b", "old_string": "x", "new_string": "y", "replace_all": true}
        ]}))
        .unwrap();
        assert_eq!(many.hunks().unwrap().len(), 2);
        let mixed: EditArgs = serde_json::from_value(
            json!({"path": "a", "edits": [{"path": "a", "old_string": "x", "new_string": "y"}]}),
        )
        .unwrap();
        assert!(mixed.hunks().is_err());
        let partial: EditArgs = serde_json::from_value(json!({"path": "a"})).unwrap();
        assert!(partial.hunks().is_err());
    }
}
