//! The auth matrix: every route of openapi.yaml × {no token, malformed claims, member A, member B,
//! admin, service token, service token without the scope}, on a table where member A (Alice) and
//! member B (Bob) have something of every feature (`e2e::story`). A denied cell must be exactly
//! 401/403 with its problem type and change nothing; an allowed cell must not be 401/403 nor 5xx.
//! Then: nothing member B reads carries member A's id, and A's cursors, spins, hold, team code and
//! referral code give B nothing of A's.

use e2e::story::{self, ALICE, BOB, CONTEST, DRAW};
use e2e::{Reply, TestApi, TestEnv, admin_token, member_token, scoped_service_token, token};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    Malformed,
    MemberA,
    MemberB,
    Admin,
    Service,
    ServiceWithoutScope,
}

const EVERYONE: [Who; 7] = [
    Who::NoToken,
    Who::Malformed,
    Who::MemberA,
    Who::MemberB,
    Who::Admin,
    Who::Service,
    Who::ServiceWithoutScope,
];

/// Who a route lets in (everyone else: 401 without usable claims, 403 with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Members (admins are members too).
    Members,
    /// Any caller with a valid token, services included.
    AnyCaller,
    /// Admins only.
    Admins,
    /// Admins, and services with the route's scope.
    AdminsAndServices,
}

fn allowed(access: Access, who: Who) -> bool {
    match (access, who) {
        (_, Who::NoToken | Who::Malformed) => false,
        (Access::AnyCaller, _) => true,
        (Access::Members, w) => matches!(w, Who::MemberA | Who::MemberB | Who::Admin),
        (Access::Admins, w) => w == Who::Admin,
        (Access::AdminsAndServices, w) => matches!(w, Who::Admin | Who::Service),
    }
}

fn token_of(who: Who) -> Option<String> {
    match who {
        Who::NoToken => None,
        // Decodable, but its sub is no member id: the handler's own 401.
        Who::Malformed => Some(token(json!({ "sub": "not#a#member", "token_use": "id" }))),
        Who::MemberA => Some(member_token(ALICE)),
        Who::MemberB => Some(member_token(BOB)),
        Who::Admin => Some(admin_token("ops")),
        Who::Service => Some(scoped_service_token(
            "shop",
            "campaign/points.write campaign/members.write campaign/coupons",
        )),
        Who::ServiceWithoutScope => Some(scoped_service_token("shop", "")),
    }
}

/// One route: its key in openapi.yaml, a concrete path naming member A's things, a body, and who
/// may call it.
struct Route {
    key: &'static str,
    path: String,
    body: Option<Value>,
    access: Access,
}

