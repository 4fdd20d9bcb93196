//! Member profiles (`USER#<user>/PROFILE`), the reserved display names (`CONFIG/RESERVED_NAMES`)
//! and the backfill of first appearances.
//!
//! Every profile write reads the account and the profile in one batch and puts the whole profile
//! conditioned on the `version` it read (retried on a lost race), so a member's rename, an
//! admin's reset and a service's registration date never overwrite one another.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::{Item, Key, Store, StoreError, classify, from_item, keys, to_item_with_key};
use crate::domain::UserId;
use crate::domain::members::{self, Profile, ReservedNames};

/// Attempts of a profile write before it gives up (503), as for a ledger write; the request's
/// deadline usually comes first.
const PROFILE_ATTEMPTS: u32 = 40;

/// What features need to know about a member, from one batch read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: UserId,
    pub profile: Profile,
    /// Whether the member has an account (made their first ledger write).
    pub account_exists: bool,
    pub account_first_seen: Option<DateTime<Utc>>,
}

impl Member {
    /// How other members see this one ([`members::public_name`]).
    pub fn public_name(&self) -> String {
        members::public_name(&self.user, &self.profile)
    }

    /// When the member registered ([`members::registered_at`]).
    pub fn registered_at(&self) -> Option<DateTime<Utc>> {
        members::registered_at(&self.profile, self.account_first_seen)
    }
}

/// What a member asks to change in their profile (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// `Some(None)` clears the name.
    pub display_name: Option<Option<String>>,
    pub leaderboard_visible: Option<bool>,
}

/// What the backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Members with a ledger entry or a check-in.
    pub members: usize,
    /// Profiles whose first appearance was recorded or moved earlier.
    pub updated: usize,
}

impl Store {
    /// The member's profile and account facts: one consistent `BatchGetItem` (no housekeeping).
    pub async fn member(&self, user: &UserId, now: DateTime<Utc>) -> Result<Member, crate::Error> {
        let snapshot = self.read_snapshot(user, &[keys::profile(user)], now).await?;
        Ok(Member {
            user: user.clone(),
            profile: snapshot.get(&keys::profile(user))?.unwrap_or_default(),
            account_exists: snapshot.exists,
            account_first_seen: snapshot.account.first_seen,
        })
    }

    /// A member changes their name or board visibility. The name is checked against the reserved
    /// names (cached like all configuration). A member without an account appears here first.
    pub async fn change_profile(
        &self,
        user: &UserId,
        change: &ProfileChange,
        now: DateTime<Utc>,
    ) -> Result<Member, crate::Error> {
        self.modify_profile(user, now, |member, reserved| {
            if let Some(name) = &change.display_name {
                member.profile.display_name = match name {
                    Some(raw) => Some(members::display_name(raw, reserved)?),
                    None => None,
                };
            }
            if let Some(visible) = change.leaderboard_visible {
                member.profile.leaderboard_visible = visible;
            }
            if members::first_appearance_due(&member.profile, member.account_exists) {
                member.profile.first_seen = Some(now);
            }
            Ok(())
        })
        .await
    }

    /// An admin clears a member's display name.
    pub async fn reset_display_name(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
    ) -> Result<Member, crate::Error> {
        self.modify_profile(user, now, |member, _| {
            member.profile.display_name = None;
            Ok(())
        })
        .await
    }

    /// A service sets when the member registered (it wins over the first appearance).
    pub async fn set_registered(
        &self,
        user: &UserId,
        registered_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Member, crate::Error> {
        self.modify_profile(user, now, |member, _| {
            member.profile.registered_at = Some(registered_at);
            Ok(())
        })
        .await
    }

    /// Reads, changes and puts the profile (conditioned on its version), again on a lost race.
    async fn modify_profile(
        &self,
        user: &UserId,
        now: DateTime<Utc>,
        change: impl Fn(&mut Member, &ReservedNames) -> Result<(), crate::domain::DomainError>,
    ) -> Result<Member, crate::Error> {
        let key = keys::profile(user);
        for attempt in 0..PROFILE_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let snapshot = self
                .read_snapshot(user, &[key.clone(), keys::reserved_names()], now)
                .await?;
            let stored: Option<Profile> = snapshot.get(&key)?;
            let reserved: ReservedNames = snapshot.get(&keys::reserved_names())?.unwrap_or_default();
            let expected = stored.as_ref().map(|p| p.version);
            let mut member = Member {
                user: user.clone(),
                profile: stored.unwrap_or_default(),
                account_exists: snapshot.exists,
                account_first_seen: snapshot.account.first_seen,
            };
            change(&mut member, &reserved)?;
            member.profile.updated_at = Some(now);
            member.profile.version = expected.unwrap_or(0) + 1;
            if self.put_profile(&key, &member.profile, expected).await? {
                return Ok(member);
            }
        }
        Err(StoreError::Contention(PROFILE_ATTEMPTS).into())
    }

    /// Puts a profile if its stored version is still `expected` (`None`: absent). False when
    /// another write came first.
    async fn put_profile(
        &self,
        key: &Key,
        profile: &Profile,
        expected: Option<u64>,
    ) -> Result<bool, StoreError> {
        self.put_if_version(to_item_with_key(key, profile)?, expected)
            .await
    }

