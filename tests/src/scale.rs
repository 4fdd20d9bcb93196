//! Big boards, seeded straight into the table in the shape the earn path writes (contest entries
//! with their index keys, and the bucket counters that agree with them), and what reading or
//! settling them costs as seen by a recording proxy. Used by `tests/contest_cost.rs` and the
//! benchmark (`tools/bench`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use shared::domain::boards::{self, Board};
use shared::domain::contests::{ContestSpec, Metric, Prize};
use shared::store::keys;

use crate::fault::FaultProxy;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a time")
}

fn text(t: DateTime<Utc>) -> AttributeValue {
    AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// When the seeded contest runs: 2026-11-24 (UTC), a day long.
pub const STARTS: &str = "2026-11-24T00:00:00Z";
pub const ENDS: &str = "2026-11-25T00:00:00Z";
/// A moment during the seeded contest, and one after its end (to settle it).
pub const DURING: &str = "2026-11-24T12:00:00Z";
pub const AFTER: &str = "2026-11-25T00:05:00Z";

/// A score spread like real activity: every value from 1 to 5,000 taken about equally.
pub fn score_of(i: u64) -> u64 {
    1 + (i * 7_919) % 5_000
}

/// The `i`th seeded member.
pub fn member(i: u64) -> String {
    format!("p{i:07}")
}

/// A points contest run on the seeded day with `prizes` single-place prizes of 10 points.
pub fn contest_spec(prizes: u64) -> ContestSpec {
    ContestSpec {
        title: "Big".into(),
        description: String::new(),
        starts_at: at(STARTS),
        ends_at: at(ENDS),
        metric: Metric::PointsEarned,
        reasons: None,
        campaign: None,
        entry: Default::default(),
        format: Default::default(),
        team_size: None,
        prizes: vec![Prize {
            from: 1,
            to: prizes,
            points: Some(10),
            item: None,
        }],
        grace_seconds: None,
    }
}

/// Writes the entries `from..to` of contest `id` (and the bucket counters of entries `0..to`), as
/// scored earns would have, with batch writes from 8 tasks: a board grows by seeding `0..n`, then
/// `n..m`. `progress` is told how many items are written so far.
pub async fn seed(
    client: &Client,
    table: &str,
    id: &str,
    (from, to): (u64, u64),
    progress: &(dyn Fn(u64) + Sync),
) {
    let board = Board::Contest(id.to_owned());
    let joined = at(STARTS);
    let mut counters: BTreeMap<(u32, u64), i64> = BTreeMap::new();
    let mut requests = Vec::new();
    for i in 0..to {
        let user = crate::user(&member(i));
        let score = score_of(i);
        let reached = joined + Duration::seconds(i as i64 % 86_000);
        let shard = boards::shard_of(user.as_str());
        *counters.entry((shard, boards::bucket(score))).or_default() += 1;
        if i < from {
            continue;
        }
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
    let chunks: Vec<Vec<_>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    let chunks = Arc::new(std::sync::Mutex::new(chunks));
    let written = AtomicU64::new(0);
    let work = (0..8).map(|_| {
        let (client, table, chunks, written) = (client, table, chunks.clone(), &written);
        async move {
            loop {
                let Some(chunk) = chunks.lock().expect("lock").pop() else {
                    return;
                };
                let size = chunk.len() as u64;
                let mut writes: Vec<WriteRequest> = chunk
                    .into_iter()
                    .map(|item| {
                        WriteRequest::builder()
                            .put_request(PutRequest::builder().set_item(Some(item)).build().expect("put"))
                            .build()
                    })
                    .collect();
                while !writes.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(table, writes)
                        .send()
                        .await
                        .expect("seed");
                    writes = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(table))
                        .unwrap_or_default();
                }
                progress(written.fetch_add(size, Ordering::Relaxed) + size);
            }
        }
    });
    futures_util::future::join_all(work).await;
}

/// Round trips by operation, and capacity units as DynamoDB Local reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub calls: BTreeMap<String, usize>,
    pub capacity: f64,
}

impl Cost {
    /// All round trips.
    pub fn round_trips(&self) -> usize {
        self.calls.values().sum()
    }
}

/// The calls `proxy` saw after its first `since`.
pub fn cost_of(proxy: &FaultProxy, since: usize) -> Cost {
    let mut calls = BTreeMap::new();
    for call in proxy.since(since) {
        *calls.entry(call.operation).or_default() += 1;
    }
    Cost {
        calls,
        capacity: proxy.capacity_since(since),
    }
}
