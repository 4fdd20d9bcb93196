//! Referrals (每邀请1位好友注册，双方各得100积分): the program an admin configures, and the rules
//! of a claim. Pure: `now` is an argument.
//!
//! - A member's code is 8 Crockford base32 characters (`ids::code_from`), typed forgivingly
//!   (`ids::normalize_code`).
//! - An invitee claims one code, ever (the first wins), within the claim window from their first
//!   appearance; never their own.
//! - Cycles are impossible by one rule: a member who already has an invitee can no longer claim.
//! - Amounts and the qualifying action are fixed into the referral when it is claimed; turning
//!   the program off stops new claims, never pending rewards. Rewards are never multiplied.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::ledger::MAX_POSTING;

/// What releases the referrer's reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualifying {
    /// The invitee's first purchase worth at least 1 point after the claim.
    #[default]
    FirstPurchase,
    /// The invitee's first check-in after the claim (make-ups never qualify).
    FirstCheckin,
    /// At the claim.
    Immediately,
}

/// The referral program (`CONFIG/REFERRAL_PROGRAM`). Until an admin puts one, the program is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    #[serde(default = "default_reward")]
    pub invitee_reward: i64,
    #[serde(default = "default_reward")]
    pub referrer_reward: i64,
    #[serde(default)]
    pub qualifying: Qualifying,
    /// Days from the invitee's first appearance in which they may claim a code.
    #[serde(default = "default_window")]
    pub claim_window_days: u32,
    /// Referrer rewards paid per calendar month (business zone).
    #[serde(default = "default_monthly_cap")]
    pub monthly_cap: u32,
    /// Referrer rewards paid ever.
    #[serde(default = "default_lifetime_cap")]
    pub lifetime_cap: u32,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_reward() -> i64 {
    100
}
fn default_window() -> u32 {
    7
}
fn default_monthly_cap() -> u32 {
    20
}
fn default_lifetime_cap() -> u32 {
    200
}
fn default_enabled() -> bool {
    true
}

/// Longest claim window.
pub const MAX_WINDOW_DAYS: u32 = 365;
/// Largest cap.
pub const MAX_CAP: u32 = 100_000;

impl Default for Program {
    /// The documented defaults, switched off (a program runs once an admin puts it).
    fn default() -> Self {
        Program {
            invitee_reward: default_reward(),
            referrer_reward: default_reward(),
            qualifying: Qualifying::default(),
            claim_window_days: default_window(),
            monthly_cap: default_monthly_cap(),
            lifetime_cap: default_lifetime_cap(),
            enabled: false,
        }
    }
}

impl Program {
    /// Checks a program an admin puts (422 otherwise).
    pub fn validate(&self) -> Result<(), DomainError> {
        for (field, reward) in [
            ("invitee_reward", self.invitee_reward),
            ("referrer_reward", self.referrer_reward),
        ] {
            if !(0..=MAX_POSTING).contains(&reward) {
                return Err(DomainError::invalid(field, format!("0-{MAX_POSTING} points")));
            }
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.claim_window_days) {
            return Err(DomainError::invalid(
                "claim_window_days",
                format!("1-{MAX_WINDOW_DAYS}"),
            ));
        }
        if self.lifetime_cap > MAX_CAP {
            return Err(DomainError::invalid("lifetime_cap", format!("at most {MAX_CAP}")));
        }
        if self.monthly_cap > self.lifetime_cap {
            return Err(DomainError::invalid("monthly_cap", "at most the lifetime cap"));
        }
        Ok(())
    }

    /// The last instant an invitee who first appeared at `first_seen` may claim.
    pub fn claim_deadline(&self, first_seen: DateTime<Utc>) -> DateTime<Utc> {
        first_seen + Duration::days(i64::from(self.claim_window_days))
    }
}

/// Why a claim is refused (each a distinct problem type; nothing is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ProgramOff,
    OwnCode,
    AlreadyReferred,
    WindowPassed,
    /// The claimer already has an invitee: claiming could close a loop.
    Cycle,
}

/// What a claim needs to know about the invitee and the code's owner.
#[derive(Debug, Clone)]
pub struct ClaimFacts<'a> {
    pub invitee: &'a str,
    pub referrer: &'a str,
    /// The invitee's first appearance (now, for a member never seen before).
    pub first_seen: DateTime<Utc>,
    /// The invitee was referred already (by anyone: the first code wins, forever).
    pub referred: bool,
    /// Members the invitee has referred.
    pub invitees: u64,
}

