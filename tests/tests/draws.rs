//! Lucky draws against DynamoDB Local: one charge per `Idempotency-Key` under 50 concurrent
//! replays, the daily and total limits at their boundary (tier extra spins, share bonuses, the
//! local midnight), coupon codes unique per winner, lost answers, and both verifiers re-deriving
//! every outcome. The 1,000-spin rushes are in `draw_rush.rs`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use e2e::TestEnv;
use e2e::fault::{Fault, FaultProxy};
use shared::domain::DomainError;
use shared::domain::draws::{DrawSpec, Payment, Prize, PrizeKind};
use shared::domain::ledger::Reason;
use shared::store::IdempotentCall;

mod draws_support;
use draws_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_replays_of_one_key_charge_once_and_answer_the_same() {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    store.put_draw("rush", rush(), at(SETUP)).await.unwrap();
    env.seed_points("ann", 100).await;
    let answers = e2e::concurrently(50, |_| {
        let store = store.clone();
        async move {
            store
                .spin(&e2e::user("ann"), "rush", "", &call("ann", "tap"), at(SPIN))
                .await
                .unwrap()
        }
    })
    .await;
    assert!(answers.iter().all(|a| *a == answers[0]), "one result");
    let entries = store
        .ledger_page(&e2e::user("ann"), 50, None)
        .await
        .unwrap()
        .entries;
    let costs = entries.iter().filter(|e| e.reason == Reason::DrawSpin).count();
    assert_eq!(costs, 1, "one charge");
    let page = store.my_spins(&e2e::user("ann"), "rush", 10, None).await.unwrap();
    assert_eq!(page.spins.len(), 1);
    // The same key with another request is refused, and changes nothing.
    let other = IdempotentCall {
        request_hash: "something else".into(),
        ..call("ann", "tap")
    };
    let err = store
        .spin(&e2e::user("ann"), "rush", "", &other, at(SPIN))
        .await
        .unwrap_err();
    assert!(
        matches!(err, shared::Error::Domain(DomainError::IdempotencyKeyReused)),
        "{err}"
    );
    env.assert_audit_clean().await;
}

/// One free spin a day, 3 a day in all, 4 in total; sharing adds one free spin once a day.
fn limited() -> DrawSpec {
    DrawSpec {
        title: "Daily".into(),
        description: String::new(),
        starts_at: at("2026-11-24T00:00:00Z"),
        ends_at: at("2026-11-30T00:00:00Z"),
        cost: 10,
        free_per_day: 1,
        daily_limit: 3,
        total_limit: Some(4),
        prizes: vec![prize("thanks", PrizeKind::Nothing, 1)],
        consolation: "thanks".into(),
        pity: None,
        share_bonus: 1,
    }
}

