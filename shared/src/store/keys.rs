//! Every key string of the single table. Nothing outside this module formats a key.
//!
//! | entity          | pk                  | sk                    |
//! |-----------------|---------------------|-----------------------|
//! | account         | `USER#<user>`       | `ACCOUNT`             |
//! | ledger entry    | `USER#<user>`       | `LEDGER#<seq:020>`    |
//! | business key    | `PAID#<key>`        | `PAID`                |
//! | campaign config | `CAMPAIGN#<id>`     | `CONFIG`              |
//! | streak state    | `USER#<user>`       | `STREAK#<campaign>`   |
//! | check-in day    | `USER#<user>`       | `CHECKIN#<campaign>#<date>` |
//! | profile         | `USER#<user>`       | `PROFILE`             |
//! | reserved names  | `CONFIG`            | `RESERVED_NAMES`      |
//! | home indexes    | `CONFIG`            | `CONTESTS`, `DRAWS`   |
//! | board score     | `USER#<user>`       | `SCORE#<board>`       |
//! | contest entry   | `USER#<user>`       | `CONTEST#<id>`        |
//! | board counter   | `BOARD#<board>#COUNT#<shard>` | `BUCKET#<bucket:020>` |
//! | contest         | `CONTEST#<id>`      | `CONFIG`              |
//! | contest result  | `CONTEST#<id>`      | `RESULT`              |
//! | team            | `CONTEST#<id>#TEAM#<team>` | `TEAM`         |
//! | team code       | `TEAMCODE#<code>`   | `CODE`                |
//! | fulfilment      | `FULFILMENT#<id>`   | `FULFILMENT`          |
//! | draw            | `DRAW#<id>`         | `CONFIG`              |
//! | stock item      | `DRAW#<id>#STOCK#<prize>#<split>` | `STOCK` |
//! | code pool       | `DRAW#<id>#CODES#<prize>` | `POOL`, `CODE#<n:010>` |
//! | coupon          | `COUPON#<code>`     | `COUPON`              |
//! | member's draw   | `USER#<user>`       | `DRAW#<draw>`         |
//! | spin            | `USER#<user>`       | `SPIN#<draw>#<n:010>` |
//!
//! See docs/data-model.md for the whole product's layout, including the entities later issues add.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::UserId;

pub const PK: &str = "pk";
pub const SK: &str = "sk";

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: impl Into<String>) -> Self {
        Self { pk, sk: sk.into() }
    }

    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (SK.to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }
}

pub const USER_PREFIX: &str = "USER#";

pub fn user_pk(user: &UserId) -> String {
    format!("{USER_PREFIX}{user}")
}

/// The member whose partition `pk` is (`USER#<user>`), if it is one.
pub fn user_of_pk(pk: &str) -> Option<UserId> {
    UserId::parse(pk.strip_prefix(USER_PREFIX)?).ok()
}

pub fn account(user: &UserId) -> Key {
    Key::new(user_pk(user), "ACCOUNT")
}

pub const LEDGER_PREFIX: &str = "LEDGER#";

fn ledger_sk(seq: u64) -> String {
    format!("{LEDGER_PREFIX}{seq:020}")
}

/// The sort key of a member's first ledger entry (`seq` 1).
pub fn first_ledger_entry_sk() -> String {
    ledger_sk(1)
}

pub fn ledger_entry(user: &UserId, seq: u64) -> Key {
    Key::new(user_pk(user), ledger_sk(seq))
}

/// The guard item of a business key: its conditional put is what makes a payment happen once.
pub fn business_key(key: &str) -> Key {
    Key::new(format!("PAID#{key}"), "PAID")
}

pub fn campaign(campaign: &str) -> Key {
    Key::new(format!("CAMPAIGN#{campaign}"), "CONFIG")
}

pub fn streak(user: &UserId, campaign: &str) -> Key {
    Key::new(user_pk(user), format!("STREAK#{campaign}"))
}

pub fn checkin_day(user: &UserId, campaign: &str, date: chrono::NaiveDate) -> Key {
    Key::new(user_pk(user), format!("{}{date}", checkin_day_prefix(campaign)))
}

