//! Lucky draws (积分抽奖, 分享抽奖): the configuration an admin puts, and the outcome of a spin —
//! provably fair. Pure: the server seed, the member's state and what is in stock are arguments.
//!
//! **The outcome algorithm** (`campaign-draw-v1`, specified byte for byte in docs/data-model.md,
//! "Draws"; the verifiers re-derive it):
//!
//! 1. `message` = UTF-8 of `campaign-draw-v1\n<draw id>\n<member id>\n<spin number>\n<client seed>`
//!    (the spin number in decimal, the member's 1st spin of the draw is 1; the client seed may be
//!    empty).
//! 2. A uniform number below `bound` for a `label` (`draw` or `pity`): for round `k` = 0, 1, …,
//!    `mac` = HMAC-SHA-256(key = the 32 bytes of the server seed, `message` + `\n<label>\n<k>`);
//!    each of its four 8-byte big-endian words `r`, in order, is accepted if
//!    `r < (2^64 − 1) / bound × bound` (integer division), giving `r mod bound`.
//! 3. The drawn prize: the first prize, in configured order, whose running sum of weights
//!    exceeds the `draw` number below the total weight.
//! 4. Pity is due on a member's spin when `spins since their last rare prize + 1 ≥ after`. The
//!    drawn prize is awarded if it is available (in stock, under its per-member max) and, when
//!    pity is due, rare. Otherwise, when pity is due, a rare prize is picked among the available
//!    rare ones by weight with the `pity` number; if none is available, or pity is not due, the
//!    consolation is awarded.
//!
//! The commitment published before the end is SHA-256 of the seed; the seed (hence every
//! outcome) cannot be derived from it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DomainError;
use super::ids::validate_slug;
use super::ledger::MAX_POSTING;

/// The outcome algorithm's name and version (part of every message).
pub const ALGORITHM: &str = "campaign-draw-v1";
/// Most prizes a draw has.
pub const MAX_PRIZES: usize = 20;
/// Largest weight of one prize (the total stays far below 2^32).
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Largest stock of one prize.
pub const MAX_STOCK: u64 = 10_000_000;
/// Most items one prize's stock is split across.
pub const MAX_SPLITS: u32 = 8;
/// Most stock items a draw has (its config write stays within one transaction).
pub const MAX_STOCK_ITEMS: u32 = 90;
/// Most spins a member may make in a day.
pub const MAX_DAILY_LIMIT: u32 = 1_000;
/// Longest draw.
pub const MAX_DAYS: i64 = 366;
/// Longest client seed (printable ASCII).
pub const MAX_CLIENT_SEED: usize = 64;

/// What a prize is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrizeKind {
    /// Points paid through the ledger (never multiplied).
    Points,
    /// A code from the pool the admin uploaded.
    Coupon,
    /// Something to ship: a fulfilment record.
    Physical,
    /// "Thanks for playing".
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prize {
    pub prize_id: String,
    pub name: String,
    pub kind: PrizeKind,
    /// Points, for a `points` prize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    pub weight: u32,
    /// Absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    /// The most one member may win of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_member_max: Option<u32>,
    #[serde(default)]
    pub rare: bool,
    /// Items its stock is split across (1-8, default 1), in different partitions: more splits
    /// serve more winners a second (docs/data-model.md, "Draws"). Only for a prize with stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<u32>,
}

impl Prize {
    /// Whether its stock is counted (a stock, or a coupon's uploaded codes).
    pub fn stocked(&self) -> bool {
        self.stock.is_some() || self.kind == PrizeKind::Coupon
    }

    /// The stock items it has (0 for an unlimited prize).
    pub fn split_count(&self) -> u32 {
        match self.stocked() {
            true => self.splits.unwrap_or(1),
            false => 0,
        }
    }
}

/// "A rare prize at the latest on the `after`-th spin since the last rare one", per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pity {
    pub after: u32,
}

