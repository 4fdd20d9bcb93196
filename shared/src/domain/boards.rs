//! Leaderboards: which board an earn lands on, how a score is stored so that a sharded index
//! lists it in order, how counter buckets make "my rank" cheap, and how shards merge into one
//! exact ranking. Pure: the store reads and writes what these functions describe.
//!
//! - A board is split into [`SHARDS`] index partitions (`gsi2pk = BOARD#<board>#<shard>`); an
//!   entry's shard is a stable hash of its id, so no partition takes every earn.
//! - The index sort key is `<inverted score>#<reached at>#<id>`: ascending order is "highest score
//!   first, then who reached it first", exactly the listing order.
//! - Per shard, a counter per score bucket ([`bucket`]) counts the entries in it. My rank is
//!   1 + the entries in higher buckets (the counters) + the entries in my bucket with a strictly
//!   higher score (one index count below my sort key, bounded by the bucket's width).

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::contests::{Counting, Metric};
use super::ids::validate_slug;
use super::ledger::{Kind, Posting, Reason};

/// Index partitions (and counter partitions) per board. Each takes at most 1,000 write units a
/// second on DynamoDB, so a board takes about `SHARDS × 500` earns a second in transactions.
pub const SHARDS: u32 = 8;
/// Entries a listing returns at most.
pub const MAX_LIMIT: u32 = 100;
/// Neighbours a `/me` read returns at most on each side.
pub const MAX_NEIGHBOURS: u32 = 10;
/// Scores below this have a bucket of their own (the most crowded scores count for free).
pub const EXACT_BELOW: u64 = 100;

/// One leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Board {
    AllTime,
    /// An ISO week of the business zone (weeks start Monday).
    Weekly {
        year: i32,
        week: u32,
    },
    /// A calendar month of the business zone.
    Monthly {
        year: i32,
        month: u32,
    },
    /// A contest's members.
    Contest(String),
    /// A team contest's teams.
    ContestTeams(String),
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Board::AllTime => f.write_str("all-time"),
            Board::Weekly { year, week } => write!(f, "weekly:{year:04}-W{week:02}"),
            Board::Monthly { year, month } => write!(f, "monthly:{year:04}-{month:02}"),
            Board::Contest(id) => write!(f, "contest:{id}"),
            Board::ContestTeams(id) => write!(f, "contest:{id}:teams"),
        }
    }
}

impl Board {
    /// The week of `at` in `zone`.
    pub fn week_of(at: DateTime<Utc>, zone: Tz) -> Board {
        let week = at.with_timezone(&zone).date_naive().iso_week();
        Board::Weekly {
            year: week.year(),
            week: week.week(),
        }
    }

    /// The month of `at` in `zone`.
    pub fn month_of(at: DateTime<Utc>, zone: Tz) -> Board {
        let day = at.with_timezone(&zone).date_naive();
        Board::Monthly {
            year: day.year(),
            month: day.month(),
        }
    }

    /// The points boards an earn made at `at` counts on: all-time, its week and its month.
    pub fn periods_at(at: DateTime<Utc>, zone: Tz) -> [Board; 3] {
        [
            Board::AllTime,
            Board::week_of(at, zone),
            Board::month_of(at, zone),
        ]
    }

    /// Reads a `{board}` path segment: `all-time`, `weekly` (the current week), `weekly:2026-W47`,
    /// `monthly`, `monthly:2026-11`, `contest:{id}`, `contest:{id}:teams`.
    pub fn parse(segment: &str, now: DateTime<Utc>, zone: Tz) -> Result<Board, DomainError> {
        let bad = || DomainError::invalid("board", format!("{segment:?} is not a board"));
        match segment {
            "all-time" => return Ok(Board::AllTime),
            "weekly" => return Ok(Board::week_of(now, zone)),
            "monthly" => return Ok(Board::month_of(now, zone)),
            _ => {}
        }
        let (kind, rest) = segment.split_once(':').ok_or_else(bad)?;
        match kind {
            "weekly" => {
                let (year, week) = rest.split_once("-W").ok_or_else(bad)?;
                let (year, week) = (year_of(year).ok_or_else(bad)?, two_digits(week).ok_or_else(bad)?);
                NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon).ok_or_else(bad)?;
                Ok(Board::Weekly { year, week })
            }
            "monthly" => {
                let (year, month) = rest.split_once('-').ok_or_else(bad)?;
                let (year, month) = (year_of(year).ok_or_else(bad)?, two_digits(month).ok_or_else(bad)?);
                NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
                Ok(Board::Monthly { year, month })
            }
            "contest" => {
                let (id, teams) = match rest.strip_suffix(":teams") {
                    Some(id) => (id, true),
                    None => (rest, false),
                };
                validate_slug("board", id).map_err(|_| bad())?;
                Ok(if teams {
                    Board::ContestTeams(id.to_owned())
                } else {
                    Board::Contest(id.to_owned())
                })
            }
            _ => Err(bad()),
        }
    }

    /// The contest this board belongs to, if it is a contest's.
    pub fn contest(&self) -> Option<&str> {
        match self {
            Board::Contest(id) | Board::ContestTeams(id) => Some(id),
            _ => None,
        }
    }
}

