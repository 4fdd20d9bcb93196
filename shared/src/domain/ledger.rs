//! The points ledger's rules. An account is a running total over an append-only list of entries;
//! every change of the balance is exactly one [`LedgerEntry`], numbered by a per-member `seq`.
//!
//! Points live in **expiry buckets**: points earned in month M (business zone) are valid through
//! the last day of month M + `validity_months` (default 12). Spending, holds and expiry work on
//! buckets, soonest-expiring first. A reversal may take more than is left: the rest becomes
//! **debt**, the balance goes negative, spending is blocked and new earnings pay the debt first.
//!
//! Invariants (checked by the property test): `balance = Σ buckets − debt = Σ entry deltas`;
//! `debt > 0 ⇒ no bucket holds points`; held points are in no bucket and not in the balance.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::DomainError;

/// Largest amount a single posting may move, in points. Keeps every sum far from `i64::MAX`.
pub const MAX_POSTING: i64 = 1_000_000_000;
/// Open holds a member may have at once (keeps every transaction within DynamoDB's 100 actions
/// even when all of them time out together).
pub const MAX_OPEN_HOLDS: usize = 20;

/// Why a balance changed. Stored as a snake_case string on each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Points granted by an admin or a trusted backend (a fixed amount).
    Grant,
    /// Points for a purchase (from an order amount; multipliers apply).
    Purchase,
    /// A daily check-in's ladder reward (multipliers apply).
    Checkin,
    /// A streak milestone bonus (fixed).
    Milestone,
    /// The cost of a make-up check-in (补签).
    Makeup,
    /// Points reserved at checkout.
    Hold,
    /// A hold spent (no balance change: the hold already took the points).
    Capture,
    /// A hold given back (explicitly or because it timed out).
    Release,
    /// A grant taken back (refund).
    Reversal,
    /// Points that reached the end of their validity.
    Expire,
    /// The member moved to another tier (no balance change).
    TierChange,
    /// A contest prize (fixed, never multiplied; never counted on the boards).
    ContestPrize,
    /// A referral reward, to the invitee or the referrer (fixed, never multiplied).
    Referral,
    /// The cost of a lucky-draw spin.
    DrawSpin,
    /// A lucky-draw points prize (fixed, never multiplied; not earned: no growth from spending).
    DrawPrize,
}

impl Reason {
    /// Whether a credit with this reason counts as earned (lifetime earned, growth value).
    pub fn is_earn(self) -> bool {
        matches!(
            self,
            Reason::Grant
                | Reason::Purchase
                | Reason::Checkin
                | Reason::Milestone
                | Reason::ContestPrize
                | Reason::Referral
        )
    }
}

/// Validity and hold timing, from the deployment's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRules {
    /// The business zone: months of earning and days of expiry are local to it.
    pub zone: Tz,
    /// Points earned in month M are valid through the end of month M + this.
    pub validity_months: u32,
    /// A hold not captured within this many minutes is released.
    pub hold_minutes: u32,
}

impl Default for LedgerRules {
    fn default() -> Self {
        Self {
            zone: chrono_tz::Asia::Shanghai,
            validity_months: 12,
            hold_minutes: 30,
        }
    }
}

impl LedgerRules {
    /// The local date of `now` in the business zone.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.zone).date_naive()
    }

    /// The last valid day of points earned at `now`.
    pub fn bucket_for(&self, now: DateTime<Utc>) -> NaiveDate {
        let first = self.today(now).with_day(1).unwrap_or_else(|| self.today(now));
        first
            .checked_add_months(Months::new(self.validity_months + 1))
            .and_then(|d| d.pred_opt())
            .unwrap_or(NaiveDate::MAX)
    }
}

/// Points reserved for a checkout: where they came from, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub amount: i64,
    /// (bucket, points) taken, to give back to the same buckets on release.
    pub parts: Vec<(NaiveDate, i64)>,
    pub expires_at: DateTime<Utc>,
    #[serde(rename = "ref")]
    pub reference: String,
}

