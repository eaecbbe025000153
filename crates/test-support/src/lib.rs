//! Test helpers shared by every crate's tests.
//!
//! - [`spawn_app`]: the real server, in-process, on a random port of 127.0.0.1 with a fresh
//!   database, driven over a real socket.
//! - [`TestDatabase`]: a fresh SQLite file, or a fresh PostgreSQL schema when
//!   `AGENTD_TEST_DATABASE_URL` is set, for the store contract suite.
//! - [`approvals`]: runs parked on an approval, arranged through the store.
//! - [`process`]: the `agentd` binary as a child process, with its log lines captured.
//! - [`postgres`]: a throwaway PostgreSQL cluster the tests may stop and start.
//! - [`traversal`]: a path-traversal corpus (generated encodings and the `wfuzz` word lists).
//! - [`llm`]: scripted fake servers for the OpenAI, Anthropic and Gemini wire protocols, with
//!   fault injection, recording the requests they receive.
//! - [`canary`]: a workspace directory with canaries outside it, and a snapshot of the outside.
//! - [`raw_http`]: HTTP/1.1 requests sent byte for byte, request target included.
//! - [`retention`]: rows written as if days ago, for the retention sweep.
//!
//! Helpers panic on failure: a broken fixture should fail the test loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod approvals;
pub mod canary;
pub mod llm;
pub mod postgres;
pub mod process;
pub mod raw_http;
pub mod retention;
pub mod traversal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agentd_api::auth::password::{HashCost, PasswordHasher};
use agentd_core::Store;
use agentd_core::user::{NewUser, Role, User};

use agentd_server::{Application, Settings};
use agentd_store::{Backend, Database};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The variable that points the PostgreSQL variants of the tests at a server:
/// `postgres://user@host:port/db` of a role allowed to create schemas.
pub const TEST_DATABASE_URL_VAR: &str = "AGENTD_TEST_DATABASE_URL";

/// The variable that points the Redis tests at a server: `redis://127.0.0.1:6379`.
pub const TEST_REDIS_URL_VAR: &str = "AGENTD_TEST_REDIS_URL";

/// The Redis URL for tests, if configured.
#[must_use]
pub fn redis_url() -> Option<String> {
    std::env::var(TEST_REDIS_URL_VAR).ok().filter(|s| !s.is_empty())
}

/// The PostgreSQL URL for tests, if configured.
#[must_use]
pub fn postgres_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL_VAR).ok().filter(|s| !s.is_empty())
}

/// A fresh, empty database for one test: a new SQLite file, or a new schema on the test
/// PostgreSQL server (dropped when this value is dropped).
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL to open it with.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    _dir: Option<TempDir>,
    _schema: Option<postgres::Schema>,
}

impl TestDatabase {
    /// A new SQLite database in a temporary directory.
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("agentd.db").display());
        Self { url, backend: Backend::Sqlite, _dir: Some(dir), _schema: None }
    }

    /// A new schema on the server named by `AGENTD_TEST_DATABASE_URL`, or `None` when the
    /// variable is unset.
    pub async fn postgres() -> Option<Self> {
        let admin = postgres_url()?;
        let schema = postgres::Schema::create(&admin).await;
        Some(Self {
            url: schema.url().to_owned(),
            backend: Backend::Postgres,
            _dir: None,
            _schema: Some(schema),
        })
    }

    /// A fresh database of the given backend (`None` for PostgreSQL when not configured).
    pub async fn of(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// Opens and migrates it.
    pub async fn open(&self) -> Database {
        let mut settings = Settings::default();
        settings.database.url = Some(SecretString::from(self.url.clone()));
        agentd_server::open_database(&settings).await.unwrap()
    }
}

/// The secret key of test servers, so that tests can forge tokens the way an attacker who
/// knew it could (and check the server tells forgeries apart).
pub const TEST_SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789abcdef";

/// A password every user created by [`TestApp::user`] has.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// A server running in this process.
#[derive(Debug)]
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The store it uses (for arranging fixtures directly).
    pub store: Arc<dyn Store>,
    /// A client with no default headers and a 30 s timeout.
    pub client: reqwest::Client,
    /// The database it uses.
    pub database: TestDatabase,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: TempDir,
}

impl TestApp {
    /// `http://127.0.0.1:port` + `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a user with [`TEST_PASSWORD`].
    pub async fn user(&self, email: &str, role: Role) -> User {
        let hasher = PasswordHasher::new(CHEAP_HASH).unwrap();
        let password_hash = hasher.hash(TEST_PASSWORD.to_owned()).await.unwrap();
        self.store.create_user(NewUser { email: email.into(), password_hash, role }).await.unwrap()
    }