fn year_of(raw: &str) -> Option<i32> {
    (raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse().ok())
        .flatten()
        .filter(|y| (1970..=9999).contains(y))
}

fn two_digits(raw: &str) -> Option<u32> {
    (raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse().ok())
        .flatten()
}

/// Whether a credit with this reason counts on the points boards and for `points_earned`:
/// what a member earned by buying, checking in and bringing friends (referral rewards, both
/// sides), never what an admin or a service granted, a draw or a contest paid (no buying rank, no
/// feedback loop).
pub fn counts(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Purchase | Reason::Checkin | Reason::Milestone | Reason::Referral
    )
}

/// The index partition an entry with this id lives in (FNV-1a, stable across builds).
pub fn shard_of(id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

/// The counter bucket of a positive score: the score itself below [`EXACT_BELOW`], else the score
/// with all but its two leading digits zeroed (1234 → 1200): a bucket spans 1–10 % of its scores,
/// so at most 90 buckets a decade.
pub fn bucket(score: u64) -> u64 {
    if score < EXACT_BELOW {
        return score;
    }
    let width = bucket_width(score);
    score / width * width
}

/// The width of the bucket holding `score` (1 below [`EXACT_BELOW`]).
pub fn bucket_width(score: u64) -> u64 {
    let mut width = 1;
    let mut rest = score;
    while rest >= EXACT_BELOW {
        rest /= 10;
        width *= 10;
    }
    width
}

/// The highest score in the bucket holding `score`.
pub fn bucket_top(score: u64) -> u64 {
    bucket(score)
        .saturating_add(bucket_width(score) - 1)
        .min(MAX_SCORE)
}

/// The largest score a board keeps (scores are sums of points, capped like balances).
pub const MAX_SCORE: u64 = i64::MAX as u64;

/// The index sort key of a score: highest score first, then earliest reached, then id.
pub fn sort_key(score: u64, reached_at: DateTime<Utc>, id: &str) -> String {
    format!(
        "{}#{:015}#{id}",
        score_prefix(score),
        reached_at.timestamp_millis().max(0)
    )
}

/// The part of [`sort_key`] that only depends on the score: every key of a score starts with it,
/// and a higher score's prefix sorts first.
pub fn score_prefix(score: u64) -> String {
    format!("{:019}", MAX_SCORE - score.min(MAX_SCORE))
}

/// Reads a [`sort_key`] back.
pub fn parse_sort_key(key: &str) -> Option<(u64, DateTime<Utc>, String)> {
    let mut parts = key.splitn(3, '#');
    let inverted: u64 = parts.next()?.parse().ok()?;
    let millis: i64 = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_owned();
    let score = MAX_SCORE.checked_sub(inverted)?;
    let at = Utc.timestamp_millis_opt(millis).single()?;
    Some((score, at, id))
}

/// A score on one board: the value and when it last changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    #[serde(default)]
    pub score: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<DateTime<Utc>>,
}

impl Score {
    /// The score after `delta` at `at`: never below 0; "reached at" moves only when it changes.
    pub fn apply(&self, delta: i64, at: DateTime<Utc>) -> Result<Score, DomainError> {
        let next = if delta >= 0 {
            self.score
                .checked_add(delta.unsigned_abs())
                .filter(|s| *s <= MAX_SCORE)
                .ok_or(DomainError::Overflow)?
        } else {
            self.score.saturating_sub(delta.unsigned_abs())
        };
        if next == self.score {
            return Ok(self.clone());
        }
        Ok(Score {
            score: next,
            reached_at: Some(at),
        })
    }

    /// Whether the entry is on the board (a board lists positive scores only).
    pub fn ranked(&self) -> bool {
        self.score > 0
    }
}

/// The counter changes of a score moving from `before` to `after`: −1 in the bucket it leaves,
/// +1 in the bucket it enters; nothing when it stays in its bucket (or stays off the board).
pub fn counter_moves(before: u64, after: u64) -> Vec<(u64, i64)> {
    let from = (before > 0).then(|| bucket(before));
    let to = (after > 0).then(|| bucket(after));
    if from == to {
        return vec![];
    }
    from.map(|b| (b, -1))
        .into_iter()
        .chain(to.map(|b| (b, 1)))
        .collect()
}

