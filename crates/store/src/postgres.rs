//! The PostgreSQL backend: one pool shared by readers and writers.

use std::str::FromStr;
use std::sync::Arc;

use agentd_core::{Clock, StoreResult};
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use time::OffsetDateTime;

use agentd_core::signal::{Signal, Signals};

use crate::DatabaseOptions;
use crate::error::{map_err, map_migrate_err};
use crate::signals::{self, SIGNAL_CAPACITY};

/// The store on a PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    signals: tokio::sync::broadcast::Sender<Signal>,
    /// The NOTIFY channel: one per schema, so that databases shared by test schemas (or
    /// deployments) do not hear each other.
    channel: String,
    listener: tokio::task::JoinHandle<()>,
}

/// Whether to skip TLS: the URL names a loopback host or a socket and neither it nor `PGSSLMODE`
/// chose a mode. The default mode (`prefer`) would negotiate TLS, which protects nothing on the
/// host's own loopback and costs every new connection a handshake.
fn plain_on_loopback(url: &str, connect: &PgConnectOptions) -> bool {
    let chosen =
        url.to_ascii_lowercase().contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    let host = connect.get_host();
    let loopback = host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !chosen && loopback
}

impl PgStore {
    pub(crate) async fn connect(
        options: &DatabaseOptions,
        clock: Arc<dyn Clock>,
    ) -> StoreResult<Self> {
        let url = options.url.expose_secret();
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| map_err("database", e))?
            .application_name("agentd");
        if plain_on_loopback(url, &connect) {
            connect = connect.ssl_mode(PgSslMode::Disable);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections))
            .acquire_timeout(options.connect_timeout)
            // A connection that died with the server is noticed before it is handed out.
            .test_before_acquire(true)
            .connect_with(connect.clone())
            .await
            .map_err(|e| map_err("database", e))?;
        let (schema,): (String,) = sqlx::query_as("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(|e| map_err("database", e))?;
        let channel = signals::channel_name(&schema);
        let signals = tokio::sync::broadcast::channel(SIGNAL_CAPACITY).0;
        let listener =
            tokio::spawn(signals::listen(pool.clone(), channel.clone(), signals.clone()));
        Ok(Self { pool, clock, signals, channel, listener })
    }

    pub(crate) fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// The claim query of this backend (see `runs.rs`).
    pub(crate) const CLAIM_SQL: &'static str = crate::runs::CLAIM_POSTGRES;

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Announces `signal` to every node: delivered by PostgreSQL when the transaction commits.
    pub(crate) async fn announce(
        &self,
        conn: &mut sqlx::PgConnection,
        signal: Signal,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(signals::encode(signal))
            .execute(conn)
            .await
            .map(drop)
    }

    /// The NOTIFY channel, for statements that announce a signal themselves.
    pub(crate) fn notify_channel(&self) -> Option<&str> {
        Some(&self.channel)
    }

    /// Notifies every node of `signals` with one statement.
    pub(crate) async fn announce_all(
        &self,
        conn: &mut sqlx::PgConnection,
        signals: &[Signal],
    ) -> Result<(), sqlx::Error> {
        if signals.is_empty() {
            return Ok(());
        }
        let payloads: Vec<String> = signals.iter().map(|s| signals::encode(*s)).collect();
        sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(&self.channel)
            .bind(payloads)
            .execute(conn)
            .await
            .map(drop)
    }

    /// Tells this node's waiters at once (the NOTIFY reaches them too, a little later).
    pub(crate) fn broadcast(&self, signal: Signal) {
        let _ = self.signals.send(signal);
    }

    /// Opens the transaction of a queue claim (the claim locks its rows with SKIP LOCKED).
    pub(crate) async fn begin_claim(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    pub(crate) async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await.map_err(map_migrate_err)
    }

    pub(crate) async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }
}

impl Signals for PgStore {
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(url: &str) -> bool {
        plain_on_loopback(url, &PgConnectOptions::from_str(url).unwrap())
    }

    #[test]
    fn tls_is_skipped_only_on_loopback_when_no_mode_was_chosen() {
        assert!(plain("postgres://u@127.0.0.1:5432/db"));
        assert!(plain("postgres://u@localhost/db"));
        assert!(plain("postgres://u@[::1]:5432/db"));
        assert!(!plain("postgres://u@127.0.0.1:5432/db?sslmode=require"));
        assert!(!plain("postgres://u@127.0.0.1:5432/db?SSLMODE=prefer"));
        assert!(!plain("postgres://u@db.internal:5432/db"));
        assert!(!plain("postgres://u@10.0.0.5/db"));
    }
}
