//! Operator commands that act on the store directly (no server needed): bootstrapping users,
//! the retention cleanup.

use agentd_core::StoreError;
use agentd_core::user::{NewUser, Role, User, validate_email, validate_password};

use crate::settings::Settings;
use crate::startup::{StartupError, open_database, password_hasher};

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The email or password is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// `email` or `password`.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// A user with this email exists.
    #[error("a user with this email already exists")]
    Exists,
    /// The database could not be opened.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[source] StoreError),
    /// Hashing failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Creates a user with `password` (`agentd users create`).
///
/// # Errors
/// [`CreateUserError`].
pub async fn create_user(
    settings: &Settings,
    email: &str,
    password: String,
    role: Role,
) -> Result<User, CreateUserError> {
    validate_email(email)
        .map_err(|message| CreateUserError::Invalid { field: "email", message })?;
    validate_password(&password)
        .map_err(|message| CreateUserError::Invalid { field: "password", message })?;
    let database = open_database(settings).await?;
    let hash = password_hasher(settings)?
        .hash(password)
        .await
        .map_err(|e| CreateUserError::Hash(e.to_string()))?;
    let result = database
        .store()
        .create_user(NewUser { email: email.to_owned(), password_hash: hash, role })
        .await;
    database.close().await;
    result.map_err(|e| match e {
        StoreError::Conflict { .. } => CreateUserError::Exists,
        other => CreateUserError::Store(other),
    })
}

/// Why the cleanup failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// The database could not be opened.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The store failed (what was deleted before stays deleted).
    #[error("the store failed: {0}")]
    Store(#[source] StoreError),
}

/// Deletes, once, what the retention sweep deletes (`agentd cleanup`): conversations idle longer
/// than `AGENTD_CONVERSATION_TTL_HOURS` and finished runs older than `AGENTD_RUN_RETENTION_DAYS`.
///
/// # Errors
/// [`CleanupError`].
pub async fn cleanup(settings: &Settings) -> Result<agentd_runner::Cleanup, CleanupError> {
    let database = open_database(settings).await?;
    let config = settings.runner_config();
    let result = agentd_runner::cleanup(
        database.store().as_ref(),
        config.conversation_ttl,
        config.run_retention,
    )
    .await;
    database.close().await;
    result.map_err(CleanupError::Store)
}