/// One entry of a board, as its index key tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub id: String,
    pub score: u64,
    pub reached_at: DateTime<Utc>,
}

impl Standing {
    /// Listing order: higher score, then earlier reached, then id.
    pub fn order(&self, other: &Standing) -> Ordering {
        other
            .score
            .cmp(&self.score)
            .then(self.reached_at.cmp(&other.reached_at))
            .then(self.id.cmp(&other.id))
    }
}

/// A listed entry: its position (1, 2, 3… in listing order) and rank (equal scores share one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub position: u64,
    pub rank: u64,
    pub standing: Standing,
}

/// Merges each shard's top entries (each in listing order) into the board's top `limit`, with
/// positions and ranks. Exact as long as every shard gave its own top `limit`.
pub fn merge_top(shards: Vec<Vec<Standing>>, limit: usize) -> Vec<Ranked> {
    let mut all: Vec<Standing> = shards.into_iter().flatten().collect();
    all.sort_by(Standing::order);
    all.truncate(limit);
    rank_in_order(all, 1)
}

/// Positions and ranks for entries in listing order whose first entry is at `first_position`
/// and has no equal score before it.
pub fn rank_in_order(entries: Vec<Standing>, first_position: u64) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = Vec::with_capacity(entries.len());
    for (i, standing) in entries.into_iter().enumerate() {
        let position = first_position + i as u64;
        let rank = match ranked.last() {
            Some(prev) if prev.standing.score == standing.score => prev.rank,
            _ => position,
        };
        ranked.push(Ranked {
            position,
            rank,
            standing,
        });
    }
    ranked
}

/// The entries on each side of me, nearest first: `above` in reverse listing order per shard,
/// `below` in listing order per shard. Returns (above, below), each nearest first, `n` at most.
pub fn merge_neighbours(
    above: Vec<Vec<Standing>>,
    below: Vec<Vec<Standing>>,
    n: usize,
) -> (Vec<Standing>, Vec<Standing>) {
    let mut up: Vec<Standing> = above.into_iter().flatten().collect();
    up.sort_by(|a, b| b.order(a));
    up.truncate(n);
    let mut down: Vec<Standing> = below.into_iter().flatten().collect();
    down.sort_by(Standing::order);
    down.truncate(n);
    (up, down)
}

/// My rank from the two counts: entries in higher buckets and entries in my bucket with a
/// strictly higher score.
pub fn rank_from_counts(in_higher_buckets: u64, higher_in_my_bucket: u64) -> u64 {
    1 + in_higher_buckets + higher_in_my_bucket
}

/// What one ledger operation did, as the boards see it.
#[derive(Debug, Clone, Copy)]
pub struct Activity<'a> {
    /// Every posting the operation writes (housekeeping and tier notes never count).
    pub postings: &'a [Posting],
    /// The operation is a check-in of this campaign (never a make-up).
    pub checkin: Option<&'a str>,
    /// The operation reverses an earn of this reason.
    pub reverses: Option<Reason>,
    /// Referrals the operation counts for the referrer (`referrals` metric): +1 when one is
    /// settled (paid or capped), -1 when a settled one is revoked or reversed.
    pub referrals: i64,
}

impl Activity<'_> {
    /// How the points boards move: credits of counted reasons raise them; a reversal of a counted
    /// earn lowers them by what it takes back (its forgiven expired share included, since the
    /// earn raised the score by the whole amount). `counted` narrows the reasons (a contest's).
    pub fn points(&self, counted: impl Fn(Reason) -> bool) -> i64 {
        let mut sum: i64 = 0;
        for posting in self.postings {
            let delta = match (&posting.kind, posting.reason) {
                (Kind::Reverse { forgiven, .. }, Reason::Reversal) => match self.reverses {
                    Some(earned) if counts(earned) && counted(earned) => posting.delta - forgiven,
                    _ => 0,
                },
                (_, reason) if counts(reason) && counted(reason) && posting.delta > 0 => posting.delta,
                _ => 0,
            };
            sum = sum.saturating_add(delta);
        }
        sum
    }

    /// How a contest's score moves.
    pub fn for_contest(&self, counting: &Counting) -> i64 {
        match counting.metric {
            Metric::PointsEarned => self.points(|r| counting.reasons.contains(&r)),
            Metric::Checkins => i64::from(
                self.reverses.is_none()
                    && self.checkin.is_some()
                    && self.checkin == counting.campaign.as_deref(),
            ),
            Metric::Referrals => self.referrals,
        }
    }
}

#[cfg(test)]
mod tests;
