//! A small table with something of every feature in it, made through the local API as the app
//! and an admin would: a referral (claimed, qualified by a purchase, paid), a contest (joined,
//! scored, settled with prizes), a lucky draw (free and paid spins), a check-in, a partial refund
//! and an open hold (made last). The audit tests corrupt it; the auth matrix tries to reach it as others.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{TestApi, TestEnv, admin_token, member_token, service_token};

/// Member A: the referrer, a draw player, a check-in.
pub const ALICE: &str = "u-alice";
/// Member B: the invitee, a contest winner, a purchase partly refunded and an open hold (made last).
pub const BOB: &str = "u-bob";
pub const DRAW: &str = "double12";
pub const CONTEST: &str = "autumn-sprint";
pub const SHOP: &str = "shop";
/// Bob's purchase (its idempotency key).
pub const PURCHASE_KEY: &str = "order-8812-paid";

/// What the story made that callers may want to name.
#[derive(Debug, Clone)]
pub struct Story {
    pub alice_code: String,
    pub bob_hold: String,
    /// Alice's spins (1 and 2).
    pub alice_spins: u64,
}

/// A sample event's JSON body (events/<name>.json); `{}` for a sample sent without one.
pub fn event_body(name: &str) -> Value {
    let path = local_api::repo_root().join("events").join(format!("{name}.json"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("event")).expect("json");
    match event["body"].as_str() {
        Some(body) => serde_json::from_str(body).expect("body json"),
        None => json!({}),
    }
}

/// The sample member in events/.
pub const SAMPLE_MEMBER: &str = "3f1c9a52-7d4e-4b1a-9a55-2f6c1b0e8d11";

/// The sample event `file` (a path under events/) for `user`: the sample member replaced, and a
/// fresh `Idempotency-Key` that names the user (so the same event for another user is another
/// request).
pub fn event_for(file: &str, user: &str) -> String {
    let path = local_api::repo_root().join("events").join(file);
    let text = std::fs::read_to_string(&path).expect("sample event");
    let mut event: Value = serde_json::from_str(&text.replace(SAMPLE_MEMBER, user)).expect("event json");
    if let Some(headers) = event.get_mut("headers").and_then(Value::as_object_mut)
        && headers.contains_key("idempotency-key")
    {
        headers.insert("idempotency-key".into(), json!(format!("key-{user}")));
    }
    event.to_string()
}

fn ok(r: &crate::Reply, what: &str) {
    assert!((200..300).contains(&r.status), "{what}: {} {}", r.status, r.body);
}

/// Makes the story on `env` through `api`. Ends after the contest's settlement.
pub async fn tell(env: &TestEnv, api: &TestApi) -> Story {
    let admin = admin_token("ops");
    let (alice, bob) = (member_token(ALICE), member_token(BOB));
    let setup = "2026-11-23T08:00:00Z";
    let r = api
        .send_json(
            Method::PUT,
            &format!("/v1/admin/draws/{DRAW}"),
            &admin,
            setup,
            &event_body("put-v1-admin-draws-draw_id"),
        )
        .await;
    ok(&r, "put draw");
    let r = api
        .send_json(
            Method::PUT,
            &format!("/v1/admin/contests/{CONTEST}"),
            &admin,
            setup,
            &event_body("put-v1-admin-contests-contest_id"),
        )
        .await;
    ok(&r, "put contest");
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/referral-program",
            &admin,
            setup,
            &event_body("put-v1-admin-referral-program"),
        )
        .await;
    ok(&r, "put referral program");
    let me = api.get("/v1/me", Some(&alice), Some(setup)).await;
    ok(&me, "alice's home");
    let alice_code = me.body["referral_code"]
        .as_str()
        .expect("a referral code")
        .to_owned();
    let join = "2026-11-23T09:00:00Z";
    ok(
        &api.post(&format!("/v1/contests/{CONTEST}/entries"), &bob, join, &json!({}))
            .await,
        "bob joins",
    );
    let b = api
        .request(Method::POST, "/v1/referrals/claim")
        .bearer_auth(&bob)
        .header("x-debug-now", join)
        .header("idempotency-key", "claim-bob")
        .json(&json!({ "code": alice_code }));
    ok(&api.send(b).await, "bob claims alice's code");
    // During the contest (2026-11-23T16:00Z to 2026-11-30T16:00Z).
    let during = "2026-11-24T02:00:00Z";
    let b = api
        .request(Method::POST, "/v1/admin/points/grants")
        .bearer_auth(service_token(SHOP))
        .header("idempotency-key", PURCHASE_KEY)
        .header("x-debug-now", during)
        .json(&json!({ "user_id": BOB, "order_amount_cents": 12_900, "reason": "order paid", "ref": "order-8812" }));
    ok(&api.send(b).await, "bob's purchase");
    ok(
        &api.post("/v1/checkins", &alice, during, &json!({})).await,
        "alice checks in",
    );
    let later = "2026-11-24T03:00:00Z";
    let b = api
        .request(Method::POST, "/v1/admin/points/reversals")
        .bearer_auth(service_token(SHOP))
        .header("idempotency-key", "order-8812-refund-1")
        .header("x-debug-now", later)
        .json(&json!({ "grant_idempotency_key": PURCHASE_KEY, "amount": 50, "reason": "partial refund" }));
    ok(&api.send(b).await, "a partial refund");
    let spin_at = "2026-11-24T04:00:00Z";
    for n in 1..=2 {
        let b = api
            .request(Method::POST, &format!("/v1/draws/{DRAW}/spins"))
            .bearer_auth(&alice)
            .header("idempotency-key", format!("spin-{n}"))
            .header("x-debug-now", spin_at)
            .json(&json!({ "client_seed": format!("seed-{n}") }));
        ok(&api.send(b).await, "alice spins");
    }
    let at: chrono::DateTime<chrono::Utc> = "2026-12-01T00:05:00Z".parse().unwrap();
    let event = local_api::schedule::scheduled_event("SettleContestsFunction", at, Some(at));
    let report = local_api::schedule::fire(&env.app, "SettleContestsFunction", event)
        .await
        .expect("settlement");
    assert!(report.to_string().contains("settled"), "{report}");
    // After the settlement (whose payment would have released a hold past its 30 minutes).
    let b = api
        .request(Method::POST, "/v1/admin/points/holds")
        .bearer_auth(service_token(SHOP))
        .header("idempotency-key", "order-8813-hold")
        .header("x-debug-now", "2026-12-01T00:06:00Z")
        .json(&json!({ "user_id": BOB, "amount": 30, "ref": "order-8813" }));
    let hold = api.send(b).await;
    ok(&hold, "bob's hold");
    let bob_hold = hold.body["hold_id"].as_str().expect("hold id").to_owned();
    Story {
        alice_code,
        bob_hold,
        alice_spins: 2,
    }
}
