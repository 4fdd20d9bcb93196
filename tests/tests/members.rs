//! Member profiles end to end (local API + DynamoDB Local): display-name rules, reserved names,
//! the board opt-out, an admin's reset, registration dates, first appearance and its backfill.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use e2e::{TestApi, TestEnv, admin_token, member_token, scoped_service_token, service_token, user};
use reqwest::Method;
use serde_json::{Value, json};
use shared::domain::ledger::{Posting, Reason};
use shared::store::keys;

const T0: &str = "2026-11-23T09:00:00+08:00";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn put_profile(api: &TestApi, who: &str, body: Value) -> e2e::Reply {
    api.send_json(Method::PUT, "/v1/me/profile", &member_token(who), T0, &body)
        .await
}

#[tokio::test]
async fn display_names_are_validated_and_shown_to_others() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mei = member_token("u-mei-8c1e42");

    let fresh = api.get("/v1/me/profile", Some(&mei), Some(T0)).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.body["display_name"], Value::Null);
    assert_eq!(
        fresh.body["public_name"], "u***42",
        "a masked id, never the raw one"
    );
    assert_eq!(fresh.body["leaderboard_visible"], true);

    let named = put_profile(
        &api,
        "u-mei-8c1e42",
        json!({ "display_name": "  Mei   小龍 🏳️‍🌈 " }),
    )
    .await;
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(named.body["display_name"], "Mei 小龍 🏳️‍🌈");
    assert_eq!(named.body["public_name"], "Mei 小龍 🏳️‍🌈");

    // 24 clusters pass, 25 do not; control and invisible characters, blanks: 422, nothing written.
    let ok = put_profile(&api, "u-mei-8c1e42", json!({ "display_name": "龍".repeat(24) })).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let before = env.item_count().await;
    for bad in [
        "龍".repeat(25),
        "Mei\u{0007}".to_owned(),
        "Mei\u{200B}".to_owned(),
        "\u{202E}ieM".to_owned(),
        "   ".to_owned(),
        "\u{3164}".to_owned(),
        String::new(),
    ] {
        let reply = put_profile(&api, "u-mei-8c1e42", json!({ "display_name": bad })).await;
        reply.assert_problem(422, "invalid-value");
    }
    assert_eq!(env.item_count().await, before, "a refused name changes nothing");
    let still = api.get("/v1/me/profile", Some(&mei), Some(T0)).await;
    assert_eq!(still.body["display_name"], "龍".repeat(24));

    // Malformed bodies: 400; wrong content-type: 415.
    put_profile(&api, "u-mei-8c1e42", json!({ "nickname": "x" }))
        .await
        .assert_problem(400, "invalid-request");
    put_profile(&api, "u-mei-8c1e42", json!({ "display_name": 7 }))
        .await
        .assert_problem(400, "invalid-request");
    put_profile(&api, "u-mei-8c1e42", json!({ "leaderboard_visible": null }))
        .await
        .assert_problem(400, "invalid-request");
    let plain = api
        .request(Method::PUT, "/v1/me/profile")
        .bearer_auth(&mei)
        .header("content-type", "text/plain")
        .body(r#"{"display_name":"x"}"#);
    api.send(plain)
        .await
        .assert_problem(415, "unsupported-media-type");

    // An absent field stays; null clears the name.
    let hidden = put_profile(&api, "u-mei-8c1e42", json!({ "leaderboard_visible": false })).await;
    assert_eq!(hidden.body["display_name"], "龍".repeat(24));
    let cleared = put_profile(&api, "u-mei-8c1e42", json!({ "display_name": null })).await;
    assert_eq!(cleared.body["display_name"], Value::Null);
    assert_eq!(cleared.body["leaderboard_visible"], false);

    // A service token has no member.
    api.get("/v1/me/profile", Some(&service_token("shop")), Some(T0))
        .await
        .assert_problem(403, "forbidden");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn opting_out_of_boards_shows_anonymous_everywhere() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let tom = member_token("tom-0001");
    let named = put_profile(
        &api,
        "tom-0001",
        json!({ "display_name": "Tom", "leaderboard_visible": false }),
    )
    .await;
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(named.body["public_name"], "anonymous");
    assert_eq!(
        named.body["display_name"], "Tom",
        "the member still sees their own name"
    );
    let home = api.get("/v1/me", Some(&tom), Some(T0)).await;
    assert_eq!(
        home.body["profile"],
        json!({ "display_name": "Tom", "public_name": "anonymous", "leaderboard_visible": false })
    );
    // The one masking function is what features call.
    let member = env.app.store.member(&user("tom-0001"), at(T0)).await.unwrap();
    assert_eq!(member.public_name(), "anonymous");
    let back = put_profile(&api, "tom-0001", json!({ "leaderboard_visible": true })).await;
    assert_eq!(back.body["public_name"], "Tom");
    // Nobody may call themselves "anonymous".
    put_profile(&api, "amy-0002", json!({ "display_name": "Anonymous" }))
        .await
        .assert_problem(422, "reserved-name");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn reserved_names_and_an_admins_reset() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let admin = admin_token("ops");
    let empty = api.get("/v1/admin/reserved-names", Some(&admin), Some(T0)).await;
    assert_eq!(
        empty.body,
        json!({ "names": [], "version": 0, "updated_at": null })
    );

    let list = json!({ "names": ["Admin", "Official", "ADMIN", " Shop Owner "] });
    let stored = api
        .send_json(Method::PUT, "/v1/admin/reserved-names", &admin, T0, &list)
        .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    assert_eq!(stored.body["names"], json!(["admin", "official", "shopowner"]));
    assert_eq!(stored.body["version"], 1);

    for name in ["admin", "ＡＤＭＩＮ", "Shop owner", "OFFICIAL"] {
        put_profile(&api, "eve-0003", json!({ "display_name": name }))
            .await
            .assert_problem(422, "reserved-name");
    }
    let fine = put_profile(&api, "eve-0003", json!({ "display_name": "Admiral" })).await;
    assert_eq!(fine.status, 200, "{}", fine.body);

    // Members cannot read or change the list; bad lists are 422.
    api.get(
        "/v1/admin/reserved-names",
        Some(&member_token("eve-0003")),
        Some(T0),
    )
    .await
    .assert_problem(403, "forbidden");
    let too_long = json!({ "names": ["x".repeat(25)] });
    api.send_json(Method::PUT, "/v1/admin/reserved-names", &admin, T0, &too_long)
        .await
        .assert_problem(422, "invalid-value");

    // An admin clears an offensive name; the member is shown masked again.
    let reset = api
        .post(
            "/v1/admin/members/eve-0003/display-name/reset",
            &admin,
            T0,
            &json!({}),
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(reset.body["user_id"], "eve-0003");
    assert_eq!(reset.body["display_name"], Value::Null);
    assert_eq!(reset.body["public_name"], "e***03");
    let seen = api
        .get("/v1/me/profile", Some(&member_token("eve-0003")), Some(T0))
        .await;
    assert_eq!(seen.body["display_name"], Value::Null);
    api.post(
        "/v1/admin/members/eve-0003/display-name/reset",
        &member_token("eve-0003"),
        T0,
        &json!({}),
    )
    .await
    .assert_problem(403, "forbidden");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_service_sets_the_registration_date() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let shop = scoped_service_token("shop", "campaign/members.write");
    // The member appeared on 1 November; the shop says they registered on 10 November (later:
    // the shop knows better).
    api.get(
        "/v1/me",
        Some(&member_token("kim-0004")),
        Some("2026-11-01T00:00:00Z"),
    )
    .await;
    let later = json!({ "registered_at": "2026-11-10T00:00:00Z" });
    let set = api
        .post("/v1/admin/members/kim-0004/registered", &shop, T0, &later)
        .await;
    assert_eq!(set.body["registered_at"], "2026-11-10T00:00:00Z", "{}", set.body);
    let body = json!({ "registered_at": "2024-02-29T10:00:00+08:00" });
    let set = api
        .post("/v1/admin/members/kim-0004/registered", &shop, T0, &body)
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["registered_at"], "2024-02-29T02:00:00Z");
    // It wins over the first appearance the member makes later.
    api.get("/v1/me", Some(&member_token("kim-0004")), Some(T0)).await;
    let profile = api
        .get("/v1/me/profile", Some(&member_token("kim-0004")), Some(T0))
        .await;
    assert_eq!(profile.body["registered_at"], "2024-02-29T02:00:00Z");

    // The points scope is not enough; members may not; the future is refused.
    api.post(
        "/v1/admin/members/kim-0004/registered",
        &service_token("shop"),
        T0,
        &body,
    )
    .await
    .assert_problem(403, "forbidden");
    api.post(
        "/v1/admin/members/kim-0004/registered",
        &member_token("kim-0004"),
        T0,
        &body,
    )
    .await
    .assert_problem(403, "forbidden");
    api.post(
        "/v1/admin/members/kim-0004/registered",
        &shop,
        T0,
        &json!({ "registered_at": "2026-11-24T09:00:00+08:00" }),
    )
    .await
    .assert_problem(422, "invalid-value");
    api.post(
        "/v1/admin/members/kim-0004/registered",
        &shop,
        T0,
        &json!({ "registered_at": "yesterday" }),
    )
    .await
    .assert_problem(400, "invalid-request");
    // An admin may set it too.
    let by_admin = api
        .post(
            "/v1/admin/members/kim-0004/registered",
            &admin_token("ops"),
            T0,
            &json!({ "registered_at": "2025-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(by_admin.body["registered_at"], "2025-01-01T00:00:00Z");
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn first_appearance_is_the_first_write_or_home_screen() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let registered = |who: &'static str| {
        let api = &api;
        async move {
            api.get("/v1/me/profile", Some(&member_token(who)), Some(T0))
                .await
                .body["registered_at"]
                .clone()
        }
    };
    // The home screen, first: recorded then, not moved by later visits.
    api.get(
        "/v1/me",
        Some(&member_token("ann-0005")),
        Some("2026-11-01T08:00:00Z"),
    )
    .await;
    api.get(
        "/v1/me",
        Some(&member_token("ann-0005")),
        Some("2026-11-05T08:00:00Z"),
    )
    .await;
    assert_eq!(registered("ann-0005").await, "2026-11-01T08:00:00Z");
    // A check-in first (its ledger transaction creates the account).
    let ci = api
        .post(
            "/v1/checkins",
            &member_token("ben-0006"),
            "2026-11-02T08:00:00Z",
            &json!({}),
        )
        .await;
    assert_eq!(ci.status, 200, "{}", ci.body);
    api.get(
        "/v1/me",
        Some(&member_token("ben-0006")),
        Some("2026-11-06T08:00:00Z"),
    )
    .await;
    assert_eq!(registered("ben-0006").await, "2026-11-02T08:00:00Z");
    // A profile write first.
    api.send_json(
        Method::PUT,
        "/v1/me/profile",
        &member_token("cy-0007"),
        "2026-11-03T08:00:00Z",
        &json!({ "display_name": "Cy" }),
    )
    .await;
    api.get(
        "/v1/me",
        Some(&member_token("cy-0007")),
        Some("2026-11-07T08:00:00Z"),
    )
    .await;
    assert_eq!(registered("cy-0007").await, "2026-11-03T08:00:00Z");
    // A grant by the shop first.
    let grant = json!({ "user_id": "dot-0008", "amount": 5, "reason": "welcome", "ref": "w1" });
    let granted = api
        .send(
            api.request(Method::POST, "/v1/admin/points/grants")
                .bearer_auth(service_token("shop"))
                .header("x-debug-now", "2026-11-04T08:00:00Z")
                .header("idempotency-key", "w1")
                .json(&grant),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(registered("dot-0008").await, "2026-11-04T08:00:00Z");
    // Reading one's profile is not an appearance.
    assert_eq!(registered("eli-0009").await, Value::Null);
    env.assert_audit_clean().await;
}

/// Removes the account's first appearance, as on an account created before it was recorded.
async fn make_legacy(env: &TestEnv, who: &str) {
    let key = keys::account(&user(who));
    env.app
        .store
        .client()
        .update_item()
        .table_name(&env.table)
        .set_key(Some(key.to_item()))
        .update_expression("REMOVE first_seen")
        .send()
        .await
        .unwrap();
}

async fn grant(env: &TestEnv, who: &str, points: i64, when: &str) {
    let posting = Posting::new(points, Reason::Grant, "seed", format!("seed#{who}#{when}"));
    env.app.store.post(&user(who), posting, at(when)).await.unwrap();
}

#[tokio::test]
async fn the_backfill_records_the_earliest_of_first_entry_and_first_checkin() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let admin = admin_token("ops");
    // A campaign whose first day pays nothing: a check-in without a ledger entry.
    let campaign = json!({ "time_zone": "Asia/Shanghai", "ladder": [0, 5] });
    api.send_json(
        Method::PUT,
        "/v1/admin/checkin-campaigns/zero",
        &admin,
        T0,
        &campaign,
    )
    .await;
    let checkin = |who: &'static str, when: &'static str| {
        let api = &api;
        async move {
            let r = api
                .post(
                    "/v1/checkins",
                    &member_token(who),
                    when,
                    &json!({ "campaign_id": "zero" }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    // fay: checked in (0 points) before her first ledger entry.
    checkin("fay-0010", "2025-03-01T08:00:00Z").await;
    grant(&env, "fay-0010", 10, "2025-04-01T08:00:00Z").await;
    // gus: only ledger entries (a check-in later).
    grant(&env, "gus-0011", 10, "2025-05-01T08:00:00Z").await;
    checkin("gus-0011", "2025-06-01T08:00:00Z").await;
    // hal: wrote his profile (first appearance on the profile) before his first entry.
    api.send_json(
        Method::PUT,
        "/v1/me/profile",
        &member_token("hal-0012"),
        "2025-01-15T08:00:00Z",
        &json!({ "display_name": "Hal" }),
    )
    .await;
    grant(&env, "hal-0012", 10, "2025-07-01T08:00:00Z").await;
    // ivy: a member since the first appearance was recorded: nothing to do.
    grant(&env, "ivy-0013", 10, "2025-08-01T08:00:00Z").await;
    for who in ["fay-0010", "gus-0011", "hal-0012"] {
        make_legacy(&env, who).await;
    }
    let registered = |who: &'static str| {
        let env = &env;
        async move {
            env.app
                .store
                .member(&user(who), at(T0))
                .await
                .unwrap()
                .registered_at()
        }
    };
    assert_eq!(
        registered("fay-0010").await,
        None,
        "a legacy account has no record yet"
    );

    // The documented command (`campaign-ops backfill-first-appearances`), on this table.
    let args = ["backfill-first-appearances", "--segments", "3"].map(String::from);
    let printed = ops::run(&ops::parse(&args).unwrap(), &env.app).await.unwrap();
    assert_eq!(
        printed, "first appearances: 4 members with ledger entries or check-ins, 2 profiles updated",
        "fay and gus; hal's profile and ivy's account already knew"
    );
    assert_eq!(registered("fay-0010").await, Some(at("2025-03-01T08:00:00Z")));
    assert_eq!(registered("gus-0011").await, Some(at("2025-05-01T08:00:00Z")));
    assert_eq!(registered("hal-0012").await, Some(at("2025-01-15T08:00:00Z")));
    assert_eq!(registered("ivy-0013").await, Some(at("2025-08-01T08:00:00Z")));
    // Safe to run again.
    let again = env.app.store.backfill_first_appearances(1).await.unwrap();
    assert_eq!((again.members, again.updated), (4, 0));
    let profile = env
        .app
        .store
        .client()
        .get_item()
        .table_name(&env.table)
        .set_key(Some(keys::profile(&user("fay-0010")).to_item()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(matches!(profile.get("first_seen"), Some(AttributeValue::S(_))));
    env.assert_audit_clean().await;
}