    /// Signs in and returns the access and refresh tokens.
    pub async fn login(&self, email: &str) -> (String, String) {
        let res = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": TEST_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "login failed: {}", res.text().await.unwrap_or_default());
        let body: serde_json::Value = res.json().await.unwrap();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a user and signs them in; returns the user and an access token.
    pub async fn signed_in(&self, email: &str, role: Role) -> (User, String) {
        let user = self.user(email, role).await;
        let (access, _) = self.login(email).await;
        (user, access)
    }

    /// Creates a managed project owned by `owner`.
    pub async fn project(&self, owner: &User) -> agentd_core::project::Project {
        self.store
            .create_project(agentd_core::project::NewProject::managed(owner.id, "test project"))
            .await
            .unwrap()
    }

    /// Stops the server gracefully and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Settings for a test server: port 0 on loopback, a temporary data dir, debug routes on.
#[must_use]
pub fn test_settings(data_dir: PathBuf, database_url: &str) -> Settings {
    let mut settings = Settings::default();
    settings.http.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.http.debug_routes = true;
    settings.data_dir = data_dir;
    settings.database.url = Some(SecretString::from(database_url.to_owned()));
    settings.shutdown_grace_seconds = 5;
    settings.secret_key = Some(SecretString::from(TEST_SECRET_KEY.to_owned()));
    settings.auth.password_hash_memory_kib = CHEAP_HASH.memory_kib;
    settings.auth.password_hash_iterations = CHEAP_HASH.iterations;
    // Tests make many requests from one address; the rate-limit tests turn limits back on.
    settings.rate_limit.per_minute = 0;
    settings.rate_limit.runs_per_minute = 0;
    // Runs that fail transiently are retried soon and not forever.
    settings.runs.retry_base_seconds = 1;
    settings.runs.max_attempts = 2;
    settings.runs.rescue_interval_seconds = 1;
    settings
}

/// Password hashing cheap enough for tests (the production cost is set by settings).
pub const CHEAP_HASH: HashCost = HashCost { memory_kib: 64, iterations: 1 };

/// Starts the server with a fresh SQLite database and default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestDatabase::sqlite(), |_| {}).await
}

/// Points `settings` at `fake` as the only language model (`fake/test-model`) for every agent.
pub fn use_fake_llm(settings: &mut Settings, fake: &llm::FakeLlm) {
    let kind = match fake.protocol() {
        llm::Protocol::Openai => agentd_llm::ProviderKind::Openai,
        llm::Protocol::Anthropic => agentd_llm::ProviderKind::Anthropic,
        llm::Protocol::Gemini => agentd_llm::ProviderKind::Gemini,
    };
    settings.llm.providers.insert(
        "fake".into(),
        agentd_llm::ProviderSettings {
            kind,
            base_url: Some(fake.base_url()),
            api_key_env: None,
            api_key: Some(SecretString::from("sk-test-fake-provider-key".to_owned())),
            timeout_seconds: 30,
            connect_timeout_seconds: 5,
            first_byte_timeout_seconds: 30,
            idle_timeout_seconds: 30,
            stream_timeout_seconds: 60,
        },
    );
    settings.llm.default_model = Some("fake/test-model".into());
    // Retries inside the LLM layer are tested there; here a failure should surface quickly.
    settings.llm.retry.max_attempts = 1;
}

/// Starts the server with a fake OpenAI-compatible model, after `configure` adjusts the test
/// settings (workers run in the server).
pub async fn spawn_app_with_llm(configure: impl FnOnce(&mut Settings)) -> (TestApp, llm::FakeLlm) {
    let fake = llm::FakeLlm::start(llm::Protocol::Openai).await;
    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        use_fake_llm(s, &fake);
        configure(s);
    })
    .await;
    (app, fake)
}

/// Starts the server on `database`, after `configure` adjusts the test settings.
pub async fn spawn_app_with(
    database: TestDatabase,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path().to_path_buf(), &database.url);
    configure(&mut settings);
    settings.validate().unwrap();
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let store = app.store();
    let shutdown = app.shutdown_token();
    let handle = tokio::spawn(app.run_until_stopped());
    let client =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap();
    TestApp { addr, store, client, database, shutdown, handle: Some(handle), _data_dir: data_dir }
}

/// Every run of `project`, oldest first within each page of the store's listing.
pub async fn project_runs(
    store: &dyn Store,
    project: agentd_core::ProjectId,
) -> Vec<agentd_core::run::Run> {
    use agentd_core::PageRequest;
    use agentd_core::run::RunFilter;
    let mut runs = Vec::new();
    let mut page = PageRequest::first(100);
    loop {
        let filter = RunFilter { project_id: Some(project), status: None };
        let got = store.list_runs(None, filter, page).await.unwrap();
        runs.extend(got.items);
        match got.next {
            Some(next) => page = PageRequest { limit: 100, after: Some(next) },
            None => return runs,
        }
    }
}