/// A draw as an admin puts it (`PUT /v1/admin/draws/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawSpec {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Points a paid spin costs (0: spins are free, within the limits).
    #[serde(default)]
    pub cost: i64,
    /// Free spins a day (business zone), before the tier's extra spins.
    #[serde(default)]
    pub free_per_day: u32,
    /// Spins a member may make a day, free, bonus and paid together.
    pub daily_limit: u32,
    /// Spins a member may make in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_limit: Option<u32>,
    pub prizes: Vec<Prize>,
    /// The prize given when the drawn one is out of stock or over its per-member max.
    pub consolation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pity: Option<Pity>,
    /// Bonus free spins for sharing (once a day; 0: off).
    #[serde(default = "one")]
    pub share_bonus: u32,
}

fn one() -> u32 {
    1
}

impl DrawSpec {
    pub fn prize(&self, id: &str) -> Option<&Prize> {
        self.prizes.iter().find(|p| p.prize_id == id)
    }

    /// The sum of the weights (what the `draw` number is drawn below).
    pub fn total_weight(&self) -> u64 {
        self.prizes.iter().map(|p| u64::from(p.weight)).sum()
    }
}

/// Checks a draw an admin puts (422 otherwise); `current` is the stored one, if any: once it has
/// started its odds (weights, prizes, pity) and start are fixed and stock can only be added.
pub fn validate(spec: &DrawSpec, current: Option<&DrawSpec>, now: DateTime<Utc>) -> Result<(), DomainError> {
    let title = spec.title.trim();
    if title.is_empty() || title.chars().count() > 80 || title.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "title",
            "1-80 characters, no control characters",
        ));
    }
    if spec.description.chars().count() > 500 || spec.description.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(DomainError::invalid("description", "at most 500 characters"));
    }
    if spec.ends_at <= spec.starts_at {
        return Err(DomainError::invalid("ends_at", "must be after starts_at"));
    }
    if spec.ends_at - spec.starts_at > Duration::days(MAX_DAYS) {
        return Err(DomainError::invalid(
            "ends_at",
            format!("a draw lasts at most {MAX_DAYS} days"),
        ));
    }
    if !(0..=MAX_POSTING).contains(&spec.cost) {
        return Err(DomainError::invalid("cost", format!("0-{MAX_POSTING} points")));
    }
    if !(1..=MAX_DAILY_LIMIT).contains(&spec.daily_limit) {
        return Err(DomainError::invalid(
            "daily_limit",
            format!("1-{MAX_DAILY_LIMIT}"),
        ));
    }
    if spec.free_per_day > spec.daily_limit {
        return Err(DomainError::invalid("free_per_day", "at most the daily limit"));
    }
    if spec.share_bonus > spec.daily_limit {
        return Err(DomainError::invalid("share_bonus", "at most the daily limit"));
    }
    if spec.total_limit == Some(0) {
        return Err(DomainError::invalid(
            "total_limit",
            "at least 1 (absent: no limit)",
        ));
    }
    validate_prizes(spec)?;
    if let Some(pity) = spec.pity {
        if !(2..=1_000).contains(&pity.after) {
            return Err(DomainError::invalid("pity", "after: 2-1000 spins"));
        }
        if !spec.prizes.iter().any(|p| p.rare && p.weight > 0) {
            return Err(DomainError::invalid("pity", "needs a rare prize with a weight"));
        }
    }
    match current {
        Some(old) if now >= old.starts_at => validate_started(spec, old),
        _ => Ok(()),
    }
}

