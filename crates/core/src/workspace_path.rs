//! Workspace paths: the one place where a client-supplied file path becomes trusted.
//!
//! Every path that names a file inside a workspace arrives as text, either as the tail of a URL
//! (`/v1/projects/{id}/files/{path...}`, still percent-encoded) or as a JSON field. This module
//! turns that text into a [`WorkspacePath`]: relative, `/`-separated, with no empty, `.` or `..`
//! segments, no control characters and within length limits. Anything that could mean "somewhere
//! else" to any layer (this server, a filesystem, a proxy that decodes once more, a Windows
//! client) is refused with a [`PathError`] rather than repaired, because repairing traversal
//! (`..././` → `../`) is how traversal filters are bypassed.
//!
//! A `WorkspacePath` is a lexical guarantee only. Directory workspaces still open every path
//! beneath the root with a kernel primitive that refuses to leave it (symbolic links can point
//! anywhere); see `agentd-workspace`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest path accepted, in bytes (after percent-decoding), like Linux's `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;
/// The longest single path component accepted, in bytes, like Linux's `NAME_MAX`.
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Why a path was refused. Each maps to 400 `invalid_path`; the message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing left after normalisation (``, `.`, `/./`).
    #[error("the path is empty")]
    Empty,
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// A component longer than [`MAX_COMPONENT_BYTES`].
    #[error("a path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    /// Starts with `/`: workspace paths are relative to the workspace.
    #[error("the path is absolute; give it relative to the workspace root")]
    Absolute,
    /// A Windows drive (`C:`) or a home-directory shorthand (`~`, `~user`).
    #[error("the path starts with a drive letter or `~`; give it relative to the workspace root")]
    Rooted,
    /// A `..` segment, or a segment that some layer could read as one (`...`, `..;x`, `.. `).
    #[error("the path contains a `..` segment (or one that could be read as `..`)")]
    ParentSegment,
    /// A backslash, which Windows and some decoders treat as a separator.
    #[error("the path contains a backslash; use `/` to separate directories")]
    Backslash,
    /// NUL, another C0 or C1 control character, DEL, or a bidirectional-text override.
    #[error("the path contains a control character")]
    ControlCharacter,
    /// A character that looks like, or is normalised by some layers into, `/`, `\` or `.`.
    #[error("the path contains a character that can stand for `/`, `\\` or `.` ({0:?})")]
    LookalikeCharacter(char),
    /// A `%` escape that is not two hex digits (`%zz`, `%u002e`) in a URL path.
    #[error("the path contains a malformed percent-escape")]
    MalformedEscape,
    /// A percent-escape still present after the one decoding: double encoding (`%252e`) or an
    /// encoded path given where none is expected.
    #[error("the path is percent-encoded more than once")]
    EncodedTwice,
    /// The decoded bytes are not UTF-8; overlong forms such as `%c0%ae` land here.
    #[error("the path is not valid UTF-8 (overlong encodings are refused)")]
    NotUtf8,
}

/// A validated path inside a workspace: relative, `/`-separated, each component non-empty and
/// neither `.` nor `..`, free of control characters and within the length limits.
///
/// Ordering is byte order of the text, which is also how listings are sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// A path as it arrives in a URL after the `files/` prefix: percent-decoded exactly once,
    /// then normalised. Use this on the raw (undecoded) request path.
    ///
    /// # Errors
    /// A [`PathError`] naming the first problem found.
    pub fn from_url(raw: &str) -> Result<Self, PathError> {
        if raw.len() > 3 * MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        let bytes = percent_decode(raw)?;
        let decoded = String::from_utf8(bytes).map_err(|_| PathError::NotUtf8)?;
        Self::parse(&decoded)
    }

    /// A path given as plain text, as in a JSON body: not decoded, normalised.
    ///
    /// # Errors
    /// A [`PathError`] naming the first problem found.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if text.chars().any(is_control) {
            return Err(PathError::ControlCharacter);
        }
        if text.contains('\\') {
            return Err(PathError::Backslash);
        }
        if let Some(c) = text.chars().find(|c| is_lookalike(*c)) {
            return Err(PathError::LookalikeCharacter(c));
        }
        if contains_escape(text) {
            return Err(PathError::EncodedTwice);
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let mut parts: Vec<&str> = Vec::new();
        for component in text.split('/') {
            if component.is_empty() || component == "." {
                continue;
            }
            if component.len() > MAX_COMPONENT_BYTES {
                return Err(PathError::ComponentTooLong);
            }
            if is_dot_like(component) {
                return Err(PathError::ParentSegment);
            }
            if parts.is_empty() && is_rooted(component) {
                return Err(PathError::Rooted);
            }
            parts.push(component);
        }
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(Self(parts.join("/")))
    }

    /// The path as text, components separated by `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, outermost first.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    #[must_use]
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The directory holding this path, or `None` at the top level.
    #[must_use]
    pub fn parent(&self) -> Option<Self> {
        self.0.rsplit_once('/').map(|(dir, _)| Self(dir.to_owned()))
    }

    /// Every directory above this path, outermost first: `a/b/c` gives `a`, `a/b`.
    #[must_use]
    pub fn ancestors(&self) -> Vec<Self> {
        self.0.match_indices('/').map(|(i, _)| Self(self.0[..i].to_owned())).collect()
    }

    /// Whether `self` lies inside the directory `dir` (at any depth).
    #[must_use]
    pub fn is_inside(&self, dir: &Self) -> bool {
        self.0.len() > dir.0.len()
            && self.0.starts_with(&dir.0)
            && self.0[dir.0.len()..].starts_with('/')
    }

    /// The extension of the last component (`rs` for `src/main.rs`), if it has one.
    #[must_use]
    pub fn extension(&self) -> Option<&str> {
        let name = self.file_name();
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext),
            _ => None,
        }
    }
}

