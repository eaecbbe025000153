//! A run's events over a WebSocket: the same events as the SSE stream, one JSON text frame each
//! (`RunEventBody`, with its `seq`), from `?after=` to the run's final event, then a normal
//! close. The events come from the durable log (see `feed`), so a client that reconnects with
//! the last `seq` it saw misses nothing.
//!
//! Browsers cannot set headers on a WebSocket, and tokens in URLs end up in logs; so a client
//! without credentials may connect and send `{"type": "auth", "token": "…"}` as its first
//! message, within [`AUTH_WINDOW`], or the connection is closed with 1008 (policy violation).
//! A browser `Origin` that is neither this server nor an allowed CORS origin is refused before
//! the upgrade: cookies travel with WebSocket handshakes, so otherwise any site could read a
//! signed-in user's runs (cross-site WebSocket hijacking).

use std::time::Duration;

use agentd_core::RunId;
use agentd_core::auth::{Principal, Scope};
use agentd_core::run::Run;
use agentd_protocol::conversation::{RunSocketClientMessage, RunSocketQuery};
use agentd_protocol::run::RunEventBody;
use agentd_protocol::{ErrorBody, ErrorEnvelope, ErrorType};
use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use super::runs::event_body;
use crate::auth::cookies;
use crate::auth::middleware::{client_of, origin_allowed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::feed::EventFeed;
use crate::request_id::RequestId;
use crate::state::AppState;

/// How long a client without credentials has to send its auth message.
pub(crate) const AUTH_WINDOW: Duration = Duration::from_secs(5);
/// How often the server pings (keeps proxies from closing an idle connection and finds dead
/// clients).
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// The largest message a client may send (only the auth message is expected).
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Whether `request` is a WebSocket handshake for a run's events that carries no credentials:
/// it is let through authentication, and authenticates with its first message.
pub(crate) fn defers_auth(request: &Request) -> bool {
    let headers = request.headers();
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    matches!(segments.as_slice(), ["", "v1", "runs", _, "ws"])
        && request.method() == axum::http::Method::GET
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && !carries_credentials(headers)
}

fn carries_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key("x-api-key")
        || cookies::get(headers, cookies::SESSION).is_some()
}

/// Whether a browser at the request's `Origin` may open this socket: no `Origin` (not a
/// browser), this server itself, or an allowed CORS origin (`*` only when no cookie carries the
/// credentials, as with CORS).
fn origin_ok(headers: &HeaderMap, allowed: &[String]) -> bool {
    if !headers.contains_key(header::ORIGIN) || origin_allowed(headers, allowed) {
        return true;
    }
    let by_cookie = !headers.contains_key(header::AUTHORIZATION)
        && !headers.contains_key("x-api-key")
        && cookies::get(headers, cookies::SESSION).is_some();
    !by_cookie && allowed.iter().any(|o| o == "*")
}

/// Follow a run's events over a WebSocket. Authenticate with the `Authorization` header (or
/// `X-API-Key`, or the session cookie) or, without any, by sending
/// `{"type": "auth", "token": "…"}` as the first message within 5 seconds (else the server
/// closes with 1008). Each event arrives as a text frame holding a `RunEventBody`; after the
/// run's `run.completed` the server closes with 1000. Reconnect with `?after=<last seq>` to
/// resume. The server pings every 15 s.
#[utoipa::path(
    get, path = "/v1/runs/{id}/ws", tag = "runs", operation_id = "run_socket",
    params(("id" = String, Path, description = "The run's id."), RunSocketQuery),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol. Server frames: `RunEventBody` as JSON text; an `ErrorEnvelope` before a 1008 close when first-message authentication fails. Client frames: `RunSocketClientMessage`.", body = RunEventBody),
        (status = 400, description = "Not a WebSocket handshake.", body = ErrorEnvelope),
        (status = 401, description = "Credentials were sent and refused, or a plain request without any.", body = ErrorEnvelope),
        (status = 403, description = "A browser `Origin` that is not allowed.", body = ErrorEnvelope),
        (status = 404, description = "No such run visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "A negative `after`, or an id that is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn run_socket(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    who: Handshake,
    ApiPath(id): ApiPath<RunId>,
    ApiQuery(query): ApiQuery<RunSocketQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if !origin_ok(&headers, &state.config.browser.cors_origins) {
        return Err(ApiError::Forbidden("this Origin may not open agentd WebSockets".into()));
    }
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "must not be negative"));
    }
    let run = match &principal {
        Some(Extension(p)) => Some(state.store.run(p.owner_filter(), id).await?),
        None => None,
    };
    let upgrade = upgrade.map_err(|_| {
        ApiError::BadRequest(
            "this endpoint speaks WebSocket: send a GET with Connection: Upgrade and \
             Upgrade: websocket"
                .into(),
        )
    })?;
    Ok(upgrade.max_message_size(MAX_CLIENT_MESSAGE).on_upgrade(move |socket| async move {
        serve(state, socket, id, run, after, who).await;
    }))
}