/// Whether a claim may go ahead at `now` (the order of the checks fixes which refusal a claim
/// that breaks several rules gets).
pub fn check_claim(program: &Program, facts: &ClaimFacts<'_>, now: DateTime<Utc>) -> Result<(), Refusal> {
    if !program.enabled {
        return Err(Refusal::ProgramOff);
    }
    if facts.invitee == facts.referrer {
        return Err(Refusal::OwnCode);
    }
    if facts.referred {
        return Err(Refusal::AlreadyReferred);
    }
    if now > program.claim_deadline(facts.first_seen) {
        return Err(Refusal::WindowPassed);
    }
    if facts.invitees > 0 {
        return Err(Refusal::Cycle);
    }
    Ok(())
}

/// Where a referral is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Claimed; the referrer's reward waits for the qualifying action.
    Pending,
    /// The qualifying action happened; the referrer's payment is due.
    Qualified,
    /// The referrer was paid.
    Paid,
    /// Qualified when the referrer was over a cap: no referrer reward.
    Capped,
    /// Revoked by an admin (fraud): both rewards reversed.
    Revoked,
    /// The qualifying purchase was fully reversed after the referrer was settled: the referrer's
    /// reward was taken back; the referral ends.
    Reversed,
}

/// Whether a referrer paid `paid_this_month` and `paid_ever` times may be paid once more.
pub fn within_caps(program: &Program, paid_this_month: u32, paid_ever: u32) -> bool {
    paid_this_month < program.monthly_cap && paid_ever < program.lifetime_cap
}

/// What the referrer's side of a referral still has to do. While a referral has one, it is
/// indexed for the reconciler, which finishes what an interrupted step left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    /// Qualified: pay the referrer (or record `capped`) and count it for contests.
    Settle,
    /// Revoked or reversed after it was settled: take the referrer's reward back (if paid) and
    /// remove it from running contests.
    Undo,
}

/// An invitee's action that may qualify their referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A purchase grant worth `points` base points.
    Purchase { points: i64 },
    /// A check-in (never a make-up: make-ups are not actions that qualify).
    Checkin,
}

/// Whether `action` at `now` qualifies a referral in `status` that waits for `qualifying` since
/// `claimed_at`.
pub fn qualifies(
    status: Status,
    qualifying: Qualifying,
    claimed_at: DateTime<Utc>,
    action: Action,
    now: DateTime<Utc>,
) -> bool {
    let wanted = match (qualifying, action) {
        (Qualifying::FirstPurchase, Action::Purchase { points }) => points >= 1,
        (Qualifying::FirstCheckin, Action::Checkin) => true,
        _ => false,
    };
    wanted && status == Status::Pending && now >= claimed_at
}

/// How many times a referrer was paid, for the caps: in the month (business zone) last counted,
/// and ever. Revokes and reversals never give a slot back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidCounts {
    /// The month (`YYYY-MM`, business zone) `this_month` counts.
    #[serde(default)]
    pub month: String,
    #[serde(default)]
    pub this_month: u32,
    #[serde(default)]
    pub ever: u32,
}

impl PaidCounts {
    /// Whether one more payment in `month` stays within the caps.
    pub fn allows(&self, program: &Program, month: &str) -> bool {
        let this_month = if self.month == month { self.this_month } else { 0 };
        within_caps(program, this_month, self.ever)
    }

    /// The counts after a payment in `month`.
    pub fn paid(&self, month: &str) -> PaidCounts {
        let this_month = if self.month == month { self.this_month } else { 0 };
        PaidCounts {
            month: month.to_owned(),
            this_month: this_month.saturating_add(1),
            ever: self.ever.saturating_add(1),
        }
    }
}

/// The calendar month (`YYYY-MM`) of a local date.
pub fn month_of(date: chrono::NaiveDate) -> String {
    date.format("%Y-%m").to_string()
}

/// What a full reversal of the purchase that qualified a referral does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReversal {
    /// The referrer was not settled yet: the referral waits for the next qualifying purchase.
    Wait,
    /// The referrer was settled (paid or capped): their side is undone once; the referral ends.
    Undo,
    /// Nothing to change (pending, revoked or reversed already).
    Keep,
}

