//! The server's environment and descriptors must not reach a command, and a command must run
//! without privileges.

use std::os::fd::AsRawFd;

use agentd_sandbox::{SandboxMode, SandboxSettings, Status};

use crate::support::{Fixture, canary_file, production_settings};

/// The variable the child process below holds, as agentd holds its API keys.
const CANARY_VAR: &str = "FAKE_API_KEY";
/// Set for the child process only, so that it knows it is one.
const CHILD_VAR: &str = "AGENTD_TEST_CONTAINMENT_CHILD";
const BEGIN: &str = "=====BEGIN SANDBOX OUTPUT=====";
const END: &str = "=====END SANDBOX OUTPUT=====";

/// Reads every environment a command might reach: its own, PID 1's, its parent's, and every
/// process it can see.
const ENV_PROBE: &str = "env; echo ---; cat /proc/1/environ; echo; cat /proc/$PPID/environ; \
    echo; for p in /proc/[0-9]*; do cat $p/environ 2>/dev/null; echo; done; echo probe-done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods, reason = "the test needs a parent process that holds a secret")]
async fn the_servers_environment_is_not_readable_inside() {
    // The secret must be in the environment of the process that starts bubblewrap, and tests
    // may not change their own environment: so this test runs a copy of the test binary, with
    // the secret in its environment, which runs the sandbox (`environment_probe_child`).
    let _serial = crate::support::serial().await;
    let canary = format!("sk-canary-{}", uuid::Uuid::new_v4());
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "secrets::environment_probe_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CANARY_VAR, &canary)
        .env(CHILD_VAR, "1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the child failed:\n{stdout}\n{stderr}");
    let inside = stdout
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(inside, _)| inside)
        .unwrap_or_else(|| panic!("no sandbox output in:\n{stdout}\n{stderr}"));
    assert!(inside.contains("probe-done"), "{inside}");
    assert!(!inside.contains(&canary), "the canary leaked into the sandbox:\n{inside}");
    assert!(!inside.contains(CHILD_VAR), "{inside}");
    // The environment inside is the allowlist, nothing more.
    let own_env = inside.split("---").next().unwrap();
    for line in own_env.lines().filter(|l| l.contains('=')) {
        let name = line.split('=').next().unwrap();
        assert!(
            ["PATH", "HOME", "TMPDIR", "TERM", "LANG", "LC_ALL", "TZ", "PWD", "SHLVL", "_"]
                .contains(&name),
            "unexpected variable inside: {line}"
        );
    }
}

/// The child half of `the_servers_environment_is_not_readable_inside`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_servers_environment_is_not_readable_inside, with a secret in its environment"]
async fn environment_probe_child() {
    assert_eq!(std::env::var(CHILD_VAR).as_deref(), Ok("1"), "run through its parent test");
    let canary = std::env::var(CANARY_VAR).unwrap();
    assert!(canary.starts_with("sk-canary-"));
    let fx = Fixture::production().await;
    let out = fx.sh(ENV_PROBE).await;
    println!("{BEGIN}\n{}\n{END}", out.output.text());
    assert!(!out.output.text().contains(&canary));

    // Control: without the sandbox the same probe finds the secret in its parent (this
    // process), so a leak would be seen.
    drop(fx);
    let unsandboxed = Fixture::with_settings(|data| SandboxSettings {
        mode: SandboxMode::None,
        ..production_settings(data)
    })
    .await;
    let out = unsandboxed.sh(ENV_PROBE).await;
    assert!(out.output.text().contains(&canary), "the control did not find the canary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::disallowed_methods,
    reason = "the control shows an unsandboxed child inherits the descriptor"
)]
async fn an_inherited_descriptor_is_not_usable_inside() {
    let fx = Fixture::production().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.txt");
    let canary = canary_file(&path, 0o600);
    let file = std::fs::File::open(&path).unwrap();
    // Without close-on-exec, as a careless library in the server might leave it.
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).unwrap();
    let fd = file.as_raw_fd();

    let line = format!("cat <&{fd}; cat /proc/self/fd/{fd}; ls /proc/self/fd | wc -l; echo done");
    let out = fx.sh(&line).await;
    let text = out.output.text();
    assert!(text.contains("done"), "{text}");
    assert!(!text.contains(&canary), "the descriptor was readable: {text}");
    let listed: usize = text.lines().rev().nth(1).unwrap().trim().parse().unwrap();
    assert!(listed <= 4, "{listed} descriptors open inside: {text}");

    // Control: a child started without agentd's launcher can read it.
    let leaked =
        std::process::Command::new("cat").arg(format!("/proc/self/fd/{fd}")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&leaked.stdout), canary);
    drop(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_without_privileges_in_their_own_pid_namespace() {
    let fx = Fixture::production().await;
    let out = fx
        .sh(
            "grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
             echo pids=$(ls -d /proc/[0-9]* | wc -l); \
             unshare -U true && echo userns=allowed || echo userns=denied; \
             unshare -Ur true && echo rootns=allowed || echo rootns=denied; \
             (mount -t tmpfs none /mnt 2>/dev/null && echo mount=allowed) || echo mount=denied; \
             (command -v sudo >/dev/null && sudo -n true 2>/dev/null && echo sudo=allowed) || echo sudo=denied; \
             echo done",
        )
        .await;
    let text = out.output.text();
    assert!(text.contains("done"), "{text}");
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
            .trim()
            .to_owned()
    };
    assert!(field("Uid:").split_whitespace().all(|u| u == "65534"), "{text}");
    assert!(field("Gid:").split_whitespace().all(|g| g == "65534"), "{text}");
    for caps in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(field(caps), "0000000000000000", "{caps} {text}");
    }
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    let pids: usize = field("pids=").parse().unwrap();
    assert!(pids < 30, "{pids} processes visible");
    for denied in ["userns=denied", "rootns=denied", "mount=denied", "sudo=denied"] {
        assert!(text.contains(denied), "{denied}: {text}");
    }
    assert_eq!(out.status, Status::Exited { code: 0 });
}
