//! The `agentd` binary end to end: the real executable, started as users start it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod commands;
mod crash;
mod identity;
mod logs;
mod runs;
mod serve;

use std::path::Path;

use agentd_test_support::process::AgentdProcess;

/// The binary under test.
pub(crate) fn agentd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd"))
}

/// Starts `agentd serve` in `dir` with `envs` (and nothing else from our environment).
pub(crate) fn serve(dir: &Path, envs: &[(&str, &str)]) -> AgentdProcess {
    AgentdProcess::spawn(agentd(), dir, &["serve"], envs)
}

/// A blocking HTTP GET returning the status and body; `None` when no connection could be made.
pub(crate) fn get(url: &str) -> Option<(u16, String)> {
    get_with(url, &[])
}

/// A blocking HTTP GET with extra headers.
pub(crate) fn get_with(url: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut request = client.get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().unwrap_or_default()))
}