/// A member's account as the ledger sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable points: `Σ buckets − debt`, the sum of every entry's delta. May be negative.
    pub balance: i64,
    /// Growth value: earned credits minus reversals (never lowered by spending).
    pub lifetime_earned: i64,
    /// `seq` of the newest entry; 0 for an account without entries.
    pub seq: u64,
    /// Last valid day → points. Only positive amounts are kept.
    #[serde(default)]
    pub buckets: BTreeMap<NaiveDate, i64>,
    /// Points owed after a reversal took more than was left.
    #[serde(default)]
    pub debt: i64,
    /// Open holds by id.
    #[serde(default)]
    pub holds: BTreeMap<String, Hold>,
    /// The member's tier (None until the first evaluation: the lowest tier).
    #[serde(default)]
    pub tier: Option<String>,
    /// Per bucket (last valid day): what went in and what of it expired, kept for
    /// [`HISTORY_MONTHS`] after the bucket's end, so that a reversal of a grant whose points
    /// expired never takes them twice ([`forgiven_part`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub history: BTreeMap<NaiveDate, BucketHistory>,
    /// When the member's first write created the account (absent on accounts created before it
    /// was recorded: the backfill records those on the profile, see `domain::members`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<DateTime<Utc>>,
}

/// What one expiry bucket received and lost to expiry (net of what reversals accounted for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketHistory {
    /// Points credited into the bucket (debt they paid included), less the grant amounts
    /// reversed from it since.
    pub earned: i64,
    /// Points of the bucket that expired, less the part reversals forgave.
    pub expired: i64,
}

/// The oldest bucket whose history still counts on `today`.
fn history_horizon(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_months(Months::new(HISTORY_MONTHS))
        .unwrap_or(NaiveDate::MIN)
}

/// Months a bucket's history is kept after its last day. A reversal of a grant whose bucket
/// ended longer ago than this forgives the whole amount: those points are long gone.
pub const HISTORY_MONTHS: u32 = 24;

/// The part of a reversal of `amount` points of a grant credited into `bucket` that is deemed to
/// have expired already, and is therefore forgiven rather than taken from the member's other
/// points: nothing while the bucket is valid; after its end, the bucket's expired share,
/// `⌈amount × expired ÷ earned⌉` (rounded in the member's favour; all of it for the last of the
/// bucket's earnings). Once all of a bucket's earnings are reversed, exactly what expired from
/// it has been forgiven. A bucket that ended more than [`HISTORY_MONTHS`] ago, or one without
/// history (it ended before histories were kept), counts as all expired.
pub fn forgiven_part(account: &Account, bucket: NaiveDate, amount: i64, today: NaiveDate) -> i64 {
    if bucket >= today || amount <= 0 {
        return 0;
    }
    if bucket < history_horizon(today) {
        return amount;
    }
    let Some(h) = account.history.get(&bucket) else {
        return amount;
    };
    if h.expired <= 0 {
        return 0;
    }
    if amount >= h.earned {
        return h.expired.min(amount);
    }
    let share =
        (i128::from(amount) * i128::from(h.expired) + i128::from(h.earned) - 1) / i128::from(h.earned);
    i64::try_from(share).unwrap_or(amount).min(amount)
}

/// What a posting does to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `delta > 0`: into the bucket of the current month (paying debt first); `delta < 0`: spend,
    /// soonest-expiring first.
    Standard,
    /// Reserve `-delta` points, soonest-expiring first.
    Hold {
        hold_id: String,
        expires_at: DateTime<Utc>,
    },
    /// Spend a hold (delta 0).
    Capture { hold_id: String },
    /// Give a hold back to its buckets (delta = the hold's amount).
    Release { hold_id: String },
    /// Take back a grant's points: `-delta` from `bucket` first, then soonest-first, then debt;
    /// `forgiven` more are the grant's expired share ([`forgiven_part`]), not taken again.
    Reverse {
        bucket: Option<NaiveDate>,
        forgiven: i64,
    },
    /// A bucket reached its end (delta = minus what was left in it).
    Expire { bucket: NaiveDate },
    /// The member moved to tier `to` (a history note, delta 0).
    TierChange { to: String },
}

