//! Projects, read through their owner.

use agentd_core::page::{Page, PageRequest};
use agentd_core::project::{NewProject, Project, ProjectStatus};
use agentd_core::store::ProjectStore;
use agentd_core::{ProjectId, StoreError, StoreResult, UserId};

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
    status: String,
    revision: i64,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;

    fn try_from(r: ProjectRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id.0.into(),
            owner_id: r.owner_id.0.into(),
            title: r.title,
            description: r.description,
            status: r.status.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            revision: r.revision,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

macro_rules! select_projects {
    ($($rest:literal),*) => {
        concat!(
            "SELECT id, owner_id, title, description, status, revision, created_at, updated_at \
             FROM projects ",
            $($rest),*
        )
    };
}

impl_for_backends!(ProjectStore {
    async fn create_project(&self, new: NewProject) -> StoreResult<Project> {
        let now = self.now();
        let project = Project {
            id: ProjectId::new(),
            owner_id: new.owner_id,
            title: new.title,
            description: new.description,
            status: ProjectStatus::Active,
            revision: 0,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO projects (id, owner_id, title, description, status, revision, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(DbUuid::from(project.id))
        .bind(DbUuid::from(project.owner_id))
        .bind(&project.title)
        .bind(&project.description)
        .bind(project.status.as_str())
        .bind(project.revision)
        .bind(DbTime(now))
        .bind(DbTime(now))
        .execute(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(project)
    }

    async fn project(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<Project> {
        sqlx::query_as::<_, ProjectRow>(select_projects!("WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)"))
            .bind(DbUuid::from(id))
            .bind(owner.map(DbUuid::from))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()
    }

    async fn list_projects(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ProjectId>,
    ) -> StoreResult<Page<Project, ProjectId>> {
        let rows = sqlx::query_as::<_, ProjectRow>(select_projects!(
            "WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(owner.map(DbUuid::from))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let projects = rows.into_iter().map(Project::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(projects, page.limit, |p| p.id))
    }
});
