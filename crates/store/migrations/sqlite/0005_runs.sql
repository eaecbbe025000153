-- Conversations, runs (the queue), their journal of steps, their event logs, blobs for large
-- outputs, and locks that let one node do periodic maintenance.

CREATE TABLE conversations (
    id          TEXT PRIMARY KEY NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  TEXT REFERENCES projects (id) ON DELETE SET NULL,
    task_id     TEXT,
    title       TEXT,
    message_seq INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX conversations_owner_id ON conversations (owner_id, id);
CREATE INDEX conversations_updated_at ON conversations (updated_at);

CREATE TABLE conversation_messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         TEXT NOT NULL,
    run_id          TEXT,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) STRICT;

CREATE TABLE runs (
    id                  TEXT PRIMARY KEY NOT NULL,
    owner_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id          TEXT REFERENCES projects (id) ON DELETE CASCADE,
    conversation_id     TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    agent               TEXT NOT NULL,
    input               TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting_approval',
                            'succeeded', 'failed', 'cancelled', 'timed_out')),
    progress            INTEGER NOT NULL DEFAULT 0,
    current_step        TEXT,
    attempt             INTEGER NOT NULL DEFAULT 0,
    failures            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    usage               TEXT NOT NULL,
    result              TEXT,
    error_type          TEXT,
    error_message       TEXT,
    idempotency_key     TEXT,
    active_ms           INTEGER NOT NULL DEFAULT 0,
    scheduled_at        INTEGER NOT NULL,
    lease_owner         TEXT,
    lease_expires_at    INTEGER,
    cancel_requested_at INTEGER,
    event_seq           INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    updated_at          INTEGER NOT NULL
) STRICT;

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
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('llm', 'tool', 'compaction')),
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('started', 'completed', 'unknown_outcome')),
    side_effects INTEGER NOT NULL CHECK (side_effects IN (0, 1)),
    input        TEXT NOT NULL,
    output       TEXT,
    attempt      INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    completed_at INTEGER,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE TABLE run_events (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE TABLE run_blobs (
    id         TEXT PRIMARY KEY NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    content    BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX run_blobs_run_id ON run_blobs (run_id);

CREATE TABLE maintenance_locks (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
