//! Runs end to end: the queue, the workers, the agent loop against a scripted model, events.

use std::time::{Duration, Instant};

use agentd_core::user::Role;
use agentd_core::{Workspace as _, WorkspacePath};
use agentd_test_support::llm::{FakeUsage, Reply};
use agentd_test_support::{TestApp, spawn_app_with_llm};
use serde_json::{Value, json};

use crate::expect_envelope;

async fn start(app: &TestApp, token: &str, project: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn wait(app: &TestApp, token: &str, run: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/v1/runs/{run}/wait?timeout_seconds=30")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn events(app: &TestApp, token: &str, run: &str) -> Vec<Value> {
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
    let data = page["data"].as_array().unwrap().clone();
    let seqs: Vec<i64> = data.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=i64::try_from(seqs.len()).unwrap()).collect::<Vec<_>>(),
        "gaps or repeats"
    );
    data
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn statuses(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["type"] == "run.status")
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_run_edits_a_file_and_finishes_with_the_models_answer() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    let (user, token) = app.signed_in("r@example.com", Role::Member).await;
    let project = app.project(&user).await;
    fake.push([
        Reply::tool_call("write_file", json!({"path": "src/hello.txt", "content": "hello\n"}))
            .with_usage(FakeUsage { input: 100, output: 10, ..Default::default() }),
        Reply::stream_text(&["All ", "done."]).with_usage(FakeUsage {
            input: 150,
            output: 5,
            ..Default::default()
        }),
    ]);
    let res = start(
        &app,
        &token,
        &project.id.to_string(),
        json!({"agent": "code", "input": {"task": "write hello"}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    assert!(res.headers()["location"].to_str().unwrap().starts_with("/v1/runs/"));
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "queued");
    let id = run["id"].as_str().unwrap().to_owned();

    let done = wait(&app, &token, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["text"], "All done.");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["usage"]["llm_calls"], 2);
    assert_eq!(done["usage"]["input_tokens"], 250);
    assert!(done["timings"]["finished_at"].is_string());

    // The edit is in the project, authored by the run.
    let ws = agentd_core::workspace::ManagedWorkspace::new(
        app.store.clone(),
        project.id,
        Default::default(),
    );
    let file = ws.read(&WorkspacePath::parse("src/hello.txt").unwrap()).await.unwrap();
    assert_eq!(file.content, b"hello\n");

    let log = events(&app, &token, &id).await;
    assert_eq!(statuses(&log), ["queued", "running", "succeeded"]);
    let t = types(&log);
    for expected in ["llm.message", "tool.call", "tool.result", "run.completed"] {
        assert!(t.contains(&expected), "{expected} missing from {t:?}");
    }
    assert_eq!(t.last(), Some(&"run.completed"));
    let tool_result = log.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(tool_result["data"]["status"], "ok");
    // The model saw the tool's result in its second request.
    let second = &fake.requests()[1].body;
    assert!(second.to_string().contains("src/hello.txt"), "{second}");
}

