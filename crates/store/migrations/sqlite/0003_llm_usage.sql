-- The usage ledger: one row per attempt to call a language model. Append-only. `day` is the UTC
-- date of `at` as YYYY-MM-DD, so that both databases group and filter by the same text.

CREATE TABLE llm_usage (
    id                  TEXT PRIMARY KEY NOT NULL,
    at                  INTEGER NOT NULL,
    day                 TEXT NOT NULL,
    run_id              TEXT,
    conversation_id     TEXT,
    principal_id        TEXT NOT NULL,
    agent_type          TEXT NOT NULL,
    project_id          TEXT,
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    input_tokens        INTEGER NOT NULL CHECK (input_tokens >= 0),
    cached_input_tokens INTEGER NOT NULL CHECK (cached_input_tokens >= 0),
    cache_write_tokens  INTEGER NOT NULL CHECK (cache_write_tokens >= 0),
    output_tokens       INTEGER NOT NULL CHECK (output_tokens >= 0),
    reasoning_tokens    INTEGER NOT NULL CHECK (reasoning_tokens >= 0),
    cost_nano_usd       INTEGER,
    latency_ms          INTEGER NOT NULL,
    ttft_ms             INTEGER,
    outcome             TEXT NOT NULL,
    cache_hit           INTEGER NOT NULL CHECK (cache_hit IN (0, 1)),
    streamed            INTEGER NOT NULL CHECK (streamed IN (0, 1))
) STRICT;

CREATE INDEX llm_usage_principal_day ON llm_usage (principal_id, day);
CREATE INDEX llm_usage_day ON llm_usage (day);
