//! Daily check-in streaks: campaigns, runs of consecutive local dates, ladder rewards, milestones
//! and make-ups. The rules are written out in docs/checkin.md.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ids::validate_slug;

/// A make-up may reach back at most this many days; runs ending earlier can never change again.
pub const MAX_LOOKBACK_DAYS: u32 = 31;
/// Milestones a campaign may be given (`PUT`): a make-up joining runs across all of them stays
/// one small transaction.
pub const MAX_MILESTONES: usize = 10;
/// Milestones a stored campaign may have: campaigns stored before the limit above (up to 50) keep
/// working.
const MAX_STORED_MILESTONES: usize = 50;
const MAX_POINTS: i64 = 1_000_000;
pub const DEFAULT_CAMPAIGN: &str = "daily";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLadder {
    /// Start the ladder again after its last step.
    Cycle,
    /// Pay the last step forever.
    HoldLast,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakeupRules {
    pub lookback_days: u32,
    pub max_per_month: u32,
    pub cost: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    pub days: u32,
    pub points: i64,
}

/// A campaign's configuration as the admin API and the store carry it; [`CampaignConfig::validate`]
/// turns it into a [`Campaign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    pub time_zone: String,
    pub ladder: Vec<i64>,
    #[serde(default = "cycle")]
    pub after_ladder: String,
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    #[serde(default)]
    pub makeup: MakeupRules,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
}

fn cycle() -> String {
    "cycle".to_owned()
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub zone: Tz,
    pub ladder: Vec<i64>,
    pub after_ladder: AfterLadder,
    /// days → points
    pub milestones: BTreeMap<u32, i64>,
    pub makeup: MakeupRules,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// Parses a strict `YYYY-MM-DD`.
pub fn parse_date(field: &'static str, raw: &str) -> Result<NaiveDate, DomainError> {
    let bad = || DomainError::invalid(field, format!("{raw:?} is not a date (YYYY-MM-DD)"));
    if raw.len() != 10 {
        return Err(bad());
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())
}

/// Parses a strict `YYYY-MM` into its first day.
pub fn parse_month(field: &'static str, raw: &str) -> Result<NaiveDate, DomainError> {
    let bad = || DomainError::invalid(field, format!("{raw:?} is not a month (YYYY-MM)"));
    if raw.len() != 7 {
        return Err(bad());
    }
    NaiveDate::parse_from_str(&format!("{raw}-01"), "%Y-%m-%d").map_err(|_| bad())
}

fn in_points_range(field: &'static str, v: i64, min: i64) -> Result<(), DomainError> {
    if (min..=MAX_POINTS).contains(&v) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be between {min} and {MAX_POINTS}"),
        ))
    }
}

impl CampaignConfig {
    /// Validates a campaign an admin is storing.
    pub fn validate(&self, id: &str) -> Result<Campaign, DomainError> {
        self.check(id, MAX_MILESTONES)
    }

    /// Validates a campaign read back from the store: the rules of today, except that one stored
    /// with up to 50 milestones (the limit before there were 10) is still served.
    pub fn validate_stored(&self, id: &str) -> Result<Campaign, DomainError> {
        self.check(id, MAX_STORED_MILESTONES)
    }

    fn check(&self, id: &str, max_milestones: usize) -> Result<Campaign, DomainError> {
        validate_slug("campaign_id", id)?;
        let zone: Tz = self.time_zone.parse().map_err(|_| {
            DomainError::invalid(
                "time_zone",
                format!("{:?} is not an IANA time zone", self.time_zone),
            )
        })?;
        if self.ladder.is_empty() || self.ladder.len() > 365 {
            return Err(DomainError::invalid("ladder", "needs 1 to 365 steps"));
        }
        for step in &self.ladder {
            in_points_range("ladder", *step, 0)?;
        }
        let after_ladder = match self.after_ladder.as_str() {
            "cycle" => AfterLadder::Cycle,
            "hold_last" => AfterLadder::HoldLast,
            other => {
                return Err(DomainError::invalid(
                    "after_ladder",
                    format!("{other:?} is not cycle or hold_last"),
                ));
            }
        };
        // A make-up can join runs across several milestones; ten keep its transaction small.
        if self.milestones.len() > max_milestones {
            return Err(DomainError::invalid(
                "milestones",
                format!("at most {max_milestones}"),
            ));
        }
        let mut milestones = BTreeMap::new();
        for m in &self.milestones {
            if !(1..=3650).contains(&m.days) {
                return Err(DomainError::invalid(
                    "milestones",
                    "days must be between 1 and 3650",
                ));
            }
            in_points_range("milestones", m.points, 1)?;
            if milestones.insert(m.days, m.points).is_some() {
                return Err(DomainError::invalid(
                    "milestones",
                    format!("day {} appears twice", m.days),
                ));
            }
        }
        let mk = self.makeup;
        if mk.lookback_days > MAX_LOOKBACK_DAYS || mk.max_per_month > 31 {
            return Err(DomainError::invalid(
                "makeup",
                "lookback_days and max_per_month must be at most 31",
            ));
        }
        in_points_range("makeup.cost", mk.cost, 0)?;
        let start = self
            .start_date
            .as_deref()
            .map(|d| parse_date("start_date", d))
            .transpose()?;
        let end = self
            .end_date
            .as_deref()
            .map(|d| parse_date("end_date", d))
            .transpose()?;
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(DomainError::invalid("end_date", "must not be before start_date"));
        }
        Ok(Campaign {
            id: id.to_owned(),
            zone,
            ladder: self.ladder.clone(),
            after_ladder,
            milestones,
            makeup: mk,
            start,
            end,
        })
    }

    /// The built-in `daily` campaign.
    pub fn default_daily() -> Self {
        Self {
            time_zone: "Asia/Shanghai".into(),
            ladder: vec![5, 5, 10, 10, 15, 15, 30],
            after_ladder: cycle(),
            milestones: vec![
                Milestone { days: 7, points: 50 },
                Milestone {
                    days: 30,
                    points: 300,
                },
            ],
            makeup: MakeupRules {
                lookback_days: 7,
                max_per_month: 2,
                cost: 20,
            },
            start_date: None,
            end_date: None,
        }
    }
}

