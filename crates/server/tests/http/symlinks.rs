//! Symbolic links in a directory workspace, over HTTP: links that lead outside are refused for
//! reads, writes and deletes, and a path swapped between a file and an outside link 10,000
//! times while requests run never yields the canary or changes anything outside.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentd_core::user::Role;
use agentd_test_support::canary::CanaryTree;
use agentd_test_support::traversal::{CANARY_FILE, SIBLING_DIR};
use agentd_test_support::{TestApp, TestDatabase, spawn_app_with};
use rustix::fs::{CWD, RenameFlags};
use serde_json::{Value, json};

use crate::{create_project, expect_envelope, file_url, get_file};

/// How many times each swapped path is exchanged, at least.
const SWAPS: usize = 10_000;
/// How many HTTP requests must run while the swaps go on, at least.
const MIN_REQUESTS: usize = 2_000;
/// When the swapping stops whatever the counts (the assertions then fail): bounds the test.
const DEADLINE: Duration = Duration::from_secs(90);

/// A server allowing `tree`'s workspace, a signed-in owner, and a directory project on it.
async fn directory_project(tree: &CanaryTree) -> (TestApp, String, String) {
    let root = tree.workspace.clone();
    let app = spawn_app_with(TestDatabase::sqlite(), move |s| {
        s.workspace.allowed_roots = vec![root];
    })
    .await;
    let (_, token) = app.signed_in("links@example.com", Role::Member).await;
    let project = create_project(
        &app,
        &token,
        json!({"title": "links", "workspace": {"kind": "directory", "path": tree.workspace_path()}}),
    )
    .await;
    let id = project["id"].as_str().unwrap().to_owned();
    (app, token, id)
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[tokio::test]
async fn links_leading_outside_are_refused_for_reads_writes_and_deletes() {
    let tree = CanaryTree::new();
    let ws = &tree.workspace;
    symlink(format!("../{CANARY_FILE}"), ws.join("file-link")).unwrap();
    symlink(tree.top.join(CANARY_FILE), ws.join("abs-link")).unwrap();
    symlink(format!("../../{CANARY_FILE}"), ws.join("sub/up-link")).unwrap();
    symlink(format!("../{SIBLING_DIR}"), ws.join("dir-link")).unwrap();
    symlink(tree.top.join(SIBLING_DIR), ws.join("abs-dir-link")).unwrap();
    symlink("/etc", ws.join("etc-link")).unwrap();
    symlink("sub/inside.txt", ws.join("inner-link")).unwrap();
    let (app, token, project) = directory_project(&tree).await;
    let before = tree.outside_snapshot();

    let outside = [
        "file-link",
        "abs-link",
        "sub/up-link",
        "dir-link/canary.txt",
        "abs-dir-link/canary.txt",
        "dir-link/new.txt",
        "dir-link/deeper/new.txt",
        "etc-link/passwd",
        "etc-link/agentd-escape",
    ];
    let mut refused = 0;
    for path in outside {
        let url = file_url(&app, &project, path);
        let requests = [
            app.client.get(&url).bearer_auth(&token),
            app.client.get(&url).bearer_auth(&token).header("accept", "application/json"),
            app.client.put(&url).bearer_auth(&token).body("overwritten"),
            app.client.put(&url).bearer_auth(&token).header("if-match", "*").body("overwritten"),
            app.client.delete(&url).bearer_auth(&token),
            app.client
                .post(app.url(&format!("/v1/projects/{project}/files")))
                .bearer_auth(&token)
                .json(&json!({"path": path, "content": "overwritten"})),
        ];
        for request in requests {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let bytes = res.bytes().await.unwrap();
            assert!(!tree.leaks(&bytes), "{path}: leaked {}", String::from_utf8_lossy(&bytes));
            assert!(
                matches!(status, 400 | 404 | 412),
                "{path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            if status == 400 {
                assert_eq!(body["error"]["type"], "invalid_path", "{path}: {body}");
                refused += 1;
            }
        }
    }
    assert!(refused >= outside.len() * 4, "only {refused} refusals");
    assert_eq!(tree.outside_snapshot(), before, "something outside the workspace changed");
    for link in ["file-link", "abs-link", "sub/up-link", "dir-link", "abs-dir-link", "etc-link"] {
        assert!(is_link(&ws.join(link)), "{link} was replaced or removed");
    }

    // A link that stays inside is followed for reads, never written or deleted through.
    assert_eq!(get_file(&app, &token, &project, "inner-link").await, b"inside");
    let res = app
        .client
        .put(file_url(&app, &project, "inner-link"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    expect_envelope(res, 400, "invalid_path").await;
    assert_eq!(std::fs::read(ws.join("sub/inside.txt")).unwrap(), b"inside");
    // Listings show regular files only.
    let res = app
        .client
        .get(app.url(&format!("/v1/projects/{project}/files")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let listed: Value = res.json().await.unwrap();
    let paths: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["sub/inside.txt"]);
}

fn exchange(a: &Path, b: &Path) {
    rustix::fs::renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_path_swapped_with_an_outside_link_ten_thousand_times_never_leaks_over_http() {
    let tree = CanaryTree::new();
    let ws = tree.workspace.clone();
    // `flip` and `flip-alt`: one is a regular file, the other a link to the outside canary.
    std::fs::write(ws.join("flip"), b"inside").unwrap();
    symlink(tree.top.join(CANARY_FILE), ws.join("flip-alt")).unwrap();
    // `dflip` and `dflip-alt`: one is a directory, the other a link to the outside directory.
    std::fs::create_dir(ws.join("dflip")).unwrap();
    std::fs::write(ws.join("dflip/canary.txt"), b"inside too").unwrap();
    symlink(tree.top.join(SIBLING_DIR), ws.join("dflip-alt")).unwrap();
    let (app, token, project) = directory_project(&tree).await;
    let before = tree.outside_snapshot();

    let requests = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let swapper = {
        let (ws, requests, done) = (ws.clone(), requests.clone(), done.clone());
        let started = Instant::now();
        let canary = tree.top.join(CANARY_FILE);
        std::thread::spawn(move || {
            let (mut swaps, mut relinked) = (0usize, 0usize);
            while (swaps < SWAPS || requests.load(Ordering::Relaxed) < MIN_REQUESTS)
                && started.elapsed() < DEADLINE
            {
                exchange(&ws.join("flip"), &ws.join("flip-alt"));
                exchange(&ws.join("dflip"), &ws.join("dflip-alt"));
                swaps += 1;
                // A write that won the race replaced the link by a file (never the canary):
                // put a link back so that the race goes on.
                if !is_link(&ws.join("flip")) && !is_link(&ws.join("flip-alt")) {
                    let fresh = ws.join(".fresh-link");
                    symlink(&canary, &fresh).unwrap();
                    std::fs::rename(&fresh, ws.join("flip-alt")).unwrap();
                    relinked += 1;
                }
            }
            done.store(true, Ordering::SeqCst);
            (swaps, relinked)
        })
    };

    let mut workers = Vec::new();
    for worker in 0..6usize {
        let (app_client, token, done, requests) =
            (app.client.clone(), token.clone(), done.clone(), requests.clone());
        let urls =
            ["flip", "dflip/canary.txt", "dflip/written.txt"].map(|p| file_url(&app, &project, p));
        let canary = tree.canary.clone();
        workers.push(tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let mut round = 0usize;
            while !done.load(Ordering::SeqCst) {
                round += 1;
                let request = match (round + worker) % 4 {
                    0 => app_client.put(&urls[0]).body("written over http"),
                    1 => app_client.put(&urls[2]).body("written over http"),
                    2 => app_client.get(&urls[1]),
                    _ => app_client.get(&urls[0]),
                };
                let res = request.bearer_auth(&token).send().await.unwrap();
                let status = res.status().as_u16();
                let bytes = res.bytes().await.unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&canary),
                    "the canary leaked ({status})"
                );
                assert!(
                    matches!(status, 200 | 201 | 400 | 404 | 409),
                    "{status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                *statuses.entry(status).or_default() += 1;
                requests.fetch_add(1, Ordering::Relaxed);
            }
            statuses
        }));
    }
    let (swaps, relinked) = swapper.join().unwrap();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for worker in workers {
        for (status, n) in worker.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    let sent = requests.load(Ordering::Relaxed);
    assert!(swaps >= SWAPS && sent >= MIN_REQUESTS, "{swaps} swaps, {sent} requests");

    assert_eq!(tree.outside_snapshot(), before, "something outside the workspace changed");
    assert!(!tree.top.join(SIBLING_DIR).join("written.txt").exists());
    // The history kept no outside content either.
    for query in ["diff?from=0", "changes?since=0&limit=100"] {
        let res = app
            .client
            .get(app.url(&format!("/v1/projects/{project}/{query}")))
            .bearer_auth(&token)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{query}");
        let bytes = res.bytes().await.unwrap();
        assert!(!tree.leaks(&bytes), "{query} leaked the canary");
    }
    let served = statuses.get(&200).copied().unwrap_or_default();
    let refused = statuses.get(&400).copied().unwrap_or_default();
    assert!(served > 0 && refused > 0, "the race never went both ways: {statuses:?}");
    eprintln!(
        "symlink swap race over HTTP: {swaps} swaps of each path ({relinked} links restored after \
         writes), {sent} requests in {:.1} s, statuses {statuses:?}, 0 leaks, 0 outside changes",
        elapsed.as_secs_f64(),
    );
}

#[tokio::test]
async fn a_workspace_directory_that_disappears_gives_503_until_it_is_back() {
    let tree = CanaryTree::new();
    let (app, token, project) = directory_project(&tree).await;
    let url = file_url(&app, &project, "kept.txt");
    let res = app.client.put(&url).bearer_auth(&token).body("still here").send().await.unwrap();
    assert_eq!(res.status(), 201);

    let moved = tree.workspace.with_extension("moved");
    std::fs::rename(&tree.workspace, &moved).unwrap();
    let list = app.url(&format!("/v1/projects/{project}/files"));
    for res in [
        app.client.get(&url).bearer_auth(&token).send().await.unwrap(),
        app.client.get(&list).bearer_auth(&token).send().await.unwrap(),
        app.client.put(&url).bearer_auth(&token).body("lost?").send().await.unwrap(),
        app.client.delete(&url).bearer_auth(&token).send().await.unwrap(),
    ] {
        let body = expect_envelope(res, 503, "workspace_unavailable").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("cannot be opened"), "{body}");
    }
    assert!(!tree.workspace.exists(), "nothing was recreated in its place");

    std::fs::rename(&moved, &tree.workspace).unwrap();
    assert_eq!(get_file(&app, &token, &project, "kept.txt").await, b"still here");
}