/// How an earned amount was computed: the base and the multipliers applied (basis points).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnDetail {
    pub base: i64,
    pub factors_bps: Vec<u32>,
}

/// A request to move points, before it has a place in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub kind: Kind,
    /// Positive credits, negative debits.
    pub delta: i64,
    pub reason: Reason,
    /// What the entry refers to: an order id, a check-in date, a contest id.
    pub reference: String,
    /// The deterministic key that makes this posting happen at most once, ever.
    pub business_key: String,
    pub detail: Option<EarnDetail>,
    /// Free text from the caller (why an admin granted or reversed points).
    pub note: Option<String>,
    /// Who made a manual change (`admin:<sub>` or `service:<client id>`).
    pub by: Option<String>,
    /// For a reversal: the business key of the credit it takes back.
    pub reverses: Option<String>,
}

/// One immutable line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub entry_id: String,
    pub delta: i64,
    pub reason: Reason,
    #[serde(rename = "ref")]
    pub reference: String,
    pub business_key: String,
    pub at: DateTime<Utc>,
    pub balance_after: i64,
    /// For earnings: the base amount before multipliers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<i64>,
    /// For earnings: the multipliers applied, in basis points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors_bps: Option<Vec<u32>>,
    /// For earnings: the last day the points are valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<NaiveDate>,
    /// For holds, captures and releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    /// Free text from the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who made a manual change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For reversals: the part of the reversed grant that had expired and was not taken again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgiven: Option<i64>,
    /// For reversals: the business key of the credit taken back (absent on reversals written
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverses: Option<String>,
}

impl Posting {
    /// A plain credit (`delta > 0`) or debit (`delta < 0`).
    pub fn new(
        delta: i64,
        reason: Reason,
        reference: impl Into<String>,
        business_key: impl Into<String>,
    ) -> Self {
        Self {
            kind: Kind::Standard,
            delta,
            reason,
            reference: reference.into(),
            business_key: business_key.into(),
            detail: None,
            note: None,
            by: None,
            reverses: None,
        }
    }

    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }
}

fn overflow<T>(v: Option<T>) -> Result<T, DomainError> {
    v.ok_or(DomainError::Overflow)
}

/// Takes `amount` from the buckets, soonest-expiring first (`first`, if given, before all).
/// Returns the parts taken and what could not be taken.
fn take(
    buckets: &mut BTreeMap<NaiveDate, i64>,
    mut amount: i64,
    first: Option<NaiveDate>,
) -> (Vec<(NaiveDate, i64)>, i64) {
    let mut order: Vec<NaiveDate> = first.into_iter().filter(|d| buckets.contains_key(d)).collect();
    order.extend(buckets.keys().copied().filter(|d| Some(*d) != first));
    let mut parts = Vec::new();
    for day in order {
        if amount == 0 {
            break;
        }
        let have = buckets[&day];
        let used = have.min(amount);
        amount -= used;
        parts.push((day, used));
        if have == used {
            buckets.remove(&day);
        } else {
            buckets.insert(day, have - used);
        }
    }
    (parts, amount)
}

/// Puts `amount` into the bucket `day`, paying debt first.
fn credit(account: &mut Account, day: NaiveDate, amount: i64) -> Result<(), DomainError> {
    let to_debt = account.debt.min(amount);
    account.debt -= to_debt;
    let rest = amount - to_debt;
    if rest > 0 {
        let slot = account.buckets.entry(day).or_insert(0);
        *slot = overflow(slot.checked_add(rest))?;
    }
    Ok(())
}

