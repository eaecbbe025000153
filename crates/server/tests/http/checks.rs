//! Checks end to end: `POST /v1/projects/{id}/checks` starts a run that the workers execute
//! without a model, running the project's configured commands in the real sandbox.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use agentd_core::user::Role;
use agentd_test_support::{TestApp, TestDatabase, spawn_app_with};
use serde_json::{Value, json};

use crate::{create_project, expect_envelope};

/// Python unit tests: two that pass, and with `failing` a third that fails.
fn unit_tests(failing: bool) -> String {
    let mut text = String::from(
        "import unittest\n\nclass MathTest(unittest.TestCase):\n    def test_add(self):\n        \
         self.assertEqual(1 + 1, 2)\n\n    def test_mul(self):\n        self.assertEqual(2 * 3, 6)\n",
    );
    if failing {
        text.push_str("\n    def test_sub(self):\n        self.assertEqual(3 - 1, 1, 'subtraction is broken')\n");
    }
    text
}

/// Directories for directory workspaces, outside the server's data directory and traversable
/// by the sandbox's uid.
struct Dirs {
    _root: tempfile::TempDir,
    root: PathBuf,
}

impl Dirs {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = root.path().canonicalize().unwrap();
        Self { _root: root, root: path }
    }

    fn project(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir).unwrap();
        for (file, content) in files {
            std::fs::write(dir.join(file), content).unwrap();
        }
        dir.display().to_string()
    }
}

