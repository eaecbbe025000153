//! `search`: a regular expression or literal text across the run's directory, with ripgrep's
//! libraries (`ignore` for the walk and `.gitignore`, `grep-regex` and `grep-searcher` for the
//! matching).
//!
//! The walk never follows symbolic links and reads no ignore file above the directory; every
//! file is read through the workspace crate's beneath-the-root access, so a link or a renamed
//! directory cannot make the search read outside. The answer is bounded: at most
//! `max_results` matching lines, each cut to [`LINE_LIMIT`] bytes.

use std::path::{Path, PathBuf};

use agentd_core::WorkspacePath;
use agentd_core::tool::{Tool, ToolContext, ToolOutput, ToolSpec};
use agentd_workspace::beneath::BeneathRoot;
use async_trait::async_trait;
use grep_regex::RegexMatcherBuilder;
use grep_searcher::sinks::Lossy;
use grep_searcher::{BinaryDetection, SearcherBuilder};
use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::args;

/// The most bytes of one matching line shown.
pub const LINE_LIMIT: usize = 240;
/// Files larger than this are not searched.
pub const FILE_LIMIT: u64 = 8 * 1024 * 1024;
/// Matching lines shown when the model names no limit.
const DEFAULT_RESULTS: usize = 100;
/// The most matching lines one call may ask for.
const MAX_RESULTS: usize = 1000;

/// Searches file contents.
#[derive(Debug)]
pub struct Search {
    spec: ToolSpec,
}

impl Search {
    /// The tool.
    #[must_use]
    pub fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "search",
                description: "Search the project's files for a regular expression (Rust regex \
                    syntax) or, with literal=true, for exact text. Files ignored by .gitignore \
                    and the .git directory are skipped. Answers `path:line: text` lines. \
                    Narrow with glob (e.g. \"*.rs\", \"src/**/*.ts\") or path (a directory or \
                    file).",
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "pattern": {"type": "string"},
                        "literal": {"type": "boolean", "description": "Match the pattern as plain text (default false)."},
                        "case_sensitive": {"type": "boolean", "description": "Default true."},
                        "glob": {"type": "string", "description": "Only files whose path matches this glob."},
                        "path": {"type": "string", "description": "Only under this directory (or this file)."},
                        "max_results": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "At most this many matching lines (default 100)."}
                    },
                    "required": ["pattern"],
                    "additionalProperties": false
                }),
                side_effects: false,
            },
        }
    }
}

impl Default for Search {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    pattern: String,
    #[serde(default)]
    literal: bool,
    case_sensitive: Option<bool>,
    glob: Option<String>,
    path: Option<String>,
    max_results: Option<usize>,
}

/// What a search found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    lines: Vec<String>,
    /// Whether more matches exist than were kept.
    more: bool,
    files_searched: usize,
}

/// Whether the walk must enter (or keep) `rel` to reach files under `wanted`.
fn on_the_way(rel: &Path, wanted: &Path) -> bool {
    rel.starts_with(wanted) || wanted.starts_with(rel)
}

fn run_search(dir: &Path, a: &SearchArgs) -> Result<Found, String> {
    if a.pattern.is_empty() {
        return Err("the pattern is empty".into());
    }
    let limit = a.max_results.unwrap_or(DEFAULT_RESULTS).clamp(1, MAX_RESULTS);
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(!a.case_sensitive.unwrap_or(true))
        .fixed_strings(a.literal)
        .line_terminator(Some(b'\n'))
        .build(&a.pattern)
        .map_err(|e| format!("invalid pattern: {e}"))?;
    let wanted: Option<PathBuf> = match a.path.as_deref().filter(|p| !p.is_empty() && *p != ".") {
        Some(p) => Some(PathBuf::from(
            WorkspacePath::parse(p).map_err(|e| format!("invalid path {p:?}: {e}"))?.as_str(),
        )),
        None => None,
    };
    let root = BeneathRoot::open(dir).map_err(|e| format!("cannot open the project: {e}"))?;
    let mut walk = WalkBuilder::new(dir);
    walk.hidden(false)
        .parents(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    if let Some(glob) = a.glob.as_deref().filter(|g| !g.is_empty()) {
        let overrides = OverrideBuilder::new(dir)
            .add(glob)
            .and_then(|b| b.build())
            .map_err(|e| format!("invalid glob {glob:?}: {e}"))?;
        walk.overrides(overrides);
    }
    let base = dir.to_path_buf();
    let filter_wanted = wanted.clone();
    walk.filter_entry(move |entry| {
        if entry.file_name() == ".git" {
            return false;
        }
        match (&filter_wanted, entry.path().strip_prefix(&base)) {
            (Some(wanted), Ok(rel)) => on_the_way(rel, wanted),
            _ => true,
        }
    });
    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::quit(b'\0'))
        .build();
    let mut found = Found::default();
    for entry in walk.build() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(dir) else { continue };
        if wanted.as_ref().is_some_and(|w| !rel.starts_with(w)) {
            continue;
        }
        let Some(path) = rel.to_str().and_then(|r| WorkspacePath::parse(r).ok()) else {
            continue;
        };
        // Read beneath the root: a file swapped for a link since the walk is refused.
        let Ok(file) = root.read(&path, FILE_LIMIT) else { continue };
        found.files_searched += 1;
        let lines = &mut found.lines;
        let mut more = false;
        let result = searcher.search_slice(
            &matcher,
            &file.content,
            Lossy(|number, line| {
                if lines.len() == limit {
                    more = true;
                    return Ok(false);
                }
                let line = line.trim_end_matches(['\n', '\r']);
                let mut cut = line.len().min(LINE_LIMIT);
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                let ellipsis = if cut < line.len() { " …" } else { "" };
                lines.push(format!("{path}:{number}: {}{ellipsis}", &line[..cut]));
                Ok(true)
            }),
        );
        if let Err(e) = result {
            tracing::debug!(%path, error = %e, "search skipped a file");
        }
        if more {
            found.more = true;
            break;
        }
    }
    Ok(found)
}

