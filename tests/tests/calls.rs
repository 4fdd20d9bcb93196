//! What each route asks of DynamoDB, seen by a recording proxy in front of each function (as on
//! Lambda, every function has its own client):
//!
//! - IAM coverage: every action a function's calls need, on the table or an index, is allowed by
//!   that function's policy in template.yaml (DynamoDB Local ignores IAM; production does not);
//! - round trips: the DynamoDB requests each route makes, so a change that adds one fails here;
//! - every base-table `Query` is strongly consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use e2e::fault::{Access, Call, FaultProxy};
use e2e::{Reply, TestApi, TestEnv, admin_token, app_for, member_token, service_token};
use local_api::template::Template;
use reqwest::Method;
use serde_json::{Value, json};

const FUNCTIONS: [&str; 9] = [
    "DrawsFunction",
    "ReferralsFunction",
    "ContestsFunction",
    "SettleContestsFunction",
    "PointsFunction",
    "CheckinFunction",
    "PointsAdminFunction",
    "MembersFunction",
    "LeaderboardsFunction",
];

/// The local API with one recording proxy per function.
struct Recorded {
    api: TestApi,
    proxies: BTreeMap<&'static str, FaultProxy>,
    /// The settlement job, on its own proxy (it is not behind the API).
    settle: shared::App,
}

impl Recorded {
    async fn start(env: &TestEnv) -> Self {
        let mut proxies = BTreeMap::new();
        for function in FUNCTIONS {
            proxies.insert(
                function,
                FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await,
            );
        }
        let endpoints: BTreeMap<String, String> = proxies
            .iter()
            .map(|(f, p)| ((*f).to_owned(), p.endpoint.clone()))
            .collect();
        let api = e2e::spawn_api_per_function(|function| {
            let endpoint = endpoints
                .get(function)
                .unwrap_or_else(|| panic!("no proxy for {function}: add it to FUNCTIONS"));
            e2e::app_caching(shared::store::local_client(endpoint), &env.table, 0)
        })
        .await;
        let settle = app_for(
            shared::store::local_client(&endpoints["SettleContestsFunction"]),
            &env.table,
        );
        Self { api, proxies, settle }
    }

    fn total(&self) -> usize {
        self.proxies.values().map(FaultProxy::total).sum()
    }

    fn all(&self) -> Vec<Call> {
        self.proxies.values().flat_map(FaultProxy::all).collect()
    }

    /// Sends a request with an optional JSON body and `Idempotency-Key`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        now: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut b = self
            .api
            .request(method, path)
            .bearer_auth(token)
            .header("x-debug-now", now);
        if let Some(key) = key {
            b = b.header("idempotency-key", key);
        }
        if let Some(body) = body {
            b = b.json(body);
        }
        self.api.send(b).await
    }

    /// Sends a request that must succeed (200 or 201), and returns the DynamoDB operations it made, sorted.
    async fn ops(
        &self,
        method: Method,
        path: &str,
        token: &str,
        now: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (Reply, Vec<String>) {
        let before: BTreeMap<&str, usize> = self.proxies.iter().map(|(f, p)| (*f, p.total())).collect();
        let reply = self.send(method.clone(), path, token, now, key, body).await;
        assert!(
            matches!(reply.status, 200 | 201),
            "{method} {path}: {}",
            reply.body
        );
        let mut ops: Vec<String> = self
            .proxies
            .iter()
            .flat_map(|(f, p)| p.since(before[f]))
            .map(|c| c.operation)
            .collect();
        ops.sort();
        (reply, ops)
    }
}

const T0: &str = "2026-11-20T09:00:00+08:00";

