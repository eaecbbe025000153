//! `run_terminal` through the real sandbox: outcomes, output, the log, and the directory.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use agentd_core::CommandPolicy;
use agentd_core::command_policy::CommandPolicySettings;
use agentd_core::tool::Tool as _;
use agentd_sandbox::{Sandbox, SandboxSettings};
use agentd_tools::terminal::RunTerminal;
use serde_json::json;

async fn tool() -> RunTerminal {
    let mut settings = SandboxSettings::default();
    settings.limits.wall_timeout_seconds = 30;
    let sandbox = Sandbox::new(settings).await;
    assert!(sandbox.is_available(), "{:?}", sandbox.capabilities().reasons);
    let policy = CommandPolicy::from_settings(&CommandPolicySettings::default()).unwrap();
    RunTerminal::new(sandbox, Arc::new(policy))
}

/// A workspace the sandbox uid can reach: its parent is searchable by others.
fn workspace() -> (tempfile::TempDir, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let ws = top.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let ws = std::fs::canonicalize(ws).unwrap();
    (top, ws)
}

#[tokio::test]
async fn a_command_runs_in_the_directory_and_reports_its_exit_and_output() {
    let t = tool().await;
    let (top, ws) = workspace();
    let logs = top.path().join("logs");
    let ctx = crate::context(None, Some(ws.clone()), Some(logs.clone()));
    let out = t
        .call(&ctx, json!({"command": "echo made > out.txt && echo hello && echo oops >&2"}))
        .await;
    assert!(!out.is_error, "{}", out.content);
    assert!(out.content.starts_with("exit code 0"), "{}", out.content);
    assert!(out.content.contains("hello") && out.content.contains("oops"), "{}", out.content);
    assert_eq!(std::fs::read_to_string(ws.join("out.txt")).unwrap(), "made\n");
    let log = std::fs::read_dir(&logs).unwrap().next().unwrap().unwrap().path();
    assert!(std::fs::read_to_string(log).unwrap().contains("hello"));

    let failed = t.call(&ctx, json!({"command": "echo bad; exit 3"})).await;
    assert!(failed.is_error);
    assert!(failed.content.starts_with("exit code 3"), "{}", failed.content);

    let timed = t.call(&ctx, json!({"command": "sleep 30", "timeout_seconds": 1})).await;
    assert!(timed.is_error);
    assert!(timed.content.starts_with("timed_out"), "{}", timed.content);

    let outside = t.call(&ctx, json!({"command": "echo x > /etc/agentd-tools-test"})).await;
    assert!(outside.is_error, "{}", outside.content);
    assert!(!std::path::Path::new("/etc/agentd-tools-test").exists());
}

#[tokio::test]
async fn long_output_reaches_the_model_as_head_and_tail() {
    let t = tool().await;
    let (_top, ws) = workspace();
    let ctx = crate::context(None, Some(ws), None);
    let out = t
        .call(&ctx, json!({"command": "echo FIRST; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo LAST"}))
        .await;
    assert!(!out.is_error, "{}", &out.content[..200.min(out.content.len())]);
    assert!(out.content.contains("FIRST") && out.content.contains("LAST"));
    assert!(out.content.contains("bytes of output omitted"));
    assert!(out.content.len() < 1_100_000, "{} bytes", out.content.len());
}
