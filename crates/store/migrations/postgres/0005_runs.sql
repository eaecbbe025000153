-- Conversations, runs (the queue), their journal of steps, their event logs, blobs for large
-- outputs, and locks that let one node do periodic maintenance.

CREATE TABLE conversations (
    id          UUID PRIMARY KEY,
    owner_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  UUID REFERENCES projects (id) ON DELETE SET NULL,
    task_id     TEXT,
    title       TEXT,
    message_seq BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX conversations_owner_id ON conversations (owner_id, id);
CREATE INDEX conversations_updated_at ON conversations (updated_at);

CREATE TABLE conversation_messages (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         TEXT NOT NULL,
    run_id          UUID,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE runs (
    id                  UUID PRIMARY KEY,
    owner_id            UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id          UUID REFERENCES projects (id) ON DELETE CASCADE,
    conversation_id     UUID REFERENCES conversations (id) ON DELETE SET NULL,
    agent               TEXT NOT NULL,
    input               JSONB NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting_approval',
                            'succeeded', 'failed', 'cancelled', 'timed_out')),
    progress            BIGINT NOT NULL DEFAULT 0,
    current_step        TEXT,
    attempt             BIGINT NOT NULL DEFAULT 0,
    failures            BIGINT NOT NULL DEFAULT 0,
    max_attempts        BIGINT NOT NULL,
    usage               JSONB NOT NULL,
    result              JSONB,
    error_type          TEXT,
    error_message       TEXT,
    idempotency_key     TEXT,
    active_ms           BIGINT NOT NULL DEFAULT 0,
    scheduled_at        TIMESTAMPTZ NOT NULL,
    lease_owner         TEXT,
    lease_expires_at    TIMESTAMPTZ,
    cancel_requested_at TIMESTAMPTZ,
    event_seq           BIGINT NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- What workers claim: queued runs, and running ones no worker holds (resumed after a decision).
CREATE INDEX runs_claimable ON runs (scheduled_at, id)
    WHERE lease_owner IS NULL AND status IN ('queued', 'running');
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE lease_owner IS NOT NULL;
CREATE UNIQUE INDEX runs_idempotency_key ON runs (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- At most one active run per conversation.
CREATE UNIQUE INDEX runs_one_active_per_conversation ON runs (conversation_id)
    WHERE conversation_id IS NOT NULL AND status IN ('running', 'waiting_approval');
CREATE INDEX runs_owner_id ON runs (owner_id, id);
CREATE INDEX runs_project_id ON runs (project_id, id);
CREATE INDEX runs_conversation_id ON runs (conversation_id, id);
CREATE INDEX runs_finished_at ON runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE run_steps (
    run_id       UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('llm', 'tool', 'compaction')),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('started', 'completed', 'unknown_outcome')),
    side_effects BOOLEAN NOT NULL,
    input        JSONB NOT NULL,
    output       JSONB,
    attempt      BIGINT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_events (
    run_id     UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    data       JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_blobs (
    id         UUID PRIMARY KEY,
    run_id     UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    content    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX run_blobs_run_id ON run_blobs (run_id);

CREATE TABLE maintenance_locks (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