/// Who opened the socket, for first-message authentication and its error frames.
pub(crate) struct Handshake {
    client: std::net::IpAddr,
    request_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            client: client_of(&parts.extensions),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
        })
    }
}

async fn serve(
    state: AppState,
    mut socket: WebSocket,
    id: RunId,
    run: Option<Run>,
    after: i64,
    who: Handshake,
) {
    let run = match run {
        Some(run) => run,
        None => match authenticate(&state, &mut socket, id, &who).await {
            Ok(run) => run,
            Err(reason) => {
                close(&mut socket, close_code::POLICY, reason).await;
                return;
            }
        },
    };
    let mut feed = EventFeed::new(state.store.clone(), run.id, after, state.lifecycle.stopping());
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            batch = feed.next() => match batch {
                Ok(Some(events)) => {
                    for e in events {
                        if !send_json(&mut socket, &event_body(e)).await {
                            return;
                        }
                    }
                }
                Ok(None) => {
                    // Ended: the run's last event was sent, or the server is stopping (the
                    // client reconnects, maybe elsewhere, with `after`).
                    if state.lifecycle.stopping().is_cancelled() {
                        close(&mut socket, close_code::AWAY, "the server is stopping").await;
                    } else {
                        close(&mut socket, close_code::NORMAL, "the run ended").await;
                    }
                    return;
                }
                Err(err) => {
                    tracing::warn!(error = %err, run = %run.id, "reading events failed; closing");
                    close(&mut socket, close_code::ERROR, "reading events failed").await;
                    return;
                }
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pongs and anything else a client says are of no consequence.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Waits for the auth message, checks the token and that its principal may see the run.
async fn authenticate(
    state: &AppState,
    socket: &mut WebSocket,
    id: RunId,
    who: &Handshake,
) -> Result<Run, &'static str> {
    let first = tokio::time::timeout(AUTH_WINDOW, async {
        loop {
            match socket.recv().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return None,
            }
        }
    })
    .await
    .map_err(|_| "no auth message in time")?
    .ok_or("the first message must be the auth message")?;
    let Ok(RunSocketClientMessage::Auth { token }) = serde_json::from_str(first.as_str()) else {
        refuse(socket, who, ErrorType::Unauthorized, "expected {\"type\": \"auth\", \"token\": …}")
            .await;
        return Err("the first message must be the auth message");
    };
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", token.trim())) else {
        refuse(socket, who, ErrorType::Unauthorized, "invalid credentials").await;
        return Err("invalid credentials");
    };
    headers.insert(header::AUTHORIZATION, value);
    let principal = match state.auth.authenticate(&headers, who.client).await {
        Ok((p, _)) if p.require_scope(Scope::Read).is_ok() => p,
        Ok(_) => {
            refuse(socket, who, ErrorType::Forbidden, "this key lacks the read scope").await;
            return Err("forbidden");
        }
        Err(_) => {
            refuse(socket, who, ErrorType::Unauthorized, "invalid credentials").await;
            return Err("invalid credentials");
        }
    };
    match state.store.run(principal.owner_filter(), id).await {
        Ok(run) => Ok(run),
        Err(_) => {
            refuse(socket, who, ErrorType::NotFound, "run not found").await;
            Err("run not found")
        }
    }
}

/// Sends the error envelope as a frame (the close that follows says only "policy").
async fn refuse(socket: &mut WebSocket, who: &Handshake, error_type: ErrorType, message: &str) {
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            error_type,
            message: message.to_owned(),
            request_id: who.request_id.clone(),
            details: Vec::new(),
        },
    };
    send_json(socket, &envelope).await;
}

async fn send_json<T: serde::Serialize>(socket: &mut WebSocket, value: &T) -> bool {
    let Ok(text) = serde_json::to_string(value) else { return false };
    socket.send(Message::text(text)).await.is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    // The client may be gone already; nothing to do about it.
    let _ = socket.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origins_are_checked_like_cors() {
        let allowed = vec!["https://console.example".to_owned()];
        assert!(origin_ok(&headers(&[]), &allowed));
        assert!(origin_ok(&headers(&[("origin", "https://console.example")]), &allowed));
        assert!(origin_ok(
            &headers(&[("host", "api.example"), ("origin", "https://api.example")]),
            &allowed
        ));
        assert!(!origin_ok(&headers(&[("origin", "https://evil.example")]), &allowed));
        let any = vec!["*".to_owned()];
        assert!(origin_ok(&headers(&[("origin", "https://evil.example")]), &any));
        assert!(!origin_ok(
            &headers(&[("origin", "https://evil.example"), ("cookie", "agentd_session=t")]),
            &any
        ));
    }
}