impl fmt::Display for WorkspacePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for WorkspacePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for WorkspacePath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for WorkspacePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for WorkspacePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Decodes `%XX` escapes once. A `%` not followed by two hex digits is malformed.
fn percent_decode(raw: &str) -> Result<Vec<u8>, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(PathError::MalformedEscape),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A `%XX` or `%uXXXX` escape in already-decoded text: a second layer of encoding that another
/// component might decode into a separator or a dot.
fn contains_escape(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().filter(|(_, c)| **c == b'%').any(|(i, _)| {
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        (hex(i + 1) && hex(i + 2))
            || (matches!(b.get(i + 1), Some(b'u' | b'U')) && (2..=5).all(|k| hex(i + k)))
    })
}

/// C0 controls (NUL included), DEL, C1 controls, and the bidirectional-text controls that make
/// a name display differently from what it is.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that some layer (Unicode normalisation, a legacy decoder, a filesystem) may turn
/// into `/`, `\` or `.`.
fn is_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2215}' // division slash
            | '\u{2044}' // fraction slash
            | '\u{29F8}' // big solidus
            | '\u{FF0F}' // fullwidth solidus
            | '\u{2216}' // set minus
            | '\u{29F5}' // reverse solidus operator
            | '\u{29F9}' // big reverse solidus
            | '\u{FE68}' // small reverse solidus
            | '\u{FF3C}' // fullwidth reverse solidus
            | '\u{2024}' // one dot leader
            | '\u{2025}' // two dot leader
            | '\u{2026}' // horizontal ellipsis
            | '\u{FE52}' // small full stop
            | '\u{FF0E}' // fullwidth full stop
            | '\u{3002}' // ideographic full stop
            | '\u{FF61}' // halfwidth ideographic full stop
            | '\u{F025}' // private-use slash of a well-known web server's %u decoder
            | '\u{EFC8}' // ditto, for `\`
    )
}

/// A component made only of dots (and spaces) other than a lone `.`, ignoring a `;parameter`
/// suffix: `..`, `...`, `..;`, `.. `, `.;x`. Web servers strip path parameters and Windows
/// strips trailing dots and spaces, so each of these can become `..` somewhere.
fn is_dot_like(component: &str) -> bool {
    let head = component.split(';').next().unwrap_or(component);
    let trimmed = head.trim_matches(' ');
    let only_dots = !trimmed.is_empty() && trimmed.bytes().all(|b| b == b'.');
    only_dots && component != "."
}

