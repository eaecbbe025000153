//! Runs through the real `agentd serve` (release build) against a scripted model on 127.0.0.1.
//!
//! Scenarios (`BENCH_SCENARIOS`, comma-separated; all by default), each on a fresh database
//! (`BENCH_DB=sqlite` (default) or `postgres`, a fresh schema on `AGENTD_TEST_DATABASE_URL`)
//! and a fresh `agentd serve`:
//! - `throughput`: `THROUGHPUT_RUNS` (2,000) no-op runs (one model call answered at once, no
//!   tools) enqueued as fast as 64 concurrent clients can, with `AGENTD_WORKERS=64`: runs/s from
//!   the first enqueue to the last run's end (the `created_at` and `finished_at` agentd records).
//! - `latency`: no-op runs enqueued at a steady `LATENCY_RATE` per second (50) for
//!   `LATENCY_SECONDS` (20), open loop: the latency of `POST /v1/projects/{id}/runs` seen by
//!   the client, and the pickup latency from enqueue to running (`started_at − created_at`).
//! - `inflight`: `INFLIGHT_RUNS` (10,000) runs enqueued while no worker runs, then a node with
//!   `AGENTD_WORKERS` = that many takes them all at once; each run makes `INFLIGHT_STEPS` (3)
//!   model calls, the model answering each after exactly 1 s, with a `list_files` call after
//!   each but the last. agentd's overhead per step is measured at the model: the time from the
//!   moment a reply is due (its request's arrival + 1 s) to the arrival of the run's next
//!   request, which covers receiving the reply, journaling it, running and journaling the tool
//!   call, and building and sending the next request (split into phases by the events' times,
//!   see `phases`). Also: errors (runs that did not succeed), the peak resident memory of
//!   agentd (`VmHWM`), the most runs in flight at once (from the model's view: first
//!   request to last reply), and the CPU time agentd and this process (the scripted model)
//!   used per model call. `INFLIGHT_REPEAT` (1) runs it that many times, each on a fresh
//!   database and node, and ends with the median and range of the p99, the CPU per call and
//!   the peak RSS: between runs of one binary the p99 moves by a factor of two or more.
//!
//! `AGENTD_*` variables of the environment are passed on to agentd (e.g.
//! `AGENTD_DATABASE_SQLITE_SYNCHRONOUS=normal`). Run with `cargo bench -p agentd-cli --bench runs`
//! or `bench/runs.sh` (which also measures Celery). Prints its figures; docs/benchmarks.md keeps
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_core::run::{RunFilter, RunStatus};
use agentd_core::{PageRequest, ProjectId, Store};
use agentd_test_support::llm::{FakeLlm, Protocol, Reply};
use agentd_test_support::process::{self, AgentdProcess};
use agentd_test_support::{TestDatabase, project_runs};
use serde_json::{Value, json};
use tempfile::TempDir;

const PASSWORD: &str = "bench-Password-5e0a77";

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn agentd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_agentd"))
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "n={} p50={:.2} p90={:.2} p99={:.2} max={:.2} ms",
        values.len(),
        percentile(&values, 50.0),
        percentile(&values, 90.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(f64::NAN)
    )
}

