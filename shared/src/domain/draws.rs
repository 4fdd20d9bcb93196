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

use chrono::{DateTime, Duration, Utc};
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
        if prize.per_member_max == Some(0) {
            return Err(DomainError::invalid(
                "per_member_max",
                "at least 1 (absent: no max)",
            ));
        }
    }
    if spec.total_weight() == 0 {
        return Err(DomainError::invalid("weight", "the weights must not all be 0"));
    }
    match spec.prize(&spec.consolation) {
        Some(p) if p.stock.is_none() && p.per_member_max.is_none() && !p.rare => Ok(()),
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
            && new.per_member_max == was.per_member_max;
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

fn hex(bytes: &[u8]) -> String {
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

#[cfg(test)]
mod tests;