impl Campaign {
    /// The local date of `now` in the campaign's zone.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.zone).date_naive()
    }

    /// Points for the check-in at `position` (1-based) of its run.
    pub fn reward(&self, position: u32) -> i64 {
        let n = self.ladder.len();
        let p = (position.max(1) - 1) as usize;
        let index = match self.after_ladder {
            AfterLadder::Cycle => p % n,
            AfterLadder::HoldLast => p.min(n - 1),
        };
        self.ladder[index]
    }

    fn is_active(&self, day: NaiveDate) -> bool {
        self.start.is_none_or(|s| day >= s) && self.end.is_none_or(|e| day <= e)
    }
}

/// A run of consecutive check-in dates, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Run {
    /// Number of days in the run.
    pub fn days(&self) -> u32 {
        u32::try_from((self.end - self.start).num_days() + 1).unwrap_or(u32::MAX)
    }

    fn contains(&self, d: NaiveDate) -> bool {
        self.start <= d && d <= self.end
    }
}

/// A member's state in one campaign: the runs that can still change, the best streak, make-ups
/// per month (`YYYY-MM` of the day they were made) and an optimistic-lock version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreakState {
    /// Sorted, disjoint and non-adjacent.
    pub runs: Vec<Run>,
    pub best: u32,
    #[serde(default)]
    pub makeups: BTreeMap<String, u32>,
    pub version: u64,
    /// What the latest check-in (not a make-up) paid, so that a repeat the same day — such as the
    /// app sending again after a lost answer — answers what was actually credited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastCheckin>,
}

/// The latest check-in's date and what it credited (after multipliers), with its milestone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheckin {
    pub date: NaiveDate,
    pub points: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone: Option<Milestone>,
}

/// A milestone bonus to pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MilestonePay {
    pub days: u32,
    pub points: i64,
    /// The start date of the run that reached it (part of its business key).
    #[serde(skip)]
    pub run_start: NaiveDate,
}

