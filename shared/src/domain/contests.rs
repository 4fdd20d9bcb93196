//! Contests (积分挑战赛): a period, a metric, prizes by position, solo or in teams; the index the
//! earn path reads to know which contests count; and how a frozen result maps to prizes.
//!
//! Rules fixed here (docs/data-model.md, "Contests"):
//! - A contest counts activity at `starts_at <= at < ends_at`; its scores never change after
//!   `ends_at` (later reversals leave them), and settlement runs after `ends_at + grace`.
//! - Prizes go by *position* (listing order: higher score, then who reached it first), so equal
//!   scores at a prize boundary are decided by time, never at random.
//! - At most [`MAX_ACTIVE`] contests overlap at any instant (each is written in every earn
//!   transaction of its members) and at most [`MAX_LISTED`] are listed (upcoming or running).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::boards::{self, Standing};
use super::ids::validate_slug;
use super::ledger::{MAX_POSTING, Reason};
use super::members;

/// Contests that may be running at one instant (the transaction budget: each adds up to 6 actions
/// to an earn).
pub const MAX_ACTIVE: usize = 5;
/// Contests listed at once, upcoming and running (the home index's limit).
pub const MAX_LISTED: usize = super::home::MAX_INDEX_ENTRIES;
/// Largest team.
pub const MAX_TEAM_SIZE: u32 = 50;
/// Last prize position of a solo contest (the frozen result is one item, far below 400 KB).
pub const MAX_SOLO_WINNERS: u64 = 1_000;
/// Last prize position of a team contest (every member of a winning team is paid).
pub const MAX_TEAM_WINNERS: u64 = 20;
/// Prize ranges a contest has at most.
pub const MAX_PRIZES: usize = 20;
/// Seconds after the end before settlement, unless configured.
pub const DEFAULT_GRACE_SECONDS: u32 = 60;
/// Seconds on top of the configuration cache's lifetime a start must lie ahead.
pub const START_MARGIN_SECONDS: i64 = 30;
/// Longest contest.
pub const MAX_DAYS: i64 = 366;

/// What a contest ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Points credited (after multipliers) for the counted reasons.
    PointsEarned,
    /// Check-ins (never make-ups) of one campaign.
    Checkins,
    /// Friends referred: a referral counts for the referrer when it qualifies inside the window
    /// (capped ones too); a revoked or reversed one is taken off while the contest runs.
    Referrals,
}

/// Who is in the contest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryMode {
    /// Members join (`POST /v1/contests/{id}/entries`); activity counts from the join.
    #[default]
    OptIn,
    /// Every member's activity counts.
    Everyone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Solo,
    Team,
}

/// The prize of positions `from..=to`: points, or something to fulfil (`item`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prize {
    pub from: u64,
    pub to: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// What an admin puts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContestSpec {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub metric: Metric,
    /// `points_earned` only: the counted reasons, narrowed (default all of `purchase`, `checkin`,
    /// `milestone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Reason>>,
    /// `checkins` only: the campaign whose check-ins count (default `daily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default)]
    pub entry: EntryMode,
    #[serde(default)]
    pub format: Format,
    /// `team` only: most members a team has (≤ 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_size: Option<u32>,
    #[serde(default)]
    pub prizes: Vec<Prize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u32>,
}

/// Where a contest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Upcoming,
    Running,
    /// Ended, waiting for settlement.
    Ended,
    Settled,
    Cancelled,
}

/// What settlement recorded when it was done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    pub at: DateTime<Utc>,
    pub winners: u64,
    pub points_paid: i64,
    pub to_fulfil: u64,
    /// Winners that could not be paid (recorded, skipped; a prize never moves down).
    #[serde(default)]
    pub unpaid: u64,
}

