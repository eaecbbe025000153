//! Logging, initialised once per process: pretty or JSON lines on stderr, filtered by
//! `AGENTD_LOG`, every line passed through the scrubbing writer. Panics are logged as events, so
//! that even a panic's report is one well-formed (JSON) line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::scrub::ScrubbingMakeWriter;
use crate::settings::{LogFormat, Settings};

/// Installs the global subscriber and the panic hook.
///
/// # Errors
/// When the filter is invalid (already rejected by validation) or a subscriber is already set.
pub fn init(settings: &Settings) -> anyhow::Result<()> {
    init_with_writer(settings, BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal())
}

/// Installs the global subscriber writing to `writer`; `ansi` colours pretty output.
///
/// # Errors
/// When the filter is invalid or a subscriber is already set.
pub fn init_with_writer(
    settings: &Settings,
    writer: BoxMakeWriter,
    ansi: bool,
) -> anyhow::Result<()> {
    let filter = EnvFilter::builder().parse(&settings.log.filter)?;
    let writer = ScrubbingMakeWriter::new(writer);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match settings.log_format() {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_ansi(ansi).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("could not install the log subscriber: {e}"))?;
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic.message = %message, panic.location = location.as_deref().unwrap_or("-"), "panic");
    }));
    Ok(())
}
