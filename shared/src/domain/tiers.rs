//! Member tiers (by growth value = lifetime earned points) and earn multipliers (tier × time
//! windows), in integer basis points.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ledger::{EarnDetail, Kind, Posting, Reason};

/// 1.0 in basis points.
pub const ONE_BPS: u32 = 10_000;
const MAX_FACTOR_BPS: u32 = 100_000;

/// The reasons multipliers may apply to; fixed amounts (grants, prizes, bonuses) never multiply.
pub const MULTIPLIABLE: [Reason; 2] = [Reason::Purchase, Reason::Checkin];

/// One tier of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierDef {
    pub name: String,
    /// Growth value (lifetime earned points) from which a member is in this tier.
    pub threshold: i64,
    /// Earn multiplier for purchases and check-ins, in basis points (10000 = ×1).
    #[serde(default = "one")]
    pub multiplier_bps: u32,
    /// Extra draw spins per day (used by lucky draws).
    #[serde(default)]
    pub extra_daily_spins: u32,
    /// A scarce tier: at most this many members at once (first qualifying members in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
}

fn one() -> u32 {
    ONE_BPS
}

/// The tier ladder, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub tiers: Vec<TierDef>,
}

impl Default for TierConfig {
    /// New (0), Ordinary (500), Gold (2000), Platinum (5000), Diamond (10000).
    fn default() -> Self {
        let tier = |name: &str, threshold, multiplier_bps, extra_daily_spins| TierDef {
            name: name.into(),
            threshold,
            multiplier_bps,
            extra_daily_spins,
            max_members: None,
        };
        Self {
            tiers: vec![
                tier("New", 0, 10_000, 0),
                tier("Ordinary", 500, 10_000, 0),
                tier("Gold", 2_000, 11_000, 1),
                tier("Platinum", 5_000, 12_500, 2),
                tier("Diamond", 10_000, 15_000, 3),
            ],
        }
    }
}

impl TierConfig {
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |reason: &str| Err(DomainError::invalid("tiers", reason));
        if self.tiers.is_empty() || self.tiers.len() > 20 {
            return bad("needs 1 to 20 tiers");
        }
        if self.tiers[0].threshold != 0 {
            return bad("the first tier starts at 0");
        }
        for pair in self.tiers.windows(2) {
            if pair[1].threshold <= pair[0].threshold {
                return bad("thresholds must increase");
            }
        }
        for (i, t) in self.tiers.iter().enumerate() {
            let name_ok = !t.name.is_empty()
                && t.name.len() <= 32
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-' || b == b'_');
            if !name_ok || self.tiers[..i].iter().any(|o| o.name == t.name) {
                return bad("names must be distinct, 1-32 of A-Z a-z 0-9 space _ -");
            }
            if t.threshold > 1_000_000_000_000 {
                return bad("thresholds must be at most 10^12");
            }
            if t.multiplier_bps == 0 || t.multiplier_bps > MAX_FACTOR_BPS {
                return bad("multiplier_bps must be between 1 and 100000");
            }
            if t.extra_daily_spins > 100 {
                return bad("extra_daily_spins must be at most 100");
            }
            if t.max_members == Some(0) {
                return bad("max_members must be at least 1");
            }
            if i == 0 && t.max_members.is_some() {
                return bad("the first tier takes everyone and cannot be capped");
            }
        }
        Ok(())
    }

    /// The tier named `name`, or the lowest for `None` or an unknown name.
    pub fn tier(&self, name: Option<&str>) -> &TierDef {
        name.and_then(|n| self.tiers.iter().find(|t| t.name == n))
            .unwrap_or(&self.tiers[0])
    }

    /// The next tier above `name` and the growth still needed to reach it.
    pub fn next(&self, name: Option<&str>, growth: i64) -> Option<(&TierDef, i64)> {
        let current = self.tier(name);
        let i = self.tiers.iter().position(|t| t.name == current.name)?;
        self.tiers.get(i + 1).map(|t| (t, (t.threshold - growth).max(0)))
    }
}

/// The stored tier configuration with the seat counts of capped tiers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierState {
    #[serde(default)]
    pub config: Option<TierConfig>,
    /// Members currently in each capped tier.
    #[serde(default)]
    pub seats: BTreeMap<String, u64>,
    #[serde(default)]
    pub version: u64,
}

impl TierState {
    pub fn config(&self) -> TierConfig {
        self.config.clone().unwrap_or_default()
    }
}

/// Where a member belongs now: the tier to be in, and the seat counts that change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierMove {
    pub from: String,
    pub to: String,
    pub seats: BTreeMap<String, u64>,
}

