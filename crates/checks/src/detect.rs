//! Default check commands, detected from the files at the root of a project's directory.
//!
//! Ecosystems are looked at in a fixed order (Cargo, Go, Python, npm) and each kind takes the
//! first one that offers a command for it, so a Rust project with a `package.json` for its docs
//! still lints with clippy, while a Python project with a front-end builds with its npm `build`
//! script. Only regular files directly in the directory are read (never through a symbolic
//! link), each at most [`MAX_MANIFEST_BYTES`]: the directory's content is the agent's to write.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use agentd_core::check::CheckKind;

/// The largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A detected command and the file it was detected from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The shell command line.
    pub command: String,
    /// The file that suggested it (`Cargo.toml`, `package.json`, ...).
    pub source: &'static str,
}

/// The detected command of each kind, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detection {
    lint: Option<Detected>,
    test: Option<Detected>,
    build: Option<Detected>,
}

impl Detection {
    /// The detected command of `kind`.
    #[must_use]
    pub fn get(&self, kind: CheckKind) -> Option<&Detected> {
        match kind {
            CheckKind::Lint => self.lint.as_ref(),
            CheckKind::Test => self.test.as_ref(),
            CheckKind::Build => self.build.as_ref(),
        }
    }

    fn offer(&mut self, kind: CheckKind, source: &'static str, command: impl Into<String>) {
        let slot = match kind {
            CheckKind::Lint => &mut self.lint,
            CheckKind::Test => &mut self.test,
            CheckKind::Build => &mut self.build,
        };
        if slot.is_none() {
            *slot = Some(Detected { command: command.into(), source });
        }
    }
}

/// Detects the default commands of the project in `dir`. Blocking: call it off the runtime.
#[must_use]
pub fn detect(dir: &Path) -> Detection {
    let mut found = Detection::default();
    if is_file(dir, "Cargo.toml") {
        let source = "Cargo.toml";
        found.offer(CheckKind::Lint, source, "cargo clippy --all-targets -- -D warnings");
        if exists(&dir.join(".config").join("nextest.toml")) {
            found.offer(CheckKind::Test, ".config/nextest.toml", "cargo nextest run");
        } else {
            found.offer(CheckKind::Test, source, "cargo test");
        }
        found.offer(CheckKind::Build, source, "cargo build");
    }
    if is_file(dir, "go.mod") {
        let source = "go.mod";
        found.offer(CheckKind::Lint, source, "go vet ./...");
        // Verbose, so that every test's result is printed and can be counted.
        found.offer(CheckKind::Test, source, "go test -v ./...");
        found.offer(CheckKind::Build, source, "go build ./...");
    }
    let python = ["pyproject.toml", "setup.py", "setup.cfg", "requirements.txt", "pytest.ini"]
        .into_iter()
        .find(|f| is_file(dir, f));
    if let Some(source) = python {
        found.offer(CheckKind::Lint, source, "ruff check .");
        found.offer(CheckKind::Test, source, "python3 -m pytest");
    }
    if let Some(manifest) = read_manifest(dir, "package.json") {
        npm_scripts(dir, &manifest, &mut found);
    }
    found
}

/// The `lint`, `test` and `build` scripts of a `package.json`, run with the package manager
/// its lock file names.
fn npm_scripts(dir: &Path, manifest: &[u8], found: &mut Detection) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(manifest) else { return };
    let Some(scripts) = json.get("scripts").and_then(|s| s.as_object()) else { return };
    let runner = if is_file(dir, "pnpm-lock.yaml") {
        "pnpm"
    } else if is_file(dir, "yarn.lock") {
        "yarn"
    } else {
        "npm"
    };
    for kind in CheckKind::ALL {
        let Some(script) = scripts.get(kind.as_str()).and_then(|s| s.as_str()) else { continue };
        // `npm init` writes a test script that only fails: it is not a test suite.
        if script.trim().is_empty() || script.contains("Error: no test specified") {
            continue;
        }
        found.offer(kind, "package.json", format!("{runner} run {}", kind.as_str()));
    }
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn is_file(dir: &Path, name: &str) -> bool {
    std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.file_type().is_file())
}

