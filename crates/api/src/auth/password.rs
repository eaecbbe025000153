//! Password hashing with argon2id, off the async runtime.
//!
//! Hashing takes tens of milliseconds of CPU by design; it runs on tokio's blocking pool so that
//! it never stalls the threads serving other requests. Unknown accounts are verified against a
//! dummy hash so that a sign-in attempt takes as long whether or not the email exists.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use super::secrets;
use crate::error::ApiError;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Iterations (OWASP: 2).
    pub iterations: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2 }
    }
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    /// Made on first use, not at start-up: start-up must stay fast.
    dummy_hash: Arc<tokio::sync::OnceCell<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

/// The hash could not be computed (invalid parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHasher {
    /// A hasher with the given cost.
    ///
    /// # Errors
    /// When the parameters are out of argon2's range.
    pub fn new(cost: HashCost) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| HashError(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        Ok(Self { argon2: Arc::new(argon2), dummy_hash: Arc::default() })
    }

    /// Hashes `password` to a PHC string (`$argon2id$v=19$…`).
    ///
    /// # Errors
    /// `internal_error` if hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            argon2.hash_password(password.as_bytes()).map(|h| h.to_string())
        })
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|e| ApiError::Internal(Box::new(HashError(e.to_string()))))
    }

    /// Whether `password` matches `hash`. With `None` (no such account) a dummy hash is checked
    /// instead, and the answer is always `false`.
    pub async fn verify(&self, hash: Option<String>, password: String) -> bool {
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash,
            None => {
                let dummy = self
                    .dummy_hash
                    .get_or_try_init(|| {
                        let random: [u8; 16] = rand::random();
                        self.hash(secrets::hex(&random))
                    })
                    .await;
                match dummy {
                    Ok(hash) => hash.clone(),
                    Err(_) => return false,
                }
            }
        };
        let argon2 = self.argon2.clone();
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost { memory_kib: 64, iterations: 1 };

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let hasher = PasswordHasher::new(CHEAP).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(hasher.verify(Some(hash.clone()), "correct horse".into()).await);
        assert!(!hasher.verify(Some(hash), "wrong horse".into()).await);
        assert!(!hasher.verify(None, "correct horse".into()).await);
        assert!(!hasher.verify(Some("not a hash".into()), "x".into()).await);
    }

    #[tokio::test]
    async fn hashes_are_salted() {
        let hasher = PasswordHasher::new(CHEAP).unwrap();
        let a = hasher.hash("same".into()).await.unwrap();
        let b = hasher.hash("same".into()).await.unwrap();
        assert_ne!(a, b);
    }
}
