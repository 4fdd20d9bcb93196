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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
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
    env.assert_audit_clean().await;
}

/// A committed transaction whose answer is lost: the SDK sends it again with the same
/// `ClientRequestToken`. The request must answer what it did, once.
#[tokio::test]
async fn a_lost_answer_to_a_committed_checkin_is_still_answered_as_a_checkin() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "TransactWriteItems" && nth == 0).then_some(Fault::LoseResponse)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let reply = api
        .post(
            "/v1/checkins",
            &member_token("lou"),
            "2026-11-23T09:00:00+08:00",
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The SDK's retry is the same call: the same body, with the same ClientRequestToken, which
    // DynamoDB answers with success instead of applying it twice.
    let sent = proxy.bodies("TransactWriteItems");
    assert_eq!(sent.len(), 2);
    assert!(sent[0].contains("\"ClientRequestToken\""), "{}", sent[0]);
    assert_eq!(sent[0], sent[1]);
    assert_eq!(reply.body["checked_in_now"], true);
    assert_eq!(reply.body["points_awarded"], 5);
    let page = env.app.store.ledger_page(&user("lou"), 10, None).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    env.assert_audit_clean().await;
}

/// Loses the answers of the first `n` `TransactWriteItems` calls (each is applied).
fn lose_first_transactions(n: usize) -> e2e::fault::Rule {
    Arc::new(move |op, nth| (op == "TransactWriteItems" && nth < n).then_some(Fault::LoseResponse))
}

async fn ledger_of(env: &TestEnv, who: &str) -> Vec<shared::domain::ledger::LedgerEntry> {
    env.app
        .store
        .ledger_page(&user(who), 100, None)
        .await
        .unwrap()
        .entries
}

