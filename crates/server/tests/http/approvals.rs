//! Approvals end to end: a run parks on a risky call, a human decides over HTTP, the run goes
//! on; decisions race; keys cannot decide; late decisions are refused.

use std::time::{Duration, Instant};

use agentd_core::user::Role;
use agentd_core::{Workspace as _, WorkspacePath};
use agentd_runner::ApprovalPolicy;
use agentd_server::settings::AgentSettings;
use agentd_test_support::approvals::park_all;
use agentd_test_support::llm::Reply;
use agentd_test_support::{TestApp, TestDatabase, spawn_app_with, spawn_app_with_llm};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::expect_envelope;

/// Every change the `code` agent makes needs approval.
fn ask_always(s: &mut agentd_server::Settings) {
    s.agents.insert(
        "code".into(),
        AgentSettings { approval: Some(ApprovalPolicy::Always), ..AgentSettings::default() },
    );
}

async fn start_run(app: &TestApp, token: &str, project: &str) -> String {
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(token)
        .json(&json!({"agent": "code", "input": {"task": "edit"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

async fn until_status(app: &TestApp, token: &str, run: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(app, token, &format!("/v1/runs/{run}")).await;
        if r["status"] == status {
            return r;
        }
        assert!(Instant::now() < deadline, "run never became {status}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn decide(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/approvals/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn api_key(app: &TestApp, token: &str) -> String {
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(token)
        .json(&json!({"name": "automation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned()
}

async fn read(app: &TestApp, project: agentd_core::ProjectId, path: &str) -> Option<Vec<u8>> {
    let ws = agentd_core::workspace::ManagedWorkspace::new(
        app.store.clone(),
        project,
        Default::default(),
    );
    ws.read(&WorkspacePath::parse(path).unwrap()).await.ok().map(|f| f.content)
}

#[tokio::test]
async fn a_run_waits_for_approval_without_a_worker_and_goes_on_when_approved() {
    let (app, fake) = spawn_app_with_llm(|s| {
        ask_always(s);
        s.runs.workers = 1;
    })
    .await;
    let (user, token) = app.signed_in("a@example.com", Role::Member).await;
    let project = app.project(&user).await;
    fake.push([Reply::tool_call(
        "write_file",
        json!({"path": "notes.md", "content": "approved\n"}),
    )]);
    let run = start_run(&app, &token, &project.id.to_string()).await;
    until_status(&app, &token, &run, "waiting_approval").await;
    assert_eq!(read(&app, project.id, "notes.md").await, None, "nothing runs before approval");

    // The only worker is free while the run waits: another run goes through meanwhile.
    fake.push([Reply::text("quick answer")]);
    let other = app
        .client
        .post(app.url(&format!("/v1/projects/{}/runs", project.id)))
        .bearer_auth(&token)
        .json(&json!({"agent": "research", "input": {"task": "q"}}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    until_status(&app, &token, other["id"].as_str().unwrap(), "succeeded").await;
    fake.push([Reply::text("Wrote notes.md.")]);

    let pending = get(&app, &token, "/v1/approvals?status=pending").await;
    let items = pending["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pending}");
    let approval = &items[0];
    assert_eq!(approval["run_id"], run.as_str());
    assert_eq!(approval["tool"], "write_file");
    assert_eq!(approval["arguments"], json!({"path": "notes.md", "content": "approved\n"}));
    assert_eq!(approval["risk"], "low");
    assert_eq!(approval["available_decisions"], json!(["approve", "reject"]));
    assert_eq!(approval["action_hash"].as_str().unwrap().len(), 64);
    assert!(approval["expires_at"].is_string());
    let id = approval["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, &token, &format!("/v1/approvals/{id}")).await["status"], "pending");

    // API keys may read approvals but never decide them.
    let key = api_key(&app, &token).await;
    let res = decide(&app, &key, &id, json!({"decision": "approve"})).await;
    expect_envelope(res, 403, "forbidden").await;

    let res = decide(&app, &token, &id, json!({"decision": "approve", "reason": "fine"})).await;
    assert_eq!(res.status(), 200);
    let decided: Value = res.json().await.unwrap();
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"], user.id.to_string());
    // Repeating the same decision is answered the same; a different one is a conflict.
    let res = decide(&app, &token, &id, json!({"decision": "approve", "reason": "fine"})).await;
    assert_eq!(res.status(), 200);
    let res = decide(&app, &token, &id, json!({"decision": "reject"})).await;
    expect_envelope(res, 409, "approval_decided").await;

    let done = until_status(&app, &token, &run, "succeeded").await;
    assert_eq!(done["result"]["text"], "Wrote notes.md.");
    assert_eq!(read(&app, project.id, "notes.md").await.as_deref(), Some(&b"approved\n"[..]));
    let events = get(&app, &token, &format!("/v1/runs/{run}/events?limit=1000")).await;
    let log = events["data"].as_array().unwrap();
    let statuses: Vec<&str> = log
        .iter()
        .filter(|e| e["type"] == "run.status")
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "running", "waiting_approval", "running", "succeeded"]);
    let types: Vec<&str> = log.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"approval.requested") && types.contains(&"approval.decided"));
    assert_eq!(types.iter().filter(|t| **t == "tool.call").count(), 1, "{types:?}");
}

#[tokio::test]
async fn a_rejected_call_never_runs_and_the_model_gets_the_reason() {
    let (app, fake) = spawn_app_with_llm(ask_always).await;
    let (user, token) = app.signed_in("r@example.com", Role::Member).await;
    let project = app.project(&user).await;
    fake.push([
        Reply::tool_call("write_file", json!({"path": "secrets.txt", "content": "x"})),
        Reply::text("Understood, I left it alone."),
    ]);
    let run = start_run(&app, &token, &project.id.to_string()).await;
    until_status(&app, &token, &run, "waiting_approval").await;
    let pending = get(&app, &token, "/v1/approvals?status=pending").await;
    let id = pending["data"][0]["id"].as_str().unwrap().to_owned();
    let res = decide(
        &app,
        &token,
        &id,
        json!({"decision": "reject", "reason": "do not touch secrets.txt"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "rejected");

    let done = until_status(&app, &token, &run, "succeeded").await;
    assert_eq!(done["result"]["text"], "Understood, I left it alone.");
    assert_eq!(read(&app, project.id, "secrets.txt").await, None, "the call never ran");
    let second = fake.requests()[1].body.to_string();
    assert!(second.contains("do not touch secrets.txt"), "the model is told why: {second}");
    let events = get(&app, &token, &format!("/v1/runs/{run}/events?limit=1000")).await;
    let result = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "tool.result")
        .unwrap()
        .clone();
    assert_eq!(result["data"]["status"], "error");
    assert!(events["data"].as_array().unwrap().iter().all(|e| e["type"] != "tool.call"));
}

#[tokio::test]
async fn late_decisions_bad_bodies_and_wider_scopes() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (user, token) = app.signed_in("l@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    for _ in 0..3 {
        start_run(&app, &token, &project).await;
    }
    let mut parked =
        park_all(app.store.as_ref(), "cargo test --workspace", time::Duration::DAY).await;
    assert_eq!(parked.len(), 3);
    start_run(&app, &token, &project).await;
    let expired = park_all(app.store.as_ref(), "make", -time::Duration::SECOND).await.remove(0);

    let res = decide(&app, &token, &expired.id.to_string(), json!({"decision": "approve"})).await;
    expect_envelope(res, 409, "approval_expired").await;
    let shown = get(&app, &token, &format!("/v1/approvals/{}", expired.id)).await;
    assert_eq!(shown["status"], "expired");
    assert_eq!(
        get(&app, &token, &format!("/v1/runs/{}", expired.run_id)).await["status"],
        "running",
        "the run resumes, to tell the model"
    );

    let id = parked[0].id.to_string();
    for body in [
        json!({"decision": "maybe"}),
        json!({}),
        json!({"decision": "approve", "scope": "forever"}),
        json!({"decision": "reject", "scope": "project"}),
        json!({"decision": "approve", "reason": "x".repeat(2001)}),
        json!({"decision": "approve", "extra": true}),
    ] {
        let res = decide(&app, &token, &id, body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
    }
    let res = app
        .client
        .get(app.url("/v1/approvals?status=bogus"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 422, "validation_error").await;
    let res =
        decide(&app, &token, &uuid::Uuid::now_v7().to_string(), json!({"decision": "approve"}))
            .await;
    expect_envelope(res, 404, "not_found").await;

    // A project-wide approval leaves a grant for the command prefix, listed and revocable.
    let res = decide(&app, &token, &id, json!({"decision": "approve", "scope": "project"})).await;
    assert_eq!(res.status(), 200);
    let approved: Value = res.json().await.unwrap();
    assert_eq!(approved["scope"], "project");
    assert_eq!(approved["grant_key"], "cargo test");
    let grants = get(&app, &token, "/v1/grants").await;
    let grant = &grants["data"][0];
    assert_eq!(grant["scope"], "project");
    assert_eq!(grant["key"], "cargo test");
    assert_eq!(grant["tool"], "run_terminal");
    assert_eq!(grant["project_id"], project.as_str());
    let (_, stranger) = app.signed_in("s@example.com", Role::Member).await;
    assert!(get(&app, &stranger, "/v1/grants").await["data"].as_array().unwrap().is_empty());
    let grant_url = app.url(&format!("/v1/grants/{}", grant["id"].as_str().unwrap()));
    let res = app.client.delete(&grant_url).bearer_auth(&stranger).send().await.unwrap();
    expect_envelope(res, 404, "not_found").await;
    let res = app.client.delete(&grant_url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let res = app.client.delete(&grant_url).bearer_auth(&token).send().await.unwrap();
    expect_envelope(res, 404, "not_found").await;

    // Deciding several at once, the way existing clients do.
    parked.remove(0);
    let ids: Vec<String> = parked.iter().map(|a| a.id.to_string()).collect();
    let missing = uuid::Uuid::now_v7().to_string();
    let key = api_key(&app, &token).await;
    let body = json!({"approval_ids": [ids[0], ids[1], missing, expired.id.to_string()], "decision": "reject", "reason": "not now"});
    let res = app
        .client
        .post(app.url("/v1/agent/execute-pending"))
        .header("x-api-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    let res = app
        .client
        .post(app.url("/v1/agent/execute-pending"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let results: Value = res.json().await.unwrap();
    let outcomes: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["decided", "decided", "not_found", "expired"]);
    assert_eq!(results["results"][0]["approval"]["status"], "rejected");
    assert_eq!(results["results"][0]["approval"]["decision_reason"], "not now");
    for bad in [
        json!({"approval_ids": [], "decision": "approve"}),
        json!({"approval_ids": ["x"], "decision": "approve"}),
    ] {
        let res = app
            .client
            .post(app.url("/v1/agent/execute-pending"))
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        expect_envelope(res, 422, "validation_error").await;
    }
    assert!(
        get(&app, &token, "/v1/approvals?status=pending").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// 1,000 approvals, each raced by an approval and a rejection sent at the same moment: every one
/// ends with exactly one decision, the loser gets 409, and the run log records one decision.
async fn races(database: TestDatabase) {
    let app = spawn_app_with(database, |s| s.runs.workers = 0).await;
    let (user, token) = app.signed_in("race@example.com", Role::Member).await;
    let project = app.project(&user).await;
    for _ in 0..1000 {
        app.store
            .create_run(agentd_core::run::NewRun {
                owner_id: user.id,
                project_id: Some(project.id),
                conversation_id: None,
                agent: "code".into(),
                input: agentd_core::run::RunInput { task: "race".into(), context: None },
                idempotency_key: None,
                max_attempts: 3,
                reject_if_busy: false,
            })
            .await
            .unwrap();
    }
    let parked = park_all(app.store.as_ref(), "make release", time::Duration::DAY).await;
    assert_eq!(parked.len(), 1000);
    let results: Vec<(String, u16, u16)> = futures::stream::iter(parked.iter().map(|a| {
        let id = a.id.to_string();
        let (app, token) = (&app, &token);
        async move {
            let (yes, no) = tokio::join!(
                decide(app, token, &id, json!({"decision": "approve"})),
                decide(app, token, &id, json!({"decision": "reject"})),
            );
            (id, yes.status().as_u16(), no.status().as_u16())
        }
    }))
    .buffer_unordered(32)
    .collect()
    .await;
    for (id, yes, no) in results {
        let mut codes = [yes, no];
        codes.sort_unstable();
        assert_eq!(codes, [200, 409], "approval {id}: approve {yes}, reject {no}");
        let stands = app.store.approval(None, id.parse().unwrap()).await.unwrap();
        let expected = if yes == 200 { "approved" } else { "rejected" };
        assert_eq!(stands.status.as_str(), expected, "{id}");
        let decided = app
            .store
            .events(stands.run_id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == "approval.decided")
            .count();
        assert_eq!(decided, 1, "{id}");
    }
}

#[tokio::test]
async fn a_thousand_concurrent_races_end_with_one_decision_each_on_sqlite() {
    races(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn a_thousand_concurrent_races_end_with_one_decision_each_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else {
        eprintln!("AGENTD_TEST_DATABASE_URL is not set: PostgreSQL variant skipped");
        return;
    };
    races(db).await;
}
