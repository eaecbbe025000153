//! Errors the store traits return, in domain terms.

/// A boxed error from an adapter, kept as the `source` of a [`StoreError`] for logs only.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong when the domain talks to its store.
///
/// Adapters map their driver errors into these; callers never see a driver error type.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entity does not exist, or is not visible to the caller.
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for: `user`, `project`, ...
        entity: &'static str,
    },
    /// A uniqueness rule would be broken: an entity with the same key already exists.
    #[error("{entity} with this {field} already exists")]
    Conflict {
        /// The kind of entity.
        entity: &'static str,
        /// The field that must be unique.
        field: &'static str,
    },
    /// A worker wrote with a lease it no longer holds (it expired and another worker took the
    /// run, or the run ended): the worker must stop at once.
    #[error("the lease on this run is no longer held")]
    LeaseLost,
    /// The database cannot be reached right now (connection refused or lost, pool exhausted).
    /// Worth retrying later; reported to clients as 503.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the database reported. A bug or a broken schema; reported as 500.
    #[error("database error")]
    Backend(#[source] BoxError),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;