/// The SDK gives up after a commit (every answer lost): the app gets 503 and sends again.
#[tokio::test]
async fn a_checkin_sent_again_after_a_lost_commit_answers_what_it_paid() {
    let env = TestEnv::new().await;
    let window = shared::domain::tiers::MultiplierWindow {
        start: "2026-11-23T00:00:00+08:00".parse().unwrap(),
        end: "2026-11-24T00:00:00+08:00".parse().unwrap(),
        factor_bps: 20_000,
        reasons: vec![shared::domain::ledger::Reason::Checkin],
    };
    env.app
        .store
        .put_multiplier("double", window, e2e::fixed_now())
        .await
        .unwrap();
    let proxy = FaultProxy::start(e2e::endpoint(), lose_first_transactions(3)).await;
    let api = through(&proxy, &env).await;
    let lou = member_token("lou");
    let now = "2026-11-23T09:00:00+08:00";
    let first = api.post("/v1/checkins", &lou, now, &json!({})).await;
    first.assert_problem(503, "unavailable");
    assert_eq!(proxy.calls("TransactWriteItems"), 3, "the SDK tried three times");
    let again = api.post("/v1/checkins", &lou, now, &json!({})).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["checked_in_now"], false);
    assert_eq!(
        again.body["points_awarded"], 10,
        "what today's check-in credited: 5 doubled"
    );
    assert_eq!(again.body["balance"], 10);
    let entries = ledger_of(&env, "lou").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].delta, 10);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn member_writes_with_an_idempotency_key_answer_the_original_after_a_lost_commit() {
    let env = TestEnv::new().await;
    env.seed_points("mia", 100).await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let api = through(&proxy, &env).await;
    let mia = member_token("mia");
    let post = |path: &'static str, key: Option<&'static str>, now: &'static str, body: serde_json::Value| {
        let mut b = api
            .request(reqwest::Method::POST, path)
            .bearer_auth(&mia)
            .header("x-debug-now", now)
            .json(&body);
        if let Some(key) = key {
            b = b.header("idempotency-key", key);
        }
        api.send(b)
    };
    assert_eq!(
        post("/v1/checkins", None, "2026-11-20T09:00:00+08:00", json!({}))
            .await
            .status,
        200
    );
    // Each through a proxy that loses the answers of its first three transactions (all of them).
    let send_lossy = |path: &'static str, key: &'static str, now: &'static str, body: serde_json::Value| {
        let (env, mia) = (&env, mia.clone());
        async move {
            let lost = FaultProxy::start(e2e::endpoint(), lose_first_transactions(3)).await;
            let lossy = through(&lost, env).await;
            let b = lossy
                .request(reqwest::Method::POST, path)
                .bearer_auth(&mia)
                .header("x-debug-now", now)
                .header("idempotency-key", key)
                .json(&body);
            let reply = lossy.send(b).await;
            assert_eq!(lost.calls("TransactWriteItems"), 3);
            reply
        }
    };
    // A check-in whose every answer is lost, then sent again with its key: the original answer.
    send_lossy("/v1/checkins", "tap-22", "2026-11-22T09:00:00+08:00", json!({}))
        .await
        .assert_problem(503, "unavailable");
    let again = post(
        "/v1/checkins",
        Some("tap-22"),
        "2026-11-22T09:00:00+08:00",
        json!({}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body["checked_in_now"], true,
        "the stored answer of the call"
    );
    assert_eq!(again.body["points_awarded"], 5);
    // A make-up likewise: charged once, answered as made.
    let makeup = json!({ "date": "2026-11-21" });
    send_lossy(
        "/v1/checkins/makeup",
        "fix-21",
        "2026-11-22T10:00:00+08:00",
        makeup.clone(),
    )
    .await
    .assert_problem(503, "unavailable");
    let again = post(
        "/v1/checkins/makeup",
        Some("fix-21"),
        "2026-11-22T10:00:00+08:00",
        makeup.clone(),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["points_charged"], 20);
    assert_eq!(again.body["current_streak"], 3);
    // Without its key the same make-up is refused: the day is not missed any more.
    post(
        "/v1/checkins/makeup",
        None,
        "2026-11-22T10:00:00+08:00",
        makeup.clone(),
    )
    .await
    .assert_problem(409, "not-missed");
    // The same key with another request is refused.
    post(
        "/v1/checkins/makeup",
        Some("fix-21"),
        "2026-11-22T10:00:00+08:00",
        json!({ "date": "2026-11-19" }),
    )
    .await
    .assert_problem(409, "idempotency-key-reused");
    let entries = ledger_of(&env, "mia").await;
    let count = |reason| entries.iter().filter(|e| e.reason == reason).count();
    use shared::domain::ledger::Reason;
    assert_eq!((count(Reason::Checkin), count(Reason::Makeup)), (2, 1));
    let balance: i64 = entries.iter().map(|e| e.delta).sum();
    assert_eq!(balance, 100 + 5 + 5 - 20);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_grant_sent_again_after_a_lost_commit_pays_once() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), lose_first_transactions(3)).await;
    let api = through(&proxy, &env).await;
    let send = || {
        let b = api
            .request(reqwest::Method::POST, "/v1/admin/points/grants")
            .bearer_auth(e2e::service_token("shop"))
            .header("idempotency-key", "order-77")
            .header("x-debug-now", "2026-11-23T09:00:00+08:00")
            .json(&json!({ "user_id": "ned", "amount": 40, "reason": "paid", "ref": "order-77" }));
        api.send(b)
    };
    send().await.assert_problem(503, "unavailable");
    let again = send().await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        (again.body["points"].clone(), again.body["balance"].clone()),
        (json!(40), json!(40))
    );
    assert_eq!(ledger_of(&env, "ned").await.len(), 1);
    env.assert_audit_clean().await;
}

/// During a burst of admissions the ladder item is contended. The purchase never waits on it:
/// it is paid even when every admission transaction meets a conflict, and the next read of the
/// account completes the admission.
#[tokio::test]
async fn a_contended_ladder_never_fails_the_purchase_and_the_next_read_admits() {
    let env = TestEnv::new().await;
    let tiers = shared::domain::tiers::TierConfig {
        tiers: vec![
            serde_json::from_value(json!({ "name": "Member", "threshold": 0 })).unwrap(),
            serde_json::from_value(json!({ "name": "Black Card", "threshold": 1000, "max_members": 5 }))
                .unwrap(),
        ],
    };
    env.app.store.put_tiers(tiers, e2e::fixed_now()).await.unwrap();
    let ladder_item = r#"{"S":"TIERS"}"#;
    let proxy = FaultProxy::start_matching(
        e2e::endpoint(),
        Arc::new(move |op, _, body: &str| {
            (op == "TransactWriteItems" && body.contains(ladder_item)).then_some(Fault::TransactionConflict)
        }),
    )
    .await;
    let api = through(&proxy, &env).await;
    let now = "2026-11-23T09:00:00+08:00";
    let grant = api
        .send(
            api.request(reqwest::Method::POST, "/v1/admin/points/grants")
                .bearer_auth(e2e::service_token("shop"))
                .header("idempotency-key", "big-order")
                .header("x-debug-now", now)
                .json(&json!({ "user_id": "vip", "amount": 1500, "reason": "paid", "ref": "big-order" })),
        )
        .await;
    assert_eq!(grant.status, 200, "{}", grant.body);
    assert_eq!(grant.body["points"], 1500);
    let admissions = proxy
        .bodies("TransactWriteItems")
        .iter()
        .filter(|b| b.contains(ladder_item))
        .count();
    assert!(admissions > 1, "the admission was tried and retried");
    // While the ladder stays contended, reads still answer (the member is not admitted yet).
    let me = api.get("/v1/me", Some(&member_token("vip")), Some(now)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["tier"]["name"], "Member");
    assert_eq!(me.body["points"]["balance"], 1500);
    // The next read once the contention is gone completes it.
    let clean = spawn_api(app_for(shared::store::local_client(&e2e::endpoint()), &env.table)).await;
    let me = clean.get("/v1/me", Some(&member_token("vip")), Some(now)).await;
    assert_eq!(me.body["tier"]["name"], "Black Card", "{}", me.body);
    let state = env.app.store.tier_state().await.unwrap();
    assert_eq!(state.seats.get("Black Card"), Some(&1));
    env.assert_audit_clean().await;
}