/// A tour of every route and the paths behind them: capped-tier admissions and departures,
/// holds captured, released and timed out, reversals, check-ins, make-ups, expiry.
async fn tour(r: &Recorded) {
    let admin = admin_token("ops");
    let shop = service_token("shop");
    let amy = member_token("amy");
    let ok = |reply: Reply, what: &str| {
        assert_eq!(reply.status, 200, "{what}: {}", reply.body);
        reply
    };
    let campaign = json!({ "time_zone": "Asia/Shanghai", "ladder": [5, 10], "milestones": [{ "days": 2, "points": 10 }],
                           "makeup": { "lookback_days": 7, "max_per_month": 2, "cost": 5 } });
    ok(
        r.send(
            Method::PUT,
            "/v1/admin/checkin-campaigns/spring",
            &admin,
            T0,
            None,
            Some(&campaign),
        )
        .await,
        "put campaign",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/admin/checkin-campaigns/spring",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "get campaign",
    );
    let tiers = json!({ "tiers": [
        { "name": "Member", "threshold": 0 },
        { "name": "VIP", "threshold": 100, "multiplier_bps": 12000 },
        { "name": "Black Card", "threshold": 1000, "max_members": 1 }
    ]});
    ok(
        r.send(Method::PUT, "/v1/admin/tiers", &admin, T0, None, Some(&tiers))
            .await,
        "put tiers",
    );
    ok(
        r.send(Method::GET, "/v1/admin/tiers", &admin, T0, None, None)
            .await,
        "get tiers",
    );
    let window = json!({ "start": "2026-12-12T00:00:00+08:00", "end": "2026-12-13T00:00:00+08:00", "factor_bps": 20000 });
    ok(
        r.send(
            Method::PUT,
            "/v1/admin/multipliers/d12",
            &admin,
            T0,
            None,
            Some(&window),
        )
        .await,
        "put window",
    );
    ok(
        r.send(Method::GET, "/v1/admin/multipliers", &admin, T0, None, None)
            .await,
        "get windows",
    );
    ok(
        r.send(
            Method::DELETE,
            "/v1/admin/multipliers/d12",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "delete window",
    );
    // Two members qualify for the one Black Card seat: one admitted, one a tier down.
    for who in ["amy", "bob"] {
        let body = json!({ "user_id": who, "amount": 2000, "reason": "paid", "ref": format!("o-{who}") });
        ok(
            r.send(
                Method::POST,
                "/v1/admin/points/grants",
                &shop,
                T0,
                Some(&format!("o-{who}")),
                Some(&body),
            )
            .await,
            "grant",
        );
    }
    // A hold captured, another released.
    let hold = json!({ "user_id": "amy", "amount": 100, "ref": "cart-1" });
    for action in ["capture", "release"] {
        let h = ok(
            r.send(
                Method::POST,
                "/v1/admin/points/holds",
                &shop,
                T0,
                Some(&format!("h-{action}")),
                Some(&hold),
            )
            .await,
            "hold",
        );
        let id = h.body["hold_id"].as_str().unwrap().to_owned();
        let path = format!("/v1/admin/points/holds/{id}/{action}");
        ok(
            r.send(Method::POST, &path, &shop, T0, Some(&format!("s-{action}")), None)
                .await,
            action,
        );
    }
    // A reversal takes amy out of the capped tier (the seat is freed by a follow-up).
    let refund = json!({ "grant_idempotency_key": "o-amy", "amount": 1500, "reason": "refund" });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/points/reversals",
            &shop,
            T0,
            Some("rv1"),
            Some(&refund),
        )
        .await,
        "reversal",
    );
    // Check-ins, a make-up and the month view; the ledger and home screen.
    let spring = json!({ "campaign_id": "spring" });
    ok(
        r.send(
            Method::POST,
            "/v1/checkins",
            &amy,
            "2026-11-20T09:00:00+08:00",
            Some("ci-20"),
            Some(&spring),
        )
        .await,
        "check-in",
    );
    ok(
        r.send(
            Method::POST,
            "/v1/checkins",
            &amy,
            "2026-11-22T09:00:00+08:00",
            None,
            Some(&spring),
        )
        .await,
        "check-in",
    );
    let makeup = json!({ "campaign_id": "spring", "date": "2026-11-21" });
    ok(
        r.send(
            Method::POST,
            "/v1/checkins/makeup",
            &amy,
            "2026-11-22T10:00:00+08:00",
            Some("mk-21"),
            Some(&makeup),
        )
        .await,
        "make-up",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/checkins?campaign_id=spring",
            &amy,
            "2026-11-22T10:00:00+08:00",
            None,
            None,
        )
        .await,
        "month",
    );
    for path in ["/v1/points", "/v1/me", "/v1/points/ledger?limit=5"] {
        ok(
            r.send(Method::GET, path, &amy, "2026-11-22T10:00:00+08:00", None, None)
                .await,
            path,
        );
    }
    // Profiles: reserved names, a rename, an admin's reset, a registration date; a newcomer's
    // first home screen records the first appearance.
    let names = json!({ "names": ["admin"] });
    ok(
        r.send(
            Method::PUT,
            "/v1/admin/reserved-names",
            &admin,
            T0,
            None,
            Some(&names),
        )
        .await,
        "put reserved names",
    );
    ok(
        r.send(Method::GET, "/v1/admin/reserved-names", &admin, T0, None, None)
            .await,
        "get reserved names",
    );
    let rename = json!({ "display_name": "Amy" });
    ok(
        r.send(Method::PUT, "/v1/me/profile", &amy, T0, None, Some(&rename))
            .await,
        "put profile",
    );
    ok(
        r.send(Method::GET, "/v1/me/profile", &amy, T0, None, None).await,
        "get profile",
    );
    ok(
        r.send(
            Method::POST,
            "/v1/admin/members/amy/display-name/reset",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "reset name",
    );
    let since = json!({ "registered_at": "2024-01-01T00:00:00Z" });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/members/amy/registered",
            &e2e::scoped_service_token("shop", "campaign/members.write"),
            T0,
            None,
            Some(&since),
        )
        .await,
        "registered",
    );
    ok(
        r.send(Method::GET, "/v1/me", &member_token("newcomer"), T0, None, None)
            .await,
        "first home screen",
    );
    // A purchase moves the boards (counters are ADDed); the boards are read back.
    let order = json!({ "user_id": "amy", "order_amount_cents": 12_300, "reason": "order", "ref": "o-tour" });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/points/grants",
            &shop,
            T0,
            Some("o-tour"),
            Some(&order),
        )
        .await,
        "purchase",
    );
    ok(
        r.send(Method::GET, "/v1/leaderboards/all-time", &amy, T0, None, None)
            .await,
        "board",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/leaderboards/all-time/me?neighbours=2",
            &amy,
            T0,
            None,
            None,
        )
        .await,
        "my rank",
    );
    contests_tour(r).await;
    referrals_tour(r).await;
    draws_tour(r).await;
    // A hold that times out, released by the next read; much later, expiry by a read.
    let hold = json!({ "user_id": "amy", "amount": 10, "ref": "cart-2" });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/points/holds",
            &shop,
            "2026-11-22T10:00:00+08:00",
            Some("h3"),
            Some(&hold),
        )
        .await,
        "hold",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/me",
            &amy,
            "2026-11-22T11:00:00+08:00",
            None,
            None,
        )
        .await,
        "me after timeout",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/points/ledger",
            &amy,
            "2028-01-05T10:00:00+08:00",
            None,
            None,
        )
        .await,
        "ledger after expiry",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/points",
            &member_token("bob"),
            "2028-01-05T10:00:00+08:00",
            None,
            None,
        )
        .await,
        "points after expiry",
    );
}

