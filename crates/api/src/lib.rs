//! The agentd HTTP API.
//!
//! [`router`] builds the whole HTTP surface from an [`AppState`]: routes, middleware, the OpenAPI
//! document and Swagger UI. It is a pure function, so tests can drive it in-process; the server
//! crate owns sockets, timeouts at the connection level and shutdown. Handlers are thin: extract,
//! call one core operation, map the result to a protocol type. Every error leaves as the one
//! envelope (see `error` and `envelope`).

mod access_log;
pub mod auth;
pub mod browser;
pub mod client;
mod debug;
mod envelope;
pub mod error;
pub mod extract;
mod feed;
pub mod health;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
mod routes;
pub mod state;

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ApiResult};
pub use request_id::REQUEST_ID_HEADER;
pub use state::{ApiConfig, AppState, Lifecycle};

/// `/v1` routes that need no principal. Every other `/v1` route requires one, by construction:
/// a new route is protected unless it is added here.
const PUBLIC_V1: &[&str] =
    &["/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/csrf"];

/// The routes the OpenAPI document describes: ordinary ones (with a deadline) and streaming ones
/// (without), and the document.
struct Documented {
    ordinary: Router<AppState>,
    streaming: Router<AppState>,
    spec: utoipa::openapi::OpenApi,
}

fn documented_routes() -> Documented {
    let (ordinary, mut spec) = ordinary_routes().split_for_parts();
    let (streaming, streaming_spec) = streaming_routes().split_for_parts();
    spec.merge(streaming_spec);
    openapi::add_common_errors(&mut spec);
    Documented { ordinary, streaming, spec }
}

/// Ordinary request-response routes.
fn ordinary_routes() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(health::capabilities))
        .routes(routes!(routes::auth::login))
        .routes(routes!(routes::auth::refresh))
        .routes(routes!(routes::auth::logout))
        .routes(routes!(routes::auth::csrf))
        .routes(routes!(routes::users::me))
        .routes(routes!(routes::users::create_user, routes::users::list_users))
        .routes(routes!(routes::users::get_user, routes::users::update_user))
        .routes(routes!(routes::api_keys::create_api_key, routes::api_keys::list_api_keys))
        .routes(routes!(routes::api_keys::revoke_api_key))
        .routes(routes!(routes::llm::providers))
        .routes(routes!(routes::llm::usage))
        .routes(routes!(routes::runs::list_agents))
        .routes(routes!(routes::runs::create_run, routes::runs::list_runs))
        .routes(routes!(routes::runs::get_run))
        .routes(routes!(routes::runs::cancel_run))
        .routes(routes!(routes::jobs::run_agent))
        .routes(routes!(routes::jobs::get_job))
        .routes(routes!(routes::jobs::list_jobs))
        .routes(routes!(
            routes::conversations::create_conversation,
            routes::conversations::list_conversations
        ))
        .routes(routes!(
            routes::conversations::get_conversation,
            routes::conversations::delete_conversation
        ))
        .routes(routes!(routes::checks::start_checks))
        .routes(routes!(routes::checks::run_blob))
        .routes(routes!(routes::approvals::list_approvals))
        .routes(routes!(routes::approvals::get_approval, routes::approvals::decide_approval))
        .routes(routes!(routes::approvals::execute_pending))
        .routes(routes!(routes::approvals::list_grants))
        .routes(routes!(routes::approvals::delete_grant))
        .routes(routes!(routes::projects::create_project, routes::projects::list_projects))
        .routes(routes!(
            routes::projects::get_project,
            routes::projects::update_project,
            routes::projects::delete_project
        ))
        .routes(routes!(routes::files::list_files, routes::files::create_file))
        .routes(routes!(routes::files::list_changes))
        .routes(routes!(routes::files::diff_project))
        .routes(routes!(routes::files::revert_project));
    with_path_tail(
        router,
        FILE_ROUTE,
        routes!(routes::files::read_file, routes::files::write_file, routes::files::delete_file),
    )
}

/// Routes that stream or wait for long: documented like the others, but exempt from the
/// per-request deadline.
fn streaming_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::runs::wait_run))
        .routes(routes!(routes::runs::run_events))
        .routes(routes!(routes::run_socket::run_socket))
        .routes(routes!(routes::chat::chat))
}

/// The route of a single file: its path is the rest of the URL, slashes included.
const FILE_ROUTE: &str = "/v1/projects/{id}/files/{*path}";

