//! Conversations end to end: CRUD and tenancy, runs that continue one (and see its history),
//! one active run per conversation (`reject` and `enqueue`), and the retention sweep.

use std::time::{Duration, Instant};

use agentd_core::user::Role;
use agentd_test_support::llm::Reply;
use agentd_test_support::retention::{exist, rows_at};
use agentd_test_support::{TestApp, TestDatabase, spawn_app_with, spawn_app_with_llm};
use serde_json::{Value, json};

use crate::expect_envelope;

pub(crate) async fn create(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/conversations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn start(app: &TestApp, token: &str, project: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn wait(app: &TestApp, token: &str, run: &str) -> Value {
    let res = get(app, token, &format!("/v1/runs/{run}/wait?timeout_seconds=30")).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn conversations_are_created_listed_read_and_deleted_by_their_owner_only() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (owner, token) = app.signed_in("c-owner@example.com", Role::Member).await;
    let (other_user, other) = app.signed_in("c-other@example.com", Role::Member).await;
    let project = app.project(&owner).await.id.to_string();
    let foreign = app.project(&other_user).await.id.to_string();

    let res =
        create(&app, &token, json!({"project_id": project, "task_id": "T-1", "title": "Plan"}))
            .await;
    assert_eq!(res.status(), 201);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["project_id"], project.as_str());
    assert_eq!(first["task_id"], "T-1");
    assert_eq!(first["title"], "Plan");
    let id = first["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(create(&app, &token, json!({})).await.status(), 201);
    }

    // Someone else's project is not found; bad fields are named.
    expect_envelope(create(&app, &token, json!({"project_id": foreign})).await, 404, "not_found")
        .await;
    let body = expect_envelope(
        create(&app, &token, json!({"title": "", "task_id": "x".repeat(201)})).await,
        422,
        "validation_error",
    )
    .await;
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["task_id", "title"]);
    expect_envelope(create(&app, &token, json!({"owner_id": "x"})).await, 422, "validation_error")
        .await;

    // Pages of two, newest first, with a cursor; the other user sees none of them.
    let page: Value = get(&app, &token, "/v1/conversations?limit=2").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = get(&app, &token, &format!("/v1/conversations?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], id.as_str());
    assert!(rest.get("next_cursor").is_none());
    let theirs: Value = get(&app, &other, "/v1/conversations").await.json().await.unwrap();
    assert!(theirs["data"].as_array().unwrap().is_empty());
    expect_envelope(
        get(&app, &token, "/v1/conversations?limit=101").await,
        422,
        "validation_error",
    )
    .await;

    let one: Value =
        get(&app, &token, &format!("/v1/conversations/{id}")).await.json().await.unwrap();
    assert_eq!(one["title"], "Plan");
    assert_eq!(one["messages"], json!([]));
    expect_envelope(get(&app, &other, &format!("/v1/conversations/{id}")).await, 404, "not_found")
        .await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/conversations/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 404, "not_found").await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/conversations/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expect_envelope(get(&app, &token, &format!("/v1/conversations/{id}")).await, 404, "not_found")
        .await;
}

#[tokio::test]
async fn a_run_continuing_a_conversation_sees_its_history() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([Reply::text("Nice to meet you, Ada."), Reply::text("Your name is Ada.")]);
    let (user, token) = app.signed_in("h@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let conversation: Value =
        create(&app, &token, json!({"project_id": project})).await.json().await.unwrap();
    let conversation = conversation["id"].as_str().unwrap();
    let body = |task: &str| json!({"agent": "research", "input": {"task": task}, "conversation_id": conversation});
    let first: Value =
        start(&app, &token, &project, body("My name is Ada.")).await.json().await.unwrap();
    assert_eq!(first["conversation_id"], conversation);
    let first = wait(&app, &token, first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "succeeded");
    let second: Value =
        start(&app, &token, &project, body("What is my name?")).await.json().await.unwrap();
    let second = wait(&app, &token, second["id"].as_str().unwrap()).await;
    assert_eq!(second["result"]["text"], "Your name is Ada.");

    // The model was sent the earlier turn, in order, before the new task.
    let request = fake.requests()[1].body.to_string();
    let (a, b, c) = (
        request.find("My name is Ada.").expect("the earlier task"),
        request.find("Nice to meet you, Ada.").expect("the earlier answer"),
        request.find("What is my name?").expect("the task"),
    );
    assert!(a < b && b < c, "{request}");
    // The first request had no history.
    assert!(!fake.requests()[0].body.to_string().contains("What is my name?"));

    let detail: Value =
        get(&app, &token, &format!("/v1/conversations/{conversation}")).await.json().await.unwrap();
    let messages: Vec<(&str, &str)> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        [
            ("user", "My name is Ada."),
            ("assistant", "Nice to meet you, Ada."),
            ("user", "What is my name?"),
            ("assistant", "Your name is Ada."),
        ]
    );
    assert_eq!(detail["messages"][3]["run_id"], second["id"]);

    // A run may not continue someone else's conversation, nor one of another project.
    let (_, other) = app.signed_in("h2@example.com", Role::Member).await;
    let other_project = app.project(&user).await.id.to_string();
    let res = start(&app, &token, &other_project, body("x")).await;
    expect_envelope(res, 422, "validation_error").await;
    let mine: Value = create(&app, &other, json!({})).await.json().await.unwrap();
    let res = start(
        &app,
        &token,
        &project,
        json!({"agent": "research", "input": {"task": "x"}, "conversation_id": mine["id"]}),
    )
    .await;
    expect_envelope(res, 404, "not_found").await;
}

