//! Conversations: a thread of messages that successive runs continue.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::ConversationId;
use crate::{ProjectId, RunId, UserId};

/// A stored conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// Who owns it.
    pub owner_id: UserId,
    /// The project it is about, if any.
    pub project_id: Option<ProjectId>,
    /// A client's own task reference, if any.
    pub task_id: Option<String>,
    /// A title.
    pub title: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When anything last happened in it (retention counts from here).
    pub updated_at: OffsetDateTime,
}

/// What it takes to create a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    /// The owner.
    pub owner_id: UserId,
    /// The project, if any.
    pub project_id: Option<ProjectId>,
    /// A client's task reference.
    pub task_id: Option<String>,
    /// A title.
    pub title: Option<String>,
}

/// Who wrote a conversation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// Instructions.
    System,
    /// The human.
    User,
    /// The agent.
    Assistant,
}

impl MessageRole {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

impl std::str::FromStr for MessageRole {
    type Err = crate::run::UnknownRunStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Self::System),
            "user" => Ok(Self::User),
            "assistant" => Ok(Self::Assistant),
            other => Err(crate::run::UnknownRunStatus(other.to_owned())),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationMessage {
    /// Its position, from 1.
    pub seq: i64,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
    /// The run that added it, if a run did.
    pub run_id: Option<RunId>,
    /// When it was added.
    pub created_at: OffsetDateTime,
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Who wrote it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
}