/// A stored contest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contest {
    pub id: String,
    pub spec: ContestSpec,
    #[serde(default)]
    pub cancelled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<Settled>,
    /// Settlement's checkpoint while it pays (absent before and after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl ContestSpec {
    pub fn grace(&self) -> Duration {
        Duration::seconds(i64::from(self.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS)))
    }

    /// When settlement may run.
    pub fn settle_after(&self) -> DateTime<Utc> {
        self.ends_at + self.grace()
    }

    /// What the earn path needs to know.
    pub fn counting(&self) -> Counting {
        Counting {
            metric: self.metric,
            reasons: match self.metric {
                Metric::PointsEarned => self.reasons.clone().unwrap_or_else(all_counted),
                Metric::Checkins | Metric::Referrals => vec![],
            },
            campaign: match self.metric {
                Metric::Checkins => Some(self.campaign.clone().unwrap_or_else(|| "daily".to_owned())),
                Metric::PointsEarned | Metric::Referrals => None,
            },
            opt_in: self.entry == EntryMode::OptIn || self.format == Format::Team,
            team: self.format == Format::Team,
        }
    }

    /// The last prize position (0 without prizes).
    pub fn last_prize_position(&self) -> u64 {
        self.prizes.iter().map(|p| p.to).max().unwrap_or(0)
    }

    /// The prize of a position, if any.
    pub fn prize_for(&self, position: u64) -> Option<&Prize> {
        self.prizes
            .iter()
            .find(|p| p.from <= position && position <= p.to)
    }
}

/// How many reasons a `points_earned` contest can count (`all_counted`).
const COUNTED_REASONS: usize = 4;

fn all_counted() -> Vec<Reason> {
    vec![
        Reason::Purchase,
        Reason::Checkin,
        Reason::Milestone,
        Reason::Referral,
    ]
}

impl Contest {
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        if self.cancelled {
            Status::Cancelled
        } else if self.settled.is_some() {
            Status::Settled
        } else if now < self.spec.starts_at {
            Status::Upcoming
        } else if now < self.spec.ends_at {
            Status::Running
        } else {
            Status::Ended
        }
    }

    /// Whether settlement is due at `now`.
    pub fn due(&self, now: DateTime<Utc>) -> bool {
        !self.cancelled && self.settled.is_none() && now >= self.spec.settle_after()
    }
}

/// Checks a new or changed contest. `existing` is the stored one; `cache_seconds` is how long a
/// warm function may keep the index it read, so every function knows a contest before it begins.
pub fn validate(
    id: &str,
    spec: ContestSpec,
    existing: Option<&Contest>,
    now: DateTime<Utc>,
    cache_seconds: u32,
) -> Result<ContestSpec, DomainError> {
    validate_slug("id", id)?;
    let spec = normalize(spec)?;
    let lead = Duration::seconds(i64::from(cache_seconds) + START_MARGIN_SECONDS);
    let Some(existing) = existing else {
        if spec.starts_at < now + lead {
            return Err(DomainError::invalid(
                "starts_at",
                format!("must be at least {} s ahead", lead.num_seconds()),
            ));
        }
        return Ok(spec);
    };
    if existing.cancelled {
        return Err(DomainError::invalid("id", "the contest is cancelled"));
    }
    if now < existing.spec.starts_at {
        // Not started: anything valid, as long as every function learns it before the start.
        let earliest = if spec.starts_at == existing.spec.starts_at && existing.spec.starts_at >= now + lead {
            now
        } else {
            now + lead
        };
        if spec.starts_at < earliest {
            return Err(DomainError::invalid(
                "starts_at",
                format!("must be at least {} s ahead", lead.num_seconds()),
            ));
        }
        return Ok(spec);
    }
    // Started: the published rules stand; it may only run longer or pay more.
    if existing.settled.is_some() || now >= existing.spec.ends_at {
        return Err(DomainError::invalid("id", "the contest has ended"));
    }
    let same_rules = ContestSpec {
        ends_at: existing.spec.ends_at,
        prizes: existing.spec.prizes.clone(),
        ..spec.clone()
    };
    if same_rules != existing.spec {
        return Err(DomainError::invalid(
            "contest",
            "after the start only ends_at (later) and prizes (added) may change",
        ));
    }
    if spec.ends_at < existing.spec.ends_at {
        return Err(DomainError::invalid(
            "ends_at",
            "a running contest may only be extended",
        ));
    }
    if spec.ends_at != existing.spec.ends_at && existing.spec.ends_at < now + lead {
        return Err(DomainError::invalid(
            "ends_at",
            format!(
                "an extension must come at least {} s before the current end",
                lead.num_seconds()
            ),
        ));
    }
    if !spec.prizes.starts_with(&existing.spec.prizes) {
        return Err(DomainError::invalid(
            "prizes",
            "a running contest keeps its prizes; new ones are added after them",
        ));
    }
    Ok(spec)
}

