//! What boards and settlement cost as a board grows, measured through the recording proxy (round
//! trips, and the capacity DynamoDB Local reports: a regression threshold, not AWS's bill).
//!
//! A board of 1,000 and one of 20,000 contest entries are seeded straight into the table in the
//! shape the earn path writes (entries with their index keys, and the bucket counters that agree
//! with them); then my rank is read and a contest with 100 prizes is settled on each.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use e2e::fault::FaultProxy;
use e2e::{TestEnv, member_token};
use shared::domain::boards::{self, Board};
use shared::domain::contests::{ContestSpec, Metric, Prize};
use shared::store::{SettleOutcome, keys};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn text(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// A score spread like real activity: every value from 1 to 5,000 taken about equally.
fn score_of(i: u64) -> u64 {
    1 + (i * 7_919) % 5_000
}

fn member(i: u64) -> String {
    format!("p{i:06}")
}

/// Writes `n` entries of contest `id` (and their bucket counters), as scored earns would have.
async fn seed(env: &TestEnv, id: &str, n: u64) {
    let board = Board::Contest(id.to_owned());
    let joined = at("2026-11-24T00:00:00Z");
    let mut counters: BTreeMap<(u32, u64), i64> = BTreeMap::new();
    let mut requests = Vec::new();
    for i in 0..n {
        let user = e2e::user(&member(i));
        let score = score_of(i);
        let reached = joined + Duration::seconds(i as i64);
        let shard = boards::shard_of(user.as_str());
        *counters.entry((shard, boards::bucket(score))).or_default() += 1;
        let key = keys::contest_entry(&user, id);
        let mut item = key.to_item();
        item.insert("score".into(), AttributeValue::N(score.to_string()));
        item.insert("reached_at".into(), text(reached));
        item.insert("version".into(), AttributeValue::N("1".into()));
        item.insert("joined_at".into(), text(joined));
        item.insert(
            "gsi2pk".into(),
            AttributeValue::S(keys::board_shard(&board, shard)),
        );
        item.insert(
            "gsi2sk".into(),
            AttributeValue::S(boards::sort_key(score, reached, user.as_str())),
        );
        requests.push(item);
    }
    for ((shard, bucket), count) in counters {
        let mut item = keys::board_counter(&board, shard, bucket).to_item();
        item.insert("n".into(), AttributeValue::N(count.to_string()));
        requests.push(item);
    }
    let client = env.app.store.client().clone();
    let table = env.table.clone();
    let chunks: Vec<Vec<_>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    let chunks = Arc::new(std::sync::Mutex::new(chunks));
    e2e::concurrently(8, move |_| {
        let (client, table, chunks) = (client.clone(), table.clone(), chunks.clone());
        async move {
            loop {
                let Some(chunk) = chunks.lock().unwrap().pop() else {
                    return;
                };
                let mut writes: Vec<WriteRequest> = chunk
                    .into_iter()
                    .map(|item| {
                        WriteRequest::builder()
                            .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                            .build()
                    })
                    .collect();
                while !writes.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, writes)
                        .send()
                        .await
                        .expect("seed");
                    writes = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                }
            }
        }
    })
    .await;
}

/// Round trips by operation, and capacity units.
#[derive(Debug, Clone, PartialEq)]
struct Cost {
    calls: BTreeMap<String, usize>,
    capacity: f64,
}

fn cost_of(proxy: &FaultProxy, since: usize) -> Cost {
    let mut calls = BTreeMap::new();
    for call in proxy.since(since) {
        *calls.entry(call.operation).or_default() += 1;
    }
    Cost {
        calls,
        capacity: proxy.capacity_since(since),
    }
}

/// My rank (in the middle of the board) and a settlement of 100 prizes, on a board of `n`.
async fn measure(n: u64) -> (Cost, Cost) {
    let env = TestEnv::new().await;
    let spec = ContestSpec {
        title: "Big".into(),
        description: String::new(),
        starts_at: at("2026-11-24T00:00:00Z"),
        ends_at: at("2026-11-25T00:00:00Z"),
        metric: Metric::PointsEarned,
        reasons: None,
        campaign: None,
        entry: Default::default(),
        format: Default::default(),
        team_size: None,
        prizes: vec![Prize {
            from: 1,
            to: 100,
            points: Some(10),
            item: None,
        }],
        grace_seconds: None,
    };
    env.app
        .store
        .put_contest("big", spec, at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();
    seed(&env, "big", n).await;
    let proxy = FaultProxy::start(e2e::endpoint(), Arc::new(|_, _| None)).await;
    let app = e2e::app_for(shared::store::local_client(&proxy.endpoint), &env.table);
    let api = e2e::spawn_api(app.clone()).await;
    // Warm the configuration cache, then read the rank of a member in the middle.
    // The same member (and score: 4,501, in a bucket 100 wide) on both boards.
    let who = member(500);
    let path = "/v1/leaderboards/contest:big/me?neighbours=2";
    let during = Some("2026-11-24T12:00:00Z");
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
            at("2026-11-25T00:05:00Z"),
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
