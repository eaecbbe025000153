//! Authentication: sign-in, sessions, tokens, API keys, cookies and the checks on every request.
//!
//! [`Auth`] owns the keys derived from `AGENTD_SECRET_KEY` and the policies (token lifetimes,
//! lock-outs); the `authenticate` middleware (in `middleware.rs`) turns a request's credentials
//! into a [`Principal`] or a 401. Every sign-in, refresh and sign-out, and every refused
//! credential, is logged as a security event under the `agentd::security` target with the
//! outcome, the client address and a non-reversible account reference: never a password,
//! token or key.

pub mod api_key;
pub mod cookies;
pub mod jwt;
pub(crate) mod middleware;
pub mod password;
pub mod secrets;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use agentd_core::auth::{Credential, Principal, RefreshOutcome};
use agentd_core::user::{User, normalize_email};
use agentd_core::{SessionId, Store, StoreError};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use time::OffsetDateTime;

use crate::error::ApiError;
use jwt::{TokenError, TokenSigner};
use password::PasswordHasher;

/// The security-event log target.
pub const SECURITY: &str = "agentd::security";

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The `iss` of access tokens: the public URL, or `agentd`.
    pub issuer: String,
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// Refresh-token lifetime (each rotation starts a new one).
    pub refresh_ttl: Duration,
    /// Failed sign-ins allowed per account before lock-outs start.
    pub account_free_failures: u32,
    /// Failed sign-ins allowed per client address before lock-outs start.
    pub address_free_failures: u32,
    /// Whether cookies get the `Secure` attribute (the public URL is https).
    pub secure_cookies: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "agentd".into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            account_free_failures: 5,
            address_free_failures: 20,
            secure_cookies: false,
        }
    }
}

/// The longest lock-out.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// How often an API key's `last_used_at` is written at most.
const TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// Authentication services.
#[derive(Debug, Clone)]
pub struct Auth {
    store: Arc<dyn Store>,
    signer: TokenSigner,
    hasher: PasswordHasher,
    account_ref_key: [u8; 32],
    config: AuthConfig,
}

/// Tokens for a new or refreshed session.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The JWT.
    pub access_token: String,
    /// The single-use refresh token.
    pub refresh_token: String,
    /// Access-token lifetime.
    pub expires_in: Duration,
}

/// Where the credentials of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization` or `X-API-Key`: not sent by browsers on their own, so no CSRF risk.
    Header,
    /// The session cookie: browsers attach it to cross-site requests, so state-changing
    /// requests need the CSRF checks.
    Cookie,
}

/// Why credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// None were presented.
    #[error("authentication required: send Authorization: Bearer <token> or X-API-Key")]
    Missing,
    /// They are malformed, forged or unknown (or the password is wrong).
    #[error("invalid credentials")]
    Invalid,
    /// The access token or API key has expired.
    #[error("the credentials have expired")]
    Expired,
    /// The session was ended or the key revoked.
    #[error("the session has ended or the key was revoked")]
    Revoked,
    /// The user is disabled.
    #[error("the account is disabled")]
    Disabled,
    /// Too many failed sign-ins.
    #[error("too many failed sign-ins; try again later")]
    Locked {
        /// When to try again.
        retry_after: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing
            | AuthError::Invalid
            | AuthError::Expired
            | AuthError::Revoked
            | AuthError::Disabled => Self::Unauthorized(err.to_string()),
            AuthError::Locked { retry_after } => Self::RateLimited { retry_after },
            AuthError::Store(e) => e.into(),
        }
    }
}

