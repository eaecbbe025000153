//! The containment suite: every way out of the sandbox that agentd promises to close, run
//! against the production configuration (`AGENTD_ENV=production` loaded through agentd's own
//! settings loader), with canaries, real listeners and a real agentd server.
//!
//! It needs bubblewrap and root (for the cgroups and the uid switch); without them every test
//! fails with a message saying what to install. The tests run one at a time (see `support`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fail_closed;
mod filesystem;
mod lifecycle;
mod limits;
mod network;
mod output;
mod secrets;
mod support;
