//! agentd as a running process: settings, telemetry, startup, serving and graceful shutdown.
//!
//! The binary (`agentd-cli`) parses arguments and calls into this crate; tests build
//! [`Settings`] values and start an [`Application`] on port 0. Nothing here holds business
//! logic: it wires the store, the API and (later) the workers together.

pub mod admin;
pub mod scrub;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::{ConfigError, Environment, LogFormat, Settings};
pub use startup::{Application, StartupError, open_database, serve, work};