/// One deadline covers all of a request's DynamoDB calls: a slow store ends in 503 with
/// Retry-After by the deadline, never in a gateway timeout.
#[tokio::test]
async fn a_slow_store_ends_in_503_at_the_request_deadline() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|_, _| Some(Fault::Delay(Duration::from_millis(700)))),
    )
    .await;
    let config = shared::Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(env.table.clone()),
        "CAMPAIGN_DEV_CLOCK" => Some("1".to_owned()),
        "REQUEST_DEADLINE_MS" => Some("1000".to_owned()),
        _ => None,
    })
    .unwrap();
    let app = shared::App::new(config, shared::store::local_client(&proxy.endpoint));
    let api = spawn_api(app).await;
    let now = "2026-11-23T09:00:00+08:00";
    // Each call alone fits the SDK's limits; together they pass the request's deadline.
    let grant = json!({ "user_id": "sam", "amount": 5, "reason": "r", "ref": "x" });
    for (method, path, token, body) in [
        ("POST", "/v1/checkins", member_token("sam"), json!({})),
        ("GET", "/v1/points/ledger", member_token("sam"), json!({})),
        (
            "POST",
            "/v1/admin/points/grants",
            e2e::service_token("shop"),
            grant,
        ),
    ] {
        let started = Instant::now();
        let reply = api
            .send(
                api.request(method.parse().unwrap(), path)
                    .bearer_auth(&token)
                    .header("idempotency-key", "k")
                    .header("x-debug-now", now)
                    .json(&body),
            )
            .await;
        let took = started.elapsed();
        reply.assert_problem(503, "unavailable");
        assert_eq!(reply.headers["retry-after"], "1");
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(1500),
            "{method} {path} took {took:?}"
        );
    }
    env.assert_audit_clean().await;
}

/// The default deadline leaves the Lambda time to answer.
#[test]
fn the_default_deadline_ends_inside_the_lambda_timeout() {
    let template =
        local_api::template::Template::load(&local_api::repo_root().join("template.yaml")).unwrap();
    let deadline = Duration::from_millis(u64::from(shared::config::DEFAULT_REQUEST_DEADLINE_MS));
    for function in template.functions().unwrap() {
        let timeout = Duration::from_secs(template.timeout_seconds(&function).unwrap());
        assert!(
            deadline + Duration::from_secs(2) <= timeout,
            "{function}: deadline {deadline:?} vs timeout {timeout:?}"
        );
    }
}

/// A ladder change is a transaction (the windows' version is checked with it): a conflict on it
/// is retried like any lost race.
#[tokio::test]
async fn a_ladder_change_meeting_a_transaction_is_retried() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "TransactWriteItems" && nth < 2).then_some(Fault::TransactionConflict)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let tiers =
        json!({ "tiers": [{ "name": "Member", "threshold": 0 }, { "name": "VIP", "threshold": 100 }] });
    let put = api
        .send_json(
            reqwest::Method::PUT,
            "/v1/admin/tiers",
            &e2e::admin_token("ops"),
            "2026-11-23T09:00:00+08:00",
            &tiers,
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(proxy.calls("TransactWriteItems"), 3);
    assert_eq!(
        env.app.store.tier_state().await.unwrap().version,
        1,
        "written once"
    );
    env.assert_audit_clean().await;
}

