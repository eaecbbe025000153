//! The language models: their status, and the usage they recorded.

use agentd_core::usage::{UsageBucket, UsageQuery};
use agentd_llm::LlmStatus;
use agentd_protocol::ErrorEnvelope;
use agentd_protocol::usage::{UsageParams, UsageResponse, UsageRow};
use axum::extract::State;
use time::{Date, Duration, OffsetDateTime};

use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// The longest period one usage query covers.
const MAX_DAYS: i64 = 366;

/// Providers, their models, breaker states and last error types. Never keys.
#[utoipa::path(
    get, path = "/v1/llm/providers", tag = "llm", operation_id = "llm_providers",
    responses(
        (status = 200, description = "The status of every configured provider and model.", body = LlmStatus),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn providers(
    State(state): State<AppState>,
    Caller(_caller): Caller,
) -> ApiJson<LlmStatus> {
    ApiJson(state.llm.status())
}

fn parse_day(field: &str, text: &str) -> Result<Date, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, &format)
        .map_err(|_| ApiError::invalid(field, "must be a date such as 2026-01-31"))
}

fn day_text(day: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    day.format(&format).unwrap_or_default()
}

/// Nano-USD as an exact decimal string.
fn usd(nano: i64) -> String {
    let sign = if nano < 0 { "-" } else { "" };
    let n = nano.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

fn row(b: UsageBucket) -> UsageRow {
    UsageRow {
        day: day_text(b.day),
        provider: b.provider,
        model: b.model,
        agent_type: b.agent_type,
        project_id: b.project_id.map(|p| p.to_string()),
        attempts: b.attempts,
        failures: b.failures,
        cache_hits: b.cache_hits,
        input_tokens: b.input_tokens,
        cached_input_tokens: b.cached_input_tokens,
        cache_write_tokens: b.cache_write_tokens,
        output_tokens: b.output_tokens,
        reasoning_tokens: b.reasoning_tokens,
        cost_usd: usd(b.cost_nano_usd),
        unpriced_attempts: b.unpriced_attempts,
    }
}

/// Language-model usage per day, provider, model, agent type and project: the caller's own (an
/// admin's: everyone's).
#[utoipa::path(
    get, path = "/v1/usage", tag = "llm", operation_id = "usage",
    params(UsageParams),
    responses(
        (status = 200, description = "Aggregated usage in the period.", body = UsageResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 422, description = "A bad date, or a period longer than 366 days.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<ApiJson<UsageResponse>> {
    let to = match &params.to {
        Some(t) => parse_day("to", t)?,
        None => OffsetDateTime::now_utc().date(),
    };
    let from = match &params.from {
        Some(f) => parse_day("from", f)?,
        None => to - Duration::days(29),
    };
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    if (to - from).whole_days() >= MAX_DAYS {
        return Err(ApiError::invalid(
            "from",
            format!("the period may span at most {MAX_DAYS} days"),
        ));
    }
    let query = UsageQuery { principal: caller.owner_filter(), from, to };
    let buckets = state.store.usage_summary(&query).await?;
    Ok(ApiJson(UsageResponse {
        from: day_text(from),
        to: day_text(to),
        data: buckets.into_iter().map(row).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn nano_usd_prints_exactly() {
        assert_eq!(usd(3_700_000), "0.003700000");
        assert_eq!(usd(12_000_000_001), "12.000000001");
        assert_eq!(usd(0), "0.000000000");
    }
}
