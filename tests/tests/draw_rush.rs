//! Lucky draws under a rush, against DynamoDB Local: 1,000 members spinning at once on a split
//! stock never oversell it, with injected throttling (every 503 replayed) or `TransactionConflict`
//! and lost answers. A file of its own: the rushes load DynamoDB Local enough to time out other
//! tests' table creation if they shared a test binary.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2e::TestEnv;
use e2e::fault::{Fault, FaultProxy};
use shared::domain::ledger::Reason;

mod draws_support;
use draws_support::*;

/// 1,000 members spin at once through `proxy`; every key that answered 503 is replayed until it
/// gets a final answer. Then exactly 10 phones are awarded, a consolation instead of the phone
/// only when the spin found all three items empty, and every member's ledger holds exactly what
/// their one spin says.
async fn rush_of_1000(faults: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static) {
    // One rush at a time: two at once (2,000 requests in flight) on this machine's two cores
    // only measure how fast DynamoDB Local times out.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _rush = ONE_AT_A_TIME.lock().await;
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
                        // The app taps again after the answer's `Retry-After: 1`, spread
                        // over a second as many phones would.
                        let tries = unavailable.fetch_add(1, Ordering::SeqCst) as u64;
                        let wait = 1_000 + (i as u64 * 7 + tries * 13) % 1_000;
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
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
    env.assert_audit_clean().await;
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
