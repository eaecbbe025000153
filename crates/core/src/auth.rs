//! Who is calling, and what they may do.
//!
//! A [`Principal`] is established once per request by the API's authentication layer, from an
//! access token (a user's session) or an API key, and handed to every operation. Authorization
//! decisions are made here, in terms of roles and scopes, so that every route asks the same
//! questions the same way.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::UserId;
use crate::id::{ApiKeyId, SessionId};
use crate::user::Role;

/// What an API key may do. Users signed in with a session may do everything their role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read resources (GET).
    Read,
    /// Create, change and delete resources.
    Write,
    /// Administrative acts; effective only when the key's owner is an admin.
    Admin,
}

impl Scope {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Every scope.
    pub const ALL: [Self; 3] = [Self::Read, Self::Write, Self::Admin];
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not `read`, `write` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: expected read, write or admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(UnknownScope(other.to_owned())),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A human, signed in: an access token (bearer or cookie) of this session.
    Session {
        /// The session (refresh-token family) the access token belongs to.
        session_id: SessionId,
    },
    /// A service, with an API key limited to some scopes.
    ApiKey {
        /// The key.
        key_id: ApiKeyId,
        /// What the key may do.
        scopes: BTreeSet<Scope>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user acting, or owning the key that acts.
    pub user_id: UserId,
    /// That user's role.
    pub role: Role,
    /// How they authenticated.
    pub credential: Credential,
}

/// Why an authenticated caller may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The act needs the admin role.
    #[error("this requires the admin role")]
    NotAdmin,
    /// The API key lacks a scope.
    #[error("this API key lacks the {0} scope")]
    MissingScope(Scope),
    /// Only a signed-in human may do this; API keys never can.
    #[error("only a signed-in user may do this; API keys cannot")]
    HumansOnly,
}

impl Principal {
    /// Whether the caller is an admin acting with admin powers (a session of an admin, or an
    /// admin's key carrying the `admin` scope).
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
            && match &self.credential {
                Credential::Session { .. } => true,
                Credential::ApiKey { scopes, .. } => scopes.contains(&Scope::Admin),
            }
    }

    /// Whether the caller is a signed-in human rather than a service key.
    #[must_use]
    pub const fn is_human(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
    }

    /// Checks the caller may act with `scope` (sessions may do everything their role allows).
    ///
    /// # Errors
    /// [`Denied::MissingScope`] for a key without the scope.
    pub fn require_scope(&self, scope: Scope) -> Result<(), Denied> {
        match &self.credential {
            Credential::Session { .. } => Ok(()),
            Credential::ApiKey { scopes, .. } if scopes.contains(&scope) => Ok(()),
            Credential::ApiKey { .. } => Err(Denied::MissingScope(scope)),
        }
    }

    /// Checks the caller is an admin (with the `admin` scope, for keys).
    ///
    /// # Errors
    /// [`Denied::NotAdmin`] or [`Denied::MissingScope`].
    pub fn require_admin(&self) -> Result<(), Denied> {
        if self.role != Role::Admin {
            return Err(Denied::NotAdmin);
        }
        self.require_scope(Scope::Admin)
    }

    /// Checks the caller is a signed-in human.
    ///
    /// # Errors
    /// [`Denied::HumansOnly`] for API keys.
    pub fn require_human(&self) -> Result<(), Denied> {
        if self.is_human() { Ok(()) } else { Err(Denied::HumansOnly) }
    }

    /// The owner filter for reading owned resources: admins see everything (`None`), everyone
    /// else only what they own.
    #[must_use]
    pub fn owner_filter(&self) -> Option<UserId> {
        if self.is_admin() { None } else { Some(self.user_id) }
    }
}

/// A signed-in session: one refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id (carried in access tokens as `sid`).
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// When the user signed in.
    pub created_at: OffsetDateTime,
    /// When the session was revoked (logout, refresh-token reuse), if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was valid and is now used; the new token replaces it.
    Rotated {
        /// The session it belongs to.
        session: Session,
    },
    /// The token had already been used: the whole session has been revoked.
    Reused {
        /// The revoked session.
        session_id: SessionId,
    },
    /// The token (or its session) expired or was revoked.
    Expired,
    /// No such token.
    Unknown,
}

/// A stored API key (never its secret: only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's id, also its public prefix (`agk_<id>_…`).
    pub id: ApiKeyId,
    /// The user who created it and on whose behalf it acts.
    pub owner_id: UserId,
    /// A label.
    pub name: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// What it takes to create an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The key's id (generated by the caller, since it is part of the key text).
    pub id: ApiKeyId,
    /// The owner.
    pub owner_id: UserId,
    /// A label.
    pub name: String,
    /// Scopes.
    pub scopes: BTreeSet<Scope>,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    /// Expiry.
    pub expires_at: Option<OffsetDateTime>,
}

/// The state of a lock-out counter (failed sign-ins for an account or a client address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures.
    pub failures: u32,
    /// Until when sign-in is refused, if it is.
    pub locked_until: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role, scopes: &[Scope]) -> Principal {
        Principal {
            user_id: UserId::new(),
            role,
            credential: Credential::ApiKey {
                key_id: ApiKeyId::new(),
                scopes: scopes.iter().copied().collect(),
            },
        }
    }

    fn session(role: Role) -> Principal {
        Principal {
            user_id: UserId::new(),
            role,
            credential: Credential::Session { session_id: SessionId::new() },
        }
    }

    #[test]
    fn sessions_have_every_scope_of_their_role() {
        let member = session(Role::Member);
        assert!(member.require_scope(Scope::Write).is_ok());
        assert_eq!(member.require_admin(), Err(Denied::NotAdmin));
        assert!(session(Role::Admin).require_admin().is_ok());
        assert_eq!(member.owner_filter(), Some(member.user_id));
        assert_eq!(session(Role::Admin).owner_filter(), None);
    }

    #[test]
    fn keys_are_limited_to_their_scopes_and_their_owner_role() {
        let reader = key(Role::Admin, &[Scope::Read]);
        assert_eq!(reader.require_scope(Scope::Write), Err(Denied::MissingScope(Scope::Write)));
        assert_eq!(reader.require_admin(), Err(Denied::MissingScope(Scope::Admin)));
        assert!(!reader.is_admin());
        assert_eq!(reader.owner_filter(), Some(reader.user_id));
        let admin_key = key(Role::Admin, &[Scope::Read, Scope::Admin]);
        assert!(admin_key.require_admin().is_ok());
        let member_key = key(Role::Member, &Scope::ALL);
        assert_eq!(member_key.require_admin(), Err(Denied::NotAdmin));
    }

    #[test]
    fn keys_are_never_human() {
        assert_eq!(key(Role::Admin, &Scope::ALL).require_human(), Err(Denied::HumansOnly));
        assert!(session(Role::Member).require_human().is_ok());
    }
}