/// Re-evaluates a member's tier for `growth`: the highest tier it qualifies for, unless that tier
/// is capped and full (then the next one down). A member already in a capped tier keeps its seat
/// while it still qualifies. `None` when nothing changes.
pub fn evaluate(
    config: &TierConfig,
    state: &TierState,
    current: Option<&str>,
    growth: i64,
) -> Option<TierMove> {
    let from = config.tier(current).name.clone();
    let qualified: Vec<&TierDef> = config.tiers.iter().filter(|t| t.threshold <= growth).collect();
    let mut target = config.tiers[0].name.clone();
    for t in qualified.iter().rev() {
        if t.name == from {
            target = from.clone();
            break;
        }
        let full = t
            .max_members
            .is_some_and(|max| state.seats.get(&t.name).copied().unwrap_or(0) >= u64::from(max));
        if !full {
            target = t.name.clone();
            break;
        }
    }
    if target == from {
        return None;
    }
    let mut seats = state.seats.clone();
    if config.tier(Some(&from)).max_members.is_some() {
        let n = seats.entry(from.clone()).or_insert(0);
        *n = n.saturating_sub(1);
    }
    if config.tier(Some(&target)).max_members.is_some() {
        *seats.entry(target.clone()).or_insert(0) += 1;
    }
    Some(TierMove {
        from,
        to: target,
        seats,
    })
}

/// A time window in which earnings are multiplied (e.g. 20000 = double points on Singles' Day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiplierWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub factor_bps: u32,
    /// The earn reasons it applies to (default: purchase and checkin).
    #[serde(default = "default_reasons")]
    pub reasons: Vec<Reason>,
}

fn default_reasons() -> Vec<Reason> {
    MULTIPLIABLE.to_vec()
}

impl MultiplierWindow {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.end <= self.start {
            return Err(DomainError::invalid("end", "must be after start"));
        }
        if self.factor_bps == 0 || self.factor_bps > MAX_FACTOR_BPS {
            return Err(DomainError::invalid("factor_bps", "must be between 1 and 100000"));
        }
        if self.reasons.is_empty() || self.reasons.iter().any(|r| !MULTIPLIABLE.contains(r)) {
            return Err(DomainError::invalid(
                "reasons",
                "only purchase and checkin earnings can be multiplied",
            ));
        }
        Ok(())
    }

    fn active(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }
}

/// All multiplier windows, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multipliers {
    #[serde(default)]
    pub windows: BTreeMap<String, MultiplierWindow>,
    #[serde(default)]
    pub version: u64,
}

