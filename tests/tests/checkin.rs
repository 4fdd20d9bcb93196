//! Check-ins end to end: real HTTP through the local API, DynamoDB Local, the dev clock.

use e2e::{Reply, TestApi, TestEnv, admin_token, member_token, user};
use reqwest::Method;
use serde_json::{Value, json};

async fn check_in(api: &TestApi, token: &str, now: &str) -> Reply {
    api.post("/v1/checkins", token, now, &json!({})).await
}

async fn make_up(api: &TestApi, token: &str, now: &str, date: &str) -> Reply {
    api.post("/v1/checkins/makeup", token, now, &json!({ "date": date }))
        .await
}

async fn ledger(api: &TestApi, token: &str) -> Vec<Value> {
    let reply = api.get("/v1/points/ledger?limit=100", Some(token), None).await;
    assert_eq!(reply.status, 200);
    reply.body["entries"].as_array().unwrap().clone()
}

/// 09:00 in Shanghai on 2026-11-<day>.
fn nov(day: u32) -> String {
    format!("2026-11-{day:02}T09:00:00+08:00")
}

#[tokio::test]
async fn a_ten_day_story_with_a_missed_day_a_makeup_and_the_day_seven_milestone() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let alice = member_token("alice");
    let mut paid = Vec::new();
    for day in [1, 2, 3, 5, 6] {
        let r = check_in(&api, &alice, &nov(day)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["checked_in_now"], true);
        paid.push(r.body["points_awarded"].as_i64().unwrap());
    }
    assert_eq!(paid, vec![5, 5, 10, 5, 5], "day 5 starts a new run");
    // Day 4 was missed; make it up on day 6: -20, runs 1..3 and 5..6 join into 1..6.
    let m = make_up(&api, &alice, &nov(6), "2026-11-04").await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(m.body["points_charged"], 20);
    assert_eq!(m.body["current_streak"], 6);
    assert_eq!(m.body["milestones"], json!([]));
    assert_eq!(m.body["makeups_left_this_month"], 1);
    assert_eq!(m.body["balance"], 10);
    // Day 7: position 7 of the ladder (30) and the 7-day milestone (+50).
    let d7 = check_in(&api, &alice, &nov(7)).await;
    assert_eq!(d7.body["points_awarded"], 30);
    assert_eq!(d7.body["milestone_bonus"], json!({ "days": 7, "points": 50 }));
    assert_eq!(d7.body["current_streak"], 7);
    assert_eq!(d7.body["tomorrow_reward"], 5, "the ladder cycles");
    // The app sends day 7 again (say its answer was lost): the same step and milestone, not paid.
    let d7_again = check_in(&api, &alice, "2026-11-07T21:00:00+08:00").await;
    assert_eq!(
        (
            d7_again.body["checked_in_now"].clone(),
            d7_again.body["points_awarded"].clone()
        ),
        (json!(false), json!(30))
    );
    assert_eq!(
        d7_again.body["milestone_bonus"],
        json!({ "days": 7, "points": 50 })
    );
    assert_eq!(d7_again.body["balance"], d7.body["balance"]);
    for (day, reward) in [(8, 5), (9, 5), (10, 10)] {
        let r = check_in(&api, &alice, &nov(day)).await;
        assert_eq!(r.body["points_awarded"], reward, "day {day}");
        assert_eq!(r.body["milestone_bonus"], Value::Null);
    }
    // A repeat on day 10 pays nothing, says so, and answers what day 10's check-in credited.
    let again = check_in(&api, &alice, "2026-11-10T23:59:59+08:00").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["checked_in_now"], false);
    assert_eq!(again.body["points_awarded"], 10);
    assert_eq!(again.body["milestone_bonus"], Value::Null);
    assert_eq!(again.body["current_streak"], 10);
    assert_eq!(again.body["balance"], 110);

    // The ledger tells the whole story: 9 check-ins, 1 make-up, 1 milestone.
    let entries = ledger(&api, &alice).await;
    let by_reason = |r: &str| entries.iter().filter(|e| e["reason"] == r).count();
    assert_eq!(
        (by_reason("checkin"), by_reason("makeup"), by_reason("milestone")),
        (9, 1, 1)
    );
    let sum: i64 = entries.iter().map(|e| e["delta"].as_i64().unwrap()).sum();
    assert_eq!(sum, 110);
    assert_eq!(entries[0]["balance_after"], 110);
    let keys: Vec<&str> = entries
        .iter()
        .map(|e| e["business_key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"checkin#daily#alice#2026-11-07"));
    assert!(keys.contains(&"makeup#daily#alice#2026-11-04"));
    assert!(keys.contains(&"milestone#daily#alice#2026-11-01#7"));
    let balance = api.get("/v1/points", Some(&alice), None).await;
    assert_eq!(
        (
            balance.body["balance"].clone(),
            balance.body["lifetime_earned"].clone()
        ),
        (json!(110), json!(130))
    );
    assert_eq!(
        balance.body["next_expiry"],
        json!({ "date": "2027-11-30", "points": 110 })
    );

    // The month view flags the made-up day.
    let month = api
        .get("/v1/checkins?month=2026-11", Some(&alice), Some(&nov(10)))
        .await;
    assert_eq!(month.status, 200, "{}", month.body);
    let days = month.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 10);
    let made_up: Vec<&Value> = days.iter().filter(|d| d["made_up"] == true).collect();
    assert_eq!(made_up.len(), 1);
    assert_eq!(made_up[0]["date"], "2026-11-04");
    assert_eq!(month.body["current_streak"], 10);
    assert_eq!(month.body["best_streak"], 10);
    assert_eq!(month.body["makeups_left_this_month"], 1);
    assert_eq!(
        month.body["today"],
        json!({ "date": "2026-11-10", "checked_in": true, "next_reward": 10 })
    );
    // Without ?month= it is the campaign's current month; on Dec 1 (Shanghai) that is December.
    let dec = api
        .get("/v1/checkins", Some(&alice), Some("2026-11-30T16:30:00Z"))
        .await;
    assert_eq!(dec.body["month"], "2026-12");
    assert_eq!(dec.body["days"], json!([]));
    assert_eq!(dec.body["current_streak"], 0);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn local_midnight_is_the_day_boundary() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let bob = member_token("bob");
    let late = check_in(&api, &bob, "2026-11-23T23:59:59+08:00").await;
    assert_eq!(late.body["date"], "2026-11-23");
    let midnight = check_in(&api, &bob, "2026-11-24T00:00:00+08:00").await;
    assert_eq!(midnight.body["date"], "2026-11-24");
    assert_eq!(midnight.body["checked_in_now"], true);
    assert_eq!(midnight.body["current_streak"], 2);
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_checkins_pay_once() {
    let env = TestEnv::new().await;
    let api = std::sync::Arc::new(env.spawn_api().await);
    let carol = member_token("carol");
    let replies = e2e::concurrently(50, |_| {
        let api = api.clone();
        let carol = carol.clone();
        async move { check_in(&api, &carol, &nov(23)).await }
    })
    .await;
    let mut fresh = 0;
    for r in replies {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["current_streak"], 1);
        // Every answer says what today's check-in credited; one of them made it.
        assert_eq!(r.body["points_awarded"], 5, "{}", r.body);
        if r.body["checked_in_now"] == true {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one request checks in");
    let entries = ledger(&api, &carol).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        env.app
            .store
            .account(&user("carol"), e2e::fixed_now())
            .await
            .unwrap()
            .balance,
        5
    );
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_makeups_of_one_date_charge_once() {
    let env = TestEnv::new().await;
    let api = std::sync::Arc::new(env.spawn_api().await);
    let dave = member_token("dave");
    env.seed_points("dave", 100).await;
    check_in(&api, &dave, &nov(20)).await;
    check_in(&api, &dave, &nov(22)).await;
    let replies = e2e::concurrently(20, |_| {
        let api = api.clone();
        let dave = dave.clone();
        async move { make_up(&api, &dave, &nov(22), "2026-11-21").await }
    })
    .await;
    let ok = e2e::successes(&replies, 409, "not-missed");
    assert_eq!(ok, 1);
    let entries = ledger(&api, &dave).await;
    assert_eq!(entries.iter().filter(|e| e["reason"] == "makeup").count(), 1);
    // 100 seed + 5 + 5 (days 20, 22 as separate runs) - 20 = 90.
    assert_eq!(
        env.app
            .store
            .account(&user("dave"), e2e::fixed_now())
            .await
            .unwrap()
            .balance,
        90
    );
    let month = api
        .get("/v1/checkins?month=2026-11", Some(&dave), Some(&nov(22)))
        .await;
    assert_eq!(month.body["current_streak"], 3);
    assert_eq!(month.body["makeups_left_this_month"], 1);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn makeup_refusals_change_nothing() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let erin = member_token("erin");
    check_in(&api, &erin, &nov(10)).await;
    check_in(&api, &erin, &nov(14)).await;
    let before = env.item_count().await;
    make_up(&api, &erin, &nov(14), "2026-11-12")
        .await
        .assert_problem(409, "insufficient-points");
    make_up(&api, &erin, &nov(14), "2026-11-14")
        .await
        .assert_problem(422, "outside-makeup-window");
    make_up(&api, &erin, &nov(14), "2026-11-06")
        .await
        .assert_problem(422, "outside-makeup-window");
    make_up(&api, &erin, &nov(14), "2026-11-10")
        .await
        .assert_problem(409, "not-missed");
    make_up(&api, &erin, &nov(14), "2026-11-31")
        .await
        .assert_problem(422, "invalid-value");
    make_up(&api, &erin, &nov(14), "yesterday")
        .await
        .assert_problem(422, "invalid-value");
    api.post(
        "/v1/checkins/makeup",
        &erin,
        &nov(14),
        &json!({ "date": 20261112 }),
    )
    .await
    .assert_problem(400, "invalid-request");
    api.post("/v1/checkins/makeup", &erin, &nov(14), &json!({}))
        .await
        .assert_problem(400, "invalid-request");
    assert_eq!(env.item_count().await, before, "nothing written");
    // With points, two make-ups pass and the third hits the monthly limit.
    env.seed_points("erin", 100).await;
    assert_eq!(make_up(&api, &erin, &nov(14), "2026-11-12").await.status, 200);
    assert_eq!(make_up(&api, &erin, &nov(14), "2026-11-11").await.status, 200);
    let before = env.item_count().await;
    make_up(&api, &erin, &nov(14), "2026-11-13")
        .await
        .assert_problem(409, "makeup-limit-reached");
    assert_eq!(env.item_count().await, before);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn campaigns_are_admin_configured() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let admin = admin_token("ops");
    let member = member_token("frank");
    let winter = json!({
        "time_zone": "America/New_York",
        "ladder": [10, 20],
        "after_ladder": "hold_last",
        "milestones": [{ "days": 2, "points": 7 }],
        "makeup": { "lookback_days": 3, "max_per_month": 1, "cost": 30 },
        "start_date": "2026-11-01",
        "end_date": "2027-02-28"
    });
    let put = |token: String, body: Value| {
        let api = &api;
        async move {
            api.send_json(
                Method::PUT,
                "/v1/admin/checkin-campaigns/winter",
                &token,
                &nov(1),
                &body,
            )
            .await
        }
    };
    put(member.clone(), winter.clone())
        .await
        .assert_problem(403, "forbidden");
    api.get("/v1/admin/checkin-campaigns/daily", Some(&member), None)
        .await
        .assert_problem(403, "forbidden");
    let mut bad = winter.clone();
    bad["time_zone"] = json!("Mars/Olympus");
    put(admin.clone(), bad).await.assert_problem(422, "invalid-value");
    let mut bad = winter.clone();
    bad["ladder"] = json!([]);
    put(admin.clone(), bad).await.assert_problem(422, "invalid-value");
    let mut bad = winter.clone();
    bad["bonus"] = json!(1);
    put(admin.clone(), bad)
        .await
        .assert_problem(400, "invalid-request");
    let mut bad = winter.clone();
    bad["ladder"] = json!("10,20");
    put(admin.clone(), bad)
        .await
        .assert_problem(400, "invalid-request");
    let mut bad = winter.clone();
    bad["makeup"]["lookback_days"] = json!(-1);
    put(admin.clone(), bad).await.assert_problem(422, "invalid-value");
    let mut bad = winter.clone();
    bad["milestones"][0]["days"] = json!(-5);
    put(admin.clone(), bad).await.assert_problem(422, "invalid-value");
    let text = api
        .send(
            api.request(Method::PUT, "/v1/admin/checkin-campaigns/winter")
                .bearer_auth(&admin)
                .body(winter.to_string()),
        )
        .await;
    text.assert_problem(415, "unsupported-media-type");
    let mut huge = winter.clone();
    huge["ladder"] = json!(vec![1; 9000]);
    put(admin.clone(), huge)
        .await
        .assert_problem(413, "payload-too-large");
    let raw = api
        .send(
            api.request(Method::PUT, "/v1/admin/checkin-campaigns/winter")
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{\"time_zone\": "),
        )
        .await;
    raw.assert_problem(400, "malformed-json");
    api.get("/v1/admin/checkin-campaigns/winter", Some(&admin), None)
        .await
        .assert_problem(404, "not-found");
    api.post(
        "/v1/checkins",
        &member,
        &nov(2),
        &json!({ "campaign_id": "winter" }),
    )
    .await
    .assert_problem(404, "not-found");
    assert_eq!(env.item_count().await, 0, "refusals write nothing");

    let ok = put(admin.clone(), winter.clone()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let got = api
        .get("/v1/admin/checkin-campaigns/winter", Some(&admin), None)
        .await;
    assert_eq!(got.body["campaign_id"], "winter");
    assert_eq!(got.body["ladder"], json!([10, 20]));
    let daily = api
        .get("/v1/admin/checkin-campaigns/daily", Some(&admin), None)
        .await;
    assert_eq!(
        daily.body["ladder"],
        json!([5, 5, 10, 10, 15, 15, 30]),
        "the built-in campaign"
    );

    // New York days, hold_last ladder, the 2-day milestone.
    let first = api
        .post(
            "/v1/checkins",
            &member,
            "2026-11-02T23:30:00-05:00",
            &json!({ "campaign_id": "winter" }),
        )
        .await;
    assert_eq!(
        (first.body["date"].clone(), first.body["points_awarded"].clone()),
        (json!("2026-11-02"), json!(10))
    );
    let second = api
        .post(
            "/v1/checkins",
            &member,
            "2026-11-03T00:30:00-05:00",
            &json!({ "campaign_id": "winter" }),
        )
        .await;
    assert_eq!(second.body["points_awarded"], 20);
    assert_eq!(second.body["milestone_bonus"], json!({ "days": 2, "points": 7 }));
    let third = api
        .post(
            "/v1/checkins",
            &member,
            "2026-11-04T12:00:00-05:00",
            &json!({ "campaign_id": "winter" }),
        )
        .await;
    assert_eq!(third.body["points_awarded"], 20, "hold_last");
    // After the end date the campaign refuses check-ins.
    api.post(
        "/v1/checkins",
        &member,
        "2027-03-01T12:00:00-05:00",
        &json!({ "campaign_id": "winter" }),
    )
    .await
    .assert_problem(409, "campaign-not-active");
    env.assert_audit_clean().await;
}
