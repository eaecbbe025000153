//! Wire types of the agentd HTTP API.
//!
//! Everything a client sees on the wire is defined here: request and response bodies, the error
//! envelope and its stable `type` values. The types carry serde and OpenAPI (utoipa) derives and
//! nothing else: no HTTP framework, no database, no domain logic. JSON is snake_case, ids are
//! strings, timestamps are RFC 3339 UTC in `*_at` fields.

pub mod approval;
pub mod auth;
pub mod conversation;
pub mod error;
pub mod file;
pub mod health;
pub mod job;
pub mod list;
pub mod project;
pub mod run;
pub mod usage;

pub use error::{ErrorBody, ErrorDetail, ErrorEnvelope, ErrorType};
pub use health::{Health, Readiness, ReadinessCheck, SandboxSummary, SystemCapabilities};
pub use list::{ListResponse, PageQuery};