/// Checks a spec on its own and fills its defaults.
fn normalize(mut spec: ContestSpec) -> Result<ContestSpec, DomainError> {
    spec.title = spec.title.trim().to_owned();
    if spec.title.is_empty() || spec.title.chars().count() > 80 {
        return Err(DomainError::invalid("title", "1-80 characters"));
    }
    if spec.description.chars().count() > 2_000 {
        return Err(DomainError::invalid("description", "at most 2000 characters"));
    }
    if spec
        .title
        .chars()
        .chain(spec.description.chars())
        .any(|c| c.is_control() && c != '\n')
    {
        return Err(DomainError::invalid("title", "no control characters"));
    }
    if spec.ends_at <= spec.starts_at {
        return Err(DomainError::invalid("ends_at", "must be after starts_at"));
    }
    if spec.ends_at - spec.starts_at > Duration::days(MAX_DAYS) {
        return Err(DomainError::invalid(
            "ends_at",
            format!("a contest lasts at most {MAX_DAYS} days"),
        ));
    }
    match spec.metric {
        Metric::PointsEarned => {
            if spec.campaign.is_some() {
                return Err(DomainError::invalid("campaign", "only for the checkins metric"));
            }
            if let Some(reasons) = &mut spec.reasons {
                // Repeats are folded, but a list longer than the counted reasons is refused (the
                // contract's `maxItems`).
                if reasons.len() > COUNTED_REASONS {
                    return Err(DomainError::invalid("reasons", "at most 4 reasons"));
                }
                reasons.sort();
                reasons.dedup();
                if reasons.is_empty() || reasons.iter().any(|r| !boards::counts(*r)) {
                    return Err(DomainError::invalid(
                        "reasons",
                        "a non-empty subset of purchase, checkin, milestone, referral",
                    ));
                }
            }
        }
        Metric::Checkins => {
            if spec.reasons.is_some() {
                return Err(DomainError::invalid(
                    "reasons",
                    "only for the points_earned metric",
                ));
            }
            validate_slug(
                "campaign",
                spec.campaign.get_or_insert_with(|| "daily".to_owned()),
            )?;
        }
        Metric::Referrals => {
            if spec.reasons.is_some() {
                return Err(DomainError::invalid(
                    "reasons",
                    "only for the points_earned metric",
                ));
            }
            if spec.campaign.is_some() {
                return Err(DomainError::invalid("campaign", "only for the checkins metric"));
            }
        }
    }
    let max_winners = match spec.format {
        Format::Solo => {
            if spec.team_size.is_some() {
                return Err(DomainError::invalid("team_size", "only for team contests"));
            }
            MAX_SOLO_WINNERS
        }
        Format::Team => {
            match spec.team_size {
                Some(n) if (1..=MAX_TEAM_SIZE).contains(&n) => {}
                _ => {
                    return Err(DomainError::invalid(
                        "team_size",
                        format!("team contests need a team_size of 1-{MAX_TEAM_SIZE}"),
                    ));
                }
            }
            if spec.entry == EntryMode::Everyone {
                return Err(DomainError::invalid("entry", "team contests are opt-in"));
            }
            MAX_TEAM_WINNERS
        }
    };
    if spec.grace_seconds.is_some_and(|g| !(1..=86_400).contains(&g)) {
        return Err(DomainError::invalid("grace_seconds", "1-86400"));
    }
    if spec.prizes.len() > MAX_PRIZES {
        return Err(DomainError::invalid(
            "prizes",
            format!("at most {MAX_PRIZES} ranges"),
        ));
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for prize in &mut spec.prizes {
        if prize.from == 0 || prize.to < prize.from || prize.to > max_winners {
            return Err(DomainError::invalid(
                "prizes",
                format!("positions run from 1 to at most {max_winners}, from <= to"),
            ));
        }
        if ranges.iter().any(|(a, b)| prize.from <= *b && *a <= prize.to) {
            return Err(DomainError::invalid("prizes", "position ranges overlap"));
        }
        ranges.push((prize.from, prize.to));
        if let Some(item) = &mut prize.item {
            *item = item.trim().to_owned();
        }
        match (prize.points, &prize.item) {
            (Some(points), None) if (1..=MAX_POSTING).contains(&points) => {}
            (None, Some(item)) if (1..=100).contains(&item.chars().count()) => {}
            _ => {
                return Err(DomainError::invalid(
                    "prizes",
                    format!("each prize is points (1-{MAX_POSTING}) or an item (1-100 characters)"),
                ));
            }
        }
    }
    Ok(spec)
}

/// A team's name follows the display-name rules (no reserved check: teams are not members).
pub fn team_name(raw: &str) -> Result<String, DomainError> {
    members::display_name(raw, &members::ReservedNames::default()).map_err(|e| match e {
        DomainError::Invalid { reason, .. } => DomainError::invalid("name", reason),
        other => other,
    })
}

/// What the earn path needs of a running contest (kept in the index item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counting {
    pub metric: Metric,
    #[serde(default)]
    pub reasons: Vec<Reason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Only members who joined count (always for teams).
    pub opt_in: bool,
    pub team: bool,
}

