//! Leaderboards end to end (local API + DynamoDB Local): what counts (purchases and check-ins,
//! never grants), reversals lowering the earn's own period, ties by time, public identities,
//! my rank with neighbours, and 50 members earning at once.

use std::collections::HashMap;
use std::sync::Arc;

use e2e::{Reply, TestApi, TestEnv, admin_token, member_token, service_token};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::boards::{Board, SHARDS};
use shared::store::keys;

const NOW: &str = "2026-11-23T10:00:00+08:00";

async fn shop(api: &TestApi, path: &str, key: &str, now: &str, body: &Value) -> Reply {
    let b = api
        .request(Method::POST, path)
        .bearer_auth(service_token("shop"))
        .header("idempotency-key", key)
        .header("x-debug-now", now)
        .json(body);
    api.send(b).await
}

/// A purchase of `yuan` (1 point per yuan without tiers or windows).
async fn purchase(api: &TestApi, user: &str, yuan: i64, key: &str, now: &str) {
    let body = json!({ "user_id": user, "order_amount_cents": yuan * 100, "reason": "order", "ref": key });
    let r = shop(api, "/v1/admin/points/grants", key, now, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn board(api: &TestApi, board: &str, now: &str) -> Value {
    let r = api
        .get(
            &format!("/v1/leaderboards/{board}?limit=100"),
            Some(&member_token("viewer")),
            Some(now),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn rows(page: &Value) -> Vec<(u64, u64, String, u64)> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["position"].as_u64().unwrap(),
                e["rank"].as_u64().unwrap(),
                e["name"].as_str().unwrap().to_owned(),
                e["score"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn me(api: &TestApi, board: &str, who: &str, neighbours: u32, now: &str) -> Value {
    let path = format!("/v1/leaderboards/{board}/me?neighbours={neighbours}");
    let r = api.get(&path, Some(&member_token(who)), Some(now)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn points_boards_count_earning_not_grants_and_share_ranks() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    // Names: one chosen, one opted out, the others masked.
    let named = json!({ "display_name": "Bea" });
    let r = api
        .send_json(Method::PUT, "/v1/me/profile", &member_token("u-bea"), NOW, &named)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let hidden = json!({ "leaderboard_visible": false });
    let r = api
        .send_json(
            Method::PUT,
            "/v1/me/profile",
            &member_token("u-cyd-77"),
            NOW,
            &hidden,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    purchase(&api, "u-ann-01", 300, "o-ann", "2026-11-23T10:00:00+08:00").await;
    purchase(&api, "u-bea", 500, "o-bea", "2026-11-23T10:01:00+08:00").await;
    // Cyd reaches 300 after Ann: same rank, listed after her.
    purchase(&api, "u-cyd-77", 300, "o-cyd", "2026-11-23T10:02:00+08:00").await;
    // A fixed grant never counts (no buying rank).
    let gift = json!({ "user_id": "u-dan-99", "amount": 1000, "reason": "goodwill", "ref": "g" });
    assert_eq!(
        shop(&api, "/v1/admin/points/grants", "g-dan", NOW, &gift)
            .await
            .status,
        200
    );

    let expected = vec![
        (1, 1, "Bea".to_owned(), 500),
        (2, 2, "u***01".to_owned(), 300),
        (3, 2, "anonymous".to_owned(), 300),
    ];
    for name in [
        "all-time",
        "weekly",
        "weekly:2026-W48",
        "monthly",
        "monthly:2026-11",
    ] {
        let page = board(&api, name, NOW).await;
        assert_eq!(rows(&page), expected, "{name}");
        assert_eq!(page["final"], false);
    }
    assert_eq!(board(&api, "weekly", NOW).await["board"], "weekly:2026-W48");
    assert!(rows(&board(&api, "weekly:2026-W47", NOW).await).is_empty());
    let top2 = api
        .get(
            "/v1/leaderboards/all-time?limit=2",
            Some(&member_token("viewer")),
            Some(NOW),
        )
        .await;
    assert_eq!(rows(&top2.body), expected[..2].to_vec());

    let cyd = me(&api, "all-time", "u-cyd-77", 1, NOW).await;
    assert_eq!(
        (cyd["ranked"].clone(), cyd["rank"].clone(), cyd["score"].clone()),
        (json!(true), json!(2), json!(300))
    );
    assert_eq!(cyd["above"][0]["name"], "u***01");
    assert_eq!(cyd["below"], json!([]));
    let bea = me(&api, "all-time", "u-bea", 10, NOW).await;
    assert_eq!(bea["rank"], 1);
    let below: Vec<&str> = bea["below"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(below, ["u***01", "anonymous"]);
    let dan = me(&api, "all-time", "u-dan-99", 3, NOW).await;
    assert_eq!(dan["ranked"], false);
    assert!(dan.get("rank").is_none());

    // Next week: a refund of Ann's purchase lowers last week's board and all-time, not this week's.
    let next_week = "2026-12-01T10:00:00+08:00";
    purchase(&api, "u-ann-01", 50, "o-ann-2", next_week).await;
    let refund = json!({ "grant_idempotency_key": "o-ann", "amount": 120, "reason": "refund" });
    let r = shop(
        &api,
        "/v1/admin/points/reversals",
        "refund-ann",
        next_week,
        &refund,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let last_week = rows(&board(&api, "weekly:2026-W48", next_week).await);
    assert_eq!(last_week[2], (3, 3, "u***01".to_owned(), 180));
    let all_time = rows(&board(&api, "all-time", next_week).await);
    assert_eq!(all_time[2], (3, 3, "u***01".to_owned(), 230));
    assert_eq!(
        rows(&board(&api, "weekly", next_week).await),
        vec![(1, 1, "u***01".to_owned(), 50)]
    );
    // Never below 0: refunding all that is left takes the week's score to 0, off the board.
    let rest = json!({ "grant_idempotency_key": "o-ann-2", "reason": "refund" });
    let r = shop(
        &api,
        "/v1/admin/points/reversals",
        "refund-ann-2",
        next_week,
        &rest,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(rows(&board(&api, "weekly", next_week).await).is_empty());
    assert_eq!(
        me(&api, "weekly", "u-ann-01", 0, next_week).await["ranked"],
        false
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn checkins_count_and_make_ups_do_not() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let campaign = json!({ "time_zone": "Asia/Shanghai", "ladder": [10, 20], "makeup": { "cost": 5, "max_per_month": 3, "lookback_days": 7 } });
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/checkin-campaigns/daily",
            &admin_token("ops"),
            NOW,
            &campaign,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = json!({ "campaign_id": "daily" });
    let r = api
        .post(
            "/v1/checkins",
            &member_token("u-eve"),
            "2026-11-22T09:00:00+08:00",
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api.post("/v1/checkins", &member_token("u-eve"), NOW, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A repeat the same day writes nothing and moves nothing.
    let r = api.post("/v1/checkins", &member_token("u-eve"), NOW, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = board(&api, "all-time", NOW).await;
    assert_eq!(rows(&page), vec![(1, 1, "u***".to_owned(), 30)]);
    // Weeks start Monday: Sunday the 22nd was last week.
    assert_eq!(rows(&board(&api, "weekly", NOW).await)[0].3, 20);
    let before = env
        .app
        .store
        .account(&e2e::user("u-eve"), e2e::fixed_now())
        .await
        .unwrap()
        .balance;
    let makeup = json!({ "campaign_id": "daily", "date": "2026-11-21" });
    let r = api
        .post("/v1/checkins/makeup", &member_token("u-eve"), NOW, &makeup)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = env
        .app
        .store
        .account(&e2e::user("u-eve"), e2e::fixed_now())
        .await
        .unwrap()
        .balance;
    assert_ne!(before, after, "the make-up was made");
    assert_eq!(
        rows(&board(&api, "all-time", NOW).await)[0].3,
        30,
        "a make-up never counts"
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn bad_boards_and_parameters() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let m = member_token("u1");
    for (path, status, kind) in [
        ("/v1/leaderboards/daily", 422, "invalid-value"),
        ("/v1/leaderboards/weekly:2026-W60", 422, "invalid-value"),
        ("/v1/leaderboards/all-time?limit=0", 422, "invalid-value"),
        ("/v1/leaderboards/all-time?limit=101", 422, "invalid-value"),
        ("/v1/leaderboards/all-time?limit=ten", 400, "invalid-request"),
        ("/v1/leaderboards/all-time/me?neighbours=11", 422, "invalid-value"),
        ("/v1/leaderboards/contest:nope", 404, "not-found"),
        ("/v1/leaderboards/contest:nope:teams/me", 404, "not-found"),
    ] {
        api.get(path, Some(&m), Some(NOW))
            .await
            .assert_problem(status, kind);
    }
    // No token: the authorizer's own 401.
    assert_eq!(
        api.get("/v1/leaderboards/all-time", None, Some(NOW)).await.status,
        401
    );
    api.get(
        "/v1/leaderboards/all-time/me",
        Some(&service_token("shop")),
        Some(NOW),
    )
    .await
    .assert_problem(403, "forbidden");
    // A service may read a listing.
    assert_eq!(
        api.get(
            "/v1/leaderboards/all-time",
            Some(&service_token("shop")),
            Some(NOW)
        )
        .await
        .status,
        200
    );
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_members_earning_at_once_rank_as_their_ledgers_say() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    earn_at_once_and_check(&env, api, 50).await;
    env.assert_audit_clean().await;
}

/// The two "at once" tests take turns: each alone is the load it claims to withstand.
static AT_ONCE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Real DynamoDB cancels a transaction that meets another on one of its items (a hot bucket
/// counter, say) with `TransactionConflict`; DynamoDB Local never does. Here every fifth
/// transaction is cancelled that way: the earns retry, and scores, ranks and counters still
/// equal the ledgers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_transactions_still_rank_as_the_ledgers_say() {
    let env = TestEnv::new().await;
    let proxy = e2e::fault::FaultProxy::start(
        e2e::endpoint(),
        Arc::new(|op, nth| {
            (op == "TransactWriteItems" && nth % 5 == 4).then_some(e2e::fault::Fault::TransactionConflict)
        }),
    )
    .await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let api = Arc::new(e2e::spawn_api(app).await);
    earn_at_once_and_check(&env, api, 30).await;
    let conflicts = proxy.calls("TransactWriteItems") / 5;
    assert!(conflicts >= 18, "{conflicts} conflicts answered");
    env.assert_audit_clean().await;
}

async fn earn_at_once_and_check(env: &TestEnv, api: Arc<TestApi>, members: usize) {
    let _turn = AT_ONCE.lock().await;
    // `members` members, 3 purchases each, all at once; amounts collide on purpose (ties, shared
    // buckets).
    let replies = e2e::concurrently(3 * members, |i| {
        let api = api.clone();
        async move {
            let who = format!("m{:02}", i % members);
            let yuan = 10 + (i as i64 * 37) % 120;
            let key = format!("o-{i}");
            let body =
                json!({ "user_id": who, "order_amount_cents": yuan * 100, "reason": "order", "ref": key });
            shop(&api, "/v1/admin/points/grants", &key, NOW, &body).await
        }
    })
    .await;
    let refused: Vec<&Value> = replies
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| &r.body)
        .collect();
    assert!(refused.is_empty(), "every purchase was made: {refused:?}");
    // What each member's ledger says.
    let mut earned: HashMap<String, u64> = HashMap::new();
    for i in 0..members {
        let who = format!("m{i:02}");
        let account = env
            .app
            .store
            .account(&e2e::user(&who), e2e::fixed_now())
            .await
            .unwrap();
        earned.insert(who, account.balance as u64);
    }
    let page = board(&api, "all-time", NOW).await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), members);
    let mut listed: Vec<u64> = entries.iter().map(|e| e["score"].as_u64().unwrap()).collect();
    let mut from_ledgers: Vec<u64> = earned.values().copied().collect();
    from_ledgers.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(listed, from_ledgers);
    listed.dedup();
    // Every member's rank is 1 + the members with a strictly higher ledger total.
    for (who, total) in &earned {
        let mine = me(&api, "all-time", who, 0, NOW).await;
        let higher = earned.values().filter(|t| *t > total).count() as u64;
        assert_eq!(mine["rank"], higher + 1, "{who}");
        assert_eq!(mine["score"], *total);
    }
    // The counters agree: one per entry, across the shards.
    let mut counted = 0i64;
    for shard in 0..SHARDS {
        let out = env
            .app
            .store
            .client()
            .query()
            .table_name(&env.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(keys::board_counters(&Board::AllTime, shard)),
            )
            .send()
            .await
            .unwrap();
        for item in out.items() {
            counted += item["n"].as_n().unwrap().parse::<i64>().unwrap();
        }
    }
    assert_eq!(counted, members as i64);
}
