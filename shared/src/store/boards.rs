//! Scores on the boards, written in the same transaction as the ledger entry that earns them, and
//! the board reads: a sharded top-N and my rank from bucket counters (see
//! [`crate::domain::boards`] and docs/data-model.md, "Leaderboards").
//!
//! An operation that may move scores runs on `store.scored(scoring)`: its ledger transaction then
//! also reads the member's score items (the three periods of the earn and each contest counting
//! it; teams in a second read, only for team contests), and writes each moved score with its
//! version condition plus the counter moves (`ADD`, two at most per score).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};

use super::tx::{OnConflict, Snapshot, Write, put_versioned};
use super::{Key, Store, StoreError, classify, from_item, keys, to_item_with_key};
use crate::domain::UserId;
use crate::domain::boards::{self, Activity, Board, Score, Standing};
use crate::domain::contests::{ContestIndex, Listed};
use crate::domain::ledger::{Posting, Reason};

/// What an operation may move on the boards.
#[derive(Debug, Clone)]
pub struct Scoring {
    /// When the counted activity happened: now for an earn, the earn's time for a reversal (its
    /// period and contests are the earn's).
    pub at: DateTime<Utc>,
    /// A check-in of this campaign (the `checkins` metric).
    pub checkin: Option<String>,
    /// A reversal of an earn with this reason.
    pub reverses: Option<Reason>,
    /// Referrals counted for the referrer (the `referrals` metric): +1 settled, -1 undone.
    pub referrals: i64,
}

impl Scoring {
    /// An earn (a purchase) at `now`.
    pub fn earn(now: DateTime<Utc>) -> Self {
        Self {
            at: now,
            checkin: None,
            reverses: None,
            referrals: 0,
        }
    }

    /// A check-in of `campaign` at `now` (its points and milestones count too).
    pub fn checkin(now: DateTime<Utc>, campaign: &str) -> Self {
        Self {
            checkin: Some(campaign.to_owned()),
            ..Self::earn(now)
        }
    }

    /// A reversal of an earn of `reason` made at `earned_at`.
    pub fn reversal(earned_at: DateTime<Utc>, reason: Reason) -> Self {
        Self {
            at: earned_at,
            checkin: None,
            reverses: Some(reason),
            referrals: 0,
        }
    }

    /// The referrer's side of a referral that qualified at `qualified_at` (its period and
    /// contests): settled (`+1`, with the reward if paid) or undone (`-1`, with the reward's
    /// reversal if it was paid).
    pub fn referral(qualified_at: DateTime<Utc>, referrals: i64) -> Self {
        Self {
            at: qualified_at,
            checkin: None,
            reverses: (referrals < 0).then_some(Reason::Referral),
            referrals,
        }
    }
}

/// A member's score on one board: `USER#<user>/SCORE#<board>` for points boards, and the contest
/// entry `USER#<user>/CONTEST#<id>` (which also records the join and the team).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardEntry {
    #[serde(default)]
    pub score: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub version: u64,
    /// Contests: when the member joined (opt-in); activity counts from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<DateTime<Utc>>,
    /// Team contests: the member's team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2sk: Option<String>,
}

/// An item that holds a score on a board (a member's entry, a team).
pub(crate) trait Scored: Serialize {
    fn score(&self) -> Score;
    fn version(&self) -> u64;
    /// The item with a new score, its index keys and the next version.
    fn moved(&self, score: &Score, gsi2pk: Option<String>, gsi2sk: Option<String>) -> Self;
}

/// `Scored` for an item with the fields `score`, `reached_at`, `version`, `gsi2pk`, `gsi2sk`.
macro_rules! scored_item {
    ($item:ident) => {
        impl Scored for $item {
            fn score(&self) -> Score {
                Score {
                    score: self.score,
                    reached_at: self.reached_at,
                }
            }

            fn version(&self) -> u64 {
                self.version
            }

            fn moved(&self, score: &Score, gsi2pk: Option<String>, gsi2sk: Option<String>) -> Self {
                $item {
                    score: score.score,
                    reached_at: score.reached_at,
                    version: self.version + 1,
                    gsi2pk,
                    gsi2sk,
                    ..self.clone()
                }
            }
        }
    };
}

scored_item!(BoardEntry);
scored_item!(Team);

/// A team of a team contest: `CONTEST#<id>#TEAM#<team>/TEAM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub team_id: String,
    pub contest_id: String,
    pub name: String,
    pub code: String,
    pub members: Vec<String>,
    #[serde(default)]
    pub score: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi2sk: Option<String>,
}

/// The index keys of an entry with `score` on `board`: none when it is off the board.
pub(crate) fn placement(board: &Board, id: &str, score: &Score) -> (Option<String>, Option<String>) {
    match score.reached_at.filter(|_| score.ranked()) {
        Some(at) => (
            Some(keys::board_shard(board, boards::shard_of(id))),
            Some(boards::sort_key(score.score, at, id)),
        ),
        None => (None, None),
    }
}

