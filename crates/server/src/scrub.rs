//! The last line of defence against secrets in logs: a writer that masks secret-looking values
//! in every log line before it reaches the output.
//!
//! The first lines of defence are elsewhere: secrets are `SecretString`s that never format, and
//! the access log never records headers, bodies or query strings. This catches what slips past
//! them (an upstream error message that quotes a key, a panic message, a database URL).

use std::io::{self, Write};
use std::sync::LazyLock;

use regex::{Captures, Regex};
use tracing_subscriber::fmt::MakeWriter;

/// The patterns, each with the part to keep (group 1, if any) before `[redacted]`.
static SECRET: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        // Authorization-style credentials.
        r"(?i)(bearer\s+|basic\s+)[A-Za-z0-9._~+/=-]{8,}",
        // Provider and agentd keys: OpenAI/Anthropic sk-..., agentd agk_..., GitHub, AWS, Google.
        r"|(sk-)[A-Za-z0-9_-]{8,}",
        r"|(agk_)[A-Za-z0-9_]{8,}",
        r"|(gh[pousr]_)[A-Za-z0-9]{20,}",
        r"|(github_pat_)[A-Za-z0-9_]{20,}",
        r"|()AKIA[0-9A-Z]{16}",
        r"|()AIza[0-9A-Za-z_-]{35}",
        // JSON Web Tokens.
        r"|()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        // Passwords in URLs: scheme://user:password@host.
        r"|([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@",
        // key=value and "key": "value" forms of obviously secret fields.
        r#"|(?i)((?:password|passwd|secret|token|api[_-]?key|access[_-]?key)["']?\s*[:=]\s*["']?)[^\s"',;&}]{4,}"#,
        // PEM private keys, whole.
        r"|()-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ))
    .ok()
});

/// `text` with every secret-looking value masked.
#[must_use]
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(re) = SECRET.as_ref() else {
        return std::borrow::Cow::Borrowed(text);
    };
    re.replace_all(text, |caps: &Captures<'_>| {
        let keep = caps.iter().skip(1).flatten().next().map_or("", |m| m.as_str());
        let at = if caps[0].ends_with('@') && keep.contains("://") { "@" } else { "" };
        format!("{keep}[redacted]{at}")
    })
}

/// A [`MakeWriter`] whose writers scrub each log line.
#[derive(Debug, Clone)]
pub struct ScrubbingMakeWriter<M> {
    inner: M,
}

impl<M> ScrubbingMakeWriter<M> {
    /// Wraps `inner`.
    pub const fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubbingMakeWriter<M> {
    type Writer = ScrubbingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter { inner: self.inner.make_writer() }
    }
}

/// Scrubs what is written through it. The fmt layer writes each event in one call, so a secret
/// is never split across calls.
#[derive(Debug)]
pub struct ScrubbingWriter<W> {
    inner: W,
}

impl<W: Write> Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.inner.write_all(scrub(text).as_bytes())?,
            Err(_) => self.inner.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn secret_looking_values_are_masked() {
        let cases = [
            ("Authorization: Bearer abcdefghijklmnop", "Bearer [redacted]"),
            ("key sk-proj-AAAAbbbbCCCCdddd1234 used", "sk-[redacted]"),
            ("sk-ant-api03-xyzXYZ0123456789", "sk-[redacted]"),
            ("agk_0190aa_deadbeefcafe", "agk_[redacted]"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_[redacted]"),
            ("AKIAABCDEFGHIJKLMNOP", "[redacted]"),
            ("postgres://agentd:hunter2@db:5432/x", "postgres://agentd:[redacted]@db:5432/x"),
            (r#"{"password":"hunter2hunter2"}"#, r#"{"password":"[redacted]"}"#),
            ("token=abcd1234efgh", "token=[redacted]"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig_sig_sig", "[redacted]"),
        ];
        for (input, expected) in cases {
            let out = scrub(input);
            assert!(out.contains(expected), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let line = r#"{"level":"INFO","route":"/health","status":200,"request_id":"abc-123"}"#;
        assert_eq!(scrub(line), line);
    }

    #[test]
    fn keys_are_not_left_partially() {
        let out = scrub("sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-more_stuff");
        assert!(!out.contains("AAAA"), "{out}");
    }
}