fn routes(story: &story::Story) -> Vec<Route> {
    use Access::*;
    let r = |key: &'static str, path: &str, body: Option<Value>, access| Route {
        key,
        path: path.to_owned(),
        body,
        access,
    };
    let hold = &story.bob_hold;
    let empty = Some(json!({}));
    vec![
        r("GET /v1/points", "/v1/points", None, Members),
        r("GET /v1/points/ledger", "/v1/points/ledger", None, Members),
        r("GET /v1/me", "/v1/me", None, Members),
        r("GET /v1/checkins", "/v1/checkins", None, Members),
        r("POST /v1/checkins", "/v1/checkins", empty.clone(), Members),
        r(
            "POST /v1/checkins/makeup",
            "/v1/checkins/makeup",
            Some(json!({ "date": "2026-12-01" })),
            Members,
        ),
        r("GET /v1/me/profile", "/v1/me/profile", None, Members),
        r(
            "PUT /v1/me/profile",
            "/v1/me/profile",
            Some(json!({ "leaderboard_visible": true })),
            Members,
        ),
        r(
            "GET /v1/leaderboards/{board}",
            "/v1/leaderboards/all-time",
            None,
            AnyCaller,
        ),
        r(
            "GET /v1/leaderboards/{board}/me",
            "/v1/leaderboards/all-time/me",
            None,
            Members,
        ),
        r("GET /v1/contests", "/v1/contests", None, Members),
        r(
            "GET /v1/contests/{contest_id}",
            &format!("/v1/contests/{CONTEST}"),
            None,
            Members,
        ),
        r(
            "POST /v1/contests/{contest_id}/entries",
            &format!("/v1/contests/{CONTEST}/entries"),
            empty.clone(),
            Members,
        ),
        r(
            "POST /v1/contests/{contest_id}/teams",
            &format!("/v1/contests/{CONTEST}/teams"),
            Some(json!({ "name": "Reds" })),
            Members,
        ),
        r(
            "POST /v1/contests/{contest_id}/teams/join",
            &format!("/v1/contests/{CONTEST}/teams/join"),
            Some(json!({ "code": "ZZZZZZZZ" })),
            Members,
        ),
        r(
            "POST /v1/contests/{contest_id}/teams/leave",
            &format!("/v1/contests/{CONTEST}/teams/leave"),
            empty.clone(),
            Members,
        ),
        r("GET /v1/referrals/me", "/v1/referrals/me", None, Members),
        r(
            "POST /v1/referrals/claim",
            "/v1/referrals/claim",
            Some(json!({ "code": story.alice_code })),
            Members,
        ),
        r("GET /v1/draws", "/v1/draws", None, Members),
        r(
            "GET /v1/draws/{draw_id}",
            &format!("/v1/draws/{DRAW}"),
            None,
            Members,
        ),
        r(
            "GET /v1/draws/{draw_id}/spins",
            &format!("/v1/draws/{DRAW}/spins"),
            None,
            Members,
        ),
        r(
            "POST /v1/draws/{draw_id}/spins",
            &format!("/v1/draws/{DRAW}/spins"),
            empty.clone(),
            Members,
        ),
        r(
            "POST /v1/draws/{draw_id}/shares",
            &format!("/v1/draws/{DRAW}/shares"),
            empty.clone(),
            Members,
        ),
        r(
            "GET /v1/draws/{draw_id}/reveal",
            &format!("/v1/draws/{DRAW}/reveal"),
            None,
            AnyCaller,
        ),
        // Admin routes.
        r(
            "GET /v1/admin/checkin-campaigns/{campaign_id}",
            "/v1/admin/checkin-campaigns/daily",
            None,
            Admins,
        ),
        r(
            "PUT /v1/admin/checkin-campaigns/{campaign_id}",
            "/v1/admin/checkin-campaigns/weekend",
            Some(story::event_body("put-v1-admin-checkin-campaigns-campaign_id")),
            Admins,
        ),
        r("GET /v1/admin/tiers", "/v1/admin/tiers", None, Admins),
        r(
            "PUT /v1/admin/tiers",
            "/v1/admin/tiers",
            Some(story::event_body("put-v1-admin-tiers")),
            Admins,
        ),
        r("GET /v1/admin/multipliers", "/v1/admin/multipliers", None, Admins),
        r(
            "PUT /v1/admin/multipliers/{multiplier_id}",
            "/v1/admin/multipliers/double-week",
            Some(story::event_body("put-v1-admin-multipliers-multiplier_id")),
            Admins,
        ),
        r(
            "DELETE /v1/admin/multipliers/{multiplier_id}",
            "/v1/admin/multipliers/double-week",
            None,
            Admins,
        ),
        r(
            "GET /v1/admin/reserved-names",
            "/v1/admin/reserved-names",
            None,
            Admins,
        ),
        r(
            "PUT /v1/admin/reserved-names",
            "/v1/admin/reserved-names",
            Some(json!({ "names": ["admin"] })),
            Admins,
        ),
        r(
            "POST /v1/admin/members/{user_id}/display-name/reset",
            &format!("/v1/admin/members/{ALICE}/display-name/reset"),
            empty.clone(),
            Admins,
        ),
        r(
            "POST /v1/admin/members/{user_id}/registered",
            &format!("/v1/admin/members/{ALICE}/registered"),
            Some(json!({ "registered_at": "2026-01-01T00:00:00Z" })),
            AdminsAndServices,
        ),
        r("GET /v1/admin/contests", "/v1/admin/contests", None, Admins),
        r(
            "GET /v1/admin/contests/{contest_id}",
            &format!("/v1/admin/contests/{CONTEST}"),
            None,
            Admins,
        ),
        r(
            "PUT /v1/admin/contests/{contest_id}",
            "/v1/admin/contests/later",
            Some(story::event_body("put-v1-admin-contests-contest_id")),
            Admins,
        ),
        r(
            "POST /v1/admin/contests/{contest_id}/cancel",
            "/v1/admin/contests/later/cancel",
            empty.clone(),
            Admins,
        ),
        r(
            "GET /v1/admin/contests/{contest_id}/results",
            &format!("/v1/admin/contests/{CONTEST}/results"),
            None,
            Admins,
        ),
        r("GET /v1/admin/fulfilments", "/v1/admin/fulfilments", None, Admins),
        r(
            "POST /v1/admin/fulfilments/{fulfilment_id}/shipped",
            "/v1/admin/fulfilments/f000000000000000000000000/shipped",
            empty.clone(),
            Admins,
        ),
        r(
            "GET /v1/admin/referral-program",
            "/v1/admin/referral-program",
            None,
            Admins,
        ),
        r(
            "PUT /v1/admin/referral-program",
            "/v1/admin/referral-program",
            Some(story::event_body("put-v1-admin-referral-program")),
            Admins,
        ),
        r(
            "GET /v1/admin/referrals/{user_id}",
            &format!("/v1/admin/referrals/{ALICE}"),
            None,
            Admins,
        ),
        r(
            "POST /v1/admin/referrals/{user_id}/revoke",
            "/v1/admin/referrals/u-nobody/revoke",
            empty.clone(),
            Admins,
        ),
        r("GET /v1/admin/draws", "/v1/admin/draws", None, Admins),
        r(
            "PUT /v1/admin/draws/{draw_id}",
            "/v1/admin/draws/later",
            Some(story::event_body("put-v1-admin-draws-draw_id")),
            Admins,
        ),
        r(
            "POST /v1/admin/draws/{draw_id}/prizes/{prize_id}/codes",
            &format!("/v1/admin/draws/{DRAW}/prizes/voucher-10/codes"),
            Some(story::event_body(
                "post-v1-admin-draws-draw_id-prizes-prize_id-codes",
            )),
            Admins,
        ),
        r(
            "GET /v1/admin/coupons/{code}",
            "/v1/admin/coupons/NOSUCHCODE",
            None,
            AdminsAndServices,
        ),
        r(
            "POST /v1/admin/coupons/{code}/redeem",
            "/v1/admin/coupons/NOSUCHCODE/redeem",
            empty.clone(),
            AdminsAndServices,
        ),
        // Points writers: admins and services with campaign/points.write.
        r(
            "POST /v1/admin/points/grants",
            "/v1/admin/points/grants",
            Some(json!({ "user_id": ALICE, "points": 5, "reason": "goodwill" })),
            AdminsAndServices,
        ),
        r(
            "POST /v1/admin/points/holds",
            "/v1/admin/points/holds",
            Some(json!({ "user_id": ALICE, "amount": 1, "ref": "order-x" })),
            AdminsAndServices,
        ),
        r(
            "POST /v1/admin/points/holds/{hold_id}/capture",
            &format!("/v1/admin/points/holds/{hold}/capture"),
            empty.clone(),
            AdminsAndServices,
        ),
        r(
            "POST /v1/admin/points/holds/{hold_id}/release",
            &format!("/v1/admin/points/holds/{hold}/release"),
            empty.clone(),
            AdminsAndServices,
        ),
        r(
            "POST /v1/admin/points/reversals",
            "/v1/admin/points/reversals",
            Some(json!({ "grant_idempotency_key": story::PURCHASE_KEY, "amount": 1, "reason": "refund" })),
            AdminsAndServices,
        ),
    ]
}

