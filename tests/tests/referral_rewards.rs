//! Referrals, the referrer's side, against DynamoDB Local: the qualifying action (a purchase, a
//! check-in) pays the referrer once; a stop between qualifying and paying is repaired once by the
//! reconciler; caps at the month boundary (business zone); reversals of the qualifying purchase;
//! revokes (once, racing the qualifying action and check-ins).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use e2e::TestEnv;
use e2e::fault::{Fault, FaultProxy};
use shared::domain::UserId;
use shared::domain::ledger::Reason;
use shared::domain::referrals::{Due, Program, Qualifying, Status};
use shared::store::{AdminReferral, Attribution, IdempotentCall, ReferrerStep, Store, keys};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Programs are put and codes made here; claims follow a little later.
const SETUP: &str = "2026-11-20T00:00:00Z";
const CLAIM: &str = "2026-11-20T08:00:00Z";
const BUY: &str = "2026-11-21T08:00:00Z";

async fn with_program(program: Program) -> TestEnv {
    let env = TestEnv::new().await;
    env.app
        .store
        .put_referral_program(program, at(SETUP))
        .await
        .unwrap();
    env
}

fn on() -> Program {
    Program {
        enabled: true,
        ..Program::default()
    }
}

async fn code(store: &Store, who: &str) -> String {
    store.referral_code(&e2e::user(who), at(SETUP)).await.unwrap()
}

async fn claim(store: &Store, who: &str, code: &str, now: DateTime<Utc>) {
    store
        .claim_referral(&e2e::user(who), code, None, now)
        .await
        .unwrap_or_else(|e| panic!("{who} claims: {e}"));
}

fn shop() -> Attribution {
    Attribution {
        by: "service:shop".into(),
        note: None,
    }
}

/// A purchase grant of `base` points (idempotency key `key`) through the real ledger.
async fn buy(
    store: &Store,
    who: &str,
    key: &str,
    base: i64,
    now: DateTime<Utc>,
) -> Result<String, shared::Error> {
    let call = IdempotentCall {
        key: keys::idempotency("service:shop", key),
        request_hash: format!("{who}:{key}:{base}"),
    };
    store
        .grant(
            "service:shop",
            key,
            &e2e::user(who),
            base,
            Reason::Purchase,
            key,
            &shop(),
            &call,
            now,
        )
        .await
}

/// The full reversal of the purchase `key` (what is left of it).
async fn refund(
    store: &Store,
    key: &str,
    amount: Option<i64>,
    now: DateTime<Utc>,
) -> Result<String, shared::Error> {
    let refund_key = format!("refund-{key}-{}", amount.unwrap_or(0));
    let call = IdempotentCall {
        key: keys::idempotency("service:shop", &refund_key),
        request_hash: refund_key.clone(),
    };
    store
        .reverse(
            "service:shop",
            &refund_key,
            "service:shop",
            key,
            amount,
            &shop(),
            &call,
            now,
        )
        .await
}

async fn referral(store: &Store, invitee: &str) -> AdminReferral {
    store
        .admin_referrals(&e2e::user(invitee), 20, None, at(BUY))
        .await
        .unwrap()
        .referred_by
        .unwrap_or_else(|| panic!("{invitee} has a referral"))
}

async fn balance(store: &Store, who: &str, now: DateTime<Utc>) -> i64 {
    store.account(&e2e::user(who), now).await.unwrap().balance
}

/// Every ledger entry of `who` (newest first).
async fn ledger(store: &Store, who: &str) -> Vec<shared::domain::ledger::LedgerEntry> {
    store
        .ledger_page(&e2e::user(who), 200, None)
        .await
        .unwrap()
        .entries
}

fn keys_of(entries: &[shared::domain::ledger::LedgerEntry]) -> Vec<String> {
    entries.iter().map(|e| e.business_key.clone()).collect()
}

