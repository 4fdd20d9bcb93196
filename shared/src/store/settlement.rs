//! Contest settlement, exactly once: (1) freeze the result into one item written by one
//! conditional put (a second or re-run adopts it), (2) pay each prize from that snapshot through
//! the ledger (business key `contest#<id>#<member>`) or record it to fulfil (a deterministic
//! fulfilment id, put if absent), checkpointing progress on the contest, (3) mark the contest
//! settled with totals. Any run may stop after any write; the next run continues from the
//! checkpoint, and whatever it repeats is refused by the ledger's guard or the fulfilment's
//! condition.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::boards::{BoardEntry, Scored, Team};
use super::contests::{Fulfilment, FulfilmentStatus, contest_item};
use super::{ContestResult, Key, Store, StoreError, TxOutcome, from_item, keys, to_item_with_key};
use crate::domain::UserId;
use crate::domain::boards::{self, Board, Standing};
use crate::domain::contests::{self, Contest, Payout, Progress, Settled, Unpaid};
use crate::domain::ledger::{Posting, Reason};
use crate::metrics::{self, Metric};

/// Payouts between two checkpoints (a re-run after a kill repeats at most this many, each
/// refused by its guard).
pub const CHECKPOINT_EVERY: u64 = 25;

/// What one run did with one contest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SettleOutcome {
    /// Settled now, with these totals.
    Settled { totals: Settled },
    /// Settled before (by an earlier or a concurrent run).
    AlreadySettled,
    /// Not due yet, or cancelled.
    NotDue,
    /// The ranking index had not caught up with the table (its counters disagree): nothing was
    /// frozen; the next run tries again.
    IndexBehind,
    /// The run neared its deadline: progress is checkpointed, the next run continues.
    Checkpointed { next: u64, of: u64 },
}

/// One contest's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContestSettlement {
    pub contest_id: String,
    #[serde(flatten)]
    pub outcome: SettleOutcome,
}

impl Store {
    /// Settles every contest that is due at `now`, oldest first, stopping (with a checkpoint)
    /// when `stop_at` comes.
    pub async fn settle_due(
        &self,
        now: DateTime<Utc>,
        stop_at: Instant,
    ) -> Result<Vec<ContestSettlement>, crate::Error> {
        let mut done = Vec::new();
        for id in self.contests_due(now).await? {
            if Instant::now() >= stop_at {
                break;
            }
            let outcome = self.settle_contest(&id, now, stop_at).await?;
            done.push(ContestSettlement {
                contest_id: id,
                outcome,
            });
        }
        Ok(done)
    }

