-- The usage ledger: one row per attempt to call a language model. Append-only. `day` is the UTC
-- date of `at` as YYYY-MM-DD, so that both databases group and filter by the same text.

CREATE TABLE llm_usage (
    id                  UUID PRIMARY KEY,
    at                  TIMESTAMPTZ NOT NULL,
    day                 TEXT NOT NULL,
    run_id              UUID,
    conversation_id     UUID,
    principal_id        UUID NOT NULL,
    agent_type          TEXT NOT NULL,
    project_id          UUID,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    input_tokens        BIGINT NOT NULL CHECK (input_tokens >= 0),
    cached_input_tokens BIGINT NOT NULL CHECK (cached_input_tokens >= 0),
    cache_write_tokens  BIGINT NOT NULL CHECK (cache_write_tokens >= 0),
    output_tokens       BIGINT NOT NULL CHECK (output_tokens >= 0),
    reasoning_tokens    BIGINT NOT NULL CHECK (reasoning_tokens >= 0),
    cost_nano_usd       BIGINT,
    latency_ms          BIGINT NOT NULL,
    ttft_ms             BIGINT,
    outcome             TEXT NOT NULL,
    cache_hit           BOOLEAN NOT NULL,
    streamed            BOOLEAN NOT NULL
);

CREATE INDEX llm_usage_principal_day ON llm_usage (principal_id, day);
CREATE INDEX llm_usage_day ON llm_usage (day);
