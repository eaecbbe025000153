//! Keys derived from the root secret, and the random tokens agentd hands out.
//!
//! Each purpose gets its own key, `HMAC-SHA256(AGENTD_SECRET_KEY, label)`, so that a key of one
//! purpose never verifies anything of another. Tokens that are looked up (refresh tokens, API key
//! secrets) are stored as plain SHA-256: they carry 256 bits of randomness, so a slow hash would
//! add nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// `HMAC-SHA256(secret, label)`.
#[must_use]
pub fn derive_key(secret: &[u8], label: &str) -> [u8; 32] {
    hmac(secret, label.as_bytes())
}

/// `HMAC-SHA256(key, data)`.
#[must_use]
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    #[allow(clippy::expect_used)] // HMAC takes keys of any length: this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// 32 random bytes as unpadded base64url (43 characters).
#[must_use]
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_label_and_secret() {
        assert_ne!(derive_key(b"s", "a"), derive_key(b"s", "b"));
        assert_ne!(derive_key(b"s", "a"), derive_key(b"t", "a"));
        assert_eq!(derive_key(b"s", "a"), derive_key(b"s", "a"));
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn random_tokens_are_43_url_safe_characters() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(t, random_token());
    }
}