    /// Settles one contest if it is due (see the module docs).
    pub async fn settle_contest(
        &self,
        id: &str,
        now: DateTime<Utc>,
        stop_at: Instant,
    ) -> Result<SettleOutcome, crate::Error> {
        let Some(mut contest) = self.contest(id).await? else {
            return Ok(SettleOutcome::NotDue);
        };
        if contest.settled.is_some() {
            return Ok(SettleOutcome::AlreadySettled);
        }
        if !contest.due(now) {
            return Ok(SettleOutcome::NotDue);
        }
        // (1) The snapshot: the first run's, whoever took it.
        let result = match self.contest_result(id).await? {
            Some(result) => result,
            None => {
                let Some(result) = self.freeze(&contest, now).await? else {
                    tracing::warn!(
                        contest = id,
                        "ranking index behind its counters; settlement waits"
                    );
                    return Ok(SettleOutcome::IndexBehind);
                };
                let item = to_item_with_key(&keys::contest_result(id), &result)?;
                if self.put_if_version(item, None).await? {
                    result
                } else {
                    self.contest_result(id)
                        .await?
                        .ok_or_else(|| StoreError::Internal("a result vanished".into()))?
                }
            }
        };
        // (2) Pay from the snapshot, from the checkpoint on.
        let payouts = contests::payouts(&contest.spec, &result.positions, result.team);
        let mut progress = contest.progress.clone().unwrap_or_default();
        let mut since_checkpoint = 0;
        while let Some(payout) = payouts.get(progress.next as usize) {
            if Instant::now() >= stop_at {
                return match self.checkpoint(&mut contest, &mut progress, None).await? {
                    true => Ok(SettleOutcome::AlreadySettled),
                    false => Ok(SettleOutcome::Checkpointed {
                        next: progress.next,
                        of: payouts.len() as u64,
                    }),
                };
            }
            match self.pay(&contest, payout, now).await {
                Ok(()) => {}
                Err(crate::Error::Domain(err)) => {
                    tracing::warn!(contest = id, user = %payout.user_id, %err, "prize not paid; recorded");
                    progress.unpaid.push(Unpaid {
                        position: payout.position,
                        user_id: payout.user_id.clone(),
                        reason: err.to_string(),
                    });
                }
                Err(err) => {
                    // Keep what is done; the next run continues (or repeats, refused by guards).
                    if since_checkpoint > 0
                        && let Err(cp) = self.checkpoint(&mut contest, &mut progress, None).await
                    {
                        tracing::warn!(contest = id, error = %cp, "checkpoint after a failure failed");
                    }
                    return Err(err);
                }
            }
            progress.next += 1;
            since_checkpoint += 1;
            if since_checkpoint >= CHECKPOINT_EVERY && (progress.next as usize) < payouts.len() {
                if self.checkpoint(&mut contest, &mut progress, None).await? {
                    return Ok(SettleOutcome::AlreadySettled);
                }
                since_checkpoint = 0;
            }
        }
        // (3) Settled, with totals from the snapshot and the unpaid list.
        let totals = Settled::totals(&payouts, &progress.unpaid, now);
        match self.checkpoint(&mut contest, &mut progress, Some(totals)).await? {
            true => Ok(SettleOutcome::AlreadySettled),
            false => {
                metrics::count(Metric::ContestsSettled, 1);
                Ok(SettleOutcome::Settled {
                    totals: contest.settled.clone().unwrap_or_default(),
                })
            }
        }
    }