/// What one scored operation reads and may write.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    scoring: Scoring,
    periods: [Board; 3],
    /// The contests counting the activity, when the contests index was in the process's cache;
    /// otherwise the index rides in the batch read and the entries follow in a second read.
    contests: Option<Vec<Listed>>,
}

impl Targets {
    /// The member's items (and the contests index) to read with the account.
    pub(crate) fn keys(&self, user: &UserId) -> Vec<Key> {
        let mut wanted: Vec<Key> = self.periods.iter().map(|b| keys::score(user, b)).collect();
        wanted.push(keys::contests_index());
        for contest in self.contests.iter().flatten() {
            wanted.push(keys::contest_entry(user, &contest.id));
        }
        wanted
    }

    /// The contests counting the activity, as of the index read with the account (or cached).
    pub(crate) fn contests(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, StoreError> {
        if let Some(known) = &self.contests {
            return Ok(known.clone());
        }
        let index: ContestIndex = snapshot.get(&keys::contests_index())?.unwrap_or_default();
        Ok(index
            .counting_at(self.scoring.at, now)
            .into_iter()
            .cloned()
            .collect())
    }

    /// What is still to read once the batch is in: the entries of contests the cache did not
    /// know, and the member's teams (team contests only).
    pub(crate) fn second_read(
        &self,
        user: &UserId,
        contests: &[Listed],
        snapshot: &Snapshot,
    ) -> Result<Vec<Key>, StoreError> {
        let mut wanted = Vec::new();
        for contest in contests {
            let key = keys::contest_entry(user, &contest.id);
            if self.contests.is_none() {
                wanted.push(key);
                continue;
            }
            let entry: Option<BoardEntry> = snapshot.get(&key)?;
            if let Some(team) = entry.and_then(|e| e.team).filter(|_| contest.counting.team) {
                wanted.push(keys::team(&contest.id, &team));
            }
        }
        Ok(wanted)
    }

    /// The teams to read after the entries came in a second read (a third, rare).
    pub(crate) fn team_keys(
        &self,
        user: &UserId,
        contests: &[Listed],
        snapshot: &Snapshot,
    ) -> Result<Vec<Key>, StoreError> {
        let mut wanted = Vec::new();
        for contest in contests.iter().filter(|c| c.counting.team) {
            let entry: Option<BoardEntry> = snapshot.get(&keys::contest_entry(user, &contest.id))?;
            if let Some(team) = entry.and_then(|e| e.team) {
                wanted.push(keys::team(&contest.id, &team));
            }
        }
        Ok(wanted)
    }
}

impl Store {
    /// This store, for an operation that moves scores as `scoring` says.
    pub fn scored(&self, scoring: Scoring) -> Store {
        Store {
            scoring: Some(scoring),
            ..self.clone()
        }
    }

    /// One configuration item, from the process's cache while fresh.
    pub(crate) async fn config_item<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, StoreError> {
        let item = match self.cache.get(key) {
            Some(hit) => hit,
            None => {
                let item = self.get_item(key, true).await?;
                self.cache.put(key.clone(), item.clone());
                item
            }
        };
        item.map(from_item).transpose()
    }

    /// What a scored operation touches: the earn's three periods and the contests counting it
    /// (known now if the contests index is cached, else after the batch read).
    pub(crate) fn score_targets(&self, now: DateTime<Utc>) -> Result<Option<Targets>, StoreError> {
        let Some(scoring) = self.scoring.clone() else {
            return Ok(None);
        };
        let contests = match self.cache.get(&keys::contests_index()) {
            Some(item) => {
                let index: ContestIndex = item.map(from_item).transpose()?.unwrap_or_default();
                Some(index.counting_at(scoring.at, now).into_iter().cloned().collect())
            }
            None => None,
        };
        Ok(Some(Targets {
            periods: Board::periods_at(scoring.at, self.rules.zone),
            scoring,
            contests,
        }))
    }