fn validate_prizes(spec: &DrawSpec) -> Result<(), DomainError> {
    if spec.prizes.is_empty() || spec.prizes.len() > MAX_PRIZES {
        return Err(DomainError::invalid("prizes", format!("1-{MAX_PRIZES} prizes")));
    }
    for (i, prize) in spec.prizes.iter().enumerate() {
        validate_slug("prize_id", &prize.prize_id)?;
        if spec.prizes[..i].iter().any(|p| p.prize_id == prize.prize_id) {
            return Err(DomainError::invalid("prize_id", "each prize_id once"));
        }
        let name = prize.name.trim();
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "1-80 characters, no control characters",
            ));
        }
        if prize.weight > MAX_WEIGHT {
            return Err(DomainError::invalid("weight", format!("0-{MAX_WEIGHT}")));
        }
        match (prize.kind, prize.value) {
            (PrizeKind::Points, Some(v)) if (1..=MAX_POSTING).contains(&v) => {}
            (PrizeKind::Points, _) => {
                return Err(DomainError::invalid(
                    "value",
                    format!("1-{MAX_POSTING} points for a points prize"),
                ));
            }
            (_, Some(_)) => return Err(DomainError::invalid("value", "only for a points prize")),
            (_, None) => {}
        }
        if prize.stock.is_some_and(|s| s > MAX_STOCK) {
            return Err(DomainError::invalid("stock", format!("at most {MAX_STOCK}")));
        }
        if prize.kind == PrizeKind::Coupon && prize.stock.is_some() {
            return Err(DomainError::invalid(
                "stock",
                "a coupon prize's stock is the codes uploaded for it",
            ));
        }
        match prize.splits {
            Some(k) if !(1..=MAX_SPLITS).contains(&k) => {
                return Err(DomainError::invalid("splits", format!("1-{MAX_SPLITS}")));
            }
            Some(_) if !prize.stocked() => {
                return Err(DomainError::invalid("splits", "only for a prize with stock"));
            }
            _ => {}
        }
        if prize.per_member_max == Some(0) {
            return Err(DomainError::invalid(
                "per_member_max",
                "at least 1 (absent: no max)",
            ));
        }
    }
    if spec.prizes.iter().map(Prize::split_count).sum::<u32>() > MAX_STOCK_ITEMS {
        return Err(DomainError::invalid(
            "splits",
            format!("at most {MAX_STOCK_ITEMS} stock items a draw"),
        ));
    }
    if spec.total_weight() == 0 {
        return Err(DomainError::invalid("weight", "the weights must not all be 0"));
    }
    match spec.prize(&spec.consolation) {
        Some(p) if !p.stocked() && p.per_member_max.is_none() && !p.rare => Ok(()),
        Some(_) => Err(DomainError::invalid(
            "consolation",
            "must be unlimited (no stock, no per-member max) and not rare",
        )),
        None => Err(DomainError::invalid("consolation", "must be one of the prizes")),
    }
}

/// What may change once a draw has started: the end, texts, limits, and stock added.
fn validate_started(spec: &DrawSpec, old: &DrawSpec) -> Result<(), DomainError> {
    if spec.starts_at != old.starts_at {
        return Err(DomainError::invalid(
            "starts_at",
            "cannot change once the draw has started",
        ));
    }
    if spec.pity != old.pity || spec.consolation != old.consolation || spec.prizes.len() != old.prizes.len() {
        return Err(DomainError::invalid(
            "prizes",
            "the published odds cannot change once started",
        ));
    }
    for (new, was) in spec.prizes.iter().zip(&old.prizes) {
        let same_odds = new.prize_id == was.prize_id
            && new.kind == was.kind
            && new.value == was.value
            && new.weight == was.weight
            && new.rare == was.rare
            && new.per_member_max == was.per_member_max
            && new.splits == was.splits;
        if !same_odds {
            return Err(DomainError::invalid(
                "prizes",
                "the published odds cannot change once started",
            ));
        }
        let added = match (was.stock, new.stock) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => b >= a,
        };
        if !added {
            return Err(DomainError::invalid(
                "stock",
                "can only be added once the draw has started",
            ));
        }
    }
    Ok(())
}

/// A client seed is optional, at most 64 printable ASCII characters.
pub fn validate_client_seed(seed: &str) -> Result<(), DomainError> {
    if seed.len() <= MAX_CLIENT_SEED && seed.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "client_seed",
            format!("at most {MAX_CLIENT_SEED} printable ASCII characters"),
        ))
    }
}

