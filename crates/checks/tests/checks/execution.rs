//! Running checks in the sandbox.

use std::time::{Duration, Instant};

use agentd_checks::{CheckStatus, Checker, CommandSource, CountedTool, Counts, NO_DIRECTORY};
use agentd_core::check::CheckKind;
use agentd_sandbox::{Sandbox, SandboxSettings};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{MemoryLogs, Project, checker, settings, unittest_file};

const UNITTEST: &str = "python3 -m unittest -v";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_test_command_passes_with_its_counts_and_its_stored_log() {
    let checker = checker().await;
    let project = Project::new(&[("test_math.py", &unittest_file(false))]);
    let logs = MemoryLogs::default();
    let s = settings(json!({"test": {"command": UNITTEST, "timeout_seconds": 60}}));
    let results = checker
        .run_all(Ok(project.path()), &s, &[CheckKind::Test], &CancellationToken::new(), Some(&logs))
        .await;
    let r = &results[0];
    assert_eq!(r.status, CheckStatus::Passed, "{r:?}");
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.command.as_deref(), Some(UNITTEST));
    assert_eq!(r.source, Some(CommandSource::Configured));
    assert_eq!(
        r.counts,
        Some(Counts::Tests {
            tool: CountedTool::Unittest,
            total: 2,
            passed: 2,
            failed: 0,
            skipped: 0
        })
    );
    assert!(r.output.head.contains("test_add"), "{:?}", r.output);
    let log = r.log.as_ref().expect("the log is stored");
    let stored = logs.logs.lock().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(log.bytes, stored[0].1.len() as u64);
    assert!(String::from_utf8_lossy(&stored[0].1).contains("Ran 2 tests"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_command_fails_with_its_exit_code_and_counts() {
    let checker = checker().await;
    let project = Project::new(&[("test_math.py", &unittest_file(true))]);
    let s = settings(json!({"test": {"command": UNITTEST}}));
    let results = checker
        .run_all(Ok(project.path()), &s, &[CheckKind::Test], &CancellationToken::new(), None)
        .await;
    let r = &results[0];
    assert_eq!(r.status, CheckStatus::Failed, "{r:?}");
    assert_eq!(r.exit_code, Some(1));
    assert_eq!(r.timeout_seconds, Some(300));
    assert_eq!(
        r.counts,
        Some(Counts::Tests {
            tool: CountedTool::Unittest,
            total: 3,
            passed: 2,
            failed: 1,
            skipped: 0
        })
    );
    assert!(format!("{}{}", r.output.head, r.output.tail).contains("subtraction is broken"));
    assert_eq!(r.log, None, "no log store was given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_past_its_timeout_is_timed_out_and_killed() {
    let checker = checker().await;
    let project = Project::new(&[]);
    let s = settings(
        json!({"build": {"command": "echo building; sleep 30; touch built", "timeout_seconds": 1}}),
    );
    let started = Instant::now();
    let results = checker
        .run_all(Ok(project.path()), &s, &[CheckKind::Build], &CancellationToken::new(), None)
        .await;
    let r = &results[0];
    assert_eq!(r.status, CheckStatus::TimedOut, "{r:?}");
    assert_eq!(r.exit_code, None);
    assert!(r.duration_ms >= 1000, "{}", r.duration_ms);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(r.output.head.contains("building"));
    assert!(r.reason.as_deref().unwrap().contains("timeout of 1 s"));
    assert!(!project.path().join("built").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detected_commands_run_in_the_project_directory() {
    let checker = checker().await;
    let manifest = r#"{"name": "web", "version": "1.0.0", "scripts": {"build": "node build.js"}}"#;
    let project = Project::new(&[
        ("package.json", manifest),
        ("build.js", "require('fs').writeFileSync('dist.txt', 'bundle'); console.log('built');\n"),
    ]);
    let results = checker
        .run_all(
            Ok(project.path()),
            &serde_json::Map::new(),
            &CheckKind::ALL,
            &CancellationToken::new(),
            None,
        )
        .await;
    let kinds: Vec<(CheckKind, CheckStatus)> = results.iter().map(|r| (r.kind, r.status)).collect();
    assert_eq!(
        kinds,
        [
            (CheckKind::Lint, CheckStatus::Unavailable),
            (CheckKind::Test, CheckStatus::Unavailable),
            (CheckKind::Build, CheckStatus::Passed)
        ],
        "{results:#?}"
    );
    let build = &results[2];
    assert_eq!(build.command.as_deref(), Some("npm run build"));
    assert_eq!(build.source, Some(CommandSource::Detected { file: "package.json".into() }));
    assert_eq!(std::fs::read_to_string(project.path().join("dist.txt")).unwrap(), "bundle");
    let lint = &results[0];
    assert!(lint.reason.as_deref().unwrap().contains("no lint command"), "{lint:?}");
    assert_eq!(lint.exit_code, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_sandbox_a_check_is_unavailable_and_nothing_runs() {
    let sandbox = Sandbox::new(SandboxSettings {
        bwrap_path: "/nonexistent/bin/bwrap".into(),
        ..SandboxSettings::default()
    })
    .await;
    assert!(!sandbox.is_available());
    let checker = Checker::new(sandbox);
    let project = Project::new(&[]);
    let s = settings(json!({"test": {"command": "touch ran; exit 0"}}));
    let results = checker
        .run_all(Ok(project.path()), &s, &[CheckKind::Test], &CancellationToken::new(), None)
        .await;
    let r = &results[0];
    assert_eq!(r.status, CheckStatus::Unavailable, "{r:?}");
    assert_eq!(r.exit_code, None);
    assert!(r.reason.as_deref().unwrap().contains("sandbox is unavailable"), "{r:?}");
    assert!(r.reason.as_deref().unwrap().contains("bubblewrap not found"), "{r:?}");
    assert_eq!(r.command.as_deref(), Some("touch ran; exit 0"));
    assert!(!project.path().join("ran").exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_directory_every_check_is_unavailable_with_the_reason() {
    let checker = checker().await;
    let s = settings(json!({"test": {"command": "true"}}));
    let results = checker
        .run_all(Err(NO_DIRECTORY), &s, &CheckKind::ALL, &CancellationToken::new(), None)
        .await;
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r.status, CheckStatus::Unavailable, "{r:?}");
        assert!(r.reason.as_deref().unwrap().contains("no working directory"), "{r:?}");
    }
    // The configured command is named, though it could not run.
    assert_eq!(results[1].command.as_deref(), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_check_is_killed_and_is_not_a_pass() {
    let checker = checker().await;
    let project = Project::new(&[]);
    let s = settings(json!({"test": {"command": "sleep 30; touch finished"}}));
    // The run was cancelled before its check started: the command is killed at once.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let started = Instant::now();
    let results = checker.run_all(Ok(project.path()), &s, &[CheckKind::Test], &cancel, None).await;
    assert_eq!(results[0].status, CheckStatus::Failed, "{:?}", results[0]);
    assert!(results[0].reason.as_deref().unwrap().contains("cancelled"));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!project.path().join("finished").exists());
}