    /// The score writes of an operation that writes `postings`.
    pub(crate) fn score_writes(
        &self,
        user: &UserId,
        targets: &Targets,
        contests: &[Listed],
        snapshot: &Snapshot,
        postings: &[Posting],
        now: DateTime<Utc>,
    ) -> Result<Vec<Write>, crate::Error> {
        let scoring = &targets.scoring;
        let activity = Activity {
            postings,
            checkin: scoring.checkin.as_deref(),
            reverses: scoring.reverses,
            referrals: scoring.referrals,
        };
        let mut writes = Vec::new();
        let points = activity.points(|_| true);
        if points != 0 {
            for board in &targets.periods {
                let key = keys::score(user, board);
                let entry: BoardEntry = snapshot.get(&key)?.unwrap_or_default();
                self.move_score(&mut writes, &key, &entry, board, user.as_str(), points, now)?;
            }
        }
        for contest in contests {
            let delta = activity.for_contest(&contest.counting);
            if delta == 0 {
                continue;
            }
            let key = keys::contest_entry(user, &contest.id);
            let entry: Option<BoardEntry> = snapshot.get(&key)?;
            // Opt-in contests count what a member did after joining.
            let counted = match &entry {
                Some(e) => !contest.counting.opt_in || e.joined_at.is_some_and(|j| j <= scoring.at),
                None => !contest.counting.opt_in,
            };
            if !counted {
                continue;
            }
            let entry = entry.unwrap_or_default();
            let team = entry.team.clone().filter(|_| contest.counting.team);
            let board = Board::Contest(contest.id.clone());
            self.move_score(&mut writes, &key, &entry, &board, user.as_str(), delta, now)?;
            if let Some(team_id) = team {
                let key = keys::team(&contest.id, &team_id);
                if let Some(team) = snapshot.get::<Team>(&key)? {
                    let board = Board::ContestTeams(contest.id.clone());
                    self.move_score(&mut writes, &key, &team, &board, &team_id, delta, now)?;
                }
            }
        }
        Ok(writes)
    }

    /// Moves one scored item (a member's entry or a team) by `delta`: its versioned put with the
    /// new score and index keys, and the counter moves. Nothing when the score does not change.
    #[allow(clippy::too_many_arguments)]
    fn move_score<T: Scored>(
        &self,
        writes: &mut Vec<Write>,
        key: &Key,
        item: &T,
        board: &Board,
        id: &str,
        delta: i64,
        now: DateTime<Utc>,
    ) -> Result<(), crate::Error> {
        let before = item.score();
        let after = before.apply(delta, now)?;
        if after == before {
            return Ok(());
        }
        let (gsi2pk, gsi2sk) = placement(board, id, &after);
        let version = item.version();
        let next = item.moved(&after, gsi2pk, gsi2sk);
        let expected = (version > 0).then_some(version);
        writes.push(Write {
            action: put_versioned(&self.table, to_item_with_key(key, &next)?, expected)?,
            on_conflict: OnConflict::Retry,
        });
        self.counter_writes(writes, board, id, before.score, after.score)
    }

