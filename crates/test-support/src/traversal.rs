//! A path-traversal corpus for tests of anything that takes a file path from a client.
//!
//! Two sources, both in the form a path arrives in a URL (percent-encoding as sent):
//! - generated payloads: `..` and `/` in many encodings (plain, percent-encoded, double and
//!   triple encoded, overlong UTF-8, `%u` forms, Unicode lookalikes, path parameters, NUL
//!   suffixes, backslashes), at depths 1 to 8, with and without a leading slash or a starting
//!   subdirectory, aimed at the canary files a test places beside its workspace
//!   ([`CANARY_FILE`], [`SIBLING_DIR`]/[`CANARY_FILE`]) and at system files;
//! - the traversal word lists shipped by Debian's `wfuzz` package, when installed. Under CI
//!   (`CI=true`) they must be: the corpus panics without them rather than silently shrinking.

use std::collections::BTreeSet;
use std::path::Path;

/// The directory of the `wfuzz` word lists.
pub const WORDLIST_DIR: &str = "/usr/share/wfuzz/wordlist";

/// The traversal word lists, relative to [`WORDLIST_DIR`].
pub const WORDLISTS: [&str; 4] = [
    "Injections/Traversal.txt",
    "vulns/dirTraversal-nix.txt",
    "vulns/dirTraversal.txt",
    "vulns/dirTraversal-win.txt",
];

/// The canary file a test puts next to its workspace directory (and in the sibling directory).
pub const CANARY_FILE: &str = "canary.txt";
/// A directory a test puts next to its workspace directory, holding another canary.
pub const SIBLING_DIR: &str = "ws-sibling";

/// Where a payload comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made by [`generated`].
    Generated,
    /// A line of one of the [`WORDLISTS`].
    Wordlist(&'static str),
}

/// One traversal attempt: a path as it would appear after `/files/` in a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The raw text.
    pub text: String,
    /// Where it comes from.
    pub origin: Origin,
}

/// Spellings of `..`.
const DOTS: [&str; 20] = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "%25252e%25252e",
    "%c0%ae%c0%ae",
    "%e0%80%ae%e0%80%ae",
    "%c0%2e%c0%2e",
    "%u002e%u002e",
    "%ef%bc%8e%ef%bc%8e",
    "..%00",
    "..;",
    "..;x=1",
    "...",
    "....",
    "..%20",
    ".%00.",
    "%%32%65%%32%65",
];

/// Spellings of `/`.
const SEPARATORS: [&str; 16] = [
    "/",
    "%2f",
    "%2F",
    "%252f",
    "\\",
    "%5c",
    "%255c",
    "%c0%af",
    "%c1%9c",
    "%e0%80%af",
    "%u2215",
    "%e2%88%95",
    "%ef%bc%8f",
    "//",
    "/./",
    "%00/",
];

/// What the generated payloads aim at, relative to the directory above the workspace.
fn targets() -> [String; 4] {
    [
        CANARY_FILE.to_owned(),
        format!("{SIBLING_DIR}/{CANARY_FILE}"),
        "etc/passwd".to_owned(),
        "proc/self/environ".to_owned(),
    ]
}