/// A regular file directly in `dir`, opened without following a symbolic link, when it is
/// small enough.
fn read_manifest(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(name))
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.len() > MAX_MANIFEST_BYTES {
        return None;
    }
    let mut content = Vec::new();
    file.take(MAX_MANIFEST_BYTES).read_to_end(&mut content).ok()?;
    Some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    fn commands(d: &Detection) -> Vec<Option<&str>> {
        CheckKind::ALL.iter().map(|k| d.get(*k).map(|c| c.command.as_str())).collect()
    }

    #[test]
    fn a_cargo_project_gets_clippy_cargo_test_and_cargo_build() {
        let dir = project(&[("Cargo.toml", "[package]\nname = \"demo\"\n")]);
        let d = detect(dir.path());
        assert_eq!(
            commands(&d),
            [
                Some("cargo clippy --all-targets -- -D warnings"),
                Some("cargo test"),
                Some("cargo build")
            ]
        );
        assert_eq!(d.get(CheckKind::Test).unwrap().source, "Cargo.toml");
    }

    #[test]
    fn a_cargo_project_with_a_nextest_config_tests_with_nextest() {
        let dir = project(&[("Cargo.toml", ""), (".config/nextest.toml", "[profile.ci]\n")]);
        assert_eq!(detect(dir.path()).get(CheckKind::Test).unwrap().command, "cargo nextest run");
    }

    #[test]
    fn a_go_module_gets_vet_verbose_tests_and_build() {
        let dir = project(&[("go.mod", "module example.com/m\n\ngo 1.22\n")]);
        assert_eq!(
            commands(&detect(dir.path())),
            [Some("go vet ./..."), Some("go test -v ./..."), Some("go build ./...")]
        );
    }

    #[test]
    fn a_python_project_gets_ruff_and_pytest_and_no_build() {
        let dir = project(&[("pyproject.toml", "[project]\nname = \"demo\"\n")]);
        assert_eq!(
            commands(&detect(dir.path())),
            [Some("ruff check ."), Some("python3 -m pytest"), None]
        );
    }

    #[test]
    fn npm_scripts_are_run_with_the_package_manager_of_the_lock_file() {
        let manifest = r#"{"name": "web", "scripts": {"lint": "eslint .", "test": "vitest run", "build": "vite build"}}"#;
        let dir = project(&[("package.json", manifest)]);
        assert_eq!(
            commands(&detect(dir.path())),
            [Some("npm run lint"), Some("npm run test"), Some("npm run build")]
        );
        let dir = project(&[("package.json", manifest), ("pnpm-lock.yaml", "")]);
        assert_eq!(detect(dir.path()).get(CheckKind::Build).unwrap().command, "pnpm run build");
        let dir = project(&[("package.json", manifest), ("yarn.lock", "")]);
        assert_eq!(detect(dir.path()).get(CheckKind::Lint).unwrap().command, "yarn run lint");
    }

    #[test]
    fn the_placeholder_test_script_of_npm_init_is_not_a_test_suite() {
        let manifest = r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#;
        let dir = project(&[("package.json", manifest)]);
        assert_eq!(commands(&detect(dir.path())), [None, None, None]);
    }

    #[test]
    fn each_kind_takes_the_first_ecosystem_that_offers_it() {
        let manifest = r#"{"scripts": {"lint": "eslint .", "build": "vite build"}}"#;
        let dir = project(&[("requirements.txt", "flask\n"), ("package.json", manifest)]);
        let d = detect(dir.path());
        assert_eq!(
            commands(&d),
            [Some("ruff check ."), Some("python3 -m pytest"), Some("npm run build")]
        );
        assert_eq!(d.get(CheckKind::Build).unwrap().source, "package.json");
    }

    #[test]
    fn nothing_is_detected_in_an_empty_directory_or_through_a_symbolic_link() {
        let dir = project(&[]);
        assert_eq!(detect(dir.path()), Detection::default());
        let outside = project(&[("package.json", r#"{"scripts": {"build": "make"}}"#)]);
        std::os::unix::fs::symlink(
            outside.path().join("package.json"),
            dir.path().join("package.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path().join("package.json"), dir.path().join("go.mod"))
            .unwrap();
        assert_eq!(detect(dir.path()), Detection::default());
    }
}