#[async_trait]
impl Tool for Search {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn needs_directory(&self) -> bool {
        true
    }

    async fn call(&self, ctx: &ToolContext, arguments: Value) -> ToolOutput {
        let a: SearchArgs = match args::parse("search", arguments) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let Some(dir) = ctx.dir.clone() else {
            return ToolOutput::error("this run has no project, so there is nothing to search");
        };
        let searched = tokio::task::spawn_blocking(move || run_search(&dir, &a)).await;
        match searched {
            Ok(Ok(found)) if found.lines.is_empty() => {
                ToolOutput::ok(format!("no matches ({} files searched)", found.files_searched))
            }
            Ok(Ok(found)) => {
                let mut out = found.lines.join("\n");
                if found.more {
                    out.push_str("\n… (more matches: narrow the search or raise max_results)");
                }
                ToolOutput::ok(out)
            }
            Ok(Err(message)) => ToolOutput::error(message),
            Err(join) => ToolOutput::error(format!("the search failed: {join}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> SearchArgs {
        serde_json::from_value(v).unwrap()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        };
        w(".gitignore", "target/\n*.log\n");
        w("src/main.rs", "fn main() {\n    let needle = 1;\n}\n");
        w("src/lib.rs", "// Needle in a comment\npub fn a() {}\n");
        w("docs/notes.md", "a needle.*here\n");
        w("target/debug/out.rs", "needle\n");
        w("build.log", "needle\n");
        w(".git/config", "needle\n");
        w("bin.dat", "needle\0binary\n");
        dir
    }

    #[test]
    fn regex_search_skips_ignored_files_and_git_internals() {
        let dir = tree();
        let found = run_search(dir.path(), &args(json!({"pattern": "need[l]e"}))).unwrap();
        assert_eq!(
            found.lines,
            ["docs/notes.md:1: a needle.*here", "src/main.rs:2:     let needle = 1;"]
        );
        assert!(!found.more);
        let all =
            run_search(dir.path(), &args(json!({"pattern": "needle", "case_sensitive": false})))
                .unwrap();
        assert!(all.lines.iter().any(|l| l.starts_with("src/lib.rs:1:")), "{:?}", all.lines);
        assert!(all.lines.iter().all(|l| !l.contains("target/") && !l.contains("build.log")));
        assert!(all.lines.iter().all(|l| !l.starts_with(".git/")));
    }

    #[test]
    fn literal_search_treats_metacharacters_as_text() {
        let dir = tree();
        let literal =
            run_search(dir.path(), &args(json!({"pattern": "needle.*here", "literal": true})))
                .unwrap();
        assert_eq!(literal.lines, ["docs/notes.md:1: a needle.*here"]);
        let regex =
            run_search(dir.path(), &args(json!({"pattern": "e.*=", "literal": true}))).unwrap();
        assert!(regex.lines.is_empty(), "{:?}", regex.lines);
        assert!(run_search(dir.path(), &args(json!({"pattern": "("}))).is_err());
    }

    #[test]
    fn globs_paths_and_limits_narrow_the_answer() {
        let dir = tree();
        let ci = json!({"pattern": "needle", "case_sensitive": false});
        let mut a = args(ci.clone());
        a.glob = Some("*.md".into());
        assert_eq!(run_search(dir.path(), &a).unwrap().lines, ["docs/notes.md:1: a needle.*here"]);
        let mut a = args(ci.clone());
        a.path = Some("src".into());
        let under = run_search(dir.path(), &a).unwrap();
        assert_eq!(under.lines.len(), 2, "{:?}", under.lines);
        assert!(under.lines.iter().all(|l| l.starts_with("src/")));
        let mut a = args(ci);
        a.max_results = Some(1);
        let one = run_search(dir.path(), &a).unwrap();
        assert_eq!(one.lines.len(), 1);
        assert!(one.more);
        let mut a = args(json!({"pattern": "x"}));
        a.path = Some("../etc".into());
        assert!(run_search(dir.path(), &a).is_err());
    }

    #[test]
    fn a_symbolic_link_out_of_the_directory_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "needle canary\n").unwrap();
        let dir = tree();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.path().join("s.txt"))
            .unwrap();
        let found = run_search(dir.path(), &args(json!({"pattern": "canary"}))).unwrap();
        assert!(found.lines.is_empty(), "{:?}", found.lines);
    }
}
