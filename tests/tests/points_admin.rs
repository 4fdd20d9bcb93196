//! The shop backend's ledger routes end to end: idempotency under concurrency and over time,
//! holds that never overdraw, capture racing release, reversals capped at the grant, expiry,
//! multipliers, tiers (including a capped tier under concurrency) and the home screen.

use std::sync::Arc;

use e2e::{Reply, TestApi, TestEnv, admin_token, member_token, service_token, token};
use reqwest::Method;
use serde_json::{Value, json};

const NOW: &str = "2026-11-23T10:00:00+08:00";

async fn call(api: &TestApi, path: &str, token: &str, key: &str, now: &str, body: &Value) -> Reply {
    let b = api
        .request(Method::POST, path)
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("x-debug-now", now)
        .json(body);
    api.send(b).await
}

async fn grant(api: &TestApi, key: &str, user: &str, amount: i64, now: &str) -> Reply {
    let body = json!({ "user_id": user, "amount": amount, "reason": "goodwill", "ref": key });
    call(
        api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        key,
        now,
        &body,
    )
    .await
}

async fn hold(api: &TestApi, key: &str, user: &str, amount: i64, now: &str) -> Reply {
    let body = json!({ "user_id": user, "amount": amount, "ref": key });
    call(
        api,
        "/v1/admin/points/holds",
        &service_token("shop"),
        key,
        now,
        &body,
    )
    .await
}

async fn reverse(api: &TestApi, key: &str, body: &Value) -> Reply {
    call(
        api,
        "/v1/admin/points/reversals",
        &service_token("shop"),
        key,
        NOW,
        body,
    )
    .await
}

async fn settle(api: &TestApi, key: &str, hold_id: &str, action: &str) -> Reply {
    let path = format!("/v1/admin/points/holds/{hold_id}/{action}");
    call(api, &path, &service_token("shop"), key, NOW, &json!({})).await
}