    /// Writes progress (and, with `settled`, the end) on the contest, version-checked. On a lost
    /// race with a concurrent run, the further progress wins (unpaid lists merged). True when
    /// another run settled the contest meanwhile.
    async fn checkpoint(
        &self,
        contest: &mut Contest,
        progress: &mut Progress,
        settled: Option<Settled>,
    ) -> Result<bool, crate::Error> {
        for attempt in 0..super::points::CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
                let current = self
                    .contest(&contest.id)
                    .await?
                    .ok_or_else(|| StoreError::Internal("a contest vanished".into()))?;
                if current.settled.is_some() {
                    *contest = current;
                    return Ok(true);
                }
                if let Some(theirs) = &current.progress {
                    progress.next = progress.next.max(theirs.next);
                    for unpaid in &theirs.unpaid {
                        if !progress.unpaid.contains(unpaid) {
                            progress.unpaid.push(unpaid.clone());
                        }
                    }
                }
                *contest = current;
            }
            let next = Contest {
                progress: Some(progress.clone()),
                settled: settled.clone(),
                version: contest.version + 1,
                ..contest.clone()
            };
            if self
                .put_if_version(contest_item(&next)?, Some(contest.version))
                .await?
            {
                *contest = next;
                self.cache.forget(&keys::contest(&contest.id));
                return Ok(false);
            }
        }
        Err(StoreError::Contention(super::points::CONFIG_ATTEMPTS).into())
    }

    /// Pays one prize: points through the ledger (once per member and contest, whatever runs
    /// repeat it), or a fulfilment record (once per deterministic id).
    async fn pay(&self, contest: &Contest, payout: &Payout, now: DateTime<Utc>) -> Result<(), crate::Error> {
        let user = UserId::parse(&payout.user_id)?;
        if let Some(points) = payout.points {
            let mut posting = Posting::new(
                points,
                Reason::ContestPrize,
                format!("contest:{}", contest.id),
                keys::business::contest(&contest.id, &user),
            );
            posting.by = Some("settlement".into());
            posting.note = Some(format!("position {}", payout.position));
            match self.post(&user, posting, now).await? {
                TxOutcome::Committed { .. } => metrics::count(Metric::ContestPrizes, 1),
                TxOutcome::Replayed(_) => {}
                other => {
                    return Err(StoreError::Internal(format!("a prize posting answered {other:?}")).into());
                }
            }
        }
        if let Some(item) = &payout.item {
            let source = format!("contest:{}", contest.id);
            self.record_fulfilment(&Fulfilment {
                fulfilment_id: fulfilment_id(&source, &user),
                source,
                user_id: user.to_string(),
                item: item.clone(),
                detail: format!("position {}", payout.position),
                status: FulfilmentStatus::ToFulfil,
                created_at: now,
                shipped_at: None,
            })
            .await?;
        }
        Ok(())
    }

    /// Takes the result: the prize-winning positions of the board, read from the index and
    /// re-verified against the table (scores from the base items, completeness from the bucket
    /// counters). `None` when the index has not caught up.
    async fn freeze(
        &self,
        contest: &Contest,
        now: DateTime<Utc>,
    ) -> Result<Option<ContestResult>, crate::Error> {
        let team = contest.spec.counting().team;
        let board = match team {
            true => Board::ContestTeams(contest.id.clone()),
            false => Board::Contest(contest.id.clone()),
        };
        let last = contest.spec.last_prize_position() as usize;
        let mut result = ContestResult {
            contest_id: contest.id.clone(),
            taken_at: now,
            team,
            positions: vec![],
        };
        if last == 0 {
            return Ok(Some(result));
        }
        let candidates = self.board_top(&board, last as u32).await?;
        let key_of = |id: &str| -> Option<Key> {
            match team {
                true => Some(keys::team(&contest.id, id)),
                false => UserId::parse(id)
                    .ok()
                    .map(|u| keys::contest_entry(&u, &contest.id)),
            }
        };
        let wanted: Vec<(String, Key)> = candidates
            .iter()
            .filter_map(|r| key_of(&r.standing.id).map(|k| (r.standing.id.clone(), k)))
            .collect();
        let found = self
            .read_items(wanted.iter().map(|(_, k)| k.clone()).collect())
            .await?;
        let mut verified = Vec::new();
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, key) in wanted {
            let Some(item) = found.get(&key).cloned() else {
                continue;
            };
            let score = match team {
                true => {
                    let team: Team = from_item(item)?;
                    members.insert(id.clone(), team.members.clone());
                    team.score()
                }
                false => from_item::<BoardEntry>(item)?.score(),
            };
            if let Some(reached_at) = score.reached_at.filter(|_| score.ranked()) {
                verified.push(Standing {
                    id,
                    score: score.score,
                    reached_at,
                });
            }
        }
        verified.sort_by(Standing::order);
        let counters = self.bucket_counts(&board).await?;
        let indexed_in_boundary = match verified.get(last - 1) {
            Some(boundary) => self.indexed_in_bucket(&board, boundary.score).await?,
            None => 0,
        };
        if !contests::top_is_complete(&verified, last, &counters, indexed_in_boundary) {
            return Ok(None);
        }
        result.positions = contests::winners(&contest.spec, &verified);
        for winner in &mut result.positions {
            winner.members = members.remove(&winner.id).unwrap_or_default();
        }
        Ok(Some(result))
    }

    /// Every bucket counter of a board (bucket → entries), summed over shards; strongly
    /// consistent. Its size follows the number of distinct buckets, not of entries.
    async fn bucket_counts(&self, board: &Board) -> Result<BTreeMap<u64, u64>, StoreError> {
        let shards = (0..boards::SHARDS).map(|shard| self.shard_buckets(board, shard, None));
        let mut counts = BTreeMap::new();
        for shard in try_join_all(shards).await? {
            for (bucket, n) in shard {
                *counts.entry(bucket).or_insert(0i64) += n;
            }
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(b, n)| (b, n as u64))
            .collect())
    }

    /// How many entries the index holds in the bucket of `score`.
    async fn indexed_in_bucket(&self, board: &Board, score: u64) -> Result<u64, StoreError> {
        let low = boards::bucket(score);
        let top = boards::bucket_top(score);
        let shards = (0..boards::SHARDS).map(|shard| self.higher_in_bucket(board, shard, low - 1, top));
        Ok(try_join_all(shards).await?.into_iter().sum())
    }
}

/// The fulfilment of a member's prize from one source: the same id on every run.
pub(crate) fn fulfilment_id(source: &str, user: &UserId) -> String {
    let digest = Sha256::digest(format!("{source}#{user}").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("f{hex}")
}