async fn call(api: &TestApi, route: &Route, who: Who, n: usize) -> Reply {
    let (method, _) = route.key.split_once(' ').unwrap();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut b = api
        .request(method, &route.path)
        .header("x-debug-now", "2026-12-02T01:00:00Z")
        .header("idempotency-key", format!("matrix-{n}"));
    if let Some(t) = token_of(who) {
        b = b.bearer_auth(t);
    }
    if let Some(body) = &route.body {
        b = b.json(body);
    }
    api.send(b).await
}

#[tokio::test]
async fn every_route_answers_each_caller_as_its_rules_say() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let told = story::tell(&env, &api).await;
    let table = routes(&told);
    // The table covers exactly the contract's routes.
    let keys: std::collections::BTreeSet<String> = table.iter().map(|r| r.key.to_owned()).collect();
    assert_eq!(
        keys,
        e2e::contract::contract().routes(),
        "the matrix must list every route once"
    );
    assert_eq!(keys.len(), table.len());

    let mut n = 0;
    let mut failures = Vec::new();
    for route in &table {
        for who in EVERYONE {
            n += 1;
            let before = env.item_count().await;
            let reply = call(&api, route, who, n).await;
            let cell = format!("{} as {who:?}", route.key);
            if allowed(route.access, who) {
                if matches!(reply.status, 401 | 403) || reply.status >= 500 {
                    failures.push(format!(
                        "{cell}: allowed, answered {} {}",
                        reply.status, reply.body
                    ));
                }
                continue;
            }
            let (status, kind) = match who {
                Who::NoToken => (401, None),
                Who::Malformed => (401, Some("unauthenticated")),
                _ => (403, Some("forbidden")),
            };
            let type_ok = kind.is_none_or(|k| reply.body["type"].as_str().is_some_and(|t| t.ends_with(k)));
            if reply.status != status || !type_ok {
                failures.push(format!(
                    "{cell}: expected {status} {kind:?}, answered {} {}",
                    reply.status, reply.body
                ));
            }
            if env.item_count().await != before {
                failures.push(format!("{cell}: refused, yet the table changed"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn member_b_reaches_nothing_of_member_a() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let told = story::tell(&env, &api).await;
    let (a, b) = (member_token(ALICE), member_token(BOB));
    let now = Some("2026-12-02T01:00:00Z");
    // Every member read of B's: nothing names A.
    for path in [
        "/v1/points",
        "/v1/points/ledger",
        "/v1/me",
        "/v1/checkins",
        "/v1/me/profile",
        "/v1/leaderboards/all-time",
        "/v1/leaderboards/all-time/me?neighbours=10",
        &format!("/v1/leaderboards/contest:{CONTEST}"),
        "/v1/contests",
        &format!("/v1/contests/{CONTEST}"),
        "/v1/referrals/me",
        "/v1/draws",
        &format!("/v1/draws/{DRAW}"),
        &format!("/v1/draws/{DRAW}/spins"),
    ] {
        let reply = api.get(path, Some(&b), now).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            !reply.body.to_string().contains(ALICE),
            "{path} shows B member A's id: {}",
            reply.body
        );
    }
    // A's ledger cursor, replayed by B, pages B's own ledger.
    let page = api.get("/v1/points/ledger?limit=1", Some(&a), now).await;
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("A has more than one entry")
        .to_owned();
    let mine = api.get("/v1/points/ledger?limit=100", Some(&b), now).await;
    let theirs = api.get("/v1/points/ledger?limit=100", Some(&a), now).await;
    let ids = |r: &Reply| -> Vec<String> {
        r.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["entry_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let replayed = api
        .get(&format!("/v1/points/ledger?cursor={cursor}"), Some(&b), now)
        .await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    for id in ids(&replayed) {
        assert!(ids(&mine).contains(&id), "A's cursor gave B entry {id}");
        assert!(!ids(&theirs).contains(&id), "A's cursor gave B A's entry {id}");
    }
    // A's spins: B's list of the same draw is empty, with or without A's cursor.
    let spins = api.get(&format!("/v1/draws/{DRAW}/spins"), Some(&a), now).await;
    assert_eq!(
        spins.body["spins"].as_array().unwrap().len() as u64,
        told.alice_spins
    );
    for query in ["", "?cursor=2", "?cursor=3", "?limit=1"] {
        let reply = api
            .get(&format!("/v1/draws/{DRAW}/spins{query}"), Some(&b), now)
            .await;
        if reply.status == 200 {
            assert_eq!(reply.body["spins"], json!([]), "{query}: {}", reply.body);
        } else {
            assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        }
    }
    // B's hold: A (a member) can neither capture nor release it, even knowing its id.
    for action in ["capture", "release"] {
        api.post(
            &format!("/v1/admin/points/holds/{}/{action}", told.bob_hold),
            &a,
            "2026-12-01T00:07:00Z",
            &json!({}),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    // A's referral code: B learns nothing of A through it (B already claimed; a repeat is 409,
    // and the answer names no user id).
    let claim = api
        .post(
            "/v1/referrals/claim",
            &b,
            "2026-12-02T01:00:00Z",
            &json!({ "code": told.alice_code }),
        )
        .await;
    assert!(!claim.body.to_string().contains(ALICE), "{}", claim.body);
    env.assert_audit_clean().await;
}
