-- Approvals of risky tool calls, and the grants that spare asking again.

CREATE TABLE approvals (
    id              UUID PRIMARY KEY,
    run_id          UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    owner_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id      UUID REFERENCES projects (id) ON DELETE CASCADE,
    call_id         TEXT NOT NULL,
    tool            TEXT NOT NULL,
    arguments       JSONB NOT NULL,
    action_hash     TEXT NOT NULL,
    risk            TEXT NOT NULL CHECK (risk IN ('low', 'medium', 'high')),
    reason          TEXT NOT NULL,
    grant_key       TEXT,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired',
                        'cancelled')),
    decision_reason TEXT,
    scope           TEXT CHECK (scope IN ('once', 'run', 'project')),
    decided_by      UUID REFERENCES users (id) ON DELETE SET NULL,
    decided_at      TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX approvals_call ON approvals (run_id, call_id);
CREATE INDEX approvals_owner_status ON approvals (owner_id, status, id);
CREATE INDEX approvals_pending_expiry ON approvals (expires_at) WHERE status = 'pending';

CREATE TABLE grants (
    id         UUID PRIMARY KEY,
    owner_id   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id UUID REFERENCES projects (id) ON DELETE CASCADE,
    run_id     UUID REFERENCES runs (id) ON DELETE CASCADE,
    tool       TEXT NOT NULL,
    key        TEXT NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX grants_lookup ON grants (owner_id, tool, key);
CREATE INDEX grants_owner_id ON grants (owner_id, id);
