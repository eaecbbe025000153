//! The text form of API keys: `agk_<id>_<secret>`.
//!
//! The id (32 hex digits) finds the stored key; the secret (43 base64url characters) is checked
//! against its stored SHA-256 in constant time. The fixed prefix lets secret scanners and our log
//! scrubber recognise leaked keys.

use agentd_core::ApiKeyId;
use subtle::ConstantTimeEq as _;

use super::secrets::{random_token, sha256};

/// Every key starts with this.
pub const PREFIX: &str = "agk_";

/// A freshly generated key: its text (shown once) and the hash to store.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The key's id.
    pub id: ApiKeyId,
    /// `agk_<id>_<secret>`.
    pub text: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
}

/// Generates a new key.
#[must_use]
pub fn generate() -> GeneratedKey {
    let id = ApiKeyId::new();
    let secret = random_token();
    let text = format!("{PREFIX}{}_{secret}", id.as_uuid().simple());
    GeneratedKey { id, text, secret_hash: sha256(secret.as_bytes()).to_vec() }
}

/// The public beginning of a key, for listings: `agk_<id>_`.
#[must_use]
pub fn display_prefix(id: ApiKeyId) -> String {
    format!("{PREFIX}{}_", id.as_uuid().simple())
}

/// Splits key text into its id and secret; `None` when it is not a well-formed key.
#[must_use]
pub fn parse(text: &str) -> Option<(ApiKeyId, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let id = rest.get(..32)?;
    let secret = rest.get(32..)?.strip_prefix('_')?;
    if secret.len() != 43
        || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let id = uuid::Uuid::try_parse(id).ok()?;
    Some((ApiKeyId::from(id), secret))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
#[must_use]
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    sha256(secret.as_bytes()).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_and_matches_its_hash() {
        let key = generate();
        assert!(key.text.starts_with(&display_prefix(key.id)));
        let (id, secret) = parse(&key.text).unwrap();
        assert_eq!(id, key.id);
        assert!(secret_matches(secret, &key.secret_hash));
        assert!(!secret_matches(&secret.replace(|_: char| true, "a"), &key.secret_hash));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let key = generate();
        for bad in [
            "",
            "agk_",
            "sk-whatever",
            &key.text[..key.text.len() - 1],
            &format!("{}x", key.text),
            &key.text.replacen("agk_", "agx_", 1),
            &key.text.replacen('_', "-", 2),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
