//! The ledger against DynamoDB Local: exactly-once under real concurrency, and Σ entries = balance.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use e2e::{TestEnv, user};
use shared::domain::DomainError;
use shared::domain::ledger::{Posting, Reason};
use shared::store::TxOutcome;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn all_entries(env: &TestEnv, u: &shared::domain::UserId) -> Vec<shared::domain::ledger::LedgerEntry> {
    let page = env.app.store.ledger_page(u, 100, None).await.unwrap();
    assert!(page.next.is_none(), "more than one page");
    page.entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_credits_with_one_business_key_pay_once() {
    let env = TestEnv::new().await;
    let u = user("alice");
    let now = at("2026-11-23T08:00:00Z");
    let replies = e2e::concurrently(50, |_| {
        let store = env.app.store.clone();
        let u = u.clone();
        async move {
            store
                .post(
                    &u,
                    Posting::new(10, Reason::Grant, "order-1", "grant#shop#order-1"),
                    now,
                )
                .await
        }
    })
    .await;
    let mut committed = 0;
    let mut replayed = BTreeSet::new();
    for r in replies {
        match r.unwrap() {
            TxOutcome::Committed { entries, .. } => {
                committed += 1;
                assert_eq!(entries.len(), 1);
            }
            TxOutcome::Replayed(guard) => {
                replayed.insert(guard.entry_id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(committed, 1, "exactly one task pays");
    assert_eq!(replayed.len(), 1, "every replay names the same entry");
    let entries = all_entries(&env, &u).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(replayed.into_iter().next().unwrap(), entries[0].entry_id);
    let account = env.app.store.account(&u, e2e::fixed_now()).await.unwrap();
    assert_eq!(
        (account.balance, account.lifetime_earned, account.seq),
        (10, 10, 1)
    );
    env.assert_audit_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_credits_with_different_keys_all_land_and_sum_up() {
    let env = TestEnv::new().await;
    let u = user("bob");
    let now = at("2026-11-23T08:00:00Z");
    let replies = e2e::concurrently(50, |i| {
        let i = i64::try_from(i).expect("small");
        let store = env.app.store.clone();
        let u = u.clone();
        async move {
            store
                .post(
                    &u,
                    Posting::new(
                        i + 1,
                        Reason::Grant,
                        format!("order-{i}"),
                        format!("grant#shop#order-{i}"),
                    ),
                    now,
                )
                .await
        }
    })
    .await;
    for r in replies {
        assert!(matches!(r.unwrap(), TxOutcome::Committed { .. }));
    }
    let entries = all_entries(&env, &u).await;
    let grants = entries.iter().filter(|e| e.reason == Reason::Grant).count();
    let tier_moves: Vec<&str> = entries
        .iter()
        .filter(|e| e.reason == Reason::TierChange)
        .map(|e| e.reference.as_str())
        .collect();
    // 1 + 2 + … + 50 = 1275 earned: the member passed 500 once (New -> Ordinary).
    assert_eq!((grants, tier_moves), (50, vec!["New -> Ordinary"]));
    let sum: i64 = entries.iter().map(|e| e.delta).sum();
    assert_eq!(sum, (1..=50).sum::<i64>());
    let account = env.app.store.account(&u, e2e::fixed_now()).await.unwrap();
    assert_eq!(account.balance, sum);
    assert_eq!(account.seq, 51);
    assert_eq!(account.tier.as_deref(), Some("Ordinary"));
    // Newest first, seq 51..1 without gaps, each balance_after the running total.
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=51).rev().collect::<Vec<_>>());
    let mut running = 0;
    for e in entries.iter().rev() {
        running += e.delta;
        assert_eq!(e.balance_after, running, "entry {}", e.seq);
    }
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_debit_above_the_balance_changes_nothing() {
    let env = TestEnv::new().await;
    let u = user("carol");
    let now = at("2026-11-23T08:00:00Z");
    env.app
        .store
        .post(&u, Posting::new(30, Reason::Grant, "r", "grant#t#1"), now)
        .await
        .unwrap();
    let err = env
        .app
        .store
        .post(
            &u,
            Posting::new(-31, Reason::Makeup, "r", "seeded-makeup#t#1"),
            now,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        shared::Error::Domain(DomainError::InsufficientPoints {
            balance: 30,
            needed: 31
        })
    ));
    assert_eq!(all_entries(&env, &u).await.len(), 1);
    assert!(
        env.app.store.guard("seeded-makeup#t#1").await.unwrap().is_none(),
        "no guard written"
    );
    let out = env
        .app
        .store
        .post(
            &u,
            Posting::new(-30, Reason::Makeup, "r", "seeded-makeup#t#1"),
            now,
        )
        .await
        .unwrap();
    assert!(
        matches!(out, TxOutcome::Committed { ref account, .. } if account.balance == 0 && account.lifetime_earned == 30)
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_replay_days_later_still_pays_nothing() {
    let env = TestEnv::new().await;
    let u = user("dave");
    let first = env
        .app
        .store
        .post(
            &u,
            Posting::new(5, Reason::Grant, "r", "grant#t#once"),
            at("2026-11-23T08:00:00Z"),
        )
        .await
        .unwrap();
    let TxOutcome::Committed { entries, .. } = first else {
        panic!("first post must commit")
    };
    // Far beyond the 10 minutes of ClientRequestToken: the guard item is forever.
    let again = env
        .app
        .store
        .post(
            &u,
            Posting::new(5, Reason::Grant, "r", "grant#t#once"),
            at("2027-03-01T08:00:00Z"),
        )
        .await
        .unwrap();
    let TxOutcome::Replayed(guard) = again else {
        panic!("replay must not commit")
    };
    assert_eq!(guard.entry_id, entries[0].entry_id);
    assert_eq!(guard.at, at("2026-11-23T08:00:00Z"));
    assert_eq!(
        env.app.store.account(&u, e2e::fixed_now()).await.unwrap().balance,
        5
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn ledger_pages_newest_first() {
    let env = TestEnv::new().await;
    let u = user("erin");
    let now = at("2026-11-23T08:00:00Z");
    for i in 1..=7 {
        env.app
            .store
            .post(
                &u,
                Posting::new(i, Reason::Grant, "r", format!("grant#t#{i}")),
                now,
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = env.app.store.ledger_page(&u, 3, before).await.unwrap();
        seen.extend(page.entries.iter().map(|e| e.seq));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn a_business_key_paid_to_one_member_is_never_an_answer_for_another() {
    let env = TestEnv::new().await;
    let now = at("2026-11-23T08:00:00Z");
    let key = "grant#shop#shared-key";
    env.app
        .store
        .post(&user("amy"), Posting::new(5, Reason::Grant, "r", key), now)
        .await
        .unwrap();
    let err = env
        .app
        .store
        .post(&user("ben"), Posting::new(5, Reason::Grant, "r", key), now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, shared::Error::Store(shared::store::StoreError::Internal(_))),
        "{err:?}"
    );
    assert_eq!(
        env.app
            .store
            .account(&user("ben"), e2e::fixed_now())
            .await
            .unwrap()
            .balance,
        0
    );
    env.assert_audit_clean().await;
}
