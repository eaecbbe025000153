//! Who is asking, and on whose behalf: what every call carries besides its messages.

use agentd_core::{ProjectId, UserId};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The context of one call: it selects the route (the agent type), attributes usage in the
/// ledger, and can cancel the call.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The run the call belongs to, if any.
    pub run_id: Option<Uuid>,
    /// The conversation the call belongs to, if any.
    pub conversation_id: Option<Uuid>,
    /// The user the call is made for.
    pub principal: UserId,
    /// The agent type; selects the route of models.
    pub agent_type: String,
    /// The project the call works on, if any.
    pub project_id: Option<ProjectId>,
    /// Cancels the call, including an open stream.
    pub cancel: CancellationToken,
}

impl RequestContext {
    /// A context for `principal` and `agent_type`, with no run, conversation or project.
    pub fn new(principal: UserId, agent_type: impl Into<String>) -> Self {
        Self {
            run_id: None,
            conversation_id: None,
            principal,
            agent_type: agent_type.into(),
            project_id: None,
            cancel: CancellationToken::new(),
        }
    }
}