#[tokio::test]
async fn a_read_only_call_starts_in_the_replys_write_and_a_call_with_side_effects_in_its_own() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    let (user, token) = app.signed_in("early@example.com", Role::Member).await;
    let project = app.project(&user).await;
    fake.push([
        Reply::tool_call("list_files", json!({})),
        Reply::tool_call("write_file", json!({"path": "a.txt", "content": "a"})),
        Reply::text("done"),
    ]);
    let res = start(
        &app,
        &token,
        &project.id.to_string(),
        json!({"agent": "code", "input": {"task": "look, then write"}}),
    )
    .await;
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(wait(&app, &token, &id).await["status"], "succeeded");
    let log = events(&app, &token, &id).await;
    let at = |kind: &str| -> Vec<&str> {
        log.iter()
            .filter(|e| e["type"] == kind)
            .map(|e| e["created_at"].as_str().unwrap())
            .collect()
    };
    let (messages, calls) = (at("llm.message"), at("tool.call"));
    assert_eq!((messages.len(), calls.len()), (3, 2));
    // The same transaction gives the same time; a later one a later time.
    assert_eq!(messages[0], calls[0], "list_files starts with the reply asking for it");
    assert_ne!(messages[1], calls[1], "write_file starts in a write of its own");
    // The journal numbers the steps in the order they were asked for, all completed.
    let steps = app.store.steps(id.parse().unwrap()).await.unwrap();
    let shape: Vec<(u32, &str, &str, &str)> = steps
        .iter()
        .map(|s| {
            (
                s.seq,
                s.kind.as_str(),
                s.status.as_str(),
                if s.seq % 2 == 0 { s.name.as_str() } else { "" },
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, "llm", "completed", ""),
            (2, "tool", "completed", "list_files"),
            (3, "llm", "completed", ""),
            (4, "tool", "completed", "write_file"),
            (5, "llm", "completed", ""),
        ]
    );
    assert_eq!(steps[1].started_at, steps[0].completed_at.unwrap());
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_run() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.always(Reply::text("ok"));
    let (user, token) = app.signed_in("i@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let send = || {
        app.client
            .post(app.url(&format!("/v1/projects/{project}/runs")))
            .bearer_auth(&token)
            .header("idempotency-key", "order-42")
            .json(&json!({"agent": "research", "input": {"task": "t"}}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let list: Value = app
        .client
        .get(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_run_requests_are_refused_clearly() {
    let (app, _fake) = spawn_app_with_llm(|_| {}).await;
    let (user, token) = app.signed_in("b@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    for body in [
        json!({"agent": "nope", "input": {"task": "t"}}),
        json!({"agent": "code", "input": {"task": ""}}),
        json!({"agent": "code", "input": {"task": "x".repeat(200_000)}}),
        json!({"agent": "code", "input": {"task": "t"}, "extra": 1}),
        json!({"agent": "code"}),
    ] {
        let res = start(&app, &token, &project, body).await;
        assert!(matches!(res.status().as_u16(), 413 | 422), "{}", res.status());
    }
    let res = start(
        &app,
        &token,
        &uuid::Uuid::now_v7().to_string(),
        json!({"agent": "code", "input": {"task": "t"}}),
    )
    .await;
    expect_envelope(res, 404, "not_found").await;
}

#[tokio::test]
async fn cancelling_a_running_run_stops_it_within_two_seconds() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.always(Reply::text("too late").delayed(Duration::from_secs(20)));
    let (user, token) = app.signed_in("c@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "t"}}))
            .await
            .json()
            .await
            .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    // Wait until the model has been asked (the run is in its model call).
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.request_count() == 0 {
        assert!(Instant::now() < deadline, "the run never called the model");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let res = app
        .client
        .post(app.url(&format!("/v1/runs/{id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let done = wait(&app, &token, &id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(asked.elapsed() < Duration::from_secs(2), "took {:?}", asked.elapsed());
    assert_eq!(done["error"]["type"], "cancelled");
}

#[tokio::test]
async fn a_queued_run_is_cancelled_at_once() {
    let (app, _fake) = spawn_app_with_llm(|s| s.runs.workers = 0).await;
    let (user, token) = app.signed_in("q@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "t"}}))
            .await
            .json()
            .await
            .unwrap();
    let id = run["id"].as_str().unwrap();
    let res: Value = app
        .client
        .post(app.url(&format!("/v1/runs/{id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["status"], "cancelled");
    assert_eq!(statuses(&events(&app, &token, id).await), ["queued", "cancelled"]);
}

#[tokio::test]
async fn the_step_limit_ends_the_run_with_a_typed_error() {
    let (app, fake) = spawn_app_with_llm(|s| {
        s.agents.entry("code".into()).or_default().max_steps = Some(3);
    })
    .await;
    fake.always(Reply::tool_call("list_files", json!({})));
    let (user, token) = app.signed_in("s@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "loop"}}))
            .await
            .json()
            .await
            .unwrap();
    let done = wait(&app, &token, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["type"], "max_steps_exceeded");
    assert_eq!(done["usage"]["llm_calls"], 3);
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn the_active_time_limit_times_the_run_out() {
    let (app, fake) = spawn_app_with_llm(|s| {
        s.agents.entry("code".into()).or_default().max_active_seconds = Some(1);
    })
    .await;
    fake.always(Reply::tool_call("list_files", json!({})).delayed(Duration::from_millis(600)));
    let (user, token) = app.signed_in("t@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "slow"}}))
            .await
            .json()
            .await
            .unwrap();
    let done = wait(&app, &token, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "timed_out", "{done}");
    assert_eq!(done["error"]["type"], "active_time_exceeded");
}

#[tokio::test]
async fn the_token_budget_ends_the_run() {
    let (app, fake) = spawn_app_with_llm(|s| {
        s.agents.entry("code".into()).or_default().max_tokens = Some(500);
    })
    .await;
    fake.always(Reply::tool_call("list_files", json!({})).with_usage(FakeUsage {
        input: 200,
        output: 100,
        ..Default::default()
    }));
    let (user, token) = app.signed_in("k@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "spend"}}))
            .await
            .json()
            .await
            .unwrap();
    let done = wait(&app, &token, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["type"], "token_budget_exceeded");
    assert_eq!(done["usage"]["llm_calls"], 2);
}

#[tokio::test]
async fn the_cost_budget_ends_the_run() {
    let (app, fake) = spawn_app_with_llm(|s| {
        // $1,000 per million input tokens: 200 tokens cost $0.20 a call.
        s.llm.models = serde_json::from_value(
            json!({"fake/test-model": {"price": {"input": "1000", "output": "0"}}}),
        )
        .unwrap();
        s.agents.entry("code".into()).or_default().max_cost_usd = Some(0.5);
    })
    .await;
    fake.always(Reply::tool_call("list_files", json!({})).with_usage(FakeUsage {
        input: 200,
        output: 10,
        ..Default::default()
    }));
    let (user, token) = app.signed_in("cost@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "spend"}}))
            .await
            .json()
            .await
            .unwrap();
    let done = wait(&app, &token, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "cost_budget_exceeded");
    // Three calls: $0.60, the first total at or over $0.50.
    assert_eq!(done["usage"]["llm_calls"], 3);
    assert!((done["usage"]["cost_usd"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{done}");
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn an_unavailable_model_is_retried_then_fails_with_its_type() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.always(Reply::status(503));
    let (user, token) = app.signed_in("u@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "t"}}))
            .await
            .json()
            .await
            .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let done = wait(&app, &token, &id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "llm_upstream_error");
    assert_eq!(done["attempts"], 2);
    let log = events(&app, &token, &id).await;
    assert_eq!(statuses(&log), ["queued", "running", "queued", "running", "failed"]);
    assert!(types(&log).contains(&"run.retry"));
}

#[tokio::test]
async fn without_a_model_a_run_fails_with_no_llm_configured() {
    let app = agentd_test_support::spawn_app().await;
    let (user, token) = app.signed_in("n@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "t"}}))
            .await
            .json()
            .await
            .unwrap();
    let done = wait(&app, &token, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["type"], "no_llm_configured");
}

#[tokio::test]
async fn sse_resumes_after_last_event_id_without_gaps_or_repeats() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([
        Reply::tool_call("list_files", json!({})),
        Reply::tool_call("list_files", json!({})),
        Reply::stream_text(&["a", "b", "c"]),
    ]);
    let (user, token) = app.signed_in("e@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "t"}}))
            .await
            .json()
            .await
            .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    wait(&app, &token, &id).await;
    let all = events(&app, &token, &id).await;
    assert!(all.len() > 6);
    // Read the stream from event 4 on (as if 1..=4 had been seen), to its end.
    let res = app
        .client
        .get(app.url(&format!("/v1/runs/{id}/events")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("last-event-id", "4")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let body = tokio::time::timeout(Duration::from_secs(10), res.text())
        .await
        .expect("the stream ended")
        .unwrap();
    let ids: Vec<i64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    let expected: Vec<i64> = (5..=i64::try_from(all.len()).unwrap()).collect();
    assert_eq!(ids, expected);
    assert!(body.contains("event: run.completed"));
}

#[tokio::test]
async fn a_live_sse_stream_sees_the_run_to_its_end() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([
        Reply::tool_call("list_files", json!({})).delayed(Duration::from_millis(300)),
        Reply::text("fin").delayed(Duration::from_millis(300)),
    ]);
    let (user, token) = app.signed_in("l@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run: Value =
        start(&app, &token, &project, json!({"agent": "code", "input": {"task": "t"}}))
            .await
            .json()
            .await
            .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .get(app.url(&format!("/v1/runs/{id}/events")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let body = tokio::time::timeout(Duration::from_secs(15), res.text())
        .await
        .expect("the stream ended")
        .unwrap();
    let ids: Vec<i64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=i64::try_from(ids.len()).unwrap()).collect::<Vec<_>>());
    assert!(body.contains("event: run.completed"), "{body}");
}

#[tokio::test]
async fn the_agents_are_listed() {
    let (app, _fake) = spawn_app_with_llm(|s| {
        s.agents.entry("docs".into()).or_default().system_prompt = Some("Write docs.".into());
    })
    .await;
    let (_, token) = app.signed_in("a@example.com", Role::Member).await;
    let agents: Value = app
        .client
        .get(app.url("/v1/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> =
        agents.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    for n in ["code", "docs", "pedagogy", "qa", "research", "wireframe"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let code = agents.as_array().unwrap().iter().find(|a| a["name"] == "code").unwrap();
    assert_eq!(code["max_steps"], 50);
    assert_eq!(code["max_active_seconds"], 1800);
}
