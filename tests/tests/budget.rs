//! Transaction budgets: DynamoDB takes at most 100 actions and 4 MB in one transaction. Each
//! operation is run on its worst case — a long-dormant account with every bucket expired and
//! every hold timed out (`POINTS_VALIDITY_MONTHS=120`: 121 buckets), and the largest plan (a
//! make-up joining runs across 10 milestones, with a tier move and 10 releases due) — through a
//! recording proxy, and every transaction it sent is measured. Later features add theirs here.

use std::sync::Arc;

use chrono::{DateTime, Months, Utc};
use e2e::fault::{Call, FaultProxy};
use e2e::{TestApi, TestEnv, member_token, service_token};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::ledger::Reason;
use shared::store::{Attribution, IdempotentCall, keys};
use shared::{App, Config};

const MAX_ACTIONS: usize = 100;
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Housekeeping actions an operation's own transaction may carry (10 postings).
const MAX_INLINE_HOUSEKEEPING: usize = 20;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn app(endpoint: &str, table: &str) -> App {
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.to_owned()),
        "CAMPAIGN_DEV_CLOCK" => Some("1".to_owned()),
        "POINTS_VALIDITY_MONTHS" => Some("120".to_owned()),
        _ => None,
    })
    .unwrap();
    App::new(config, shared::store::local_client(endpoint))
}

fn call(key: &str) -> IdempotentCall {
    IdempotentCall {
        key: keys::idempotency("service:shop", key),
        request_hash: "seed".into(),
    }
}

/// 121 monthly grants from January 2026 (keys `seed-<user>-<month>`), then 20 one-point holds.
async fn seed_dormant(app: &App, user: &str) {
    let who = Attribution {
        by: "service:shop".into(),
        note: None,
    };
    let member = e2e::user(user);
    let start = at("2026-01-10T04:00:00Z");
    for month in 0..=120u32 {
        let now = start.checked_add_months(Months::new(month)).unwrap();
        let key = format!("seed-{user}-{month}");
        app.store
            .grant(
                "service:shop",
                &key,
                &member,
                100,
                Reason::Grant,
                &key,
                &who,
                &call(&key),
                now,
            )
            .await
            .unwrap();
    }
    let last = start.checked_add_months(Months::new(120)).unwrap();
    for i in 0..20 {
        let key = format!("hold-{user}-{i}");
        app.store
            .hold(&member, 1, &key, &who, &call(&key), last)
            .await
            .unwrap();
    }
}

/// The housekeeping actions (releases and expiries: a guard and an entry each) in a transaction.
fn housekeeping_actions(body: &Value) -> usize {
    body["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| {
            let key = item["Put"]["Item"]["business_key"]["S"]
                .as_str()
                .unwrap_or_default();
            key.starts_with("release#") || key.starts_with("expire#")
        })
        .count()
}

/// Every transaction within DynamoDB's limits; returns the housekeeping actions of each.
fn measure(calls: &[Call], what: &str) -> Vec<usize> {
    calls
        .iter()
        .filter(|c| c.operation == "TransactWriteItems")
        .map(|c| {
            let body: Value = serde_json::from_str(&c.body).unwrap();
            let actions = body["TransactItems"].as_array().unwrap().len();
            assert!(actions <= MAX_ACTIONS, "{what}: {actions} actions");
            assert!(c.body.len() < MAX_BYTES, "{what}: {} bytes", c.body.len());
            housekeeping_actions(&body)
        })
        .collect()
}

