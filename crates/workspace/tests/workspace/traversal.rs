//! Every traversal payload against read, write and delete, on both workspace kinds: nothing
//! outside the workspace is read or changed, and no payload causes a server error.

use agentd_core::page::PageRequest;
use agentd_core::project::NewProject;
use agentd_core::workspace::{Author, Precondition, Workspace, WorkspaceError};
use agentd_core::{StoreError, WorkspacePath};
use agentd_test_support::traversal::{self, Origin};

use crate::fixture::Fixture;

#[derive(Debug, Default)]
struct Tally {
    attempts: usize,
    refused_by_normaliser: usize,
    operations: usize,
    refused_by_workspace: usize,
}

fn is_server_error(err: &WorkspaceError) -> bool {
    matches!(
        err,
        WorkspaceError::Io { .. }
            | WorkspaceError::Store(StoreError::Backend(_) | StoreError::Unavailable(_))
    )
}

/// Runs every payload, in both its URL and its JSON form, against read, write and delete.
async fn attack(ws: &dyn Workspace, author: Author, leaks: impl Fn(&[u8]) -> bool) -> Tally {
    let mut tally = Tally::default();
    for payload in traversal::corpus() {
        for parsed in [WorkspacePath::from_url(&payload.text), WorkspacePath::parse(&payload.text)]
        {
            tally.attempts += 1;
            let Ok(path) = parsed else {
                tally.refused_by_normaliser += 1;
                continue;
            };
            assert!(
                path.components().all(|c| c != ".." && c != "." && !c.is_empty()),
                "{payload:?} normalised to {path}"
            );
            match ws.read(&path).await {
                Ok(file) => assert!(!leaks(&file.content), "{payload:?} read foreign content"),
                Err(e) => {
                    assert!(!is_server_error(&e), "{payload:?}: read failed with {e:?}");
                    tally.refused_by_workspace += 1;
                }
            }
            let marker = format!("written for {:?}", payload.text).into_bytes();
            if let Err(e) = ws.write(&path, marker, Precondition::None, author).await {
                assert!(!is_server_error(&e), "{payload:?}: write failed with {e:?}");
                tally.refused_by_workspace += 1;
            }
            if let Err(e) = ws.delete(&path, Precondition::None, author).await {
                assert!(!is_server_error(&e), "{payload:?}: delete failed with {e:?}");
                tally.refused_by_workspace += 1;
            }
            tally.operations += 3;
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_payloads_never_leave_a_directory_workspace() {
    let fx = Fixture::new().await;
    let corpus = traversal::corpus();
    let wordlist = corpus.iter().filter(|p| matches!(p.origin, Origin::Wordlist(_))).count();
    assert!(corpus.len() - wordlist >= 500, "the generated corpus has {} payloads", corpus.len());
    let before = fx.outside_snapshot();
    let tally = attack(fx.workspace.as_ref(), Author::User(fx.owner.id), |b| fx.leaks(b)).await;
    assert_eq!(fx.outside_snapshot(), before, "something outside the workspace changed");
    // Every file the attack created is inside the workspace.
    for entry in walk(&fx.root) {
        let real = std::fs::canonicalize(&entry).unwrap();
        assert!(real.starts_with(&fx.root), "{} escaped", real.display());
    }
    eprintln!(
        "directory workspace: {} payloads ({} from word lists), {tally:?}",
        corpus.len(),
        wordlist
    );
    assert_eq!(tally.attempts, corpus.len() * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_payloads_never_reach_another_managed_workspace() {
    let fx = Fixture::new().await;
    let me = Author::User(fx.owner.id);
    let victim =
        fx.workspaces.create_project(NewProject::managed(fx.owner.id, "victim")).await.unwrap();
    let victim_ws = fx.workspaces.workspace(&victim).unwrap();
    for target in ["canary.txt", "ws-sibling/canary.txt", "etc/passwd", "proc/self/environ"] {
        let path = WorkspacePath::parse(target).unwrap();
        victim_ws
            .write(&path, fx.canary.clone().into_bytes(), Precondition::None, me)
            .await
            .unwrap();
    }
    let victim_before = victim_ws.list(None, PageRequest::first(100)).await.unwrap();
    let attacker =
        fx.workspaces.create_project(NewProject::managed(fx.owner.id, "attacker")).await.unwrap();
    let attacker_ws = fx.workspaces.workspace(&attacker).unwrap();

    let tally = attack(attacker_ws.as_ref(), me, |b| fx.leaks(b)).await;
    let victim_after = victim_ws.list(None, PageRequest::first(100)).await.unwrap();
    assert_eq!(victim_after.items, victim_before.items, "the other project's files changed");
    for file in &victim_after.items {
        let read = victim_ws.read(&file.path).await.unwrap();
        assert_eq!(read.content, fx.canary.as_bytes());
    }
    eprintln!("managed workspace: {tally:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}