    /// The bucket counter moves of an entry's score change (`ADD`, no condition: the entry's own
    /// versioned write in the same transaction orders them).
    pub(crate) fn counter_writes(
        &self,
        writes: &mut Vec<Write>,
        board: &Board,
        id: &str,
        before: u64,
        after: u64,
    ) -> Result<(), crate::Error> {
        let shard = boards::shard_of(id);
        for (bucket, step) in boards::counter_moves(before, after) {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::board_counter(board, shard, bucket).to_item()))
                .update_expression("ADD #n :d")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":d", AttributeValue::N(step.to_string()))
                .build()
                .map_err(StoreError::internal)?;
            writes.push(Write {
                action: TransactWriteItem::builder().update(update).build(),
                on_conflict: OnConflict::Retry,
            });
        }
        Ok(())
    }

    /// The top `limit` of a live board, merged from its shards (one index query per shard, in
    /// parallel): positions and ranks exact as of the index.
    pub async fn board_top(&self, board: &Board, limit: u32) -> Result<Vec<boards::Ranked>, StoreError> {
        let queries = (0..boards::SHARDS).map(|shard| self.shard_page(board, shard, None, true, limit));
        let shards = try_join_all(queries).await?;
        Ok(boards::merge_top(shards, limit as usize))
    }

    /// Up to `limit` entries of one shard from (excluding) `after`, in listing order (`forward`)
    /// or backwards.
    async fn shard_page(
        &self,
        board: &Board,
        shard: u32,
        after: Option<&str>,
        forward: bool,
        limit: u32,
    ) -> Result<Vec<Standing>, StoreError> {
        if limit == 0 {
            return Ok(vec![]);
        }
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .scan_index_forward(forward)
            .limit(limit as i32)
            .expression_attribute_values(":pk", AttributeValue::S(keys::board_shard(board, shard)));
        query = match after {
            None => query.key_condition_expression("gsi2pk = :pk"),
            Some(key) => query
                .key_condition_expression(if forward {
                    "gsi2pk = :pk AND gsi2sk > :k"
                } else {
                    "gsi2pk = :pk AND gsi2sk < :k"
                })
                .expression_attribute_values(":k", AttributeValue::S(key.to_owned())),
        };
        let out = self.bounded(query.send()).await?.map_err(classify)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| match item.get("gsi2sk") {
                Some(AttributeValue::S(key)) => boards::parse_sort_key(key)
                    .map(|(score, reached_at, id)| Standing {
                        id,
                        score,
                        reached_at,
                    })
                    .ok_or_else(|| StoreError::Internal(format!("bad board key {key}"))),
                _ => Err(StoreError::Internal("board entry without gsi2sk".into())),
            })
            .collect()
    }

    /// The rank of an entry with `score` on `board`: 1 + the entries in higher buckets (bucket
    /// counters, consistent reads) + the entries of my bucket with a strictly higher score (an
    /// index count, skipped when my bucket holds only my score). One parallel wave of at most
    /// 2 × [`boards::SHARDS`] requests, whatever the board's size.
    pub async fn board_rank(&self, board: &Board, score: u64) -> Result<u64, StoreError> {
        let mine = boards::bucket(score);
        let top = boards::bucket_top(score);
        let counters = (0..boards::SHARDS).map(|shard| self.shard_buckets(board, shard, Some(mine)));
        let in_bucket = (0..boards::SHARDS).map(|shard| self.higher_in_bucket(board, shard, score, top));
        let (counters, in_bucket) = tokio::join!(try_join_all(counters), try_join_all(in_bucket));
        let higher: i64 = counters?.into_iter().flatten().map(|(_, n)| n).sum();
        let close: u64 = in_bucket?.into_iter().sum();
        Ok(boards::rank_from_counts(higher.max(0) as u64, close))
    }

    /// Every page of `query` (following `LastEvaluatedKey`), each handed to `each`.
    pub(crate) async fn query_pages(
        &self,
        query: QueryFluentBuilder,
        mut each: impl FnMut(QueryOutput) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let page = query.clone().set_exclusive_start_key(start.take()).send();
            let out = self.bounded(page).await?.map_err(classify)?;
            let next = out.last_evaluated_key.clone().filter(|k| !k.is_empty());
            each(out)?;
            match next {
                Some(key) => start = Some(key),
                None => return Ok(()),
            }
        }
    }

    /// The bucket counters of one shard of a board, (bucket, entries), of the buckets above
    /// `above` (all of them with `None`); strongly consistent.
    pub(crate) async fn shard_buckets(
        &self,
        board: &Board,
        shard: u32,
        above: Option<u64>,
    ) -> Result<Vec<(u64, i64)>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", AttributeValue::S(keys::board_counters(board, shard)));
        let query = match above {
            Some(bucket) => query
                .key_condition_expression("pk = :pk AND sk > :b")
                .expression_attribute_values(":b", AttributeValue::S(keys::bucket_sk(bucket))),
            None => query.key_condition_expression("pk = :pk"),
        };
        let mut out = Vec::new();
        self.query_pages(query, |page| {
            for item in page.items.unwrap_or_default() {
                let bucket = match item.get(keys::SK) {
                    Some(AttributeValue::S(sk)) => keys::bucket_of_sk(sk),
                    _ => None,
                };
                let n = match item.get("n") {
                    Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                    _ => None,
                };
                match (bucket, n) {
                    (Some(bucket), Some(n)) => out.push((bucket, n)),
                    _ => return Err(StoreError::Internal("a malformed bucket counter".into())),
                }
            }
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// How many index entries of one shard have a score in `(score, top]`.
    pub(crate) async fn higher_in_bucket(
        &self,
        board: &Board,
        shard: u32,
        score: u64,
        top: u64,
    ) -> Result<u64, StoreError> {
        if top <= score {
            return Ok(0);
        }
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi2")
            .select(Select::Count)
            .key_condition_expression("gsi2pk = :pk AND gsi2sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", AttributeValue::S(keys::board_shard(board, shard)))
            .expression_attribute_values(":lo", AttributeValue::S(boards::score_prefix(top)))
            .expression_attribute_values(":hi", AttributeValue::S(boards::score_prefix(score)));
        let mut count = 0u64;
        self.query_pages(query, |page| {
            count += page.count.max(0) as u64;
            Ok(())
        })
        .await?;
        Ok(count)
    }

    /// Up to `n` entries on each side of the entry whose index key is `key`, nearest first.
    pub async fn board_neighbours(
        &self,
        board: &Board,
        key: &str,
        n: u32,
    ) -> Result<(Vec<Standing>, Vec<Standing>), StoreError> {
        let above = (0..boards::SHARDS).map(|shard| self.shard_page(board, shard, Some(key), false, n));
        let below = (0..boards::SHARDS).map(|shard| self.shard_page(board, shard, Some(key), true, n));
        let (above, below) = tokio::join!(try_join_all(above), try_join_all(below));
        Ok(boards::merge_neighbours(above?, below?, n as usize))
    }

    /// Consistent batch read of some items (more than 100 in several batches).
    pub(crate) async fn read_items(&self, wanted: Vec<Key>) -> Result<HashMap<Key, super::Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in wanted.chunks(100) {
            found.extend(self.batch_get(chunk.to_vec()).await?);
        }
        Ok(found)
    }
}