/// A database, a data directory and a signed-in user with a project, and the environment
/// `agentd serve` gets.
struct Setup {
    db: TestDatabase,
    store: Arc<dyn Store>,
    dir: TempDir,
    envs: Vec<(&'static str, String)>,
}

/// A running node.
struct Node {
    process: AgentdProcess,
    base: String,
}

impl Setup {
    async fn new(model: &FakeLlm, extra: &[(&'static str, String)]) -> Self {
        let db = if std::env::var("BENCH_DB").is_ok_and(|d| d == "postgres") {
            TestDatabase::postgres().await.expect("AGENTD_TEST_DATABASE_URL is not set")
        } else {
            TestDatabase::sqlite()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut envs: Vec<(&'static str, String)> = vec![
            ("AGENTD_DATABASE_URL", db.url.clone()),
            ("AGENTD_BIND", "127.0.0.1:0".into()),
            ("AGENTD_SECRET_KEY", "bench-secret-key-0123456789abcdef0123456789".into()),
            ("AGENTD_LLM_BASE_URL", model.base_url()),
            ("AGENTD_LLM_MODEL", "scripted".into()),
            ("AGENTD_RATE_LIMIT_PER_MINUTE", "0".into()),
            ("AGENTD_RATE_LIMIT_RUNS_PER_MINUTE", "0".into()),
            ("AGENTD_ACCESS_TOKEN_TTL_SECONDS", "86400".into()),
            ("AGENTD_PASSWORD_HASH_MEMORY_KIB", "64".into()),
            ("AGENTD_PASSWORD_HASH_ITERATIONS", "1".into()),
            ("AGENTD_MAX_CONNECTIONS", "4096".into()),
            ("AGENTD_LOG", "warn,agentd_server=info".into()),
        ];
        // Settings of the operator's own (`AGENTD_DATABASE_SQLITE_SYNCHRONOUS=normal`, ...), then
        // the scenario's.
        let passed: Vec<(&'static str, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AGENTD_") && !k.starts_with("AGENTD_TEST_"))
            .map(|(k, v)| (&*Box::leak(k.into_boxed_str()), v))
            .collect();
        for (k, v) in passed.iter().chain(extra) {
            envs.retain(|(e, _)| e != k);
            envs.push((k, v.clone()));
        }
        let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        process::create_user(agentd(), dir.path(), &env_refs, "bench@example.com", PASSWORD);
        let database = db.open().await;
        let store = database.store();
        Self { db, store, dir, envs }
    }

    fn start(&self, extra: &[(&'static str, String)]) -> Node {
        let mut envs: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (k, v) in extra {
            envs.retain(|(e, _)| e != k);
            envs.push((k, v.as_str()));
        }
        let process = AgentdProcess::spawn(agentd(), self.dir.path(), &["serve"], &envs);
        let addr = process.wait_listening(Duration::from_secs(30));
        Node { process, base: format!("http://{addr}") }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// Signs in and creates a project; returns the token and the project id.
async fn sign_in(http: &reqwest::Client, base: &str) -> (String, String) {
    agentd_test_support::process::sign_in_with_project(
        http,
        base,
        "bench@example.com",
        PASSWORD,
        "bench",
    )
    .await
}

/// Enqueues `n` runs from `clients` concurrent clients; returns how many were refused.
async fn enqueue(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    project: &str,
    agent: &str,
    n: usize,
    clients: usize,
) -> usize {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, next) = (http.clone(), next.clone());
        let url = format!("{base}/v1/projects/{project}/runs");
        let (token, agent) = (token.to_owned(), agent.to_owned());
        tasks.spawn(async move {
            let mut refused = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return refused;
                }
                let body = json!({"agent": agent, "input": {"task": format!("bench-run:{i} go")}});
                let res = http.post(&url).bearer_auth(&token).json(&body).send().await;
                if !res.is_ok_and(|r| r.status() == 202) {
                    refused += 1;
                }
            }
        });
    }
    tasks.join_all().await.into_iter().sum()
}

/// Waits until none of the project's runs is queued or running.
async fn wait_all(store: &Arc<dyn Store>, project: ProjectId, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        let mut busy = false;
        for status in [RunStatus::Queued, RunStatus::Running] {
            let filter = RunFilter { project_id: Some(project), status: Some(status) };
            if !store.list_runs(None, filter, PageRequest::first(1)).await.unwrap().items.is_empty()
            {
                busy = true;
            }
        }
        if !busy {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The CPU time (user and system) a process (`self` or a pid) used so far, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's name in parentheses: state is field 3, utime and stime 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.iter().skip(11).take(2).filter_map(|f| f.parse::<f64>().ok()).sum();
    // /proc counts in USER_HZ, which is 100 on Linux.
    ticks / 100.0
}

fn ms(d: time::Duration) -> f64 {
    d.as_seconds_f64() * 1000.0
}

fn header(name: &str, setup: &Setup) {
    println!();
    println!(
        "## {name} on {} (load average before: {})",
        match setup.db.backend {
            agentd_store::Backend::Sqlite => "SQLite",
            agentd_store::Backend::Postgres => "PostgreSQL",
        },
        load()
    );
}

async fn throughput() {
    let n: usize = var("THROUGHPUT_RUNS", 2000);
    let workers: usize = var("THROUGHPUT_WORKERS", 64);
    let model = FakeLlm::start(Protocol::Openai).await;
    model.stop_recording();
    model.always(Reply::text("done"));
    let setup = Setup::new(&model, &[("AGENTD_WORKERS", workers.to_string())]).await;
    header(&format!("throughput: {n} no-op runs, AGENTD_WORKERS={workers}"), &setup);
    let node = setup.start(&[]);
    let http = client();
    let (token, project) = sign_in(&http, &node.base).await;
    let started = Instant::now();
    let refused = enqueue(&http, &node.base, &token, &project, "research", n, 64).await;
    let enqueued = started.elapsed();
    let project_id: ProjectId = project.parse().unwrap();
    assert!(wait_all(&setup.store, project_id, Duration::from_secs(600)).await, "runs did not end");
    let runs = project_runs(setup.store.as_ref(), project_id).await;
    let first = runs.iter().map(|r| r.created_at).min().unwrap();
    let last = runs.iter().filter_map(|r| r.finished_at).max().unwrap();
    let failed = runs.iter().filter(|r| r.status != RunStatus::Succeeded).count();
    let seconds = (last - first).as_seconds_f64();
    println!(
        "{} runs ({refused} refused, {failed} not succeeded) in {seconds:.2} s: {:.0} runs/s \
         (enqueueing alone took {:.2} s: {:.0} runs/s); load average after: {}",
        runs.len(),
        runs.len() as f64 / seconds,
        enqueued.as_secs_f64(),
        n as f64 / enqueued.as_secs_f64(),
        load()
    );
    drop(node);
}

async fn latency() {
    let rate: u64 = var("LATENCY_RATE", 50);
    let seconds: u64 = var("LATENCY_SECONDS", 20);
    let model = FakeLlm::start(Protocol::Openai).await;
    model.stop_recording();
    model.always(Reply::text("done"));
    let setup = Setup::new(&model, &[]).await;
    header(
        &format!("enqueue and pickup latency: {rate} runs/s for {seconds} s, open loop"),
        &setup,
    );
    let node = setup.start(&[]);
    let http = client();
    let (token, project) = sign_in(&http, &node.base).await;
    // Warm up connections and the node.
    enqueue(&http, &node.base, &token, &project, "research", 50, 8).await;
    let project_id: ProjectId = project.parse().unwrap();
    wait_all(&setup.store, project_id, Duration::from_secs(60)).await;
    let warm: Vec<_> =
        project_runs(setup.store.as_ref(), project_id).await.into_iter().map(|r| r.id).collect();

    let url = format!("{}/v1/projects/{project}/runs", node.base);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..rate * seconds {
        tokio::time::sleep_until(started + Duration::from_micros(i * 1_000_000 / rate)).await;
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        tasks.spawn(async move {
            let body = json!({"agent": "research", "input": {"task": format!("bench-run:{i} go")}});
            let sent = Instant::now();
            let res = http.post(&url).bearer_auth(&token).json(&body).send().await;
            let took = sent.elapsed().as_secs_f64() * 1000.0;
            (res.is_ok_and(|r| r.status() == 202), took)
        });
    }
    let answers = tasks.join_all().await;
    let refused = answers.iter().filter(|(ok, _)| !ok).count();
    assert!(wait_all(&setup.store, project_id, Duration::from_secs(120)).await, "runs did not end");
    let runs: Vec<_> = project_runs(setup.store.as_ref(), project_id)
        .await
        .into_iter()
        .filter(|r| !warm.contains(&r.id))
        .collect();
    let pickup: Vec<f64> =
        runs.iter().filter_map(|r| Some(ms(r.started_at? - r.created_at))).collect();
    println!(
        "POST /v1/projects/{{id}}/runs ({refused} refused): {}",
        summary(answers.into_iter().map(|(_, t)| t).collect())
    );
    println!("pickup (enqueue to running): {}", summary(pickup));
    println!("load average after: {}", load());
    drop(node);
}

/// Per run key: the arrival of each model request, in order, on both clocks.
type Arrivals = Arc<Mutex<HashMap<u64, Vec<(Instant, time::OffsetDateTime)>>>>;

fn run_key(body: &Value) -> Option<u64> {
    key_in(&body["messages"].as_array()?.iter().find(|m| m["role"] == "user")?.to_string())
}

/// The number in a task of the form `bench-run:N go`.
fn key_in(text: &str) -> Option<u64> {
    let start = text.find("bench-run:")? + "bench-run:".len();
    text[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// The headline figures of one in-flight run: overhead per step p99 (ms), agentd's CPU per
/// model call (µs), peak RSS (MiB).
type InflightFigures = (f64, f64, f64);

async fn inflight() -> InflightFigures {
    let n: usize = var("INFLIGHT_RUNS", 10_000);
    let steps: usize = var("INFLIGHT_STEPS", 3);
    let latency = Duration::from_secs(1);
    let model = FakeLlm::start(Protocol::Openai).await;
    model.stop_recording();
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let seen = arrivals.clone();
    model.respond_with(move |body| {
        let now = (Instant::now(), time::OffsetDateTime::now_utc());
        let step = body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count());
        if let Some(key) = run_key(body) {
            seen.lock().unwrap().entry(key).or_default().push(now);
        }
        if step + 1 < steps {
            Reply::tool_call("list_files", json!({})).delayed(latency)
        } else {
            Reply::text("done").delayed(latency)
        }
    });
    let setup = Setup::new(&model, &[("AGENTD_WORKERS", "0".into())]).await;
    header(
        &format!(
            "{n} runs in flight, {steps} model calls each answered after 1 s, AGENTD_WORKERS={n}"
        ),
        &setup,
    );
    // Enqueue everything on an API-only node, then start the one that works.
    let api = setup.start(&[]);
    let http = client();
    let (token, project) = sign_in(&http, &api.base).await;
    let refused = enqueue(&http, &api.base, &token, &project, "research", n, 64).await;
    drop(api);
    let node = setup.start(&[("AGENTD_WORKERS", n.to_string())]);
    let pid = node.process.pid();
    let cpu_before = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
    let project_id: ProjectId = project.parse().unwrap();
    let ended = wait_all(&setup.store, project_id, Duration::from_secs(1200)).await;
    let cpu = (cpu_seconds(&pid.to_string()) - cpu_before.0, cpu_seconds("self") - cpu_before.1);
    let peak_rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    let runs = project_runs(setup.store.as_ref(), project_id).await;
    let failed = runs.iter().filter(|r| r.status != RunStatus::Succeeded).count();
    let arrivals = std::mem::take(&mut *arrivals.lock().unwrap());
    let mut overhead = Vec::new();
    let mut spans = Vec::new();
    let mut wrong_steps = 0;
    for times in arrivals.values() {
        if times.len() != steps {
            wrong_steps += 1;
        }
        for w in times.windows(2) {
            overhead
                .push((w[1].0 - w[0].0).as_secs_f64() * 1000.0 - latency.as_secs_f64() * 1000.0);
        }
        if let (Some(first), Some(last)) = (times.first(), times.last()) {
            spans.push((first.0, last.0 + latency));
        }
    }
    // The most runs between their first request and their last reply at once.
    let mut edges: Vec<(Instant, i64)> =
        spans.iter().flat_map(|(a, b)| [(*a, 1), (*b, -1)]).collect();
    edges.sort();
    let (mut now_in, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        now_in += d;
        most = most.max(now_in);
    }
    let first = runs.iter().filter_map(|r| r.started_at).min();
    let last = runs.iter().filter_map(|r| r.finished_at).max();
    println!(
        "{} runs ended: {ended}; {refused} refused, {failed} not succeeded, {wrong_steps} with a \
         number of model calls other than {steps}; at most {most} runs in flight at once; all \
         done in {:.1} s after the first was taken",
        runs.len(),
        first.zip(last).map_or(f64::NAN, |(a, b)| (b - a).as_seconds_f64())
    );
    let mut sorted = overhead.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = percentile(&sorted, 99.0);
    println!("agentd overhead per step (next request − reply due): {}", summary(overhead));
    let model_calls: usize = arrivals.values().map(Vec::len).sum();
    println!(
        "CPU time per model call: agentd {:.0} µs, this benchmark with the scripted model {:.0} µs \
         ({model_calls} calls; {:.1} s and {:.1} s in all)",
        cpu.0 * 1e6 / model_calls as f64,
        cpu.1 * 1e6 / model_calls as f64,
        cpu.0,
        cpu.1
    );
    phases(setup.store.as_ref(), &runs, &arrivals, latency).await;
    println!(
        "peak RSS of agentd: {:.0} MiB; load average after: {}",
        peak_rss_kib as f64 / 1024.0,
        load()
    );
    drop(node);
    (p99, cpu.0 * 1e6 / model_calls as f64, peak_rss_kib as f64 / 1024.0)
}

/// The median and range of each figure over repeated in-flight runs.
fn print_repeated(figures: &[InflightFigures]) {
    let column = |f: fn(&InflightFigures) -> f64| {
        let mut v: Vec<f64> = figures.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        format!("median {:.0} ({:.0}–{:.0})", v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!(
        "## in flight, {} runs: overhead per step p99 {} ms; agentd CPU per model call {} µs; \
         peak RSS {} MiB",
        figures.len(),
        column(|f| f.0),
        column(|f| f.1),
        column(|f| f.2)
    );
}

/// Where the overhead per step goes, from the times agentd gave the events of about 500 runs
/// spread over all of them:
/// reply due → `llm.message` (receiving and parsing the reply), → `tool.call` (journaling the
/// reply), → `tool.result` (journaling the call as started and running it), → the next
/// request's arrival (journaling the result, building and sending the request).
async fn phases(
    store: &dyn Store,
    runs: &[agentd_core::run::Run],
    arrivals: &HashMap<u64, Vec<(Instant, time::OffsetDateTime)>>,
    latency: Duration,
) {
    let mut spans: [Vec<f64>; 4] = Default::default();
    for run in runs.iter().step_by((runs.len() / 500).max(1)) {
        let Some(times) = key_in(&run.input.task).and_then(|key| arrivals.get(&key)) else {
            continue;
        };
        let events = store.events(run.id, 0, 1000).await.unwrap();
        let at = |kind: &str| -> Vec<time::OffsetDateTime> {
            events.iter().filter(|e| e.event_type == kind).map(|e| e.created_at).collect()
        };
        let (messages, calls, results) = (at("llm.message"), at("tool.call"), at("tool.result"));
        for (k, w) in times.windows(2).enumerate() {
            let (Some(m), Some(c), Some(r)) = (messages.get(k), calls.get(k), results.get(k))
            else {
                continue;
            };
            let due = w[0].1 + latency;
            for (span, (a, b)) in
                spans.iter_mut().zip([(due, *m), (*m, *c), (*c, *r), (*r, w[1].1)])
            {
                span.push(ms(b - a));
            }
        }
    }
    for (name, span) in [
        "reply due → llm.message",
        "llm.message → tool.call",
        "tool.call → tool.result",
        "tool.result → next request",
    ]
    .iter()
    .zip(spans)
    {
        println!("  {name}: {}", summary(span));
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used.
    let scenarios =
        std::env::var("BENCH_SCENARIOS").unwrap_or_else(|_| "throughput,latency,inflight".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        println!(
            "# agentd runs benchmark, {} cores, load average {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            load()
        );
        for scenario in scenarios.split(',') {
            match scenario.trim() {
                "throughput" => throughput().await,
                "latency" => latency().await,
                "inflight" => {
                    let mut figures = Vec::new();
                    for _ in 0..var("INFLIGHT_REPEAT", 1_usize).max(1) {
                        figures.push(inflight().await);
                    }
                    if figures.len() > 1 {
                        print_repeated(&figures);
                    }
                }
                other => eprintln!("unknown scenario {other:?}"),
            }
        }
    });
}