/// The commitment to a server seed: SHA-256 of its 32 bytes, lowercase hex.
pub fn commitment(seed: &[u8; 32]) -> String {
    hex(&Sha256::digest(seed))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The message a spin's outcome is derived from (step 1 of the algorithm).
pub fn message(draw_id: &str, member: &str, spin: u64, client_seed: &str) -> String {
    format!("{ALGORITHM}\n{draw_id}\n{member}\n{spin}\n{client_seed}")
}

/// A uniform number below `bound` (≥ 1) for `label` (step 2 of the algorithm).
pub fn uniform(seed: &[u8; 32], message: &str, label: &str, bound: u64) -> u64 {
    let bound = bound.max(1);
    let zone = u64::MAX / bound * bound;
    for round in 0u64.. {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(seed) else {
            unreachable!("HMAC takes a key of any length");
        };
        mac.update(format!("{message}\n{label}\n{round}").as_bytes());
        let bytes = mac.finalize().into_bytes();
        for word in bytes.chunks_exact(8) {
            let mut be = [0u8; 8];
            be.copy_from_slice(word);
            let r = u64::from_be_bytes(be);
            if r < zone {
                return r % bound;
            }
        }
    }
    unreachable!("some round accepts")
}

/// The index of the prize a number below the total weight lands on (step 3).
pub fn pick(weights: &[u32], number: u64) -> Option<usize> {
    let mut sum = 0u64;
    for (i, w) in weights.iter().enumerate() {
        sum += u64::from(*w);
        if number < sum {
            return Some(i);
        }
    }
    None
}

/// A member's state in one draw, as far as outcomes go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberOdds {
    /// Spins since their last rare prize.
    #[serde(default)]
    pub since_rare: u32,
    /// Prizes won so far, by prize id.
    #[serde(default)]
    pub won: BTreeMap<String, u32>,
}

/// Why a spin got what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// The drawn prize.
    Drawn,
    /// Pity was due: a rare prize picked with the `pity` number.
    Pity,
    /// The drawn prize was out of stock (or pity was due and no rare prize was available).
    OutOfStock,
    /// The drawn prize was over its per-member max.
    MemberMax,
}

/// A spin's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The prize the `draw` number landed on.
    pub drawn: String,
    /// The prize awarded.
    pub prize: String,
    pub why: Why,
}

/// The outcome of a member's spin (step 4), given whether each prize is in stock.
pub fn outcome(
    spec: &DrawSpec,
    seed: &[u8; 32],
    message: &str,
    odds: &MemberOdds,
    in_stock: impl Fn(&Prize) -> bool,
) -> Outcome {
    let weights: Vec<u32> = spec.prizes.iter().map(|p| p.weight).collect();
    let number = uniform(seed, message, "draw", spec.total_weight());
    let drawn = &spec.prizes[pick(&weights, number).unwrap_or(0)];
    let under_max = |p: &Prize| {
        p.per_member_max
            .is_none_or(|max| odds.won.get(&p.prize_id).copied().unwrap_or(0) < max)
    };
    let available = |p: &Prize| in_stock(p) && under_max(p);
    let pity_due = spec
        .pity
        .is_some_and(|pity| odds.since_rare.saturating_add(1) >= pity.after);
    let award = |prize: &Prize, why| Outcome {
        drawn: drawn.prize_id.clone(),
        prize: prize.prize_id.clone(),
        why,
    };
    if available(drawn) && (drawn.rare || !pity_due) {
        return award(drawn, Why::Drawn);
    }
    if pity_due {
        let rare: Vec<&Prize> = spec
            .prizes
            .iter()
            .filter(|p| p.rare && p.weight > 0 && available(p))
            .collect();
        let total: u64 = rare.iter().map(|p| u64::from(p.weight)).sum();
        if total > 0 {
            let weights: Vec<u32> = rare.iter().map(|p| p.weight).collect();
            let number = uniform(seed, message, "pity", total);
            return award(rare[pick(&weights, number).unwrap_or(0)], Why::Pity);
        }
    }
    let why = if under_max(drawn) || !in_stock(drawn) {
        Why::OutOfStock
    } else {
        Why::MemberMax
    };
    let consolation = spec.prize(&spec.consolation).unwrap_or(drawn);
    award(consolation, why)
}

impl MemberOdds {
    /// The state after winning `prize`.
    pub fn after(&self, spec: &DrawSpec, prize: &str) -> MemberOdds {
        let rare = spec.prize(prize).is_some_and(|p| p.rare);
        let mut won = self.won.clone();
        *won.entry(prize.to_owned()).or_insert(0) += 1;
        MemberOdds {
            since_rare: if rare {
                0
            } else {
                self.since_rare.saturating_add(1)
            },
            won,
        }
    }
}

