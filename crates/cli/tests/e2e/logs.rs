//! The log stream: JSON lines with the request id, and no secrets whatever a client sends.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{get_with, serve};

const PLANTED: &[&str] = &[
    "sk-planted0123456789abcdefSECRET",
    "agk_0190planted_c0ffeec0ffeec0ffee",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.plantedsignature",
    "hunter2-planted-password",
];

#[test]
fn json_logs_are_json_lines_with_the_request_id_and_no_planted_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        dir.path(),
        &[
            ("AGENTD_BIND", "127.0.0.1:0"),
            ("AGENTD_LOG_FORMAT", "json"),
            ("AGENTD_LOG", "debug"),
            ("AGENTD_DEBUG_ROUTES", "true"),
        ],
    );
    let addr = server.wait_listening(Duration::from_secs(10));
    let headers = [
        ("x-request-id", "e2e-logs-1"),
        ("authorization", "Bearer sk-planted0123456789abcdefSECRET"),
        ("x-api-key", "agk_0190planted_c0ffeec0ffeec0ffee"),
        ("cookie", "session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.plantedsignature"),
        ("x-password", "hunter2-planted-password"),
    ];
    let (status, _) = get_with(&format!("http://{addr}/health"), &headers).unwrap();
    assert_eq!(status, 200);
    let (status, _) = get_with(
        &format!("http://{addr}/nope?token=sk-planted0123456789abcdefSECRET"),
        &[("x-request-id", "e2e-logs-2")],
    )
    .unwrap();
    assert_eq!(status, 404);
    let (status, _) =
        get_with(&format!("http://{addr}/debug/panic"), &[("x-request-id", "e2e-logs-3")]).unwrap();
    assert_eq!(status, 500);

    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()), Some(0));

    let lines = server.stderr_lines();
    assert!(lines.len() >= 5, "{lines:?}");
    let mut completions = Vec::new();
    for line in &lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for secret in PLANTED {
            assert!(!line.contains(secret), "a planted secret reached the log: {line}");
        }
        if json["message"] == "request completed" {
            completions.push(json);
        }
    }
    for (id, route, status) in [
        ("e2e-logs-1", Some("/health"), 200),
        ("e2e-logs-2", None, 404),
        ("e2e-logs-3", Some("/debug/panic"), 500),
    ] {
        let line = completions
            .iter()
            .find(|c| c["span"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no completion line for {id}: {completions:?}"));
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        if let Some(route) = route {
            assert_eq!(line["span"]["route"], route, "{line}");
        }
        assert!(line["latency_us"].is_u64(), "{line}");
    }
    // The 500's cause is logged with its request id, and only once.
    let failures: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("\"request failed\"") && l.contains("e2e-logs-3"))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
}

#[test]
fn pretty_logs_carry_the_request_id_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[("AGENTD_BIND", "127.0.0.1:0")]);
    let addr = server.wait_listening(Duration::from_secs(10));
    get_with(&format!("http://{addr}/health"), &[("x-request-id", "pretty-1")]).unwrap();
    let line =
        server.wait_for_log(Duration::from_secs(5), |l| l.contains("request completed")).unwrap();
    assert!(line.contains("request_id=pretty-1"), "{line}");
    server.signal(Signal::SIGTERM);
    server.wait_exit(Duration::from_secs(10));
}