#[tokio::test]
async fn the_first_purchase_pays_the_referrer_once() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.due), (Status::Pending, None));
    assert_eq!(
        store
            .admin_referrals(&e2e::user("ann"), 20, None, at(BUY))
            .await
            .unwrap()
            .rewards_pending,
        100
    );
    // A grant that is not a purchase, and a purchase worth nothing, never qualify.
    let grant_call = IdempotentCall {
        key: keys::idempotency("admin:ops", "goodwill"),
        request_hash: "goodwill".into(),
    };
    store
        .grant(
            "admin:ops",
            "goodwill",
            &e2e::user("bob"),
            50,
            Reason::Grant,
            "goodwill",
            &shop(),
            &grant_call,
            at(BUY),
        )
        .await
        .unwrap();
    buy(store, "bob", "order-0", 0, at(BUY)).await.unwrap();
    assert_eq!(referral(store, "bob").await.status, Status::Pending);
    assert_eq!(balance(store, "ann", at(BUY)).await, 0);
    // The program is switched off and its reward raised: a pending reward keeps what was fixed
    // at the claim, and is still paid.
    store
        .put_referral_program(
            Program {
                referrer_reward: 999,
                enabled: false,
                ..on()
            },
            at(CLAIM),
        )
        .await
        .unwrap();
    // The first purchase worth a point: qualified in its own transaction, the referrer paid
    // right after, under `referral-referrer#bob`.
    buy(store, "bob", "order-1", 30, at(BUY)).await.unwrap();
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.due), (Status::Paid, None));
    assert_eq!(r.qualified_at, Some(at(BUY)));
    assert_eq!(balance(store, "ann", at(BUY)).await, 100);
    let anns = ledger(store, "ann").await;
    assert_eq!(keys_of(&anns), vec!["referral-referrer#bob".to_owned()]);
    assert_eq!((anns[0].reason, anns[0].delta), (Reason::Referral, 100));
    let view = store
        .admin_referrals(&e2e::user("ann"), 20, None, at(BUY))
        .await
        .unwrap();
    assert_eq!(
        (
            view.rewards_paid,
            view.rewards_pending,
            view.paid_this_month,
            view.paid_ever
        ),
        (100, 0, 1, 1)
    );
    assert_eq!(view.invitees.len(), 1);
    assert_eq!(view.invitees[0].status, Status::Paid);
    // A second purchase, a repeat of the step and a reconciler run pay nothing more.
    buy(store, "bob", "order-2", 30, at(BUY)).await.unwrap();
    assert_eq!(
        store.referrer_step(&e2e::user("bob"), at(BUY)).await.unwrap(),
        ReferrerStep::Nothing
    );
    let later = at(BUY) + Duration::minutes(5);
    assert_eq!(store.reconcile_referrals(later, 100).await.unwrap().due, 0);
    assert_eq!(balance(store, "ann", later).await, 100);
    assert_eq!(ledger(store, "ann").await.len(), 1);
    // Bob: the invitee reward, the goodwill grant and the two purchases.
    assert_eq!(balance(store, "bob", later).await, 100 + 50 + 60);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn the_first_checkin_qualifies_when_the_program_says_so() {
    let env = with_program(Program {
        qualifying: Qualifying::FirstCheckin,
        ..on()
    })
    .await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    // A purchase does not qualify under `first_checkin`.
    buy(store, "bob", "order-1", 30, at(BUY)).await.unwrap();
    assert_eq!(referral(store, "bob").await.status, Status::Pending);
    store
        .check_in(&e2e::user("bob"), "daily", None, at(BUY))
        .await
        .unwrap();
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.qualifying), (Status::Paid, Qualifying::FirstCheckin));
    assert_eq!(balance(store, "ann", at(BUY)).await, 100);
    // The next day's check-in changes nothing.
    let next_day = at(BUY) + Duration::days(1);
    store
        .check_in(&e2e::user("bob"), "daily", None, next_day)
        .await
        .unwrap();
    assert_eq!(balance(store, "ann", next_day).await, 100);
    // `immediately`: a claim under it pays the referrer at once.
    store
        .put_referral_program(
            Program {
                qualifying: Qualifying::Immediately,
                ..on()
            },
            at(CLAIM),
        )
        .await
        .unwrap();
    claim(store, "cy", &ann, at(BUY)).await;
    assert_eq!(referral(store, "cy").await.status, Status::Paid);
    assert_eq!(balance(store, "ann", next_day).await, 200);
    env.assert_audit_clean().await;
}