/// How a stock of `total` units is spread over `k` items: as even as it goes, the first ones
/// one more (10 over 3: 4, 3, 3).
pub fn split_shares(total: u64, k: u32) -> Vec<u64> {
    let k = u64::from(k.max(1));
    (0..k).map(|i| total / k + u64::from(i < total % k)).collect()
}

/// The order in which a member tries a prize's stock items: from the one their id hashes to,
/// so concurrent winners spread over the items.
pub fn split_order(member: &str, k: u32) -> Vec<u32> {
    let k = k.max(1);
    let start = super::boards::shard_of(member);
    (0..k).map(|i| (start + i) % k).collect()
}

/// Whether a draw takes spins at `now` (`starts_at <= now < ends_at`).
pub fn is_open(spec: &DrawSpec, now: DateTime<Utc>) -> bool {
    spec.starts_at <= now && now < spec.ends_at
}

/// A member's state in one draw: spins so far (in all and today, in the business zone), the
/// day's share bonus, and what decides outcomes (pity, prizes won).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDraw {
    /// Spins in all: the next spin's number is `spins + 1`.
    #[serde(default)]
    pub spins: u64,
    /// The local day the day's counters are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
    /// Spins that day (free, bonus and paid).
    #[serde(default)]
    pub day_spins: u32,
    /// Free and bonus spins used that day.
    #[serde(default)]
    pub day_free: u32,
    /// Bonus spins granted for sharing that day.
    #[serde(default)]
    pub day_bonus: u32,
    /// Shared that day (at most once a day counts).
    #[serde(default)]
    pub shared: bool,
    #[serde(default)]
    pub odds: MemberOdds,
    #[serde(default)]
    pub version: u64,
}

/// What a member may still do today in a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// Spins left today under the daily and total limits (free or paid).
    pub spins_left_today: u32,
    /// Free spins left today (the draw's, the tier's extra ones and share bonuses), within
    /// `spins_left_today`.
    pub free_spins_left_today: u32,
}

/// How the next spin is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payment {
    /// A free spin (the day's, the tier's or a share bonus).
    Free,
    /// `cost` points.
    Paid,
}

impl MemberDraw {
    /// The state as of `today`: the day's counters start again on a new day.
    pub fn on(&self, today: NaiveDate) -> MemberDraw {
        if self.day == Some(today) {
            return self.clone();
        }
        MemberDraw {
            day: Some(today),
            day_spins: 0,
            day_free: 0,
            day_bonus: 0,
            shared: false,
            ..self.clone()
        }
    }

    /// What is left today; `extra` is the member's tier's extra daily spins.
    pub fn allowance(&self, spec: &DrawSpec, today: NaiveDate, extra: u32) -> Allowance {
        let day = self.on(today);
        let total_left = spec
            .total_limit
            .map_or(u64::MAX, |t| u64::from(t).saturating_sub(day.spins));
        let left = u64::from(spec.daily_limit.saturating_sub(day.day_spins)).min(total_left);
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        let free = spec
            .free_per_day
            .saturating_add(extra)
            .saturating_add(day.day_bonus)
            .saturating_sub(day.day_free);
        let free = if spec.cost == 0 { left } else { free.min(left) };
        Allowance {
            spins_left_today: left,
            free_spins_left_today: free,
        }
    }

    /// The next spin today: how it is paid and the state after it (its outcome not yet
    /// applied); 429 when a limit is reached.
    pub fn spin(
        &self,
        spec: &DrawSpec,
        today: NaiveDate,
        extra: u32,
    ) -> Result<(Payment, MemberDraw), DomainError> {
        let allowance = self.allowance(spec, today, extra);
        if allowance.spins_left_today == 0 {
            return Err(match spec.total_limit {
                Some(total) if self.spins >= u64::from(total) => DomainError::DrawLimit {
                    which: "total",
                    limit: total,
                },
                _ => DomainError::DrawLimit {
                    which: "daily",
                    limit: spec.daily_limit,
                },
            });
        }
        let mut next = self.on(today);
        next.spins += 1;
        next.day_spins += 1;
        let payment = match allowance.free_spins_left_today > 0 {
            true => {
                next.day_free += 1;
                Payment::Free
            }
            false => Payment::Paid,
        };
        next.version = self.version + 1;
        Ok((payment, next))
    }