async fn request(
    api: &TestApi,
    method: Method,
    path: &str,
    token: &str,
    now: &str,
    key: &str,
    body: Option<Value>,
) -> u16 {
    let mut b = api
        .request(method, path)
        .bearer_auth(token)
        .header("x-debug-now", now)
        .header("idempotency-key", key);
    if let Some(body) = body {
        b = b.json(&body);
    }
    api.send(b).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_on_a_long_dormant_account_fits_its_transactions() {
    let env = TestEnv::new().await;
    let seeder = app(&e2e::endpoint(), &env.table);
    let ops = [
        "points", "me", "ledger", "checkin", "makeup", "purchase", "hold", "reversal", "capture", "spin",
    ];
    seeder
        .store
        .put_draw("dormant", dormant_draw(), at("2046-11-01T00:00:00Z"))
        .await
        .unwrap();
    e2e::concurrently(ops.len(), |i| {
        let seeder = seeder.clone();
        async move { seed_dormant(&seeder, &format!("d-{i}")).await }
    })
    .await;
    // Every bucket ended by January 2046 and every hold timed out: 141 postings are due.
    let now = "2047-01-10T12:00:00+08:00";
    for (i, op) in ops.iter().enumerate() {
        let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
        let api = e2e::spawn_api(app(&proxy.endpoint, &env.table)).await;
        let user = format!("d-{i}");
        let member = member_token(&user);
        let shop = service_token("shop");
        let status = match *op {
            "points" => request(&api, Method::GET, "/v1/points", &member, now, "k", None).await,
            "me" => request(&api, Method::GET, "/v1/me", &member, now, "k", None).await,
            "ledger" => request(&api, Method::GET, "/v1/points/ledger", &member, now, "k", None).await,
            "checkin" => request(&api, Method::POST, "/v1/checkins", &member, now, "k", None).await,
            "makeup" => {
                let body = json!({ "date": "2047-01-09" });
                request(
                    &api,
                    Method::POST,
                    "/v1/checkins/makeup",
                    &member,
                    now,
                    "k",
                    Some(body),
                )
                .await
            }
            "purchase" => {
                let body =
                    json!({ "user_id": user, "order_amount_cents": 99_900, "reason": "paid", "ref": "o" });
                request(
                    &api,
                    Method::POST,
                    "/v1/admin/points/grants",
                    &shop,
                    now,
                    "o",
                    Some(body),
                )
                .await
            }
            "hold" => {
                let body = json!({ "user_id": user, "amount": 1, "ref": "cart" });
                request(
                    &api,
                    Method::POST,
                    "/v1/admin/points/holds",
                    &shop,
                    now,
                    "h",
                    Some(body),
                )
                .await
            }
            "reversal" => {
                let body = json!({ "grant_idempotency_key": format!("seed-{user}-120"), "reason": "refund" });
                request(
                    &api,
                    Method::POST,
                    "/v1/admin/points/reversals",
                    &shop,
                    now,
                    "r",
                    Some(body),
                )
                .await
            }
            "capture" => {
                let id = shared_hold_id(&env, &user).await;
                let path = format!("/v1/admin/points/holds/{id}/capture");
                request(&api, Method::POST, &path, &shop, now, "c", None).await
            }
            "spin" => {
                let path = "/v1/draws/dormant/spins";
                request(&api, Method::POST, path, &member, now, "s", Some(json!({}))).await
            }
            other => unreachable!("{other}"),
        };
        // Everything expired: holds, make-ups and captures are refused after the housekeeping.
        let refused = matches!(*op, "makeup" | "hold" | "capture");
        assert_eq!(status, if refused { 409 } else { 200 }, "{op}");
        let per_tx = measure(&proxy.all(), op);
        // The oldest commit first in chunks of 45 postings until at most 10 are left, which go
        // with the operation's own transaction (a read commits them on their own; a refused
        // operation leaves them due for the next read).
        assert_eq!(&per_tx[..3], &[90, 90, 90], "{op}: {per_tx:?}");
        if status == 409 {
            assert_eq!(
                per_tx.len(),
                3,
                "{op}: a refusal writes nothing of its own: {per_tx:?}"
            );
            continue;
        }
        assert_eq!(
            per_tx.iter().sum::<usize>(),
            2 * 141,
            "{op}: every due posting once: {per_tx:?}"
        );
        assert_eq!(per_tx.len(), 4, "{op}: {per_tx:?}");
        let own = per_tx[3];
        assert!(
            own <= MAX_INLINE_HOUSEKEEPING,
            "{op}: {own} housekeeping actions in its own transaction"
        );
    }
    env.assert_audit_clean().await;
}

/// A draw open in January 2047 with a free spin a day (a dormant member has no points left).
fn dormant_draw() -> shared::domain::draws::DrawSpec {
    serde_json::from_value(json!({
        "title": "Dormant wheel",
        "starts_at": "2046-12-01T00:00:00Z",
        "ends_at": "2047-02-01T00:00:00Z",
        "free_per_day": 1,
        "daily_limit": 1,
        "prizes": [
            {"prize_id": "pts", "name": "5 points", "kind": "points", "value": 5, "weight": 1},
            {"prize_id": "thanks", "name": "Thanks", "kind": "nothing", "weight": 1}
        ],
        "consolation": "thanks"
    }))
    .unwrap()
}

/// A paid spin's transaction at its largest: the cost and a points prize (guard and entry each),
/// or the cost and a coupon (its stock item and the coupon), with the account, the idempotency
/// record, the member's draw state and the spin record: 8 actions, + 20 for housekeeping and 2
/// for a tier move at most.
#[tokio::test]
async fn a_paid_spin_is_eight_actions_at_most() {
    let env = TestEnv::new().await;
    let store = &env.app.store;
    let draw = |prize: Value| -> shared::domain::draws::DrawSpec {
        serde_json::from_value(json!({
            "title": "Paid wheel",
            "starts_at": "2026-11-24T00:00:00Z",
            "ends_at": "2026-11-30T00:00:00Z",
            "cost": 10,
            "daily_limit": 5,
            "prizes": [prize, {"prize_id": "thanks", "name": "Thanks", "kind": "nothing", "weight": 0}],
            "consolation": "thanks"
        }))
        .unwrap()
    };
    let points = json!({"prize_id": "pts", "name": "5 points", "kind": "points", "value": 5, "weight": 1});
    let coupon = json!({"prize_id": "cp", "name": "Coupon", "kind": "coupon", "weight": 1});
    store
        .put_draw("points", draw(points), at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    store
        .put_draw("coupon", draw(coupon), at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    store
        .upload_codes("coupon", "cp", vec!["CP-1".into()])
        .await
        .unwrap();
    env.seed_points("ann", 100).await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let recorded = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    for id in ["points", "coupon"] {
        let from = proxy.total();
        let call = IdempotentCall {
            key: keys::idempotency("member:ann", id),
            request_hash: id.into(),
        };
        let answer = recorded
            .store
            .spin(&e2e::user("ann"), id, "", &call, at("2026-11-24T04:00:00Z"))
            .await
            .unwrap();
        assert!(answer.contains("\"payment\":\"paid\""), "{answer}");
        let sizes: Vec<usize> = proxy
            .since(from)
            .iter()
            .filter(|c| c.operation == "TransactWriteItems")
            .map(|c| {
                serde_json::from_str::<Value>(&c.body).unwrap()["TransactItems"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [8], "{id}");
    }
    env.assert_audit_clean().await;
}

/// Any hold id of `user` (they are all timed out by the time it is used).
async fn shared_hold_id(env: &TestEnv, user: &str) -> String {
    let page = env
        .app
        .store
        .ledger_page(&e2e::user(user), 100, None)
        .await
        .unwrap();
    page.entries
        .iter()
        .find_map(|e| e.hold_id.clone())
        .expect("a hold entry")
}

#[tokio::test]
async fn the_largest_plan_fits_one_transaction() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let api = e2e::spawn_api(app(&proxy.endpoint, &env.table)).await;
    let (admin, shop, max) = (
        e2e::admin_token("ops"),
        service_token("shop"),
        member_token("max"),
    );
    // Ten milestones at 11…20 days; a make-up joining two 10-day runs reaches all of them.
    let milestones: Vec<Value> = (11..=20).map(|d| json!({ "days": d, "points": 1 })).collect();
    let campaign = json!({ "time_zone": "Asia/Shanghai", "ladder": [1], "milestones": milestones,
                           "makeup": { "lookback_days": 31, "max_per_month": 5, "cost": 1 } });
    let put = api
        .send_json(
            Method::PUT,
            "/v1/admin/checkin-campaigns/big",
            &admin,
            "2026-11-01T09:00:00+08:00",
            &campaign,
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    // 475 + 20 check-ins = 495 growth: the milestones' 10 points move the member to Ordinary (500).
    let grant = json!({ "user_id": "max", "amount": 475, "reason": "seed", "ref": "seed" });
    assert_eq!(
        request(
            &api,
            Method::POST,
            "/v1/admin/points/grants",
            &shop,
            "2026-11-01T09:00:00+08:00",
            "seed",
            Some(grant)
        )
        .await,
        200
    );
    let day = |d: u32| format!("2026-11-{d:02}T09:00:00+08:00");
    for d in (1..=10).chain(12..=21) {
        let body = json!({ "campaign_id": "big" });
        assert_eq!(
            request(
                &api,
                Method::POST,
                "/v1/checkins",
                &max,
                &day(d),
                &format!("ci{d}"),
                Some(body)
            )
            .await,
            200
        );
    }
    // Ten holds that time out just before the make-up: ten releases due, all inline.
    for i in 0..10 {
        let body = json!({ "user_id": "max", "amount": 1, "ref": format!("cart-{i}") });
        let status = request(
            &api,
            Method::POST,
            "/v1/admin/points/holds",
            &shop,
            "2026-11-21T09:00:00+08:00",
            &format!("h{i}"),
            Some(body),
        )
        .await;
        assert_eq!(status, 200);
    }
    let before = proxy.total();
    let body = json!({ "campaign_id": "big", "date": "2026-11-11" });
    let reply = api
        .send(
            api.request(Method::POST, "/v1/checkins/makeup")
                .bearer_auth(&max)
                .header("x-debug-now", "2026-11-21T10:00:00+08:00")
                .header("idempotency-key", "mk")
                .json(&body),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["milestones"].as_array().unwrap().len(), 10);
    let calls = proxy.since(before);
    let per_tx = measure(&calls, "make-up");
    assert_eq!(per_tx, vec![20], "one transaction with the ten releases inline");
    let tx: Value = serde_json::from_str(
        &calls
            .iter()
            .rfind(|c| c.operation == "TransactWriteItems")
            .unwrap()
            .body,
    )
    .unwrap();
    let actions = tx["TransactItems"].as_array().unwrap().len();
    // 20 housekeeping + 2 cost + 20 milestones + 2 tier move + account + day + streak + answer.
    assert_eq!(actions, 48, "{tx}");
    let me = api
        .get("/v1/me", Some(&max), Some("2026-11-21T10:00:00+08:00"))
        .await;
    assert_eq!(me.body["tier"]["name"], "Ordinary");
    env.assert_audit_clean().await;
}

/// The score actions of a transaction: score items, contest entries, teams and bucket counters.
fn score_actions(body: &Value) -> usize {
    body["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| {
            let key = |kind: &str, part: &str| item[kind]["Item"][part]["S"].as_str().map(str::to_owned);
            let put_pk = key("Put", "pk").unwrap_or_default();
            let put_sk = key("Put", "sk").unwrap_or_default();
            let update_pk = item["Update"]["Key"]["pk"]["S"].as_str().unwrap_or_default();
            put_sk.starts_with("SCORE#")
                || (put_pk.starts_with("USER#") && put_sk.starts_with("CONTEST#"))
                || put_pk.contains("#TEAM#")
                || update_pk.contains("#COUNT#")
        })
        .count()
}

/// The scoring worst case: a check-in (its points count on every points board) by a member who
/// is in a team in each of the 5 contests that may run at once, with every score leaving its
/// counter bucket: 3 periods × (score + 2 counters) + 5 contests × (entry + 2 counters + team +
/// 2 counters) = 39 actions on top of the check-in's own.
#[tokio::test]
async fn a_scored_check_in_in_five_team_contests_fits_one_transaction() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_caching(shared::store::local_client(&proxy.endpoint), &env.table, 0);
    let api = e2e::spawn_api(app).await;
    let admin = e2e::admin_token("ops");
    let setup = "2026-11-23T10:00:00Z";
    for i in 0..shared::domain::contests::MAX_ACTIVE {
        let spec = json!({ "title": format!("Team {i}"), "starts_at": "2026-11-24T00:00:00Z",
                           "ends_at": "2026-11-25T00:00:00Z", "metric": "points_earned",
                           "format": "team", "team_size": 50 });
        let r = api
            .send_json(
                Method::PUT,
                &format!("/v1/admin/contests/t{i}"),
                &admin,
                setup,
                &spec,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let team = json!({ "name": format!("Crew {i}") });
        let r = api
            .post(
                &format!("/v1/contests/t{i}/teams"),
                &e2e::member_token("max"),
                setup,
                &team,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // A first purchase puts every score at 5; the check-in then moves each to another bucket.
    let order = json!({ "user_id": "max", "order_amount_cents": 500, "reason": "order", "ref": "o1" });
    let status = request(
        &api,
        Method::POST,
        "/v1/admin/points/grants",
        &e2e::service_token("shop"),
        "2026-11-24T01:00:00Z",
        "o1",
        Some(order),
    )
    .await;
    assert_eq!(status, 200);
    let before = proxy.total();
    let status = request(
        &api,
        Method::POST,
        "/v1/checkins",
        &e2e::member_token("max"),
        "2026-11-24T02:00:00Z",
        "ci-1",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let writes: Vec<Value> = proxy
        .since(before)
        .iter()
        .filter(|c| c.operation == "TransactWriteItems")
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .collect();
    assert_eq!(writes.len(), 1, "one transaction");
    let actions = writes[0]["TransactItems"].as_array().unwrap().len();
    assert_eq!(score_actions(&writes[0]), 39, "the scoring worst case");
    // guard + entry + account + check-in day + streak + idempotency record = 6, plus 39.
    assert_eq!(actions, 45);
    // With what the budget table adds at worst (10 inline housekeeping postings, a milestone, a
    // tier move; a referral's qualified mark), it stays within one transaction.
    assert!(actions + MAX_INLINE_HOUSEKEEPING + 2 + 2 + 5 <= MAX_ACTIONS);
    measure(&proxy.since(before), "scored check-in");
    env.assert_audit_clean().await;
}

/// The referral transactions at their scoring worst case: referrer and invitee each in a team in
/// each of the 5 contests that may run at once, every score leaving its counter bucket (39 score
/// actions, as for the check-in above): the claim, the qualifying purchase, the referrer's
/// payment, the revoke and the undo each fit one transaction.
#[tokio::test]
async fn the_referral_transactions_fit_at_their_scoring_worst_case() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_caching(shared::store::local_client(&proxy.endpoint), &env.table, 0);
    let api = e2e::spawn_api(app).await;
    let admin = e2e::admin_token("ops");
    let setup = "2026-11-23T10:00:00Z";
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/referral-program",
            &admin,
            setup,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..shared::domain::contests::MAX_ACTIVE {
        let spec = json!({ "title": format!("Team {i}"), "starts_at": "2026-11-24T00:00:00Z",
                           "ends_at": "2026-11-25T00:00:00Z", "metric": "points_earned",
                           "format": "team", "team_size": 50 });
        let path = format!("/v1/admin/contests/t{i}");
        let r = api.send_json(Method::PUT, &path, &admin, setup, &spec).await;
        assert_eq!(r.status, 201, "{}", r.body);
        for member in ["host", "guest"] {
            let team = json!({ "name": format!("{member} {i}") });
            let path = format!("/v1/contests/t{i}/teams");
            let r = api.post(&path, &e2e::member_token(member), setup, &team).await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
    }
    let code = api
        .get("/v1/referrals/me", Some(&e2e::member_token("host")), Some(setup))
        .await
        .body["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let buy = |user: &'static str, key: &'static str, now: &'static str| {
        let api = &api;
        async move {
            let order = json!({ "user_id": user, "order_amount_cents": 500, "reason": "order", "ref": key });
            let shop = e2e::service_token("shop");
            let status = request(
                api,
                Method::POST,
                "/v1/admin/points/grants",
                &shop,
                now,
                key,
                Some(order),
            )
            .await;
            assert_eq!(status, 200, "{key}");
        }
    };
    // Scores at 5 everywhere first, so each later move leaves its bucket (two counter moves).
    buy("host", "o-host", "2026-11-24T01:00:00Z").await;
    buy("guest", "o-guest", "2026-11-24T01:00:00Z").await;
    // Each step's transactions: (score actions, all actions).
    let transactions = |from: usize| -> Vec<(usize, usize)> {
        proxy
            .since(from)
            .iter()
            .filter(|c| c.operation == "TransactWriteItems")
            .map(|c| {
                let body: Value = serde_json::from_str(&c.body).unwrap();
                (
                    score_actions(&body),
                    body["TransactItems"].as_array().unwrap().len(),
                )
            })
            .collect()
    };
    let before = proxy.total();
    let r = api
        .post(
            "/v1/referrals/claim",
            &e2e::member_token("guest"),
            "2026-11-24T02:00:00Z",
            &json!({ "code": code }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // guard + entry + account + referral + invitee check + referrer count + invitee line = 7.
    assert_eq!(transactions(before), [(39, 7 + 39)], "the claim");
    measure(&proxy.since(before), "claim");
    let before = proxy.total();
    buy("guest", "o-qualify", "2026-11-24T03:00:00Z").await;
    // The purchase (guard + entry + account + idempotency + the qualified mark = 5), then the
    // referrer's payment (guard + entry + account + referral + referrer item = 5).
    assert_eq!(
        transactions(before),
        [(39, 5 + 39), (39, 5 + 39)],
        "the qualifying purchase and the payment"
    );
    measure(&proxy.since(before), "qualifying purchase");
    let before = proxy.total();
    let r = api
        .post(
            "/v1/admin/referrals/guest/revoke",
            &admin,
            "2026-11-24T04:00:00Z",
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The revoke (guard + entry + account + referral = 4), then the undo (5, as the payment).
    assert_eq!(
        transactions(before),
        [(39, 4 + 39), (39, 5 + 39)],
        "the revoke and the undo"
    );
    measure(&proxy.since(before), "revoke");
    env.assert_audit_clean().await;
}
