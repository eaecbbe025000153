//! Identity through the real binary: bootstrapping a user from the command line, secrets kept
//! out of the logs, and rate limits shared by two processes through Redis.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::{agentd, serve};

const PASSWORD: &str = "planted-Password-4f9e1c7a";

fn create_user(
    dir: &std::path::Path,
    email: &str,
    password: &str,
    admin: bool,
) -> std::process::Output {
    let mut args = vec!["users", "create", "--email", email];
    if admin {
        args.push("--admin");
    }
    let envs =
        [("AGENTD_PASSWORD_HASH_MEMORY_KIB", "64"), ("AGENTD_PASSWORD_HASH_ITERATIONS", "1")];
    let stdin = format!("{password}\n");
    agentd_test_support::process::run_with_input(agentd(), dir, &args, &envs, &stdin)
}

#[test]
fn users_create_reads_the_password_from_stdin_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = create_user(dir.path(), "root@example.com", PASSWORD, true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("root@example.com") && stdout.contains("(admin)"), "{stdout}");
    assert!(!stdout.contains(PASSWORD));
    let again = create_user(dir.path(), "ROOT@example.com", PASSWORD, false);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let short = create_user(dir.path(), "x@example.com", "short", false);
    assert_eq!(short.status.code(), Some(2));
    let bad_email = create_user(dir.path(), "not-an-email", PASSWORD, false);
    assert_eq!(bad_email.status.code(), Some(2));
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

#[test]
fn passwords_tokens_and_keys_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    assert!(create_user(dir.path(), "logs@example.com", PASSWORD, false).status.success());
    let mut server = serve(
        dir.path(),
        &[
            ("AGENTD_BIND", "127.0.0.1:0"),
            ("AGENTD_LOG_FORMAT", "json"),
            ("AGENTD_LOG", "trace"),
            ("AGENTD_PASSWORD_HASH_MEMORY_KIB", "64"),
            ("AGENTD_PASSWORD_HASH_ITERATIONS", "1"),
        ],
    );
    let addr = server.wait_listening(Duration::from_secs(10));
    let url = |p: &str| format!("http://{addr}{p}");
    let http = client();
    // A failed and a successful sign-in.
    let res = http
        .post(url("/v1/auth/login"))
        .json(&json!({"email": "logs@example.com", "password": format!("{PASSWORD}-wrong")}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);
    let tokens: Value = http
        .post(url("/v1/auth/login"))
        .json(&json!({"email": "logs@example.com", "password": PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let key: Value = http
        .post(url("/v1/api-keys"))
        .bearer_auth(&access)
        .json(&json!({"name": "logged?"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    assert_eq!(http.get(url("/v1/me")).header("x-api-key", &api_key).send().unwrap().status(), 200);
    let rotated: Value = http
        .post(url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // Reuse (a security event that names the session) and a forged key.
    assert_eq!(
        http.post(url("/v1/auth/refresh"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .unwrap()
            .status(),
        401
    );
    let forged = format!("{}{}", &api_key[..api_key.len() - 5], "XXXXX");
    assert_eq!(http.get(url("/v1/me")).header("x-api-key", &forged).send().unwrap().status(), 401);

    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    let logs = server.stderr_text();
    let secrets = [
        PASSWORD.to_owned(),
        access.clone(),
        refresh.clone(),
        rotated["access_token"].as_str().unwrap().to_owned(),
        rotated["refresh_token"].as_str().unwrap().to_owned(),
        api_key.clone(),
        api_key[api_key.len() - 43..].to_owned(),
        forged,
    ];
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the log:\n{logs}");
    }
    // The sign-ins were logged as security events, with a non-reversible account reference.
    let events: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "agentd::security")
        .collect();
    let outcomes: Vec<&str> = events.iter().filter_map(|e| e["outcome"].as_str()).collect();
    for expected in ["bad_credentials", "success", "reuse_detected"] {
        assert!(outcomes.contains(&expected), "no {expected} event in {outcomes:?}");
    }
    assert!(
        events.iter().all(|e| !e.to_string().contains("logs@example.com")),
        "an email reached the log"
    );
    assert!(events.iter().any(|e| e["client"] == "127.0.0.1"));
}

#[test]
fn two_server_processes_share_one_redis_rate_limit() {
    let Some(redis) = agentd_test_support::redis_url() else {
        eprintln!("AGENTD_TEST_REDIS_URL is not set: shared-limit test skipped");
        return;
    };
    const LIMIT: usize = 20;
    let prefix = format!("agentd-test-{}:", uuid::Uuid::now_v7().simple());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let servers: Vec<_> = dirs
        .iter()
        .map(|d| {
            serve(
                d.path(),
                &[
                    ("AGENTD_BIND", "127.0.0.1:0"),
                    ("AGENTD_RATE_LIMIT_PER_MINUTE", "20"),
                    ("AGENTD_REDIS_URL", &redis),
                    ("AGENTD_REDIS_KEY_PREFIX", &prefix),
                ],
            )
        })
        .collect();
    let addrs: Vec<_> = servers.iter().map(|s| s.wait_listening(Duration::from_secs(10))).collect();
    let started = Instant::now();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let addr = addrs[i % 2];
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut counts = (0usize, 0usize, 0usize);
                for _ in 0..2 {
                    let res = http.get(format!("http://{addr}/v1/auth/csrf")).send().unwrap();
                    if res.status() == 429 {
                        counts.1 += 1;
                        if res.headers().get("retry-after").is_none() {
                            counts.2 += 1;
                        }
                    } else {
                        counts.0 += 1;
                    }
                }
                counts
            })
        })
        .collect();
    let (mut admitted, mut refused, mut missing) = (0, 0, 0);
    for h in handles {
        let (a, r, m) = h.join().unwrap();
        admitted += a;
        refused += r;
        missing += m;
    }
    let elapsed = started.elapsed();
    let ceiling = LIMIT + (elapsed.as_secs_f64() * LIMIT as f64 / 60.0).ceil() as usize;
    assert_eq!(admitted + refused, 5 * LIMIT);
    assert!(admitted <= ceiling, "two processes admitted {admitted} (ceiling {ceiling})");
    assert_eq!(missing, 0);
}
