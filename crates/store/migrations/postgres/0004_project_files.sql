-- Project settings, workspace kinds, managed files, their content-addressed blobs and the
-- revision log. Paths use the "C" collation so that they sort by bytes, as on SQLite.

ALTER TABLE projects ADD COLUMN mode TEXT NOT NULL DEFAULT 'default';
ALTER TABLE projects ADD COLUMN tech_stack JSONB;
ALTER TABLE projects ADD COLUMN settings JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE projects ADD COLUMN workspace_kind TEXT NOT NULL DEFAULT 'managed'
    CHECK (workspace_kind IN ('managed', 'directory'));
ALTER TABLE projects ADD COLUMN workspace_root TEXT;
ALTER TABLE projects ADD CONSTRAINT projects_workspace_root
    CHECK ((workspace_kind = 'directory') = (workspace_root IS NOT NULL));

CREATE INDEX projects_owner_status ON projects (owner_id, status, id);

-- Every version of every file's content, once per project.
CREATE TABLE file_blobs (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL CHECK (size >= 0),
    content    BYTEA NOT NULL,
    PRIMARY KEY (project_id, sha256)
);

-- The current files of managed workspaces.
CREATE TABLE project_files (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path       TEXT COLLATE "C" NOT NULL,
    sha256     TEXT NOT NULL,
    size       BIGINT NOT NULL CHECK (size >= 0),
    language   TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, path),
    FOREIGN KEY (project_id, sha256) REFERENCES file_blobs (project_id, sha256)
        DEFERRABLE INITIALLY DEFERRED
);

-- The revision log: one row per file changed in a revision.
CREATE TABLE file_changes (
    project_id UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    revision   BIGINT NOT NULL CHECK (revision > 0),
    path       TEXT COLLATE "C" NOT NULL,
    old_sha256 TEXT,
    new_sha256 TEXT,
    author     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, revision, path),
    CHECK (old_sha256 IS NOT NULL OR new_sha256 IS NOT NULL)
);
