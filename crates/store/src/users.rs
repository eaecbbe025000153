//! Users.

use agentd_core::page::{Page, PageRequest};
use agentd_core::store::UserStore;
use agentd_core::user::{NewUser, User, UserPatch, normalize_email};
use agentd_core::{StoreError, StoreResult, UserId};

use crate::error::map_err;
use crate::sql::{impl_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid};

const ENTITY: &str = "user";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: DbUuid,
    email: String,
    password_hash: String,
    role: String,
    disabled: bool,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(r: UserRow) -> Result<Self, Self::Error> {
        Ok(Self {
            id: r.id.0.into(),
            email: r.email,
            password_hash: r.password_hash,
            role: r.role.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            disabled: r.disabled,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

macro_rules! select_users {
    ($($rest:literal),*) => {
        concat!("SELECT id, email, password_hash, role, disabled, created_at, updated_at FROM users ", $($rest),*)
    };
}

impl_for_backends!(UserStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let now = self.now();
        let user = User {
            id: UserId::new(),
            email: normalize_email(&new.email),
            password_hash: new.password_hash,
            role: new.role,
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(DbUuid::from(user.id))
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(user.disabled)
        .bind(DbTime(now))
        .bind(DbTime(now))
        .execute(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(user)
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>(select_users!("WHERE id = $1"))
            .bind(DbUuid::from(id))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>(select_users!("WHERE email = $1"))
            .bind(normalize_email(email))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()
    }

    async fn list_users(&self, page: PageRequest<UserId>) -> StoreResult<Page<User, UserId>> {
        let rows = sqlx::query_as::<_, UserRow>(select_users!(
            "WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT +$2"
        ))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let users = rows.into_iter().map(User::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(users, page.limit, |u| u.id))
    }

    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>(
            "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
             password_hash = COALESCE($4, password_hash), updated_at = $5 WHERE id = $1 \
             RETURNING id, email, password_hash, role, disabled, created_at, updated_at",
        )
        .bind(DbUuid::from(id))
        .bind(patch.role.map(|r| r.as_str()))
        .bind(patch.disabled)
        .bind(patch.password_hash)
        .bind(DbTime(self.now()))
        .fetch_optional(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?
        .ok_or(StoreError::NotFound { entity: ENTITY })?
        .try_into()
    }
});
