//! What boards and settlement cost as a board grows, measured through the recording proxy (round
//! trips, and the capacity DynamoDB Local reports: a regression threshold, not AWS's bill).
//!
//! A board of 1,000 and one of 20,000 contest entries are seeded straight into the table in the
//! shape the earn path writes (entries with their index keys, and the bucket counters that agree
//! with them); then my rank is read and a contest with 100 prizes is settled on each.

use std::sync::Arc;

use e2e::fault::FaultProxy;
use e2e::scale::{AFTER, Cost, DURING, contest_spec, cost_of, member, score_of, seed};
use e2e::{TestEnv, member_token};
use shared::store::SettleOutcome;

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

/// My rank (in the middle of the board) and a settlement of 100 prizes, on a board of `n`.
async fn measure(n: u64) -> (Cost, Cost) {
    let env = TestEnv::new().await;
    let spec = contest_spec(100);
    env.app
        .store
        .put_contest("big", spec, at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    seed(env.app.store.client(), &env.table, "big", (0, n), &|_| ()).await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let api = e2e::spawn_api(app.clone()).await;
    // Warm the configuration cache, then read the rank of a member in the middle.
    // The same member (and score: 4,501, in a bucket 100 wide) on both boards.
    let who = member(500);
    let path = "/v1/leaderboards/contest:big/me?neighbours=2";
    let during = Some(DURING);
    assert_eq!(api.get(path, Some(&member_token(&who)), during).await.status, 200);
    let before = proxy.total();
    let mine = api.get(path, Some(&member_token(&who)), during).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    // The rank is exact: 1 + the entries with a strictly higher score.
    let my_score = score_of(500);
    let higher = (0..n).filter(|i| score_of(*i) > my_score).count() as u64;
    assert_eq!(mine.body["rank"], higher + 1);
    let rank_cost = cost_of(&proxy, before);

    let before = proxy.total();
    let outcome = app
        .store
        .settle_contest(
            "big",
            at(AFTER),
            std::time::Instant::now() + std::time::Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, SettleOutcome::Settled { .. }), "{outcome:?}");
    let settle_cost = cost_of(&proxy, before);
    // The winners are the true top 100.
    let result = env.app.store.contest_result("big").await.unwrap().unwrap();
    let mut want: Vec<(u64, String)> = (0..n).map(|i| (score_of(i), member(i))).collect();
    want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let got: Vec<(u64, String)> = result.positions.iter().map(|w| (w.score, w.id.clone())).collect();
    assert_eq!(got, want[..100]);
    (rank_cost, settle_cost)
}

#[tokio::test]
async fn my_rank_and_settlement_cost_the_same_at_1k_and_20k_entries() {
    let (rank_1k, settle_1k) = measure(1_000).await;
    let (rank_20k, settle_20k) = measure(20_000).await;
    println!("my rank:    1k {rank_1k:?}\n           20k {rank_20k:?}");
    println!("settlement: 1k {settle_1k:?}\n           20k {settle_20k:?}");
    // My rank: the same requests, at most twice the capacity.
    assert_eq!(rank_1k.calls, rank_20k.calls);
    assert!(
        rank_20k.capacity <= 2.0 * rank_1k.capacity,
        "{} vs {}",
        rank_20k.capacity,
        rank_1k.capacity
    );
    // Settlement follows the winners: the same requests, and capacity within 10 %.
    assert_eq!(settle_1k.calls, settle_20k.calls);
    assert!(
        settle_20k.capacity <= 1.1 * settle_1k.capacity,
        "{} vs {}",
        settle_20k.capacity,
        settle_1k.capacity
    );
    // 100 prizes: one ledger transaction each, nothing per participant.
    assert_eq!(settle_1k.calls.get("TransactWriteItems"), Some(&100));
}
