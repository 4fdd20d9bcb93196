//! Contests end to end (local API + DynamoDB Local, dev clock): a solo story from creation to
//! settlement on the schedule, a team story, and settlement exactly once — two runs at once, a run
//! stopped after each of its writes and re-run, a run repeated after success, and a stale index.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use e2e::fault::{Fault, FaultProxy};
use e2e::{Reply, TestApi, TestEnv, admin_token, member_token, service_token};
use reqwest::Method;
use serde_json::{Value, json};
use shared::App;
use shared::domain::ledger::Reason;

/// Set-up happens the day before the contests start.
const SETUP: &str = "2026-11-23T10:00:00Z";
const START: &str = "2026-11-24T00:00:00Z";
const END: &str = "2026-11-25T00:00:00Z";
/// During the contests.
const DURING: &str = "2026-11-24T06:00:00Z";

async fn put_contest(api: &TestApi, id: &str, spec: &Value) -> Reply {
    api.send_json(
        Method::PUT,
        &format!("/v1/admin/contests/{id}"),
        &admin_token("ops"),
        SETUP,
        spec,
    )
    .await
}

fn solo_spec() -> Value {
    json!({
        "title": "Sprint",
        "description": "Earn the most points in a day",
        "starts_at": START,
        "ends_at": END,
        "metric": "points_earned",
        "prizes": [
            { "from": 1, "to": 1, "points": 100 },
            { "from": 2, "to": 3, "item": "Mug" }
        ]
    })
}

