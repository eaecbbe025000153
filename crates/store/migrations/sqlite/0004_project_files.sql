-- Project settings, workspace kinds, managed files, their content-addressed blobs and the
-- revision log. JSON is stored as text; paths compare by bytes (SQLite's BINARY collation).

ALTER TABLE projects ADD COLUMN mode TEXT NOT NULL DEFAULT 'default';
ALTER TABLE projects ADD COLUMN tech_stack TEXT;
ALTER TABLE projects ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN workspace_kind TEXT NOT NULL DEFAULT 'managed'
    CHECK (workspace_kind IN ('managed', 'directory'));
ALTER TABLE projects ADD COLUMN workspace_root TEXT
    CHECK ((workspace_kind = 'directory') = (workspace_root IS NOT NULL));

CREATE INDEX projects_owner_status ON projects (owner_id, status, id);

-- Every version of every file's content, once per project.
CREATE TABLE file_blobs (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    content    BLOB NOT NULL,
    PRIMARY KEY (project_id, sha256)
) STRICT;

-- The current files of managed workspaces.
CREATE TABLE project_files (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    language   TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, path),
    FOREIGN KEY (project_id, sha256) REFERENCES file_blobs (project_id, sha256)
        DEFERRABLE INITIALLY DEFERRED
) STRICT;

-- The revision log: one row per file changed in a revision.
CREATE TABLE file_changes (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    revision   INTEGER NOT NULL CHECK (revision > 0),
    path       TEXT NOT NULL,
    old_sha256 TEXT,
    new_sha256 TEXT,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, revision, path),
    CHECK (old_sha256 IS NOT NULL OR new_sha256 IS NOT NULL)
) STRICT;