/// Returns a hold's parts to their buckets. Valid parts pay debt first; parts whose bucket has
/// expired meanwhile go back to that bucket untouched, where the expiry that follows takes them —
/// expired points never pay debt or become spendable.
fn give_back(account: &mut Account, parts: &[(NaiveDate, i64)], today: NaiveDate) -> Result<(), DomainError> {
    for (day, points) in parts {
        if *day < today {
            let slot = account.buckets.entry(*day).or_insert(0);
            *slot = overflow(slot.checked_add(*points))?;
        } else {
            credit(account, *day, *points)?;
        }
    }
    Ok(())
}

/// Applies one posting to an account: the new account and the entry that records the change.
///
/// Refuses an oversized amount, a spend or hold above the spendable balance (or while in debt),
/// an unknown hold, and any overflow. `entry_id` is passed in so that this stays pure.
pub fn apply(
    account: &Account,
    posting: &Posting,
    now: DateTime<Utc>,
    rules: &LedgerRules,
    entry_id: String,
) -> Result<(Account, LedgerEntry), DomainError> {
    let delta = posting.delta;
    // Caller-chosen amounts are bounded; a release or an expiry moves whatever the account holds.
    let caller_amount = matches!(
        posting.kind,
        Kind::Standard | Kind::Hold { .. } | Kind::Reverse { .. }
    );
    if caller_amount && delta.unsigned_abs() > MAX_POSTING.unsigned_abs() {
        return Err(DomainError::invalid(
            "amount",
            format!("must be at most {MAX_POSTING} points"),
        ));
    }
    if posting.business_key.is_empty() || posting.business_key.len() > 512 {
        return Err(DomainError::invalid("business_key", "must be 1-512 bytes"));
    }
    let zero_only = matches!(posting.kind, Kind::Capture { .. } | Kind::TierChange { .. });
    // A reversal of points that all expired takes nothing: its entry records what it forgave.
    let zero_ok = zero_only || matches!(posting.kind, Kind::Reverse { forgiven, .. } if forgiven > 0);
    if (zero_only && delta != 0) || (!zero_ok && delta == 0) {
        return Err(DomainError::invalid("amount", "must not be zero"));
    }
    let mut next = account.clone();
    let mut expires_after = None;
    let mut hold_id = None;
    let mut forgiven_entry = None;
    match &posting.kind {
        Kind::Standard if delta > 0 => {
            let day = rules.bucket_for(now);
            credit(&mut next, day, delta)?;
            let history = next.history.entry(day).or_default();
            history.earned = overflow(history.earned.checked_add(delta))?;
            expires_after = Some(day);
            if posting.reason.is_earn() {
                next.lifetime_earned = overflow(next.lifetime_earned.checked_add(delta))?;
            }
        }
        Kind::Standard | Kind::Hold { .. } => {
            if delta > 0 {
                return Err(DomainError::invalid("amount", "a hold takes points"));
            }
            let needed = -delta;
            if next.debt > 0 || next.balance < needed {
                return Err(DomainError::InsufficientPoints {
                    balance: next.balance,
                    needed,
                });
            }
            let (parts, short) = take(&mut next.buckets, needed, None);
            debug_assert_eq!(short, 0);
            if let Kind::Hold {
                hold_id: id,
                expires_at,
            } = &posting.kind
            {
                if next.holds.len() >= MAX_OPEN_HOLDS {
                    return Err(DomainError::HoldLimitReached { max: MAX_OPEN_HOLDS });
                }
                if next.holds.contains_key(id) {
                    return Err(DomainError::invalid("hold_id", "exists"));
                }
                next.holds.insert(
                    id.clone(),
                    Hold {
                        amount: needed,
                        parts,
                        expires_at: *expires_at,
                        reference: posting.reference.clone(),
                    },
                );
                hold_id = Some(id.clone());
            }
        }
        Kind::Capture { hold_id: id } => {
            next.holds.remove(id).ok_or(DomainError::HoldNotActive)?;
            hold_id = Some(id.clone());
        }
        Kind::Release { hold_id: id } => {
            let hold = next.holds.remove(id).ok_or(DomainError::HoldNotActive)?;
            if hold.amount != delta {
                return Err(DomainError::invalid(
                    "amount",
                    "a release gives back the whole hold",
                ));
            }
            give_back(&mut next, &hold.parts, rules.today(now))?;
            hold_id = Some(id.clone());
        }
        Kind::Reverse { bucket, forgiven } => {
            if delta > 0 || !(0..=MAX_POSTING).contains(forgiven) {
                return Err(DomainError::invalid("amount", "a reversal takes points"));
            }
            let (_, short) = take(&mut next.buckets, -delta, *bucket);
            next.debt = overflow(next.debt.checked_add(short))?;
            // The whole reversed grant amount leaves growth, the forgiven part included.
            let reversed = overflow((-delta).checked_add(*forgiven))?;
            next.lifetime_earned = overflow(next.lifetime_earned.checked_sub(reversed))?.max(0);
            if let Some(history) = bucket.and_then(|b| next.history.get_mut(&b)) {
                history.earned = (history.earned - reversed).max(0);
                history.expired = (history.expired - forgiven).max(0);
            }
            forgiven_entry = (*forgiven > 0).then_some(*forgiven);
        }
        Kind::Expire { bucket } => {
            let left = next.buckets.remove(bucket).unwrap_or(0);
            if left != -delta {
                return Err(DomainError::invalid(
                    "amount",
                    "an expiry takes what is left in its bucket",
                ));
            }
            let history = next.history.entry(*bucket).or_default();
            history.expired = overflow(history.expired.checked_add(left))?;
            // Histories older than a reversal can still use are dropped (the item stays small).
            next.history = next.history.split_off(&history_horizon(rules.today(now)));
        }
        Kind::TierChange { to } => next.tier = Some(to.clone()),
    }
    next.balance = overflow(next.balance.checked_add(delta))?;
    next.seq = overflow(next.seq.checked_add(1))?;
    let entry = LedgerEntry {
        seq: next.seq,
        entry_id,
        delta,
        reason: posting.reason,
        reference: posting.reference.clone(),
        business_key: posting.business_key.clone(),
        at: now,
        balance_after: next.balance,
        base: posting.detail.as_ref().map(|d| d.base),
        factors_bps: posting.detail.as_ref().map(|d| d.factors_bps.clone()),
        expires_after,
        hold_id,
        note: posting.note.clone(),
        by: posting.by.clone(),
        forgiven: forgiven_entry,
        reverses: posting.reverses.clone(),
    };
    Ok((next, entry))
}