/// A window deletion whose answer is lost: the SDK's retry of the conditional put fails its
/// condition (the first one committed). The delete happened, so it answers 200, not 404.
#[tokio::test]
async fn a_deletion_whose_answer_was_lost_still_answers_deleted() {
    let env = TestEnv::new().await;
    let window = shared::domain::tiers::MultiplierWindow {
        start: "2026-12-12T00:00:00+08:00".parse().unwrap(),
        end: "2026-12-13T00:00:00+08:00".parse().unwrap(),
        factor_bps: 20_000,
        reasons: vec![shared::domain::ledger::Reason::Purchase],
    };
    env.app
        .store
        .put_multiplier("d12", window, e2e::fixed_now())
        .await
        .unwrap();
    let proxy = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "PutItem" && nth == 0).then_some(Fault::LoseResponse)),
    )
    .await;
    let api = through(&proxy, &env).await;
    let reply = api
        .send_json(
            reqwest::Method::DELETE,
            "/v1/admin/multipliers/d12",
            &e2e::admin_token("ops"),
            "2026-11-23T09:00:00+08:00",
            &json!(null),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["deleted"], true);
    assert!(proxy.calls("PutItem") >= 2, "the lost answer was retried");
    assert!(env.app.store.multipliers().await.unwrap().windows.is_empty());
    env.assert_audit_clean().await;
}

/// Profile writes under real DynamoDB's failures: a lost answer (the SDK sends the versioned put
/// again, meets its own write, reads and writes again), a transaction holding the item, throttling
/// to the end (503, the profile as it was), and two devices racing (both versions count once each).
#[tokio::test]
async fn profile_writes_survive_lost_answers_conflicts_and_races() {
    let env = TestEnv::new().await;
    let mia = member_token("mia-0001");
    let put = |api: &e2e::TestApi, name: &str| {
        let body = json!({ "display_name": name });
        let api = api.clone();
        let mia = mia.clone();
        async move {
            api.send_json(
                reqwest::Method::PUT,
                "/v1/me/profile",
                &mia,
                "2026-11-23T09:00:00+08:00",
                &body,
            )
            .await
        }
    };
    let lost = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "PutItem" && nth == 0).then_some(Fault::LoseResponse)),
    )
    .await;
    let reply = put(&through(&lost, &env).await, "Mia").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["display_name"], "Mia");
    assert!(lost.calls("PutItem") >= 2, "the lost answer was retried");

    let conflicted = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| (op == "PutItem" && nth < 2).then_some(Fault::ConflictException)),
    )
    .await;
    let reply = put(&through(&conflicted, &env).await, "Mia B").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(conflicted.calls("PutItem"), 3);

    let throttled = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, _| (op == "PutItem").then_some(Fault::Throttle)),
    )
    .await;
    put(&through(&throttled, &env).await, "Never")
        .await
        .assert_problem(503, "unavailable");
    let direct = env.spawn_api().await;
    let now = direct.get("/v1/me/profile", Some(&mia), None).await;
    assert_eq!(
        now.body["display_name"], "Mia B",
        "a refused write changed nothing"
    );

    // Ten devices rename at once: each write is applied whole, one after another (the version
    // went up by exactly ten), and the name is one of them.
    let member = env
        .app
        .store
        .member(&user("mia-0001"), chrono::Utc::now())
        .await
        .unwrap();
    let replies = e2e::concurrently(10, |i| put(&direct, &format!("Mia {i}"))).await;
    assert_eq!(e2e::successes(&replies, 503, "unavailable"), 10);
    let after = env
        .app
        .store
        .member(&user("mia-0001"), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(after.profile.version, member.profile.version + 10);
    assert!(after.profile.display_name.unwrap().starts_with("Mia "));
    env.assert_audit_clean().await;
}

/// The first home screen's bookkeeping write (the first appearance) failing never fails the
/// screen: it is served, and the next visit records the appearance.
#[tokio::test]
async fn a_throttled_first_appearance_still_serves_the_home_screen() {
    let env = TestEnv::new().await;
    let throttled = FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, _| (op == "PutItem").then_some(Fault::Throttle)),
    )
    .await;
    let api = through(&throttled, &env).await;
    let noa = member_token("noa-0001");
    let home = api.get("/v1/me", Some(&noa), Some("2026-11-01T08:00:00Z")).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(throttled.calls("PutItem") >= 1, "the write was tried");
    let member = env
        .app
        .store
        .member(&user("noa-0001"), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(member.registered_at(), None, "not recorded yet");
    let direct = env.spawn_api().await;
    direct
        .get("/v1/me", Some(&noa), Some("2026-11-02T08:00:00Z"))
        .await;
    let member = env
        .app
        .store
        .member(&user("noa-0001"), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(member.registered_at(), "2026-11-02T08:00:00Z".parse().ok());
    env.assert_audit_clean().await;
}
