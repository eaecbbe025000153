//! A run's events over a WebSocket: header and first-message authentication, the `Origin`
//! check, events to the end, resuming with `after`.

use std::time::Duration;

use agentd_core::user::Role;
use agentd_test_support::llm::Reply;
use agentd_test_support::{TestApp, spawn_app_with_llm};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::conversations::wait;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start_run(app: &TestApp, token: &str, project: &str) -> String {
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/runs")))
        .bearer_auth(token)
        .json(&json!({"agent": "code", "input": {"task": "t"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn connect(
    app: &TestApp,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<Socket, tungstenite::Error> {
    let mut request = format!("ws://{}{path}", app.addr).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

/// Reads frames until the server closes: the events' JSON and the close code.
async fn read_to_close(socket: &mut Socket) -> (Vec<Value>, Option<u16>) {
    let mut frames = Vec::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Text(text) => frames.push(serde_json::from_str(text.as_str()).unwrap()),
                Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    };
    let code =
        tokio::time::timeout(Duration::from_secs(20), read).await.expect("the socket closed");
    (frames, code)
}

fn seqs(frames: &[Value]) -> Vec<i64> {
    frames.iter().map(|f| f["seq"].as_i64().unwrap()).collect()
}

/// The HTTP status and body of a refused handshake.
fn refused(result: Result<Socket, tungstenite::Error>) -> (u16, Value) {
    match result {
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (response.status().as_u16(), serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the handshake succeeded"),
    }
}

#[tokio::test]
async fn a_socket_authenticated_by_header_sees_the_run_to_its_end_and_resumes_after_a_seq() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.push([
        Reply::tool_call("list_files", json!({})).delayed(Duration::from_millis(300)),
        Reply::stream_text(&["a", "b"]).delayed(Duration::from_millis(300)),
    ]);
    let (user, token) = app.signed_in("ws@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run = start_run(&app, &token, &project).await;
    let bearer = format!("Bearer {token}");
    let mut socket =
        connect(&app, &format!("/v1/runs/{run}/ws"), &[("authorization", &bearer)]).await.unwrap();
    let (frames, code) = read_to_close(&mut socket).await;
    assert_eq!(code, Some(1000));
    let n = i64::try_from(frames.len()).unwrap();
    assert!(n > 5, "{frames:?}");
    assert_eq!(seqs(&frames), (1..=n).collect::<Vec<_>>(), "gaps or repeats");
    assert_eq!(frames.last().unwrap()["type"], "run.completed");
    assert_eq!(frames[0]["type"], "run.status");
    assert!(frames[0]["created_at"].is_string() && frames[0]["data"].is_object());

    // The same events as the SSE stream and the JSON pages.
    let page: Value = app
        .client
        .get(app.url(&format!("/v1/runs/{run}/events?limit=1000")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap(), &frames);

    // Resuming after seq 3 gives exactly the rest.
    let mut socket =
        connect(&app, &format!("/v1/runs/{run}/ws?after=3"), &[("authorization", &bearer)])
            .await
            .unwrap();
    let (rest, code) = read_to_close(&mut socket).await;
    assert_eq!(code, Some(1000));
    assert_eq!(seqs(&rest), (4..=n).collect::<Vec<_>>());

    // A plain request is told to upgrade.
    let res = app
        .client
        .get(app.url(&format!("/v1/runs/{run}/ws")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    crate::expect_envelope(res, 400, "bad_request").await;
}

#[tokio::test]
async fn a_socket_without_headers_authenticates_with_its_first_message() {
    let (app, fake) = spawn_app_with_llm(|_| {}).await;
    fake.always(Reply::text("done").delayed(Duration::from_millis(300)));
    let (user, token) = app.signed_in("ws-first@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run = start_run(&app, &token, &project).await;
    let path = format!("/v1/runs/{run}/ws");

    let mut socket = connect(&app, &path, &[]).await.unwrap();
    let auth = json!({"type": "auth", "token": token}).to_string();
    socket.send(Message::text(auth)).await.unwrap();
    let (frames, code) = read_to_close(&mut socket).await;
    assert_eq!(code, Some(1000));
    assert_eq!(frames.last().unwrap()["type"], "run.completed");
    assert_eq!(seqs(&frames), (1..=i64::try_from(frames.len()).unwrap()).collect::<Vec<_>>());

    // A bad token: an error frame, then a policy-violation close.
    let mut socket = connect(&app, &path, &[]).await.unwrap();
    socket
        .send(Message::text(json!({"type": "auth", "token": "forged"}).to_string()))
        .await
        .unwrap();
    let (frames, code) = read_to_close(&mut socket).await;
    assert_eq!(code, Some(1008));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["error"]["type"], "unauthorized");

    // Another tenant's token: the run is not found.
    let (_, other) = app.signed_in("ws-other@example.com", Role::Member).await;
    let mut socket = connect(&app, &path, &[]).await.unwrap();
    socket.send(Message::text(json!({"type": "auth", "token": other}).to_string())).await.unwrap();
    let (frames, code) = read_to_close(&mut socket).await;
    assert_eq!(code, Some(1008));
    assert_eq!(frames[0]["error"]["type"], "not_found");

    // Something else first, or nothing at all: closed for policy.
    let mut socket = connect(&app, &path, &[]).await.unwrap();
    socket.send(Message::text("hello")).await.unwrap();
    assert_eq!(read_to_close(&mut socket).await.1, Some(1008));
    let mut socket = connect(&app, &path, &[]).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(read_to_close(&mut socket).await.1, Some(1008));
    assert!(started.elapsed() >= Duration::from_secs(4), "closed after {:?}", started.elapsed());

    // With a header, the tenant rule applies before the upgrade.
    let bearer = format!("Bearer {other}");
    let (status, body) = refused(connect(&app, &path, &[("authorization", &bearer)]).await);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "not_found");
}

#[tokio::test]
async fn a_browser_origin_that_is_not_allowed_is_refused_before_the_upgrade() {
    let (app, fake) = spawn_app_with_llm(|s| {
        s.http.cors_origins = vec!["https://console.example".into()];
    })
    .await;
    fake.always(Reply::text("done"));
    let (user, token) = app.signed_in("ws-origin@example.com", Role::Member).await;
    let project = app.project(&user).await.id.to_string();
    let run = start_run(&app, &token, &project).await;
    wait(&app, &token, &run).await;
    let path = format!("/v1/runs/{run}/ws");
    let bearer = format!("Bearer {token}");

    for origin in ["https://evil.example", "null"] {
        let (status, body) =
            refused(connect(&app, &path, &[("authorization", &bearer), ("origin", origin)]).await);
        assert_eq!(status, 403, "{origin}");
        assert_eq!(body["error"]["type"], "forbidden");
        assert!(body["error"]["request_id"].is_string());
        // The first-message path is refused the same way.
        let (status, _) = refused(connect(&app, &path, &[("origin", origin)]).await);
        assert_eq!(status, 403);
    }
    let mut socket =
        connect(&app, &path, &[("authorization", &bearer), ("origin", "https://console.example")])
            .await
            .unwrap();
    let (frames, code) = read_to_close(&mut socket).await;
    assert_eq!(code, Some(1000));
    assert_eq!(frames.last().unwrap()["type"], "run.completed");
    // This server's own origin is allowed too.
    let own = format!("http://{}", app.addr);
    let socket = connect(&app, &path, &[("authorization", &bearer), ("origin", &own)]).await;
    assert!(socket.is_ok());
}
