//! The path-traversal corpus (generated encodings and the `wfuzz` word lists) against the files
//! API over HTTP, on a managed and on a directory project.
//!
//! Each payload is sent byte for byte as the tail of the file URL (over raw TCP: an HTTP client
//! would normalise some of them away) with GET, PUT and DELETE, to both projects. To the
//! directory project, whose files are on disk, each is also sent as the `path` of the JSON form
//! (`POST …/files`), and the word lists' payloads as the `prefix` query parameter of a listing
//! (the generated ones are aimed at the decoding of URL paths). The JSON form is the same code
//! for both kinds until the workspace is reached, and the suite must stay well under two minutes
//! on two cores. Canaries sit outside the directory
//! workspace (beside it and in a sibling directory) and in another user's managed project. The
//! test passes when no response carries a canary (or its hash, or a system file), nothing outside
//! the workspace changed, and no response is a 5xx.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use agentd_core::page::PageRequest;
use agentd_core::user::Role;
use agentd_test_support::canary::CanaryTree;
use agentd_test_support::raw_http::{Connection, RawResponse};
use agentd_test_support::traversal::{self, Origin, Payload};
use agentd_test_support::{TestDatabase, spawn_app_with};
use serde_json::json;

use crate::{create_project, managed_project, put_file};

/// Clients sending at once, each one request at a time.
const IN_FLIGHT: usize = 16;
/// The least number of payloads the corpus must have.
const MIN_PAYLOADS: usize = 500;

/// What was seen, for the report and the assertions.
#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    statuses: BTreeMap<(&'static str, u16), usize>,
    failures: Vec<String>,
}

impl Tally {
    fn record(
        &mut self,
        tree: &CanaryTree,
        what: &'static str,
        target: &str,
        res: std::io::Result<RawResponse>,
    ) {
        self.requests += 1;
        let res = match res {
            Ok(res) => res,
            Err(err) => {
                self.failures.push(format!("{what} {target:?}: no response: {err}"));
                return;
            }
        };
        *self.statuses.entry((what, res.status)).or_default() += 1;
        if res.status >= 500 {
            self.failures.push(format!("{what} {target:?}: {}", res.status));
        }
        if tree.leaks(&res.raw) {
            self.failures.push(format!("{what} {target:?}: LEAKED the canary ({})", res.status));
        }
    }
}

/// Sends one payload at one project: in the URL with GET, PUT and DELETE, and with `all_forms`
/// also in the JSON form and (for word-list payloads) the listing's query.
async fn attack(
    connection: &mut Connection,
    tree: &CanaryTree,
    token: &str,
    (project, all_forms): (&str, bool),
    payload: &Payload,
    tally: &Mutex<Tally>,
) {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    let target = format!("/v1/projects/{project}/files/{}", payload.text);
    let get = connection.send("GET", &target, &headers, b"").await;
    let put = connection.send("PUT", &target, &headers, b"traversal probe").await;
    let delete = connection.send("DELETE", &target, &headers, b"").await;
    let listing = format!("/v1/projects/{project}/files?prefix={}", payload.text);
    let list = match payload.origin {
        Origin::Wordlist(_) if all_forms => {
            Some(connection.send("GET", &listing, &headers, b"").await)
        }
        Origin::Wordlist(_) | Origin::Generated => None,
    };
    let post = if all_forms {
        let body = json!({"path": payload.text, "content": "traversal probe"});
        let json_headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        let files = format!("/v1/projects/{project}/files");
        let body = serde_json::to_vec(&body).unwrap();
        Some(connection.send("POST", &files, &json_headers, &body).await)
    } else {
        None
    };
    let mut tally = tally.lock().unwrap();
    tally.record(tree, "GET", &target, get);
    tally.record(tree, "PUT", &target, put);
    tally.record(tree, "DELETE", &target, delete);
    if let Some(list) = list {
        tally.record(tree, "LIST", &listing, list);
    }
    if let Some(post) = post {
        tally.record(tree, "POST", &payload.text, post);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_traversal_payload_reads_or_writes_outside_either_kind_of_workspace() {
    let tree = CanaryTree::new();
    let root = tree.workspace.clone();
    let app = spawn_app_with(TestDatabase::sqlite(), move |s| {
        s.workspace.allowed_roots = vec![root];
    })
    .await;
    let (_, token) = app.signed_in("attacker@example.com", Role::Member).await;
    let (_, neighbour) = app.signed_in("neighbour@example.com", Role::Member).await;
    let managed = managed_project(&app, &token, "managed").await;
    let directory = create_project(
        &app,
        &token,
        json!({"title": "dir", "workspace": {"kind": "directory", "path": tree.workspace_path()}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another tenant's managed project holds the canary too: managed workspaces have no
    // "outside" on disk, but other projects are outside.
    let neighbours = managed_project(&app, &neighbour, "neighbour").await;
    assert_eq!(
        put_file(&app, &neighbour, &neighbours, "canary.txt", tree.canary.clone()).await.status(),
        201
    );
    let neighbour_files = || async {
        let page = app
            .store
            .list_files(neighbours.parse().unwrap(), None, PageRequest::first(100))
            .await
            .unwrap();
        page.items
            .into_iter()
            .map(|f| (f.path.to_string(), f.sha256.to_string()))
            .collect::<Vec<_>>()
    };
    let neighbour_before = neighbour_files().await;

    let corpus = traversal::corpus();
    let from_wordlists = corpus.iter().filter(|p| p.origin != Origin::Generated).count();
    assert!(corpus.len() >= MIN_PAYLOADS, "only {} payloads", corpus.len());
    let outside_before = tree.outside_snapshot();

    let started = Instant::now();
    let tally = Mutex::new(Tally::default());
    let jobs: Vec<(&Payload, (&str, bool))> = corpus
        .iter()
        .flat_map(|p| [(p, (managed.as_str(), false)), (p, (directory.as_str(), true))])
        .collect();
    let next = AtomicUsize::new(0);
    // A fixed number of clients, each on its own kept-alive connection, take the next job.
    let clients = (0..IN_FLIGHT).map(|_| async {
        let mut connection = Connection::new(app.addr);
        while let Some((payload, target)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
            attack(&mut connection, &tree, &token, *target, payload, &tally).await;
        }
    });
    futures::future::join_all(clients).await;
    let elapsed = started.elapsed();
    let tally = tally.into_inner().unwrap();

    assert_eq!(tree.outside_snapshot(), outside_before, "something outside the workspace changed");
    assert_eq!(neighbour_files().await, neighbour_before, "another project's files changed");
    assert!(
        tally.failures.is_empty(),
        "{} failures, first ones:\n{}",
        tally.failures.len(),
        tally.failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "traversal over HTTP: {} payloads ({} from the word lists) x 2 workspaces: {} requests in \
         {:.1} s, 0 leaks, 0 outside changes, 0 5xx; statuses {:?}",
        corpus.len(),
        from_wordlists,
        tally.requests,
        elapsed.as_secs_f64(),
        tally.statuses,
    );
}