/// Referrals: the program put and read, a code made by the home screen and by the referral page,
/// a claim.
/// Every draw route: config, codes, the shop's coupon calls, odds, spins (free, paid, a coupon
/// won, a physical prize to fulfil), shares, my spins, the reveal.
async fn draws_tour(r: &Recorded) {
    let admin = admin_token("ops");
    let ok = |reply: Reply, what: &str| {
        assert!(matches!(reply.status, 200 | 201), "{what}: {}", reply.body);
        reply
    };
    let spec = json!({
        "title": "Tour wheel",
        "starts_at": "2026-11-19T00:00:00Z",
        "ends_at": "2026-11-22T00:00:00Z",
        "cost": 1,
        "free_per_day": 1,
        "daily_limit": 20,
        "prizes": [
            {"prize_id": "mug", "name": "Mug", "kind": "physical", "weight": 1, "stock": 1, "splits": 2, "rare": true},
            {"prize_id": "voucher", "name": "Voucher", "kind": "coupon", "weight": 1},
            {"prize_id": "pts", "name": "5 points", "kind": "points", "value": 5, "weight": 1},
            {"prize_id": "thanks", "name": "Thanks", "kind": "nothing", "weight": 1}
        ],
        "consolation": "thanks"
    });
    ok(
        r.send(Method::PUT, "/v1/admin/draws/tour", &admin, T0, None, Some(&spec))
            .await,
        "put draw",
    );
    ok(
        r.send(Method::GET, "/v1/admin/draws", &admin, T0, None, None)
            .await,
        "list draws",
    );
    let codes = json!({ "codes": ["TOUR-1", "TOUR-2"] });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/draws/tour/prizes/voucher/codes",
            &admin,
            T0,
            None,
            Some(&codes),
        )
        .await,
        "codes",
    );
    let fan = member_token("fan");
    ok(
        r.send(Method::GET, "/v1/draws", &fan, T0, None, None).await,
        "open draws",
    );
    ok(
        r.send(Method::GET, "/v1/draws/tour", &fan, T0, None, None).await,
        "odds",
    );
    ok(
        r.send(Method::POST, "/v1/draws/tour/shares", &fan, T0, None, None)
            .await,
        "share",
    );
    // Spins until a coupon and the mug were won (free ones, then 1 point each: the fan earned
    // points in the tour's other parts or gets them here).
    let grant = json!({ "user_id": "fan", "amount": 100, "reason": "tour", "ref": "draws" });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/points/grants",
            &service_token("shop"),
            T0,
            Some("fan-draws"),
            Some(&grant),
        )
        .await,
        "points for spins",
    );
    let mut code = None;
    for i in 0..20 {
        let key = format!("spin-{i}");
        let spin = ok(
            r.send(
                Method::POST,
                "/v1/draws/tour/spins",
                &fan,
                T0,
                Some(&key),
                Some(&json!({})),
            )
            .await,
            "spin",
        );
        if let Some(c) = spin.body["spin"]["code"].as_str() {
            code = Some(c.to_owned());
        }
    }
    ok(
        r.send(Method::GET, "/v1/draws/tour/spins?limit=5", &fan, T0, None, None)
            .await,
        "my spins",
    );
    let shop = e2e::scoped_service_token("shop", draws::COUPONS_SCOPE);
    let code = code.unwrap_or_else(|| "TOUR-1".to_owned());
    ok(
        r.send(
            Method::GET,
            &format!("/v1/admin/coupons/{code}"),
            &shop,
            T0,
            None,
            None,
        )
        .await,
        "coupon",
    );
    r.send(
        Method::POST,
        &format!("/v1/admin/coupons/{code}/redeem"),
        &shop,
        T0,
        None,
        None,
    )
    .await;
    ok(
        r.send(
            Method::GET,
            "/v1/draws/tour/reveal",
            &fan,
            "2026-11-23T00:00:00Z",
            None,
            None,
        )
        .await,
        "reveal",
    );
}