/// What is due on an account at `now` whether or not anyone asked: holds past their time are
/// released, then buckets past their last day expire (points released into an expired bucket
/// expire with it). Applied before every decision and shown on every read.
pub fn housekeeping(
    account: &Account,
    user_key: &str,
    now: DateTime<Utc>,
    rules: &LedgerRules,
) -> Vec<Posting> {
    let mut postings = Vec::new();
    let mut sim = account.clone();
    for (id, hold) in &account.holds {
        if hold.expires_at <= now {
            postings.push(
                Posting::new(
                    hold.amount,
                    Reason::Release,
                    hold.reference.clone(),
                    format!("release#{id}"),
                )
                .with_kind(Kind::Release { hold_id: id.clone() }),
            );
            let _ = give_back(&mut sim, &hold.parts, rules.today(now));
        }
    }
    postings.extend(expire_due(&sim, user_key, now, rules));
    postings
}

/// Expiries due at `now`: every bucket whose last valid day is before today (business zone).
pub fn expire_due(
    account: &Account,
    user_key: &str,
    now: DateTime<Utc>,
    rules: &LedgerRules,
) -> Vec<Posting> {
    let today = rules.today(now);
    account
        .buckets
        .iter()
        .filter(|(day, _)| **day < today)
        .map(|(day, points)| {
            Posting::new(
                -points,
                Reason::Expire,
                format!("valid through {day}"),
                format!("expire#{user_key}#{day}#{}", account.seq),
            )
            .with_kind(Kind::Expire { bucket: *day })
        })
        .collect()
}

#[cfg(test)]
mod tests;