async fn directory_project(app: &TestApp, token: &str, path: &str, checks: Value) -> String {
    let project = create_project(
        app,
        token,
        json!({"title": "checked", "workspace": {"kind": "directory", "path": path}}),
    )
    .await;
    let id = project["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .patch(app.url(&format!("/v1/projects/{id}")))
        .bearer_auth(token)
        .json(&json!({"settings": {"checks": checks}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    id
}

async fn start_checks(app: &TestApp, token: &str, project: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/projects/{project}/checks")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Starts checks and waits for the run to end; returns the ended run.
async fn run_checks(app: &TestApp, token: &str, project: &str, body: Value) -> Value {
    let res = start_checks(app, token, project, body).await;
    assert_eq!(res.status(), 202);
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["agent"], "checks");
    let id = run["id"].as_str().unwrap();
    let res = app
        .client
        .get(app.url(&format!("/v1/runs/{id}/wait?timeout_seconds=60")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    run
}

async fn event_types(app: &TestApp, token: &str, run: &str) -> Vec<(String, Value)> {
    let page: Value = app
        .client
        .get(app.url(&format!("/v1/runs/{run}/events?limit=1000")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["data"].clone()))
        .collect()
}

#[tokio::test]
async fn checks_run_the_configured_commands_in_the_sandbox_and_report_each_result() {
    checks_report_results_on(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn checks_run_the_configured_commands_in_the_sandbox_and_report_each_result_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else { return };
    checks_report_results_on(db).await;
}

async fn checks_report_results_on(db: TestDatabase) {
    let dirs = Dirs::new();
    let root = dirs.root.clone();
    let app = spawn_app_with(db, move |s| s.workspace.allowed_roots = vec![root]).await;
    let (_, token) = app.signed_in("checks@example.com", Role::Member).await;
    let (_, other) = app.signed_in("other@example.com", Role::Member).await;
    let test = json!({"command": "python3 -m unittest -v", "timeout_seconds": 120});

    // A project whose tests pass, and whose build is configured to fail.
    let good = dirs.project("good", &[("test_math.py", &unit_tests(false))]);
    let good = directory_project(
        &app,
        &token,
        &good,
        json!({"test": test, "build": {"command": "echo compiling; exit 3"}}),
    )
    .await;
    let run = run_checks(&app, &token, &good, json!({})).await;
    let result = &run["result"];
    let checks = result["checks"].as_array().unwrap();
    let statuses: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [("lint", "unavailable"), ("test", "passed"), ("build", "failed")],
        "{result:#}"
    );
    assert!(checks[0]["reason"].as_str().unwrap().contains("no lint command"), "{:#}", checks[0]);
    let passed = &checks[1];
    assert_eq!(passed["exit_code"], 0);
    assert_eq!(passed["command"], "python3 -m unittest -v");
    assert_eq!(passed["source"]["from"], "configured");
    assert_eq!(
        passed["counts"],
        json!({"tool": "unittest", "total": 2, "passed": 2, "failed": 0, "skipped": 0})
    );
    assert!(passed["duration_ms"].as_u64().is_some());
    assert!(passed["output"]["head"].as_str().unwrap().contains("test_add"));
    assert_eq!(checks[2]["exit_code"], 3);
    assert_eq!(checks[2]["timeout_seconds"], 300);
    assert!(checks[2]["output"]["head"].as_str().unwrap().contains("compiling"));
    assert_eq!(result["passed"], false);
    assert_eq!(
        result["summary"],
        json!({"passed": 1, "failed": 1, "timed_out": 0, "unavailable": 1})
    );

    // The full log is stored, and only its owner may read it.
    let run_id = run["id"].as_str().unwrap();
    let blob = passed["log"]["blob_id"].as_str().unwrap();
    let log_url = app.url(&format!("/v1/runs/{run_id}/blobs/{blob}"));
    let res = app.client.get(&log_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let log = res.text().await.unwrap();
    assert!(log.contains("Ran 2 tests"), "{log}");
    assert_eq!(passed["log"]["bytes"], log.len());
    let res = app.client.get(&log_url).bearer_auth(&other).send().await.unwrap();
    expect_envelope(res, 404, "not_found").await;

    // One started and one completed event per check, in order.
    let events = event_types(&app, &token, run_id).await;
    let checks_seen: Vec<(String, String)> = events
        .iter()
        .filter(|(t, _)| t.starts_with("check."))
        .map(|(t, d)| (t.clone(), d["check"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> = ["lint", "test", "build"]
        .iter()
        .flat_map(|k| {
            [
                ("check.started".to_owned(), (*k).to_owned()),
                ("check.completed".to_owned(), (*k).to_owned()),
            ]
        })
        .collect();
    assert_eq!(checks_seen, expected);
    let completed =
        events.iter().find(|(t, d)| t == "check.completed" && d["check"] == "test").unwrap();
    assert_eq!(completed.1["status"], "passed");
    assert_eq!(completed.1["counts"]["passed"], 2);

    // A project whose tests fail: the run still succeeds, the check does not.
    let bad = dirs.project("bad", &[("test_math.py", &unit_tests(true))]);
    let bad = directory_project(&app, &token, &bad, json!({"test": test})).await;
    let run = run_checks(&app, &token, &bad, json!({"kinds": ["test"]})).await;
    let checks = run["result"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    let failed = &checks[0];
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["exit_code"], 1);
    assert_eq!(
        failed["counts"],
        json!({"tool": "unittest", "total": 3, "passed": 2, "failed": 1, "skipped": 0})
    );
    let output = format!("{}{}", failed["output"]["head"], failed["output"]["tail"]);
    assert!(output.contains("subtraction is broken"), "{output}");

    // Another tenant cannot start checks on either project.
    for project in [&good, &bad] {
        let res = start_checks(&app, &other, project, json!({})).await;
        expect_envelope(res, 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_timed_out_check_fails_and_a_managed_projects_checks_run_in_its_copy() {
    let dirs = Dirs::new();
    let root = dirs.root.clone();
    let app =
        spawn_app_with(TestDatabase::sqlite(), move |s| s.workspace.allowed_roots = vec![root])
            .await;
    let (_, token) = app.signed_in("slow@example.com", Role::Member).await;
    let slow = dirs.project("slow", &[]);
    let slow = directory_project(
        &app,
        &token,
        &slow,
        json!({"test": {"command": "sleep 60; touch finished", "timeout_seconds": 1}}),
    )
    .await;
    let run = run_checks(&app, &token, &slow, json!({"kinds": ["test"]})).await;
    let check = &run["result"]["checks"][0];
    assert_eq!(check["status"], "timed_out", "{check:#}");
    assert_eq!(check["exit_code"], Value::Null);
    assert!(!dirs.root.join("slow/finished").exists());

    // A managed project's files are copied into a directory for the run, where its checks see
    // them; a kind with no command is unavailable, never a pass.
    let managed = create_project(&app, &token, json!({"title": "managed"})).await;
    let managed = managed["id"].as_str().unwrap();
    let res = app
        .client
        .put(app.url(&format!("/v1/projects/{managed}/files/notes/hello.txt")))
        .bearer_auth(&token)
        .body("hello from the database\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .patch(app.url(&format!("/v1/projects/{managed}")))
        .bearer_auth(&token)
        .json(&json!({"settings": {"checks": {"test": {"command": "grep -q 'from the database' notes/hello.txt"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let run = run_checks(&app, &token, managed, json!({"kinds": ["test", "lint"]})).await;
    let checks = run["result"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["kind"], "lint", "checks run in the order lint, test, build");
    assert_eq!(checks[0]["status"], "unavailable", "{:#}", checks[0]);
    assert!(checks[0]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{:#}", checks[0]);
    assert_eq!(checks[1]["status"], "passed", "{:#}", checks[1]);
    assert_eq!(checks[1]["exit_code"], 0);
}

#[tokio::test]
async fn bad_kinds_and_bad_checks_settings_are_refused_with_422() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (_, token) = app.signed_in("bad@example.com", Role::Member).await;
    let project = create_project(&app, &token, json!({"title": "p"})).await;
    let id = project["id"].as_str().unwrap();
    for body in
        [json!({"kinds": ["test", "deploy"]}), json!({"kinds": []}), json!({"kinds": "test"})]
    {
        let res = start_checks(&app, &token, id, body.clone()).await;
        expect_envelope(res, 422, "validation_error").await;
    }
    let res = start_checks(&app, &token, id, json!({"kinds": ["test", "deploy"]})).await;
    let body = expect_envelope(res, 422, "validation_error").await;
    assert_eq!(body["error"]["details"][0]["field"], "kinds[1]", "{body}");

    let bad_settings = [
        (
            json!({"checks": {"test": {"command": "cargo test", "timeout_seconds": 0}}}),
            "settings.checks.test.timeout_seconds",
        ),
        (json!({"checks": {"test": {"timeout_seconds": 10}}}), "settings.checks.test.command"),
        (json!({"checks": {"deploy": {"command": "make deploy"}}}), "settings.checks"),
        (json!({"checks": ["cargo test"]}), "settings.checks"),
    ];
    for (settings, field) in bad_settings {
        let res = app
            .client
            .patch(app.url(&format!("/v1/projects/{id}")))
            .bearer_auth(&token)
            .json(&json!({"settings": settings}))
            .send()
            .await
            .unwrap();
        let body = expect_envelope(res, 422, "validation_error").await;
        assert_eq!(body["error"]["details"][0]["field"], field, "{body}");
    }
    let res = app
        .client
        .get(app.url(&format!("/v1/projects/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let project: Value = res.json().await.unwrap();
    assert_eq!(project["settings"], json!({}), "nothing changed");
}

#[tokio::test]
async fn an_agent_runs_the_projects_checks_with_the_run_checks_tool() {
    let dirs = Dirs::new();
    let root = dirs.root.clone();
    let (app, fake) = agentd_test_support::spawn_app_with_llm(move |s| {
        s.workspace.allowed_roots = vec![root];
    })
    .await;
    let (_, token) = app.signed_in("agent@example.com", Role::Member).await;
    let path = dirs.project("agent", &[]);
    let project =
        directory_project(&app, &token, &path, json!({"test": {"command": "echo checked"}})).await;
    fake.push([
        agentd_test_support::llm::Reply::tool_call("run_checks", json!({"kinds": ["test"]})),
        agentd_test_support::llm::Reply::text("Checked."),
    ]);
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(&token)
        .json(&json!({"agent": "qa", "input": {"task": "check the project"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let run: Value = res.json().await.unwrap();
    let id = run["id"].as_str().unwrap();
    let done: Value = app
        .client
        .get(app.url(&format!("/v1/runs/{id}/wait?timeout_seconds=60")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let events = event_types(&app, &token, id).await;
    let (_, result) = events.iter().find(|(t, _)| t == "tool.result").unwrap();
    assert_eq!(result["tool"], "run_checks");
    assert_eq!(result["status"], "ok", "{result:#}");
    // The model got one line for the test check, naming the project's command, which ran.
    let second = fake.requests()[1].body.to_string();
    assert!(second.contains("`echo checked`"), "{second}");
    assert!(second.contains("test: passed"), "{second}");
}
