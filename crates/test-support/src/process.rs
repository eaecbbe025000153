//! The `agentd` binary as a child process, for end-to-end tests of what only a real process
//! shows: startup and exit codes, signals, the log stream.

// Running the binary under test is the point of this module.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The log lines a process has written to stderr so far.
#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running `agentd` process.
#[derive(Debug)]
pub struct AgentdProcess {
    child: Child,
    stderr: Arc<Lines>,
    stdout: Arc<Lines>,
}

impl AgentdProcess {
    /// Starts `bin` with `args` in `dir`, with an environment holding only `PATH` and `envs`.
    #[must_use]
    pub fn spawn(bin: &Path, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(bin);
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Lines::default());
        let stdout = Arc::new(Lines::default());
        collect(child.stderr.take().unwrap(), stderr.clone());
        collect(child.stdout.take().unwrap(), stdout.clone());
        Self { child, stderr, stdout }
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line matching `pred`; `None` after `timeout`.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        wait_for(&self.stderr, timeout, pred)
    }

    /// Waits for the "agentd is serving" line and returns the address it names.
    pub fn wait_listening(&self, timeout: Duration) -> SocketAddr {
        let line = self
            .wait_for_log(timeout, |l| l.contains("agentd is serving"))
            .unwrap_or_else(|| panic!("agentd did not start; its log:\n{}", self.stderr_text()));
        address_in(&line).unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Everything written to stderr so far.
    #[must_use]
    pub fn stderr_text(&self) -> String {
        self.stderr.lines.lock().unwrap().join("\n")
    }

    /// Everything written to stdout so far.
    #[must_use]
    pub fn stdout_text(&self) -> String {
        self.stdout.lines.lock().unwrap().join("\n")
    }

    /// The stderr lines so far.
    #[must_use]
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lines.lock().unwrap().clone()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, signal).unwrap();
    }

    /// Waits for the process to exit; `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain what the process wrote last.
                wait_for(&self.stderr, Duration::from_millis(200), |_| false);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for AgentdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bin` with `args` to its end in `dir`, with an environment holding only `PATH` and
/// `envs` and `stdin` on its standard input; returns its exit status and output.
pub fn run_with_input(
    bin: &Path,
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Creates a user with `bin users create` (the password on standard input) in `dir`, with an
/// environment holding only `PATH` and `envs`.
pub fn create_user(bin: &Path, dir: &Path, envs: &[(&str, &str)], email: &str, password: &str) {
    let args = ["users", "create", "--email", email];
    let out = run_with_input(bin, dir, &args, envs, &format!("{password}\n"));
    assert!(out.status.success(), "users create: {}", String::from_utf8_lossy(&out.stderr));
}

/// Signs in to the server at `base` as `email` and creates a project titled `title`; returns
/// the access token and the project's id.
pub async fn sign_in_with_project(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
    title: &str,
) -> (String, String) {
    let token = sign_in(http, base, email, password).await;
    let project = create_project(http, base, &token, title).await;
    (token, project)
}

/// Signs in to the server at `base` as `email`; returns the access token.
pub async fn sign_in(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let tokens: serde_json::Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// Creates a project titled `title` on the server at `base` with `token`; returns its id.
pub async fn create_project(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    title: &str,
) -> String {
    let project: serde_json::Value = http
        .post(format!("{base}/v1/projects"))
        .bearer_auth(token)
        .json(&serde_json::json!({"title": title}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    project["id"].as_str().unwrap().to_owned()
}

fn collect(stream: impl std::io::Read + Send + 'static, into: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            into.lines.lock().unwrap().push(line);
            into.grew.notify_all();
        }
    });
}

fn wait_for(lines: &Lines, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut guard = lines.lines.lock().unwrap();
    let mut seen = 0;
    loop {
        if let Some(found) = guard[seen..].iter().find(|l| pred(l)) {
            return Some(found.clone());
        }
        seen = guard.len();
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        guard = lines.grew.wait_timeout(guard, deadline - now).unwrap().0;
    }
}

/// The listening address in a "serving" log line, pretty (`address=…`) or JSON (`"address":"…"`).
fn address_in(line: &str) -> Option<SocketAddr> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json.get("address")?.as_str()?.parse().ok();
    }
    let start = line.find("address=")? + "address=".len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().ok()
}