#[tokio::test]
async fn the_limits_hold_at_their_boundary_across_the_local_midnight() {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    store.put_draw("rush", limited(), at(SETUP)).await.unwrap();
    env.seed_points("ann", 100).await;
    // 2026-11-24 in Shanghai runs from 2026-11-23T16:00Z to 2026-11-24T16:00Z.
    let day1 = at("2026-11-24T15:00:00Z");
    let first = spin(&store, "ann", "1", day1).await.unwrap();
    assert_eq!(first.spin.payment, Payment::Free);
    assert_eq!((first.spins_left_today, first.free_spins_left_today), (2, 0));
    // Sharing gives one more free spin, once a day.
    let after_share = store.share_draw(&e2e::user("ann"), "rush", day1).await.unwrap();
    assert_eq!(after_share.free_spins_left_today, 1);
    let again = store
        .share_draw(&e2e::user("ann"), "rush", day1)
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        shared::Error::Domain(DomainError::AlreadySharedToday)
    ));
    assert_eq!(
        spin(&store, "ann", "2", day1).await.unwrap().spin.payment,
        Payment::Free
    );
    let third = spin(&store, "ann", "3", day1).await.unwrap();
    assert_eq!(
        (third.spin.payment, third.spin.cost, third.balance),
        (Payment::Paid, 10, 90)
    );
    assert_eq!(third.spins_left_today, 0);
    // The daily limit, at 23:59:59 local; the refusal changes nothing.
    let before = env.item_count().await;
    let err = spin(&store, "ann", "4", at("2026-11-24T15:59:59Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            shared::Error::Domain(DomainError::DrawLimit {
                which: "daily",
                limit: 3
            })
        ),
        "{err}"
    );
    assert_eq!(env.item_count().await, before);
    // Local midnight: a new day, a new free spin; the 4th spin is the last in all.
    let day2 = at("2026-11-24T16:00:00Z");
    let fourth = spin(&store, "ann", "4", day2).await.unwrap();
    assert_eq!((fourth.spin.spin, fourth.spin.payment), (4, Payment::Free));
    assert_eq!(fourth.spins_left_today, 0);
    let err = spin(&store, "ann", "5", day2).await.unwrap_err();
    assert!(
        matches!(
            err,
            shared::Error::Domain(DomainError::DrawLimit {
                which: "total",
                limit: 4
            })
        ),
        "{err}"
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_tier_with_extra_spins_gets_them_free_each_day() {
    use shared::domain::tiers::{TierConfig, TierDef};
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    let tier = |name: &str, threshold, extra_daily_spins| TierDef {
        name: name.into(),
        threshold,
        multiplier_bps: 10_000,
        extra_daily_spins,
        max_members: None,
    };
    store
        .put_tiers(
            TierConfig {
                tiers: vec![tier("New", 0, 0), tier("Gold", 100, 2)],
            },
            at(SETUP),
        )
        .await
        .unwrap();
    store.put_draw("rush", limited(), at(SETUP)).await.unwrap();
    env.seed_points("gold", 100).await;
    env.seed_points("new", 50).await;
    let day = at("2026-11-24T04:00:00Z");
    let gold = spin(&store, "gold", "1", day).await.unwrap();
    let new = spin(&store, "new", "1", day).await.unwrap();
    // Gold: 1 + 2 extra free spins, capped by the daily limit of 3.
    assert_eq!(
        (gold.spin.payment, gold.free_spins_left_today),
        (Payment::Free, 2)
    );
    assert_eq!((new.spin.payment, new.free_spins_left_today), (Payment::Free, 0));
    let gold3 = spin(&store, "gold", "3", day).await;
    let gold2 = spin(&store, "gold", "2", day).await.unwrap();
    assert_eq!(gold2.spin.payment, Payment::Free);
    assert_eq!(gold3.unwrap().spin.payment, Payment::Free);
    assert_eq!(store.account(&e2e::user("gold"), day).await.unwrap().balance, 100);
    let new2 = spin(&store, "new", "2", day).await.unwrap();
    assert_eq!((new2.spin.payment, new2.balance), (Payment::Paid, 40));
    env.assert_audit_clean().await;
}

fn coupons() -> DrawSpec {
    DrawSpec {
        title: "Coupons".into(),
        description: String::new(),
        starts_at: at("2026-11-24T00:00:00Z"),
        ends_at: at("2026-11-30T00:00:00Z"),
        cost: 0,
        free_per_day: 0,
        daily_limit: 5,
        total_limit: None,
        prizes: vec![
            Prize {
                splits: Some(3),
                ..prize("coupon", PrizeKind::Coupon, 1)
            },
            prize("thanks", PrizeKind::Nothing, 0),
        ],
        consolation: "thanks".into(),
        pity: None,
        share_bonus: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_winners_never_get_the_same_code() {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    store.put_draw("rush", coupons(), at(SETUP)).await.unwrap();
    // 60 codes in two uploads (and a repeat of the first, which adds nothing).
    let first: Vec<String> = (0..45).map(|i| format!("SPRING-{i:03}")).collect();
    let second: Vec<String> = (45..60).map(|i| format!("SPRING-{i:03}")).collect();
    let up = store.upload_codes("rush", "coupon", first.clone()).await.unwrap();
    assert_eq!((up.added, up.already, up.total), (45, 0, 45));
    let up = store.upload_codes("rush", "coupon", first.clone()).await.unwrap();
    assert_eq!((up.added, up.already, up.total), (0, 45, 45));
    store.upload_codes("rush", "coupon", second).await.unwrap();
    // A code is unique across draws.
    let mut other = coupons();
    other.title = "Other".into();
    store.put_draw("other", other, at(SETUP)).await.unwrap();
    let taken = store
        .upload_codes("other", "coupon", vec!["NEW-1".into(), "SPRING-001".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(taken, shared::Error::Domain(DomainError::CouponCodeTaken(_))),
        "{taken}"
    );
    // 80 members spin at once: 60 get a code, each a different one; 20 get the consolation.
    let answers = e2e::concurrently(80, |i| {
        let store = store.clone();
        async move { spin(&store, &format!("m{i}"), "tap", at(SPIN)).await.unwrap() }
    })
    .await;
    let codes: Vec<String> = answers.iter().filter_map(|a| a.spin.code.clone()).collect();
    assert_eq!(codes.len(), 60);
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 60, "no code twice");
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.spin.prize.prize_id == "thanks")
            .count(),
        20
    );
    // The shop looks a code up and redeems it once.
    let (winner, code) = answers
        .iter()
        .enumerate()
        .find_map(|(i, a)| a.spin.code.clone().map(|c| (format!("m{i}"), c)))
        .unwrap();
    let coupon = store.coupon(&code).await.unwrap();
    assert_eq!(
        (coupon.winner.as_deref(), coupon.redeemed),
        (Some(winner.as_str()), false)
    );
    store
        .redeem_coupon(&code, "service:shop", at(SPIN))
        .await
        .unwrap();
    let again = store
        .redeem_coupon(&code, "service:shop", at(SPIN))
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        shared::Error::Domain(DomainError::CouponRedeemed)
    ));
    let unwon = store
        .redeem_coupon("NEW-1", "service:shop", at(SPIN))
        .await
        .unwrap_err();
    assert!(
        matches!(unwon, shared::Error::Domain(DomainError::NotFound(_))),
        "{unwon}"
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn every_spin_is_reproduced_by_the_verifier_and_a_tampered_one_is_not() {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    let mut spec = rush();
    spec.pity = Some(shared::domain::draws::Pity { after: 3 });
    spec.prizes[0].stock = Some(2);
    spec.daily_limit = 40;
    store.put_draw("rush", spec, at(SETUP)).await.unwrap();
    env.seed_points("ann", 1000).await;
    for i in 0..30 {
        spin(&store, "ann", &format!("t{i}"), at(SPIN)).await.unwrap();
    }
    let page = store
        .my_spins(&e2e::user("ann"), "rush", 100, None)
        .await
        .unwrap();
    let view = store
        .draw_view(&e2e::user("ann"), "rush", at(SPIN))
        .await
        .unwrap();
    let reveal = store.reveal("rush", at("2026-11-30T00:00:00Z")).await.unwrap();
    let spins = serde_json::to_value(&page.spins).unwrap();
    let odds = serde_json::to_value(&view).unwrap();
    let reveal = serde_json::to_value(&reveal).unwrap();
    let why: BTreeMap<String, usize> = page.spins.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(format!("{:?}", s.proof.why)).or_default() += 1;
        m
    });
    assert!(
        why.contains_key("Pity") || why.contains_key("OutOfStock"),
        "{why:?}"
    );
    draw_verify::verify(&reveal, &odds, "ann", &spins).unwrap();
    let mut tampered = spins.clone();
    let other = if tampered[3]["prize"]["prize_id"] == "points" {
        "thanks"
    } else {
        "points"
    };
    tampered[3]["prize"]["prize_id"] = other.into();
    tampered[3]["proof"]["drawn"] = other.into();
    tampered[3]["proof"]["why"] = "drawn".into();
    assert!(draw_verify::verify(&reveal, &odds, "ann", &tampered).is_err());
    let mut wrong_seed = reveal.clone();
    wrong_seed["server_seed"] = "00".repeat(32).into();
    assert!(draw_verify::verify(&wrong_seed, &odds, "ann", &spins).is_err());
    env.assert_audit_clean().await;
}

