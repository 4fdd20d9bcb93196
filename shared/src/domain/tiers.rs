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
/// At most this many multiplier windows may be active at once for one reason.
pub const MAX_STACKED_WINDOWS: usize = 8;
/// The combined factor (the highest tier's × every overlapping window's) is at most 100×.
pub const MAX_COMBINED_BPS: u32 = 1_000_000;

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

    /// The highest earn multiplier of the ladder (what stacking limits are checked against).
    pub fn max_multiplier_bps(&self) -> u32 {
        self.tiers
            .iter()
            .map(|t| t.multiplier_bps)
            .max()
            .unwrap_or(ONE_BPS)
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
        let distinct: std::collections::BTreeSet<&Reason> = self.reasons.iter().collect();
        if distinct.len() != self.reasons.len() {
            return Err(DomainError::invalid("reasons", "each reason at most once"));
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

impl Multipliers {
    /// Drops the windows that have ended by `now`: they multiply nothing any more.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.windows.retain(|_, w| w.end > now);
    }

    /// Refuses a set of windows that could overflow an earning: at no instant may more than
    /// [`MAX_STACKED_WINDOWS`] windows of one reason be active, nor may their factors times the
    /// highest tier's (`max_tier_bps`) exceed [`MAX_COMBINED_BPS`] (100×). Returns why not.
    pub fn check_stacking(&self, max_tier_bps: u32) -> Result<(), String> {
        for reason in MULTIPLIABLE {
            let windows: Vec<&MultiplierWindow> = self
                .windows
                .values()
                .filter(|w| w.reasons.contains(&reason))
                .collect();
            // The most windows overlap at some window's start.
            for at in windows.iter().map(|w| w.start) {
                let active: Vec<u32> = windows
                    .iter()
                    .filter(|w| w.active(at))
                    .map(|w| w.factor_bps)
                    .collect();
                if active.len() > MAX_STACKED_WINDOWS {
                    return Err(format!(
                        "at most {MAX_STACKED_WINDOWS} windows may overlap for {reason:?} earnings"
                    ));
                }
                let mut factors = active;
                factors.push(max_tier_bps);
                if combined_exceeds_cap(&factors) {
                    return Err(format!(
                        "overlapping windows times the highest tier's multiplier exceed 100x \
                         ({MAX_COMBINED_BPS} bps) for {reason:?} earnings from {at}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether Π(factor / 10000) > 100. At most 9 factors (a tier and 8 windows) are compared exactly;
/// a product too large for `u128` exceeds the cap (`100 × 10000⁹ < 2¹²⁸`).
fn combined_exceeds_cap(factors_bps: &[u32]) -> bool {
    let Some((_, cap)) = scale_and_cap(factors_bps.len()) else {
        return true;
    };
    factors_bps
        .iter()
        .try_fold(1u128, |p, f| p.checked_mul(u128::from(*f)))
        .is_none_or(|product| product > cap)
}

/// `10000ⁿ` and the product of `n` factors that means 100×; `None` above 9 factors.
fn scale_and_cap(n: usize) -> Option<(u128, u128)> {
    if n > MAX_STACKED_WINDOWS + 1 {
        return None;
    }
    let scale = u128::from(ONE_BPS).checked_pow(u32::try_from(n).ok()?)?;
    let cap = scale.checked_mul(u128::from(MAX_COMBINED_BPS / ONE_BPS))?;
    Some((scale, cap))
}

/// `base × Π(factor / 10000)`, rounded down once, the combined factor counting as at most 100×.
/// Exact for any base and at most 9 factors (a tier and [`MAX_STACKED_WINDOWS`] windows).
pub fn apply_factors(base: u64, factors_bps: &[u32]) -> Result<u64, DomainError> {
    let (scale, cap) = scale_and_cap(factors_bps.len()).ok_or(DomainError::Overflow)?;
    let product = factors_bps
        .iter()
        .try_fold(1u128, |p, f| p.checked_mul(u128::from(*f)))
        .map_or(cap, |p| p.min(cap));
    u64::try_from(mul_div_floor(base, product, scale)).map_err(|_| DomainError::Overflow)
}

/// `⌊a × p / s⌋` without a wider integer type, for `p ≤ 100 × s` and `s ≤ 10000⁹`: the bits of `a`
/// from the top, keeping `⌊x·p / s⌋` and `x·p mod s` for the prefix `x` read so far.
fn mul_div_floor(a: u64, p: u128, s: u128) -> u128 {
    let (mut quotient, mut rest) = (0u128, 0u128);
    for bit in (0..64).rev() {
        let add = if (a >> bit) & 1 == 1 { p } else { 0 };
        // 2·rest + p < 2s + 100s ≤ 102 × 10³⁶ < 2¹²⁸.
        let t = 2 * rest + add;
        quotient = 2 * quotient + t / s;
        rest = t % s;
    }
    quotient
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
    // Stored windows keep to the stacking limits (`Multipliers::check_stacking`); windows stored
    // before those limits existed count only up to them, so earning never fails for this reason.
    let mut factors = vec![tier.multiplier_bps];
    factors.extend(
        multipliers
            .windows
            .values()
            .filter(|w| w.active(now) && w.reasons.contains(&posting.reason))
            .map(|w| w.factor_bps)
            .take(MAX_STACKED_WINDOWS),
    );
    let base = posting.detail.as_ref().map_or(posting.delta, |d| d.base);
    let unsigned = u64::try_from(base).map_err(|_| DomainError::Overflow)?;
    let amount = i64::try_from(apply_factors(unsigned, &factors)?).map_err(|_| DomainError::Overflow)?;
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

    fn window(start: &str, end: &str, factor_bps: u32, reasons: Vec<Reason>) -> MultiplierWindow {
        MultiplierWindow {
            start: at(start),
            end: at(end),
            factor_bps,
            reasons,
        }
    }

    /// `n` windows on 11 November 2026 (UTC) of `factor_bps` for both reasons.
    fn singles_day(n: usize, factor_bps: u32) -> Vec<MultiplierWindow> {
        (0..n)
            .map(|_| {
                window(
                    "2026-11-11T00:00:00Z",
                    "2026-11-12T00:00:00Z",
                    factor_bps,
                    default_reasons(),
                )
            })
            .collect()
    }

    fn windows(list: Vec<MultiplierWindow>) -> Multipliers {
        Multipliers {
            windows: list
                .into_iter()
                .enumerate()
                .map(|(i, w)| (format!("w{i:02}"), w))
                .collect(),
            version: 1,
        }
    }

    #[test]
    fn at_most_eight_windows_overlap_for_one_reason() {
        let eight = singles_day(8, 10_000);
        assert_eq!(windows(eight.clone()).check_stacking(ONE_BPS), Ok(()));
        let mut nine = eight.clone();
        nine.push(window(
            "2026-11-11T23:00:00Z",
            "2026-11-13T00:00:00Z",
            10_000,
            vec![Reason::Checkin],
        ));
        assert!(
            windows(nine).check_stacking(ONE_BPS).is_err(),
            "nine overlap for check-ins"
        );
        // The ninth touches the others only at their (exclusive) end, or is for the other reason:
        // no instant has nine.
        let mut after = eight.clone();
        after.push(window(
            "2026-11-12T00:00:00Z",
            "2026-11-13T00:00:00Z",
            10_000,
            default_reasons(),
        ));
        assert_eq!(windows(after).check_stacking(ONE_BPS), Ok(()));
        let mut seven_and_other: Vec<_> = eight[..7].to_vec();
        seven_and_other.push(window(
            "2026-11-11T00:00:00Z",
            "2026-11-12T00:00:00Z",
            10_000,
            vec![Reason::Purchase],
        ));
        seven_and_other.push(window(
            "2026-11-11T00:00:00Z",
            "2026-11-12T00:00:00Z",
            10_000,
            vec![Reason::Checkin],
        ));
        assert_eq!(windows(seven_and_other).check_stacking(ONE_BPS), Ok(()));
    }

    #[test]
    fn the_combined_factor_with_the_highest_tier_is_at_most_a_hundredfold() {
        let w = |f| {
            window(
                "2026-11-11T00:00:00Z",
                "2026-11-12T00:00:00Z",
                f,
                vec![Reason::Purchase],
            )
        };
        // 10 × 10 = 100×: allowed; with a tier of 1.0001 it is above.
        let ten_ten = windows(vec![w(100_000), w(100_000)]);
        assert_eq!(ten_ten.check_stacking(ONE_BPS), Ok(()));
        assert!(ten_ten.check_stacking(ONE_BPS + 1).is_err());
        // A tier of 10× and one window of 10×: exactly 100×. Ten windows of 2× are refused first
        // for their number; eight of 10× overflow u128 in the product and are refused too.
        assert_eq!(windows(vec![w(100_000)]).check_stacking(100_000), Ok(()));
        assert!(windows(vec![w(100_001)]).check_stacking(100_000).is_err());
        assert!(
            windows((0..8).map(|_| w(100_000)).collect())
                .check_stacking(100_000)
                .is_err()
        );
        // Factors below one make room: 0.5 × 20 × 10 = 100×.
        assert_eq!(
            windows(vec![w(5_000), w(100_000), w(20_000)]).check_stacking(100_000),
            Ok(())
        );
        // Windows that never overlap are each checked alone.
        let apart = windows(vec![
            w(100_000),
            window(
                "2026-11-12T00:00:00Z",
                "2026-11-13T00:00:00Z",
                100_000,
                vec![Reason::Purchase],
            ),
        ]);
        assert_eq!(apart.check_stacking(100_000), Ok(()));
    }

    #[test]
    fn ended_windows_are_pruned_and_the_end_is_exclusive() {
        let mut m = windows(vec![
            window(
                "2026-11-11T00:00:00Z",
                "2026-11-12T00:00:00Z",
                20_000,
                default_reasons(),
            ),
            window(
                "2026-11-12T00:00:00Z",
                "2026-11-13T00:00:00Z",
                20_000,
                default_reasons(),
            ),
        ]);
        let gold = TierConfig::default().tiers[0].clone();
        // At the first window's end only the second one is active.
        let at_end = at("2026-11-12T00:00:00Z");
        let p = price(earn(Reason::Purchase, 10), &gold, &m, at_end)
            .unwrap()
            .unwrap();
        assert_eq!(p.detail.unwrap().factors_bps, vec![10_000, 20_000]);
        assert_eq!(
            price(earn(Reason::Purchase, 10), &gold, &m, at("2026-11-11T23:59:59Z"))
                .unwrap()
                .unwrap()
                .delta,
            20
        );
        m.prune(at_end);
        assert_eq!(m.windows.keys().collect::<Vec<_>>(), vec!["w01"]);
        m.prune(at("2026-11-13T00:00:00Z"));
        assert!(m.windows.is_empty());
    }

    #[test]
    fn stacked_factors_never_overflow_and_round_down_once() {
        // Eight 2× windows and a 1.5× tier: 384× is above the cap, so it counts as 100×.
        assert_eq!(
            apply_factors(
                1_000_000_000,
                &[
                    15_000, 20_000, 20_000, 20_000, 20_000, 20_000, 20_000, 20_000, 20_000
                ]
            ),
            Ok(100_000_000_000)
        );
        // 1.5 × 2⁵ = 48× exactly, on the largest base a purchase can have.
        assert_eq!(
            apply_factors(
                1_000_000_000_000,
                &[
                    15_000, 20_000, 20_000, 20_000, 20_000, 20_000, 10_000, 10_000, 10_000
                ]
            ),
            Ok(48_000_000_000_000)
        );
        // 7 × 1.1 × 2 = 15.4 → 15; 3 × 1.0001⁹ = 3.0027… → 3; 9999 × 1.0001⁹ = 10008.0027… → 10008.
        assert_eq!(apply_factors(7, &[11_000, 20_000]), Ok(15));
        assert_eq!(apply_factors(3, &[10_001; 9]), Ok(3));
        assert_eq!(apply_factors(9_999, &[10_001; 9]), Ok(10_008));
        // More than nine factors cannot be weighed exactly: refused (price takes at most eight windows).
        assert_eq!(apply_factors(1, &[10_000; 10]), Err(DomainError::Overflow));
        // Legacy data with more than eight active windows still prices (the first eight count).
        let many = windows(singles_day(12, 10_000));
        let p = price(
            earn(Reason::Checkin, 5),
            &TierConfig::default().tiers[0],
            &many,
            at("2026-11-11T12:00:00Z"),
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.delta, p.detail.unwrap().factors_bps.len()), (5, 9));
    }

    proptest::proptest! {
        /// The bit-by-bit division equals plain u128 arithmetic wherever that does not overflow.
        #[test]
        fn mul_div_floor_matches_u128_arithmetic(
            a in 0u64..(1 << 40),
            n in 1u32..=5,
            raw in 0u128..u128::MAX,
        ) {
            let s = 10_000u128.pow(n);
            let p = raw % (100 * s + 1);
            if let Some(product) = u128::from(a).checked_mul(p) {
                proptest::prop_assert_eq!(mul_div_floor(a, p, s), product / s);
            }
        }

        /// Rounding down once keeps the result monotonic in the base and at most 100× it: a bigger
        /// earning never earns fewer points.
        #[test]
        fn apply_factors_is_monotonic_in_the_base(
            base in 0u64..1_000_000_000_000,
            factors in proptest::collection::vec(1u32..=100_000, 1..=9),
        ) {
            let a = apply_factors(base, &factors).unwrap();
            let b = apply_factors(base + 1, &factors).unwrap();
            proptest::prop_assert!(a <= b);
            proptest::prop_assert!(a <= base.saturating_mul(100));
        }
    }

    fn ladder_with(f: impl Fn(&mut TierConfig)) -> Result<(), DomainError> {
        let mut c = TierConfig::default();
        f(&mut c);
        c.validate()
    }

    #[test]
    fn the_exact_limits_of_a_ladder() {
        let tier = |i: i64| TierDef {
            name: format!("T{i}"),
            threshold: i * 10,
            multiplier_bps: ONE_BPS,
            extra_daily_spins: 0,
            max_members: None,
        };
        assert!(ladder_with(|c| c.tiers = (0..20).map(tier).collect()).is_ok());
        assert!(ladder_with(|c| c.tiers = (0..21).map(tier).collect()).is_err());
        assert!(ladder_with(|c| c.tiers[4].threshold = 1_000_000_000_000).is_ok());
        assert!(ladder_with(|c| c.tiers[4].threshold = 1_000_000_000_001).is_err());
        assert!(ladder_with(|c| c.tiers[4].multiplier_bps = MAX_FACTOR_BPS).is_ok());
        assert!(ladder_with(|c| c.tiers[4].multiplier_bps = MAX_FACTOR_BPS + 1).is_err());
        assert!(ladder_with(|c| c.tiers[4].extra_daily_spins = 100).is_ok());
        assert!(ladder_with(|c| c.tiers[4].extra_daily_spins = 101).is_err());
    }

    #[test]
    fn tier_names_are_1_to_32_letters_digits_spaces_dashes_underscores() {
        for good in ["Black Card", "tier-2", "tier_3", "V", &"x".repeat(32)] {
            assert!(
                ladder_with(|c| c.tiers[1].name = good.to_owned()).is_ok(),
                "{good:?}"
            );
        }
        for bad in ["", "Gold#", "a.b", "Gold!", &"x".repeat(33)] {
            assert!(
                ladder_with(|c| c.tiers[1].name = bad.to_owned()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_tier_without_a_multiplier_earns_at_one() {
        let t: TierDef = serde_json::from_str(r#"{"name": "VIP", "threshold": 100}"#).unwrap();
        assert_eq!(
            (t.multiplier_bps, t.extra_daily_spins, t.max_members),
            (ONE_BPS, 0, None)
        );
        assert_eq!(TierConfig::default().max_multiplier_bps(), 15_000);
        let stored = TierState {
            config: Some(TierConfig {
                tiers: vec![t.clone()],
            }),
            ..TierState::default()
        };
        assert_eq!(
            stored.config().tiers,
            vec![t],
            "the stored ladder, not the default"
        );
    }

    #[test]
    fn the_exact_limits_of_a_window_factor() {
        let w = |f| {
            window(
                "2026-11-11T00:00:00Z",
                "2026-11-12T00:00:00Z",
                f,
                default_reasons(),
            )
        };
        assert!(w(1).validate().is_ok());
        assert!(w(MAX_FACTOR_BPS).validate().is_ok());
        assert!(w(0).validate().is_err());
        assert!(w(MAX_FACTOR_BPS + 1).validate().is_err());
    }

    #[test]
    fn only_plain_credits_are_priced() {
        let gold = TierConfig::default().tiers[2].clone();
        let m = Multipliers::default();
        let now = at("2026-11-11T00:00:00Z");
        // A release that happens to carry an earn reason is not an earning: never multiplied.
        let release =
            Posting::new(10, Reason::Purchase, "r", "k").with_kind(Kind::Release { hold_id: "h".into() });
        assert_eq!(price(release.clone(), &gold, &m, now).unwrap(), Some(release));
        assert_eq!(
            price(earn(Reason::Purchase, 10), &gold, &m, now)
                .unwrap()
                .unwrap()
                .delta,
            11
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
        assert!(w(vec![Reason::Purchase, Reason::Checkin]).validate().is_ok());
        // Each reason once: the contract's `maxItems` is the two multipliable reasons.
        assert!(w(vec![Reason::Purchase, Reason::Purchase]).validate().is_err());
        assert!(w(vec![Reason::Milestone]).validate().is_err());
        assert!(w(vec![]).validate().is_err());
        let mut backwards = w(vec![Reason::Checkin]);
        backwards.end = backwards.start;
        assert!(backwards.validate().is_err());
    }
}
