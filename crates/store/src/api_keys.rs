//! API keys, stored as the SHA-256 of their secret part.

use std::collections::BTreeSet;

use agentd_core::auth::{ApiKey, NewApiKey, Scope};
use agentd_core::clock::truncate_to_micros;
use agentd_core::page::{Page, PageRequest};
use agentd_core::store::ApiKeyStore;
use agentd_core::{ApiKeyId, StoreError, StoreResult, UserId};
use time::OffsetDateTime;

use crate::error::map_err;
use crate::sql::{impl_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid};

const ENTITY: &str = "api key";

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: DbUuid,
    owner_id: DbUuid,
    name: String,
    scopes: String,
    secret_hash: Vec<u8>,
    created_at: DbTime,
    expires_at: Option<DbTime>,
    last_used_at: Option<DbTime>,
    revoked_at: Option<DbTime>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(r: ApiKeyRow) -> Result<Self, Self::Error> {
        let scopes = r
            .scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<Scope>, _>>()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            id: r.id.0.into(),
            owner_id: r.owner_id.0.into(),
            name: r.name,
            scopes,
            secret_hash: r.secret_hash,
            created_at: r.created_at.0,
            expires_at: r.expires_at.map(|t| t.0),
            last_used_at: r.last_used_at.map(|t| t.0),
            revoked_at: r.revoked_at.map(|t| t.0),
        })
    }
}

fn scopes_text(scopes: &BTreeSet<Scope>) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

macro_rules! select_keys {
    ($($rest:literal),*) => {
        concat!(
            "SELECT id, owner_id, name, scopes, secret_hash, created_at, expires_at, \
             last_used_at, revoked_at FROM api_keys ",
            $($rest),*
        )
    };
}

impl_for_backends!(ApiKeyStore {
    async fn create_api_key(&self, new: NewApiKey) -> StoreResult<ApiKey> {
        let key = ApiKey {
            id: new.id,
            owner_id: new.owner_id,
            name: new.name,
            scopes: new.scopes,
            secret_hash: new.secret_hash,
            created_at: self.now(),
            // Stored with microsecond precision: return what a read will return.
            expires_at: new.expires_at.map(truncate_to_micros),
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, owner_id, name, scopes, secret_hash, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(DbUuid::from(key.id))
        .bind(DbUuid::from(key.owner_id))
        .bind(&key.name)
        .bind(scopes_text(&key.scopes))
        .bind(&key.secret_hash)
        .bind(DbTime(key.created_at))
        .bind(key.expires_at.map(DbTime))
        .execute(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(key)
    }

    async fn api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey> {
        sqlx::query_as::<_, ApiKeyRow>(select_keys!("WHERE id = $1"))
            .bind(DbUuid::from(id))
            .fetch_one(self.reader())
            .await
            .map_err(|e| map_err(ENTITY, e))?
            .try_into()
    }

    async fn list_api_keys(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ApiKeyId>,
    ) -> StoreResult<Page<ApiKey, ApiKeyId>> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(select_keys!(
            "WHERE revoked_at IS NULL AND ($1 IS NULL OR owner_id = $1) ",
            "AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT +$3"
        ))
        .bind(owner.map(DbUuid::from))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let keys = rows.into_iter().map(ApiKey::try_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(keys, page.limit, |k| k.id))
    }

    async fn revoke_api_key(&self, owner: Option<UserId>, id: ApiKeyId) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE id = $1 AND ($2 IS NULL OR owner_id = $2) AND revoked_at IS NULL",
        )
        .bind(DbUuid::from(id))
        .bind(owner.map(DbUuid::from))
        .bind(DbTime(self.now()))
        .execute(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: ENTITY });
        }
        Ok(())
    }

    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: OffsetDateTime,
        unless_after: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(DbUuid::from(id))
        .bind(DbTime(at))
        .bind(DbTime(unless_after))
        .execute(self.writer())
        .await
        .map(drop)
        .map_err(|e| map_err(ENTITY, e))
    }
});
