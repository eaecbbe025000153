//! Checks run through the real sandbox (bubblewrap, cgroups): passing, failing and timed-out
//! commands, detection, and `unavailable` whenever a check cannot run.
//!
//! Needs bubblewrap and root, like the sandbox's containment suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod execution;
mod support;
