//! Projects, read through their owner.

use agentd_core::page::{Page, PageRequest};
use agentd_core::project::{
    NewProject, Project, ProjectFilter, ProjectPatch, ProjectStatus, WorkspaceKind,
};
use agentd_core::store::ProjectStore;
use agentd_core::{ProjectId, StoreError, StoreResult, UserId};
use serde_json::{Map, Value};
use sqlx::types::Json;

use crate::error::map_err;
use crate::sql::{impl_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid};

const ENTITY: &str = "project";

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: DbUuid,
    owner_id: DbUuid,
    title: String,
    description: Option<String>,
    mode: String,
    tech_stack: Option<Json<Value>>,
    settings: Json<Map<String, Value>>,
    status: String,
    workspace_kind: String,
    workspace_root: Option<String>,
    revision: i64,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;

    fn try_from(r: ProjectRow) -> Result<Self, Self::Error> {
        let workspace = match (r.workspace_kind.as_str(), r.workspace_root) {
            ("managed", None) => WorkspaceKind::Managed,
            ("directory", Some(root)) => WorkspaceKind::Directory { root },
            (kind, _) => {
                return Err(StoreError::Backend(
                    format!("project {} has an inconsistent workspace kind {kind:?}", r.id.0)
                        .into(),
                ));
            }
        };
        Ok(Self {
            id: r.id.0.into(),
            owner_id: r.owner_id.0.into(),
            title: r.title,
            description: r.description,
            mode: r.mode,
            tech_stack: r.tech_stack.map(|j| j.0),
            settings: r.settings.0,
            status: r.status.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            workspace,
            revision: r.revision,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

fn workspace_root(kind: &WorkspaceKind) -> Option<&str> {
    match kind {
        WorkspaceKind::Managed => None,
        WorkspaceKind::Directory { root } => Some(root),
    }
}

macro_rules! project_columns {
    () => {
        "id, owner_id, title, description, mode, tech_stack, settings, status, workspace_kind, \
         workspace_root, revision, created_at, updated_at"
    };
}

macro_rules! select_projects {
    ($($rest:literal),*) => {
        concat!("SELECT ", project_columns!(), " FROM projects ", $($rest),*)
    };
}

/// A project by id (`$1`), when `$2` is its owner or NULL.
const PROJECT_SQL: &str = select_projects!("WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)");

impl crate::SqliteStore {
    async fn project_row(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<ProjectRow> {
        use crate::sqlite_calls::JsonText;
        let args: [&dyn rusqlite::ToSql; 2] = [&DbUuid::from(id), &owner.map(DbUuid::from)];
        self.readers().read(|db| {
            crate::sqlite_calls::query_opt(db, PROJECT_SQL, &args, |r| {
                Ok(ProjectRow {
                    id: r.get(0)?,
                    owner_id: r.get(1)?,
                    title: r.get(2)?,
                    description: r.get(3)?,
                    mode: r.get(4)?,
                    tech_stack: r.get::<_, Option<JsonText<Value>>>(5)?.map(|j| Json(j.0)),
                    settings: Json(r.get::<_, JsonText<Map<String, Value>>>(6)?.0),
                    status: r.get(7)?,
                    workspace_kind: r.get(8)?,
                    workspace_root: r.get(9)?,
                    revision: r.get(10)?,
                    created_at: r.get(11)?,
                    updated_at: r.get(12)?,
                })
            })?
            .ok_or(StoreError::NotFound { entity: ENTITY })
        })
    }
}

impl crate::PgStore {
    async fn project_row(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<ProjectRow> {
        sqlx::query_as::<_, ProjectRow>(PROJECT_SQL)
            .bind(DbUuid::from(id))
            .bind(owner.map(DbUuid::from))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))
    }
}

impl_for_backends!(ProjectStore {
    async fn create_project(&self, new: NewProject) -> StoreResult<Project> {
        let now = self.now();
        let project = Project {
            id: ProjectId::new(),
            owner_id: new.owner_id,
            title: new.title,
            description: new.description,
            mode: new.mode,
            tech_stack: new.tech_stack,
            settings: new.settings,
            status: ProjectStatus::Active,
            workspace: new.workspace,
            revision: 0,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO projects (id, owner_id, title, description, mode, tech_stack, settings, \
             status, workspace_kind, workspace_root, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(DbUuid::from(project.id))
        .bind(DbUuid::from(project.owner_id))
        .bind(&project.title)
        .bind(&project.description)
        .bind(&project.mode)
        .bind(project.tech_stack.as_ref().map(Json))
        .bind(Json(&project.settings))
        .bind(project.status.as_str())
        .bind(project.workspace.as_str())
        .bind(workspace_root(&project.workspace))
        .bind(project.revision)
        .bind(DbTime(now))
        .bind(DbTime(now))
        .execute(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(project)
    }

    async fn project(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<Project> {
        self.project_row(owner, id).await?.try_into()
    }

    async fn list_projects(
        &self,
        owner: Option<UserId>,
        filter: ProjectFilter,
        page: PageRequest<ProjectId>,
    ) -> StoreResult<Page<Project, ProjectId>> {
        let rows = sqlx::query_as::<_, ProjectRow>(select_projects!(
            "WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR id < $2) \
             AND ($3 IS NULL OR status = $3) ORDER BY id DESC LIMIT +$4"
        ))
        .bind(owner.map(DbUuid::from))
        .bind(page.after.map(DbUuid::from))
        .bind(filter.status.map(ProjectStatus::as_str))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let projects = rows.into_iter().map(Project::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(projects, page.limit, |p| p.id))
    }

    async fn update_project(
        &self,
        owner: Option<UserId>,
        id: ProjectId,
        patch: ProjectPatch,
    ) -> StoreResult<Project> {
        if patch.is_empty() {
            return self.project(owner, id).await;
        }
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        // Touching the row first locks it (PostgreSQL) so that concurrent patches of different
        // fields do not overwrite each other.
        let current: Project = sqlx::query_as::<_, ProjectRow>(concat!(
            "UPDATE projects SET updated_at = $3 WHERE id = $1 AND ($2 IS NULL OR owner_id = $2) \
             RETURNING ",
            project_columns!()
        ))
        .bind(DbUuid::from(id))
        .bind(owner.map(DbUuid::from))
        .bind(DbTime(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?
        .try_into()?;
        let mut updated = patch.apply(current);
        updated.updated_at = now;
        sqlx::query(
            "UPDATE projects SET title = $2, description = $3, status = $4, tech_stack = $5, \
             settings = $6 WHERE id = $1",
        )
        .bind(DbUuid::from(id))
        .bind(&updated.title)
        .bind(&updated.description)
        .bind(updated.status.as_str())
        .bind(updated.tech_stack.as_ref().map(Json))
        .bind(Json(&updated.settings))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        Ok(updated)
    }

    async fn delete_project(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM projects WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)")
            .bind(DbUuid::from(id))
            .bind(owner.map(DbUuid::from))
            .execute(self.writer())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound { entity: ENTITY });
        }
        Ok(())
    }
});