/// What a full reversal of the qualifying purchase does to a referral in `status`.
pub fn after_full_reversal(status: Status) -> AfterReversal {
    match status {
        Status::Qualified => AfterReversal::Wait,
        Status::Paid | Status::Capped => AfterReversal::Undo,
        Status::Pending | Status::Revoked | Status::Reversed => AfterReversal::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn on() -> Program {
        Program {
            enabled: true,
            ..Program::default()
        }
    }

    fn facts() -> ClaimFacts<'static> {
        ClaimFacts {
            invitee: "bob",
            referrer: "ann",
            first_seen: at("2026-11-20T00:00:00Z"),
            referred: false,
            invitees: 0,
        }
    }

    #[test]
    fn defaults_are_the_documented_ones_and_off() {
        let p = Program::default();
        assert_eq!(
            (
                p.invitee_reward,
                p.referrer_reward,
                p.qualifying,
                p.claim_window_days
            ),
            (100, 100, Qualifying::FirstPurchase, 7)
        );
        assert_eq!((p.monthly_cap, p.lifetime_cap, p.enabled), (20, 200, false));
        // An admin's `{}` is the defaults, switched on.
        let put: Program = serde_json::from_str("{}").unwrap();
        assert_eq!(put, on());
        assert!(serde_json::from_str::<Program>(r#"{"bonus": 1}"#).is_err());
        assert!(on().validate().is_ok());
    }

    #[test]
    fn invalid_programs() {
        let bad = |p: Program| match p.validate() {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bad(Program {
                invitee_reward: -1,
                ..on()
            }),
            "invitee_reward"
        );
        assert_eq!(
            bad(Program {
                referrer_reward: MAX_POSTING + 1,
                ..on()
            }),
            "referrer_reward"
        );
        assert_eq!(
            bad(Program {
                claim_window_days: 0,
                ..on()
            }),
            "claim_window_days"
        );
        assert_eq!(
            bad(Program {
                claim_window_days: 366,
                ..on()
            }),
            "claim_window_days"
        );
        assert_eq!(
            bad(Program {
                lifetime_cap: MAX_CAP + 1,
                monthly_cap: 1,
                ..on()
            }),
            "lifetime_cap"
        );
        assert_eq!(
            bad(Program {
                monthly_cap: 201,
                ..on()
            }),
            "monthly_cap"
        );
        // The edges are allowed.
        for ok in [
            Program {
                invitee_reward: 0,
                referrer_reward: MAX_POSTING,
                ..on()
            },
            Program {
                claim_window_days: 1,
                ..on()
            },
            Program {
                claim_window_days: 365,
                ..on()
            },
            Program {
                monthly_cap: 200,
                ..on()
            },
            Program {
                lifetime_cap: MAX_CAP,
                ..on()
            },
            Program {
                monthly_cap: 0,
                lifetime_cap: 0,
                ..on()
            },
        ] {
            assert!(ok.validate().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn claims_follow_the_rules_in_order() {
        let now = at("2026-11-23T00:00:00Z");
        assert_eq!(check_claim(&on(), &facts(), now), Ok(()));
        assert_eq!(
            check_claim(&Program::default(), &facts(), now),
            Err(Refusal::ProgramOff)
        );
        let own = ClaimFacts {
            referrer: "bob",
            ..facts()
        };
        assert_eq!(check_claim(&on(), &own, now), Err(Refusal::OwnCode));
        let again = ClaimFacts {
            referred: true,
            ..facts()
        };
        assert_eq!(check_claim(&on(), &again, now), Err(Refusal::AlreadyReferred));
        let cycle = ClaimFacts {
            invitees: 1,
            ..facts()
        };
        assert_eq!(check_claim(&on(), &cycle, now), Err(Refusal::Cycle));
        // The window: 7 days from the first appearance, its last instant included.
        let last = at("2026-11-27T00:00:00Z");
        assert_eq!(check_claim(&on(), &facts(), last), Ok(()));
        let late = last + Duration::milliseconds(1);
        assert_eq!(check_claim(&on(), &facts(), late), Err(Refusal::WindowPassed));
        // Several broken rules: the first in the documented order answers.
        let all = ClaimFacts {
            referrer: "bob",
            referred: true,
            invitees: 3,
            ..facts()
        };
        assert_eq!(check_claim(&on(), &all, late), Err(Refusal::OwnCode));
        let both = ClaimFacts {
            referred: true,
            invitees: 3,
            ..facts()
        };
        assert_eq!(check_claim(&on(), &both, late), Err(Refusal::AlreadyReferred));
        assert_eq!(
            check_claim(
                &on(),
                &ClaimFacts {
                    invitees: 3,
                    ..facts()
                },
                late
            ),
            Err(Refusal::WindowPassed)
        );
    }

    #[test]
    fn caps_count_monthly_and_lifetime() {
        let p = on();
        assert!(within_caps(&p, 19, 150));
        assert!(!within_caps(&p, 20, 150));
        assert!(!within_caps(&p, 0, 200));
        assert!(within_caps(&p, 0, 199));
        let none = Program {
            monthly_cap: 0,
            lifetime_cap: 0,
            ..on()
        };
        assert!(!within_caps(&none, 0, 0));
    }

    #[test]
    fn what_qualifies_a_referral() {
        let claimed = at("2026-11-23T00:00:00Z");
        let later = claimed + Duration::seconds(1);
        let buy = |points| Action::Purchase { points };
        let q = |status, qualifying, action, now| qualifies(status, qualifying, claimed, action, now);
        assert!(q(Status::Pending, Qualifying::FirstPurchase, buy(1), later));
        assert!(q(Status::Pending, Qualifying::FirstPurchase, buy(1), claimed));
        assert!(!q(Status::Pending, Qualifying::FirstPurchase, buy(0), later));
        assert!(!q(
            Status::Pending,
            Qualifying::FirstPurchase,
            Action::Checkin,
            later
        ));
        assert!(q(
            Status::Pending,
            Qualifying::FirstCheckin,
            Action::Checkin,
            later
        ));
        assert!(!q(Status::Pending, Qualifying::FirstCheckin, buy(500), later));
        // `immediately` qualifies at the claim, never later.
        assert!(!q(Status::Pending, Qualifying::Immediately, buy(500), later));
        assert!(!q(
            Status::Pending,
            Qualifying::Immediately,
            Action::Checkin,
            later
        ));
        // Only a waiting referral, and only after its claim.
        for status in [
            Status::Qualified,
            Status::Paid,
            Status::Capped,
            Status::Revoked,
            Status::Reversed,
        ] {
            assert!(!q(status, Qualifying::FirstPurchase, buy(1), later), "{status:?}");
        }
        let before = claimed - Duration::milliseconds(1);
        assert!(!q(Status::Pending, Qualifying::FirstPurchase, buy(1), before));
    }

    #[test]
    fn caps_count_payments_per_local_month_and_ever() {
        let p = on();
        let nov = PaidCounts {
            month: "2026-11".into(),
            this_month: 19,
            ever: 40,
        };
        assert!(nov.allows(&p, "2026-11"));
        let twentieth = nov.paid("2026-11");
        assert_eq!(
            twentieth,
            PaidCounts {
                month: "2026-11".into(),
                this_month: 20,
                ever: 41
            }
        );
        // The 21st of the month is over the cap; the next month starts again at 0.
        assert!(!twentieth.allows(&p, "2026-11"));
        assert!(twentieth.allows(&p, "2026-12"));
        assert_eq!(
            twentieth.paid("2026-12"),
            PaidCounts {
                month: "2026-12".into(),
                this_month: 1,
                ever: 42
            }
        );
        // The lifetime cap holds across months.
        let old = PaidCounts {
            month: "2026-01".into(),
            this_month: 20,
            ever: 200,
        };
        assert!(!old.allows(&p, "2026-11"));
        assert!(PaidCounts::default().allows(&p, "2026-11"));
        assert_eq!(month_of("2026-12-01".parse().unwrap()), "2026-12");
    }

    #[test]
    fn a_full_reversal_of_the_qualifying_purchase() {
        assert_eq!(after_full_reversal(Status::Qualified), AfterReversal::Wait);
        assert_eq!(after_full_reversal(Status::Paid), AfterReversal::Undo);
        assert_eq!(after_full_reversal(Status::Capped), AfterReversal::Undo);
        for status in [Status::Pending, Status::Revoked, Status::Reversed] {
            assert_eq!(after_full_reversal(status), AfterReversal::Keep);
        }
    }
}