/// A proxy that fails every referrer payment or undo (its transaction names the referrer's
/// business key) while `on` is set: the step after the qualifying transaction never lands.
async fn stopping_proxy(on: Arc<AtomicBool>) -> FaultProxy {
    FaultProxy::start_matching(
        e2e::endpoint(),
        Arc::new(move |op, _, body| {
            (on.load(Ordering::SeqCst) && op == "TransactWriteItems" && body.contains("referral-referrer"))
                .then_some(Fault::Throttle)
        }),
    )
    .await
}

#[tokio::test]
async fn a_stop_between_qualifying_and_paying_is_repaired_once() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    let stop = Arc::new(AtomicBool::new(true));
    let proxy = stopping_proxy(stop.clone()).await;
    let stopped = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    // The purchase succeeds; the payment right after it does not land.
    let answer = buy(&stopped.store, "bob", "order-1", 30, at(BUY)).await.unwrap();
    assert!(answer.contains("\"points\":30"), "{answer}");
    assert!(
        proxy
            .bodies("TransactWriteItems")
            .iter()
            .any(|b| b.contains("referral-referrer#bob"))
    );
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.due), (Status::Qualified, Some(Due::Settle)));
    assert_eq!(balance(store, "ann", at(BUY)).await, 0);
    // The reconciler leaves a step that just fell due to its request...
    let soon = at(BUY) + Duration::seconds(5);
    assert_eq!(store.reconcile_referrals(soon, 100).await.unwrap().due, 0);
    // ...and runs an older one: three runs at once pay once.
    stop.store(false, Ordering::SeqCst);
    let later = at(BUY) + Duration::minutes(1);
    let runs = e2e::concurrently(3, |i| {
        let store = if i == 0 {
            stopped.store.clone()
        } else {
            store.clone()
        };
        async move { store.reconcile_referrals(later, 100).await.unwrap() }
    })
    .await;
    assert_eq!(runs.iter().map(|r| r.paid).sum::<usize>(), 1, "{runs:?}");
    assert!(runs.iter().all(|r| r.failed == 0), "{runs:?}");
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.due), (Status::Paid, None));
    assert_eq!(balance(store, "ann", later).await, 100);
    assert_eq!(
        keys_of(&ledger(store, "ann").await),
        vec!["referral-referrer#bob"]
    );
    assert_eq!(store.reconcile_referrals(later, 100).await.unwrap().due, 0);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_lost_answer_to_the_payment_pays_once() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    // The payment reaches the table but its answer is lost; the SDK sends it again.
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let proxy = FaultProxy::start_matching(
        e2e::endpoint(),
        Arc::new(move |op, _, body| {
            (op == "TransactWriteItems"
                && body.contains("referral-referrer#bob")
                && !flag.swap(true, Ordering::SeqCst))
            .then_some(Fault::LoseResponse)
        }),
    )
    .await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    buy(&app.store, "bob", "order-1", 30, at(BUY)).await.unwrap();
    assert!(lost.load(Ordering::SeqCst));
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.due), (Status::Paid, None));
    assert_eq!(balance(store, "ann", at(BUY)).await, 100);
    assert_eq!(ledger(store, "ann").await.len(), 1);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn caps_count_in_the_month_of_payment_and_a_revoke_frees_no_slot() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    // 23 friends claim on the last evening of November (Asia/Shanghai, UTC+8).
    let evening = at("2026-11-30T12:00:00Z");
    let friends: Vec<String> = (0..23).map(|i| format!("friend{i:02}")).collect();
    for f in &friends {
        claim(store, f, &ann, evening).await;
    }
    // Twenty first purchases in November: paid.
    let november = at("2026-11-30T15:00:00Z");
    for f in &friends[..20] {
        buy(store, f, &format!("o-{f}"), 10, november).await.unwrap();
        assert_eq!(referral(store, f).await.status, Status::Paid, "{f}");
    }
    assert_eq!(balance(store, "ann", november).await, 2000);
    // A revoke takes one reward back but frees no slot.
    store
        .revoke_referral(&e2e::user("friend00"), "admin:ops", november)
        .await
        .unwrap();
    assert_eq!(balance(store, "ann", november).await, 1900);
    // The 21st, in the last second of the local month: capped; the friend keeps their reward.
    let last_second = at("2026-11-30T15:59:59Z");
    buy(store, &friends[20], "o-21", 10, last_second).await.unwrap();
    let r = referral(store, &friends[20]).await;
    assert_eq!((r.status, r.due, r.paid_at), (Status::Capped, None, None));
    assert_eq!(balance(store, &friends[20], last_second).await, 110);
    assert_eq!(balance(store, "ann", last_second).await, 1900);
    // Local midnight (16:00 UTC) starts December: the 22nd is paid, the 23rd too.
    let december = at("2026-11-30T16:00:00Z");
    buy(store, &friends[21], "o-22", 10, december).await.unwrap();
    buy(store, &friends[22], "o-23", 10, december).await.unwrap();
    assert_eq!(referral(store, &friends[21]).await.status, Status::Paid);
    assert_eq!(referral(store, &friends[22]).await.status, Status::Paid);
    assert_eq!(balance(store, "ann", december).await, 2100);
    let view = store
        .admin_referrals(&e2e::user("ann"), 100, None, december)
        .await
        .unwrap();
    assert_eq!((view.paid_this_month, view.paid_ever), (2, 22));
    assert_eq!(view.claimed, 23);
    assert_eq!((view.rewards_paid, view.rewards_pending), (2100, 0));
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn the_lifetime_cap_holds_across_months() {
    let env = with_program(Program {
        monthly_cap: 1,
        lifetime_cap: 1,
        ..on()
    })
    .await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    claim(store, "cy", &ann, at(CLAIM)).await;
    buy(store, "bob", "o-bob", 10, at(BUY)).await.unwrap();
    let next_month = at("2026-12-05T00:00:00Z");
    buy(store, "cy", "o-cy", 10, next_month).await.unwrap();
    assert_eq!(referral(store, "bob").await.status, Status::Paid);
    assert_eq!(referral(store, "cy").await.status, Status::Capped);
    assert_eq!(balance(store, "ann", next_month).await, 100);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn reversing_the_qualifying_purchase() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    claim(store, "cy", &ann, at(CLAIM)).await;

    // Before the payment (the step stopped): a full refund sends the referral back to waiting.
    let stop = Arc::new(AtomicBool::new(true));
    let proxy = stopping_proxy(stop).await;
    let stopped = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    buy(&stopped.store, "bob", "o-1", 30, at(BUY)).await.unwrap();
    assert_eq!(referral(store, "bob").await.status, Status::Qualified);
    refund(store, "o-1", Some(10), at(BUY)).await.unwrap();
    assert_eq!(
        referral(store, "bob").await.status,
        Status::Qualified,
        "a partial refund keeps it"
    );
    refund(store, "o-1", None, at(BUY)).await.unwrap();
    let r = referral(store, "bob").await;
    assert_eq!((r.status, r.due, r.qualified_at), (Status::Pending, None, None));
    let later = at(BUY) + Duration::minutes(2);
    assert_eq!(store.reconcile_referrals(later, 100).await.unwrap().due, 0);
    assert_eq!(balance(store, "ann", later).await, 0);
    // The next qualifying purchase qualifies it again, and pays.
    buy(store, "bob", "o-2", 20, later).await.unwrap();
    assert_eq!(referral(store, "bob").await.status, Status::Paid);
    assert_eq!(balance(store, "ann", later).await, 100);
    // Refunding the first purchase again changes nothing (nothing left of it).
    assert!(matches!(
        refund(store, "o-1", Some(5), later).await,
        Err(shared::Error::Domain(
            shared::domain::DomainError::GrantFullyReversed
        ))
    ));

    // After the payment: a full refund takes the referrer's reward back, once.
    buy(store, "cy", "o-3", 40, later).await.unwrap();
    assert_eq!(balance(store, "ann", later).await, 200);
    refund(store, "o-3", None, later).await.unwrap();
    let r = referral(store, "cy").await;
    assert_eq!((r.status, r.due), (Status::Reversed, None));
    assert!(r.ended_at.is_some());
    assert_eq!(balance(store, "ann", later).await, 100);
    let anns = keys_of(&ledger(store, "ann").await);
    assert_eq!(
        anns.iter()
            .filter(|k| *k == "referral-referrer-reversal#cy")
            .count(),
        1,
        "{anns:?}"
    );
    // A reversed referral never qualifies again; a second purchase pays nobody.
    buy(store, "cy", "o-4", 40, later).await.unwrap();
    assert_eq!(referral(store, "cy").await.status, Status::Reversed);
    assert_eq!(balance(store, "ann", later).await, 100);
    let view = store
        .admin_referrals(&e2e::user("ann"), 20, None, later)
        .await
        .unwrap();
    assert_eq!(
        (view.rewards_paid, view.paid_ever),
        (100, 2),
        "a reversal frees no slot"
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_revoke_reverses_both_rewards_once() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    claim(store, "bob", &ann, at(CLAIM)).await;
    claim(store, "cy", &ann, at(CLAIM)).await;
    buy(store, "bob", "o-1", 30, at(BUY)).await.unwrap();
    assert_eq!(balance(store, "ann", at(BUY)).await, 100);
    // Bob spends his points first: the revoke leaves him in debt, as reversals do.
    let hold_call = IdempotentCall {
        key: keys::idempotency("service:shop", "spend"),
        request_hash: "spend".into(),
    };
    store
        .hold(&e2e::user("bob"), 130, "checkout", &shop(), &hold_call, at(BUY))
        .await
        .unwrap();
    let revoked = store
        .revoke_referral(&e2e::user("bob"), "admin:ops", at(BUY))
        .await
        .unwrap();
    assert_eq!((revoked.status, revoked.due), (Status::Revoked, None));
    let bob = store.account(&e2e::user("bob"), at(BUY)).await.unwrap();
    // The balance is the sum of the entries; the debt is what the reversal could not take.
    assert_eq!((bob.balance, bob.debt), (-100, 100));
    assert_eq!(balance(store, "ann", at(BUY)).await, 0);
    // Twice: 409, nothing reversed again.
    let again = store
        .revoke_referral(&e2e::user("bob"), "admin:ops", at(BUY))
        .await;
    assert!(matches!(
        again,
        Err(shared::Error::Domain(
            shared::domain::DomainError::ReferralRevoked
        ))
    ));
    assert_eq!(
        keys_of(&ledger(store, "bob").await)
            .iter()
            .filter(|k| k.starts_with("referral-revoke#"))
            .count(),
        1
    );
    assert_eq!(ledger(store, "ann").await.len(), 2);
    // A pending referral revoked: the referrer's pending reward goes, and it never qualifies.
    store
        .revoke_referral(&e2e::user("cy"), "admin:ops", at(BUY))
        .await
        .unwrap();
    buy(store, "cy", "o-2", 30, at(BUY)).await.unwrap();
    assert_eq!(referral(store, "cy").await.status, Status::Revoked);
    let view = store
        .admin_referrals(&e2e::user("ann"), 20, None, at(BUY))
        .await
        .unwrap();
    assert_eq!((view.rewards_paid, view.rewards_pending), (0, 0));
    assert_eq!(balance(store, "ann", at(BUY)).await, 0);
    // No referral: 404.
    assert!(matches!(
        store
            .revoke_referral(&e2e::user("ann"), "admin:ops", at(BUY))
            .await,
        Err(shared::Error::Domain(shared::domain::DomainError::NotFound(_)))
    ));
    env.assert_audit_clean().await;
}

/// Sum of a member's ledger deltas: what the balance must be.
async fn ledger_sum(store: &Store, who: &str) -> i64 {
    ledger(store, who).await.iter().map(|e| e.delta).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_qualifying_purchase_races_two_checkins_and_a_revoke() {
    let env = with_program(on()).await;
    let store = &env.app.store;
    let ann = code(store, "ann").await;
    // A second campaign, so the invitee checks in twice at once.
    store
        .put_campaign(
            "weekly",
            &serde_json::from_value(serde_json::json!({"time_zone": "Asia/Shanghai", "ladder": [5]}))
                .unwrap(),
        )
        .await
        .unwrap();
    let rounds = 6;
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..rounds {
        let invitee = format!("racer{round}");
        claim(store, &invitee, &ann, at(CLAIM)).await;
        let results = e2e::concurrently(4, |i| {
            let (store, invitee) = (store.clone(), invitee.clone());
            async move {
                let user = UserId::parse(&invitee).unwrap();
                match i {
                    0 => buy(&store, &invitee, &format!("o-{invitee}"), 30, at(BUY))
                        .await
                        .map(|_| ()),
                    1 => store.check_in(&user, "daily", None, at(BUY)).await.map(|_| ()),
                    2 => store.check_in(&user, "weekly", None, at(BUY)).await.map(|_| ()),
                    _ => store
                        .revoke_referral(&user, "admin:ops", at(BUY))
                        .await
                        .map(|_| ()),
                }
            }
        })
        .await;
        for (i, r) in results.iter().enumerate() {
            assert!(r.is_ok(), "round {round} task {i}: {r:?}");
        }
        // Whatever the order, one consistent outcome: revoked, nothing left due, and the
        // referrer paid either never or once and taken back once.
        let later = at(BUY) + Duration::minutes(1);
        store.reconcile_referrals(later, 100).await.unwrap();
        let r = referral(store, &invitee).await;
        assert_eq!((r.status, r.due), (Status::Revoked, None), "round {round}");
        let anns = keys_of(&ledger(store, "ann").await);
        let paid = anns.contains(&format!("referral-referrer#{invitee}"));
        let taken = anns.contains(&format!("referral-referrer-reversal#{invitee}"));
        assert_eq!(paid, taken, "round {round}: {anns:?}");
        *outcomes
            .entry(if paid { "paid, then undone" } else { "never paid" })
            .or_insert(0) += 1;
        // The invitee: reward reversed once; purchase and both check-ins paid once each.
        let mine = keys_of(&ledger(store, &invitee).await);
        for prefix in [
            "referral-invitee#",
            "referral-revoke#",
            "grant#",
            "checkin#daily#",
            "checkin#weekly#",
        ] {
            assert_eq!(
                mine.iter().filter(|k| k.starts_with(prefix)).count(),
                1,
                "round {round} {prefix}: {mine:?}"
            );
        }
        let account = store.account(&e2e::user(&invitee), later).await.unwrap();
        assert_eq!(account.balance, ledger_sum(store, &invitee).await);
    }
    println!("race outcomes over {rounds} rounds: {outcomes:?}");
    assert_eq!(balance(store, "ann", at(BUY)).await, 0);
    assert_eq!(ledger_sum(store, "ann").await, 0);
    let view = store
        .admin_referrals(&e2e::user("ann"), 20, None, at(BUY))
        .await
        .unwrap();
    assert_eq!((view.rewards_paid, view.rewards_pending), (0, 0));
    env.assert_audit_clean().await;
}

mod story {
    //! The whole story through the local API with the dev clock: the program, a code, a claim,
    //! the qualifying purchase, both balances and ledgers, the points board, a `referrals`
    //! contest settled on the schedule, the admin's view and a revoke.

    use e2e::{Reply, TestApi, TestEnv, admin_token, member_token, service_token};
    use reqwest::Method;
    use serde_json::{Value, json};

    const SETUP: &str = "2026-11-23T10:00:00Z";
    const START: &str = "2026-11-24T00:00:00Z";
    const END: &str = "2026-11-25T00:00:00Z";
    const DURING: &str = "2026-11-24T06:00:00Z";

    fn ok(reply: Reply, what: &str) -> Value {
        assert_eq!(reply.status, 200, "{what}: {}", reply.body);
        reply.body
    }

    async fn purchase(api: &TestApi, user: &str, yuan: i64, key: &str, now: &str) {
        let body =
            json!({ "user_id": user, "order_amount_cents": yuan * 100, "reason": "order", "ref": key });
        let b = api
            .request(Method::POST, "/v1/admin/points/grants")
            .bearer_auth(service_token("shop"))
            .header("idempotency-key", key)
            .header("x-debug-now", now)
            .json(&body);
        ok(api.send(b).await, "purchase");
    }

    async fn get(api: &TestApi, path: &str, token: &str, now: &str) -> Value {
        ok(api.get(path, Some(token), Some(now)).await, path)
    }

    /// Business keys and deltas of a member's ledger page, oldest first.
    async fn ledger(api: &TestApi, user: &str, now: &str) -> Vec<(String, i64)> {
        let page = get(api, "/v1/points/ledger?limit=50", &member_token(user), now).await;
        let mut rows: Vec<(String, i64)> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap().to_owned(),
                    e["delta"].as_i64().unwrap(),
                )
            })
            .collect();
        rows.reverse();
        rows
    }

    #[tokio::test]
    async fn a_referral_from_code_to_contest_prize_through_the_api() {
        let env = TestEnv::new().await;
        let api = env.spawn_api().await;
        let admin = admin_token("ops");
        ok(
            api.send_json(
                Method::PUT,
                "/v1/admin/referral-program",
                &admin,
                SETUP,
                &json!({ "invitee_reward": 50, "referrer_reward": 80 }),
            )
            .await,
            "program",
        );
        // A contest of referrals for everyone, one prize.
        let contest = json!({
            "title": "Bring a friend",
            "description": "Most friends who shop",
            "starts_at": START,
            "ends_at": END,
            "metric": "referrals",
            "entry": "everyone",
            "prizes": [{ "from": 1, "to": 1, "points": 500 }]
        });
        let created = api
            .send_json(Method::PUT, "/v1/admin/contests/friends", &admin, SETUP, &contest)
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let code = get(&api, "/v1/referrals/me", &member_token("u-ann"), SETUP).await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        // Bob and Cy claim Ann's code (Cy types it loosely).
        let claimed = ok(
            api.post(
                "/v1/referrals/claim",
                &member_token("u-bob"),
                SETUP,
                &json!({ "code": code }),
            )
            .await,
            "bob claims",
        );
        assert_eq!(
            (claimed["invitee_reward"].as_i64(), claimed["balance"].as_i64()),
            (Some(50), Some(50))
        );
        let loose = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
        ok(
            api.post(
                "/v1/referrals/claim",
                &member_token("u-cy"),
                SETUP,
                &json!({ "code": loose }),
            )
            .await,
            "cy claims",
        );
        // Before the contest: Bob buys (Ann paid, not counted: the contest has not started).
        purchase(&api, "u-bob", 20, "o-bob", "2026-11-23T12:00:00Z").await;
        // During: Cy buys (Ann paid and counted).
        purchase(&api, "u-cy", 30, "o-cy", DURING).await;
        let mine = get(&api, "/v1/referrals/me", &member_token("u-ann"), DURING).await;
        assert_eq!(
            (mine["claimed"].as_u64(), mine["rewards_paid"].as_i64()),
            (Some(2), Some(160))
        );
        assert_eq!(mine["rewards_pending"], 0);
        let statuses: Vec<&str> = mine["invitees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["paid", "paid"]);
        // Both balances and ledgers.
        assert_eq!(
            ledger(&api, "u-ann", DURING).await,
            [("referral".to_owned(), 80), ("referral".to_owned(), 80)]
        );
        assert_eq!(
            ledger(&api, "u-cy", DURING).await,
            [("referral".to_owned(), 50), ("purchase".to_owned(), 30)]
        );
        assert_eq!(
            get(&api, "/v1/me", &member_token("u-ann"), DURING).await["points"]["balance"],
            160
        );
        // Referral rewards count on the points boards (Ann 160, Cy 80, Bob 70).
        let board = get(
            &api,
            "/v1/leaderboards/all-time?limit=10",
            &member_token("u-x"),
            DURING,
        )
        .await;
        let scores: Vec<i64> = board["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["score"].as_i64().unwrap())
            .collect();
        assert_eq!(scores, [160, 80, 70]);
        // The contest counts Cy's referral only (Bob's qualified before the start).
        let live = get(&api, "/v1/contests/friends", &member_token("u-ann"), DURING).await;
        assert_eq!(live["score"], 1, "{live}");
        // The admin's view of Ann, and of Cy.
        let view = get(&api, "/v1/admin/referrals/u-ann", &admin, DURING).await;
        assert_eq!(
            (view["paid_this_month"].as_u64(), view["paid_ever"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(view["invitees"][0]["invitee_id"], "u-cy");
        let cy = get(&api, "/v1/admin/referrals/u-cy", &admin, DURING).await;
        assert_eq!(cy["referred_by"]["referrer_id"], "u-ann");
        assert_eq!(cy["referred_by"]["status"], "paid");
        // Fraud: Cy's referral revoked while the contest runs: both rewards back, Ann's
        // contest score back to 0; a second revoke is refused.
        let later = "2026-11-24T08:00:00Z";
        let revoked = ok(
            api.post("/v1/admin/referrals/u-cy/revoke", &admin, later, &json!({}))
                .await,
            "revoke",
        );
        assert_eq!(revoked["status"], "revoked");
        api.post("/v1/admin/referrals/u-cy/revoke", &admin, later, &json!({}))
            .await
            .assert_problem(409, "referral-revoked");
        assert_eq!(
            get(&api, "/v1/me", &member_token("u-ann"), later).await["points"]["balance"],
            80
        );
        assert_eq!(
            get(&api, "/v1/me", &member_token("u-cy"), later).await["points"]["balance"],
            30
        );
        let live = get(&api, "/v1/contests/friends", &member_token("u-ann"), later).await;
        assert_eq!(live["score"], 0, "{live}");
        // Dee, referred by Bob during the contest, buys: Bob leads with 1 and wins the prize.
        let bobs = get(&api, "/v1/referrals/me", &member_token("u-bob"), later).await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(
            api.post(
                "/v1/referrals/claim",
                &member_token("u-dee"),
                later,
                &json!({ "code": bobs }),
            )
            .await,
            "dee claims",
        );
        purchase(&api, "u-dee", 10, "o-dee", "2026-11-24T09:00:00Z").await;
        let at: chrono::DateTime<chrono::Utc> = "2026-11-25T00:02:00Z".parse().unwrap();
        let event = local_api::schedule::scheduled_event("SettleContestsFunction", at, Some(at));
        let report = local_api::schedule::fire(&env.app, "SettleContestsFunction", event)
            .await
            .expect("scheduled run");
        assert_eq!(report["contests"][0]["outcome"], "settled", "{report}");
        let result = get(
            &api,
            "/v1/contests/friends",
            &member_token("u-bob"),
            "2026-11-25T00:03:00Z",
        )
        .await;
        assert_eq!(result["result"]["position"], 1, "{result}");
        assert_eq!(result["result"]["prize"]["points"], 500, "{result}");
        env.assert_audit_clean().await;
    }
}