/// A drive letter (`C:`, `c:foo`) or `~` / `~user` as the first component.
fn is_rooted(first: &str) -> bool {
    let b = first.as_bytes();
    (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':') || first.starts_with('~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        match WorkspacePath::from_url(raw) {
            Ok(p) => p.as_str().to_owned(),
            Err(e) => panic!("{raw:?} was refused: {e}"),
        }
    }

    fn err(raw: &str) -> PathError {
        match WorkspacePath::from_url(raw) {
            Ok(p) => panic!("{raw:?} was accepted as {p}"),
            Err(e) => e,
        }
    }

    #[test]
    fn ordinary_paths_are_kept() {
        assert_eq!(ok("src/main.rs"), "src/main.rs");
        assert_eq!(ok("README"), "README");
        assert_eq!(ok("a%20b/c.txt"), "a b/c.txt");
        assert_eq!(ok("notes/%E2%9C%93.md"), "notes/\u{2713}.md");
        assert_eq!(ok("100%25.txt"), "100%.txt");
        assert_eq!(ok("backup.rs~"), "backup.rs~");
        assert_eq!(ok(".gitignore"), ".gitignore");
        assert_eq!(ok("a/.hidden/b"), "a/.hidden/b");
        assert_eq!(ok("dir..name/x"), "dir..name/x");
    }

    #[test]
    fn empty_and_dot_segments_are_collapsed() {
        assert_eq!(ok("./src//main.rs"), "src/main.rs");
        assert_eq!(ok("src/./lib.rs/"), "src/lib.rs");
        assert_eq!(err(""), PathError::Empty);
        assert_eq!(err("."), PathError::Empty);
        assert_eq!(err(".//./"), PathError::Empty);
    }

    #[test]
    fn traversal_is_refused_in_every_spelling() {
        for raw in [
            "..",
            "../etc/passwd",
            "a/../../b",
            "a/..",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            ".%2e/x",
            "..;/x",
            "..;jsessionid=1/x",
            "...",
            "..././x",
            "a/.. /b",
            ".;/x",
        ] {
            assert_eq!(err(raw), PathError::ParentSegment, "{raw}");
        }
    }

    #[test]
    fn double_encoding_and_malformed_escapes_are_refused() {
        assert_eq!(err("%252e%252e/x"), PathError::EncodedTwice);
        assert_eq!(err("%25c0%25ae"), PathError::EncodedTwice);
        assert_eq!(err("a%25u002e"), PathError::EncodedTwice);
        assert_eq!(err("..%u2215x"), PathError::MalformedEscape);
        assert_eq!(err("%"), PathError::MalformedEscape);
        assert_eq!(err("%2"), PathError::MalformedEscape);
        assert_eq!(err("%zz"), PathError::MalformedEscape);
        // Given as JSON, the escape is never decoded, so it is refused rather than stored.
        assert_eq!(WorkspacePath::parse("%2e%2e%2fx"), Err(PathError::EncodedTwice));
        assert_eq!(WorkspacePath::parse("100%.txt").map(|p| p.0), Ok("100%.txt".to_owned()));
    }

    #[test]
    fn overlong_utf8_is_refused() {
        for raw in ["%c0%ae%c0%ae/x", "%c0%af", "%e0%80%ae", "%c1%9c", "%ff", "%80"] {
            assert_eq!(err(raw), PathError::NotUtf8, "{raw}");
        }
    }

    #[test]
    fn absolute_rooted_and_backslash_paths_are_refused() {
        assert_eq!(err("/etc/passwd"), PathError::Absolute);
        assert_eq!(err("%2fetc/passwd"), PathError::Absolute);
        assert_eq!(err("//server/share"), PathError::Absolute);
        assert_eq!(err("C:/Windows"), PathError::Rooted);
        assert_eq!(err("c:boot.ini"), PathError::Rooted);
        assert_eq!(err("~/.ssh/id_ed25519"), PathError::Rooted);
        assert_eq!(err("~root"), PathError::Rooted);
        assert_eq!(err("..\\..\\x"), PathError::Backslash);
        assert_eq!(err("a%5cb"), PathError::Backslash);
        assert_eq!(err("x\\y"), PathError::Backslash);
    }

    #[test]
    fn control_and_lookalike_characters_are_refused() {
        assert_eq!(err("a%00b"), PathError::ControlCharacter);
        assert_eq!(err("passwd%00.png"), PathError::ControlCharacter);
        assert_eq!(err("a%0ab"), PathError::ControlCharacter);
        assert_eq!(err("a%7f"), PathError::ControlCharacter);
        assert_eq!(err("a%c2%85"), PathError::ControlCharacter);
        assert_eq!(err("evil%e2%80%aetxt.exe"), PathError::ControlCharacter);
        assert_eq!(WorkspacePath::parse("a\tb"), Err(PathError::ControlCharacter));
        assert_eq!(err("..%e2%88%95x"), PathError::LookalikeCharacter('\u{2215}'));
        assert_eq!(err("%ef%bc%8e%ef%bc%8e/x"), PathError::LookalikeCharacter('\u{FF0E}'));
    }

    #[test]
    fn length_limits_hold() {
        let long_component = "a".repeat(MAX_COMPONENT_BYTES + 1);
        assert_eq!(err(&long_component), PathError::ComponentTooLong);
        assert_eq!(ok(&"a".repeat(MAX_COMPONENT_BYTES)).len(), MAX_COMPONENT_BYTES);
        let deep = vec!["abcdefg"; 600].join("/");
        assert!(deep.len() > MAX_PATH_BYTES);
        assert_eq!(err(&deep), PathError::TooLong);
        assert_eq!(err(&"%41".repeat(MAX_PATH_BYTES + 1)), PathError::TooLong);
    }

    #[test]
    fn helpers_describe_the_path() {
        let p = WorkspacePath::parse("src/bin/main.rs").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.file_name(), "main.rs");
        assert_eq!(p.extension(), Some("rs"));
        assert_eq!(p.parent().map(|d| d.0), Some("src/bin".to_owned()));
        let ancestors: Vec<_> = p.ancestors().into_iter().map(|a| a.0).collect();
        assert_eq!(ancestors, ["src", "src/bin"]);
        let src = WorkspacePath::parse("src").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.is_inside(&src));
        assert!(!src.is_inside(&src));
        let srcx = WorkspacePath::parse("srcx/a").unwrap_or_else(|e| panic!("{e}"));
        assert!(!srcx.is_inside(&src));
        assert_eq!(WorkspacePath::parse(".bashrc").map(|p| p.extension().is_none()), Ok(true));
    }

    #[test]
    fn it_serialises_as_a_string_and_validates_when_deserialised() {
        let p: WorkspacePath =
            serde_json::from_str("\"a/b.txt\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&p).unwrap_or_default(), "\"a/b.txt\"");
        assert!(serde_json::from_str::<WorkspacePath>("\"../x\"").is_err());
    }
}