#[tokio::test]
async fn a_conversation_deleted_while_its_run_works_does_not_fail_the_run() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([Reply::text("Done anyway.").delayed(Duration::from_secs(1))]);
    let (user, token) = app.signed_in("gone@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let conversation: Value =
        create(&app, &token, json!({"project_id": project})).await.json().await.unwrap();
    let conversation = conversation["id"].as_str().unwrap();
    let run: Value = start(
        &app,
        &token,
        &project,
        json!({"agent": "research", "input": {"task": "t"}, "conversation_id": conversation}),
    )
    .await
    .json()
    .await
    .unwrap();
    // The model has the request: the attempt is in flight when the conversation goes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.requests().is_empty() {
        assert!(Instant::now() < deadline, "the run never called the model");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = app
        .client
        .delete(app.url(&format!("/v1/conversations/{conversation}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let done = wait(&app, &token, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["result"]["text"], "Done anyway.");
    assert_eq!(done["attempts"], 1, "{done:#}");
}

#[tokio::test]
async fn a_busy_conversation_refuses_a_run_that_asks_not_to_queue() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (user, token) = app.signed_in("busy@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let conversation: Value = create(&app, &token, json!({})).await.json().await.unwrap();
    let body = |multitask: &str| {
        json!({"agent": "code", "input": {"task": "t"}, "conversation_id": conversation["id"],
               "multitask": multitask})
    };
    let first = start(&app, &token, &project, body("reject")).await;
    assert_eq!(first.status(), 202, "an idle conversation takes the run");
    let first: Value = first.json().await.unwrap();
    let res = start(&app, &token, &project, body("reject")).await;
    expect_envelope(res, 409, "conversation_busy").await;
    // Queueing behind it is allowed.
    assert_eq!(start(&app, &token, &project, body("enqueue")).await.status(), 202);
    // Once its runs have ended, the conversation takes a rejecting run again.
    let list: Value =
        get(&app, &token, &format!("/v1/projects/{project}/runs")).await.json().await.unwrap();
    for run in list["data"].as_array().unwrap() {
        let res = app
            .client
            .post(app.url(&format!("/v1/runs/{}/cancel", run["id"].as_str().unwrap())))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    assert_eq!(wait(&app, &token, first["id"].as_str().unwrap()).await["status"], "cancelled");
    assert_eq!(start(&app, &token, &project, body("reject")).await.status(), 202);
}

#[tokio::test]
async fn by_default_a_second_run_waits_until_the_first_has_ended() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([
        Reply::text("first answer").delayed(Duration::from_millis(800)),
        Reply::text("second answer"),
    ]);
    let (user, token) = app.signed_in("fifo@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let conversation: Value = create(&app, &token, json!({})).await.json().await.unwrap();
    let mut ids = Vec::new();
    for task in ["one", "two"] {
        let res = start(
            &app,
            &token,
            &project,
            json!({"agent": "code", "input": {"task": task}, "conversation_id": conversation["id"]}),
        )
        .await;
        assert_eq!(res.status(), 202);
        ids.push(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let first = wait(&app, &token, &ids[0]).await;
    let second = wait(&app, &token, &ids[1]).await;
    assert_eq!(first["result"]["text"], "first answer");
    assert_eq!(second["result"]["text"], "second answer");
    let ended = time::OffsetDateTime::parse(
        first["timings"]["finished_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let started = time::OffsetDateTime::parse(
        second["timings"]["started_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        started >= ended,
        "the second run started at {started} before the first ended at {ended}"
    );
    // And it saw the first run's turn.
    assert!(fake.requests()[1].body.to_string().contains("first answer"));
}

async fn retention_sweep_at_start(database: TestDatabase) {
    let old = rows_at(&database, "old@example.com", 40).await;
    let recent = rows_at(&database, "recent@example.com", 0).await;
    // Idle for two days: past a one-day time to live, but a run of two days is kept for 30.
    let idle = rows_at(&database, "idle@example.com", 2).await;
    let app = spawn_app_with(database, |s| {
        s.runs.workers = 0;
        s.runs.conversation_ttl_hours = 24;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while exist(app.store.as_ref(), old).await != (false, false)
        || exist(app.store.as_ref(), idle).await.0
    {
        assert!(Instant::now() < deadline, "the sweep did not delete the old rows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(exist(app.store.as_ref(), recent).await, (true, true));
    assert_eq!(exist(app.store.as_ref(), idle).await, (false, true));
}

#[tokio::test]
async fn the_retention_sweep_deletes_idle_conversations_and_old_runs_on_sqlite() {
    retention_sweep_at_start(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn the_retention_sweep_deletes_idle_conversations_and_old_runs_on_postgres() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("AGENTD_TEST_DATABASE_URL is not set: PostgreSQL variant skipped");
        return;
    };
    retention_sweep_at_start(database).await;
}