/// The generated payloads (several thousand, without duplicates).
#[must_use]
pub fn generated() -> Vec<String> {
    let mut out = BTreeSet::new();
    let targets = targets();
    for dots in DOTS {
        for sep in SEPARATORS {
            for depth in 1..=8 {
                let climb = format!("{dots}{sep}").repeat(depth);
                out.insert(format!("{climb}{}", targets[0]));
                if depth == 1 || depth == 3 || depth == 8 {
                    for target in &targets[1..] {
                        let target = target.replace('/', sep);
                        out.insert(format!("{climb}{target}"));
                        out.insert(format!("{sep}{climb}{target}"));
                        out.insert(format!("sub{sep}{climb}{target}"));
                    }
                }
            }
            // Mixed: a plain step then an encoded one, and the reverse.
            out.insert(format!("..{sep}{dots}{sep}{CANARY_FILE}"));
            out.insert(format!("{dots}{sep}../{CANARY_FILE}"));
            // Filters that strip `../` once leave a `../` behind.
            out.insert(format!("..{dots}{sep}{sep}{CANARY_FILE}"));
        }
    }
    for fixed in [
        "/etc/passwd",
        "//etc/passwd",
        "%2fetc%2fpasswd",
        "%252fetc%252fpasswd",
        "/proc/self/root/etc/passwd",
        "proc/self/root/etc/passwd/../../../..",
        "C:\\Windows\\win.ini",
        "C:/Windows/win.ini",
        "c:boot.ini",
        "\\\\server\\share\\file",
        "~/.ssh/id_ed25519",
        "~root/.bashrc",
        "file:///etc/passwd",
        "canary.txt%00.png",
        "canary.txt%00",
        "%00",
        "a/%00/b",
        "a%0a/b",
        "a%0d%0a/b",
        "a%7f",
        "a%c2%85b",
        "%e2%80%ae/txt.exe",
        "..././..././canary.txt",
        "....//....//canary.txt",
        "..//..//canary.txt",
        ".../.../canary.txt",
        "sub/..;/..;/canary.txt",
        "sub/%2e%2e;/%2e%2e;/canary.txt",
        "%",
        "%%",
        "%2",
        "%g0",
        "%u",
        "%uZZZZ",
        "",
        ".",
        "./",
        "/",
        "//",
    ] {
        out.insert(fixed.to_owned());
    }
    out.insert("a".repeat(256));
    out.insert(["x"; 2100].join("/"));
    out.insert(format!("{}canary.txt", "%2e%2e%2f".repeat(1500)));
    out.into_iter().collect()
}

/// Whether CI requires the word lists (`CI=true`).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The lines of the installed word lists. Under CI a missing list is a panic; elsewhere the
/// lists that are missing are skipped.
///
/// # Panics
/// Under CI, when a word list is missing or unreadable.
#[must_use]
pub fn wordlist_payloads() -> Vec<Payload> {
    let mut out = Vec::new();
    for list in WORDLISTS {
        let path = Path::new(WORDLIST_DIR).join(list);
        let Ok(bytes) = std::fs::read(&path) else {
            assert!(
                !ci(),
                "{} is missing: install Debian's wfuzz package (CI requires it)",
                path.display()
            );
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let line = line.trim_end_matches(['\r', '\n']);
            if !line.is_empty() {
                out.push(Payload { text: line.to_owned(), origin: Origin::Wordlist(list) });
            }
        }
    }
    out
}

/// Whether the word lists are installed.
#[must_use]
pub fn wordlists_installed() -> bool {
    WORDLISTS.iter().all(|list| Path::new(WORDLIST_DIR).join(list).is_file())
}

/// The whole corpus: generated payloads, then the word lists' lines, without duplicates.
#[must_use]
pub fn corpus() -> Vec<Payload> {
    let mut seen = BTreeSet::new();
    let generated = generated().into_iter().map(|text| Payload { text, origin: Origin::Generated });
    generated.chain(wordlist_payloads()).filter(|p| seen.insert(p.text.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_corpus_is_large_and_covers_every_encoding() {
        let g = generated();
        assert!(g.len() >= 2_500, "only {} generated payloads", g.len());
        for needle in ["%2e%2e%2f", "%252e", "%c0%ae", "..;/", "..././", "%00", "\\", "%u2215"] {
            assert!(g.iter().any(|p| p.contains(needle)), "no payload contains {needle}");
        }
        for depth in 1..=8 {
            let climb = "../".repeat(depth);
            assert!(g.contains(&format!("{climb}{CANARY_FILE}")), "depth {depth}");
        }
        assert!(g.iter().any(|p| p.starts_with('/')));
    }

    #[test]
    fn the_word_lists_are_read_when_installed() {
        let lines = wordlist_payloads();
        if wordlists_installed() {
            assert!(lines.len() > 2_000, "only {} lines", lines.len());
            assert!(lines.iter().all(|p| !p.text.ends_with('\r')));
            assert!(
                lines.iter().any(|p| p.origin == Origin::Wordlist("vulns/dirTraversal-win.txt"))
            );
        } else {
            assert!(!ci(), "CI requires the wfuzz word lists");
        }
        assert!(corpus().len() >= generated().len());
    }
}
