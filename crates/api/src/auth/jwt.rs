//! Access tokens: short-lived HS256 JWTs, the algorithm pinned.
//!
//! A token names its user (`sub`) and session (`sid`); authentication also checks that the
//! session is still live and the user enabled, so logging out or disabling a user ends their
//! access tokens at once, not when they expire.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use agentd_core::{SessionId, UserId};

/// The audience every agentd access token carries.
pub const AUDIENCE: &str = "agentd";

/// The longest token accepted; anything longer is rejected before parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer (the public URL, or `agentd`).
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
    /// A unique token id.
    pub jti: String,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner").field("issuer", &self.issuer).field("ttl", &self.ttl).finish()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the access token has expired")]
    Expired,
    /// Anything else: malformed, wrong signature, algorithm, audience or issuer.
    #[error("the access token is invalid")]
    Invalid,
}

impl TokenSigner {
    /// A signer with a 32-byte key, the issuer and the token lifetime.
    #[must_use]
    pub fn new(key: &[u8; 32], issuer: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_owned(),
            ttl,
        }
    }

    /// How long access tokens live.
    #[must_use]
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user` in `session`, issued `now` (seconds since the epoch).
    ///
    /// # Errors
    /// Only if signing fails, which would be a bug.
    pub fn issue(
        &self,
        user: UserId,
        session: SessionId,
        now: u64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: user.to_string(),
            sid: session.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Verifies signature, algorithm, audience, issuer and expiry, and returns the claims.
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn signer() -> TokenSigner {
        TokenSigner::new(&[7; 32], "agentd", Duration::from_secs(900))
    }

    #[test]
    fn an_issued_token_verifies() {
        let s = signer();
        let (u, sid) = (UserId::new(), SessionId::new());
        let claims = s.verify(&s.issue(u, sid, now()).unwrap()).unwrap();
        assert_eq!(claims.sub, u.to_string());
        assert_eq!(claims.sid, sid.to_string());
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let s = signer();
        let token = s.issue(UserId::new(), SessionId::new(), now() - 1000).unwrap();
        assert_eq!(s.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_issuer_or_audience_is_refused() {
        let s = signer();
        let token = s.issue(UserId::new(), SessionId::new(), now()).unwrap();
        let other_key = TokenSigner::new(&[8; 32], "agentd", Duration::from_secs(900));
        assert_eq!(other_key.verify(&token), Err(TokenError::Invalid));
        let other_issuer =
            TokenSigner::new(&[7; 32], "https://elsewhere", Duration::from_secs(900));
        assert_eq!(other_issuer.verify(&token), Err(TokenError::Invalid));
        let mut claims = s.verify(&token).unwrap();
        claims.aud = "someone-else".into();
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(s.verify(&forged), Err(TokenError::Invalid));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let s = signer();
        let token = s.issue(UserId::new(), SessionId::new(), now()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#] {
            let forged = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(s.verify(&forged), Err(TokenError::Invalid), "{header}");
        }
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let s = signer();
        let token = s.issue(UserId::new(), SessionId::new(), now()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = serde_json::Value::String(UserId::new().to_string());
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert_eq!(s.verify(&parts.join(".")), Err(TokenError::Invalid));
    }

    #[test]
    fn an_oversized_token_is_refused_unparsed() {
        assert_eq!(signer().verify(&"a".repeat(MAX_TOKEN_LEN + 1)), Err(TokenError::Invalid));
    }
}
