//! A path swapped between a regular file and a symbolic link to an outside canary (and a
//! directory and a link to an outside directory) 10,000 times while requests run through the
//! workspace: no canary is ever read and nothing outside changes. The swap is an atomic
//! `renameat2(RENAME_EXCHANGE)`, the strongest form of the check-then-open race.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use agentd_core::WorkspacePath;
use agentd_core::workspace::{Author, Precondition, WorkspaceError};
use agentd_test_support::traversal::{CANARY_FILE, SIBLING_DIR};
use rustix::fs::{CWD, RenameFlags};

use crate::fixture::Fixture;

const SWAPS: usize = 10_000;

fn exchange(a: &Path, b: &Path) {
    rustix::fs::renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_file_for_an_outside_link_ten_thousand_times_leaks_nothing() {
    let fx = Fixture::new().await;
    let top = fx.top();
    // `flip` and `flip-alt`: one is a regular file, the other a link to the outside canary.
    std::fs::write(fx.root.join("flip"), b"inside").unwrap();
    symlink(top.join(CANARY_FILE), fx.root.join("flip-alt")).unwrap();
    // `dflip` and `dflip-alt`: one is a directory, the other a link to the outside directory.
    std::fs::create_dir(fx.root.join("dflip")).unwrap();
    std::fs::write(fx.root.join("dflip/canary.txt"), b"inside too").unwrap();
    symlink(top.join(SIBLING_DIR), fx.root.join("dflip-alt")).unwrap();
    let before = fx.outside_snapshot();

    let done = Arc::new(AtomicBool::new(false));
    let swapper = {
        let root = fx.root.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..SWAPS {
                exchange(&root.join("flip"), &root.join("flip-alt"));
                exchange(&root.join("dflip"), &root.join("dflip-alt"));
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let reads = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let me = Author::User(fx.owner.id);
    let file = WorkspacePath::parse("flip").unwrap();
    let in_dir = WorkspacePath::parse("dflip/canary.txt").unwrap();
    let new_in_dir = WorkspacePath::parse("dflip/written.txt").unwrap();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let ws = fx.workspace.clone();
        let (done, reads, refused, writes) =
            (done.clone(), reads.clone(), refused.clone(), writes.clone());
        let (file, in_dir, new_in_dir) = (file.clone(), in_dir.clone(), new_in_dir.clone());
        let canary = fx.canary.clone();
        tasks.push(tokio::spawn(async move {
            let mut round = 0usize;
            while !done.load(Ordering::SeqCst) {
                round += 1;
                for p in [&file, &in_dir] {
                    match ws.read(p).await {
                        Ok(f) => {
                            assert!(
                                !String::from_utf8_lossy(&f.content).contains(&canary),
                                "leak via {p}"
                            );
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(
                            WorkspaceError::OutsideWorkspace
                            | WorkspaceError::FileNotFound(_)
                            | WorkspaceError::NotAFile(_),
                        ) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("read {p}: {e:?}"),
                    }
                }
                // Writers take turns so that most time goes to reads, which race hardest.
                if round % 8 == worker {
                    let target = if round % 16 < 8 { &new_in_dir } else { &file };
                    match ws.write(target, b"agentd".to_vec(), Precondition::None, me).await {
                        Ok(_) => {
                            writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(
                            WorkspaceError::OutsideWorkspace
                            | WorkspaceError::NotAFile(_)
                            | WorkspaceError::PathConflict { .. }
                            | WorkspaceError::FileNotFound(_),
                        ) => {}
                        Err(e) => panic!("write {target}: {e:?}"),
                    }
                }
            }
        }));
    }
    swapper.join().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(fx.outside_snapshot(), before, "something outside the workspace changed");
    let (reads, refused, writes) = (
        reads.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
    );
    eprintln!("{SWAPS} swaps: {reads} reads served, {refused} refused, {writes} writes, 0 leaks");
    assert!(reads + refused > 0, "no request ran during the swaps");
}
