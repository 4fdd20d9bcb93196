//! The points ledger's rules. An account is a running total over an append-only list of entries;
//! every change of the balance is exactly one [`LedgerEntry`], numbered by a per-member `seq`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// Largest amount a single posting may move, in points. Keeps every sum far from `i64::MAX`.
pub const MAX_POSTING: i64 = 1_000_000_000;

/// Why a balance changed. Stored as a snake_case string on each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Points granted by an admin or a trusted backend.
    Grant,
    /// A daily check-in's ladder reward.
    Checkin,
    /// A streak milestone bonus.
    Milestone,
    /// The cost of a make-up check-in (补签).
    Makeup,
}

impl Reason {
    /// Whether a credit with this reason counts as earned (lifetime earned, growth value).
    pub fn is_earn(self) -> bool {
        matches!(self, Reason::Grant | Reason::Checkin | Reason::Milestone)
    }
}

/// A member's account as the ledger sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Spendable points: the sum of every entry's delta.
    pub balance: i64,
    /// Sum of earned credits (never lowered by spending).
    pub lifetime_earned: i64,
    /// `seq` of the newest entry; 0 for an account without entries.
    pub seq: u64,
}

/// A request to move points, before it has a place in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Positive credits, negative debits; never zero.
    pub delta: i64,
    pub reason: Reason,
    /// What the entry refers to: an order id, a check-in date, a contest id.
    pub reference: String,
    /// The deterministic key that makes this posting happen at most once, ever.
    pub business_key: String,
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
}

impl Posting {
    pub fn new(
        delta: i64,
        reason: Reason,
        reference: impl Into<String>,
        business_key: impl Into<String>,
    ) -> Self {
        Self {
            delta,
            reason,
            reference: reference.into(),
            business_key: business_key.into(),
        }
    }
}

/// Applies one posting to an account: the new account and the entry that records the change.
///
/// Refuses a zero or oversized amount, a debit above the balance, and any overflow. `entry_id` is
/// passed in (a ULID made by the caller) so that this stays a pure function.
pub fn apply(
    account: &Account,
    posting: &Posting,
    now: DateTime<Utc>,
    entry_id: String,
) -> Result<(Account, LedgerEntry), DomainError> {
    let delta = posting.delta;
    if delta == 0 || delta.unsigned_abs() > MAX_POSTING.unsigned_abs() {
        return Err(DomainError::invalid(
            "amount",
            format!("must be non-zero and at most {MAX_POSTING} points"),
        ));
    }
    if posting.business_key.is_empty() || posting.business_key.len() > 512 {
        return Err(DomainError::invalid("business_key", "must be 1-512 bytes"));
    }
    if delta < 0 && account.balance < -delta {
        return Err(DomainError::InsufficientPoints {
            balance: account.balance,
            needed: -delta,
        });
    }
    let balance = account.balance.checked_add(delta).ok_or(DomainError::Overflow)?;
    let lifetime_earned = if delta > 0 && posting.reason.is_earn() {
        account
            .lifetime_earned
            .checked_add(delta)
            .ok_or(DomainError::Overflow)?
    } else {
        account.lifetime_earned
    };
    let seq = account.seq.checked_add(1).ok_or(DomainError::Overflow)?;
    let entry = LedgerEntry {
        seq,
        entry_id,
        delta,
        reason: posting.reason,
        reference: posting.reference.clone(),
        business_key: posting.business_key.clone(),
        at: now,
        balance_after: balance,
    };
    Ok((
        Account {
            balance,
            lifetime_earned,
            seq,
        },
        entry,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        "2026-11-23T08:00:00Z".parse().unwrap()
    }

    fn post(account: &Account, delta: i64, reason: Reason) -> Result<(Account, LedgerEntry), DomainError> {
        apply(
            account,
            &Posting::new(delta, reason, "r", format!("k{delta}")),
            at(),
            "id".into(),
        )
    }

    #[test]
    fn credit_then_debit() {
        let (a, e) = post(&Account::default(), 100, Reason::Grant).unwrap();
        assert_eq!((a.balance, a.lifetime_earned, a.seq), (100, 100, 1));
        assert_eq!((e.seq, e.balance_after), (1, 100));
        let (b, e) = post(&a, -30, Reason::Makeup).unwrap();
        assert_eq!((b.balance, b.lifetime_earned, b.seq), (70, 100, 2));
        assert_eq!(e.balance_after, 70);
    }

    #[test]
    fn refuses_overdraft_zero_and_oversized() {
        let a = Account {
            balance: 10,
            lifetime_earned: 10,
            seq: 1,
        };
        assert_eq!(
            post(&a, -11, Reason::Makeup),
            Err(DomainError::InsufficientPoints {
                balance: 10,
                needed: 11
            })
        );
        assert!(matches!(
            post(&a, 0, Reason::Grant),
            Err(DomainError::Invalid { .. })
        ));
        assert!(matches!(
            post(&a, MAX_POSTING + 1, Reason::Grant),
            Err(DomainError::Invalid { .. })
        ));
        assert!(matches!(
            post(&a, i64::MIN, Reason::Grant),
            Err(DomainError::Invalid { .. })
        ));
    }

    #[test]
    fn refuses_overflow() {
        let a = Account {
            balance: i64::MAX - 5,
            lifetime_earned: 0,
            seq: 3,
        };
        assert_eq!(post(&a, 6, Reason::Grant), Err(DomainError::Overflow));
        let a = Account {
            balance: 0,
            lifetime_earned: 0,
            seq: u64::MAX,
        };
        assert_eq!(post(&a, 6, Reason::Grant), Err(DomainError::Overflow));
    }

    proptest! {
        /// For any sequence of postings: the balance equals the sum of the accepted entries, never
        /// goes negative, `seq` counts the entries, and each entry's balance_after is the running sum.
        #[test]
        fn balance_is_the_sum_of_the_ledger(deltas in prop::collection::vec(-2_000i64..2_000, 0..60)) {
            let mut account = Account::default();
            let mut entries = Vec::new();
            for (i, d) in deltas.into_iter().enumerate() {
                let reason = if d > 0 { Reason::Checkin } else { Reason::Makeup };
                match apply(&account, &Posting::new(d, reason, "r", format!("k{i}")), at(), i.to_string()) {
                    Ok((next, entry)) => {
                        account = next;
                        entries.push(entry);
                    }
                    Err(DomainError::InsufficientPoints { balance, needed }) => {
                        prop_assert!(needed > balance);
                        prop_assert_eq!(balance, account.balance);
                    }
                    Err(other) => prop_assert_eq!(d, 0, "unexpected {:?}", other),
                }
                prop_assert!(account.balance >= 0);
            }
            let sum: i64 = entries.iter().map(|e| e.delta).sum();
            prop_assert_eq!(account.balance, sum);
            prop_assert_eq!(account.seq, entries.len() as u64);
            let earned: i64 = entries.iter().filter(|e| e.delta > 0).map(|e| e.delta).sum();
            prop_assert_eq!(account.lifetime_earned, earned);
            let mut running = 0;
            for (i, e) in entries.iter().enumerate() {
                running += e.delta;
                prop_assert_eq!(e.balance_after, running);
                prop_assert_eq!(e.seq, i as u64 + 1);
            }
        }
    }
}
