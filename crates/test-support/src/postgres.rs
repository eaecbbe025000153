//! PostgreSQL for tests: a fresh schema per test on a shared server, and a throwaway cluster for
//! tests that need to stop and restart the database itself.

// Starting and stopping a PostgreSQL cluster means running its tools.
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use tempfile::TempDir;

const SCHEMA_PREFIX: &str = "agentd_test_";
/// Schemas left behind by crashed test runs are dropped once they are this old.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A schema that exists for one test, dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct Schema {
    admin_url: String,
    name: String,
    url: String,
}

impl Schema {
    /// Creates `agentd_test_<uuid>` on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("{SCHEMA_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
            panic!("AGENTD_TEST_DATABASE_URL is set but the server does not answer: {e}")
        });
        drop_stale_schemas(&mut conn).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let mut url = url::Url::parse(admin_url).unwrap();
        url.query_pairs_mut().append_pair("options", &format!("-c search_path={name}"));
        Self { admin_url: admin_url.to_owned(), name, url: url.to_string() }
    }

    /// The URL whose connections use this schema.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'agentd\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    for (name,) in names {
        let Some(created) = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .and_then(|id| id.get_timestamp())
        else {
            continue;
        };
        let (secs, nanos) = created.to_unix();
        if now.saturating_sub(Duration::new(secs, nanos)) > STALE_AFTER {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own to do async work.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query("SET lock_timeout = '5s'").execute(&mut conn).await;
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A PostgreSQL cluster of our own on a free loopback port, for tests that stop the database.
/// Needs the server binaries (Debian's `postgresql` package); when run as root the cluster runs
/// as the `postgres` user, since PostgreSQL refuses to run as root.
#[derive(Debug)]
pub struct TempCluster {
    dir: TempDir,
    bindir: PathBuf,
    port: u16,
}

impl TempCluster {
    /// The directory holding `initdb` and `pg_ctl`, if PostgreSQL is installed.
    #[must_use]
    pub fn bindir() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    /// Initialises and starts a cluster; panics when PostgreSQL is not installed.
    #[must_use]
    pub fn start() -> Self {
        let bindir = Self::bindir().expect("PostgreSQL server binaries are not installed");
        let dir = tempfile::Builder::new().prefix("agentd-pg-").tempdir().unwrap();
        let port = free_port();
        let cluster = Self { dir, bindir, port };
        cluster.give_to_postgres_user(cluster.dir.path());
        let data = cluster.data_dir();
        cluster.run(&["initdb", "-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.start_again();
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The superuser URL of the cluster's `postgres` database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) cluster again and waits until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.run(&["pg_ctl", "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start"]);
    }

    /// Stops the cluster at once (`-m immediate`: connections are cut, as in a crash).
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// A command running one of the cluster's tools, as the `postgres` user when we are root.
    fn command(&self, tool: &str) -> Command {
        let program = self.bindir.join(tool);
        if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        }
    }

    fn run(&self, args: &[&str]) {
        let output = self
            .command(args[0])
            .args(&args[1..])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} failed: {}{}",
            args[0],
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn give_to_postgres_user(&self, path: &Path) {
        if !running_as_root() {
            return;
        }
        let status =
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).status().unwrap();
        assert!(status.success(), "chown to postgres failed");
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A port that was free a moment ago.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