pub const CHECKIN_PREFIX: &str = "CHECKIN#";

pub fn checkin_day_prefix(campaign: &str) -> String {
    format!("{CHECKIN_PREFIX}{campaign}#")
}

/// The answer to an API call made with an `Idempotency-Key`, scoped by caller.
pub fn idempotency(caller: &str, key: &str) -> Key {
    Key::new(format!("IDEM#{caller}#{key}"), "IDEM")
}

/// A hold by id (its member, amount and reference), for capture and release.
pub fn hold(hold_id: &str) -> Key {
    Key::new(format!("HOLD#{hold_id}"), "HOLD")
}

/// How much of a grant has been reversed.
pub fn reversed(grant_business_key: &str) -> Key {
    Key::new(format!("REVERSED#{grant_business_key}"), "REVERSED")
}

/// The tier ladder and the seat counts of capped tiers.
pub fn tiers() -> Key {
    Key::new("CONFIG".to_owned(), "TIERS")
}

/// All earn multiplier windows.
pub fn multipliers() -> Key {
    Key::new("CONFIG".to_owned(), "MULTIPLIERS")
}

/// A member's profile: display name, leaderboard opt-out, first appearance, registration.
pub fn profile(user: &UserId) -> Key {
    Key::new(user_pk(user), "PROFILE")
}

/// The display names no member may take.
pub fn reserved_names() -> Key {
    Key::new("CONFIG".to_owned(), "RESERVED_NAMES")
}

/// The active contests, as the home screen lists them (written by the contest admin routes).
pub fn contests_index() -> Key {
    Key::new("CONFIG".to_owned(), "CONTESTS")
}

/// The open draws, as the home screen lists them (written by the draw admin routes).
pub fn draws_index() -> Key {
    Key::new("CONFIG".to_owned(), "DRAWS")
}

/// The referral program's configuration.
pub fn referral_program() -> Key {
    Key::new("CONFIG".to_owned(), "REFERRAL_PROGRAM")
}

/// Whose referral code this is.
pub fn referral_code(code: &str) -> Key {
    Key::new(format!("REFCODE#{code}"), "CODE")
}

/// A member's referrer side: their code and how many they referred and were paid for.
pub fn referrer(user: &UserId) -> Key {
    Key::new(user_pk(user), "REFERRER")
}

/// A member's referral as an invitee: who referred them, the fixed rewards, the status.
pub fn referred_by(user: &UserId) -> Key {
    Key::new(user_pk(user), "REFERRED_BY")
}

/// A line of the referrer's invitee list, in claim order.
pub fn invitee_line(referrer: &UserId, claimed_at: chrono::DateTime<chrono::Utc>, invitee: &UserId) -> Key {
    Key::new(
        user_pk(referrer),
        format!(
            "{INVITEE_PREFIX}{:015}#{invitee}",
            claimed_at.timestamp_millis().max(0)
        ),
    )
}

pub const INVITEE_PREFIX: &str = "INVITEE#";

/// A member's score on a points board (all-time, a week, a month).
pub fn score(user: &UserId, board: &crate::domain::boards::Board) -> Key {
    Key::new(user_pk(user), format!("SCORE#{board}"))
}

/// A member's entry in a contest (join, team, score), under the member: a join burst spreads
/// over members' partitions.
pub fn contest_entry(user: &UserId, contest: &str) -> Key {
    Key::new(user_pk(user), format!("{CONTEST_ENTRY_PREFIX}{contest}"))
}

pub const CONTEST_ENTRY_PREFIX: &str = "CONTEST#";

/// A contest's configuration and settlement state.
pub fn contest(id: &str) -> Key {
    Key::new(format!("CONTEST#{id}"), "CONFIG")
}

/// A contest's frozen result (one item: the winning positions).
pub fn contest_result(id: &str) -> Key {
    Key::new(format!("CONTEST#{id}"), "RESULT")
}

/// A team of a team contest (members, score).
pub fn team(contest: &str, team: &str) -> Key {
    Key::new(format!("CONTEST#{contest}#TEAM#{team}"), "TEAM")
}

