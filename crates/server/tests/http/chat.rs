//! Chat end to end: validation, waiting for the answer (or for a human), streaming the events.

use std::time::Duration;

use agentd_core::user::Role;
use agentd_runner::ApprovalPolicy;
use agentd_server::settings::AgentSettings;
use agentd_test_support::llm::Reply;
use agentd_test_support::{TestApp, TestDatabase, spawn_app_with, spawn_app_with_llm};
use serde_json::{Value, json};

use crate::expect_envelope;

async fn chat(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/v1/agent/chat")).bearer_auth(token).json(&body).send().await.unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

#[tokio::test]
async fn chat_refuses_bad_messages_naming_each_problem() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (_, token) = app.signed_in("chat-v@example.com", Role::Member).await;
    let (app, token) = (&app, token.as_str());
    let fields = |body: Value| async move {
        let body = expect_envelope(body_of(app, token, body).await, 422, "validation_error").await;
        body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(json!({"messages": []})).await, ["messages"]);
    let many: Vec<Value> = (0..101).map(|_| user("x")).collect();
    assert_eq!(fields(json!({"messages": many})).await, ["messages"]);
    let hundred: Vec<Value> = (0..100).map(|_| user("x")).collect();
    assert_eq!(body_of(app, token, json!({"messages": hundred})).await.status(), 200);
    assert_eq!(
        fields(json!({"messages": [
            {"role": "robot", "content": "x"},
            user(&"y".repeat(100 * 1024 + 1)),
            {"role": "assistant", "content": "z"},
        ]}))
        .await,
        ["messages[0].role", "messages[1].content", "messages[2].role"]
    );
    assert_eq!(
        body_of(app, token, json!({"messages": [user(&"y".repeat(100 * 1024))]})).await.status(),
        200
    );
    assert_eq!(fields(json!({"messages": [user("  ")]})).await, ["messages[0].content"]);
    assert_eq!(fields(json!({"messages": [user("x")], "agent": "nope"})).await, ["agent"]);
    assert_eq!(
        fields(json!({"messages": [user("x")], "conversation_id": "nope"})).await,
        ["conversation_id"]
    );
}

/// Sends a chat that streams (so that it answers at once: the server has no workers) and, when
/// it started a run, cancels the run.
async fn body_of(app: &TestApp, token: &str, mut body: Value) -> reqwest::Response {
    body["stream"] = json!(true);
    let res = chat(app, token, body).await;
    if res.status() == 200 {
        // Stop following the run: the stream would wait for a worker.
        let id = res.headers()["x-run-id"].to_str().unwrap().to_owned();
        let cancelled = app
            .client
            .post(app.url(&format!("/v1/runs/{id}/cancel")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(cancelled.status(), 202);
    }
    res
}

#[tokio::test]
async fn chat_waits_for_the_answer_and_keeps_the_conversation() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([Reply::stream_text(&["Hello, ", "Ada."]), Reply::text("You are Ada.")]);
    let (user_, token) = app.signed_in("chat@example.com", Role::Member).await;
    let project = app.project(&user_).await.id.to_string();
    let res = chat(
        &app,
        &token,
        json!({
            "project_id": project,
            "messages": [
                {"role": "system", "content": "Be brief."},
                user("I am Ada."),
                {"role": "assistant", "content": "Noted."},
                user("Greet me."),
            ],
        }),
    )
    .await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    assert_eq!(answer["message"], "Hello, Ada.");
    assert_eq!(answer["pending_approvals"], json!([]));
    assert_eq!(answer["error"], Value::Null);
    let conversation = answer["conversation_id"].as_str().unwrap().to_owned();
    let sent = fake.requests()[0].body.to_string();
    for part in ["Be brief.", "I am Ada.", "Noted.", "Greet me."] {
        assert!(sent.contains(part), "{part} not sent: {sent}");
    }

    // Continuing the conversation: the model gets the whole thread.
    let answer: Value = chat(
        &app,
        &token,
        json!({"conversation_id": conversation, "messages": [user("Who am I?")]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["message"], "You are Ada.");
    assert_eq!(answer["conversation_id"], conversation.as_str());
    // It worked on the conversation's project without naming it.
    let run: Value = app
        .client
        .get(app.url(&format!("/v1/runs/{}", answer["run_id"].as_str().unwrap())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["project_id"], project.as_str());
    assert!(fake.requests()[1].body.to_string().contains("Hello, Ada."));
    let detail: Value = app
        .client
        .get(app.url(&format!("/v1/conversations/{conversation}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contents: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "Be brief.",
            "I am Ada.",
            "Noted.",
            "Greet me.",
            "Hello, Ada.",
            "Who am I?",
            "You are Ada."
        ]
    );
    assert_eq!(detail["project_id"], project.as_str());

    // Someone else's conversation is not found.
    let (_, other) = app.signed_in("chat-other@example.com", Role::Member).await;
    let res =
        chat(&app, &other, json!({"conversation_id": conversation, "messages": [user("hi")]}))
            .await;
    expect_envelope(res, 404, "not_found").await;
}

#[tokio::test]
async fn chat_returns_the_approvals_a_run_waits_for() {
    let (app, fake) = spawn_app_with_llm(|s| {
        s.agents.insert(
            "code".into(),
            AgentSettings { approval: Some(ApprovalPolicy::Always), ..AgentSettings::default() },
        );
    })
    .await;
    fake.push([Reply::tool_call("write_file", json!({"path": "a.txt", "content": "a"}))]);
    let (user_, token) = app.signed_in("chat-a@example.com", Role::Member).await;
    let project = app.project(&user_).await.id.to_string();
    let answer: Value = chat(
        &app,
        &token,
        json!({"project_id": project, "agent": "code", "messages": [user("write a.txt")]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["status"], "waiting_approval", "{answer}");
    assert_eq!(answer["message"], Value::Null);
    let pending = answer["pending_approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{answer}");
    assert_eq!(pending[0]["tool"], "write_file");
    assert_eq!(pending[0]["status"], "pending");
    assert_eq!(pending[0]["run_id"], answer["run_id"]);
}

#[tokio::test]
async fn chat_streams_the_runs_events_to_the_end() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([
        Reply::tool_call("list_files", json!({})).delayed(Duration::from_millis(200)),
        Reply::stream_text(&["stre", "amed"]),
    ]);
    let (user_, token) = app.signed_in("chat-s@example.com", Role::Member).await;
    let project = app.project(&user_).await.id.to_string();
    let res = chat(
        &app,
        &token,
        json!({"project_id": project, "agent": "code", "stream": true, "messages": [user("go")]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let run = res.headers()["x-run-id"].to_str().unwrap().to_owned();
    assert!(res.headers().contains_key("x-conversation-id"));
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
    for event in
        ["event: run.status", "event: tool.call", "event: llm.message", "event: run.completed"]
    {
        assert!(body.contains(event), "{event} missing: {body}");
    }
    let done: Value = app
        .client
        .get(app.url(&format!("/v1/runs/{run}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["result"]["text"], "streamed");
}