/// Adds operations whose last path parameter spans several segments. OpenAPI cannot say so, so
/// the document shows them at their annotated path (`…/{path}`), while the router matches the
/// whole tail at `route` (`…/{*path}`).
fn with_path_tail(
    mut router: OpenApiRouter<AppState>,
    route: &str,
    (schemas, paths, method_router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let spec = router.get_openapi_mut();
    spec.paths.paths.extend(paths.paths);
    spec.components.get_or_insert_with(Default::default).schemas.extend(schemas);
    router.route(route, method_router)
}

/// The OpenAPI document, as served at `/openapi.json`.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().spec
}

/// Whether a request starts expensive work (a run, a chat, checks): those are limited per
/// principal by `AGENTD_RATE_LIMIT_RUNS_PER_MINUTE`.
fn is_expensive(method: &axum::http::Method, path: &str) -> bool {
    if method != axum::http::Method::POST {
        return false;
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["", "v1", "projects", _, "runs" | "checks"]
            | ["", "v1", "run-agent"]
            | ["", "v1", "agent", "chat"]
    )
}

/// Middleware: every `/v1` route outside [`PUBLIC_V1`] needs a principal, and expensive ones
/// are rate-limited per principal.
async fn authenticate_v1(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/v1/") || PUBLIC_V1.contains(&path) {
        return next.run(request).await;
    }
    // A WebSocket handshake without credentials authenticates with its first message.
    if routes::run_socket::defers_auth(&request) {
        return next.run(request).await;
    }
    let expensive = is_expensive(request.method(), path);
    auth::middleware::require_principal(State(state), request, next, expensive).await
}

/// The complete HTTP application.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let browser = std::sync::Arc::new(config.browser.clone());
    let proxies = std::sync::Arc::new(config.trusted_proxies.clone());
    let Documented { ordinary, streaming, spec } = documented_routes();
    let mut ordinary = ordinary.merge(SwaggerUi::new("/docs").url("/openapi.json", spec));
    if config.debug_routes {
        ordinary = ordinary.merge(debug::routes());
    }
    // Ordinary routes get a deadline; streaming routes (added beside them) must not, or every
    // long-lived stream would be cut at the deadline.
    let ordinary = ordinary
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, config.request_timeout));

    let cors = browser::cors_layer(&config.browser);
    Router::new()
        .merge(ordinary)
        .merge(streaming)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Route layer: runs only for matched routes, where the route template is known.
        .route_layer(from_fn(access_log::record_route))
        // The principal of every protected /v1 route.
        .layer(from_fn_with_state(state.clone(), authenticate_v1))
        .layer(
            // Outermost first. Each layer sees what the ones below it produce.
            ServiceBuilder::new()
                // Assign the request id before anything can log or fail, echo it on every response.
                .layer(from_fn(request_id::assign_request_id))
                // Mark credential headers sensitive so no debug output of a request shows them.
                .layer(SetSensitiveRequestHeadersLayer::new([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::COOKIE,
                    axum::http::HeaderName::from_static("x-api-key"),
                ]))
                // The request span and the one completion line; sees the final status.
                .layer(from_fn(access_log::log_request))
                // Security headers on every response, errors included.
                .layer(from_fn_with_state(browser.clone(), browser::security_headers))
                // Every error response below this point becomes the envelope, and is logged once.
                .layer(from_fn(envelope::render_errors))
                // A panicking handler becomes a 500 (rendered above); the server keeps serving.
                .layer(CatchPanicLayer::custom(panic_response))
                // CORS answers preflights before anything can refuse them, and decorates every
                // response below, 429s and 401s included.
                .option_layer(cors)
                // Who the client is (X-Forwarded-For only from trusted proxies).
                .layer(from_fn_with_state(proxies, client::resolve_client))
                // Requests for hosts not served here stop before doing any work.
                .layer(from_fn_with_state(browser, browser::check_host))
                // The per-address rate limit: before authentication, so floods cost little.
                .layer(from_fn_with_state(state.limiter.clone(), rate_limit::limit_addresses))
                // Bodies over the limit: 413 at once when Content-Length says so, or as soon as a
                // chunked body passes the limit while it is read.
                .layer(RequestBodyLimitLayer::new(config.body_limit))
                // A body that stops arriving is a 408, not a worker held forever.
                .layer(RequestBodyTimeoutLayer::new(config.request_timeout))
                .layer(DefaultBodyLimit::max(config.body_limit)),
        )
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The panic message goes to the log (via the envelope layer), never to the client.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a handler panicked".to_owned());
    ApiError::Internal(format!("handler panicked: {message}").into()).into_response()
}