/// A team's join code.
pub fn team_code(code: &str) -> Key {
    Key::new(format!("TEAMCODE#{code}"), "CODE")
}

/// A prize to fulfil (shipped once).
pub fn fulfilment(id: &str) -> Key {
    Key::new(format!("FULFILMENT#{id}"), "FULFILMENT")
}

/// The `gsi2` partition of one shard of a board.
pub fn board_shard(board: &crate::domain::boards::Board, shard: u32) -> String {
    format!("BOARD#{board}#{shard}")
}

/// The partition of one shard of a board's bucket counters.
pub fn board_counters(board: &crate::domain::boards::Board, shard: u32) -> String {
    format!("BOARD#{board}#COUNT#{shard}")
}

/// The sort key of a bucket counter: buckets sort by their lowest score.
pub fn bucket_sk(bucket: u64) -> String {
    format!("BUCKET#{bucket:020}")
}

/// The bucket of a counter's sort key.
pub fn bucket_of_sk(sk: &str) -> Option<u64> {
    sk.strip_prefix("BUCKET#")?.parse().ok()
}

pub fn board_counter(board: &crate::domain::boards::Board, shard: u32, bucket: u64) -> Key {
    Key::new(board_counters(board, shard), bucket_sk(bucket))
}

/// The `gsi1` partition listing contests not settled or cancelled yet, by when they may be
/// settled (what the settlement job queries).
pub const CONTESTS_PENDING: &str = "CONTESTS#PENDING";
/// The `gsi1` partition of settled and cancelled contests (the admin listing's history).
pub const CONTESTS_DONE: &str = "CONTESTS#DONE";

/// A contest's `gsi1` sort key: when it may be settled (fixed-width UTC, so it sorts by time).
pub fn contest_by_settlement(settle_after: chrono::DateTime<chrono::Utc>, id: &str) -> String {
    format!("{}#{id}", instant(settle_after))
}