/// One listed contest in `CONFIG/CONTESTS`. The home screen reads the same item as a
/// [`super::home::HomeIndex`] (id, title, start, end) and ignores the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub id: String,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub counting: Counting,
}

/// The contests index: upcoming and running contests, small enough to cache and read with every
/// earn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContestIndex {
    #[serde(default)]
    pub entries: Vec<Listed>,
    #[serde(default)]
    pub version: u64,
}

impl ContestIndex {
    /// The index with `contest` put in (or taken out, when cancelled or settled), ended contests
    /// dropped; refused when more than [`MAX_LISTED`] would be listed or more than [`MAX_ACTIVE`]
    /// would run at one instant.
    pub fn with(&self, contest: &Contest, now: DateTime<Utc>) -> Result<ContestIndex, DomainError> {
        let mut entries: Vec<Listed> = self
            .entries
            .iter()
            .filter(|e| e.id != contest.id && e.ends_at > now)
            .cloned()
            .collect();
        if !contest.cancelled && contest.settled.is_none() && contest.spec.ends_at > now {
            entries.push(Listed {
                id: contest.id.clone(),
                title: contest.spec.title.clone(),
                starts_at: contest.spec.starts_at,
                ends_at: contest.spec.ends_at,
                counting: contest.spec.counting(),
            });
        }
        entries.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
        if entries.len() > MAX_LISTED || max_overlap(&entries) > MAX_ACTIVE {
            return Err(DomainError::TooManyContests {
                max_active: MAX_ACTIVE,
                max_listed: MAX_LISTED,
            });
        }
        Ok(ContestIndex {
            entries,
            version: self.version + 1,
        })
    }