/// The whole story through the local API with the dev clock: create, spin free, run out of
/// free spins, pay with points, share for a bonus, hit the daily limit, a stock-out falling back
/// to the consolation, a coupon looked up and redeemed by the shop, the end, the reveal, and
/// both verifiers re-deriving a member's history (and refusing a tampered one).
mod story {
    use super::*;
    use e2e::{TestApi, admin_token, member_token, scoped_service_token};
    use serde_json::{Value, json};

    const ADMIN: &str = "2026-11-23T00:00:00Z";
    const DAY1: &str = "2026-11-24T02:00:00Z";
    const DAY2: &str = "2026-11-25T02:00:00Z";
    const AFTER: &str = "2026-11-27T00:00:00Z";

    async fn spin(api: &TestApi, who: &str, key: &str, now: &str, body: Value) -> e2e::Reply {
        let builder = api
            .request(reqwest::Method::POST, "/v1/draws/spring/spins")
            .bearer_auth(member_token(who))
            .header("x-debug-now", now)
            .header("idempotency-key", key)
            .json(&body);
        api.send(builder).await
    }

    fn spring() -> Value {
        json!({
            "title": "Spring lottery",
            "starts_at": "2026-11-24T00:00:00Z",
            "ends_at": "2026-11-26T00:00:00Z",
            "cost": 20,
            "free_per_day": 1,
            "daily_limit": 3,
            "prizes": [
                {"prize_id": "phone", "name": "Phone", "kind": "physical", "weight": 60, "stock": 1, "rare": true},
                {"prize_id": "voucher", "name": "10 yuan off", "kind": "coupon", "weight": 15, "splits": 2},
                {"prize_id": "points", "name": "10 points", "kind": "points", "value": 10, "weight": 10},
                {"prize_id": "thanks", "name": "Thanks", "kind": "nothing", "weight": 15}
            ],
            "consolation": "thanks",
            "pity": {"after": 4}
        })
    }