async fn referrals_tour(r: &Recorded) {
    let admin = admin_token("ops");
    let ok = |reply: Reply, what: &str| {
        assert_eq!(reply.status, 200, "{what}: {}", reply.body);
        reply
    };
    let program = json!({ "enabled": true });
    ok(
        r.send(
            Method::PUT,
            "/v1/admin/referral-program",
            &admin,
            T0,
            None,
            Some(&program),
        )
        .await,
        "put program",
    );
    ok(
        r.send(Method::GET, "/v1/admin/referral-program", &admin, T0, None, None)
            .await,
        "get program",
    );
    let host = member_token("host");
    let home = ok(
        r.send(Method::GET, "/v1/me", &host, T0, None, None).await,
        "home makes a code",
    );
    let code = home.body["referral_code"].as_str().unwrap().to_owned();
    let guest = member_token("guest");
    let claim = json!({ "code": code });
    ok(
        r.send(
            Method::POST,
            "/v1/referrals/claim",
            &guest,
            T0,
            Some("c1"),
            Some(&claim),
        )
        .await,
        "claim",
    );
    // The guest's first purchase qualifies the referral; the host is paid right after.
    let order =
        json!({ "user_id": "guest", "order_amount_cents": 1200, "reason": "order", "ref": "o-guest" });
    ok(
        r.send(
            Method::POST,
            "/v1/admin/points/grants",
            &service_token("shop"),
            T0,
            Some("o-guest"),
            Some(&order),
        )
        .await,
        "a qualifying purchase",
    );
    let page = ok(
        r.send(Method::GET, "/v1/referrals/me", &host, T0, None, None)
            .await,
        "my referrals",
    );
    assert_eq!(page.body["claimed"], 1);
    assert_eq!(page.body["rewards_paid"], 100);
    let view = ok(
        r.send(Method::GET, "/v1/admin/referrals/host", &admin, T0, None, None)
            .await,
        "an admin's view",
    );
    assert_eq!(view.body["invitees"][0]["status"], "paid");
    let revoked = ok(
        r.send(
            Method::POST,
            "/v1/admin/referrals/guest/revoke",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "a revoke (and the undo right after)",
    );
    assert_eq!(revoked.body["status"], "revoked");
    // Under `first_checkin` a check-in qualifies: the check-in function pays the referrer.
    let program = json!({ "enabled": true, "qualifying": "first_checkin" });
    ok(
        r.send(
            Method::PUT,
            "/v1/admin/referral-program",
            &admin,
            T0,
            None,
            Some(&program),
        )
        .await,
        "program: first check-in",
    );
    let walker = member_token("walker");
    ok(
        r.send(
            Method::POST,
            "/v1/referrals/claim",
            &walker,
            T0,
            None,
            Some(&claim),
        )
        .await,
        "a second claim",
    );
    ok(
        r.send(Method::POST, "/v1/checkins", &walker, T0, None, Some(&json!({})))
            .await,
        "a qualifying check-in",
    );
    let page = ok(
        r.send(Method::GET, "/v1/referrals/me", &host, T0, None, None)
            .await,
        "my referrals after the check-in",
    );
    assert_eq!(page.body["rewards_paid"], 100, "{}", page.body);
    ok(
        r.send(
            Method::GET,
            "/v1/referrals/me",
            &member_token("other"),
            T0,
            None,
            None,
        )
        .await,
        "a code by the page",
    );
}

/// Contests: created, listed, cancelled; joined solo and in teams; earned in; settled by the job;
/// results and fulfilments.
async fn contests_tour(r: &Recorded) {
    let admin = admin_token("ops");
    let shop = service_token("shop");
    let (bob, cy, dan) = (member_token("bob"), member_token("cy"), member_token("dan"));
    let ok = |reply: Reply, what: &str| {
        assert!(matches!(reply.status, 200 | 201), "{what}: {}", reply.body);
        reply
    };
    let during = "2026-11-21T10:00:00+08:00";
    let solo = json!({ "title": "Tour", "starts_at": "2026-11-21T00:00:00+08:00", "ends_at": "2026-11-21T12:00:00+08:00",
                       "metric": "points_earned", "prizes": [{ "from": 1, "to": 1, "points": 10 }, { "from": 2, "to": 2, "item": "Cap" }] });
    let team = json!({ "title": "Tour teams", "starts_at": "2026-11-21T00:00:00+08:00", "ends_at": "2026-11-21T12:00:00+08:00",
                       "metric": "points_earned", "format": "team", "team_size": 3, "prizes": [{ "from": 1, "to": 1, "points": 5 }] });
    for (id, spec) in [("tour", &solo), ("tour-team", &team), ("tour-x", &solo)] {
        let path = format!("/v1/admin/contests/{id}");
        ok(
            r.send(Method::PUT, &path, &admin, T0, None, Some(spec)).await,
            "put contest",
        );
    }
    ok(
        r.send(
            Method::POST,
            "/v1/admin/contests/tour-x/cancel",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "cancel",
    );
    ok(
        r.send(Method::GET, "/v1/admin/contests", &admin, T0, None, None)
            .await,
        "admin list",
    );
    ok(
        r.send(Method::GET, "/v1/admin/contests/tour", &admin, T0, None, None)
            .await,
        "admin get",
    );
    for who in [&bob, &cy] {
        ok(
            r.send(Method::POST, "/v1/contests/tour/entries", who, T0, None, None)
                .await,
            "join",
        );
    }
    let created = ok(
        r.send(
            Method::POST,
            "/v1/contests/tour-team/teams",
            &cy,
            T0,
            None,
            Some(&json!({ "name": "Cyan" })),
        )
        .await,
        "team",
    );
    let code = json!({ "code": created.body["team"]["code"] });
    ok(
        r.send(
            Method::POST,
            "/v1/contests/tour-team/teams/join",
            &bob,
            T0,
            None,
            Some(&code),
        )
        .await,
        "join team",
    );
    ok(
        r.send(
            Method::POST,
            "/v1/contests/tour-team/teams",
            &dan,
            T0,
            None,
            Some(&json!({ "name": "Dan" })),
        )
        .await,
        "team",
    );
    ok(
        r.send(
            Method::POST,
            "/v1/contests/tour-team/teams/leave",
            &dan,
            T0,
            None,
            None,
        )
        .await,
        "leave",
    );
    for who in ["bob", "cy"] {
        let order = json!({ "user_id": who, "order_amount_cents": 5_000, "reason": "order", "ref": format!("t-{who}") });
        let key = format!("t-{who}");
        ok(
            r.send(
                Method::POST,
                "/v1/admin/points/grants",
                &shop,
                during,
                Some(&key),
                Some(&order),
            )
            .await,
            "earn",
        );
    }
    ok(
        r.send(Method::GET, "/v1/contests", &cy, during, None, None).await,
        "list",
    );
    ok(
        r.send(Method::GET, "/v1/contests/tour-team", &cy, during, None, None)
            .await,
        "get",
    );
    ok(
        r.send(
            Method::GET,
            "/v1/leaderboards/contest:tour-team:teams/me",
            &cy,
            during,
            None,
            None,
        )
        .await,
        "team rank",
    );
    let at: chrono::DateTime<chrono::Utc> = "2026-11-21T04:05:00Z".parse().unwrap();
    let event = local_api::schedule::scheduled_event("SettleContestsFunction", at, Some(at));
    let report = local_api::schedule::fire(&r.settle, "SettleContestsFunction", event)
        .await
        .unwrap();
    assert_eq!(report["contests"].as_array().unwrap().len(), 2, "{report}");
    ok(
        r.send(
            Method::GET,
            "/v1/admin/contests/tour/results",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "results",
    );
    let open = ok(
        r.send(
            Method::GET,
            "/v1/admin/fulfilments?source=contest:tour",
            &admin,
            T0,
            None,
            None,
        )
        .await,
        "fulfilments",
    );
    let id = open.body["fulfilments"][0]["fulfilment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/admin/fulfilments/{id}/shipped");
    ok(
        r.send(Method::POST, &path, &admin, T0, None, None).await,
        "shipped",
    );
}

#[tokio::test]
async fn every_call_of_every_function_is_allowed_by_its_policy() {
    let env = TestEnv::new().await;
    let r = Recorded::start(&env).await;
    tour(&r).await;
    let template = Template::load(&local_api::repo_root().join("template.yaml")).unwrap();
    let mut seen_actions = BTreeSet::new();
    for (function, proxy) in &r.proxies {
        let allowed: BTreeSet<(String, &str)> = template.dynamodb_permissions(function).into_iter().collect();
        let used = proxy.accesses();
        assert!(
            used.len() >= 3,
            "{function} made too few kinds of calls for this test to mean anything: {used:?}"
        );
        for Access { action, resource } in &used {
            assert!(
                allowed.contains(&(action.clone(), *resource)),
                "{function} calls dynamodb:{action} on the {resource}, which its policy in template.yaml does not allow"
            );
            seen_actions.insert(action.clone());
        }
    }
    // The tour reached the calls that only production would refuse.
    for action in [
        "BatchGetItem",
        "ConditionCheckItem",
        "GetItem",
        "PutItem",
        "Query",
        "UpdateItem",
    ] {
        assert!(
            seen_actions.contains(action),
            "no {action} in the tour: {seen_actions:?}"
        );
    }
    // Tier moves into and out of the capped tier happened (the ladder item was written by a
    // member-facing function's follow-up, not only by admins).
    let ladder_writes = r
        .all()
        .iter()
        .filter(|c| c.operation == "TransactWriteItems" && c.body.contains(r#"{"S":"TIERS"}"#))
        .count();
    assert!(ladder_writes >= 2, "admissions and departures: {ladder_writes}");
    for call in r.all().iter().filter(|c| c.operation == "Query") {
        let q: Value = serde_json::from_str(&call.body).unwrap();
        if q.get("IndexName").is_none() {
            assert_eq!(
                q["ConsistentRead"], true,
                "a base-table Query that is not consistent: {}",
                call.body
            );
        }
    }
    assert!(r.total() > 30);
    env.assert_audit_clean().await;
}

/// The DynamoDB requests each route makes on its common path (warm or cold cache alike: the
/// configuration items ride in the same batch read). A change that adds a round trip fails here.
#[tokio::test]
async fn each_route_makes_its_known_round_trips() {
    let env = TestEnv::new().await;
    let r = Recorded::start(&env).await;
    let (admin, shop, cam) = (admin_token("ops"), service_token("shop"), member_token("cam"));
    let expect = |ops: Vec<String>, want: &[&str], what: &str| {
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(ops, want, "{what}");
    };
    let body = json!({ "user_id": "cam", "amount": 50, "reason": "paid", "ref": "o1" });
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/points/grants",
            &shop,
            T0,
            Some("o1"),
            Some(&body),
        )
        .await;
    expect(
        ops,
        &["BatchGetItem", "TransactWriteItems"],
        "grant: one read, one write",
    );
    let (_, ops) = r.ops(Method::POST, "/v1/checkins", &cam, T0, None, None).await;
    expect(
        ops,
        &["BatchGetItem", "TransactWriteItems"],
        "check-in: one read, one write",
    );
    let (_, ops) = r.ops(Method::POST, "/v1/checkins", &cam, T0, None, None).await;
    expect(ops, &["BatchGetItem"], "a repeat check-in: one read");
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/checkins/makeup",
            &cam,
            T0,
            None,
            Some(&json!({ "date": "2026-11-19" })),
        )
        .await;
    expect(ops, &["BatchGetItem", "TransactWriteItems"], "make-up");
    let (_, ops) = r.ops(Method::GET, "/v1/checkins", &cam, T0, None, None).await;
    expect(
        ops,
        &["BatchGetItem", "Query"],
        "month view: a read and a query, in parallel",
    );
    let (_, ops) = r.ops(Method::GET, "/v1/me", &cam, T0, None, None).await;
    expect(ops, &["BatchGetItem"], "home screen: one read");
    // A newcomer's first home screen: the same one read (profile and the contests' and draws'
    // home indexes included), and the first appearance written once.
    let before = r.total();
    let dee = member_token("dee");
    let (_, ops) = r.ops(Method::GET, "/v1/me", &dee, T0, None, None).await;
    expect(ops, &["BatchGetItem", "PutItem"], "a first home screen");
    let read = r
        .all()
        .into_iter()
        .filter(|c| c.operation == "BatchGetItem" && c.body.contains(r#""USER#dee""#))
        .map(|c| c.body)
        .next()
        .expect("the home screen's read");
    for item in ["PROFILE", "STREAK#daily"] {
        assert!(
            read.contains(&format!(r#""{item}""#)),
            "{item} is not in the one read: {read}"
        );
    }
    assert!(r.total() >= before + 2);
    // The contests' and draws' home indexes ride in the home screen's read (cam's, cold cache).
    let indexes = r.proxies["PointsFunction"]
        .all()
        .into_iter()
        .filter(|c| c.operation == "BatchGetItem")
        .any(|c| c.body.contains(r#""CONTESTS""#) && c.body.contains(r#""DRAWS""#));
    assert!(
        indexes,
        "no home screen read carried CONFIG/CONTESTS and CONFIG/DRAWS"
    );
    let (_, ops) = r.ops(Method::GET, "/v1/me", &dee, T0, None, None).await;
    expect(ops, &["BatchGetItem"], "later home screens: one read");
    // The profile routes.
    let (_, ops) = r.ops(Method::GET, "/v1/me/profile", &dee, T0, None, None).await;
    expect(ops, &["BatchGetItem"], "get profile: one read");
    let rename = json!({ "display_name": "Dee" });
    let (_, ops) = r
        .ops(Method::PUT, "/v1/me/profile", &dee, T0, None, Some(&rename))
        .await;
    expect(
        ops,
        &["BatchGetItem", "PutItem"],
        "put profile: a read, a versioned put",
    );
    let (_, ops) = r
        .ops(Method::GET, "/v1/admin/reserved-names", &admin, T0, None, None)
        .await;
    expect(ops, &["GetItem"], "get reserved names");
    let names = json!({ "names": ["official"] });
    let (_, ops) = r
        .ops(
            Method::PUT,
            "/v1/admin/reserved-names",
            &admin,
            T0,
            None,
            Some(&names),
        )
        .await;
    expect(ops, &["UpdateItem"], "put reserved names: one atomic update");
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/members/dee/display-name/reset",
            &admin,
            T0,
            None,
            None,
        )
        .await;
    expect(ops, &["BatchGetItem", "PutItem"], "reset a name");
    let since = json!({ "registered_at": "2024-01-01T00:00:00Z" });
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/members/dee/registered",
            &admin,
            T0,
            None,
            Some(&since),
        )
        .await;
    expect(ops, &["BatchGetItem", "PutItem"], "set a registration date");
    let (_, ops) = r.ops(Method::GET, "/v1/points", &cam, T0, None, None).await;
    expect(ops, &["BatchGetItem"], "balance: one read");
    let (_, ops) = r
        .ops(Method::GET, "/v1/points/ledger", &cam, T0, None, None)
        .await;
    expect(ops, &["BatchGetItem", "Query"], "ledger page");
    let hold = json!({ "user_id": "cam", "amount": 10, "ref": "cart" });
    let (h, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/points/holds",
            &shop,
            T0,
            Some("h1"),
            Some(&hold),
        )
        .await;
    expect(ops, &["BatchGetItem", "TransactWriteItems"], "hold");
    let id = h.body["hold_id"].as_str().unwrap().to_owned();
    let (_, ops) = r
        .ops(
            Method::POST,
            &format!("/v1/admin/points/holds/{id}/capture"),
            &shop,
            T0,
            Some("c1"),
            None,
        )
        .await;
    expect(
        ops,
        &["BatchGetItem", "GetItem", "TransactWriteItems"],
        "capture: the hold's lookup first",
    );
    let refund = json!({ "grant_idempotency_key": "o1", "amount": 5, "reason": "refund" });
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/points/reversals",
            &shop,
            T0,
            Some("rv"),
            Some(&refund),
        )
        .await;
    expect(
        ops,
        &["BatchGetItem", "GetItem", "GetItem", "TransactWriteItems"],
        "reversal: the grant's lookup and its entry (did it count on the boards?) first",
    );
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/points/grants",
            &shop,
            T0,
            Some("o1"),
            Some(&body),
        )
        .await;
    expect(ops, &["BatchGetItem"], "a replayed grant: one read");
    let tiers =
        json!({ "tiers": [{ "name": "Member", "threshold": 0 }, { "name": "VIP", "threshold": 100 }] });
    let (_, ops) = r
        .ops(Method::PUT, "/v1/admin/tiers", &admin, T0, None, Some(&tiers))
        .await;
    expect(
        ops,
        &["GetItem", "GetItem", "TransactWriteItems"],
        "put tiers: both configs, one checked write",
    );
    let window = json!({ "start": "2026-12-12T00:00:00+08:00", "end": "2026-12-13T00:00:00+08:00", "factor_bps": 20000 });
    let (_, ops) = r
        .ops(
            Method::PUT,
            "/v1/admin/multipliers/d12",
            &admin,
            T0,
            None,
            Some(&window),
        )
        .await;
    expect(ops, &["GetItem", "GetItem", "TransactWriteItems"], "put window");
    let (_, ops) = r
        .ops(
            Method::DELETE,
            "/v1/admin/multipliers/d12",
            &admin,
            T0,
            None,
            None,
        )
        .await;
    expect(ops, &["GetItem", "PutItem"], "delete window");
    let (_, ops) = r
        .ops(Method::GET, "/v1/admin/tiers", &admin, T0, None, None)
        .await;
    expect(ops, &["GetItem"], "get tiers");
    let (_, ops) = r
        .ops(Method::GET, "/v1/admin/multipliers", &admin, T0, None, None)
        .await;
    expect(ops, &["GetItem"], "get windows");
    let campaign = json!({ "time_zone": "Asia/Shanghai", "ladder": [5] });
    let (_, ops) = r
        .ops(
            Method::PUT,
            "/v1/admin/checkin-campaigns/c1",
            &admin,
            T0,
            None,
            Some(&campaign),
        )
        .await;
    expect(ops, &["PutItem"], "put campaign");
    let (_, ops) = r
        .ops(
            Method::GET,
            "/v1/admin/checkin-campaigns/c1",
            &admin,
            T0,
            None,
            None,
        )
        .await;
    expect(ops, &["GetItem"], "get campaign");

    // Contests: created (the contest and the index in one transaction), joined, listed, read.
    let spec = json!({ "title": "Pin", "starts_at": "2026-11-21T00:00:00+08:00", "ends_at": "2026-11-22T00:00:00+08:00",
                       "metric": "points_earned", "prizes": [{ "from": 1, "to": 1, "points": 1 }] });
    let (_, ops) = r
        .ops(
            Method::PUT,
            "/v1/admin/contests/pin",
            &admin,
            T0,
            None,
            Some(&spec),
        )
        .await;
    expect(
        ops,
        &["GetItem", "GetItem", "TransactWriteItems"],
        "create a contest: it and the index, then both in one transaction",
    );
    let (_, ops) = r
        .ops(Method::POST, "/v1/contests/pin/entries", &cam, T0, None, None)
        .await;
    expect(
        ops,
        &["GetItem", "GetItem", "PutItem"],
        "join: the contest, my entry, the put",
    );
    let (_, ops) = r.ops(Method::GET, "/v1/contests", &cam, T0, None, None).await;
    expect(
        ops,
        &["BatchGetItem", "GetItem"],
        "contests: the index, then contests and entries",
    );
    let (_, ops) = r.ops(Method::GET, "/v1/contests/pin", &cam, T0, None, None).await;
    expect(ops, &["GetItem", "GetItem"], "one contest: it and my entry");
    let during = "2026-11-21T10:00:00+08:00";
    let (_, ops) = r.ops(Method::GET, "/v1/me", &cam, during, None, None).await;
    expect(
        ops,
        &["BatchGetItem", "BatchGetItem"],
        "home screen with a live contest: two reads",
    );

    // Referrals: a claim is two reads (the code's owner, then one batch) and one transaction.
    let program = json!({ "enabled": true });
    let (_, ops) = r
        .ops(
            Method::PUT,
            "/v1/admin/referral-program",
            &admin,
            T0,
            None,
            Some(&program),
        )
        .await;
    expect(ops, &["GetItem", "PutItem"], "put the program");
    let (page, ops) = r
        .ops(
            Method::GET,
            "/v1/referrals/me",
            &member_token("zed"),
            T0,
            None,
            None,
        )
        .await;
    expect(
        ops,
        &["BatchGetItem", "GetItem", "Query", "TransactWriteItems"],
        "the first referral page: no code yet, one made, then the page",
    );
    let claim = json!({ "code": page.body["code"] });
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/referrals/claim",
            &member_token("yan"),
            T0,
            None,
            Some(&claim),
        )
        .await;
    expect(
        ops,
        &["BatchGetItem", "GetItem", "TransactWriteItems"],
        "a claim: two reads, one write",
    );
    // The invitee's first purchase: the grant's read and transaction (the referral read in the
    // same batch, the qualified mark in the same transaction), then the referrer's step: the
    // referral, one batch with the referrer's account, one transaction.
    let order = json!({ "user_id": "yan", "order_amount_cents": 500, "reason": "order", "ref": "o-yan" });
    let (reply, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/points/grants",
            &service_token("shop"),
            T0,
            Some("o-yan"),
            Some(&order),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    expect(
        ops,
        &[
            "BatchGetItem",
            "TransactWriteItems",
            "GetItem",
            "BatchGetItem",
            "TransactWriteItems",
        ],
        "a qualifying purchase, then the referrer paid",
    );
    let (_, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/points/grants",
            &service_token("shop"),
            T0,
            Some("o-yan-2"),
            Some(
                &json!({ "user_id": "yan", "order_amount_cents": 500, "reason": "order", "ref": "o-yan-2" }),
            ),
        )
        .await;
    expect(
        ops,
        &["BatchGetItem", "TransactWriteItems"],
        "a later purchase: nothing more",
    );
    let (_, ops) = r
        .ops(Method::GET, "/v1/admin/referrals/zed", &admin, T0, None, None)
        .await;
    expect(
        ops,
        &["Query", "BatchGetItem"],
        "an admin's view: the invitee page, then one batch",
    );
    let (reply, ops) = r
        .ops(
            Method::POST,
            "/v1/admin/referrals/yan/revoke",
            &admin,
            T0,
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    expect(
        ops,
        &[
            "GetItem",
            "BatchGetItem",
            "TransactWriteItems",
            "GetItem",
            "BatchGetItem",
            "TransactWriteItems",
            "GetItem",
        ],
        "a revoke of a paid referral: the invitee's transaction, the undo, the referral re-read",
    );
    env.assert_audit_clean().await;
}
