use agentd_test_support::{TestDatabase, spawn_app, spawn_app_with};

#[tokio::test]
async fn liveness_reports_ok_and_the_version() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

async fn readiness_is_ok_on(database: TestDatabase) {
    let app = spawn_app_with(database, |_| {}).await;
    let res = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"][0]["name"], "database");
    assert_eq!(body["checks"][0]["status"], "ok");
}

#[tokio::test]
async fn readiness_checks_the_database_on_sqlite() {
    readiness_is_ok_on(TestDatabase::sqlite()).await;
}

#[tokio::test]
async fn readiness_checks_the_database_on_postgres() {
    let Some(db) = TestDatabase::postgres().await else { return };
    readiness_is_ok_on(db).await;
}
