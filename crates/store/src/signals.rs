//! Signals between nodes: PostgreSQL NOTIFY carries them, one LISTEN connection per node
//! receives them. Notifications are hints (delivered at commit, lost when no one listens), so
//! every waiter also polls; see `agentd_core::signal`.

use std::time::Duration;

use agentd_core::RunId;
use agentd_core::signal::Signal;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

/// Signals buffered per receiver before the oldest are dropped.
pub(crate) const SIGNAL_CAPACITY: usize = 4096;

/// The NOTIFY channel of a schema (an identifier of at most 63 bytes).
pub(crate) fn channel_name(schema: &str) -> String {
    let mut name = format!("agentd_{schema}");
    name.truncate(63);
    name
}

/// `e:<run>:<seq>`, `r`, `c:<run>`.
pub(crate) fn encode(signal: Signal) -> String {
    match signal {
        Signal::RunEvent { run, seq } => format!("e:{run}:{seq}"),
        Signal::RunsReady => "r".to_owned(),
        Signal::CancelRequested { run } => format!("c:{run}"),
    }
}

fn decode(payload: &str) -> Option<Signal> {
    let mut parts = payload.split(':');
    match parts.next()? {
        "e" => Some(Signal::RunEvent {
            run: parts.next()?.parse::<RunId>().ok()?,
            seq: parts.next()?.parse().ok()?,
        }),
        "r" => Some(Signal::RunsReady),
        "c" => Some(Signal::CancelRequested { run: parts.next()?.parse().ok()? }),
        _ => None,
    }
}

/// Forwards notifications on `channel` to `sender` until the task is aborted, reconnecting
/// after failures. While disconnected, notifications are lost: waiters' polling covers them.
pub(crate) async fn listen(pool: PgPool, channel: String, sender: broadcast::Sender<Signal>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::debug!(error = %err, "LISTEN connection failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(&channel).await {
            tracing::debug!(error = %err, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    if let Some(signal) = decode(notification.payload()) {
                        let _ = sender.send(signal);
                    }
                }
                Err(err) => {
                    tracing::debug!(error = %err, "LISTEN connection lost; reconnecting");
                    // Anything may have happened meanwhile: wake every waiter to re-check.
                    let _ = sender.send(Signal::RunsReady);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_through_their_payloads() {
        let run = RunId::new();
        for s in
            [Signal::RunEvent { run, seq: 42 }, Signal::RunsReady, Signal::CancelRequested { run }]
        {
            assert_eq!(decode(&encode(s)), Some(s));
        }
        assert_eq!(decode("x"), None);
        assert_eq!(decode("e:nope:1"), None);
    }

    #[test]
    fn channel_names_fit_an_identifier() {
        assert!(channel_name(&"s".repeat(100)).len() <= 63);
        assert_eq!(channel_name("public"), "agentd_public");
    }
}
