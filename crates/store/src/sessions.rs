//! Sessions and their single-use, rotating refresh tokens.

use agentd_core::auth::{RefreshOutcome, Session};
use agentd_core::store::SessionStore;
use agentd_core::user::User;
use agentd_core::{SessionId, StoreError, StoreResult, UserId};
use time::OffsetDateTime;

use crate::error::map_err;
use crate::sql::impl_for_backends;
use crate::types::{DbTime, DbUuid};

const ENTITY: &str = "session";

#[derive(sqlx::FromRow)]
struct TokenRow {
    session_id: DbUuid,
    user_id: DbUuid,
    session_created_at: DbTime,
    session_revoked_at: Option<DbTime>,
    expires_at: DbTime,
    used_at: Option<DbTime>,
}

#[derive(sqlx::FromRow)]
struct SessionUserRow {
    session_id: DbUuid,
    session_created_at: DbTime,
    session_revoked_at: Option<DbTime>,
    id: DbUuid,
    email: String,
    password_hash: String,
    role: String,
    disabled: bool,
    created_at: DbTime,
    updated_at: DbTime,
}

/// A session with its user (every authenticated request reads it): `$1` the session.
const SESSION_WITH_USER_SQL: &str = "SELECT s.id AS session_id, \
    s.created_at AS session_created_at, s.revoked_at AS session_revoked_at, u.id, u.email, \
    u.password_hash, u.role, u.disabled, u.created_at, u.updated_at \
    FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1";

impl crate::SqliteStore {
    async fn session_row(&self, id: SessionId) -> StoreResult<SessionUserRow> {
        self.readers().read(|db| {
            crate::sqlite_calls::query_opt(db, SESSION_WITH_USER_SQL, &[&DbUuid::from(id)], |r| {
                Ok(SessionUserRow {
                    session_id: r.get(0)?,
                    session_created_at: r.get(1)?,
                    session_revoked_at: r.get(2)?,
                    id: r.get(3)?,
                    email: r.get(4)?,
                    password_hash: r.get(5)?,
                    role: r.get(6)?,
                    disabled: r.get(7)?,
                    created_at: r.get(8)?,
                    updated_at: r.get(9)?,
                })
            })?
            .ok_or(StoreError::NotFound { entity: ENTITY })
        })
    }
}

impl crate::PgStore {
    async fn session_row(&self, id: SessionId) -> StoreResult<SessionUserRow> {
        sqlx::query_as::<_, SessionUserRow>(SESSION_WITH_USER_SQL)
            .bind(DbUuid::from(id))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))
    }
}

impl TryFrom<SessionUserRow> for (Session, User) {
    type Error = StoreError;

    fn try_from(r: SessionUserRow) -> Result<Self, Self::Error> {
        let user = User {
            id: r.id.0.into(),
            email: r.email,
            password_hash: r.password_hash,
            role: r.role.parse().map_err(|e| StoreError::Backend(Box::new(e)))?,
            disabled: r.disabled,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        };
        let session = Session {
            id: r.session_id.0.into(),
            user_id: user.id,
            created_at: r.session_created_at.0,
            revoked_at: r.session_revoked_at.map(|t| t.0),
        };
        Ok((session, user))
    }
}

impl_for_backends!(SessionStore {
    async fn create_session(
        &self,
        user_id: UserId,
        refresh_hash: &[u8],
        refresh_expires_at: OffsetDateTime,
    ) -> StoreResult<Session> {
        let now = self.now();
        let session = Session { id: SessionId::new(), user_id, created_at: now, revoked_at: None };
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(DbUuid::from(session.id))
            .bind(DbUuid::from(user_id))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(refresh_hash)
        .bind(DbUuid::from(session.id))
        .bind(DbTime(now))
        .bind(DbTime(refresh_expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        Ok(session)
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &[u8],
        new_hash: &[u8],
        new_expires_at: OffsetDateTime,
    ) -> StoreResult<RefreshOutcome> {
        let now = self.now();
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let row = sqlx::query_as::<_, TokenRow>(
            "SELECT t.session_id, s.user_id, s.created_at AS session_created_at, \
             s.revoked_at AS session_revoked_at, t.expires_at, t.used_at \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Unknown);
        };
        let revoke = "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
        if row.used_at.is_some() {
            sqlx::query(revoke)
                .bind(row.session_id)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(ENTITY, e))?;
            tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
            return Ok(RefreshOutcome::Reused { session_id: row.session_id.0.into() });
        }
        if row.session_revoked_at.is_some() || row.expires_at.0 <= now {
            return Ok(RefreshOutcome::Expired);
        }
        // Conditional on not yet used: of two concurrent presentations only one can win; the
        // other sees the token used and is treated as reuse.
        let marked = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(DbTime(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        if marked.rows_affected() == 0 {
            sqlx::query(revoke)
                .bind(row.session_id)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(ENTITY, e))?;
            tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
            return Ok(RefreshOutcome::Reused { session_id: row.session_id.0.into() });
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(new_hash)
        .bind(row.session_id)
        .bind(DbTime(now))
        .bind(DbTime(new_expires_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        tx.commit().await.map_err(|e| map_err(ENTITY, e))?;
        Ok(RefreshOutcome::Rotated {
            session: Session {
                id: row.session_id.0.into(),
                user_id: row.user_id.0.into(),
                created_at: row.session_created_at.0,
                revoked_at: None,
            },
        })
    }

    async fn session_with_user(&self, id: SessionId) -> StoreResult<(Session, User)> {
        self.session_row(id).await?.try_into()
    }

    async fn revoke_session(&self, id: SessionId) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(DbUuid::from(id))
            .bind(DbTime(self.now()))
            .execute(self.writer())
            .await
            .map(drop)
            .map_err(|e| map_err(ENTITY, e))
    }

    async fn revoke_session_of_token(&self, token_hash: &[u8]) -> StoreResult<Option<SessionId>> {
        let session: Option<(DbUuid,)> =
            sqlx::query_as("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.reader())
                .await
                .map_err(|e| map_err(ENTITY, e))?;
        let Some((id,)) = session else { return Ok(None) };
        let id = SessionId::from(id.0);
        self.revoke_session(id).await?;
        Ok(Some(id))
    }

    async fn revoke_user_sessions(&self, user_id: UserId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(DbUuid::from(user_id))
        .bind(DbTime(self.now()))
        .execute(self.writer())
        .await
        .map(drop)
        .map_err(|e| map_err(ENTITY, e))
    }
});
