//! Test harness: each test gets its own table in the one DynamoDB Local that `scripts/test.sh`
//! started (its address is in `AWS_ENDPOINT_URL_DYNAMODB`), and can start the real local API on a
//! free loopback port.

pub mod capacity;
pub mod contract;
pub mod fault;
pub mod outage;
pub mod runtime;
pub mod scale;
pub mod story;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use local_api::server::{LocalApi, serve};
use local_api::table::ensure_table;
use local_api::template::Template;
use serde_json::Value;
use shared::domain::UserId;
use shared::{App, Config};

/// DynamoDB Local's address, from the environment `scripts/test.sh` sets up.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL_DYNAMODB is not set: run the tests with scripts/test.sh, which starts DynamoDB Local")
    })
}

/// A fresh table created from template.yaml, and an [`App`] on it (dev clock on, default zone).
pub struct TestEnv {
    pub app: App,
    pub table: String,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_endpoint(&endpoint()).await
    }

    pub async fn with_endpoint(endpoint: &str) -> Self {
        let table = format!("test-{}", ulid::Ulid::generate().to_string().to_ascii_lowercase());
        let client = shared::store::local_client(endpoint);
        let template = Template::load(&local_api::repo_root().join("template.yaml")).expect("template.yaml");
        ensure_table(&client, &table, &template.table().expect("table spec"))
            .await
            .expect("create table");
        Self {
            app: app_for(client, &table),
            table,
        }
    }

    /// How many items the table holds (refusals must leave it unchanged).
    pub async fn item_count(&self) -> i32 {
        let scan = self
            .app
            .store
            .client()
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan");
        scan.count()
    }

    /// Credits `amount` points to `user` (test set-up through the real ledger).
    pub async fn seed_points(&self, user_id: &str, amount: i64) {
        let posting = shared::domain::ledger::Posting::new(
            amount,
            shared::domain::ledger::Reason::Grant,
            "seed",
            format!("seed#{user_id}#{}", ulid::Ulid::generate()),
        );
        self.app
            .store
            .post(&user(user_id), posting, fixed_now())
            .await
            .expect("seed points");
    }

    /// Runs the invariant audit (`campaign-ops audit`, default business zone) over this table and
    /// fails the test on any violation, printing the report. Answers the report.
    pub async fn assert_audit_clean(&self) -> ops::audit::Report {
        let report = ops::audit::run(
            self.app.store.client(),
            &self.table,
            self.app.config.business_zone,
            |_| {},
        )
        .await
        .expect("audit scan");
        assert!(
            report.is_clean(),
            "the audit found violations:\n{}",
            report.render()
        );
        report
    }

    /// Starts the local API for this table on 127.0.0.1:<free port>; it stops with the test.
    pub async fn spawn_api(&self) -> TestApi {
        spawn_api(self.app.clone()).await
    }
}

/// An App on `table` with the dev clock on (tests set `x-debug-now`).
pub fn app_for(client: aws_sdk_dynamodb::Client, table: &str) -> App {
    app_caching(client, table, 30)
}

/// Like [`app_for`], caching configuration for `seconds` (0: never). Tests whose functions run
/// as separate processes and move the dev clock past a contest's start use 0: the real clock
/// does not move, so a process would keep the index it read before the contest existed.
pub fn app_caching(client: aws_sdk_dynamodb::Client, table: &str, seconds: u32) -> App {
    let seconds = seconds.to_string();
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.to_owned()),
        "CAMPAIGN_DEV_CLOCK" => Some("1".to_owned()),
        "CONFIG_CACHE_SECONDS" => Some(seconds.clone()),
        _ => None,
    })
    .expect("config");
    App::new(config, client)
}

pub async fn spawn_api(app: App) -> TestApi {
    spawn_api_per_function(|_| app.clone()).await
}

