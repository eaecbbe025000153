//! The OpenAPI document: generated from the handlers' annotations, plus the error responses every
//! operation can produce, added in one place so that no operation can forget them.

use agentd_protocol::ErrorEnvelope;
use utoipa::OpenApi;
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};

/// The document's fixed parts.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "agentd",
        description = "A self-hosted backend for AI coding agents. Every error response carries \
            the envelope `{\"error\": {\"type\", \"message\", \"request_id\", \"details\"?}}`.",
    ),
    components(schemas(ErrorEnvelope)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "system", description = "What this server can do: the sandbox probe"),
        (name = "auth", description = "Sign-in, token refresh, sign-out, CSRF tokens"),
        (name = "users", description = "Users (managed by admins) and the caller"),
        (name = "api-keys", description = "API keys for services"),
        (name = "llm", description = "Language models: status and usage"),
        (name = "runs", description = "Agent runs: start, follow, cancel; agent types"),
        (name = "conversations", description = "Conversations that runs continue, and chat"),
        (name = "jobs", description = "Runs in the job shape of earlier clients"),
        (name = "approvals", description = "Human approval of risky steps, and standing grants"),
        (name = "projects", description = "Projects and their workspaces"),
        (name = "files", description = "A project's files, changes, diffs and reverts"),
    ),
)]
pub struct ApiDoc;

/// The two ways to authenticate: a bearer token (an access token or an API key) or `X-API-Key`.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or agk_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Adds the error responses any operation may give to every operation that does not already list
/// them. Runs on the finished document, once the routes' paths are in it.
pub(crate) fn add_common_errors(openapi: &mut utoipa::openapi::OpenApi) {
    let common: &[(&str, &str)] = &[
        ("429", "Rate limit exceeded (`rate_limit_exceeded`); see `Retry-After`."),
        ("500", "agentd failed (`internal_error`); the message carries no internals."),
        ("503", "agentd or a dependency is unavailable (`service_unavailable`)."),
        ("504", "The request took longer than the per-request deadline (`timeout`)."),
    ];
    let with_body: &[(&str, &str)] = &[
        ("408", "The request body took too long to arrive (`timeout`)."),
        ("413", "The request body is larger than allowed (`payload_too_large`)."),
        ("415", "The body is not `application/json` (`unsupported_media_type`)."),
        (
            "422",
            "The body failed validation (`validation_error`); `details` lists each \
            problem with the path of the field.",
        ),
    ];
    for item in openapi.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
            .into_iter()
            .flatten()
        {
            let body = op.request_body.as_ref();
            let json_body = body.is_some_and(
                |b| matches!(b, RefOr::T(b) if b.content.contains_key("application/json")),
            );
            let extra = common.iter().chain(if body.is_some() { with_body } else { &[] });
            for (status, description) in extra {
                // Only a JSON body can be of the wrong media type.
                if *status == "415" && !json_body {
                    continue;
                }
                op.responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorEnvelope",
                    ))))
                    .build(),
            )
            .build(),
    )
}
