//! Workspace tests: directory workspaces on a real filesystem, managed workspaces on a real
//! database, and the attacks both must withstand (traversal payloads, symbolic links, races).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod directory;
mod fixture;
mod normaliser_property;
mod symlink_race;
mod symlinks;
mod traversal;
