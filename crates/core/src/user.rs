//! Users: the humans who sign in, own projects and decide approvals.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::UserId;

/// What a user may do beyond their own resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users and sees every tenant's resources.
    Admin,
    /// Works on their own resources only.
    Member,
}

impl Role {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not `admin` or `member`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected admin or member")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The sign-in email, stored lower-cased; unique.
    pub email: String,
    /// The PHC-format password hash (argon2id). Never leaves the server.
    pub password_hash: String,
    /// The user's role.
    pub role: Role,
    /// A disabled user cannot sign in and their credentials stop working.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: OffsetDateTime,
    /// When the user was last changed.
    pub updated_at: OffsetDateTime,
}

/// What it takes to create a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The sign-in email; normalised to lower case by [`normalize_email`] before storing.
    pub email: String,
    /// The already-computed password hash.
    pub password_hash: String,
    /// The role.
    pub role: Role,
}

/// The canonical form of an email address for uniqueness and look-ups: trimmed, lower-cased.
#[must_use]
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    /// A new role.
    pub role: Option<Role>,
    /// Disable or re-enable.
    pub disabled: Option<bool>,
    /// A new password hash.
    pub password_hash: Option<String>,
}

/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks that `email` (after normalisation) looks like an address: one `@`, a non-empty local
/// part, a domain with a dot, no whitespace or control characters, at most [`MAX_EMAIL_LEN`]
/// bytes. Deliverability is not checked.
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_email(email: &str) -> Result<(), &'static str> {
    let email = email.trim();
    if email.is_empty() {
        return Err("must not be empty");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err("must be at most 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must contain @");
    };
    if local.is_empty() || domain.contains('@') {
        return Err("must have exactly one @ with text before it");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return Err("must have a domain such as example.com");
    }
    Ok(())
}

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password accepted (hashing cost is proportional to length).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks a new password's length.
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_password(password: &str) -> Result<(), &'static str> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err("must be at least 8 characters");
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err("must be at most 1024 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_emails_pass_and_others_fail() {
        for ok in ["a@b.co", "Ada.Lovelace+x@example.com", " x@y.org "] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in ["", "nobody", "@example.com", "a@b", "a@@b.com", "a b@c.com", "a@b..com", &long]
        {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(2000)).is_err());
    }
}