    /// The contests an activity at `at` counts in, as seen at `now`: running at `at`, and not
    /// ended at `now` (a contest's scores stop changing at its end).
    pub fn counting_at(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Vec<&Listed> {
        self.entries
            .iter()
            .filter(|e| e.starts_at <= at && at < e.ends_at && now < e.ends_at)
            .take(MAX_ACTIVE)
            .collect()
    }
}

/// The most windows running at one instant.
fn max_overlap(entries: &[Listed]) -> usize {
    // Ends sort before starts at the same instant: a window is [start, end).
    let mut edges: Vec<(DateTime<Utc>, i32)> = entries
        .iter()
        .flat_map(|e| [(e.starts_at, 1), (e.ends_at, -1)])
        .collect();
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// One winning position of a frozen result. For a team, `members` are the team's members at the
/// end; each is paid the position's prize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winner {
    pub position: u64,
    pub rank: u64,
    pub id: String,
    pub score: u64,
    pub reached_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// The winning positions of a result in listing order (`standings` must be in listing order and
/// hold at least every prize-winning position that exists).
pub fn winners(spec: &ContestSpec, standings: &[Standing]) -> Vec<Winner> {
    let last = spec.last_prize_position() as usize;
    boards::rank_in_order(standings.iter().take(last).cloned().collect(), 1)
        .into_iter()
        .filter(|r| spec.prize_for(r.position).is_some())
        .map(|r| Winner {
            position: r.position,
            rank: r.rank,
            id: r.standing.id,
            score: r.standing.score,
            reached_at: r.standing.reached_at,
            members: vec![],
        })
        .collect()
}

/// One prize to one member: a winning position's prize, for each member of a winning team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub position: u64,
    pub user_id: String,
    /// The team a team prize went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// Every payout of a frozen result, in a fixed order (position, then member id): settlement walks
/// it from its checkpoint.
pub fn payouts(spec: &ContestSpec, positions: &[Winner], team: bool) -> Vec<Payout> {
    let mut out = Vec::new();
    for winner in positions {
        let Some(prize) = spec.prize_for(winner.position) else {
            continue;
        };
        let mut members: Vec<&String> = match team {
            true => winner.members.iter().collect(),
            false => vec![&winner.id],
        };
        members.sort();
        members.dedup();
        for member in members {
            out.push(Payout {
                position: winner.position,
                user_id: member.clone(),
                team_id: team.then(|| winner.id.clone()),
                points: prize.points,
                item: prize.item.clone(),
            });
        }
    }
    out
}

/// A winner settlement could not pay (recorded and skipped; the prize never moves down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpaid {
    pub position: u64,
    pub user_id: String,
    pub reason: String,
}

/// How far settlement got: payouts before `next` are done (paid, recorded to fulfil, or unpaid).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub next: u64,
    #[serde(default)]
    pub unpaid: Vec<Unpaid>,
}

impl Settled {
    /// The totals of a settlement that went through every payout.
    pub fn totals(payouts: &[Payout], unpaid: &[Unpaid], at: DateTime<Utc>) -> Settled {
        let skipped = |p: &Payout| {
            unpaid
                .iter()
                .any(|u| u.user_id == p.user_id && u.position == p.position)
        };
        let done: Vec<&Payout> = payouts.iter().filter(|p| !skipped(p)).collect();
        Settled {
            at,
            winners: done.len() as u64,
            points_paid: done.iter().filter_map(|p| p.points).sum(),
            to_fulfil: done.iter().filter(|p| p.item.is_some()).count() as u64,
            unpaid: unpaid.len() as u64,
        }
    }
}

/// Whether the candidates a settlement read from the (eventually consistent) index, re-read from
/// the table and put in listing order (`verified`), hold every entry that can reach position
/// `last`. `counters` are the board's bucket counts (bucket → entries, strongly consistent, moved
/// in the same transactions as the scores); `indexed_in_boundary` is how many entries the index
/// holds in the bucket of the score at position `last`.
///
/// Every entry in a bucket above that score's must be among the candidates, and the index must
/// hold as many entries in its bucket as the counters do; otherwise the index is behind and the
/// result must not be frozen yet. (What stays unseen: an entry that moved *within* the boundary
/// bucket while the index lagged; see docs/data-model.md.)
pub fn top_is_complete(
    verified: &[Standing],
    last: usize,
    counters: &BTreeMap<u64, u64>,
    indexed_in_boundary: u64,
) -> bool {
    if last == 0 {
        return true;
    }
    if verified.len() < last {
        // The index listed fewer entries than there are prizes: it must have listed them all.
        return verified.len() as u64 == counters.values().sum::<u64>();
    }
    let boundary = boards::bucket(verified[last - 1].score);
    let above: u64 = counters.range(boundary.saturating_add(1)..).map(|(_, n)| n).sum();
    let seen_above = verified
        .iter()
        .filter(|s| boards::bucket(s.score) > boundary)
        .count() as u64;
    seen_above == above && counters.get(&boundary).copied().unwrap_or(0) == indexed_in_boundary
}

#[cfg(test)]
mod tests;
