//! The LLM usage ledger: appended per attempt, read as aggregates.

use agentd_core::store::UsageStore;
use agentd_core::usage::{NewUsage, UsageBucket, UsageQuery};
use agentd_core::{StoreError, StoreResult};
use time::Date;
use time::macros::format_description;
use uuid::Uuid;

use crate::error::map_err;
use crate::sql::{Arg, bind_args, impl_for_backends};
use crate::types::DbUuid;

const ENTITY: &str = "usage";

#[derive(sqlx::FromRow)]
struct BucketRow {
    day: String,
    provider: String,
    model: String,
    agent_type: String,
    project_id: Option<DbUuid>,
    attempts: i64,
    failures: i64,
    cache_hits: i64,
    input_tokens: i64,
    cached_input_tokens: i64,
    cache_write_tokens: i64,
    output_tokens: i64,
    reasoning_tokens: i64,
    cost_nano_usd: i64,
    unpriced_attempts: i64,
}

/// The stored form of a day: `YYYY-MM-DD`, which sorts and compares as text.
fn day_text(day: Date) -> String {
    day.to_string()
}

fn parse_day(text: &str) -> StoreResult<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|e| StoreError::Backend(Box::new(e)))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn column(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl TryFrom<BucketRow> for UsageBucket {
    type Error = StoreError;

    fn try_from(r: BucketRow) -> Result<Self, Self::Error> {
        Ok(Self {
            day: parse_day(&r.day)?,
            provider: r.provider,
            model: r.model,
            agent_type: r.agent_type,
            project_id: r.project_id.map(|p| p.0.into()),
            attempts: count(r.attempts),
            failures: count(r.failures),
            cache_hits: count(r.cache_hits),
            input_tokens: count(r.input_tokens),
            cached_input_tokens: count(r.cached_input_tokens),
            cache_write_tokens: count(r.cache_write_tokens),
            output_tokens: count(r.output_tokens),
            reasoning_tokens: count(r.reasoning_tokens),
            cost_nano_usd: r.cost_nano_usd,
            unpriced_attempts: count(r.unpriced_attempts),
        })
    }
}

/// One usage record (see [`usage_args`]).
pub(crate) const INSERT_USAGE_SQL: &str = "INSERT INTO llm_usage (id, at, day, run_id, \
    conversation_id, principal_id, agent_type, project_id, provider, model, input_tokens, \
    cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_nano_usd, \
    latency_ms, ttft_ms, outcome, cache_hit, streamed) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
    $19, $20, $21)";

/// The arguments of [`INSERT_USAGE_SQL`] for `usage`, with a new id.
pub(crate) fn usage_args(usage: NewUsage) -> Vec<Arg> {
    let at = agentd_core::clock::truncate_to_micros(usage.at);
    vec![
        Arg::id(Uuid::now_v7()),
        Arg::time(at),
        Arg::text(day_text(at.date())),
        Arg::Uuid(usage.run_id),
        Arg::Uuid(usage.conversation_id),
        Arg::id(usage.principal),
        Arg::Text(Some(usage.agent_type)),
        Arg::Uuid(usage.project_id.map(Into::into)),
        Arg::Text(Some(usage.provider)),
        Arg::Text(Some(usage.model)),
        Arg::int(column(usage.input_tokens)),
        Arg::int(column(usage.cached_input_tokens)),
        Arg::int(column(usage.cache_write_tokens)),
        Arg::int(column(usage.output_tokens)),
        Arg::int(column(usage.reasoning_tokens)),
        Arg::Int(usage.cost_nano_usd),
        Arg::int(column(usage.latency_ms)),
        Arg::Int(usage.ttft_ms.map(column)),
        Arg::Text(Some(usage.outcome)),
        Arg::Bool(usage.cache_hit),
        Arg::Bool(usage.streamed),
    ]
}

impl crate::PgStore {
    pub(crate) async fn insert_usage(&self, usage: NewUsage) -> StoreResult<()> {
        bind_args!(sqlx::query(INSERT_USAGE_SQL), usage_args(usage))
            .execute(self.writer())
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        Ok(())
    }
}

impl_for_backends!(UsageStore {
    async fn record_usage(&self, usage: NewUsage) -> StoreResult<()> {
        self.insert_usage(usage).await
    }

    async fn usage_summary(&self, query: &UsageQuery) -> StoreResult<Vec<UsageBucket>> {
        let rows = sqlx::query_as::<_, BucketRow>(
            "SELECT day, provider, model, agent_type, project_id, \
             COUNT(*) AS attempts, \
             CAST(SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS BIGINT) AS failures, \
             CAST(SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS BIGINT) AS cache_hits, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(cached_input_tokens) AS BIGINT) AS cached_input_tokens, \
             CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens, \
             CAST(COALESCE(SUM(cost_nano_usd), 0) AS BIGINT) AS cost_nano_usd, \
             COUNT(*) - COUNT(cost_nano_usd) AS unpriced_attempts \
             FROM llm_usage \
             WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR principal_id = $3) \
             GROUP BY day, provider, model, agent_type, project_id",
        )
        .bind(day_text(query.from))
        .bind(day_text(query.to))
        .bind(query.principal.map(DbUuid::from))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let mut buckets = rows.into_iter().map(UsageBucket::try_from).collect::<StoreResult<Vec<_>>>()?;
        // The databases order NULL projects differently; sort here so both agree.
        buckets.sort_by(|a, b| {
            (a.day, &a.provider, &a.model, &a.agent_type, a.project_id)
                .cmp(&(b.day, &b.provider, &b.model, &b.agent_type, b.project_id))
        });
        Ok(buckets)
    }
});