    /// Records a first appearance on the profile read as `profile`: the profile written, or
    /// `None` when another write came first (it recorded one, or the next visit will). One
    /// conditional put, never retried.
    pub(crate) async fn record_first_appearance(
        &self,
        user: &UserId,
        profile: &Profile,
        existed: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Profile>, StoreError> {
        let mut next = profile.clone();
        next.first_seen = Some(now);
        next.updated_at = Some(now);
        next.version = profile.version + 1;
        let expected = existed.then_some(profile.version);
        let written = self.put_profile(&keys::profile(user), &next, expected).await?;
        Ok(written.then_some(next))
    }

    /// The reserved display names as stored now (an admin's read; members' renames use the
    /// process's cached copy).
    pub async fn reserved_names(&self) -> Result<ReservedNames, crate::Error> {
        let key = keys::reserved_names();
        let item = self.get_item(&key, true).await?;
        self.cache.put(key, item.clone());
        Ok(item.map(from_item).transpose()?.unwrap_or_default())
    }

    /// Replaces the reserved names (already normalized), bumping the version atomically.
    pub async fn put_reserved_names(
        &self,
        names: BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Result<ReservedNames, crate::Error> {
        let key = keys::reserved_names();
        let list: Vec<AttributeValue> = names.iter().cloned().map(AttributeValue::S).collect();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.to_item()))
            .update_expression("SET #n = :n, #u = :u ADD #v :one")
            .expression_attribute_names("#n", "names")
            .expression_attribute_names("#u", "updated_at")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":n", AttributeValue::L(list))
            .expression_attribute_values(":u", AttributeValue::S(now.to_rfc3339()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let out = self
            .retry_conflicts(|| update.clone().send())
            .await?
            .map_err(classify)?;
        self.cache.forget(&key);
        let item = out
            .attributes
            .ok_or_else(|| StoreError::internal("no attributes returned"))?;
        Ok(from_item(item)?)
    }

    /// Records the first appearance of every member who has ledger entries or check-ins but no
    /// record yet, as the earliest of their first ledger entry and first check-in, on the profile
    /// (never later than a record already there). Reads the whole table (a parallel `Scan` of
    /// `segments`); safe to run again, and while the functions serve traffic.
    pub async fn backfill_first_appearances(&self, segments: i32) -> Result<BackfillReport, crate::Error> {
        let segments = segments.max(1);
        let mut scans = tokio::task::JoinSet::new();
        for segment in 0..segments {
            let store = self.clone();
            scans.spawn(async move { store.scan_first_activity(segment, segments).await });
        }
        let mut earliest: HashMap<UserId, DateTime<Utc>> = HashMap::new();
        while let Some(found) = scans.join_next().await {
            let found = found.map_err(StoreError::internal)?;
            for (user, at) in found? {
                let entry = earliest.entry(user).or_insert(at);
                *entry = (*entry).min(at);
            }
        }
        let mut report = BackfillReport {
            members: earliest.len(),
            updated: 0,
        };
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        for (user, at) in earliest {
            let before = self.member(&user, epoch).await?;
            if before.account_first_seen.is_some_and(|t| t <= at)
                || before.profile.first_seen.is_some_and(|t| t <= at)
            {
                continue;
            }
            let after = self
                .modify_profile(&user, Utc::now(), |member, _| {
                    if member.profile.first_seen.is_none_or(|t| t > at) {
                        member.profile.first_seen = Some(at);
                    }
                    Ok(())
                })
                .await?;
            if after.profile.first_seen == Some(at) {
                report.updated += 1;
            }
        }
        Ok(report)
    }

    /// One scan segment: each member's first ledger entry and every check-in day, with its time.
    async fn scan_first_activity(
        &self,
        segment: i32,
        segments: i32,
    ) -> Result<Vec<(UserId, DateTime<Utc>)>, StoreError> {
        let first_entry = keys::first_ledger_entry_sk();
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let call = self
                .client
                .scan()
                .table_name(&self.table)
                .segment(segment)
                .total_segments(segments)
                .consistent_read(true)
                .filter_expression("begins_with(pk, :user) AND (sk = :first OR begins_with(sk, :checkin))")
                .projection_expression("pk, sk, #at")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":user", AttributeValue::S(keys::USER_PREFIX.to_owned()))
                .expression_attribute_values(":first", AttributeValue::S(first_entry.clone()))
                .expression_attribute_values(":checkin", AttributeValue::S(keys::CHECKIN_PREFIX.to_owned()))
                .set_exclusive_start_key(start.take())
                .send();
            let page = self.bounded(call).await?.map_err(classify)?;
            for item in page.items.unwrap_or_default() {
                let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(at))) =
                    (item.get(keys::PK), item.get("at"))
                else {
                    continue;
                };
                let (Some(user), Ok(at)) = (keys::user_of_pk(pk), DateTime::parse_from_rfc3339(at)) else {
                    continue;
                };
                found.push((user, at.with_timezone(&Utc)));
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }
}
