//! The job endpoints of earlier clients: `POST /v1/run-agent`, `GET /v1/jobs/{id}`,
//! `GET /v1/jobs/{project_id}/list`, mapped onto runs.

use agentd_core::user::Role;
use agentd_test_support::llm::Reply;
use agentd_test_support::{TestApp, TestDatabase, spawn_app_with, spawn_app_with_llm};
use serde_json::{Value, json};

use crate::conversations::wait;
use crate::expect_envelope;

async fn run_agent(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/v1/run-agent")).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_job_started_the_old_way_runs_and_reads_back_in_the_job_shape() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.always(Reply::text("report ready"));
    let (user, token) = app.signed_in("job@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();

    let res = run_agent(
        &app,
        &token,
        json!({"project_id": project, "agent_type": "research",
               "input_context": {"task": "summarise the project", "audience": "new hires"}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["status"], "queued");
    assert_eq!(started["estimated_time"], Value::Null, "nothing to estimate from yet");
    let job = started["job_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/jobs/{job}"));

    // A job is a run: the runs API follows it.
    assert_eq!(wait(&app, &token, &job).await["status"], "succeeded");
    let read: Value = get(&app, &token, &location).await.json().await.unwrap();
    assert_eq!(read["job_id"], job.as_str());
    assert_eq!(read["project_id"], project.as_str());
    assert_eq!(read["agent_type"], "research");
    assert_eq!(read["status"], "succeeded");
    assert_eq!(read["progress"], 100);
    assert_eq!(read["result"]["text"], "report ready");
    assert_eq!(read["error"], Value::Null);
    assert!(read["started_at"].is_string() && read["finished_at"].is_string(), "{read}");
    assert!(read["active_seconds"].as_f64().is_some());
    // The task and the context reached the model.
    let sent = fake.requests()[0].body.to_string();
    assert!(sent.contains("summarise the project") && sent.contains("new hires"), "{sent}");

    // The next job of this kind is estimated from the first; a plain string is a task too.
    let next: Value = run_agent(
        &app,
        &token,
        json!({"project_id": project, "agent_type": "research", "input_context": "again"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(next["estimated_time"].as_f64().is_some_and(|t| t > 0.0), "{next}");
    assert_eq!(wait(&app, &token, next["job_id"].as_str().unwrap()).await["status"], "succeeded");

    let list: Value =
        get(&app, &token, &format!("/v1/jobs/{project}/list")).await.json().await.unwrap();
    let ids: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [next["job_id"].as_str().unwrap(), job.as_str()], "newest first");

    // Others see none of it.
    let (_, other) = app.signed_in("job-other@example.com", Role::Member).await;
    expect_envelope(get(&app, &other, &location).await, 404, "not_found").await;
    expect_envelope(get(&app, &other, &format!("/v1/jobs/{project}/list")).await, 404, "not_found")
        .await;
    let res = run_agent(
        &app,
        &other,
        json!({"project_id": project, "agent_type": "research", "input_context": "x"}),
    )
    .await;
    expect_envelope(res, 404, "not_found").await;
}

#[tokio::test]
async fn bad_jobs_are_refused_and_lists_take_1_to_100_defaulting_to_50() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (user, token) = app.signed_in("jobs@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    for body in [
        json!({"project_id": project, "agent_type": "nope", "input_context": "x"}),
        json!({"project_id": project, "agent_type": "code", "input_context": 3}),
        json!({"project_id": project, "agent_type": "code", "input_context": {"task": 3}}),
        json!({"project_id": project, "agent_type": "code", "input_context": ""}),
        json!({"project_id": "not-an-id", "agent_type": "code", "input_context": "x"}),
        json!({"project_id": project, "agent_type": "code"}),
    ] {
        let res = run_agent(&app, &token, body.clone()).await;
        expect_envelope(res, 422, "validation_error").await;
    }
    for _ in 0..51 {
        let res = run_agent(
            &app,
            &token,
            json!({"project_id": project, "agent_type": "code", "input_context": "x"}),
        )
        .await;
        assert_eq!(res.status(), 202);
    }
    let (app, token) = (&app, token.as_str());
    let list = |q: &str| {
        let path = format!("/v1/jobs/{project}/list{q}");
        async move { get(app, token, &path).await }
    };
    let page: Value = list("").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 50);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page: Value = list(&format!("?limit=100&cursor={cursor}")).await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let page: Value = list("?limit=100").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 51);
    for bad in ["?limit=0", "?limit=101", "?limit=x"] {
        expect_envelope(list(bad).await, 422, "validation_error").await;
    }
}
