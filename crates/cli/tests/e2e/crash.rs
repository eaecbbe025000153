//! Crash safety of runs: the real `agentd serve` killed with SIGKILL while 50 runs are in
//! flight, at a random moment, then started again on the same database.
//!
//! Each repetition checks what a user would notice after such a crash:
//! - every run reaches a terminal status (here: `succeeded`, the scripted model always finishes);
//! - no run is left `running` under the dead process's lease past its expiry plus the rescue
//!   interval (with a slack for a loaded machine);
//! - no recorded model reply is requested again: the scripted model keys every request on
//!   (run, step) from the conversation the request carries and numbers its replies; a request
//!   for a (run, step) whose recorded reply (in the journal) was answered earlier is a repeat;
//! - no tool call takes effect twice: every call writes its own file, and an observer outside
//!   agentd counts each creation in the project's change log and deletes the file at once (and
//!   always before agentd is started again), so that a second execution of the same call would
//!   create it again and be counted. A call started but not completed before the crash must be
//!   `unknown_outcome` in the journal and in the events, and have taken effect at most once.
//!
//! `AGENTD_CRASH_REPETITIONS` sets the repetitions per database (default 2; `bench/crash.sh`
//! runs 20). The PostgreSQL variant needs `AGENTD_TEST_DATABASE_URL`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_core::run::{RunStatus, StepKind, StepStatus};
use agentd_core::workspace::{Author, Precondition};
use agentd_core::{PageRequest, ProjectId, RunId, Store};
use agentd_store::Backend;
use agentd_test_support::llm::{FakeLlm, Protocol, Reply};
use agentd_test_support::process::{self, AgentdProcess};
use agentd_test_support::{TestDatabase, project_runs};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::agentd;

const RUNS: usize = 50;
/// Model replies with a tool call per run; then one final answer.
const TOOL_STEPS: usize = 4;
const LEASE_SECONDS: u64 = 3;
const RESCUE_SECONDS: u64 = 1;
/// Time a loaded 2-core machine may add to lease expiry plus the rescue interval.
const SLACK: Duration = Duration::from_secs(2);
const PASSWORD: &str = "crash-test-Password-7c1d";