/// Starts the local API with an app per function of template.yaml (by logical id), as Lambda
/// runs them: each its own client and cache.
pub async fn spawn_api_per_function(app_for: impl FnMut(&str) -> App) -> TestApi {
    let template = Template::load(&local_api::repo_root().join("template.yaml")).expect("template.yaml");
    let openapi = std::fs::read(local_api::repo_root().join("openapi.yaml")).expect("openapi.yaml");
    let api = Arc::new(
        LocalApi::with_apps(&template, app_for)
            .expect("local api")
            .with_openapi(openapi)
            .with_docs(local_api::docs_dir()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, api, std::future::pending()));
    TestApi {
        base,
        http: reqwest::Client::new(),
    }
}

pub fn user(id: &str) -> UserId {
    UserId::parse(id).expect("user id")
}

/// An unsigned JWT with these claims (the local API does not check signatures).
pub fn token(claims: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.unsigned")
}

pub fn member_token(sub: &str) -> String {
    token(serde_json::json!({ "sub": sub, "token_use": "id" }))
}

pub fn admin_token(sub: &str) -> String {
    token(serde_json::json!({ "sub": sub, "cognito:groups": ["admin"] }))
}

pub fn service_token(client_id: &str) -> String {
    scoped_service_token(client_id, "campaign/points.write")
}

/// A client-credentials access token with these (space-separated) scopes.
pub fn scoped_service_token(client_id: &str, scope: &str) -> String {
    token(serde_json::json!({
        "sub": client_id, "client_id": client_id, "token_use": "access", "scope": scope
    }))
}

/// The local API under test, over real HTTP.
#[derive(Clone)]
pub struct TestApi {
    pub base: String,
    pub http: reqwest::Client,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts a problem+json error with this status and `type`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, kind: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        assert_eq!(self.body["type"], kind, "body: {}", self.body);
        assert_eq!(self.body["status"], status);
    }
}

impl TestApi {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and reads the reply whole. Every reply must match `openapi.yaml`
    /// ([`contract::Contract::check`]): a response outside the contract fails the test.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let request = builder.build().expect("a well-formed request");
        let (method, path) = (request.method().to_string(), request.url().path().to_owned());
        let resp = self.http.execute(request).await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        let reply = Reply {
            status,
            headers,
            body,
        };
        if let Err(mismatch) =
            contract::contract().check(&method, &path, status, reply.content_type(), &reply.body)
        {
            panic!("the reply breaks openapi.yaml: {mismatch}");
        }
        reply
    }

    /// POST/PUT a JSON body as `token` at `now`.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        now: &str,
        body: &Value,
    ) -> Reply {
        let b = self
            .request(method, path)
            .bearer_auth(token)
            .header("x-debug-now", now)
            .json(body);
        self.send(b).await
    }

    pub async fn post(&self, path: &str, token: &str, now: &str, body: &Value) -> Reply {
        self.send_json(reqwest::Method::POST, path, token, now, body)
            .await
    }

    /// GET as `token` (if any) at `now` (RFC 3339, if any).
    pub async fn get(&self, path: &str, token: Option<&str>, now: Option<&str>) -> Reply {
        let mut b = self.request(reqwest::Method::GET, path);
        if let Some(t) = token {
            b = b.bearer_auth(t);
        }
        if let Some(n) = now {
            b = b.header("x-debug-now", n);
        }
        self.send(b).await
    }
}

/// A fixed instant (2026-11-23T12:00:00Z) for set-up and reads that should not depend on the
/// machine's clock.
pub fn fixed_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .expect("instant")
        .with_timezone(&chrono::Utc)
}

/// Runs `task(0)`, …, `task(n - 1)` at the same time, each spawned on the runtime's threads, and
/// returns their results in order: real concurrency against DynamoDB Local.
pub async fn concurrently<T, Fut>(n: usize, task: impl Fn(usize) -> Fut) -> Vec<T>
where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(task(i))).collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.expect("a concurrent task panicked"));
    }
    results
}

/// How many replies succeeded (200); every other reply must be the problem `status`/`kind`.
#[track_caller]
pub fn successes(replies: &[Reply], status: u16, kind: &str) -> usize {
    let mut ok = 0;
    for reply in replies {
        if reply.status == 200 {
            ok += 1;
        } else {
            reply.assert_problem(status, kind);
        }
    }
    ok
}