/// Applies the tier's multiplier and the active windows to an earning of a multipliable reason:
/// the product of the factors in integer arithmetic, rounded down once at the end. Other postings
/// are returned unchanged. `None` when the result rounds down to zero points.
pub fn price(
    posting: Posting,
    tier: &TierDef,
    multipliers: &Multipliers,
    now: DateTime<Utc>,
) -> Result<Option<Posting>, DomainError> {
    if posting.kind != Kind::Standard || posting.delta <= 0 || !MULTIPLIABLE.contains(&posting.reason) {
        return Ok(Some(posting));
    }
    let mut factors = vec![tier.multiplier_bps];
    factors.extend(
        multipliers
            .windows
            .values()
            .filter(|w| w.active(now) && w.reasons.contains(&posting.reason))
            .map(|w| w.factor_bps),
    );
    let base = posting.detail.as_ref().map_or(posting.delta, |d| d.base);
    let mut amount = u128::try_from(base).map_err(|_| DomainError::Overflow)?;
    let mut scale: u128 = 1;
    for f in &factors {
        amount = amount.checked_mul(u128::from(*f)).ok_or(DomainError::Overflow)?;
        scale = scale
            .checked_mul(u128::from(ONE_BPS))
            .ok_or(DomainError::Overflow)?;
    }
    let amount = i64::try_from(amount / scale).map_err(|_| DomainError::Overflow)?;
    if amount == 0 {
        return Ok(None);
    }
    Ok(Some(Posting {
        delta: amount,
        detail: Some(EarnDetail {
            base,
            factors_bps: factors,
        }),
        ..posting
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn earn(reason: Reason, base: i64) -> Posting {
        Posting::new(base, reason, "r", "k")
    }

    #[test]
    fn default_ladder_and_progress() {
        let c = TierConfig::default();
        c.validate().unwrap();
        let s = TierState::default();
        assert_eq!(evaluate(&c, &s, None, 499), None, "still New");
        assert_eq!(evaluate(&c, &s, None, 500).unwrap().to, "Ordinary");
        assert_eq!(evaluate(&c, &s, Some("Ordinary"), 12_000).unwrap().to, "Diamond");
        assert_eq!(
            evaluate(&c, &s, Some("Gold"), 1_999).unwrap().to,
            "Ordinary",
            "reversals move members down"
        );
        assert_eq!(
            c.next(Some("Gold"), 2_100)
                .map(|(t, need)| (t.name.as_str(), need)),
            Some(("Platinum", 2_900))
        );
        assert_eq!(c.next(Some("Diamond"), 20_000), None);
    }

    #[test]
    fn a_capped_tier_admits_until_full_and_frees_seats() {
        let mut c = TierConfig::default();
        c.tiers[4].max_members = Some(2);
        let mut s = TierState::default();
        let m1 = evaluate(&c, &s, Some("Platinum"), 10_000).unwrap();
        assert_eq!((m1.to.as_str(), m1.seats["Diamond"]), ("Diamond", 1));
        s.seats = m1.seats;
        let m2 = evaluate(&c, &s, Some("Platinum"), 11_000).unwrap();
        s.seats = m2.seats;
        assert_eq!(s.seats["Diamond"], 2);
        // Full: the third qualifying member stays one tier down.
        assert_eq!(evaluate(&c, &s, Some("Platinum"), 50_000), None);
        assert_eq!(evaluate(&c, &s, Some("Gold"), 50_000).unwrap().to, "Platinum");
        // A member in the capped tier keeps its seat; leaving frees it.
        assert_eq!(evaluate(&c, &s, Some("Diamond"), 10_500), None);
        let out = evaluate(&c, &s, Some("Diamond"), 9_000).unwrap();
        assert_eq!((out.to.as_str(), out.seats["Diamond"]), ("Platinum", 1));
    }

    #[test]
    fn invalid_ladders_are_refused() {
        let bad = |f: &dyn Fn(&mut TierConfig)| {
            let mut c = TierConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(&|c| c.tiers.clear()));
        assert!(bad(&|c| c.tiers[0].threshold = 1));
        assert!(bad(&|c| c.tiers[2].threshold = 400));
        assert!(bad(&|c| c.tiers[1].name = "New".into()));
        assert!(bad(&|c| c.tiers[1].multiplier_bps = 0));
        assert!(bad(&|c| c.tiers[1].max_members = Some(0)));
        assert!(bad(&|c| c.tiers[0].max_members = Some(10)));
    }

    #[test]
    fn multipliers_combine_by_product_and_round_down_once() {
        let gold = TierConfig::default().tiers[2].clone(); // 11000
        let mut m = Multipliers::default();
        m.windows.insert(
            "double-11".into(),
            MultiplierWindow {
                start: at("2026-11-10T16:00:00Z"),
                end: at("2026-11-11T16:00:00Z"),
                factor_bps: 20_000,
                reasons: default_reasons(),
            },
        );
        let during = at("2026-11-11T02:00:00Z");
        let p = price(earn(Reason::Purchase, 15), &gold, &m, during)
            .unwrap()
            .unwrap();
        // 15 × 1.1 × 2 = 33 exactly; rounding once: 7 × 1.1 × 2 = 15.4 → 15 (not 7.7 → 7 → 14).
        assert_eq!(p.delta, 33);
        assert_eq!(
            p.detail,
            Some(EarnDetail {
                base: 15,
                factors_bps: vec![11_000, 20_000]
            })
        );
        assert_eq!(
            price(earn(Reason::Checkin, 7), &gold, &m, during)
                .unwrap()
                .unwrap()
                .delta,
            15
        );
        // Outside the window only the tier applies; fixed amounts never multiply.
        assert_eq!(
            price(earn(Reason::Purchase, 10), &gold, &m, at("2026-11-12T00:00:00Z"))
                .unwrap()
                .unwrap()
                .delta,
            11
        );
        assert_eq!(
            price(earn(Reason::Grant, 10), &gold, &m, during)
                .unwrap()
                .unwrap()
                .delta,
            10
        );
        assert_eq!(
            price(earn(Reason::Milestone, 10), &gold, &m, during)
                .unwrap()
                .unwrap()
                .delta,
            10
        );
        // A factor below one can round an earning down to nothing.
        let mut half = gold.clone();
        half.multiplier_bps = 5_000;
        assert_eq!(
            price(earn(Reason::Purchase, 1), &half, &Multipliers::default(), during).unwrap(),
            None
        );
    }

    #[test]
    fn windows_only_multiply_earnings() {
        let w = |reasons| MultiplierWindow {
            start: at("2026-11-10T00:00:00Z"),
            end: at("2026-11-11T00:00:00Z"),
            factor_bps: 20_000,
            reasons,
        };
        assert!(w(vec![Reason::Purchase]).validate().is_ok());
        assert!(w(vec![Reason::Milestone]).validate().is_err());
        assert!(w(vec![]).validate().is_err());
        let mut backwards = w(vec![Reason::Checkin]);
        backwards.end = backwards.start;
        assert!(backwards.validate().is_err());
    }
}