fn repetitions() -> usize {
    std::env::var("AGENTD_CRASH_REPETITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_with_fifty_runs_in_flight_loses_and_repeats_nothing_on_sqlite() {
    for repetition in 1..=repetitions() {
        crash_once(TestDatabase::sqlite(), repetition).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_with_fifty_runs_in_flight_loses_and_repeats_nothing_on_postgres() {
    if agentd_test_support::postgres_url().is_none() {
        eprintln!("AGENTD_TEST_DATABASE_URL is not set: PostgreSQL crash test skipped");
        return;
    }
    for repetition in 1..=repetitions() {
        let db = TestDatabase::postgres().await.unwrap();
        crash_once(db, repetition).await;
    }
}

/// What the scripted model answered: for each (run key, step), the serial numbers of its
/// replies in the order the requests arrived.
#[derive(Debug, Default)]
struct ModelLog {
    next_serial: u64,
    answered: HashMap<(String, usize), Vec<u64>>,
    /// Requests whose conversation contradicts what the model answered.
    inconsistent: Vec<String>,
}

/// The run key a task names (`crash-run:<key> …`).
fn key_of(body: &Value) -> Option<String> {
    let text = body["messages"].as_array()?.iter().find(|m| m["role"] == "user")?.to_string();
    let start = text.find("crash-run:")? + "crash-run:".len();
    Some(text[start..].chars().take_while(char::is_ascii_alphanumeric).collect())
}

/// The serial a recorded write names: `calls/<key>/<step>-<serial>`.
fn serial_in_path(path: &str) -> Option<u64> {
    path.rsplit('-').next()?.parse().ok()
}

/// The model: step `s` of run `key` writes `calls/<key>/<s>-<serial>`; after `TOOL_STEPS`
/// writes it answers `done <serial>`. Each reply takes 200–500 ms, so runs stay in flight.
fn scripted_model(log: Arc<Mutex<ModelLog>>) -> impl Fn(&Value) -> Reply + Send + Sync {
    move |body| {
        let mut log = log.lock().unwrap();
        let Some(key) = key_of(body) else {
            log.inconsistent.push(format!("a request without a run key: {body}"));
            return Reply::status(400);
        };
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let assistant: Vec<&Value> = messages.iter().filter(|m| m["role"] == "assistant").collect();
        let step = assistant.len();
        // The conversation must hold, step by step, replies this model gave for this run.
        for (k, m) in assistant.iter().enumerate() {
            let arguments = m["tool_calls"][0]["function"]["arguments"].as_str().unwrap_or("");
            let path = serde_json::from_str::<Value>(arguments).unwrap_or_default()["path"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let given = serial_in_path(&path).is_some_and(|s| {
                log.answered.get(&(key.clone(), k)).is_some_and(|v| v.contains(&s))
            });
            if !given || !path.starts_with(&format!("calls/{key}/{k}-")) {
                log.inconsistent.push(format!("run {key} step {step}: history step {k} is {m}"));
            }
        }
        log.next_serial += 1;
        let serial = log.next_serial;
        log.answered.entry((key.clone(), step)).or_default().push(serial);
        let delay = Duration::from_millis(rand::random_range(200..500));
        if step < TOOL_STEPS {
            Reply::tool_call(
                "write_file",
                json!({"path": format!("calls/{key}/{step}-{serial}"), "content": format!("{serial}\n")}),
            )
            .delayed(delay)
        } else {
            if step > TOOL_STEPS {
                log.inconsistent.push(format!("run {key} asked for step {step}"));
            }
            Reply::text(&format!("done {serial}")).delayed(delay)
        }
    }
}

/// Counts the creations of call files in the project's change log and deletes each file
/// right away, so that a second execution of the same call would create it again.
struct Observer {
    store: Arc<dyn Store>,
    project: ProjectId,
    deleter: Author,
    since: i64,
    seen: HashSet<(i64, String)>,
    created: BTreeMap<String, u32>,
}

impl Observer {
    /// One pass over the changes since the last; `false` when the store failed (try again).
    async fn pass(&mut self) -> bool {
        let mut page_request = PageRequest::first(100);
        let mut last = self.since;
        loop {
            let Ok(page) = self.store.list_changes(self.project, self.since, page_request).await
            else {
                return false;
            };
            for change in page.items {
                last = last.max(change.revision);
                let path = change.path.as_str().to_owned();
                let by_run = matches!(change.author, Author::Run(_));
                if !path.starts_with("calls/") || change.new_sha256.is_none() || !by_run {
                    continue;
                }
                if !self.seen.insert((change.revision, path.clone())) {
                    continue;
                }
                *self.created.entry(path).or_default() += 1;
                if self
                    .store
                    .delete_file(self.project, &change.path, Precondition::None, self.deleter)
                    .await
                    .is_err()
                {
                    // The store is busy: forget the change, the next pass reads it again.
                    self.seen.remove(&(change.revision, change.path.as_str().to_owned()));
                    *self.created.get_mut(change.path.as_str()).unwrap() -= 1;
                    return false;
                }
            }
            match page.next {
                Some(next) => page_request = PageRequest { limit: 100, after: Some(next) },
                None => {
                    self.since = last;
                    return true;
                }
            }
        }
    }

    /// Passes until one succeeds.
    async fn settle(&mut self) {
        for _ in 0..200 {
            if self.pass().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the observer could not read the change log");
    }
}

fn start(dir: &Path, envs: &[(&str, String)]) -> (AgentdProcess, String) {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = AgentdProcess::spawn(agentd(), dir, &["serve"], &envs);
    let addr = server.wait_listening(Duration::from_secs(20));
    (server, format!("http://{addr}"))
}

// The report line of each repetition is what bench/crash.sh sums up.
#[allow(clippy::too_many_lines, clippy::print_stderr)]
async fn crash_once(db: TestDatabase, repetition: usize) {
    let began = Instant::now();
    let backend = match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let log = Arc::new(Mutex::new(ModelLog::default()));
    let model = FakeLlm::start(Protocol::Openai).await;
    model.stop_recording();
    model.respond_with(scripted_model(log.clone()));

    let dir = tempfile::tempdir().unwrap();
    let envs: Vec<(&str, String)> = vec![
        ("AGENTD_DATABASE_URL", db.url.clone()),
        ("AGENTD_BIND", "127.0.0.1:0".into()),
        ("AGENTD_SECRET_KEY", "crash-test-secret-key-0123456789abcdef0123".into()),
        ("AGENTD_LLM_BASE_URL", model.base_url()),
        ("AGENTD_LLM_MODEL", "scripted".into()),
        ("AGENTD_WORKERS", "64".into()),
        ("AGENTD_RUN_LEASE_SECONDS", LEASE_SECONDS.to_string()),
        ("AGENTD_RESCUE_INTERVAL_SECONDS", RESCUE_SECONDS.to_string()),
        ("AGENTD_RUN_RETRY_BASE_SECONDS", "1".into()),
        ("AGENTD_RUN_MAX_ATTEMPTS", "10".into()),
        ("AGENTD_RATE_LIMIT_PER_MINUTE", "0".into()),
        ("AGENTD_RATE_LIMIT_RUNS_PER_MINUTE", "0".into()),
        ("AGENTD_PASSWORD_HASH_MEMORY_KIB", "64".into()),
        ("AGENTD_PASSWORD_HASH_ITERATIONS", "1".into()),
        ("AGENTD_LOG", "warn,agentd_server=info".into()),
    ];
    let (dir_path, envs2) = (dir.path().to_owned(), envs.clone());
    tokio::task::spawn_blocking(move || {
        let envs: Vec<(&str, &str)> = envs2.iter().map(|(k, v)| (*k, v.as_str())).collect();
        process::create_user(agentd(), &dir_path, &envs, "crash@example.com", PASSWORD);
    })
    .await
    .unwrap();
    let database = db.open().await;
    let store = database.store();
    let user = store.user_by_email("crash@example.com").await.unwrap();

    let (dir_path, envs2) = (dir.path().to_owned(), envs.clone());
    let (mut server, base) =
        tokio::task::spawn_blocking(move || start(&dir_path, &envs2)).await.unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let (token, project) = agentd_test_support::process::sign_in_with_project(
        &http,
        &base,
        "crash@example.com",
        PASSWORD,
        "crash",
    )
    .await;
    let project: ProjectId = project.parse().unwrap();

    let observer = Arc::new(tokio::sync::Mutex::new(Observer {
        store: store.clone(),
        project,
        deleter: Author::User(user.id),
        since: 0,
        seen: HashSet::new(),
        created: BTreeMap::new(),
    }));
    let watch = |observer: Arc<tokio::sync::Mutex<Observer>>| {
        tokio::spawn(async move {
            loop {
                observer.lock().await.pass().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let watching = watch(observer.clone());

    // All 50 are created at once, so that all are in flight when the crash comes.
    let mut creating = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let key = format!("r{i:02}");
        let request = http
            .post(format!("{base}/v1/projects/{project}/runs"))
            .bearer_auth(&token)
            .json(&json!({"agent": "code", "input": {"task": format!("crash-run:{key} write the files")}}));
        creating.spawn(async move {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 202);
            let run: Value = res.json().await.unwrap();
            (key, run["id"].as_str().unwrap().parse::<RunId>().unwrap())
        });
    }
    let runs: HashMap<String, RunId> = creating.join_all().await.into_iter().collect();

    // The crash, at a random moment of the runs' lives (each takes at least 1 s).
    let kill_after = Duration::from_millis(rand::random_range(0..1000));
    tokio::time::sleep(kill_after).await;
    server.signal(Signal::SIGKILL);
    let killed_at = OffsetDateTime::now_utc();
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "agentd survived SIGKILL");
    drop(server);

    // Every effect of the dead process is counted and reset before agentd starts again.
    watching.abort();
    observer.lock().await.settle().await;
    let all = project_runs(store.as_ref(), project).await;
    let in_flight = all.iter().filter(|r| !r.status.is_terminal()).count();
    let orphans: Vec<(RunId, u32, OffsetDateTime)> = all
        .iter()
        .filter(|r| r.status == RunStatus::Running)
        .map(|r| (r.id, r.attempt, r.lease_expires_at.unwrap_or(killed_at)))
        .collect();

    let (dir_path, envs2) = (dir.path().to_owned(), envs.clone());
    let (server, _base) =
        tokio::task::spawn_blocking(move || start(&dir_path, &envs2)).await.unwrap();
    let restarted_at = OffsetDateTime::now_utc();
    let watching = watch(observer.clone());

    // Orphans are taken over (attempt advances) or ended within lease expiry + rescue interval.
    let mut late = Vec::new();
    let mut worst = time::Duration::ZERO;
    let mut pending = orphans.clone();
    while !pending.is_empty() {
        let now = OffsetDateTime::now_utc();
        let current: HashMap<RunId, (RunStatus, u32)> = project_runs(store.as_ref(), project)
            .await
            .into_iter()
            .map(|r| (r.id, (r.status, r.attempt)))
            .collect();
        let mut still = Vec::new();
        for (id, attempt, expires) in pending {
            let (status, now_attempt) = current[&id];
            let taken_over = status != RunStatus::Running || now_attempt > attempt;
            let due = expires.max(restarted_at);
            let bound = due + time::Duration::seconds(RESCUE_SECONDS as i64);
            if taken_over {
                worst = worst.max(now - due);
            } else if now > bound + SLACK {
                late.push(format!(
                    "{id}: still running attempt {attempt}, lease expired at {expires}"
                ));
            } else {
                still.push((id, attempt, expires));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(late.is_empty(), "runs left running past lease + rescue interval: {late:?}");

    // Every run ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let all = project_runs(store.as_ref(), project).await;
        if all.iter().all(|r| r.status.is_terminal()) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "runs not terminal after 120 s: {:?}\nlog:\n{}",
            all.iter()
                .filter(|r| !r.status.is_terminal())
                .map(|r| (r.id, r.status))
                .collect::<Vec<_>>(),
            server.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    watching.abort();
    let mut observer = observer.lock().await;
    observer.settle().await;
    drop(server);

    let mut problems = Vec::new();
    let (mut asked_again, mut unknown) = (0usize, 0usize);
    let model_log = std::mem::take(&mut *log.lock().unwrap());
    problems.extend(model_log.inconsistent.iter().cloned());
    let mut recorded_paths = HashSet::new();
    for run in &finished {
        let key = runs.iter().find(|(_, id)| **id == run.id).map(|(k, _)| k.clone()).unwrap();
        if run.status != RunStatus::Succeeded {
            problems.push(format!("run {key} ended {} ({:?})", run.status, run.error));
        }
        let steps = store.steps(run.id).await.unwrap();
        let events = store.events(run.id, 0, 10_000).await.unwrap();
        let mut llm_step = 0usize;
        let mut tool_steps = 0usize;
        for step in &steps {
            match step.kind {
                StepKind::Llm => {
                    let output = step.output.clone().unwrap_or_default();
                    let serial = if llm_step < TOOL_STEPS {
                        let arguments = &output["tool_calls"][0]["arguments"];
                        arguments["path"].as_str().and_then(serial_in_path)
                    } else {
                        output["text"].as_str().and_then(|t| t.strip_prefix("done ")?.parse().ok())
                    };
                    let answered = model_log
                        .answered
                        .get(&(key.clone(), llm_step))
                        .cloned()
                        .unwrap_or_default();
                    match serial {
                        Some(s) if answered.contains(&s) => {
                            let later = answered.iter().filter(|&&a| a > s).count();
                            if later > 0 {
                                problems.push(format!(
                                    "run {key} step {llm_step}: the recorded reply {s} was requested again {later} time(s)"
                                ));
                            }
                            asked_again += answered.len() - 1 - later;
                        }
                        _ => problems.push(format!(
                            "run {key} step {llm_step}: the journal holds a reply the model never gave: {output} (answered {answered:?})"
                        )),
                    }
                    llm_step += 1;
                }
                StepKind::Tool => {
                    tool_steps += 1;
                    let path = step.input["arguments"]["path"].as_str().unwrap_or("").to_owned();
                    recorded_paths.insert(path.clone());
                    let effects = observer.created.get(&path).copied().unwrap_or(0);
                    match step.status {
                        StepStatus::Completed if effects == 1 => {}
                        StepStatus::UnknownOutcome if effects <= 1 => {
                            unknown += 1;
                            let shown = events.iter().any(|e| {
                                e.event_type == "tool.result"
                                    && e.data["status"] == "unknown_outcome"
                                    && e.data["step"] == step.seq
                            });
                            if !shown {
                                problems.push(format!(
                                    "run {key}: unknown outcome of {path} not in the events"
                                ));
                            }
                        }
                        status => problems.push(format!(
                            "run {key}: call {path} is {status:?} and took effect {effects} time(s)"
                        )),
                    }
                }
                StepKind::Compaction => problems.push(format!("run {key}: unexpected compaction")),
            }
        }
        if run.status == RunStatus::Succeeded
            && (llm_step != TOOL_STEPS + 1 || tool_steps != TOOL_STEPS)
        {
            problems.push(format!("run {key}: {llm_step} replies and {tool_steps} calls recorded"));
        }
    }
    for (path, n) in &observer.created {
        if !recorded_paths.contains(path) {
            problems.push(format!("{path} was written {n} time(s) but no recorded call names it"));
        }
    }
    eprintln!(
        "crash {backend} #{repetition}: killed {} ms after the last run was created, {in_flight} \
         runs in flight ({} running); {asked_again} unrecorded replies asked again; {unknown} \
         calls of unknown outcome; orphans taken over at most {:.2} s after lease expiry; \
         repetition took {:.1} s",
        kill_after.as_millis(),
        orphans.len(),
        worst.as_seconds_f64(),
        began.elapsed().as_secs_f64()
    );
    assert!(in_flight > 0, "the crash came after every run had ended");
    assert!(problems.is_empty(), "crash {backend} #{repetition}:\n{}", problems.join("\n"));
    database.close().await;
}
