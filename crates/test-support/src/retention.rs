//! Rows written as if at another time, through the store (with a clock set back), for the
//! retention tests: what the sweep must delete and what it must keep.

use std::sync::Arc;

use agentd_core::conversation::{MessageRole, NewConversation, NewMessage};
use agentd_core::run::{Created, NewRun, RunInput, RunStatus};
use agentd_core::user::{NewUser, Role};
use agentd_core::{Clock, ConversationId, RunId, Store};
use time::OffsetDateTime;

use crate::TestDatabase;

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        agentd_core::clock::truncate_to_micros(self.0)
    }
}

/// A conversation (with a message) and a finished run in it, written `days_ago` days ago.
#[derive(Debug, Clone, Copy)]
pub struct Rows {
    /// The conversation.
    pub conversation: ConversationId,
    /// The run (cancelled, so finished when it was written).
    pub run: RunId,
}

/// Writes [`Rows`] into `database` as if `days_ago` days ago, for a new user `email`.
pub async fn rows_at(database: &TestDatabase, email: &str, days_ago: i64) -> Rows {
    let options = {
        let mut settings = agentd_server::Settings::default();
        settings.database.url = Some(secrecy::SecretString::from(database.url.clone()));
        settings.database_options()
    };
    let clock = FixedClock(OffsetDateTime::now_utc() - time::Duration::days(days_ago));
    let db = agentd_store::Database::connect_with_clock(&options, Arc::new(clock)).await.unwrap();
    db.migrate().await.unwrap();
    let rows = write_rows(db.store().as_ref(), email).await;
    db.close().await;
    rows
}

async fn write_rows(store: &dyn Store, email: &str) -> Rows {
    let user = store
        .create_user(NewUser {
            email: email.to_owned(),
            password_hash: "not a usable hash".to_owned(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let conversation = store
        .create_conversation(NewConversation {
            owner_id: user.id,
            project_id: None,
            task_id: None,
            title: Some("retention".into()),
        })
        .await
        .unwrap();
    store
        .append_messages(
            conversation.id,
            None,
            vec![NewMessage { role: MessageRole::User, content: "hello".into() }],
        )
        .await
        .unwrap();
    let Created::New(run) = store
        .create_run(NewRun {
            owner_id: user.id,
            project_id: None,
            conversation_id: Some(conversation.id),
            agent: "research".into(),
            input: RunInput { task: "t".into(), context: None },
            idempotency_key: None,
            max_attempts: 1,
            reject_if_busy: false,
        })
        .await
        .unwrap()
    else {
        panic!("the run was not created");
    };
    let run = store.request_cancel(None, run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    Rows { conversation: conversation.id, run: run.id }
}

/// Whether the rows still exist.
pub async fn exist(store: &dyn Store, rows: Rows) -> (bool, bool) {
    (
        store.conversation(None, rows.conversation).await.is_ok(),
        store.run(None, rows.run).await.is_ok(),
    )
}
