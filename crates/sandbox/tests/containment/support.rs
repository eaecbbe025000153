//! Fixtures of the containment suite: the production configuration, a workspace with a
//! traversable parent, canaries, and a scan of `/proc` for processes left behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentd_sandbox::{CommandOutcome, CommandSpec, Limits, Sandbox, SandboxSettings};
use tempfile::TempDir;

/// The suite's tests run one at a time: they measure latency, count processes and load the
/// machine, and must not disturb each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A production secret key for the settings loader (not a secret: tests only).
const TEST_SECRET_KEY: &str = "4b1d7e0c9a2f6b3e8d5c1a7f0e9b2d4c6a8e1f3b5d7c9e0a";

/// What the sandbox is told to install when it is missing.
const INSTALL_HINT: &str = "the containment suite needs bubblewrap and writable cgroups (run as \
    root); install bubblewrap with `apt-get install -y bubblewrap`";

/// The sandbox section of agentd's settings as loaded with `AGENTD_ENV=production`, with
/// `data_dir` as the data directory.
pub(crate) fn production_settings(data_dir: &Path) -> SandboxSettings {
    production_settings_with(data_dir, &[])
}

/// Like [`production_settings`], with extra `AGENTD_*` variables.
pub(crate) fn production_settings_with(data_dir: &Path, extra: &[(&str, &str)]) -> SandboxSettings {
    let mut env = vec![
        ("AGENTD_ENV".to_owned(), "production".to_owned()),
        ("AGENTD_SECRET_KEY".to_owned(), TEST_SECRET_KEY.to_owned()),
        ("AGENTD_DATA_DIR".to_owned(), data_dir.display().to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let loaded = agentd_server::Settings::load(None, env).unwrap();
    assert!(loaded.unknown_env.is_empty(), "{:?}", loaded.unknown_env);
    loaded.settings.sandbox
}

/// A directory anyone may traverse (bubblewrap resolves the workspace as the sandbox uid).
pub(crate) fn open_dir(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Holds the suite's lock, for a test that needs no fixture.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A sandbox, its workspace and data directory, for one test.
pub(crate) struct Fixture {
    pub(crate) sandbox: Sandbox,
    /// The workspace: `<root>/ws`.
    pub(crate) ws: PathBuf,
    /// agentd's data directory (hidden from commands): `<root>/data`.
    pub(crate) data_dir: PathBuf,
    /// The parent of both, traversable.
    pub(crate) root: PathBuf,
    _dir: TempDir,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

impl Fixture {
    /// The production configuration; panics with an install hint when it is unavailable.
    pub(crate) async fn production() -> Self {
        Self::with_settings(production_settings).await
    }

    /// A fixture whose settings are built from the data directory by `settings`.
    pub(crate) async fn with_settings(settings: impl FnOnce(&Path) -> SandboxSettings) -> Self {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        open_dir(dir.path());
        let root = dir.path().to_path_buf();
        let ws = root.join("ws");
        let data_dir = root.join("data");
        std::fs::create_dir(&ws).unwrap();
        std::fs::create_dir(&data_dir).unwrap();
        let sandbox = Sandbox::new(settings(&data_dir)).await;
        Self { sandbox, ws, data_dir, root, _dir: dir, _serial: serial }
    }

    /// Panics, saying what to install, unless commands can run.
    pub(crate) fn require_available(&self) {
        let caps = self.sandbox.capabilities();
        assert!(caps.available, "{INSTALL_HINT}; the probe said: {}", caps.reasons.join("; "));
    }

    /// The default limits, to adjust.
    pub(crate) fn limits(&self) -> Limits {
        self.sandbox.default_limits()
    }

    /// Runs a shell command line in the workspace with the default limits.
    pub(crate) async fn sh(&self, line: &str) -> CommandOutcome {
        self.require_available();
        self.sandbox.run(CommandSpec::shell(line, &self.ws)).await.unwrap()
    }

    /// Runs a spec.
    pub(crate) async fn run(&self, spec: CommandSpec) -> CommandOutcome {
        self.require_available();
        self.sandbox.run(spec).await.unwrap()
    }
}

/// A unique marker to find a test's processes and files by.
pub(crate) fn marker(what: &str) -> String {
    format!("agentd-{what}-{}", uuid::Uuid::new_v4().simple())
}

/// Processes whose command line contains `marker` (as `pid: cmdline`).
pub(crate) fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

/// Waits (bounded) until `check` holds, polling: for observing a command from outside while it
/// runs, where nothing can be awaited.
pub(crate) async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// This process's resident memory, in bytes.
pub(crate) fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// A canary file holding a unique string, returned with the string.
pub(crate) fn canary_file(path: &Path, mode: u32) -> String {
    let secret = marker("canary");
    std::fs::write(path, &secret).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    secret
}
