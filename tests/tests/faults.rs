//! Faults injected into real DynamoDB calls by a proxy: throttling ends in 503 after the SDK's
//! retries; transaction conflicts are retried and still pay exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::fault::{Fault, FaultProxy};
use e2e::{TestEnv, app_for, member_token, spawn_api, user};
use serde_json::json;

/// A TestEnv whose App talks to DynamoDB Local through `proxy`.
async fn through(proxy: &FaultProxy, env: &TestEnv) -> e2e::TestApi {
    spawn_api(app_for(shared::store::local_client(&proxy.endpoint), &env.table)).await
}

#[tokio::test]
async fn throttled_reads_end_in_503_after_the_sdk_retries() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, _| (op == "BatchGetItem").then_some(Fault::Throttle)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let started = Instant::now();
    let reply = api.get("/v1/points", Some(&member_token("u1")), None).await;
    reply.assert_problem(503, "unavailable");
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(
        proxy.calls("BatchGetItem"),
        3,
        "the SDK's standard mode tries three times"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn transaction_conflicts_are_retried_and_pay_once() {
    let env = TestEnv::new().await;
    // The first three transactions meet a conflict; the fourth goes through.
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "TransactWriteItems" && nth < 3).then_some(Fault::TransactionConflict)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let reply = api
        .post(
            "/v1/checkins",
            &member_token("u2"),
            "2026-11-23T09:00:00+08:00",
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["checked_in_now"], true);
    assert_eq!(reply.body["points_awarded"], 5);
    assert_eq!(proxy.calls("TransactWriteItems"), 4);
    let page = env.app.store.ledger_page(&user("u2"), 10, None).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(
        env.app
            .store
            .account(&user("u2"), e2e::fixed_now())
            .await
            .unwrap()
            .balance,
        5
    );
}

#[tokio::test]
async fn endless_conflicts_end_in_503_and_write_nothing() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, _| (op == "TransactWriteItems").then_some(Fault::TransactionConflict)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let reply = api
        .post(
            "/v1/checkins",
            &member_token("u3"),
            "2026-11-23T09:00:00+08:00",
            &json!({}),
        )
        .await;
    reply.assert_problem(503, "unavailable");
    assert!(proxy.calls("TransactWriteItems") > 10, "retried before giving up");
    assert_eq!(env.item_count().await, 0);
}

#[tokio::test]
async fn configuration_is_read_once_per_process_not_per_request() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let api = through(&proxy, &env).await;
    let alice = member_token("alice");
    for _ in 0..3 {
        assert_eq!(api.get("/v1/points", Some(&alice), None).await.status, 200);
    }
    let reads = proxy.bodies("BatchGetItem");
    assert_eq!(reads.len(), 3);
    assert!(
        reads[0].contains("TIERS") && reads[0].contains("MULTIPLIERS"),
        "{}",
        reads[0]
    );
    for later in &reads[1..] {
        assert!(
            !later.contains("CONFIG"),
            "the tier and multiplier items came from the cache: {later}"
        );
    }
}

/// Real DynamoDB answers a plain `PutItem` on an item that a transaction holds with
/// `TransactionConflictException`: contention, retried, never a 500.
#[tokio::test]
async fn a_plain_write_meeting_a_transaction_is_retried_then_503() {
    let env = TestEnv::new().await;
    let campaign = json!({ "time_zone": "Europe/Berlin", "ladder": [1, 2, 3] });
    // Two conflicts, then the write goes through.
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "PutItem" && nth < 2).then_some(Fault::ConflictException)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let put = api
        .send_json(
            reqwest::Method::PUT,
            "/v1/admin/checkin-campaigns/spring",
            &e2e::admin_token("ops"),
            "2026-11-23T09:00:00+08:00",
            &campaign,
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(proxy.calls("PutItem"), 3);
    // Conflicts that never end: 503 with Retry-After, and nothing written.
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, _| (op == "PutItem").then_some(Fault::ConflictException)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let put = api
        .send_json(
            reqwest::Method::PUT,
            "/v1/admin/checkin-campaigns/autumn",
            &e2e::admin_token("ops"),
            "2026-11-23T09:00:00+08:00",
            &campaign,
        )
        .await;
    put.assert_problem(503, "unavailable");
    assert_eq!(put.headers["retry-after"], "1");
    assert!(proxy.calls("PutItem") > 2, "retried before giving up");
    let get = api
        .get(
            "/v1/admin/checkin-campaigns/autumn",
            Some(&e2e::admin_token("ops")),
            None,
        )
        .await;
    get.assert_problem(404, "not-found");
}

/// Every base-table `Query` is strongly consistent: a page never misses what the same request's
/// housekeeping just wrote.
#[tokio::test]
async fn base_table_queries_are_consistent() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let api = through(&proxy, &env).await;
    let alice = member_token("alice");
    let now = "2026-11-23T09:00:00+08:00";
    assert_eq!(
        api.post("/v1/checkins", &alice, now, &json!({})).await.status,
        200
    );
    assert_eq!(
        api.get("/v1/points/ledger", Some(&alice), Some(now)).await.status,
        200
    );
    assert_eq!(api.get("/v1/checkins", Some(&alice), Some(now)).await.status, 200);
    let queries = proxy.bodies("Query");
    assert_eq!(queries.len(), 2);
    for body in queries {
        let q: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(q["ConsistentRead"], true, "{body}");
        assert!(q.get("IndexName").is_none());
    }
}
