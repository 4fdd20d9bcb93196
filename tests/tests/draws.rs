//! Lucky draws against DynamoDB Local: never oversold under 1,000 concurrent spins (with
//! injected throttling and `TransactionConflict`, every 503 replayed), one charge per
//! `Idempotency-Key` under 50 concurrent replays, the daily and total limits at their boundary
//! (tier extra spins, share bonuses, the local midnight), coupon codes unique per winner, and
//! both verifiers re-deriving every outcome.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use e2e::TestEnv;
use e2e::fault::{Fault, FaultProxy};
use shared::domain::DomainError;
use shared::domain::draws::{DrawSpec, Payment, Prize, PrizeKind};
use shared::domain::ledger::Reason;
use shared::store::{IdempotentCall, SpinAnswer, Store, keys};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const SETUP: &str = "2026-11-23T00:00:00Z";
const SPIN: &str = "2026-11-24T04:00:00Z";

fn prize(id: &str, kind: PrizeKind, weight: u32) -> Prize {
    Prize {
        prize_id: id.into(),
        name: id.to_uppercase(),
        kind,
        value: (kind == PrizeKind::Points).then_some(5),
        weight,
        stock: None,
        per_member_max: None,
        rare: false,
        splits: None,
    }
}

/// A paid draw (20 points a spin, no free spins) whose `phone` (stock 10 over 3 items: 4, 3, 3)
/// is drawn about half the time.
fn rush() -> DrawSpec {
    DrawSpec {
        title: "Midnight rush".into(),
        description: String::new(),
        starts_at: at("2026-11-24T00:00:00Z"),
        ends_at: at("2026-11-30T00:00:00Z"),
        cost: 20,
        free_per_day: 0,
        daily_limit: 10,
        total_limit: None,
        prizes: vec![
            Prize {
                stock: Some(10),
                splits: Some(3),
                rare: true,
                ..prize("phone", PrizeKind::Physical, 50)
            },
            prize("points", PrizeKind::Points, 10),
            prize("thanks", PrizeKind::Nothing, 40),
        ],
        consolation: "thanks".into(),
        pity: None,
        share_bonus: 1,
    }
}

fn call(who: &str, key: &str) -> IdempotentCall {
    IdempotentCall {
        key: keys::idempotency(&format!("member:{who}"), key),
        request_hash: format!("spin:{key}"),
    }
}

async fn spin(store: &Store, who: &str, key: &str, now: DateTime<Utc>) -> Result<SpinAnswer, shared::Error> {
    let answer = store
        .spin(&e2e::user(who), "rush", "", &call(who, key), now)
        .await?;
    Ok(serde_json::from_str(&answer).unwrap())
}

fn is_unavailable(err: &shared::Error) -> bool {
    matches!(err, shared::Error::Store(_))
}