    /// The state after sharing today: the draw's share bonus added once a day (409 when the
    /// draw gives none, 429 when already shared today).
    pub fn share(&self, spec: &DrawSpec, today: NaiveDate) -> Result<MemberDraw, DomainError> {
        if spec.share_bonus == 0 {
            return Err(DomainError::DrawSharesOff);
        }
        let mut next = self.on(today);
        if next.shared {
            return Err(DomainError::AlreadySharedToday);
        }
        next.shared = true;
        next.day_bonus = next.day_bonus.saturating_add(spec.share_bonus);
        next.version = self.version + 1;
        Ok(next)
    }
}

/// Where a coupon prize's code numbers lie in one stock item: ranges `[first, first + count)`,
/// in the order the item hands them out.
pub fn code_number(ranges: &[(u64, u64)], unit: u64) -> Option<u64> {
    let mut skip = unit;
    for &(first, count) in ranges {
        if skip < count {
            return Some(first + skip);
        }
        skip -= count;
    }
    None
}

/// A coupon code: 1-24 of `[A-Za-z0-9_-]`.
pub fn validate_code(code: &str) -> Result<(), DomainError> {
    let ok = !code.is_empty()
        && code.len() <= 24
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match ok {
        true => Ok(()),
        false => Err(DomainError::invalid(
            "codes",
            "each code is 1-24 of A-Z, a-z, 0-9, - and _",
        )),
    }
}

/// An open draw as its home index lists it: what the card and the allowance need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub id: String,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub cost: i64,
    pub free_per_day: u32,
    pub daily_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_limit: Option<u32>,
    pub share_bonus: u32,
}

impl Listed {
    /// The limits of the listed draw, as a spec the allowance reads (prizes left out).
    pub fn limits(&self) -> DrawSpec {
        DrawSpec {
            title: self.title.clone(),
            description: String::new(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            cost: self.cost,
            free_per_day: self.free_per_day,
            daily_limit: self.daily_limit,
            total_limit: self.total_limit,
            prizes: vec![],
            consolation: String::new(),
            pity: None,
            share_bonus: self.share_bonus,
        }
    }
}

/// Most draws listed (not ended) at once.
pub const MAX_OPEN_DRAWS: usize = super::home::MAX_INDEX_ENTRIES;

/// The draws home index (`CONFIG/DRAWS`): draws not ended, by start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawIndex {
    #[serde(default)]
    pub entries: Vec<Listed>,
    #[serde(default)]
    pub version: u64,
}

impl DrawIndex {
    /// The index with draw `id` put in (or refreshed), ended draws dropped; 429 when more than
    /// [`MAX_OPEN_DRAWS`] would be listed.
    pub fn with(&self, id: &str, spec: &DrawSpec, now: DateTime<Utc>) -> Result<DrawIndex, DomainError> {
        let mut entries: Vec<Listed> = self
            .entries
            .iter()
            .filter(|e| e.id != id && e.ends_at > now)
            .cloned()
            .collect();
        if spec.ends_at > now {
            entries.push(Listed {
                id: id.to_owned(),
                title: spec.title.clone(),
                starts_at: spec.starts_at,
                ends_at: spec.ends_at,
                cost: spec.cost,
                free_per_day: spec.free_per_day,
                daily_limit: spec.daily_limit,
                total_limit: spec.total_limit,
                share_bonus: spec.share_bonus,
            });
        }
        entries.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
        if entries.len() > MAX_OPEN_DRAWS {
            return Err(DomainError::TooManyDraws { max: MAX_OPEN_DRAWS });
        }
        Ok(DrawIndex {
            entries,
            version: self.version + 1,
        })
    }

    /// The draws open at `now`.
    pub fn open(&self, now: DateTime<Utc>) -> Vec<&Listed> {
        self.entries
            .iter()
            .filter(|e| e.starts_at <= now && now < e.ends_at)
            .collect()
    }
}

#[cfg(test)]
mod tests;
