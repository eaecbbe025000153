//! Human approval of risky steps.
//!
//! An approval is a durable row bound to one exact action: the tool and its arguments, hashed.
//! While a run waits for one it holds no worker; the first decision wins (later ones are
//! conflicts), only a signed-in human may decide, and a pending approval that outlives its
//! deadline counts as rejected. What finally executes is checked against the hash of what was
//! approved. An approval with a `run` or `project` scope also stores a grant, so that the same
//! kind of action (the same command prefix) is not asked about again in that scope.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::id::{ApprovalId, GrantId};
use crate::{ProjectId, RunId, UserId};

/// Where an approval is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a human.
    Pending,
    /// Approved: the action may run (exactly as approved).
    Approved,
    /// Rejected: the action does not run; the model is told why.
    Rejected,
    /// Nobody decided in time: treated as a rejection.
    Expired,
    /// The run ended (it was cancelled) before anyone decided.
    Cancelled,
}

/// How much harm an action could do, for the human deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Reversible and contained (a write inside the workspace).
    Low,
    /// A command that a rule does not allow.
    Medium,
    /// A command a rule marks as dangerous.
    High,
}

/// A human's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Let it run.
    Approve,
    /// Do not.
    Reject,
}

/// How far an approval reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantScope {
    /// This action only.
    #[default]
    Once,
    /// Actions with the same command prefix, for the rest of this run.
    Run,
    /// Actions with the same command prefix, in this project, until the grant is revoked.
    Project,
}

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stored and wire name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = crate::run::UnknownRunStatus;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)*
                    other => Err(crate::run::UnknownRunStatus(other.to_owned())),
                }
            }
        }
    };
}

names!(ApprovalStatus {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Expired => "expired",
    Cancelled => "cancelled",
});
names!(Risk { Low => "low", Medium => "medium", High => "high" });
names!(Decision { Approve => "approve", Reject => "reject" });
names!(GrantScope { Once => "once", Run => "run", Project => "project" });

/// The hash that binds an approval to one exact action: SHA-256 of the tool's name, a NUL, and
/// the canonical JSON of its arguments (object keys sorted), hex.
#[must_use]
pub fn action_hash(tool: &str, arguments: &Value) -> String {
    let mut h = Sha256::new();
    h.update(tool.as_bytes());
    h.update([0]);
    // serde_json's maps keep keys sorted: this is the canonical form.
    h.update(serde_json::to_vec(arguments).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// Its id.
    pub id: ApprovalId,
    /// The run waiting for it.
    pub run_id: RunId,
    /// The run's owner (who may see and decide it, besides admins).
    pub owner_id: UserId,
    /// The run's project.
    pub project_id: Option<ProjectId>,
    /// The tool call it is about.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The exact arguments.
    pub arguments: Value,
    /// [`action_hash`] of the tool and arguments.
    pub action_hash: String,
    /// How much harm it could do.
    pub risk: Risk,
    /// Why it needs approval.
    pub reason: String,
    /// What the command prefix of a `run` or `project` grant would be (none: only `once`).
    pub grant_key: Option<String>,
    /// Where it is.
    pub status: ApprovalStatus,
    /// The decider's reason (given to the model on rejection).
    pub decision_reason: Option<String>,
    /// The scope the approver chose.
    pub scope: Option<GrantScope>,
    /// Who decided.
    pub decided_by: Option<UserId>,
    /// When.
    pub decided_at: Option<OffsetDateTime>,
    /// When it counts as rejected if undecided.
    pub expires_at: OffsetDateTime,
    /// When it was requested.
    pub created_at: OffsetDateTime,
}

impl Approval {
    /// The decisions offered: approve (once) and reject always; approving for the run or the
    /// project when the action has a grant key.
    #[must_use]
    pub fn available_decisions(&self) -> Vec<&'static str> {
        let mut d = vec!["approve", "reject"];
        if self.grant_key.is_some() {
            d.extend(["approve_for_run", "approve_for_project"]);
        }
        d
    }

    /// Whether the decision `decision` with `scope` is what this approval already records (a
    /// repeated request, answered idempotently).
    #[must_use]
    pub fn records(&self, decision: Decision, scope: GrantScope) -> bool {
        let status = match decision {
            Decision::Approve => ApprovalStatus::Approved,
            Decision::Reject => ApprovalStatus::Rejected,
        };
        self.status == status && (decision == Decision::Reject || self.scope == Some(scope))
    }

    /// What the model is told when the action does not run.
    #[must_use]
    pub fn refusal(&self) -> String {
        let why =
            self.decision_reason.as_deref().map(|r| format!(" Reason: {r}")).unwrap_or_default();
        match self.status {
            ApprovalStatus::Expired => format!(
                "The {} call was not run: nobody approved it before its approval expired.{why}",
                self.tool
            ),
            ApprovalStatus::Cancelled => {
                format!("The {} call was not run: the run was cancelled.", self.tool)
            }
            _ => format!(
                "The {} call was rejected by a human reviewer and was not run.{why}",
                self.tool
            ),
        }
    }
}

/// What it takes to ask for an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    /// The tool call.
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The exact arguments.
    pub arguments: Value,
    /// How much harm it could do.
    pub risk: Risk,
    /// Why.
    pub reason: String,
    /// The grant key, if the action can be granted more widely.
    pub grant_key: Option<String>,
    /// The deadline.
    pub expires_at: OffsetDateTime,
}

/// What deciding did.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// This decision was the first: it stands.
    Now(Approval),
    /// Someone decided before (or it expired): the approval as it stands.
    Already(Approval),
}

/// A standing permission for one kind of action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id.
    pub id: GrantId,
    /// Whose.
    pub owner_id: UserId,
    /// The project it applies to.
    pub project_id: Option<ProjectId>,
    /// The run it applies to (run scope), if limited to one.
    pub run_id: Option<RunId>,
    /// The tool.
    pub tool: String,
    /// The command prefix (or other key) it allows.
    pub key: String,
    /// Who granted it.
    pub created_by: UserId,
    /// When.
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_binds_the_tool_and_the_exact_arguments() {
        let a = action_hash("run_terminal", &json!({"command": "ls", "cwd": "."}));
        let b = action_hash("run_terminal", &json!({"cwd": ".", "command": "ls"}));
        assert_eq!(a, b, "key order does not matter");
        assert_ne!(a, action_hash("run_terminal", &json!({"command": "ls ", "cwd": "."})));
        assert_ne!(a, action_hash("write_file", &json!({"command": "ls", "cwd": "."})));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn names_round_trip() {
        for s in [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
            ApprovalStatus::Expired,
            ApprovalStatus::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<ApprovalStatus>().ok(), Some(s));
        }
        assert_eq!("project".parse::<GrantScope>().ok(), Some(GrantScope::Project));
        assert!("forever".parse::<GrantScope>().is_err());
    }
}
