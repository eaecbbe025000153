//! Conversations and their messages; maintenance locks.

use std::time::Duration;

use agentd_core::conversation::{
    Conversation, ConversationMessage, MessageRole, NewConversation, NewMessage,
};
use agentd_core::page::{Page, PageRequest};
use agentd_core::store::{ConversationStore, MaintenanceStore};
use agentd_core::{ConversationId, RunId, StoreError, StoreResult, UserId};
use time::OffsetDateTime;

use crate::error::map_err;
use crate::sql::{impl_for_backends, overfetch_limit};
use crate::types::{DbTime, DbUuid};

const ENTITY: &str = "conversation";

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: DbUuid,
    owner_id: DbUuid,
    project_id: Option<DbUuid>,
    task_id: Option<String>,
    title: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Self {
        Self {
            id: r.id.0.into(),
            owner_id: r.owner_id.0.into(),
            project_id: r.project_id.map(|p| p.0.into()),
            task_id: r.task_id,
            title: r.title,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        }
    }
}

macro_rules! select_conversations {
    ($($rest:literal),*) => {
        concat!(
            "SELECT id, owner_id, project_id, task_id, title, created_at, updated_at \
             FROM conversations ",
            $($rest),*
        )
    };
}

impl_for_backends!(ConversationStore {
    async fn create_conversation(&self, new: NewConversation) -> StoreResult<Conversation> {
        let now = self.now();
        let conversation = Conversation {
            id: ConversationId::new(),
            owner_id: new.owner_id,
            project_id: new.project_id,
            task_id: new.task_id,
            title: new.title,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO conversations (id, owner_id, project_id, task_id, title, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(DbUuid::from(conversation.id))
        .bind(DbUuid::from(conversation.owner_id))
        .bind(conversation.project_id.map(DbUuid::from))
        .bind(&conversation.task_id)
        .bind(&conversation.title)
        .bind(DbTime(now))
        .execute(self.writer())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        Ok(conversation)
    }

    async fn conversation(&self, owner: Option<UserId>, id: ConversationId) -> StoreResult<Conversation> {
        sqlx::query_as::<_, ConversationRow>(select_conversations!(
            "WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)"
        ))
        .bind(DbUuid::from(id))
        .bind(owner.map(DbUuid::from))
        .fetch_one(self.reader())
        .await
        .map(Conversation::from)
        .map_err(|e| map_err(ENTITY, e))
    }

    async fn list_conversations(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ConversationId>,
    ) -> StoreResult<Page<Conversation, ConversationId>> {
        let rows = sqlx::query_as::<_, ConversationRow>(select_conversations!(
            "WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT +$3"
        ))
        .bind(owner.map(DbUuid::from))
        .bind(page.after.map(DbUuid::from))
        .bind(overfetch_limit(page.limit))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let items = rows.into_iter().map(Conversation::from).collect();
        Ok(Page::from_overfetch(items, page.limit, |c: &Conversation| c.id))
    }

    async fn delete_conversation(&self, owner: Option<UserId>, id: ConversationId) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM conversations WHERE id = $1 AND ($2 IS NULL OR owner_id = $2)")
            .bind(DbUuid::from(id))
            .bind(owner.map(DbUuid::from))
            .execute(self.writer())
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { entity: ENTITY });
        }
        Ok(())
    }

    async fn messages(&self, id: ConversationId) -> StoreResult<Vec<ConversationMessage>> {
        let rows: Vec<(i64, String, String, Option<DbUuid>, DbTime)> = sqlx::query_as(
            "SELECT seq, role, content, run_id, created_at FROM conversation_messages \
             WHERE conversation_id = $1 ORDER BY seq",
        )
        .bind(DbUuid::from(id))
        .fetch_all(self.reader())
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        rows.into_iter()
            .map(|(seq, role, content, run, created_at)| {
                Ok(ConversationMessage {
                    seq,
                    role: role.parse::<MessageRole>().map_err(|e| StoreError::Backend(Box::new(e)))?,
                    content,
                    run_id: run.map(|r| r.0.into()),
                    created_at: created_at.0,
                })
            })
            .collect()
    }

    async fn append_messages(
        &self,
        id: ConversationId,
        run: Option<RunId>,
        messages: Vec<NewMessage>,
    ) -> StoreResult<()> {
        let now = self.now();
        let n = i64::try_from(messages.len()).unwrap_or(i64::MAX);
        let mut tx = self.writer().begin().await.map_err(|e| map_err(ENTITY, e))?;
        let last: Option<(i64,)> = sqlx::query_as(
            "UPDATE conversations SET message_seq = message_seq + $2, updated_at = $3 \
             WHERE id = $1 RETURNING message_seq",
        )
        .bind(DbUuid::from(id))
        .bind(n)
        .bind(DbTime(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| map_err(ENTITY, e))?;
        let Some((last,)) = last else {
            return Err(StoreError::NotFound { entity: ENTITY });
        };
        let mut seq = last - n;
        for message in messages {
            seq += 1;
            sqlx::query(
                "INSERT INTO conversation_messages (conversation_id, seq, role, content, run_id, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(DbUuid::from(id))
            .bind(seq)
            .bind(message.role.as_str())
            .bind(&message.content)
            .bind(run.map(DbUuid::from))
            .bind(DbTime(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(ENTITY, e))?;
        }
        tx.commit().await.map_err(|e| map_err(ENTITY, e))
    }

    async fn delete_conversations_before(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        sqlx::query(
            "DELETE FROM conversations WHERE id IN (SELECT c.id FROM conversations c \
             WHERE c.updated_at < $1 AND NOT EXISTS (SELECT 1 FROM runs r \
             WHERE r.conversation_id = c.id AND r.status IN ('queued', 'running', 'waiting_approval')) \
             ORDER BY c.updated_at LIMIT +$2)",
        )
        .bind(DbTime(before))
        .bind(i64::from(limit))
        .execute(self.writer())
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| map_err(ENTITY, e))
    }
});

impl_for_backends!(MaintenanceStore {
    async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let now = self.now();
        let until = now + time::Duration::milliseconds(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let row: Option<(String,)> = sqlx::query_as(
            "INSERT INTO maintenance_locks (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE maintenance_locks.expires_at < $4 OR maintenance_locks.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(DbTime(until))
        .bind(DbTime(now))
        .fetch_optional(self.writer())
        .await
        .map_err(|e| map_err("maintenance lock", e))?;
        Ok(row.is_some())
    }
});
