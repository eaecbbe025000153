//! Runs across processes: `agentd cleanup` on a real database, and two `agentd serve` nodes on
//! one PostgreSQL database, where a client of one follows live a run the other executes.

use std::process::Output;
use std::time::Duration;

use agentd_test_support::TestDatabase;
use agentd_test_support::llm::{FakeLlm, Protocol, Reply};
use agentd_test_support::retention::{exist, rows_at};
use serde_json::{Value, json};

use crate::agentd;

fn command(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
    agentd_test_support::process::run_with_input(agentd(), dir, args, envs, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn cleanup_prints_and_removes(database: TestDatabase) {
    let old = [
        rows_at(&database, "old1@example.com", 40).await,
        rows_at(&database, "old2@example.com", 31).await,
    ];
    let recent = rows_at(&database, "recent@example.com", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let envs = [("AGENTD_DATABASE_URL", database.url.as_str())];
    let out = command(dir.path(), &["cleanup"], &envs, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "conversations removed: 2\nruns removed: 2\n");

    let db = database.open().await;
    for rows in old {
        assert_eq!(exist(db.store().as_ref(), rows).await, (false, false));
    }
    assert_eq!(exist(db.store().as_ref(), recent).await, (true, true));
    db.close().await;

    // A shorter time to live reaches the recent conversation too; the run is kept for 30 days.
    let envs =
        [("AGENTD_DATABASE_URL", database.url.as_str()), ("AGENTD_CONVERSATION_TTL_HOURS", "1")];
    let out = command(dir.path(), &["cleanup"], &envs, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "conversations removed: 1\nruns removed: 0\n");
    let db = database.open().await;
    assert_eq!(exist(db.store().as_ref(), recent).await, (false, true));
    db.close().await;
}

#[tokio::test]
async fn cleanup_removes_idle_conversations_and_old_runs_and_prints_the_counts_on_sqlite() {
    cleanup_prints_and_removes(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn cleanup_removes_idle_conversations_and_old_runs_and_prints_the_counts_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("AGENTD_TEST_DATABASE_URL is not set: PostgreSQL variant skipped");
        return;
    };
    cleanup_prints_and_removes(database).await;
}

#[test]
fn cleanup_with_an_unreachable_database_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(
        dir.path(),
        &["cleanup"],
        &[
            ("AGENTD_DATABASE_URL", "postgres://agentd@127.0.0.1:1/agentd"),
            ("AGENTD_DATABASE_CONNECT_TIMEOUT_SECONDS", "1"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("database"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

/// Serves on `database` with the fake model; `workers` runs at once (0: API only).
fn node(
    dir: &std::path::Path,
    database: &str,
    fake: &FakeLlm,
    workers: &str,
) -> agentd_test_support::process::AgentdProcess {
    let base_url = fake.base_url();
    crate::serve(
        dir,
        &[
            ("AGENTD_DATABASE_URL", database),
            ("AGENTD_BIND", "127.0.0.1:0"),
            ("AGENTD_WORKERS", workers),
            ("AGENTD_SECRET_KEY", "a-shared-secret-key-of-the-two-nodes-0123456789"),
            ("AGENTD_LLM_BASE_URL", &base_url),
            ("AGENTD_LLM_MODEL", "test-model"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_executed_by_one_node_is_followed_live_on_another() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("AGENTD_TEST_DATABASE_URL is not set: two-node test skipped");
        return;
    };
    let fake = FakeLlm::start(Protocol::Openai).await;
    fake.push([
        Reply::tool_call("list_files", json!({})).delayed(Duration::from_millis(700)),
        Reply::tool_call("list_files", json!({})).delayed(Duration::from_millis(500)),
        Reply::stream_text(&["done ", "on B"]).delayed(Duration::from_millis(300)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = command(
        dir.path(),
        &["users", "create", "--email", "nodes@example.com"],
        &[("AGENTD_DATABASE_URL", database.url.as_str())],
        "a long enough password\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(a_dir.path(), &database.url, &fake, "0");
    let b = node(b_dir.path(), &database.url, &fake, "4");
    // Waiting for the log lines blocks: off the runtime, which serves the fake model.
    let ((a_addr, b_addr), _nodes) = tokio::task::spawn_blocking(move || {
        let addrs =
            (a.wait_listening(Duration::from_secs(20)), b.wait_listening(Duration::from_secs(20)));
        (addrs, (a, b))
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    // Signed in on node A, the project made on node B.
    let token = agentd_test_support::process::sign_in(
        &client,
        &format!("http://{a_addr}"),
        "nodes@example.com",
        "a long enough password",
    )
    .await;
    let project = agentd_test_support::process::create_project(
        &client,
        &format!("http://{b_addr}"),
        &token,
        "two nodes",
    )
    .await;
    let res = client
        .post(format!("http://{b_addr}/v1/projects/{project}/runs"))
        .bearer_auth(&token)
        .json(&json!({"agent": "code", "input": {"task": "look around"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let run = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let mut stream = client
        .get(format!("http://{a_addr}/v1/runs/{run}/events"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // The stream on A is open while B is still working: what follows arrives live.
    let now: Value = client
        .get(format!("http://{a_addr}/v1/runs/{run}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(["queued", "running"].contains(&now["status"].as_str().unwrap()), "{now}");
    let mut body = String::new();
    let read = async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("the stream on A ended");
    let ids: Vec<i64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert!(ids.len() > 6, "{body}");
    assert_eq!(ids, (1..=i64::try_from(ids.len()).unwrap()).collect::<Vec<_>>(), "gaps or repeats");
    assert!(body.contains("event: run.completed"), "{body}");
    assert!(body.contains("done on B"), "{body}");
    assert_eq!(fake.request_count(), 3);
}