    #[tokio::test]
    async fn a_draw_from_creation_to_verified_reveal_through_the_api() {
        let env = TestEnv::new().await;
        let api = env.spawn_api().await;
        let admin = admin_token("boss");
        let put = api
            .send_json(
                reqwest::Method::PUT,
                "/v1/admin/draws/spring",
                &admin,
                ADMIN,
                &spring(),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.body);
        let commitment = put.body["commitment"].as_str().unwrap().to_owned();
        assert_eq!(put.body["status"], "upcoming");
        let codes = json!({"codes": ["SPRING-A", "SPRING-B", "SPRING-C"]});
        let up = api
            .post(
                "/v1/admin/draws/spring/prizes/voucher/codes",
                &admin,
                ADMIN,
                &codes,
            )
            .await;
        assert_eq!(
            (up.status, up.body["added"].as_u64()),
            (200, Some(3)),
            "{}",
            up.body
        );
        // Members see the odds and the commitment, never the seed.
        let view = api
            .get("/v1/draws/spring", Some(&member_token("ann")), Some(DAY1))
            .await;
        assert_eq!(view.status, 200);
        assert_eq!(view.body["commitment"], commitment.as_str());
        assert_eq!(view.body["prizes"][0]["probability"], "0.600000");
        assert_eq!(
            (
                view.body["spins_left_today"].as_u64(),
                view.body["free_spins_left_today"].as_u64()
            ),
            (Some(3), Some(1))
        );
        assert!(
            !view.body.to_string().contains("seed\":"),
            "no seed before the end"
        );
        // Before the start: not open.
        spin(&api, "ann", "early", ADMIN, json!({}))
            .await
            .assert_problem(409, "draw-not-open");
        // A free spin; the same key answers the same.
        let first = spin(&api, "ann", "k1", DAY1, json!({"client_seed": "lucky ann"})).await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["spin"]["payment"], "free");
        let again = spin(&api, "ann", "k1", DAY1, json!({"client_seed": "lucky ann"})).await;
        assert_eq!(again.body, first.body);
        spin(&api, "ann", "k1", DAY1, json!({"client_seed": "other"}))
            .await
            .assert_problem(409, "idempotency-key-reused");
        // Out of free spins: the next one costs 20 points she does not have (her free spin won
        // 10 at most).
        spin(&api, "ann", "k2", DAY1, json!({}))
            .await
            .assert_problem(409, "insufficient-points");
        env.seed_points("ann", 100).await;
        let paid = spin(&api, "ann", "k2", DAY1, json!({})).await;
        assert_eq!(
            (
                paid.body["spin"]["payment"].as_str(),
                paid.body["spin"]["cost"].as_i64()
            ),
            (Some("paid"), Some(20))
        );
        // Sharing gives one free spin, once a day.
        let share = api
            .post("/v1/draws/spring/shares", &member_token("ann"), DAY1, &json!({}))
            .await;
        assert_eq!(share.body["free_spins_left_today"], 1, "{}", share.body);
        api.post("/v1/draws/spring/shares", &member_token("ann"), DAY1, &json!({}))
            .await
            .assert_problem(429, "share-limit-reached");
        let bonus = spin(&api, "ann", "k3", DAY1, json!({})).await;
        assert_eq!(bonus.body["spin"]["payment"], "free");
        assert_eq!(bonus.body["spins_left_today"], 0);
        spin(&api, "ann", "k4", DAY1, json!({}))
            .await
            .assert_problem(429, "spin-limit-reached");
        // The home screen lists the draw with her spins left.
        let me = api.get("/v1/me", Some(&member_token("ann")), Some(DAY1)).await;
        assert_eq!(me.body["draws"][0]["draw_id"], "spring", "{}", me.body);
        assert_eq!(me.body["draws"][0]["spins_left_today"], 0);
        // Others spin (free, then paid) until the phone has run out and a drawn phone falls back.
        let mut fell_back = false;
        let mut voucher = None;
        'members: for m in 0..15 {
            let who = format!("m{m}");
            env.seed_points(&who, 100).await;
            for k in 0..3 {
                let reply = spin(&api, &who, &format!("k{k}"), DAY2, json!({})).await;
                assert_eq!(reply.status, 200, "{}", reply.body);
                let s = &reply.body["spin"];
                if s["proof"]["why"] == "out_of_stock" && s["proof"]["drawn"] == "phone" {
                    assert_eq!(s["prize"]["prize_id"], "thanks");
                    assert_eq!(s["proof"]["out_of_stock"], json!(["phone"]));
                    fell_back = true;
                }
                if let Some(code) = s["code"].as_str() {
                    voucher = Some(code.to_owned());
                }
                if fell_back && voucher.is_some() {
                    break 'members;
                }
            }
        }
        assert!(
            fell_back,
            "a drawn phone fell back to the consolation once it ran out"
        );
        // The phone's winner is listed to ship.
        let ship = api
            .get(
                "/v1/admin/fulfilments?source=draw:spring&status=to_fulfil",
                Some(&admin),
                Some(DAY2),
            )
            .await;
        assert_eq!(
            ship.body["fulfilments"].as_array().unwrap().len(),
            1,
            "{}",
            ship.body
        );
        // The shop looks the coupon up and redeems it once.
        let shop = scoped_service_token("shop", draws::COUPONS_SCOPE);
        if let Some(code) = voucher {
            let coupon = api
                .get(&format!("/v1/admin/coupons/{code}"), Some(&shop), Some(DAY2))
                .await;
            assert_eq!(
                (coupon.status, coupon.body["redeemed"].as_bool()),
                (200, Some(false)),
                "{}",
                coupon.body
            );
            let path = format!("/v1/admin/coupons/{code}/redeem");
            assert_eq!(api.post(&path, &shop, DAY2, &json!({})).await.status, 200);
            api.post(&path, &shop, DAY2, &json!({}))
                .await
                .assert_problem(409, "coupon-redeemed");
        }
        api.get(
            "/v1/admin/coupons/SPRING-A",
            Some(&member_token("ann")),
            Some(DAY2),
        )
        .await
        .assert_problem(403, "forbidden");
        // The reveal waits for the end.
        api.get("/v1/draws/spring/reveal", Some(&member_token("ann")), Some(DAY2))
            .await
            .assert_problem(409, "draw-not-ended");
        let reveal = api
            .get("/v1/draws/spring/reveal", Some(&member_token("ann")), Some(AFTER))
            .await;
        assert_eq!(reveal.status, 200);
        assert!(reveal.body["ran_out"]["phone"].is_string(), "{}", reveal.body);
        // Ann's history, page by page, as the app would fetch it.
        let mut spins = vec![];
        let mut path = "/v1/draws/spring/spins?limit=2".to_owned();
        loop {
            let page = api.get(&path, Some(&member_token("ann")), Some(AFTER)).await;
            spins.extend(page.body["spins"].as_array().unwrap().iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/draws/spring/spins?limit=2&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(spins.len(), 3);
        let odds = api
            .get("/v1/draws/spring", Some(&member_token("ann")), Some(AFTER))
            .await
            .body;
        let dir = std::env::temp_dir().join(format!("draw-story-{}", env.table));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, value: &Value| {
            let path = dir.join(name);
            std::fs::write(&path, value.to_string()).unwrap();
            path.to_string_lossy().into_owned()
        };
        let files = [
            write("reveal.json", &reveal.body),
            write("draw.json", &odds),
            write("spins.json", &json!({"spins": spins})),
        ];
        let mut tampered = spins.clone();
        // A spin claiming another prize than the seed gives.
        let other = if tampered[0]["prize"]["prize_id"] == "points" {
            "thanks"
        } else {
            "points"
        };
        tampered[0]["prize"]["prize_id"] = other.into();
        tampered[0]["proof"]["drawn"] = other.into();
        tampered[0]["proof"]["why"] = "drawn".into();
        let forged = write("forged.json", &json!({"spins": tampered}));
        let mut bad_seed = reveal.body.clone();
        bad_seed["server_seed"] = "11".repeat(32).into();
        let bad_seed = write("bad-seed.json", &bad_seed);
        let cli = |reveal: &str, spins: &str| {
            let args: Vec<String> = [
                "--reveal", reveal, "--draw", &files[1], "--spins", spins, "--member", "ann",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            draw_verify::run(&args)
        };
        let python = |reveal: &str, spins: &str| {
            let script = local_api::repo_root().join("tools/verify_draw.py");
            std::process::Command::new("python3")
                .arg(script)
                .args([
                    "--reveal", reveal, "--draw", &files[1], "--spins", spins, "--member", "ann",
                ])
                .status()
                .expect("python3")
                .code()
        };
        assert_eq!(cli(&files[0], &files[2]), 0, "the Rust verifier");
        assert_eq!(python(&files[0], &files[2]), Some(0), "the Python verifier");
        assert_eq!(cli(&files[0], &forged), 1);
        assert_eq!(python(&files[0], &forged), Some(1));
        assert_eq!(cli(&bad_seed, &files[2]), 1);
        assert_eq!(python(&bad_seed, &files[2]), Some(1));
        env.assert_audit_clean().await;
    }
}

/// A spin on a warm function (the draw's configuration cached, as it is for 30 s): one batch
/// read and one transaction; a cold one reads the draw first. A coupon win reads its code in a
/// second batch.
#[tokio::test]
async fn a_spin_is_one_read_and_one_write_on_a_warm_function() {
    let env = TestEnv::new().await;
    env.app.store.put_draw("rush", rush(), at(SETUP)).await.unwrap();
    env.seed_points("ann", 100).await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let ops = |from: usize| {
        let mut ops: Vec<String> = proxy.since(from).into_iter().map(|c| c.operation).collect();
        ops.sort();
        ops
    };
    spin(&app.store, "ann", "cold", at(SPIN)).await.unwrap();
    assert_eq!(ops(0), ["BatchGetItem", "GetItem", "TransactWriteItems"], "cold");
    let from = proxy.total();
    spin(&app.store, "ann", "warm", at(SPIN)).await.unwrap();
    assert_eq!(ops(from), ["BatchGetItem", "TransactWriteItems"], "warm");
    env.assert_audit_clean().await;
}

/// A share and a redeem whose answers are lost: the SDK sends them again, the retry's condition
/// fails on the call's own write, and the call still answers success (once, not a 429 or 409).
#[tokio::test]
async fn a_share_and_a_redeem_whose_answers_are_lost_still_succeed_once() {
    use std::sync::atomic::AtomicBool;
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    store.put_draw("rush", coupons(), at(SETUP)).await.unwrap();
    let mut shared_draw = limited();
    shared_draw.title = "Share".into();
    store.put_draw("share", shared_draw, at(SETUP)).await.unwrap();
    store
        .upload_codes("rush", "coupon", vec!["LOST-1".into()])
        .await
        .unwrap();
    let code = spin(&store, "ann", "win", at(SPIN))
        .await
        .unwrap()
        .spin
        .code
        .unwrap();
    // The first share write and the first redeem are applied, their answers lost.
    let (share_lost, redeem_lost) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (s, r) = (share_lost.clone(), redeem_lost.clone());
    let proxy = FaultProxy::start_matching(
        e2e::endpoint(),
        Arc::new(move |op, _, body| {
            let lose = (op == "PutItem" && body.contains("DRAW#share") && !s.swap(true, Ordering::SeqCst))
                || (op == "UpdateItem" && body.contains("COUPON#") && !r.swap(true, Ordering::SeqCst));
            lose.then_some(Fault::LoseResponse)
        }),
    )
    .await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let share = app
        .store
        .share_draw(&e2e::user("ann"), "share", at(SPIN))
        .await
        .unwrap();
    assert_eq!(
        share.free_spins_left_today, 2,
        "the day's free spin and the bonus"
    );
    let redeemed = app
        .store
        .redeem_coupon(&code, "service:shop", at(SPIN))
        .await
        .unwrap();
    assert!(redeemed.redeemed);
    assert!(
        proxy.calls("PutItem") >= 2 && proxy.calls("UpdateItem") >= 2,
        "the answers were lost and retried"
    );
    assert!(share_lost.load(Ordering::SeqCst) && redeem_lost.load(Ordering::SeqCst));
    // A second share and a second redeem are refused as before.
    let again = app
        .store
        .share_draw(&e2e::user("ann"), "share", at(SPIN))
        .await
        .unwrap_err();
    assert!(
        matches!(again, shared::Error::Domain(DomainError::AlreadySharedToday)),
        "{again}"
    );
    let again = app
        .store
        .redeem_coupon(&code, "service:shop", at(SPIN))
        .await
        .unwrap_err();
    assert!(
        matches!(again, shared::Error::Domain(DomainError::CouponRedeemed)),
        "{again}"
    );
    env.assert_audit_clean().await;
}