async fn points(api: &TestApi, user: &str, now: &str) -> Value {
    let r = api.get("/v1/points", Some(&member_token(user)), Some(now)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn ledger(api: &TestApi, user: &str, now: &str) -> Vec<Value> {
    let r = api
        .get(
            "/v1/points/ledger?limit=100",
            Some(&member_token(user)),
            Some(now),
        )
        .await;
    r.body["entries"].as_array().unwrap().clone()
}

fn count(entries: &[Value], reason: &str) -> usize {
    entries.iter().filter(|e| e["reason"] == reason).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_replays_of_one_grant_pay_once_and_answer_alike() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    let replies = e2e::concurrently(100, |_| {
        let api = api.clone();
        async move { grant(&api, "order-1-paid", "ann", 120, NOW).await }
    })
    .await;
    let mut bodies = Vec::new();
    for r in replies {
        assert_eq!(r.status, 200, "{}", r.body);
        bodies.push(r.body);
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every replay gets the original answer"
    );
    assert_eq!(bodies[0]["points"], 120);
    assert_eq!(
        bodies[0]["tier"], "New",
        "a member who never moved is in the lowest tier"
    );
    assert_eq!(count(&ledger(&api, "ann", NOW).await, "grant"), 1);
    // A day later the same key still pays nothing and answers the same.
    let later = grant(&api, "order-1-paid", "ann", 120, "2026-11-24T10:00:00+08:00").await;
    assert_eq!(later.body, bodies[0]);
    assert_eq!(count(&ledger(&api, "ann", NOW).await, "grant"), 1);
    assert_eq!(points(&api, "ann", NOW).await["balance"], 120);
    // The same key with another request is refused and changes nothing.
    grant(&api, "order-1-paid", "ann", 999, NOW)
        .await
        .assert_problem(409, "idempotency-key-reused");
    grant(&api, "order-1-paid", "bob", 120, NOW)
        .await
        .assert_problem(409, "idempotency-key-reused");
    assert_eq!(points(&api, "bob", NOW).await["balance"], 0);
    // Keys are per caller: another service may use the same key for its own grant.
    let other = call(
        &api,
        "/v1/admin/points/grants",
        &service_token("pos"),
        "order-1-paid",
        NOW,
        &json!({ "user_id": "ann", "amount": 5, "reason": "pos", "ref": "x" }),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(points(&api, "ann", NOW).await["balance"], 125);
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_never_overdraw() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    grant(&api, "seed", "cid", 1_000, NOW).await;
    let replies = e2e::concurrently(12, |i| {
        let api = api.clone();
        async move {
            let body = json!({ "user_id": "cid", "amount": 300, "ref": format!("order-{i}") });
            call(
                &api,
                "/v1/admin/points/holds",
                &service_token("shop"),
                &format!("hold-{i}"),
                NOW,
                &body,
            )
            .await
        }
    })
    .await;
    let held = e2e::successes(&replies, 409, "insufficient-points");
    assert_eq!(held, 3, "1000 points hold three times 300");
    let p = points(&api, "cid", NOW).await;
    assert_eq!(
        (p["balance"].clone(), p["held"].clone()),
        (json!(100), json!(900))
    );
    let entries = ledger(&api, "cid", NOW).await;
    let sum: i64 = entries.iter().map(|e| e["delta"].as_i64().unwrap()).sum();
    assert_eq!(sum, 100, "balance = Σ ledger");
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capture_and_release_racing_exactly_one_wins() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    grant(&api, "seed", "dan", 500, NOW).await;
    for round in 0..5 {
        let body = json!({ "user_id": "dan", "amount": 100, "ref": format!("order-{round}") });
        let hold = call(
            &api,
            "/v1/admin/points/holds",
            &service_token("shop"),
            &format!("h{round}"),
            NOW,
            &body,
        )
        .await;
        let hold_id = hold.body["hold_id"].as_str().unwrap().to_owned();
        let replies = e2e::concurrently(2, |i| {
            let action = ["capture", "release"][i];
            let (api, hold_id) = (api.clone(), hold_id.clone());
            async move {
                let path = format!("/v1/admin/points/holds/{hold_id}/{action}");
                call(
                    &api,
                    &path,
                    &service_token("shop"),
                    &format!("{action}-{hold_id}"),
                    NOW,
                    &json!({}),
                )
                .await
            }
        })
        .await;
        let winners = e2e::successes(&replies, 409, "hold-not-active");
        assert_eq!(winners, 1, "round {round}");
    }
    let entries = ledger(&api, "dan", NOW).await;
    assert_eq!(count(&entries, "capture") + count(&entries, "release"), 5);
    let sum: i64 = entries.iter().map(|e| e["delta"].as_i64().unwrap()).sum();
    let p = points(&api, "dan", NOW).await;
    assert_eq!(p["balance"].as_i64().unwrap(), sum);
    assert_eq!(p["held"], 0);
    assert_eq!(sum, 500 - 100 * count(&entries, "capture") as i64);
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_reversals_are_capped_at_the_grant() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    grant(&api, "order-9", "eve", 100, NOW).await;
    let replies = e2e::concurrently(8, |i| {
        let api = api.clone();
        async move {
            let body = json!({ "grant_idempotency_key": "order-9", "amount": 30, "reason": "refund" });
            call(
                &api,
                "/v1/admin/points/reversals",
                &service_token("shop"),
                &format!("refund-{i}"),
                NOW,
                &body,
            )
            .await
        }
    })
    .await;
    let mut reversed = 0;
    for r in replies {
        match r.status {
            200 => reversed += r.body["reversed"].as_i64().unwrap(),
            _ => r.assert_problem(409, "grant-fully-reversed"),
        }
    }
    assert_eq!(reversed, 100, "30 + 30 + 30 + 10, never more");
    let p = points(&api, "eve", NOW).await;
    assert_eq!(
        (p["balance"].clone(), p["lifetime_earned"].clone()),
        (json!(0), json!(0))
    );
    // Unknown grant: 404.
    reverse(
        &api,
        "r-x",
        &json!({ "grant_idempotency_key": "nope", "reason": "refund" }),
    )
    .await
    .assert_problem(404, "not-found");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_reversal_after_spending_leaves_a_negative_balance_that_blocks_spending() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    grant(&api, "order-5", "fay", 100, NOW).await;
    let held = hold(&api, "h1", "fay", 80, NOW).await;
    let id = held.body["hold_id"].as_str().unwrap();
    settle(&api, "c1", id, "capture").await;
    let r = reverse(
        &api,
        "r1",
        &json!({ "grant_idempotency_key": "order-5", "reason": "order-5 refunded" }),
    )
    .await;
    assert_eq!(r.body["balance"], -80);
    let spend = hold(&api, "h2", "fay", 1, NOW).await;
    spend.assert_problem(409, "insufficient-points");
    // New earnings pay the debt first.
    grant(&api, "order-8", "fay", 100, NOW).await;
    assert_eq!(points(&api, "fay", NOW).await["balance"], 20);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn points_expire_after_month_plus_twelve_and_holds_time_out() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    grant(&api, "g1", "gus", 100, "2026-11-05T10:00:00+08:00").await;
    grant(&api, "g2", "gus", 50, "2026-12-05T10:00:00+08:00").await;
    let p = points(&api, "gus", "2027-11-30T23:59:59+08:00").await;
    assert_eq!(p["balance"], 150);
    assert_eq!(p["next_expiry"], json!({ "date": "2027-11-30", "points": 100 }));
    assert_eq!(
        p["expiring_by_month"],
        json!([
            { "month": "2027-11", "points": 100 },
            { "month": "2027-12", "points": 50 },
            { "month": "2028-01", "points": 0 }
        ])
    );
    // One second later (local midnight) November's points are gone: shown and written at once.
    let p = points(&api, "gus", "2027-12-01T00:00:00+08:00").await;
    assert_eq!(p["balance"], 50);
    let entries = ledger(&api, "gus", "2027-12-01T00:00:00+08:00").await;
    assert_eq!(count(&entries, "expire"), 1);
    assert_eq!(entries[0]["delta"], -100);
    // Reading again later writes nothing more.
    let p = points(&api, "gus", "2027-12-02T00:00:00+08:00").await;
    assert_eq!(p["balance"], 50);
    assert_eq!(
        env.app
            .store
            .ledger_page(&e2e::user("gus"), 100, None)
            .await
            .unwrap()
            .entries
            .len(),
        entries.len()
    );
    // A hold not captured in 30 minutes is released by the next read or write.
    let h = hold(&api, "h1", "gus", 40, "2027-12-02T10:00:00+08:00").await;
    assert_eq!(h.body["balance"], 10);
    let p = points(&api, "gus", "2027-12-02T10:30:00+08:00").await;
    assert_eq!((p["balance"].clone(), p["held"].clone()), (json!(50), json!(0)));
    let id = h.body["hold_id"].as_str().unwrap();
    settle(&api, "c1", id, "capture")
        .await
        .assert_problem(409, "hold-not-active");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn purchases_multiply_by_tier_and_window_and_tiers_move() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let admin = admin_token("ops");
    let double = json!({ "start": "2026-11-11T00:00:00+08:00", "end": "2026-11-12T00:00:00+08:00", "factor_bps": 20000 });
    let put = api
        .send_json(
            Method::PUT,
            "/v1/admin/multipliers/double-11",
            &admin,
            NOW,
            &double,
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let order = |cents: i64, key: &str| json!({ "user_id": "hal", "order_amount_cents": cents, "reason": "paid", "ref": key });
    // 2500.99 yuan → 2500 points (rounded down), before Singles' Day: ×1 (New).
    let r = call(
        &api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        "o1",
        "2026-11-10T12:00:00+08:00",
        &order(250_099, "o1"),
    )
    .await;
    assert_eq!(
        (r.body["points"].clone(), r.body["factors_bps"].clone()),
        (json!(2500), json!([10000]))
    );
    assert_eq!(r.body["tier"], "Gold", "2500 earned: Gold");
    // On Singles' Day as Gold: 100 × 1.1 × 2 = 220.
    let r = call(
        &api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        "o2",
        "2026-11-11T12:00:00+08:00",
        &order(10_000, "o2"),
    )
    .await;
    assert_eq!(
        (r.body["points"].clone(), r.body["factors_bps"].clone()),
        (json!(220), json!([11000, 20000]))
    );
    // A fixed grant never multiplies.
    let g = grant(&api, "bonus", "hal", 100, "2026-11-11T12:00:00+08:00").await;
    assert_eq!(g.body["points"], 100);
    let entries = ledger(&api, "hal", NOW).await;
    let moves: Vec<&Value> = entries.iter().filter(|e| e["reason"] == "tier_change").collect();
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["ref"], "New -> Gold");
    assert_eq!(moves[0]["delta"], 0);
    let purchase = entries
        .iter()
        .find(|e| e["business_key"] == "grant#service:shop#o2")
        .unwrap();
    assert_eq!(
        (purchase["base"].clone(), purchase["by"].clone()),
        (json!(100), json!("service:shop"))
    );
    // The home screen.
    let me = api.get("/v1/me", Some(&member_token("hal")), Some(NOW)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["tier"]["name"], "Gold");
    assert_eq!(me.body["tier"]["multiplier_bps"], 11000);
    assert_eq!(
        me.body["tier"]["next"],
        json!({ "name": "Platinum", "points_needed": 2180 })
    );
    assert_eq!(me.body["points"]["balance"], 2820);
    assert_eq!(me.body["checkin"]["checked_in_today"], false);
    // Check-ins multiply by tier and window too: day 1 (5) × 1.1 × 2 on Singles' Day = 11.
    let c = api
        .post(
            "/v1/checkins",
            &member_token("hal"),
            "2026-11-11T20:00:00+08:00",
            &json!({}),
        )
        .await;
    assert_eq!(c.body["points_awarded"], 11, "{}", c.body);
    assert_eq!(c.body["balance"], 2831);
    // A reversal of the big purchase drops growth below Gold: the member moves down.
    let r = reverse(
        &api,
        "r1",
        &json!({ "grant_idempotency_key": "o1", "reason": "returned" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["reversed"].clone(), r.body["balance"].clone()),
        (json!(2500), json!(331))
    );
    let me = api.get("/v1/me", Some(&member_token("hal")), Some(NOW)).await;
    assert_eq!(me.body["tier"]["name"], "New");
    let entries = ledger(&api, "hal", NOW).await;
    assert_eq!(entries[0]["reason"], "tier_change");
    assert_eq!(entries[0]["ref"], "Gold -> New");
    assert_eq!(entries[1]["reason"], "reversal");
    assert_eq!(
        (entries[1]["note"].clone(), entries[1]["by"].clone()),
        (json!("returned"), json!("service:shop"))
    );
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capped_tier_never_exceeds_its_members_under_concurrency() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    let tiers = json!({ "tiers": [
        { "name": "Member", "threshold": 0 },
        { "name": "VIP", "threshold": 100, "multiplier_bps": 12000 },
        { "name": "Black Card", "threshold": 1000, "max_members": 3 }
    ]});
    let put = api
        .send_json(Method::PUT, "/v1/admin/tiers", &admin_token("ops"), NOW, &tiers)
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let replies = e2e::concurrently(10, |i| {
        let api = api.clone();
        async move { grant(&api, &format!("big-{i}"), &format!("m{i}"), 5_000, NOW).await }
    })
    .await;
    // Every purchase is paid: the ladder item is never part of an earn's transaction.
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["points"], 5_000);
    }
    // Each admission followed its earn: three seats, the others one tier down.
    let mut tiers_seen = Vec::new();
    for i in 0..10 {
        let me = api
            .get("/v1/me", Some(&member_token(&format!("m{i}"))), Some(NOW))
            .await;
        tiers_seen.push(me.body["tier"]["name"].as_str().unwrap().to_owned());
        let moves: Vec<Value> = ledger(&api, &format!("m{i}"), NOW)
            .await
            .into_iter()
            .filter(|e| e["reason"] == "tier_change")
            .collect();
        assert_eq!(moves.len(), 1, "one move each: {moves:?}");
        assert_eq!(moves[0]["ref"], format!("Member -> {}", tiers_seen[i]));
    }
    assert_eq!(tiers_seen.iter().filter(|t| *t == "Black Card").count(), 3);
    assert_eq!(tiers_seen.iter().filter(|t| *t == "VIP").count(), 7);
    let state = api.get("/v1/admin/tiers", Some(&admin_token("ops")), None).await;
    assert_eq!(state.body["seats"], json!({ "Black Card": 3 }));
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_stale_configuration_cache_never_over_admits_a_newly_capped_tier() {
    let env = TestEnv::new().await;
    // Two warm processes on one table: the shop's calls go to one, the admin's to the other.
    let shop_process = env.spawn_api().await;
    let admin_process = e2e::spawn_api(e2e::app_for(
        shared::store::local_client(&e2e::endpoint()),
        &env.table,
    ))
    .await;
    let admin = admin_token("ops");
    let ladder = |cap: Option<u32>| {
        json!({ "tiers": [
            { "name": "Member", "threshold": 0 },
            { "name": "Black Card", "threshold": 1000, "max_members": cap }
        ]})
    };
    let put = admin_process
        .send_json(Method::PUT, "/v1/admin/tiers", &admin, NOW, &ladder(None))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    // The shop's process reads (and caches) the uncapped ladder.
    assert_eq!(grant(&shop_process, "warm", "w0", 10, NOW).await.status, 200);
    // The admin caps the tier at one member; the shop's cache does not know yet.
    let put = admin_process
        .send_json(Method::PUT, "/v1/admin/tiers", &admin, NOW, &ladder(Some(1)))
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    for who in ["s1", "s2", "s3"] {
        let r = grant(&shop_process, &format!("big-{who}"), who, 2_000, NOW).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut black = 0;
    for who in ["s1", "s2", "s3"] {
        let me = shop_process
            .get("/v1/me", Some(&member_token(who)), Some(NOW))
            .await;
        if me.body["tier"]["name"] == "Black Card" {
            black += 1;
        }
    }
    assert_eq!(black, 1, "the cap set a moment ago holds");
    let state = admin_process.get("/v1/admin/tiers", Some(&admin), None).await;
    assert_eq!(state.body["seats"], json!({ "Black Card": 1 }));
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn who_may_write_and_what_is_refused() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let body = json!({ "user_id": "ivy", "amount": 10, "reason": "r", "ref": "x" });
    let path = "/v1/admin/points/grants";
    call(&api, path, &member_token("ivy"), "k1", NOW, &body)
        .await
        .assert_problem(403, "forbidden");
    let no_scope =
        token(json!({ "sub": "c1", "client_id": "c1", "token_use": "access", "scope": "campaign/read" }));
    call(&api, path, &no_scope, "k1", NOW, &body)
        .await
        .assert_problem(403, "forbidden");
    // Admins may grant (and are recorded as the author).
    let r = call(&api, path, &admin_token("ops"), "k1", NOW, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Service tokens have no member.
    api.get("/v1/me", Some(&service_token("shop")), None)
        .await
        .assert_problem(403, "forbidden");
    // A hold belongs to the service that made it; another service cannot settle it.
    grant(&api, "seed-ivy", "ivy", 100, NOW).await;
    let h = hold(&api, "h-ivy", "ivy", 10, NOW).await;
    let id = h.body["hold_id"].as_str().unwrap().to_owned();
    call(
        &api,
        &format!("/v1/admin/points/holds/{id}/capture"),
        &service_token("pos"),
        "c",
        NOW,
        &json!({}),
    )
    .await
    .assert_problem(404, "not-found");
    call(
        &api,
        "/v1/admin/points/holds/01KAW0M9B4E8Y6T3R1Q2P5N7XZ/release",
        &service_token("shop"),
        "c2",
        NOW,
        &json!({}),
    )
    .await
    .assert_problem(404, "not-found");
    // Tiers and multipliers are for admins only.
    api.get("/v1/admin/tiers", Some(&service_token("shop")), None)
        .await
        .assert_problem(403, "forbidden");
    let before = env.item_count().await;
    let missing_key = api
        .send(
            api.request(Method::POST, path)
                .bearer_auth(service_token("shop"))
                .json(&body),
        )
        .await;
    missing_key.assert_problem(400, "invalid-request");
    let shop = service_token("shop");
    for (bad, status, kind) in [
        (
            json!({ "user_id": "ivy", "reason": "r", "ref": "x" }),
            422,
            "invalid-value",
        ),
        (
            json!({ "user_id": "ivy", "amount": 5, "order_amount_cents": 500, "reason": "r", "ref": "x" }),
            422,
            "invalid-value",
        ),
        (
            json!({ "user_id": "ivy", "amount": 0, "reason": "r", "ref": "x" }),
            422,
            "invalid-value",
        ),
        (
            json!({ "user_id": "ivy", "amount": 2_000_000_000, "reason": "r", "ref": "x" }),
            422,
            "invalid-value",
        ),
        (
            json!({ "user_id": "a#b", "amount": 5, "reason": "r", "ref": "x" }),
            422,
            "invalid-value",
        ),
        (
            json!({ "user_id": "ivy", "amount": "5", "reason": "r", "ref": "x" }),
            400,
            "invalid-request",
        ),
        (
            json!({ "user_id": "ivy", "amount": 5, "reason": "r", "ref": "x", "extra": 1 }),
            400,
            "invalid-request",
        ),
    ] {
        call(&api, path, &shop, "k2", NOW, &bad)
            .await
            .assert_problem(status, kind);
    }
    let tiers = json!({ "tiers": [{ "name": "A", "threshold": 5 }] });
    api.send_json(Method::PUT, "/v1/admin/tiers", &admin_token("ops"), NOW, &tiers)
        .await
        .assert_problem(422, "invalid-value");
    let window =
        json!({ "start": "2026-11-12T00:00:00Z", "end": "2026-11-11T00:00:00Z", "factor_bps": 20000 });
    api.send_json(
        Method::PUT,
        "/v1/admin/multipliers/x",
        &admin_token("ops"),
        NOW,
        &window,
    )
    .await
    .assert_problem(422, "invalid-value");
    let window = json!({ "start": "2026-11-11T00:00:00Z", "end": "2026-11-12T00:00:00Z", "factor_bps": 20000, "reasons": ["milestone"] });
    api.send_json(
        Method::PUT,
        "/v1/admin/multipliers/x",
        &admin_token("ops"),
        NOW,
        &window,
    )
    .await
    .assert_problem(422, "invalid-value");
    assert_eq!(env.item_count().await, before, "refusals write nothing");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_purchase_worth_no_points_answers_its_result_every_time() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    // 0.50 yuan at 1 point per yuan rounds down to nothing.
    let order = json!({ "user_id": "kim", "order_amount_cents": 50, "reason": "paid", "ref": "o-small" });
    let first = call(
        &api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        "o-small",
        NOW,
        &order,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        (first.body["points"].clone(), first.body["balance"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(first.body["entry_seq"], Value::Null, "nothing was posted");
    let replay = call(
        &api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        "o-small",
        NOW,
        &order,
    )
    .await;
    assert_eq!((replay.status, &replay.body), (200, &first.body));
    assert!(ledger(&api, "kim", NOW).await.is_empty());
    // The key is taken: another request with it is still refused.
    let other = json!({ "user_id": "kim", "order_amount_cents": 5000, "reason": "paid", "ref": "o-small" });
    call(
        &api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        "o-small",
        NOW,
        &other,
    )
    .await
    .assert_problem(409, "idempotency-key-reused");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn multiplier_windows_are_limited_deletable_and_pruned() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let admin = admin_token("ops");
    let put = |id: String, start: String, end: String, factor: u32, now: &'static str| {
        let body = json!({ "start": start, "end": end, "factor_bps": factor, "reasons": ["purchase"] });
        let api = &api;
        let admin = admin.clone();
        async move {
            api.send_json(
                Method::PUT,
                &format!("/v1/admin/multipliers/{id}"),
                &admin,
                now,
                &body,
            )
            .await
        }
    };
    let day = |d: u32| format!("2026-12-{d:02}T00:00:00+08:00");
    // Eight 1.5× windows may overlap; a ninth for the same reason is refused.
    for i in 0..8 {
        let r = put(format!("w{i}"), day(1), day(2), 15_000, NOW).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    put("w8".into(), day(1), day(2), 15_000, NOW)
        .await
        .assert_problem(422, "invalid-value");
    // Earning under all of them: 100 × 1.5⁸ = 2562.89 → 2562, nine factors recorded.
    let order = json!({ "user_id": "lia", "order_amount_cents": 10_000, "reason": "paid", "ref": "o1" });
    let r = call(
        &api,
        "/v1/admin/points/grants",
        &service_token("shop"),
        "o1",
        "2026-12-01T12:00:00+08:00",
        &order,
    )
    .await;
    assert_eq!(r.body["points"], 2562, "{}", r.body);
    assert_eq!(r.body["factors_bps"].as_array().unwrap().len(), 9);
    // A ladder whose top tier would take the stack above 100× is refused: 10 × 1.5⁸ = 256×.
    let tiers = |top: u32| {
        json!({ "tiers": [
            { "name": "Member", "threshold": 0 },
            { "name": "Star", "threshold": 1000, "multiplier_bps": top }
        ]})
    };
    api.send_json(Method::PUT, "/v1/admin/tiers", &admin, NOW, &tiers(100_000))
        .await
        .assert_problem(422, "invalid-value");
    // Deleting three windows makes room: 10 × 1.5⁵ = 75.9×.
    for i in 0..3 {
        let r = api
            .send_json(
                Method::DELETE,
                &format!("/v1/admin/multipliers/w{i}"),
                &admin,
                NOW,
                &Value::Null,
            )
            .await;
        assert_eq!(
            (r.status, r.body["deleted"].clone()),
            (200, json!(true)),
            "{}",
            r.body
        );
    }
    api.send_json(
        Method::DELETE,
        "/v1/admin/multipliers/w0",
        &admin,
        NOW,
        &Value::Null,
    )
    .await
    .assert_problem(404, "not-found");
    let r = api
        .send_json(Method::PUT, "/v1/admin/tiers", &admin, NOW, &tiers(100_000))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // With that ladder, a window that would stack above 100× is refused in turn.
    put("w9".into(), day(1), day(2), 15_000, NOW)
        .await
        .assert_problem(422, "invalid-value");
    // At most 50 windows that have not ended; ended ones are pruned and stop counting.
    for i in 0..45 {
        let start = format!("2027-01-01T{:02}:00:00+08:00", i % 24);
        let start = if i < 24 {
            start
        } else {
            format!("2027-01-02T{:02}:00:00+08:00", i - 24)
        };
        let end = chrono::DateTime::parse_from_rfc3339(&start).unwrap() + chrono::Duration::minutes(30);
        let r = put(format!("n{i}"), start, end.to_rfc3339(), 12_000, NOW).await;
        assert_eq!(r.status, 200, "{}: {}", i, r.body);
    }
    put("full".into(), day(20), day(21), 12_000, NOW)
        .await
        .assert_problem(422, "invalid-value");
    // After December 2 the five remaining December windows have ended: room again.
    let r = put(
        "later".into(),
        day(20),
        day(21),
        12_000,
        "2026-12-03T00:00:00+08:00",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let all = api.get("/v1/admin/multipliers", Some(&admin), None).await;
    let ids: Vec<&String> = all.body["multipliers"].as_object().unwrap().keys().collect();
    assert_eq!(ids.len(), 46, "{ids:?}");
    assert!(
        !ids.iter().any(|id| id.starts_with('w')),
        "ended windows were pruned"
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn support_may_reverse_a_shops_grant_and_is_recorded() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    assert_eq!(grant(&api, "order-31", "oli", 100, NOW).await.status, 200);
    let body = |caller: Option<&str>| {
        let mut b = json!({ "grant_idempotency_key": "order-31", "amount": 40, "reason": "support refund" });
        if let Some(c) = caller {
            b["grant_caller"] = json!(c);
        }
        b
    };
    let path = "/v1/admin/points/reversals";
    // Without grant_caller an admin looks among its own grants: there is none.
    call(&api, path, &admin_token("sue"), "r1", NOW, &body(None))
        .await
        .assert_problem(404, "not-found");
    // Another service may not name the shop's grant.
    call(
        &api,
        path,
        &service_token("pos"),
        "r2",
        NOW,
        &body(Some("service:shop")),
    )
    .await
    .assert_problem(403, "forbidden");
    // An admin may; the entry records who did it.
    let r = call(
        &api,
        path,
        &admin_token("sue"),
        "r3",
        NOW,
        &body(Some("service:shop")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["reversed"].clone(), r.body["balance"].clone()),
        (json!(40), json!(60))
    );
    let entries = ledger(&api, "oli", NOW).await;
    let reversal = entries.iter().find(|e| e["reason"] == "reversal").unwrap();
    // Members never see an admin's user id: the entry says "admin".
    assert_eq!(reversal["by"], "admin");
    assert_eq!(reversal["business_key"], "reversal#admin#r3");
    assert_eq!(reversal["reverses"], "grant#service:shop#order-31");
    // The shop itself still sees the cap: 60 left of its grant.
    let r = reverse(
        &api,
        "r4",
        &json!({ "grant_idempotency_key": "order-31", "reason": "rest" }),
    )
    .await;
    assert_eq!(r.body["reversed"], 60, "{}", r.body);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_refund_of_expired_points_never_takes_them_twice() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    grant(&api, "order-a", "pia", 100, "2026-11-05T10:00:00+08:00").await;
    grant(&api, "order-b", "pia", 50, "2026-11-20T10:00:00+08:00").await;
    // 60 spent at checkout, the other 90 expire after 30 November 2027.
    let h = hold(&api, "h1", "pia", 60, "2026-12-01T10:00:00+08:00").await;
    let id = h.body["hold_id"].as_str().unwrap();
    let path = format!("/v1/admin/points/holds/{id}/capture");
    call(
        &api,
        &path,
        &service_token("shop"),
        "c1",
        "2026-12-01T10:05:00+08:00",
        &json!({}),
    )
    .await;
    let p = points(&api, "pia", "2027-12-01T00:00:00+08:00").await;
    assert_eq!(p["balance"], 0);
    // Order A is refunded in January 2028: 60 of its 100 points count as expired.
    let later = "2028-01-10T10:00:00+08:00";
    let shop = service_token("shop");
    let refund = |key: &'static str, grant_key: &'static str| {
        let (api, shop) = (&api, shop.clone());
        async move {
            let body = json!({ "grant_idempotency_key": grant_key, "reason": "refund" });
            call(api, "/v1/admin/points/reversals", &shop, key, later, &body).await
        }
    };
    let r = refund("ra", "order-a").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.body["reversed"].clone(),
            r.body["forgiven_expired"].clone(),
            r.body["taken"].clone()
        ),
        (json!(100), json!(60), json!(40))
    );
    assert_eq!(r.body["balance"], -40);
    let r = refund("rb", "order-b").await;
    assert_eq!(
        (
            r.body["forgiven_expired"].clone(),
            r.body["taken"].clone(),
            r.body["balance"].clone()
        ),
        (json!(30), json!(20), json!(-60)),
        "in all: 90 forgiven (what expired), 60 taken (what was spent)"
    );
    let entries = ledger(&api, "pia", later).await;
    let reversal = entries
        .iter()
        .find(|e| e["business_key"] == "reversal#service:shop#ra")
        .unwrap();
    assert_eq!(
        (reversal["delta"].clone(), reversal["forgiven"].clone()),
        (json!(-40), json!(60))
    );
    let sum: i64 = entries.iter().map(|e| e["delta"].as_i64().unwrap()).sum();
    assert_eq!(sum, -60, "balance = Σ ledger");
    env.assert_audit_clean().await;
}
