//! One-shot commands: `--version`, `config check`, `migrate`, and startup failures.

use std::process::{Command, Output};

use crate::agentd;

#[allow(clippy::disallowed_methods)]
fn run(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(agentd())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_prints_the_package_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("agentd {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn production_without_a_secret_key_exits_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["serve"][..], &["migrate"], &["config", "check"]] {
        let out = run(dir.path(), args, &[("AGENTD_ENV", "production")]);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("AGENTD_SECRET_KEY"), "{stderr}");
    }
    // And nothing was created.
    assert!(!dir.path().join("agentd-data").exists());
}

#[test]
fn production_with_a_placeholder_or_short_key_exits_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["changeme", "changemechangemechangemechangemechangeme", "0123456789"] {
        let out = run(
            dir.path(),
            &["serve"],
            &[("AGENTD_ENV", "production"), ("AGENTD_SECRET_KEY", key)],
        );
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("AGENTD_SECRET_KEY"));
    }
}

#[test]
fn config_check_prints_the_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["config", "check"],
        &[
            ("AGENTD_SECRET_KEY", "a-real-secret-value-that-is-long-enough-0123"),
            ("AGENTD_DATABASE_URL", "postgres://agentd:hunter2@db.example:5432/agentd"),
            ("AGENTD_BIND", "127.0.0.1:9999"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("bind = \"127.0.0.1:9999\""), "{stdout}");
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("a-real-secret-value"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn config_check_fails_naming_the_invalid_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["config", "check"], &[("AGENTD_REQUEST_BODY_MAX_BYTES", "big")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("AGENTD_REQUEST_BODY_MAX_BYTES"), "{}", text(&out.stderr));
    let file = dir.path().join("agentd.toml");
    std::fs::write(&file, "[http]\nbind = 8080\n").unwrap();
    let out = run(dir.path(), &["--config", file.to_str().unwrap(), "config", "check"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("http.bind"), "{}", text(&out.stderr));
    // AGENTD_CONFIG names the file too.
    let out = run(dir.path(), &["config", "check"], &[("AGENTD_CONFIG", file.to_str().unwrap())]);
    assert!(!out.status.success());
}

#[test]
fn migrate_creates_the_database_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = run(dir.path(), &["migrate"], &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert!(dir.path().join("agentd-data/agentd.db").exists());
}

#[test]
fn an_unreachable_database_fails_startup_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = agentd_test_support::postgres::free_port();
    let url = format!("postgres://agentd:hunter2@127.0.0.1:{port}/agentd");
    let started = std::time::Instant::now();
    let out = run(
        dir.path(),
        &["serve"],
        &[("AGENTD_DATABASE_URL", &url), ("AGENTD_DATABASE_CONNECT_TIMEOUT_SECONDS", "2")],
    );
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
