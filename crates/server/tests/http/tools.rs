//! Agent tools end to end: a scripted agent edits a file and asks to run a command; a human
//! approves it; the command runs in the real sandbox in the run's copy of the project, and what
//! it wrote becomes a revision next to the agent's edit. A rejected command never runs and the
//! model is told why. Without a sandbox, commands answer `sandbox_unavailable` and nothing
//! runs; readiness and `/v1/system/capabilities` show the probe.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use agentd_core::user::Role;
use agentd_runner::ApprovalPolicy;
use agentd_server::settings::AgentSettings;
use agentd_test_support::llm::{FakeLlm, Reply};
use agentd_test_support::{TestApp, spawn_app_with_llm};
use serde_json::{Value, json};

use crate::{expect_envelope, get_file, put_file};

/// A data directory the sandbox uid can traverse, as the per-run copies live under it.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

async fn app(
    data: &tempfile::TempDir,
    configure: impl FnOnce(&mut agentd_server::Settings),
) -> (TestApp, FakeLlm) {
    let path = data.path().to_path_buf();
    spawn_app_with_llm(|s| {
        s.data_dir = path;
        s.runs.workers = 1;
        configure(s);
    })
    .await
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

async fn start(app: &TestApp, token: &str, project: &str) -> String {
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(token)
        .json(&json!({"agent": "code", "input": {"task": "greet the world"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn until(app: &TestApp, token: &str, run: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(app, token, &format!("/v1/runs/{run}")).await;
        if r["status"] == status {
            return r;
        }
        assert!(Instant::now() < deadline, "run never became {status}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn decide(app: &TestApp, token: &str, body: Value) -> Value {
    let pending = get(app, token, "/v1/approvals?status=pending").await;
    let items = pending["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending}");
    assert_eq!(items[0]["tool"], "run_terminal");
    let id = items[0]["id"].as_str().unwrap();
    let res = app
        .client
        .post(app.url(&format!("/v1/approvals/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    items[0].clone()
}

async fn file_exists(app: &TestApp, token: &str, project: &str, path: &str) -> bool {
    let url = app.url(&format!("/v1/projects/{project}/files/{path}"));
    let res = app.client.get(url).bearer_auth(token).send().await.unwrap();
    res.status() == 200
}

#[tokio::test]
async fn an_approved_command_runs_in_the_sandbox_the_checks_pass_and_the_diff_shows_the_runs_work()
{
    let data = data_dir();
    let (app, fake) = app(&data, |_| {}).await;
    let (user, token) = app.signed_in("tools@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    assert_eq!(put_file(&app, &token, &project, "src/greeting.txt", "hello\n").await.status(), 201);
    // The project's test check passes only once the approved command has done its work.
    let res = app
        .client
        .patch(app.url(&format!("/v1/projects/{project}")))
        .bearer_auth(&token)
        .json(&json!({"settings": {"checks": {"test": {"command": "grep -q 'HELLO, WORLD' shout.txt"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let before =
        get(&app, &token, &format!("/v1/projects/{project}")).await["revision"].as_i64().unwrap();
    fake.push([
        Reply::tool_call(
            "edit_file",
            json!({"path": "src/greeting.txt", "old_string": "hello", "new_string": "hello, world"}),
        ),
        Reply::tool_call(
            "run_terminal",
            json!({"command": "tr a-z A-Z < src/greeting.txt > shout.txt && id -u"}),
        ),
        Reply::tool_call("run_checks", json!({"kinds": ["test"]})),
        Reply::text("Greeted the world."),
    ]);
    let run = start(&app, &token, &project).await;
    until(&app, &token, &run, "waiting_approval").await;
    // The edit is in the project already; the command has not run.
    assert_eq!(get_file(&app, &token, &project, "src/greeting.txt").await, b"hello, world\n");
    assert!(!file_exists(&app, &token, &project, "shout.txt").await);

    let approval = decide(&app, &token, json!({"decision": "approve"})).await;
    assert_eq!(approval["risk"], "medium");
    assert_eq!(approval["grant_key"], Value::Null, "a compound command is approved once only");
    let done = until(&app, &token, &run, "succeeded").await;
    assert_eq!(done["result"]["text"], "Greeted the world.");

    // The command saw the agent's edit, ran confined (not as root), and what it wrote came back
    // to the project as a revision by the run.
    assert_eq!(get_file(&app, &token, &project, "shout.txt").await, b"HELLO, WORLD\n");
    let third = fake.requests()[2].body.to_string();
    assert!(third.contains("exit code 0"), "{third}");
    assert!(third.contains("65534"), "the command ran as the sandbox uid: {third}");
    // Then the agent ran the project's checks, which saw the command's file.
    let fourth = fake.requests()[3].body.to_string();
    assert!(fourth.contains("test: passed"), "{fourth}");
    let changes =
        get(&app, &token, &format!("/v1/projects/{project}/changes?since={before}")).await;
    let authors: Vec<&str> =
        changes["data"].as_array().unwrap().iter().map(|c| c["author"].as_str().unwrap()).collect();
    assert_eq!(authors, [format!("run:{run}"), format!("run:{run}")], "{changes}");
    let diff = app
        .client
        .get(app.url(&format!("/v1/projects/{project}/diff?from={before}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(diff.contains("+hello, world"), "{diff}");
    assert!(diff.contains("+HELLO, WORLD"), "{diff}");
    // The run's copy of the project is gone; reverting undoes the run.
    let run_dir = data.path().join("runs").join(&run);
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["logs"], "the copies are gone, the command's log stays");
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/revert")))
        .bearer_auth(&token)
        .json(&json!({"to": before}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(get_file(&app, &token, &project, "src/greeting.txt").await, b"hello\n");
    assert!(!file_exists(&app, &token, &project, "shout.txt").await);
}

#[tokio::test]
async fn only_a_call_that_works_in_a_directory_makes_the_runs_copy_of_the_project() {
    let data = data_dir();
    // No copy of a project can be made here: a file stands where the run directories go.
    std::fs::write(data.path().join("runs"), b"not a directory").unwrap();
    let (app, fake) = app(&data, |_| {}).await;
    let (user, token) = app.signed_in("lazy@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    assert_eq!(put_file(&app, &token, &project, "notes.txt", "draft\n").await.status(), 201);
    // Reading and editing through the file tools needs no copy: the run succeeds.
    fake.push([
        Reply::tool_call("read_file", json!({"path": "notes.txt"})),
        Reply::tool_call(
            "edit_file",
            json!({"path": "notes.txt", "old_string": "draft", "new_string": "final"}),
        ),
        Reply::text("Edited."),
    ]);
    let run = start(&app, &token, &project).await;
    until(&app, &token, &run, "succeeded").await;
    assert_eq!(get_file(&app, &token, &project, "notes.txt").await, b"final\n");
    // A search works in the copy: making it fails, and the run says why.
    fake.push([Reply::tool_call("search", json!({"pattern": "final"})), Reply::text("Found.")]);
    let run = start(&app, &token, &project).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = get(&app, &token, &format!("/v1/runs/{run}")).await;
        if r["error"]["type"] == "workspace_unavailable" {
            break r;
        }
        assert!(Instant::now() < deadline, "the search never failed to get its copy: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(r["error"]["message"].as_str().unwrap().contains("run"), "{r}");
}

#[tokio::test]
async fn an_attempt_that_makes_no_copy_removes_the_copies_earlier_attempts_left() {
    let data = data_dir();
    let (app, fake) = app(&data, |_| {}).await;
    let (user, token) = app.signed_in("leftover@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    fake.push([
        Reply::tool_call("run_terminal", json!({"command": "touch later.txt"})),
        Reply::text("Not run, then."),
    ]);
    let run = start(&app, &token, &project).await;
    until(&app, &token, &run, "waiting_approval").await;
    // What a first attempt killed before its end would leave behind.
    let leftover = data.path().join("runs").join(&run).join("work-1");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("stale.txt"), b"from a crashed attempt").unwrap();
    decide(&app, &token, json!({"decision": "reject", "reason": "not now"})).await;
    until(&app, &token, &run, "succeeded").await;
    assert!(!leftover.exists(), "the second attempt removed the first one's copy");
}

#[tokio::test]
async fn a_rejected_command_never_runs_and_the_model_gets_the_reason() {
    let data = data_dir();
    let (app, fake) = app(&data, |_| {}).await;
    let (user, token) = app.signed_in("reject@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    fake.push([
        Reply::tool_call("run_terminal", json!({"command": "touch rejected.txt"})),
        Reply::text("Understood, I did not run it."),
    ]);
    let run = start(&app, &token, &project).await;
    until(&app, &token, &run, "waiting_approval").await;
    let approval = decide(
        &app,
        &token,
        json!({"decision": "reject", "reason": "no new files in the root, please"}),
    )
    .await;
    assert_eq!(approval["grant_key"], "touch rejected.txt");
    until(&app, &token, &run, "succeeded").await;
    assert!(!file_exists(&app, &token, &project, "rejected.txt").await, "the command never ran");
    let second = fake.requests()[1].body.to_string();
    assert!(second.contains("no new files in the root, please"), "{second}");
    let revision = get(&app, &token, &format!("/v1/projects/{project}")).await["revision"].clone();
    assert_eq!(revision, 0, "nothing changed the project");
}

#[tokio::test]
async fn without_a_sandbox_commands_answer_sandbox_unavailable_and_nothing_runs() {
    let data = data_dir();
    let (app, fake) = app(&data, |s| {
        s.sandbox.bwrap_path = "/nonexistent/agentd-test/bwrap".into();
        s.agents.insert(
            "code".into(),
            AgentSettings { approval: Some(ApprovalPolicy::Never), ..AgentSettings::default() },
        );
    })
    .await;
    let (user, token) = app.signed_in("nosandbox@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    fake.push([
        Reply::tool_call("run_terminal", json!({"command": "touch ran.txt"})),
        Reply::text("The sandbox is missing."),
    ]);
    let run = start(&app, &token, &project).await;
    until(&app, &token, &run, "succeeded").await;
    let second = fake.requests()[1].body.to_string();
    assert!(second.contains("sandbox_unavailable"), "{second}");
    assert!(!file_exists(&app, &token, &project, "ran.txt").await, "nothing ran");

    // Readiness shows the probe but stays ready; the capabilities say why.
    let res = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ready: Value = res.json().await.unwrap();
    assert_eq!(ready["sandbox"], json!({"mode": "bwrap", "available": false}));
    let caps = get(&app, &token, "/v1/system/capabilities").await;
    assert_eq!(caps["sandbox"]["available"], false);
    let reasons = caps["sandbox"]["reasons"].to_string();
    assert!(reasons.contains("bubblewrap"), "{reasons}");
}

#[tokio::test]
async fn readiness_and_the_capabilities_endpoint_show_a_working_sandbox() {
    let data = data_dir();
    let (app, _fake) = app(&data, |_| {}).await;
    let ready: Value =
        app.client.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["sandbox"], json!({"mode": "bwrap", "available": true}));
    let res = app.client.get(app.url("/v1/system/capabilities")).send().await.unwrap();
    expect_envelope(res, 401, "unauthorized").await;
    let (_, token) = app.signed_in("caps@example.com", Role::Member).await;
    let caps = get(&app, &token, "/v1/system/capabilities").await;
    let sandbox = &caps["sandbox"];
    assert_eq!(sandbox["available"], true, "{caps}");
    assert_eq!(sandbox["mode"], "bwrap");
    assert_eq!(sandbox["trial"]["passed"], true);
    assert_eq!(sandbox["trial"]["no_new_privs"], 1);
    assert_eq!(sandbox["trial"]["seccomp_mode"], 2);
    assert_ne!(sandbox["uid"], 0);
}

#[tokio::test]
async fn the_directories_of_runs_the_database_no_longer_has_are_pruned() {
    let data = data_dir();
    let (app, fake) = app(&data, |_| {}).await;
    let (user, token) = app.signed_in("prune@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    fake.push([Reply::text("Nothing to do.")]);
    let run = start(&app, &token, &project).await;
    until(&app, &token, &run, "succeeded").await;
    let runs = data.path().join("runs");
    let kept = runs.join(&run).join("logs");
    std::fs::create_dir_all(&kept).unwrap();
    let gone = runs.join(agentd_core::RunId::new().to_string()).join("logs");
    std::fs::create_dir_all(&gone).unwrap();
    std::fs::write(gone.join("command.log"), "old output").unwrap();
    let stranger = runs.join("not-a-run");
    std::fs::create_dir_all(&stranger).unwrap();

    let removed =
        agentd_runner::maintenance::prune_run_dirs(app.store.as_ref(), &runs).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!gone.parent().unwrap().exists(), "a deleted run's directory is removed");
    assert!(kept.exists(), "an existing run's directory stays");
    assert!(stranger.exists(), "what is not a run's directory is left alone");
}
