//! The points routes end to end: real HTTP through the local API, DynamoDB Local behind it.

use chrono::{DateTime, Utc};
use e2e::{TestEnv, member_token, service_token, token, user};
use serde_json::json;
use shared::domain::ledger::{Posting, Reason};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn balance_and_ledger_of_the_caller() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let alice = member_token("alice");

    let fresh = api
        .get("/v1/points", Some(&alice), Some("2026-11-23T12:00:00+08:00"))
        .await;
    assert_eq!(fresh.status, 200);
    assert_eq!(
        fresh.body,
        json!({
            "balance": 0, "held": 0, "lifetime_earned": 0, "next_expiry": null,
            "expiring_by_month": [
                { "month": "2026-11", "points": 0 }, { "month": "2026-12", "points": 0 }, { "month": "2027-01", "points": 0 }
            ]
        })
    );

    let now = at("2026-11-23T08:00:00Z");
    for i in 1..=5 {
        env.app
            .store
            .post(
                &user("alice"),
                Posting::new(
                    i * 10,
                    Reason::Grant,
                    format!("order-{i}"),
                    format!("grant#t#{i}"),
                ),
                now,
            )
            .await
            .unwrap();
    }
    env.app
        .store
        .post(
            &user("alice"),
            // Seeded straight into the ledger, not a real make-up (no day is made up), so its key
            // is not a make-up's: the audit checks that every `makeup#` charge made a day up.
            Posting::new(-25, Reason::Makeup, "2026-11-20", "seeded-makeup#t#1"),
            now,
        )
        .await
        .unwrap();
    env.app
        .store
        .post(
            &user("bob"),
            Posting::new(7, Reason::Grant, "x", "grant#t#bob"),
            now,
        )
        .await
        .unwrap();

    let balance = api.get("/v1/points", Some(&alice), None).await;
    assert_eq!(
        (
            balance.body["balance"].clone(),
            balance.body["lifetime_earned"].clone()
        ),
        (json!(125), json!(150))
    );

    let page1 = api.get("/v1/points/ledger?limit=4", Some(&alice), None).await;
    assert_eq!(page1.status, 200, "{}", page1.body);
    let seqs: Vec<u64> = page1.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![6, 5, 4, 3]);
    let newest = &page1.body["entries"][0];
    assert_eq!(newest["delta"], -25);
    assert_eq!(newest["reason"], "makeup");
    assert_eq!(newest["ref"], "2026-11-20");
    assert_eq!(newest["balance_after"], 125);
    assert_eq!(newest["business_key"], "seeded-makeup#t#1");
    let cursor = page1.body["next_cursor"].as_str().unwrap().to_owned();

    let page2 = api
        .get(
            &format!("/v1/points/ledger?limit=4&cursor={cursor}"),
            Some(&alice),
            None,
        )
        .await;
    let seqs: Vec<u64> = page2.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 1]);
    assert!(page2.body["next_cursor"].is_null());

    // Alice's cursor in Bob's hands pages Bob's own ledger, never Alice's.
    let stolen = api
        .get(
            &format!("/v1/points/ledger?cursor={cursor}"),
            Some(&member_token("bob")),
            None,
        )
        .await;
    assert_eq!(stolen.status, 200);
    let entries = stolen.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["business_key"], "grant#t#bob");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn refusals_are_problem_json_and_change_nothing() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let alice = member_token("alice");

    // API Gateway's authorizer refuses a request without a token before any handler runs.
    let none = api.get("/v1/points", None, None).await;
    assert_eq!(none.status, 401);
    // Claims without a usable sub reach the handler: 401 problem.
    api.get("/v1/points", Some(&token(json!({ "email": "a@b.c" }))), None)
        .await
        .assert_problem(401, "unauthenticated");
    api.get("/v1/points", Some(&token(json!({ "sub": "a#b" }))), None)
        .await
        .assert_problem(401, "unauthenticated");
    // A shop backend's token has no member.
    api.get("/v1/points", Some(&service_token("shop")), None)
        .await
        .assert_problem(403, "forbidden");
    // Query values: wrong type 400, out of range 422, foreign cursor 400.
    api.get("/v1/points/ledger?limit=abc", Some(&alice), None)
        .await
        .assert_problem(400, "invalid-request");
    api.get("/v1/points/ledger?limit=0", Some(&alice), None)
        .await
        .assert_problem(422, "invalid-value");
    api.get("/v1/points/ledger?limit=101", Some(&alice), None)
        .await
        .assert_problem(422, "invalid-value");
    api.get("/v1/points/ledger?limit=-1", Some(&alice), None)
        .await
        .assert_problem(422, "invalid-value");
    api.get("/v1/points/ledger?cursor=not-a-cursor", Some(&alice), None)
        .await
        .assert_problem(400, "invalid-request");
    // The dev clock header must be an instant.
    api.get("/v1/points", Some(&alice), Some("yesterday"))
        .await
        .assert_problem(400, "invalid-request");
    // Unknown routes are API Gateway's 404.
    assert_eq!(api.get("/v1/nope", Some(&alice), None).await.status, 404);
    // Nothing was written by any of that.
    assert_eq!(env.item_count().await, 0);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn cors_is_answered_as_api_gateway_does() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let preflight = api
        .request(reqwest::Method::OPTIONS, "/v1/points")
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization");
    let r = preflight.send().await.unwrap();
    assert_eq!(r.status(), 204, "no token needed for a preflight");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("idempotency-key")
    );
    assert_eq!(r.headers()["access-control-max-age"], "600");
    let get = api
        .send(
            api.request(reqwest::Method::GET, "/v1/points")
                .bearer_auth(member_token("a"))
                .header("origin", "https://shop.example"),
        )
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.headers["access-control-allow-origin"], "*");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn every_cursor_answers_200_or_400() {
    use base64::Engine;
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let alice = member_token("alice");
    for i in 1..=3 {
        env.seed_points("alice", i).await;
    }
    let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    // Crafted cursors: the first entry's (nothing below it), zero, past the end, the largest seq,
    // signs, overflow, another kind, garbage.
    let cases: Vec<(String, u16, usize)> = vec![
        (encode("ledger:1"), 200, 0),
        (encode("ledger:0"), 200, 0),
        (encode("ledger:2"), 200, 1),
        (encode("ledger:4"), 200, 3),
        (encode("ledger:999"), 200, 3),
        (encode(&format!("ledger:{}", u64::MAX)), 200, 3),
        (encode("ledger:+3"), 200, 2),
        (encode("ledger:-1"), 400, 0),
        (encode("ledger:18446744073709551616"), 400, 0),
        (encode("ledger:"), 400, 0),
        (encode("spins:2"), 400, 0),
        ("%00".to_owned(), 400, 0),
    ];
    for (cursor, status, entries) in cases {
        let reply = api
            .get(&format!("/v1/points/ledger?cursor={cursor}"), Some(&alice), None)
            .await;
        assert_eq!(reply.status, status, "cursor {cursor}: {}", reply.body);
        if status == 200 {
            assert_eq!(
                reply.body["entries"].as_array().unwrap().len(),
                entries,
                "cursor {cursor}"
            );
        } else {
            reply.assert_problem(400, "invalid-request");
        }
    }
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_group_claim_is_read_as_api_gateway_renders_it() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let with_groups = |groups: serde_json::Value| token(json!({ "sub": "ops", "cognito:groups": groups }));
    // An array claim reaches the handler as "[admin support]".
    let admin = api
        .get(
            "/v1/admin/tiers",
            Some(&with_groups(json!(["support", "admin"]))),
            None,
        )
        .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    for groups in [
        json!("ops,admin"),
        json!("admin]"),
        json!(["ops,admin"]),
        json!(["Admin"]),
    ] {
        api.get("/v1/admin/tiers", Some(&with_groups(groups.clone())), None)
            .await
            .assert_problem(403, "forbidden");
    }
    env.assert_audit_clean().await;
}
