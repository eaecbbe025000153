//! Files over HTTP on managed workspaces: raw and JSON content, ETags and preconditions, binary
//! content, listings, the limits, changes, diffs and reverts, and tenancy on every route.

use std::collections::BTreeMap;

use agentd_core::user::Role;
use agentd_test_support::{TestApp, TestDatabase, spawn_app, spawn_app_with};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::{expect_envelope, file_url, get_file, managed_project, put_file};

fn etag_of(res: &reqwest::Response) -> String {
    res.headers().get("etag").expect("an ETag").to_str().unwrap().to_owned()
}

async fn put_with(
    app: &TestApp,
    token: &str,
    project: &str,
    path: &str,
    header: (&str, &str),
    content: &'static str,
) -> reqwest::Response {
    app.client
        .put(file_url(app, project, path))
        .bearer_auth(token)
        .header(header.0, header.1)
        .body(content)
        .send()
        .await
        .unwrap()
}

async fn delete_with(
    app: &TestApp,
    token: &str,
    project: &str,
    path: &str,
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app.client.delete(file_url(app, project, path)).bearer_auth(token);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

async fn revision(app: &TestApp, token: &str, project: &str) -> i64 {
    let res = app
        .client
        .get(app.url(&format!("/v1/projects/{project}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["revision"].as_i64().unwrap()
}

/// Every file the listing returns, following `next_cursor`.
async fn list_all(app: &TestApp, token: &str, project: &str, query: &str) -> Vec<Value> {
    let mut files = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        // Cursors are opaque but URL-safe.
        let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let res = app
            .client
            .get(app.url(&format!("/v1/projects/{project}/files?{query}{after}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        files.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return files,
        }
    }
}

/// Bytes that are not UTF-8: every byte value, then a deterministic pseudo-random tail.
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out: Vec<u8> = (0..=255u8).collect();
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn a_file_is_written_read_listed_replaced_and_deleted() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("f@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "files").await;

    let res = put_file(&app, &token, &project, "src/main.rs", "fn main() {}\n").await;
    assert_eq!(res.status(), 201);
    let etag = etag_of(&res);
    let written: Value = res.json().await.unwrap();
    assert_eq!(written["path"], "src/main.rs");
    assert_eq!(written["created"], true);
    assert_eq!(written["revision"], 1);
    assert_eq!(written["size"], 13);
    assert_eq!(written["language"], "rust");
    assert_eq!(written["etag"], etag.as_str());
    assert_eq!(etag, format!("\"{}\"", written["sha256"].as_str().unwrap()));

    let res = app
        .client
        .get(file_url(&app, &project, "src/main.rs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(etag_of(&res), etag);
    assert_eq!(res.headers()["content-type"], "text/x-rust; charset=utf-8");
    assert_eq!(res.bytes().await.unwrap(), "fn main() {}\n");

    let res = app
        .client
        .get(file_url(&app, &project, "src/main.rs"))
        .bearer_auth(&token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&res), etag);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["encoding"], "utf-8");
    assert_eq!(json["content"], "fn main() {}\n");
    assert_eq!(json["sha256"], written["sha256"]);

    // Replacing answers 200 with the new ETag; identical content is not a new revision.
    let res = put_file(&app, &token, &project, "src/main.rs", "fn main() { run() }\n").await;
    assert_eq!(res.status(), 200);
    assert_ne!(etag_of(&res), etag);
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(
        (replaced["created"].clone(), replaced["revision"].clone()),
        (json!(false), json!(2))
    );
    let res = put_file(&app, &token, &project, "src/main.rs", "fn main() { run() }\n").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["revision"], 2);

    put_file(&app, &token, &project, "README.md", "# files\n").await;
    let listed = list_all(&app, &token, &project, "").await;
    let paths: Vec<&str> = listed.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["README.md", "src/main.rs"]);
    let main = &listed[1];
    assert_eq!(main["size"], 20);
    assert_eq!(main["etag"], replaced["etag"]);
    assert!(main["updated_at"].is_string());

    let res = delete_with(&app, &token, &project, "src/main.rs", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"path": "src/main.rs", "revision": 4}));
    let res = app
        .client
        .get(file_url(&app, &project, "src/main.rs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 404, "not_found").await;
    expect_envelope(
        delete_with(&app, &token, &project, "src/main.rs", None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn if_match_and_if_none_match_guard_writes_and_deletes() {
    preconditions_hold_on(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn if_match_and_if_none_match_guard_writes_and_deletes_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else { return };
    preconditions_hold_on(db).await;
}

async fn preconditions_hold_on(db: TestDatabase) {
    let app = spawn_app_with(db, |_| {}).await;
    let (_, token) = app.signed_in("etag@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "etags").await;
    let first = put_file(&app, &token, &project, "a.txt", "one").await;
    let stale = etag_of(&first);
    let current = etag_of(&put_file(&app, &token, &project, "a.txt", "two").await);
    let rev = revision(&app, &token, &project).await;

    // A stale tag: 412, nothing changes.
    let res = put_with(&app, &token, &project, "a.txt", ("if-match", &stale), "three").await;
    let body = expect_envelope(res, 412, "precondition_failed").await;
    assert!(body["error"]["message"].as_str().unwrap().contains(&current), "{body}");
    let res = delete_with(&app, &token, &project, "a.txt", Some(("if-match", &stale))).await;
    expect_envelope(res, 412, "precondition_failed").await;
    assert_eq!(get_file(&app, &token, &project, "a.txt").await, b"two");
    assert_eq!(revision(&app, &token, &project).await, rev);

    // A weak tag never matches, even the current one.
    let weak = format!("W/{current}");
    let res = put_with(&app, &token, &project, "a.txt", ("if-match", &weak), "three").await;
    expect_envelope(res, 412, "precondition_failed").await;
    // Malformed preconditions are refused as such.
    for header in [("if-match", "not-a-tag"), ("if-match", "\"abc\""), ("if-none-match", "\"abc\"")]
    {
        let res = put_with(&app, &token, &project, "a.txt", header, "three").await;
        expect_envelope(res, 400, "bad_request").await;
    }
    assert_eq!(get_file(&app, &token, &project, "a.txt").await, b"two");

    // The current tag: the write goes ahead.
    let res = put_with(&app, &token, &project, "a.txt", ("if-match", &current), "three").await;
    assert_eq!(res.status(), 200);
    let current = etag_of(&res);

    // `If-Match: *` needs the file to exist; `If-None-Match: *` needs it not to.
    let res = put_with(&app, &token, &project, "new.txt", ("if-match", "*"), "x").await;
    expect_envelope(res, 412, "precondition_failed").await;
    let res = put_with(&app, &token, &project, "a.txt", ("if-none-match", "*"), "clobber").await;
    expect_envelope(res, 412, "precondition_failed").await;
    assert_eq!(get_file(&app, &token, &project, "a.txt").await, b"three");
    let res = put_with(&app, &token, &project, "new.txt", ("if-none-match", "*"), "x").await;
    assert_eq!(res.status(), 201);
    let res = put_with(&app, &token, &project, "a.txt", ("if-match", "*"), "four").await;
    assert_eq!(res.status(), 200);
    let after_four = etag_of(&res);
    assert_ne!(after_four, current);

    // Deletes: a stale tag keeps the file; the current one deletes it; `*` on a missing file
    // fails.
    let res = delete_with(&app, &token, &project, "a.txt", Some(("if-match", &current))).await;
    expect_envelope(res, 412, "precondition_failed").await;
    let res = delete_with(&app, &token, &project, "a.txt", Some(("if-match", &after_four))).await;
    assert_eq!(res.status(), 200);
    let res = delete_with(&app, &token, &project, "a.txt", Some(("if-match", "*"))).await;
    expect_envelope(res, 412, "precondition_failed").await;

    // The POST form honours the same headers.
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/files")))
        .bearer_auth(&token)
        .header("if-none-match", "*")
        .json(&json!({"path": "new.txt", "content": "again"}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 412, "precondition_failed").await;
    assert_eq!(get_file(&app, &token, &project, "new.txt").await, b"x");
}

#[tokio::test]
async fn binary_files_round_trip_exactly_raw_and_as_base64() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("bin@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "binary").await;
    for (i, len) in [1usize, 256, 4096, 300_001].into_iter().enumerate() {
        let bytes = binary(len, 0x9e37_79b9_7f4a_7c15 + i as u64);
        assert!(std::str::from_utf8(&bytes).is_err() || len == 1);
        let path = format!("bin/blob-{i}.dat");
        let res = put_file(&app, &token, &project, &path, bytes.clone()).await;
        assert_eq!(res.status(), 201);
        let res = app
            .client
            .get(file_url(&app, &project, &path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["content-type"], "application/octet-stream");
        assert_eq!(res.bytes().await.unwrap().to_vec(), bytes, "raw round trip of {len} bytes");

        let res = app
            .client
            .get(file_url(&app, &project, &path))
            .bearer_auth(&token)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let json: Value = res.json().await.unwrap();
        if std::str::from_utf8(&bytes).is_err() {
            assert_eq!(json["encoding"], "base64");
            let decoded = STANDARD.decode(json["content"].as_str().unwrap()).unwrap();
            assert_eq!(decoded, bytes, "base64 round trip of {len} bytes");
        }
        assert_eq!(json["size"], len);
    }

    // Written as base64 through the POST form, read back raw.
    let bytes = binary(10_000, 42);
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/files")))
        .bearer_auth(&token)
        .json(
            &json!({"path": "img/x.png", "content": STANDARD.encode(&bytes), "encoding": "base64"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .get(file_url(&app, &project, "img/x.png"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn the_post_form_creates_and_replaces_files_for_existing_clients() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("post@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "post").await;
    let post = |body: Value| {
        app.client
            .post(app.url(&format!("/v1/projects/{project}/files")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let res = post(json!({"path": "./lib//util.py", "content": "x = 1\n", "language": "python"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("etag"));
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["path"], "lib/util.py");
    assert_eq!(created["language"], "python");
    let res = post(json!({"path": "lib/util.py", "content": "x = 2\n", "encoding": "utf-8"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(get_file(&app, &token, &project, "lib/util.py").await, b"x = 2\n");

    // A percent-escape in a JSON path is not decoded: it is refused as double encoding.
    for bad in ["../x", "/etc/passwd", "a/%2e%2e/b", "a\\b", "", "a\u{0}b"] {
        let res = post(json!({"path": bad, "content": "no"})).await.unwrap();
        expect_envelope(res, 400, "invalid_path").await;
    }
    let res = post(json!({"path": "b.bin", "content": "***", "encoding": "base64"})).await.unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    assert_eq!(body["error"]["details"][0]["field"], "content");
    for bad in [json!({"content": "x"}), json!({"path": "x", "content": "x", "mode": 1})] {
        expect_envelope(post(bad).await.unwrap(), 422, "validation_error").await;
    }
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/files")))
        .bearer_auth(&token)
        .body("path=x")
        .send()
        .await
        .unwrap();
    expect_envelope(res, 415, "unsupported_media_type").await;
    let paths: Vec<String> = list_all(&app, &token, &project, "")
        .await
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["lib/util.py"]);
}

#[tokio::test]
async fn a_url_path_is_decoded_exactly_once() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("enc@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "encoding").await;
    assert_eq!(
        put_file(&app, &token, &project, "docs/a%20b%2Bc.txt", "spaced").await.status(),
        201
    );
    assert_eq!(put_file(&app, &token, &project, "x%2Fy.txt", "slash").await.status(), 201);
    let paths: Vec<String> = list_all(&app, &token, &project, "")
        .await
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["docs/a b+c.txt", "x/y.txt"]);
    assert_eq!(get_file(&app, &token, &project, "docs/a%20b+c.txt").await, b"spaced");
    for bad in ["a%252e%252e/b", "%c0%ae%c0%ae/x", "a%00b", "a%zz", "%2e%2e%2fx", "~/x"] {
        let res = put_file(&app, &token, &project, bad, "no").await;
        expect_envelope(res, 400, "invalid_path").await;
    }
}

#[tokio::test]
async fn listings_page_through_files_in_path_order_under_a_prefix() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("ls@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "listing").await;
    let mut expected = Vec::new();
    for dir in ["a", "b", "b/c"] {
        for i in 0..4 {
            let path = format!("{dir}/f{i} &+.txt");
            let url_path = path.replace(' ', "%20").replace('&', "%26").replace('+', "%2B");
            assert_eq!(
                put_file(&app, &token, &project, &url_path, path.clone()).await.status(),
                201
            );
            expected.push(path);
        }
    }
    expected.sort();
    for limit in [1, 5, 100] {
        let all = list_all(&app, &token, &project, &format!("limit={limit}")).await;
        let paths: Vec<String> =
            all.iter().map(|f| f["path"].as_str().unwrap().to_owned()).collect();
        assert_eq!(paths, expected, "limit {limit}");
    }
    let under_b = list_all(&app, &token, &project, "prefix=b&limit=3").await;
    assert_eq!(under_b.len(), 8);
    assert!(under_b.iter().all(|f| f["path"].as_str().unwrap().starts_with("b/")));
    for bad in ["limit=0", "limit=101", "cursor=%%%", "prefix=../x", "other=1"] {
        let res = app
            .client
            .get(app.url(&format!("/v1/projects/{project}/files?{bad}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 400 | 422), "{bad}: {}", res.status());
    }
}

#[tokio::test]
async fn a_file_over_the_file_limit_is_refused_with_413() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.workspace.max_file_bytes = 1000).await;
    let (_, token) = app.signed_in("big@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "limits").await;
    assert_eq!(put_file(&app, &token, &project, "ok.bin", vec![7u8; 1000]).await.status(), 201);
    let res = put_file(&app, &token, &project, "big.bin", vec![7u8; 1001]).await;
    let body = expect_envelope(res, 413, "payload_too_large").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("AGENTD_MAX_FILE_BYTES"), "{body}");
    let res = put_file(&app, &token, &project, "ok.bin", vec![8u8; 1001]).await;
    expect_envelope(res, 413, "payload_too_large").await;
    assert_eq!(get_file(&app, &token, &project, "ok.bin").await, vec![7u8; 1000]);
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{project}/files")))
        .bearer_auth(&token)
        .json(&json!({"path": "big.txt", "content": "x".repeat(1001)}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 413, "payload_too_large").await;
    assert_eq!(list_all(&app, &token, &project, "").await.len(), 1);
}

#[tokio::test]
async fn a_project_over_the_byte_limit_is_refused_with_413() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| {
        s.workspace.max_file_bytes = 1000;
        s.workspace.max_project_bytes = 2500;
    })
    .await;
    let (_, token) = app.signed_in("bytes@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "bytes").await;
    for name in ["a", "b"] {
        assert_eq!(put_file(&app, &token, &project, name, vec![1u8; 1000]).await.status(), 201);
    }
    let res = put_file(&app, &token, &project, "c", vec![1u8; 501]).await;
    let body = expect_envelope(res, 413, "payload_too_large").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("AGENTD_MAX_PROJECT_BYTES"),
        "{body}"
    );
    // Exactly at the limit is fine; so is shrinking.
    assert_eq!(put_file(&app, &token, &project, "c", vec![1u8; 500]).await.status(), 201);
    assert_eq!(put_file(&app, &token, &project, "a", vec![1u8; 10]).await.status(), 200);
    let sizes: BTreeMap<String, u64> = list_all(&app, &token, &project, "")
        .await
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, BTreeMap::from([("a".into(), 10), ("b".into(), 1000), ("c".into(), 500)]));
}

#[tokio::test]
async fn a_project_with_too_many_files_is_refused_with_422() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.workspace.max_project_files = 3).await;
    let (_, token) = app.signed_in("many@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "many").await;
    for name in ["a", "b", "c"] {
        assert_eq!(put_file(&app, &token, &project, name, "x").await.status(), 201);
    }
    let res = put_file(&app, &token, &project, "d", "x").await;
    let body = expect_envelope(res, 422, "validation_error").await;
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("AGENTD_MAX_PROJECT_FILES"),
        "{body}"
    );
    // Replacing an existing file is not one more file.
    assert_eq!(put_file(&app, &token, &project, "a", "y").await.status(), 200);
    assert_eq!(list_all(&app, &token, &project, "").await.len(), 3);
}

#[tokio::test]
async fn a_diff_shows_an_edit_and_a_revert_restores_it_as_a_new_revision() {
    diff_and_revert_on(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn a_diff_shows_an_edit_and_a_revert_restores_it_as_a_new_revision_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else { return };
    diff_and_revert_on(db).await;
}

async fn diff_and_revert_on(db: TestDatabase) {
    let app = spawn_app_with(db, |_| {}).await;
    let (me, token) = app.signed_in("rev@example.com", Role::Member).await;
    let project = managed_project(&app, &token, "revisions").await;
    put_file(&app, &token, &project, "a.txt", "line one\nline two\n").await; // 1
    put_file(&app, &token, &project, "b.txt", "bee\n").await; // 2
    put_file(&app, &token, &project, "a.txt", "line one\nline 2\n").await; // 3
    delete_with(&app, &token, &project, "b.txt", None).await; // 4
    assert_eq!(revision(&app, &token, &project).await, 4);

    let diff_url = |query: &str| app.url(&format!("/v1/projects/{project}/diff{query}"));
    let res = app.client.get(diff_url("?from=2&to=3")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/x-diff; charset=utf-8");
    let diff = res.text().await.unwrap();
    assert!(diff.contains("--- a/a.txt\n+++ b/a.txt\n"), "{diff}");
    assert!(diff.contains("-line two\n+line 2\n"), "{diff}");
    assert!(!diff.contains("b.txt"), "{diff}");
    let res = app
        .client
        .get(diff_url("?from=0"))
        .bearer_auth(&token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let json: Value = res.json().await.unwrap();
    assert_eq!((json["from"].clone(), json["to"].clone()), (json!(0), json!(4)));
    assert!(json["diff"].as_str().unwrap().contains("+line 2\n"), "{json}");
    for bad in ["?from=5", "?to=-1", "?from=x"] {
        let res = app.client.get(diff_url(bad)).bearer_auth(&token).send().await.unwrap();
        expect_envelope(res, 422, "validation_error").await;
    }

    let changes_url = |query: &str| app.url(&format!("/v1/projects/{project}/changes{query}"));
    let res = app.client.get(changes_url("")).bearer_auth(&token).send().await.unwrap();
    let changes: Value = res.json().await.unwrap();
    let revisions: Vec<i64> = changes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revisions, [1, 2, 3, 4]);
    let created = &changes["data"][0];
    assert_eq!(created["path"], "a.txt");
    assert!(created.get("old_sha256").is_none());
    assert_eq!(created["author"], format!("user:{}", me.id));
    assert!(changes["data"][3].get("new_sha256").is_none(), "the delete has no new content");
    // Paged one at a time, since 2.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let url = changes_url(&format!("?since=2&limit=1{after}"));
        let page: Value =
            app.client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        seen.extend(
            page["data"].as_array().unwrap().iter().map(|c| c["revision"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, [3, 4]);
    let res = app.client.get(changes_url("?since=9")).bearer_auth(&token).send().await.unwrap();
    expect_envelope(res, 422, "validation_error").await;

    // Back to revision 2: a.txt's old text, b.txt again, as revision 5.
    let revert = |to: Value| {
        app.client
            .post(app.url(&format!("/v1/projects/{project}/revert")))
            .bearer_auth(&token)
            .json(&to)
            .send()
    };
    let res = revert(json!({"to": 2})).await.unwrap();
    assert_eq!(res.status(), 200);
    let reverted: Value = res.json().await.unwrap();
    assert_eq!(reverted["revision"], 5);
    let paths: Vec<&str> = reverted["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt", "b.txt"]);
    assert_eq!(get_file(&app, &token, &project, "a.txt").await, b"line one\nline two\n");
    assert_eq!(get_file(&app, &token, &project, "b.txt").await, b"bee\n");
    assert_eq!(revision(&app, &token, &project).await, 5);
    let res = app.client.get(diff_url("?from=4&to=5")).bearer_auth(&token).send().await.unwrap();
    let diff = res.text().await.unwrap();
    assert!(diff.contains("+line two\n") && diff.contains("+++ b/b.txt"), "{diff}");
    // Nothing between 2 and 5 now; reverting to the current revision changes nothing.
    let res = app.client.get(diff_url("?from=2&to=5")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "");
    let res = revert(json!({"to": 5})).await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"revision": 5, "changes": []}));
    for bad in [json!({"to": 6}), json!({"to": -1}), json!({}), json!({"to": 1, "x": 1})] {
        expect_envelope(revert(bad).await.unwrap(), 422, "validation_error").await;
    }
    assert_eq!(revision(&app, &token, &project).await, 5);
}

#[tokio::test]
async fn another_tenant_gets_404_on_every_project_and_file_route_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@example.com", Role::Member).await;
    let (_, other) = app.signed_in("other@example.com", Role::Member).await;
    let (_, admin) = app.signed_in("admin@example.com", Role::Admin).await;
    let project = managed_project(&app, &owner, "private").await;
    let res = put_file(&app, &owner, &project, "secret.txt", "owner's secret").await;
    let etag = etag_of(&res);
    let p = format!("/v1/projects/{project}");
    let requests: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", p.clone(), None),
        ("PATCH", p.clone(), Some(json!({"title": "stolen"}))),
        ("GET", format!("{p}/files"), None),
        ("POST", format!("{p}/files"), Some(json!({"path": "secret.txt", "content": "x"}))),
        ("GET", format!("{p}/files/secret.txt"), None),
        ("PUT", format!("{p}/files/secret.txt"), None),
        ("PUT", format!("{p}/files/new.txt"), None),
        ("DELETE", format!("{p}/files/secret.txt"), None),
        ("GET", format!("{p}/changes?since=0"), None),
        ("GET", format!("{p}/diff?from=0&to=1"), None),
        ("POST", format!("{p}/revert"), Some(json!({"to": 0}))),
        ("DELETE", p.clone(), None),
    ];
    for (method, path, body) in &requests {
        let mut req =
            app.client.request(method.parse().unwrap(), app.url(path)).bearer_auth(&other);
        req = match body {
            Some(b) => req.json(b),
            None if *method == "PUT" => req.body("overwritten"),
            None => req,
        };
        let res = req.send().await.unwrap();
        let body = expect_envelope(res, 404, "not_found").await;
        assert!(!body.to_string().contains("secret"), "{method} {path}: {body}");
    }
    let res = app.client.get(app.url("/v1/projects")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["data"], json!([]));
    // Nothing changed; the admin sees it all.
    let res = app
        .client
        .get(file_url(&app, &project, "secret.txt"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(etag_of(&res), etag);
    assert_eq!(res.bytes().await.unwrap(), "owner's secret");
    let res = app.client.get(app.url(&p)).bearer_auth(&owner).send().await.unwrap();
    let project_now: Value = res.json().await.unwrap();
    assert_eq!(
        (project_now["title"].clone(), project_now["revision"].clone()),
        (json!("private"), json!(1))
    );
    let listed = list_all(&app, &owner, &project, "").await;
    assert_eq!(listed.len(), 1);
}
