//! Typed entity ids.
//!
//! Ids are UUIDv7: unique without coordination and ordered by creation time, which keyset
//! pagination relies on. On the wire they are strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id, ordered after every id made before it by this process.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id's UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

define_id!(
    /// Identifies a user.
    UserId
);
define_id!(
    /// Identifies a project.
    ProjectId
);
define_id!(
    /// Identifies a signed-in session (a refresh-token family).
    SessionId
);
define_id!(
    /// Identifies an API key.
    ApiKeyId
);
define_id!(
    /// Identifies an agent run.
    RunId
);
define_id!(
    /// Identifies a conversation.
    ConversationId
);
define_id!(
    /// Identifies an approval request.
    ApprovalId
);
define_id!(
    /// Identifies a standing grant.
    GrantId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_later_sort_later() {
        let a = ProjectId::new();
        let b = ProjectId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn ids_round_trip_through_strings() {
        let a = UserId::new();
        assert_eq!(a.to_string().parse::<UserId>().ok(), Some(a));
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
