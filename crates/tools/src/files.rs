//! `list_files`, `read_file` and `write_file`: a project's files, for the model.

use agentd_core::WorkspacePath;
use agentd_core::page::PageRequest;
use agentd_core::tool::{Tool, ToolContext, ToolOutput, ToolSpec};
use agentd_core::workspace::{Precondition, Workspace};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::args;

/// The most bytes of one file `read_file` returns; the model is told when it gets less.
pub const READ_LIMIT: usize = 256 * 1024;

pub(crate) fn workspace(ctx: &ToolContext) -> Result<&Arc<dyn Workspace>, ToolOutput> {
    ctx.workspace
        .as_ref()
        .ok_or_else(|| ToolOutput::error("this run has no project, so there are no files"))
}

/// Lists files, recursively.
#[derive(Debug)]
pub struct ListFiles {
    spec: ToolSpec,
}

impl ListFiles {
    /// The tool.
    #[must_use]
    pub fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "list_files",
                description: "List the project's files recursively, with their sizes. Optionally \
                    only those under a directory. Paths are relative to the project root.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "prefix": {"type": "string", "description": "Only files under this directory."},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many files (default 500)."}
                    },
                    "additionalProperties": false
                }),
                side_effects: false,
            },
        }
    }
}

impl Default for ListFiles {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    prefix: Option<String>,
    limit: Option<u32>,
}

#[async_trait]
impl Tool for ListFiles {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput {
        let run = async {
            let a: ListArgs = args::parse("list_files", arguments)?;
            let ws = workspace(ctx)?;
            let prefix = a
                .prefix
                .as_deref()
                .filter(|p| !p.is_empty() && *p != ".")
                .map(args::path)
                .transpose()?;
            let limit = a.limit.unwrap_or(500).clamp(1, 1000) as usize;
            let mut out = String::new();
            let mut count = 0;
            let mut page: PageRequest<WorkspacePath> = PageRequest::first(100);
            loop {
                let listed = ws
                    .list(prefix.as_ref(), page.clone())
                    .await
                    .map_err(|e| ToolOutput::error(e.to_string()))?;
                for entry in listed.items {
                    if count == limit {
                        let _ = writeln!(out, "… (more files; narrow with a prefix)");
                        return Ok(ToolOutput::ok(out));
                    }
                    let _ = writeln!(out, "{} ({} bytes)", entry.path, entry.size);
                    count += 1;
                }
                match listed.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            if count == 0 {
                out.push_str("(no files)");
            }
            Ok(ToolOutput::ok(out))
        };
        run.await.unwrap_or_else(|e| e)
    }
}

/// Reads a file, or some of its lines.
#[derive(Debug)]
pub struct ReadFile {
    spec: ToolSpec,
}

impl ReadFile {
    /// The tool.
    #[must_use]
    pub fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "read_file",
                description: "Read a text file of the project. Optionally only lines \
                    start_line..=end_line (1-based, inclusive); the answer then starts with \
                    `[lines A-B of N]`, N being the file's total. Long files are cut; read them \
                    in ranges.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "start_line": {"type": "integer", "minimum": 1},
                        "end_line": {"type": "integer", "minimum": 1}
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                side_effects: false,
            },
        }
    }
}

impl Default for ReadFile {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    start_line: Option<usize>,
    end_line: Option<usize>,
}

/// The lines `start..=end` (1-based, clamped) of `text`.
fn line_range(text: &str, start: Option<usize>, end: Option<usize>) -> String {
    if start.is_none() && end.is_none() {
        return text.to_owned();
    }
    let start = start.unwrap_or(1).max(1);
    let end = end.unwrap_or(usize::MAX);
    text.split_inclusive('\n').skip(start - 1).take(end.saturating_sub(start) + 1).collect()
}

/// The number of lines of `text` (a last line without a newline counts).
pub(crate) fn count_lines(text: &str) -> usize {
    text.split_inclusive('\n').count()
}