/// A purchase of `yuan` (1 point per yuan).
async fn purchase(api: &TestApi, user: &str, yuan: i64, key: &str, now: &str) {
    let body = json!({ "user_id": user, "order_amount_cents": yuan * 100, "reason": "order", "ref": key });
    let b = api
        .request(Method::POST, "/v1/admin/points/grants")
        .bearer_auth(service_token("shop"))
        .header("idempotency-key", key)
        .header("x-debug-now", now)
        .json(&body);
    let r = api.send(b).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn join(api: &TestApi, contest: &str, user: &str, now: &str) -> Reply {
    api.post(
        &format!("/v1/contests/{contest}/entries"),
        &member_token(user),
        now,
        &json!({}),
    )
    .await
}

/// Fires the settlement job as its schedule would, at `now`.
async fn settle(app: &App, now: &str) -> Value {
    let at: chrono::DateTime<chrono::Utc> = now.parse().unwrap();
    let event = local_api::schedule::scheduled_event("SettleContestsFunction", at, Some(at));
    local_api::schedule::fire(app, "SettleContestsFunction", event)
        .await
        .expect("settlement run")
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["contests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["contest_id"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// (user, delta) of every contest prize in the member's ledger.
async fn prizes(env: &TestEnv, user: &str) -> Vec<i64> {
    let entries = env
        .app
        .store
        .ledger_page(&e2e::user(user), 100, None)
        .await
        .expect("ledger")
        .entries;
    entries
        .iter()
        .filter(|e| e.reason == Reason::ContestPrize)
        .map(|e| e.delta)
        .collect()
}

fn names(page: &Value) -> Vec<(u64, String, u64)> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["position"].as_u64().unwrap(),
                e["name"].as_str().unwrap().to_owned(),
                e["score"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn board(api: &TestApi, board: &str, now: &str) -> Value {
    let r = api
        .get(
            &format!("/v1/leaderboards/{board}?limit=10"),
            Some(&member_token("viewer")),
            Some(now),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn display_name(api: &TestApi, user: &str, name: &str) {
    let r = api
        .send_json(
            Method::PUT,
            "/v1/me/profile",
            &member_token(user),
            SETUP,
            &json!({ "display_name": name }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_solo_contest_from_creation_to_settlement() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    for (user, name) in [
        ("u-ann", "Ann"),
        ("u-bob", "Bob"),
        ("u-cy", "Cy"),
        ("u-dee", "Dee"),
        ("u-eve", "Eve"),
    ] {
        display_name(&api, user, name).await;
    }

    // Create: a start too close to "now" is refused; then created (201), repeated (200).
    let mut early = solo_spec();
    early["starts_at"] = json!("2026-11-23T10:00:30Z");
    put_contest(&api, "sprint", &early)
        .await
        .assert_problem(422, "invalid-value");
    let r = put_contest(&api, "sprint", &solo_spec()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "upcoming");
    assert_eq!(put_contest(&api, "sprint", &solo_spec()).await.status, 200);

    // Members join (before the start and during); Eve never does.
    assert_eq!(join(&api, "sprint", "u-ann", SETUP).await.status, 200);
    let again = join(&api, "sprint", "u-ann", DURING).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["joined_at"],
        json!("2026-11-23T10:00:00Z"),
        "a second join keeps the first"
    );
    for user in ["u-bob", "u-cy", "u-dee"] {
        assert_eq!(join(&api, "sprint", user, SETUP).await.status, 200);
    }
    join(&api, "nope", "u-ann", SETUP)
        .await
        .assert_problem(404, "not-found");

    // Before the start nothing counts; during, purchases count; Eve's does not (not joined).
    purchase(&api, "u-bob", 999, "o-early", "2026-11-23T23:59:59Z").await;
    purchase(&api, "u-ann", 90, "o-ann", "2026-11-24T01:00:00Z").await;
    purchase(&api, "u-bob", 60, "o-bob", "2026-11-24T02:00:00Z").await;
    // Cy and Dee tie at 50 for the last prize: Cy got there first and takes position 3.
    purchase(&api, "u-cy", 50, "o-cy", "2026-11-24T03:00:00Z").await;
    purchase(&api, "u-dee", 50, "o-dee", "2026-11-24T04:00:00Z").await;
    purchase(&api, "u-eve", 500, "o-eve", "2026-11-24T05:00:00Z").await;

    let live = board(&api, "contest:sprint", DURING).await;
    assert_eq!(
        names(&live),
        [
            (1, "Ann".into(), 90),
            (2, "Bob".into(), 60),
            (3, "Cy".into(), 50),
            (4, "Dee".into(), 50)
        ]
    );
    assert_eq!(live["final"], false);

    // The member's views: the list, one contest, and the home screen.
    let list = api
        .get("/v1/contests", Some(&member_token("u-ann")), Some(DURING))
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["contests"][0]["contest_id"], "sprint");
    assert_eq!(list.body["contests"][0]["score"], 90);
    assert_eq!(list.body["contests"][0]["status"], "running");
    let home = api
        .get("/v1/me", Some(&member_token("u-ann")), Some(DURING))
        .await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert_eq!(
        home.body["contests"],
        json!([{ "contest_id": "sprint", "title": "Sprint", "ends_at": "2026-11-25T00:00:00Z", "joined": true, "score": 90 }])
    );
    let eve = api
        .get("/v1/contests/sprint", Some(&member_token("u-eve")), Some(DURING))
        .await;
    assert_eq!(
        (eve.body["joined"].clone(), eve.body.get("score")),
        (json!(false), None)
    );

    // After the end: a purchase and a reversal leave the contest alone (but not the week).
    purchase(&api, "u-dee", 400, "o-late", "2026-11-25T00:00:01Z").await;
    let reversal = json!({ "grant_idempotency_key": "o-ann", "reason": "refund" });
    let b = api
        .request(Method::POST, "/v1/admin/points/reversals")
        .bearer_auth(service_token("shop"))
        .header("idempotency-key", "r-ann")
        .header("x-debug-now", "2026-11-25T00:00:10Z")
        .json(&reversal);
    assert_eq!(api.send(b).await.status, 200);
    join(&api, "sprint", "u-eve", "2026-11-25T00:00:20Z")
        .await
        .assert_problem(409, "contest-closed");

    // The schedule: within the grace nothing is due; after it, settled once.
    assert!(outcomes(&settle(&env.app, "2026-11-25T00:00:30Z").await).is_empty());
    let report = settle(&env.app, "2026-11-25T00:01:00Z").await;
    assert_eq!(outcomes(&report), [("sprint".to_owned(), "settled".to_owned())]);
    assert_eq!(report["contests"][0]["totals"]["points_paid"], 100);
    assert_eq!(report["contests"][0]["totals"]["to_fulfil"], 2);
    assert!(outcomes(&settle(&env.app, "2026-11-25T00:02:00Z").await).is_empty());

    // Paid through the ledger once; items to fulfil; nothing for Dee (position 4).
    assert_eq!(prizes(&env, "u-ann").await, [100]);
    for user in ["u-bob", "u-cy", "u-dee", "u-eve"] {
        assert!(prizes(&env, user).await.is_empty(), "{user}");
    }
    let settled = board(&api, "contest:sprint", "2026-11-25T01:00:00Z").await;
    assert_eq!(settled["final"], true);
    assert_eq!(names(&settled)[..3], names(&live)[..3]);

    let mine = api
        .get(
            "/v1/contests/sprint",
            Some(&member_token("u-cy")),
            Some("2026-11-25T01:00:00Z"),
        )
        .await;
    assert_eq!(mine.body["status"], "settled");
    assert_eq!(mine.body["result"]["position"], 3);
    assert_eq!(mine.body["result"]["rank"], 3);
    assert_eq!(mine.body["result"]["prize"]["item"], "Mug");
    let dee = api
        .get(
            "/v1/contests/sprint",
            Some(&member_token("u-dee")),
            Some("2026-11-25T01:00:00Z"),
        )
        .await;
    assert_eq!(dee.body.get("result"), None);

    let admin = admin_token("ops");
    let results = api
        .get("/v1/admin/contests/sprint/results", Some(&admin), None)
        .await;
    assert_eq!(results.status, 200, "{}", results.body);
    let rows: Vec<(u64, String, String)> = results.body["winners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["position"].as_u64().unwrap(),
                w["user_id"].as_str().unwrap().to_owned(),
                w["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "u-ann".into(), "paid".into()),
            (2, "u-bob".into(), "to_fulfil".into()),
            (3, "u-cy".into(), "to_fulfil".into())
        ]
    );

    // Fulfilments: listed by source and status (an index), shipped once.
    let list = api
        .get("/v1/admin/fulfilments?source=contest:sprint", Some(&admin), None)
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let open = list.body["fulfilments"].as_array().unwrap().clone();
    assert_eq!(open.len(), 2);
    let id = open[0]["fulfilment_id"].as_str().unwrap().to_owned();
    let ship = |now: &'static str| {
        let path = format!("/v1/admin/fulfilments/{id}/shipped");
        let api = &api;
        let admin = admin.clone();
        async move { api.post(&path, &admin, now, &json!({})).await }
    };
    let shipped = ship("2026-11-26T09:00:00Z").await;
    assert_eq!(shipped.status, 200, "{}", shipped.body);
    assert_eq!(shipped.body["status"], "shipped");
    ship("2026-11-26T09:05:00Z")
        .await
        .assert_problem(409, "already-shipped");
    let left = api
        .get(
            "/v1/admin/fulfilments?source=contest:sprint&status=to_fulfil",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(left.body["fulfilments"].as_array().unwrap().len(), 1);
    let done = api
        .get(
            "/v1/admin/fulfilments?source=contest:sprint&status=shipped",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(done.body["fulfilments"][0]["fulfilment_id"], json!(id));
    api.get("/v1/admin/fulfilments", Some(&admin), None)
        .await
        .assert_problem(400, "invalid-request");
    api.get("/v1/admin/fulfilments?source=sprint", Some(&admin), None)
        .await
        .assert_problem(422, "invalid-value");
    api.post("/v1/admin/fulfilments/nope/shipped", &admin, SETUP, &json!({}))
        .await
        .assert_problem(404, "not-found");
    // Members cannot reach admin routes.
    api.get("/v1/admin/contests", Some(&member_token("u-ann")), None)
        .await
        .assert_problem(403, "forbidden");

    // The admin listing by status; a settled contest cannot change.
    let listed = api
        .get("/v1/admin/contests?status=settled", Some(&admin), None)
        .await;
    assert_eq!(listed.body["contests"][0]["id"], "sprint");
    assert_eq!(listed.body["contests"][0]["settled"]["winners"], 3);
    let mut later = solo_spec();
    later["ends_at"] = json!("2026-11-26T00:00:00Z");
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/contests/sprint",
            &admin,
            "2026-11-25T02:00:00Z",
            &later,
        )
        .await;
    r.assert_problem(422, "invalid-value");
    // A settled contest is never cancelled, even by a clock set back before its start (found by
    // the contract fuzzing, which sends any x-debug-now).
    api.post("/v1/admin/contests/sprint/cancel", &admin, SETUP, &json!({}))
        .await
        .assert_problem(409, "contest-started");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn admins_cancel_before_the_start_and_the_index_caps_running_contests() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let admin = admin_token("ops");
    assert_eq!(put_contest(&api, "c0", &solo_spec()).await.status, 201);
    let r = api
        .post("/v1/admin/contests/c0/cancel", &admin, SETUP, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    api.get("/v1/contests/c0", Some(&member_token("u1")), Some(SETUP))
        .await
        .assert_problem(404, "not-found");
    join(&api, "c0", "u1", SETUP)
        .await
        .assert_problem(404, "not-found");
    // Five may overlap; a sixth is refused, also when six admins race for the last place.
    for i in 1..=4 {
        assert_eq!(
            put_contest(&api, &format!("c{i}"), &solo_spec()).await.status,
            201
        );
    }
    let api = Arc::new(api);
    let replies = e2e::concurrently(4, |i| {
        let api = api.clone();
        async move { put_contest(&api, &format!("race{i}"), &solo_spec()).await }
    })
    .await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_problem(429, "too-many-contests");
    }
    assert_eq!(created, 1, "exactly one takes the fifth place");
    // Cancelling after the start: 409.
    let r = api
        .post("/v1/admin/contests/c1/cancel", &admin, DURING, &json!({}))
        .await;
    r.assert_problem(409, "contest-started");
    let listed = api
        .get("/v1/admin/contests?status=upcoming", Some(&admin), Some(SETUP))
        .await;
    assert_eq!(listed.body["contests"].as_array().unwrap().len(), 5);
    api.get("/v1/admin/contests?status=later", Some(&admin), None)
        .await
        .assert_problem(422, "invalid-value");
    env.assert_audit_clean().await;
}

fn team_spec() -> Value {
    json!({
        "title": "Team relay",
        "starts_at": START,
        "ends_at": END,
        "metric": "points_earned",
        "entry": "opt_in",
        "format": "team",
        "team_size": 2,
        "prizes": [{ "from": 1, "to": 1, "points": 50 }]
    })
}

async fn create_team(api: &TestApi, user: &str, name: &str, now: &str) -> Reply {
    api.post(
        "/v1/contests/relay/teams",
        &member_token(user),
        now,
        &json!({ "name": name }),
    )
    .await
}

async fn join_team(api: &TestApi, user: &str, code: &str, now: &str) -> Reply {
    api.post(
        "/v1/contests/relay/teams/join",
        &member_token(user),
        now,
        &json!({ "code": code }),
    )
    .await
}

#[tokio::test]
async fn a_team_contest_from_teams_to_prizes() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    assert_eq!(put_contest(&api, "relay", &team_spec()).await.status, 201);
    assert_eq!(put_contest(&api, "sprint", &solo_spec()).await.status, 201);

    // Ann creates Red; Bob joins with the code typed loosely; Cy finds it full.
    let red = create_team(&api, "u-ann", "  Red   Pandas ", SETUP).await;
    assert_eq!(red.status, 201, "{}", red.body);
    assert_eq!(red.body["team"]["name"], "Red Pandas");
    let code = red.body["team"]["code"].as_str().unwrap().to_owned();
    let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
    // Bob's purchase before joining never counts for the team.
    // (Joining is open until the end; the join comes after the purchase on the clock too, as it
    // would in a real run, so the audit can tell from the timestamps.)
    purchase(&api, "u-bob", 70, "o-bob-before", "2026-11-24T00:30:00Z").await;
    let joined = join_team(&api, "u-bob", &typed, "2026-11-24T01:00:00Z").await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.body["team"]["size"], 2);
    assert_eq!(joined.body["team"]["members"].as_array().unwrap().len(), 2);
    assert!(
        !joined.body.to_string().contains("u-ann"),
        "a team reveals no user ids"
    );
    // Joining my own team again answers it; a full team, another team, a wrong code.
    assert_eq!(join_team(&api, "u-bob", &code, SETUP).await.status, 200);
    join_team(&api, "u-cy", &code, SETUP)
        .await
        .assert_problem(409, "team-full");
    let blue = create_team(&api, "u-cy", "Blue", SETUP).await;
    assert_eq!(blue.status, 201);
    let blue_code = blue.body["team"]["code"].as_str().unwrap().to_owned();
    join_team(&api, "u-ann", &blue_code, SETUP)
        .await
        .assert_problem(409, "already-in-team");
    create_team(&api, "u-ann", "Again", SETUP)
        .await
        .assert_problem(409, "already-in-team");
    join_team(&api, "u-dee", "ZZZZZZZZ", SETUP)
        .await
        .assert_problem(404, "not-found");
    create_team(&api, "u-dee", "", SETUP)
        .await
        .assert_problem(422, "invalid-value");
    // A solo contest has no teams; a team contest no solo entries.
    api.post(
        "/v1/contests/sprint/teams",
        &member_token("u-dee"),
        SETUP,
        &json!({ "name": "X" }),
    )
    .await
    .assert_problem(422, "invalid-value");
    join(&api, "relay", "u-dee", SETUP)
        .await
        .assert_problem(422, "invalid-value");

    // Leaving before the start: the last member out removes the team and its code.
    let r = api
        .post(
            "/v1/contests/relay/teams/leave",
            &member_token("u-cy"),
            SETUP,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    join_team(&api, "u-dee", &blue_code, SETUP)
        .await
        .assert_problem(404, "not-found");
    let green = create_team(&api, "u-cy", "Green", SETUP).await;
    assert_eq!(green.status, 201);
    api.post(
        "/v1/contests/relay/teams/leave",
        &member_token("u-cy"),
        DURING,
        &json!({}),
    )
    .await
    .assert_problem(409, "contest-started");

    // Team scores: what members earn after joining, during the contest.
    purchase(&api, "u-ann", 30, "o-ann", "2026-11-24T01:00:00Z").await;
    purchase(&api, "u-bob", 40, "o-bob", "2026-11-24T02:00:00Z").await;
    purchase(&api, "u-cy", 60, "o-cy", "2026-11-24T03:00:00Z").await;
    let teams = board(&api, "contest:relay:teams", DURING).await;
    assert_eq!(
        names(&teams),
        [(1, "Red Pandas".into(), 70), (2, "Green".into(), 60)]
    );
    let mine = api
        .get(
            "/v1/leaderboards/contest:relay:teams/me",
            Some(&member_token("u-bob")),
            Some(DURING),
        )
        .await;
    assert_eq!(
        (mine.body["rank"].clone(), mine.body["team"].clone()),
        (json!(1), json!("Red Pandas"))
    );

    // Settled: each member of the winning team is paid once.
    let report = settle(&env.app, "2026-11-25T00:05:00Z").await;
    assert!(
        outcomes(&report).contains(&("relay".to_owned(), "settled".to_owned())),
        "{report}"
    );
    assert_eq!(prizes(&env, "u-ann").await, [50]);
    assert_eq!(prizes(&env, "u-bob").await, [50]);
    assert!(prizes(&env, "u-cy").await.is_empty());
    let mine = api
        .get(
            "/v1/contests/relay",
            Some(&member_token("u-bob")),
            Some("2026-11-25T01:00:00Z"),
        )
        .await;
    assert_eq!(mine.body["result"]["position"], 1);
    assert_eq!(mine.body["result"]["paid"], true);
    env.assert_audit_clean().await;
}

/// A contest with three winners (one paid in points, two items) for the exactly-once cases.
async fn three_winners(api: &TestApi) {
    assert_eq!(put_contest(api, "once", &solo_spec()).await.status, 201);
    for (i, user) in ["w1", "w2", "w3", "w4"].iter().enumerate() {
        assert_eq!(join(api, "once", user, SETUP).await.status, 200);
        let at = format!("2026-11-24T0{}:00:00Z", i + 1);
        purchase(api, user, 100 - 10 * i as i64, &format!("o-{user}"), &at).await;
    }
}

async fn assert_paid_once(env: &TestEnv, api: &TestApi) {
    assert_eq!(prizes(env, "w1").await, [100]);
    for user in ["w2", "w3", "w4"] {
        assert!(prizes(env, user).await.is_empty());
    }
    let admin = admin_token("ops");
    let list = api
        .get("/v1/admin/fulfilments?source=contest:once", Some(&admin), None)
        .await;
    let mut who: Vec<String> = list.body["fulfilments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["user_id"].as_str().unwrap().to_owned())
        .collect();
    who.sort();
    assert_eq!(who, ["w2", "w3"]);
    let contest = env.app.store.contest("once").await.unwrap().unwrap();
    let settled = contest.settled.expect("settled");
    assert_eq!(
        (settled.winners, settled.points_paid, settled.to_fulfil),
        (3, 100, 2)
    );
}

#[tokio::test]
async fn two_runs_at_once_and_a_repeat_pay_every_prize_once() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    three_winners(&api).await;
    let app = env.app.clone();
    let runs = e2e::concurrently(3, move |_| {
        let app = app.clone();
        async move { settle(&app, "2026-11-25T00:05:00Z").await }
    })
    .await;
    let settled_by = runs
        .iter()
        .flat_map(outcomes)
        .filter(|(_, o)| o == "settled")
        .count();
    assert!(settled_by >= 1, "{runs:?}");
    assert_paid_once(&env, &api).await;
    let snapshot = env.app.store.contest_result("once").await.unwrap().unwrap();
    // A repeat after success changes nothing.
    let again = env
        .app
        .store
        .settle_contest("once", "2026-11-25T00:09:00Z".parse().unwrap(), far())
        .await;
    assert_eq!(again.unwrap(), shared::store::SettleOutcome::AlreadySettled);
    assert_paid_once(&env, &api).await;
    assert_eq!(
        env.app.store.contest_result("once").await.unwrap().unwrap(),
        snapshot
    );
    env.assert_audit_clean().await;
}

fn far() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(60)
}

const WRITES: &[&str] = &["PutItem", "UpdateItem", "TransactWriteItems", "DeleteItem"];

#[tokio::test]
async fn a_run_stopped_after_any_write_is_finished_by_the_next() {
    // A clean run's writes: the snapshot, one ledger transaction, two fulfilments, the final mark.
    let clean_writes = 5;
    for stop_after in 1..=clean_writes {
        let env = TestEnv::new().await;
        let api = env.spawn_api().await;
        three_winners(&api).await;
        // Every write after the `stop_after`-th fails, as if the run had died right after it.
        let writes = Arc::new(AtomicUsize::new(0));
        let counter = writes.clone();
        let proxy = FaultProxy::start(
            e2e::endpoint(),
            Arc::new(move |op, _| {
                if !WRITES.contains(&op) {
                    return None;
                }
                match counter.fetch_add(1, Ordering::SeqCst) < stop_after {
                    true => None,
                    false => Some(Fault::Throttle),
                }
            }),
        )
        .await;
        let dying = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
        let outcome = dying
            .store
            .settle_contest("once", "2026-11-25T00:05:00Z".parse().unwrap(), far())
            .await;
        if stop_after < clean_writes {
            assert!(outcome.is_err(), "stopped after write {stop_after}: {outcome:?}");
        }
        let snapshot = env.app.store.contest_result("once").await.unwrap();
        // The next run (the schedule's next tick) finishes it; its snapshot is the first one.
        let report = settle(&env.app, "2026-11-25T00:06:00Z").await;
        if stop_after < clean_writes {
            assert_eq!(
                outcomes(&report),
                [("once".to_owned(), "settled".to_owned())],
                "{stop_after}"
            );
        }
        assert_paid_once(&env, &api).await;
        if let Some(snapshot) = snapshot {
            assert_eq!(
                env.app.store.contest_result("once").await.unwrap().unwrap(),
                snapshot
            );
        }
        assert!(writes.load(Ordering::SeqCst) >= stop_after);
        env.assert_audit_clean().await;
    }
}

#[tokio::test]
async fn a_stale_index_never_freezes_a_wrong_result() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut spec = solo_spec();
    spec["prizes"] = json!([{ "from": 1, "to": 2, "points": 10 }]);
    assert_eq!(put_contest(&api, "lag", &spec).await.status, 201);
    for user in ["a", "b", "c"] {
        assert_eq!(join(&api, "lag", user, SETUP).await.status, 200);
    }
    purchase(&api, "a", 90, "o-a", "2026-11-24T01:00:00Z").await;
    purchase(&api, "b", 80, "o-b", "2026-11-24T02:00:00Z").await;
    purchase(&api, "c", 10, "o-c", "2026-11-24T03:00:00Z").await;

    // The proxy answers index queries from what it saw earlier while `stale` is set.
    let stale = Arc::new(AtomicBool::new(false));
    let flag = stale.clone();
    let proxy = FaultProxy::start_matching(
        e2e::endpoint(),
        Arc::new(move |op, _, body| {
            (op == "Query" && body.contains("\"gsi2\"") && flag.load(Ordering::SeqCst))
                .then_some(Fault::Stale)
        }),
    )
    .await;
    let lagging = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let lagging_api = e2e::spawn_api(lagging.clone()).await;
    // The index as it is now: a, b on top (the same queries settlement makes for 2 prizes).
    let seen = lagging_api
        .get(
            "/v1/leaderboards/contest:lag?limit=2",
            Some(&member_token("v")),
            Some(DURING),
        )
        .await;
    assert_eq!(names(&seen.body).len(), 2);
    // Then c overtakes b; the lagging index does not show it.
    purchase(&api, "c", 85, "o-c2", "2026-11-24T04:00:00Z").await;
    stale.store(true, Ordering::SeqCst);
    let outcome = lagging
        .store
        .settle_contest("lag", "2026-11-25T00:05:00Z".parse().unwrap(), far())
        .await
        .unwrap();
    assert_eq!(outcome, shared::store::SettleOutcome::IndexBehind);
    assert!(
        env.app.store.contest_result("lag").await.unwrap().is_none(),
        "nothing frozen"
    );
    assert!(prizes(&env, "a").await.is_empty(), "nothing paid");
    // Once the index caught up, the result is the true one: a (90) and c (95).
    stale.store(false, Ordering::SeqCst);
    let outcome = lagging
        .store
        .settle_contest("lag", "2026-11-25T00:06:00Z".parse().unwrap(), far())
        .await
        .unwrap();
    assert!(
        matches!(outcome, shared::store::SettleOutcome::Settled { .. }),
        "{outcome:?}"
    );
    let result = env.app.store.contest_result("lag").await.unwrap().unwrap();
    let ids: Vec<(&str, u64)> = result
        .positions
        .iter()
        .map(|w| (w.id.as_str(), w.score))
        .collect();
    assert_eq!(ids, [("c", 95), ("a", 90)]);
    assert_eq!(prizes(&env, "c").await, [10]);
    assert!(prizes(&env, "b").await.is_empty());
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_members_of_one_team_join_and_earn_at_once() {
    let env = TestEnv::new().await;
    let api = Arc::new(env.spawn_api().await);
    let mut spec = team_spec();
    spec["team_size"] = json!(50);
    assert_eq!(put_contest(&api, "relay", &spec).await.status, 201);
    let created = create_team(&api, "t00", "Everyone", SETUP).await;
    let code = created.body["team"]["code"].as_str().unwrap().to_owned();
    // 50 more try to join a team with 49 free places, all at once: exactly 49 get in.
    let code = Arc::new(code);
    let replies = e2e::concurrently(50, |i| {
        let (api, code) = (api.clone(), code.clone());
        async move { join_team(&api, &format!("t{:02}", i + 1), &code, SETUP).await }
    })
    .await;
    assert_eq!(e2e::successes(&replies, 409, "team-full"), 49);
    let mut members = vec!["t00".to_owned()];
    members.extend(
        (0..50)
            .filter(|i| replies[*i].status == 200)
            .map(|i| format!("t{:02}", i + 1)),
    );
    // All 51 earn at once; the team's score is the sum of what its 50 members' ledgers say.
    let replies = e2e::concurrently(51, |i| {
        let api = api.clone();
        async move {
            let who = format!("t{i:02}");
            purchase(&api, &who, 10 + i as i64, &format!("o-{who}"), DURING).await;
        }
    })
    .await;
    assert_eq!(replies.len(), 51);
    let mut total = 0i64;
    for who in &members {
        let account = env
            .app
            .store
            .account(&e2e::user(who), e2e::fixed_now())
            .await
            .unwrap();
        total += account.balance;
    }
    let teams = board(&api, "contest:relay:teams", DURING).await;
    assert_eq!(names(&teams), [(1, "Everyone".to_owned(), total as u64)]);
    let members_board = board(&api, "contest:relay", DURING).await;
    let sum: u64 = members_board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["score"].as_u64().unwrap())
        .sum();
    assert!(sum <= total as u64);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn checkins_contests_count_check_ins_and_everyone_contests_need_no_join() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let week = |metric: Value| {
        let mut spec = json!({ "title": "Week", "starts_at": START, "ends_at": "2026-12-01T00:00:00Z",
                               "entry": "everyone", "prizes": [{ "from": 1, "to": 1, "points": 5 }] });
        spec.as_object_mut()
            .unwrap()
            .extend(metric.as_object().unwrap().clone());
        spec
    };
    // Check-ins of `daily`, everyone in; and purchases only, everyone in.
    let r = put_contest(&api, "habit", &week(json!({ "metric": "checkins" }))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["contest"]["spec"]["campaign"], "daily");
    let r = put_contest(
        &api,
        "shop",
        &week(json!({ "metric": "points_earned", "reasons": ["purchase"] })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let campaign = json!({ "time_zone": "Asia/Shanghai", "ladder": [10, 20], "makeup": { "cost": 5, "max_per_month": 3, "lookback_days": 7 } });
    let r = api
        .send_json(
            Method::PUT,
            "/v1/admin/checkin-campaigns/daily",
            &admin_token("ops"),
            SETUP,
            &campaign,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    env.seed_points("u-kim", 100).await;
    let checkin = |now: &'static str| {
        let api = &api;
        async move {
            let r = api
                .post(
                    "/v1/checkins",
                    &member_token("u-kim"),
                    now,
                    &json!({ "campaign_id": "daily" }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    checkin("2026-11-24T01:00:00Z").await;
    checkin("2026-11-26T01:00:00Z").await;
    // Repeats the same day, each with a fresh Idempotency-Key (the app's retry button), store
    // their answers but are no check-ins: they never count (found by the contract fuzzing).
    for key in ["again-1", "again-2", "again-3"] {
        let b = api
            .request(Method::POST, "/v1/checkins")
            .bearer_auth(member_token("u-kim"))
            .header("idempotency-key", key)
            .header("x-debug-now", "2026-11-26T01:30:00Z")
            .json(&json!({ "campaign_id": "daily" }));
        let r = api.send(b).await;
        assert_eq!(
            (r.status, &r.body["checked_in_now"]),
            (200, &json!(false)),
            "{}",
            r.body
        );
    }
    // A make-up of the 25th never counts; a purchase counts only where purchases do.
    let makeup = json!({ "campaign_id": "daily", "date": "2026-11-25" });
    let r = api
        .post(
            "/v1/checkins/makeup",
            &member_token("u-kim"),
            "2026-11-26T02:00:00Z",
            &makeup,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    purchase(&api, "u-kim", 42, "o-kim", "2026-11-26T03:00:00Z").await;
    let habit = board(&api, "contest:habit", "2026-11-26T04:00:00Z").await;
    assert_eq!(names(&habit)[0].2, 2, "two check-ins, the make-up not counted");
    let shop = board(&api, "contest:shop", "2026-11-26T04:00:00Z").await;
    assert_eq!(names(&shop)[0].2, 42, "the purchase only, no check-in points");
    let mine = api
        .get(
            "/v1/contests",
            Some(&member_token("u-kim")),
            Some("2026-11-26T04:00:00Z"),
        )
        .await;
    let scores: Vec<(String, bool, u64)> = mine.body["contests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["contest_id"].as_str().unwrap().to_owned(),
                c["joined"].as_bool().unwrap(),
                c["score"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(scores, [("habit".into(), true, 2), ("shop".into(), true, 42)]);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_run_at_its_deadline_checkpoints_and_the_next_continues() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    three_winners(&api).await;
    let now = "2026-11-25T00:05:00Z".parse().unwrap();
    // A run out of time freezes the result but pays nothing and says where it stopped.
    let outcome = env
        .app
        .store
        .settle_contest("once", now, std::time::Instant::now())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        shared::store::SettleOutcome::Checkpointed { next: 0, of: 3 }
    );
    assert!(env.app.store.contest_result("once").await.unwrap().is_some());
    assert!(prizes(&env, "w1").await.is_empty());
    let contest = env.app.store.contest("once").await.unwrap().unwrap();
    assert_eq!(contest.progress.map(|p| p.next), Some(0));
    assert!(contest.settled.is_none());
    // The schedule's next run finishes it.
    let report = settle(&env.app, "2026-11-25T00:06:00Z").await;
    assert_eq!(outcomes(&report), [("once".to_owned(), "settled".to_owned())]);
    assert_paid_once(&env, &api).await;
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_winner_who_cannot_be_paid_is_recorded_and_the_prize_does_not_move_down() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    three_winners(&api).await;
    // w1's account cannot take another earn: its lifetime total is at the largest integer.
    env.app
        .store
        .client()
        .update_item()
        .table_name(&env.table)
        .set_key(Some(shared::store::keys::account(&e2e::user("w1")).to_item()))
        .update_expression("SET lifetime_earned = :max")
        .expression_attribute_values(
            ":max",
            aws_sdk_dynamodb::types::AttributeValue::N(i64::MAX.to_string()),
        )
        .send()
        .await
        .unwrap();
    let report = settle(&env.app, "2026-11-25T00:05:00Z").await;
    assert_eq!(report["contests"][0]["outcome"], "settled", "{report}");
    assert_eq!(report["contests"][0]["totals"]["unpaid"], 1);
    assert_eq!(report["contests"][0]["totals"]["points_paid"], 0);
    assert!(prizes(&env, "w1").await.is_empty());
    // Position 4 gets nothing: the prize of position 1 does not move down.
    assert!(prizes(&env, "w4").await.is_empty());
    let results = api
        .get("/v1/admin/contests/once/results", Some(&admin_token("ops")), None)
        .await;
    assert_eq!(results.body["winners"][0]["status"], "unpaid");
    assert_eq!(results.body["unpaid"][0]["user_id"], "w1");
    let mine = api
        .get(
            "/v1/contests/once",
            Some(&member_token("w1")),
            Some("2026-11-25T01:00:00Z"),
        )
        .await;
    assert_eq!(mine.body["result"]["paid"], false);
    env.assert_audit_clean().await;
}