/// An instant as a fixed-width UTC string that sorts by time.
pub fn instant(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Partitions of the `gsi1` list of referrals whose referrer side is due (the reconciler
/// queries them all; spread so no index partition takes every qualifying write).
pub const REFERRAL_DUE_SHARDS: u32 = 4;

/// One `gsi1` partition of referrals with a referrer step due.
pub fn referrals_due(shard: u32) -> String {
    format!("REFERRALS#DUE#{shard}")
}

/// The `gsi1` partition and sort key of a referral whose referrer step fell due at `at`.
pub fn referral_due(invitee: &UserId, at: chrono::DateTime<chrono::Utc>) -> (String, String) {
    let shard = crate::domain::boards::shard_of(invitee.as_str()) % REFERRAL_DUE_SHARDS;
    (referrals_due(shard), format!("{}#{invitee}", instant(at)))
}

/// A draw's configuration, secret seed and version.
pub fn draw(id: &str) -> Key {
    Key::new(format!("DRAW#{id}"), "CONFIG")
}

/// The `gsi1` partition listing every draw (the admin listing), by end.
pub const DRAWS_ALL: &str = "DRAWS";

/// One stock item of a prize: its own partition, so winners of one prize spread over items.
pub fn draw_stock(draw: &str, prize: &str, split: u32) -> Key {
    Key::new(format!("DRAW#{draw}#STOCK#{prize}#{split}"), "STOCK")
}

/// A coupon prize's pool: how many codes were numbered.
pub fn code_pool(draw: &str, prize: &str) -> Key {
    Key::new(format!("DRAW#{draw}#CODES#{prize}"), "POOL")
}

/// A coupon prize's code by number (numbered at upload).
pub fn numbered_code(draw: &str, prize: &str, number: u64) -> Key {
    Key::new(format!("DRAW#{draw}#CODES#{prize}"), format!("CODE#{number:010}"))
}

/// A coupon code, unique across all draws: its draw, prize, number, winner and redemption.
pub fn coupon(code: &str) -> Key {
    Key::new(format!("COUPON#{code}"), "COUPON")
}

/// A member's state in a draw (spins, the day's counters, pity, prizes won).
pub fn member_draw(user: &UserId, draw: &str) -> Key {
    Key::new(user_pk(user), format!("DRAW#{draw}"))
}

pub fn spin_prefix(draw: &str) -> String {
    format!("SPIN#{draw}#")
}

/// A member's spin of a draw, by number.
pub fn spin(user: &UserId, draw: &str, number: u64) -> Key {
    Key::new(user_pk(user), format!("{}{number:010}", spin_prefix(draw)))
}

/// The `gsi1` partition listing fulfilments of one source in one status.
pub fn fulfilments_of(source: &str, status: &str) -> String {
    format!("FULFIL#{source}#{status}")
}

pub fn warmup() -> Key {
    Key::new("WARMUP".to_owned(), "WARMUP")
}

/// Business keys (the `business_key` of ledger entries). Their parts are validated ids without `#`.
pub mod business {
    use crate::domain::UserId;

    use chrono::NaiveDate;

    /// Points granted through the API, keyed by the caller's idempotency key.
    pub fn grant(caller: &str, idempotency_key: &str) -> String {
        format!("grant#{caller}#{idempotency_key}")
    }

    pub fn reversal(caller: &str, idempotency_key: &str) -> String {
        format!("reversal#{caller}#{idempotency_key}")
    }

    pub fn hold(hold_id: &str) -> String {
        format!("hold#{hold_id}")
    }

    pub fn capture(hold_id: &str) -> String {
        format!("capture#{hold_id}")
    }

    /// The same key as an automatic release (see `ledger::housekeeping`): a hold is released once.
    pub fn release(hold_id: &str) -> String {
        format!("release#{hold_id}")
    }

    pub fn checkin(campaign: &str, user: &UserId, date: NaiveDate) -> String {
        format!("checkin#{campaign}#{user}#{date}")
    }

    pub fn makeup(campaign: &str, user: &UserId, date: NaiveDate) -> String {
        format!("makeup#{campaign}#{user}#{date}")
    }

    /// The invitee's referral reward: once per member, ever (whichever code they claimed).
    pub fn referral_invitee(invitee: &UserId) -> String {
        format!("referral-invitee#{invitee}")
    }

    /// The referrer's reward for one invitee: once per invitee, ever.
    pub fn referral_referrer(invitee: &UserId) -> String {
        format!("referral-referrer#{invitee}")
    }

    /// The referrer's reward taken back (a revoke, or the qualifying purchase reversed after
    /// payment): once per invitee, ever.
    pub fn referral_referrer_reversal(invitee: &UserId) -> String {
        format!("referral-referrer-reversal#{invitee}")
    }

    /// The invitee's reward taken back by a revoke: once per invitee, ever.
    pub fn referral_revoke(invitee: &UserId) -> String {
        format!("referral-revoke#{invitee}")
    }

    /// The cost of a member's `n`th spin of a draw.
    pub fn spin(draw: &str, user: &UserId, n: u64) -> String {
        format!("spin#{draw}#{user}#{n}")
    }

    /// The points prize of a member's `n`th spin of a draw.
    pub fn spin_prize(draw: &str, user: &UserId, n: u64) -> String {
        format!("spin-prize#{draw}#{user}#{n}")
    }

    /// A contest prize: one per member per contest, ever.
    pub fn contest(contest: &str, user: &UserId) -> String {
        format!("contest#{contest}#{user}")
    }

    pub fn milestone(campaign: &str, user: &UserId, run_start: NaiveDate, days: u32) -> String {
        format!("milestone#{campaign}#{user}#{run_start}#{days}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_keys_sort_by_seq() {
        let u = UserId::parse("u1").unwrap();
        let a = ledger_entry(&u, 9).sk;
        let b = ledger_entry(&u, 10).sk;
        assert!(a < b, "{a} !< {b}");
        assert_eq!(a, "LEDGER#00000000000000000009");
        assert_eq!(
            business::checkin("daily", &u, "2026-11-23".parse().unwrap()),
            "checkin#daily#u1#2026-11-23"
        );
    }
}