/// What `read_file` answers: the selected lines, preceded, when a range was asked for, by a
/// line saying which lines they are and how many the file has.
fn read_answer(text: &str, start: Option<usize>, end: Option<usize>) -> String {
    let mut selected = line_range(text, start, end);
    let total = count_lines(text);
    let cut = selected.len() > READ_LIMIT;
    if cut {
        let mut at = READ_LIMIT;
        while !selected.is_char_boundary(at) {
            at -= 1;
        }
        selected.truncate(at);
    }
    if start.is_none() && end.is_none() {
        if cut {
            selected.push_str(&format!(
                "\n… (cut: the file has {total} lines; read the rest with start_line/end_line)"
            ));
        }
        return selected;
    }
    let first = start.unwrap_or(1).max(1);
    let last = end.unwrap_or(total).min(total);
    let mut out = if first > total {
        format!("[the file has {total} lines; none from line {first}]\n")
    } else {
        format!("[lines {first}-{last} of {total}]\n")
    };
    out.push_str(&selected);
    if cut {
        out.push_str("\n… (cut: ask for a smaller range)");
    }
    out
}

#[async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput {
        let run = async {
            let a: ReadArgs = args::parse("read_file", arguments)?;
            let path = args::path(&a.path)?;
            let file =
                workspace(ctx)?.read(&path).await.map_err(|e| ToolOutput::error(e.to_string()))?;
            let Ok(text) = String::from_utf8(file.content) else {
                return Err(ToolOutput::error(format!("{path} is not a text file")));
            };
            if let (Some(start), Some(end)) = (a.start_line, a.end_line)
                && end < start
            {
                return Err(ToolOutput::error(format!(
                    "end_line ({end}) is before start_line ({start})"
                )));
            }
            Ok(ToolOutput::ok(read_answer(&text, a.start_line, a.end_line)))
        };
        run.await.unwrap_or_else(|e| e)
    }
}

/// Creates or replaces a file.
#[derive(Debug)]
pub struct WriteFile {
    spec: ToolSpec,
}

impl WriteFile {
    /// The tool.
    #[must_use]
    pub fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "write_file",
                description: "Create a text file of the project, or replace its whole content. \
                    Parent directories are created as needed.",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "content": {"type": "string"}
                    },
                    "required": ["path", "content"],
                    "additionalProperties": false
                }),
                side_effects: true,
            },
        }
    }
}

impl Default for WriteFile {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

#[async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput {
        let run = async {
            let a: WriteArgs = args::parse("write_file", arguments)?;
            let path = args::path(&a.path)?;
            let written = workspace(ctx)?
                .write(&path, a.content.into_bytes(), Precondition::None, ctx.author())
                .await
                .map_err(|e| ToolOutput::error(e.to_string()))?;
            let verb = if written.created {
                "created"
            } else if written.changed {
                "updated"
            } else {
                "unchanged"
            };
            Ok(ToolOutput::ok(format!(
                "{verb} {path} ({} bytes, revision {})",
                written.file.size, written.revision
            )))
        };
        run.await.unwrap_or_else(|e| e)
    }
}

#[cfg(test)]
mod tests {
    use super::{line_range, read_answer};

    #[test]
    fn a_range_answer_names_its_lines_and_the_total() {
        let text = "a\nb\nc\nd";
        assert_eq!(read_answer(text, Some(2), Some(3)), "[lines 2-3 of 4]\nb\nc\n");
        assert_eq!(read_answer(text, Some(3), Some(99)), "[lines 3-4 of 4]\nc\nd");
        assert_eq!(read_answer(text, None, Some(1)), "[lines 1-1 of 4]\na\n");
        assert_eq!(read_answer(text, Some(7), None), "[the file has 4 lines; none from line 7]\n");
        assert_eq!(read_answer(text, None, None), text);
    }

    #[test]
    fn line_ranges_are_one_based_and_inclusive() {
        let text = "a\nb\nc\nd\n";
        assert_eq!(line_range(text, Some(2), Some(3)), "b\nc\n");
        assert_eq!(line_range(text, None, Some(1)), "a\n");
        assert_eq!(line_range(text, Some(4), None), "d\n");
        assert_eq!(line_range(text, Some(9), None), "");
        assert_eq!(line_range(text, None, None), text);
    }
}