/// 1,000 members spin at once through `proxy`; every key that answered 503 is replayed until it
/// gets a final answer. Then exactly 10 phones are awarded, a consolation instead of the phone
/// only when the spin found all three items empty, and every member's ledger holds exactly what
/// their one spin says.
async fn rush_of_1000(faults: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static) {
    let env = TestEnv::new().await;
    let store = env.app.store.clone();
    store.put_draw("rush", rush(), at(SETUP)).await.unwrap();
    const N: usize = 1000;
    for batch in 0..N / 50 {
        e2e::concurrently(50, |i| {
            let store = store.clone();
            let i = batch * 50 + i;
            async move {
                let posting =
                    shared::domain::ledger::Posting::new(100, Reason::Grant, "seed", format!("seed#m{i}"));
                store
                    .post(&e2e::user(&format!("m{i}")), posting, at(SETUP))
                    .await
                    .unwrap();
            }
        })
        .await;
    }
    let proxy = FaultProxy::start_matching(
        e2e::endpoint(),
        Arc::new(move |op, nth, body| {
            (op == "TransactWriteItems" && body.contains("SPIN#rush"))
                .then(|| faults(nth))
                .flatten()
        }),
    )
    .await;
    let faulty = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let unavailable = Arc::new(AtomicUsize::new(0));
    let answers = e2e::concurrently(N, |i| {
        let store = faulty.store.clone();
        let unavailable = unavailable.clone();
        async move {
            let who = format!("m{i}");
            loop {
                match spin(&store, &who, "tap-1", at(SPIN)).await {
                    Ok(answer) => return (who, answer),
                    Err(err) if is_unavailable(&err) => {
                        // The app taps again a moment later (the answer's Retry-After).
                        unavailable.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(err) => panic!("{who}: {err}"),
                }
            }
        }
    })
    .await;
    let replays = unavailable.load(Ordering::SeqCst);
    let phones: Vec<_> = answers
        .iter()
        .filter(|(_, a)| a.spin.prize.prize_id == "phone")
        .collect();
    assert_eq!(phones.len(), 10, "exactly the stock is awarded");
    let mut fulfilments = HashSet::new();
    for (_, a) in &phones {
        assert!(fulfilments.insert(a.spin.fulfilment_id.clone().unwrap()));
    }
    let mut fallbacks = 0;
    for (who, a) in &answers {
        if a.spin.proof.drawn == "phone" && a.spin.prize.prize_id != "phone" {
            fallbacks += 1;
            assert_eq!(a.spin.prize.prize_id, "thanks", "{who}");
            assert_eq!(
                a.spin.proof.out_of_stock,
                ["phone"],
                "{who} got the consolation before every item was found empty"
            );
        }
        // Charges equal results: one cost, the points prize when won, nothing else.
        let entries = store
            .ledger_page(&e2e::user(who), 50, None)
            .await
            .unwrap()
            .entries;
        let mut keys: Vec<String> = entries.iter().map(|e| e.business_key.clone()).collect();
        keys.sort();
        let mut expected = vec![format!("seed#{who}"), format!("spin#rush#{who}#1")];
        if a.spin.prize.prize_id == "points" {
            expected.push(format!("spin-prize#rush#{who}#1"));
        }
        expected.sort();
        assert_eq!(keys, expected, "{who}");
        let balance = store.account(&e2e::user(who), at(SPIN)).await.unwrap().balance;
        let won = if a.spin.prize.prize_id == "points" { 5 } else { 0 };
        assert_eq!(balance, 100 - 20 + won, "{who}");
        assert_eq!(a.spin.spin, 1);
    }
    assert!(fallbacks > 0, "the phone was drawn after it ran out");
    // Every item is empty, and the fulfilments listed for the draw are the winners'.
    let listed = store
        .fulfilments("draw:rush", shared::store::FulfilmentStatus::ToFulfil, 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), 10);
    let reveal = store.reveal("rush", at("2026-11-30T00:00:00Z")).await.unwrap();
    assert!(reveal.ran_out.contains_key("phone"));
    eprintln!("1000 spins: {replays} answers of 503 replayed, {fallbacks} consolations for a drawn phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rush_of_1000_spins_never_oversells_with_503s_replayed() {
    // Every 3rd spin transaction is throttled: a call throttled on all its SDK attempts answers
    // 503, and the member taps again with the same key.
    rush_of_1000(|nth| (nth % 3 == 0).then_some(Fault::Throttle)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rush_of_1000_spins_never_oversells_under_transaction_conflicts() {
    // Every 4th spin transaction is cancelled with TransactionConflict, as real DynamoDB does
    // when another transaction holds one of its items; every 7th is lost after being applied.
    rush_of_1000(|nth| match nth % 28 {
        n if n % 4 == 0 => Some(Fault::TransactionConflict),
        n if n % 7 == 0 => Some(Fault::LoseResponse),
        _ => None,
    })
    .await;
}

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
    tampered[3]["prize"]["prize_id"] = "phone".into();
    tampered[3]["proof"]["drawn"] = "phone".into();
    assert!(draw_verify::verify(&reveal, &odds, "ann", &tampered).is_err());
    let mut wrong_seed = reveal.clone();
    wrong_seed["server_seed"] = "00".repeat(32).into();
    assert!(draw_verify::verify(&wrong_seed, &odds, "ann", &spins).is_err());
}