/// The effect of adding one date to the runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insertion {
    pub date: NaiveDate,
    /// Position of the date in its run (1-based).
    pub position: u32,
    pub milestones: Vec<MilestonePay>,
    pub state: StreakState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckIn {
    /// Already checked in today: nothing changes. `paid` is what today's check-in credited, when
    /// the state recorded it.
    Repeat {
        paid: Option<LastCheckin>,
    },
    New {
        insertion: Insertion,
        reward: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeUp {
    pub insertion: Insertion,
    pub cost: i64,
}

fn month_key(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

fn day_before(d: NaiveDate) -> NaiveDate {
    d.pred_opt().unwrap_or(d)
}

impl StreakState {
    fn run_containing(&self, d: NaiveDate) -> Option<&Run> {
        self.runs.iter().find(|r| r.contains(d))
    }

    /// Length of the run ending today or yesterday; 0 otherwise.
    pub fn current(&self, today: NaiveDate) -> u32 {
        let yesterday = day_before(today);
        self.runs
            .iter()
            .find(|r| r.end == today || r.end == yesterday)
            .map_or(0, Run::days)
    }

    pub fn checked_in(&self, d: NaiveDate) -> bool {
        self.run_containing(d).is_some()
    }

    pub fn makeups_in(&self, today: NaiveDate) -> u32 {
        self.makeups.get(&month_key(today)).copied().unwrap_or(0)
    }

    /// Adds `d` (not yet checked in), joining neighbouring runs; pays milestones by the join rule.
    fn insert(&self, campaign: &Campaign, d: NaiveDate, today: NaiveDate) -> Insertion {
        let left = self.runs.iter().find(|r| r.end.succ_opt() == Some(d)).copied();
        let right = self.runs.iter().find(|r| d.succ_opt() == Some(r.start)).copied();
        let joined = Run {
            start: left.map_or(d, |r| r.start),
            end: right.map_or(d, |r| r.end),
        };
        let before = left.map_or(0, |r| r.days()).max(right.map_or(0, |r| r.days()));
        let length = joined.days();
        let milestones = campaign
            .milestones
            .range(before.saturating_add(1)..=length)
            .map(|(&days, &points)| MilestonePay {
                days,
                points,
                run_start: joined.start,
            })
            .collect();
        let position = left.map_or(0, |r| r.days()) + 1;
        let mut runs: Vec<Run> = self
            .runs
            .iter()
            .filter(|r| Some(**r) != left && Some(**r) != right)
            .copied()
            .collect();
        runs.push(joined);
        runs.sort_by_key(|r| r.start);
        // Runs that ended before any make-up can reach them can never change again (two days of
        // margin: a campaign's zone may change and move "today" back by up to a day).
        let horizon = today
            .checked_sub_days(Days::new(u64::from(MAX_LOOKBACK_DAYS) + 3))
            .unwrap_or(today);
        runs.retain(|r| r.end >= horizon);
        let mut makeups = self.makeups.clone();
        let this_month = month_key(today);
        let last_month = month_key(today.with_day(1).and_then(|f| f.pred_opt()).unwrap_or(today));
        makeups.retain(|m, _| *m == this_month || *m == last_month);
        let state = StreakState {
            runs,
            best: self.best.max(length),
            makeups,
            version: self.version + 1,
            last: self.last,
        };
        Insertion {
            date: d,
            position,
            milestones,
            state,
        }
    }
}

/// A check-in at `now`.
pub fn check_in(
    campaign: &Campaign,
    state: &StreakState,
    now: DateTime<Utc>,
) -> Result<CheckIn, DomainError> {
    let today = campaign.today(now);
    if state.checked_in(today) {
        let paid = state.last.filter(|last| last.date == today);
        return Ok(CheckIn::Repeat { paid });
    }
    if !campaign.is_active(today) {
        return Err(DomainError::CampaignNotActive);
    }
    let insertion = state.insert(campaign, today, today);
    let reward = campaign.reward(insertion.position);
    Ok(CheckIn::New { insertion, reward })
}

/// A make-up of `date` at `now`.
pub fn make_up(
    campaign: &Campaign,
    state: &StreakState,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<MakeUp, DomainError> {
    let today = campaign.today(now);
    let lookback = u64::from(campaign.makeup.lookback_days);
    let earliest = today.checked_sub_days(Days::new(lookback)).unwrap_or(today);
    if date >= today
        || date < earliest
        || campaign.start.is_some_and(|s| date < s)
        || campaign.end.is_some_and(|e| date > e)
    {
        return Err(DomainError::OutsideMakeupWindow {
            lookback_days: campaign.makeup.lookback_days,
        });
    }
    if state.checked_in(date) {
        return Err(DomainError::NotMissed);
    }
    if state.makeups_in(today) >= campaign.makeup.max_per_month {
        return Err(DomainError::MakeupLimitReached {
            per_month: campaign.makeup.max_per_month,
        });
    }
    let mut insertion = state.insert(campaign, date, today);
    *insertion.state.makeups.entry(month_key(today)).or_insert(0) += 1;
    Ok(MakeUp {
        insertion,
        cost: campaign.makeup.cost,
    })
}

/// What the app shows for a campaign at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreakView {
    pub today: NaiveDate,
    pub checked_in_today: bool,
    pub current_streak: u32,
    pub best_streak: u32,
    pub makeups_left_this_month: u32,
    /// Points the next check-in pays: today's if not yet checked in, else tomorrow's.
    pub next_reward: i64,
}

pub fn view(campaign: &Campaign, state: &StreakState, now: DateTime<Utc>) -> StreakView {
    let today = campaign.today(now);
    let current = state.current(today);
    let checked_in_today = state.checked_in(today);
    StreakView {
        today,
        checked_in_today,
        current_streak: current,
        best_streak: state.best,
        makeups_left_this_month: campaign
            .makeup
            .max_per_month
            .saturating_sub(state.makeups_in(today)),
        next_reward: campaign.reward(current + 1),
    }
}

#[cfg(test)]
mod tests;