impl Auth {
    /// Builds the service from the root secret.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        root_secret: &[u8],
        hasher: PasswordHasher,
        config: AuthConfig,
    ) -> Self {
        let jwt_key = secrets::derive_key(root_secret, "agentd/access-token/v1");
        let account_ref_key = secrets::derive_key(root_secret, "agentd/account-ref/v1");
        let signer = TokenSigner::new(&jwt_key, &config.issuer, config.access_ttl);
        Self { store, signer, hasher, account_ref_key, config }
    }

    /// The password hasher.
    #[must_use]
    pub const fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The settings.
    #[must_use]
    pub const fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// A non-reversible reference to an account, for logs: the first 16 hex digits of an HMAC
    /// of the normalised email.
    #[must_use]
    pub fn account_ref(&self, email: &str) -> String {
        let mac = secrets::hmac(&self.account_ref_key, normalize_email(email).as_bytes());
        secrets::hex(&mac[..8])
    }

    /// Signs in with email and password, subject to the lock-outs.
    ///
    /// # Errors
    /// `Locked` while a lock-out holds, `Invalid` for a wrong email or password (the same
    /// answer for both), `Disabled`.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        client: IpAddr,
    ) -> Result<(User, IssuedTokens), AuthError> {
        let account = self.account_ref(email);
        let account_key = format!("account:{account}");
        let address_key = format!("address:{client}");
        let now = OffsetDateTime::now_utc();
        for key in [&account_key, &address_key] {
            if let Some(until) = self.store.lockout(key).await?.locked_until
                && until > now
            {
                let retry_after = Duration::try_from(until - now).unwrap_or(MAX_LOCKOUT);
                security_event("login", "locked", client, &account);
                return Err(AuthError::Locked { retry_after });
            }
        }
        let user = match self.store.user_by_email(email).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let matched =
            self.hasher.verify(user.as_ref().map(|u| u.password_hash.clone()), password).await;
        let user = match user {
            Some(user) if matched => user,
            _ => {
                self.record_failure(&account_key, self.config.account_free_failures).await?;
                self.record_failure(&address_key, self.config.address_free_failures).await?;
                security_event("login", "bad_credentials", client, &account);
                return Err(AuthError::Invalid);
            }
        };
        if user.disabled {
            security_event("login", "disabled", client, &account);
            return Err(AuthError::Disabled);
        }
        self.store.clear_lockout(&account_key).await?;
        let tokens = self.start_session(&user).await?;
        security_event("login", "success", client, &account);
        Ok((user, tokens))
    }

    async fn record_failure(&self, key: &str, free: u32) -> Result<(), AuthError> {
        let failures = self.store.record_failure(key).await?;
        if let Some(lock) = lockout_duration(failures, free) {
            let until = OffsetDateTime::now_utc() + lock;
            self.store.lock_until(key, until).await?;
        }
        Ok(())
    }

    async fn start_session(&self, user: &User) -> Result<IssuedTokens, AuthError> {
        let refresh_token = secrets::random_token();
        let refresh_expires = OffsetDateTime::now_utc() + self.config.refresh_ttl;
        let session = self
            .store
            .create_session(user.id, &secrets::sha256(refresh_token.as_bytes()), refresh_expires)
            .await?;
        Ok(IssuedTokens {
            access_token: self.access_token(user.id, session.id)?,
            refresh_token,
            expires_in: self.signer.ttl(),
        })
    }

    fn access_token(
        &self,
        user: agentd_core::UserId,
        session: SessionId,
    ) -> Result<String, AuthError> {
        let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or_default();
        self.signer
            .issue(user, session, now)
            .map_err(|e| AuthError::Store(StoreError::Backend(Box::new(e))))
    }

    /// Exchanges a refresh token for new tokens. A token presented twice revokes its session.
    ///
    /// # Errors
    /// `Invalid` (unknown or reused), `Expired`, `Disabled`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: IpAddr,
    ) -> Result<IssuedTokens, AuthError> {
        let new_token = secrets::random_token();
        let outcome = self
            .store
            .rotate_refresh_token(
                &secrets::sha256(refresh_token.as_bytes()),
                &secrets::sha256(new_token.as_bytes()),
                OffsetDateTime::now_utc() + self.config.refresh_ttl,
            )
            .await?;
        let session = match outcome {
            RefreshOutcome::Rotated { session } => session,
            RefreshOutcome::Reused { session_id } => {
                tracing::warn!(
                    target: SECURITY,
                    event = "refresh",
                    outcome = "reuse_detected",
                    client = %client,
                    session = %session_id,
                    "a used refresh token was presented again; its session is revoked"
                );
                return Err(AuthError::Invalid);
            }
            RefreshOutcome::Expired => {
                security_event("refresh", "expired", client, "-");
                return Err(AuthError::Expired);
            }
            RefreshOutcome::Unknown => {
                security_event("refresh", "unknown_token", client, "-");
                return Err(AuthError::Invalid);
            }
        };
        let (_, user) = self.store.session_with_user(session.id).await?;
        let account = self.account_ref(&user.email);
        if user.disabled {
            self.store.revoke_session(session.id).await?;
            security_event("refresh", "disabled", client, &account);
            return Err(AuthError::Disabled);
        }
        security_event("refresh", "success", client, &account);
        Ok(IssuedTokens {
            access_token: self.access_token(user.id, session.id)?,
            refresh_token: new_token,
            expires_in: self.signer.ttl(),
        })
    }

    /// Ends the caller's session, and the session of `refresh_token` if one is given.
    ///
    /// # Errors
    /// Store failures.
    pub async fn logout(
        &self,
        principal: &Principal,
        refresh_token: Option<&str>,
        client: IpAddr,
    ) -> Result<(), AuthError> {
        if let Credential::Session { session_id } = &principal.credential {
            self.store.revoke_session(*session_id).await?;
        }
        if let Some(token) = refresh_token {
            self.store.revoke_session_of_token(&secrets::sha256(token.as_bytes())).await?;
        }
        security_event("logout", "success", client, &principal.user_id.to_string());
        Ok(())
    }

    /// Ends the session a refresh token belongs to (sign-out of a cookie session whose access
    /// token has expired).
    ///
    /// # Errors
    /// Store failures.
    pub async fn logout_refresh_token(
        &self,
        refresh_token: &str,
        client: IpAddr,
    ) -> Result<(), AuthError> {
        self.store.revoke_session_of_token(&secrets::sha256(refresh_token.as_bytes())).await?;
        security_event("logout", "success", client, "-");
        Ok(())
    }

    /// The principal a request's credentials establish.
    ///
    /// # Errors
    /// [`AuthError`] when none are presented or they are refused.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<(Principal, CredentialSource), AuthError> {
        let result = self.authenticate_inner(headers).await;
        if let Err(err) = &result
            && !matches!(err, AuthError::Missing | AuthError::Store(_))
        {
            tracing::warn!(
                target: SECURITY,
                event = "authenticate",
                outcome = %err,
                client = %client,
                "credentials refused"
            );
        }
        result
    }

    async fn authenticate_inner(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Principal, CredentialSource), AuthError> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let value = value.to_str().map_err(|_| AuthError::Invalid)?;
            let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError::Invalid);
            }
            let token = token.trim();
            let principal = if token.starts_with(api_key::PREFIX) {
                self.principal_from_key(token).await?
            } else {
                self.principal_from_token(token).await?
            };
            return Ok((principal, CredentialSource::Header));
        }
        if let Some(value) = headers.get("x-api-key") {
            let key = value.to_str().map_err(|_| AuthError::Invalid)?;
            return Ok((self.principal_from_key(key.trim()).await?, CredentialSource::Header));
        }
        if let Some(token) = cookies::get(headers, cookies::SESSION) {
            return Ok((self.principal_from_token(&token).await?, CredentialSource::Cookie));
        }
        Err(AuthError::Missing)
    }

    async fn principal_from_token(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.signer.verify(token).map_err(|e| match e {
            TokenError::Expired => AuthError::Expired,
            TokenError::Invalid => AuthError::Invalid,
        })?;
        let session: SessionId = claims.sid.parse().map_err(|_| AuthError::Invalid)?;
        let (session, user) = match self.store.session_with_user(session).await {
            Ok(found) => found,
            Err(StoreError::NotFound { .. }) => return Err(AuthError::Invalid),
            Err(e) => return Err(e.into()),
        };
        if user.id.to_string() != claims.sub {
            return Err(AuthError::Invalid);
        }
        if session.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        Ok(Principal {
            user_id: user.id,
            role: user.role,
            credential: Credential::Session { session_id: session.id },
        })
    }

    async fn principal_from_key(&self, text: &str) -> Result<Principal, AuthError> {
        let (id, secret) = api_key::parse(text).ok_or(AuthError::Invalid)?;
        let key = match self.store.api_key(id).await {
            Ok(key) => key,
            Err(StoreError::NotFound { .. }) => return Err(AuthError::Invalid),
            Err(e) => return Err(e.into()),
        };
        if !api_key::secret_matches(secret, &key.secret_hash) {
            return Err(AuthError::Invalid);
        }
        let now = OffsetDateTime::now_utc();
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::Expired);
        }
        let owner = self.store.user(key.owner_id).await?;
        if owner.disabled {
            return Err(AuthError::Disabled);
        }
        if key.last_used_at.is_none_or(|t| t < now - TOUCH_INTERVAL) {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(err) = store.touch_api_key(key.id, now, now - TOUCH_INTERVAL).await {
                    tracing::debug!(error = %err, "could not record API key use");
                }
            });
        }
        Ok(Principal {
            user_id: owner.id,
            role: owner.role,
            credential: Credential::ApiKey { key_id: key.id, scopes: key.scopes },
        })
    }
}

/// The lock-out after `failures` consecutive failures when `free` are allowed: none up to
/// `free`, then 1 s doubling with each further failure, at most 15 minutes.
#[must_use]
pub fn lockout_duration(failures: u32, free: u32) -> Option<Duration> {
    let over = failures.checked_sub(free)?;
    let secs = 1u64.checked_shl(over.min(20)).unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_LOCKOUT))
}

fn security_event(event: &str, outcome: &str, client: IpAddr, account: &str) {
    tracing::info!(target: SECURITY, event, outcome, client = %client, account, "auth");
}

#[cfg(test)]
mod tests {
    use super::lockout_duration;
    use std::time::Duration;

    #[test]
    fn lockouts_start_after_the_free_failures_and_grow_to_a_cap() {
        assert_eq!(lockout_duration(4, 5), None);
        assert_eq!(lockout_duration(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(lockout_duration(6, 5), Some(Duration::from_secs(2)));
        assert_eq!(lockout_duration(9, 5), Some(Duration::from_secs(16)));
        assert_eq!(lockout_duration(40, 5), Some(Duration::from_secs(900)));
        assert_eq!(lockout_duration(u32::MAX, 5), Some(Duration::from_secs(900)));
    }
}
