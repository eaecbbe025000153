//! When a layer is missing the sandbox refuses to run anything (`sandbox_unavailable`); only an
//! explicit `AGENTD_SANDBOX=none` runs commands without isolation.

use agentd_sandbox::{CommandSpec, SandboxError, SandboxMode, SandboxSettings, Status};

use crate::support::{Fixture, production_settings};

async fn assert_refused(fx: &Fixture, what: &str) {
    let caps = fx.sandbox.capabilities();
    assert!(!caps.available, "{what}: still available");
    let reasons = caps.reasons.join("; ");
    assert!(reasons.contains(what), "{what} not among the reasons: {reasons}");
    // The command would leave a file behind if it ran.
    let result = fx.sandbox.run(CommandSpec::shell("touch ran", &fx.ws)).await;
    match result {
        Err(SandboxError::Unavailable { reason }) => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(!fx.ws.join("ran").exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bubblewrap_commands_are_unavailable_and_nothing_runs() {
    let fx = Fixture::with_settings(|data| SandboxSettings {
        bwrap_path: "/nonexistent/bin/bwrap".into(),
        ..production_settings(data)
    })
    .await;
    assert_refused(&fx, "bubblewrap not found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_commands_are_unavailable_and_nothing_runs() {
    let fx = Fixture::with_settings(|data| SandboxSettings {
        cgroup_root: "/nonexistent/cgroup".into(),
        ..production_settings(data)
    })
    .await;
    assert_refused(&fx, "/nonexistent/cgroup").await;

    // A directory that exists but holds no cgroup controllers.
    let empty = tempfile::tempdir().unwrap();
    let root = empty.path().to_path_buf();
    drop(fx);
    let fx = Fixture::with_settings(move |data| SandboxSettings {
        cgroup_root: root,
        ..production_settings(data)
    })
    .await;
    assert_refused(&fx, "controllers missing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_settings_make_the_sandbox_unavailable() {
    let fx = Fixture::with_settings(|data| SandboxSettings { uid: 0, ..production_settings(data) })
        .await;
    assert_refused(&fx, "uid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsandboxed_mode_runs_without_isolation_and_says_so() {
    let fx = Fixture::with_settings(|data| SandboxSettings {
        mode: SandboxMode::None,
        ..production_settings(data)
    })
    .await;
    let caps = fx.sandbox.capabilities();
    assert!(caps.available);
    assert!(caps.reasons.iter().any(|r| r.contains("AGENTD_SANDBOX=none")), "{:?}", caps.reasons);
    let out = fx.sh("id -u; touch ran").await;
    assert_eq!(out.status, Status::Exited { code: 0 });
    assert!(!out.isolated);
    assert_eq!(out.output.text().trim(), nix::unistd::geteuid().to_string());
    assert!(fx.ws.join("ran").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reports_every_layer() {
    let fx = Fixture::production().await;
    fx.require_available();
    let caps = agentd_sandbox::probe(fx.sandbox.settings()).await;
    assert!(caps.available, "{:?}", caps.reasons);
    assert!(caps.reasons.is_empty());
    assert!(caps.bwrap.version.is_some());
    assert!(caps.user_namespaces && caps.seccomp);
    assert!(["v1", "v2"].contains(&caps.cgroup.version.as_str()));
    for controller in ["pids", "memory", "cpu"] {
        assert!(caps.cgroup.writable_controllers.iter().any(|c| c == controller));
    }
    assert_ne!(caps.uid, 0);
    assert!(caps.trial.passed);
    assert_eq!(caps.trial.seccomp_mode, Some(2));
    assert_eq!(caps.trial.no_new_privs, Some(1));
    let json = serde_json::to_value(&caps).unwrap();
    assert_eq!(json["mode"], "bwrap");
    assert_eq!(json["available"], true);
}
