//! The shop backend's ledger operations (grants, holds, captures, releases, reversals), each an
//! idempotent API call, and the tier and multiplier configuration.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tx::{put_if_absent, put_versioned};
use super::{
    Decision, IdempotencyRecord, Key, OnConflict, Plan, Respond, Snapshot, Store, StoreError, TxOutcome,
    Write, from_item, keys, to_item_with_key,
};
use crate::domain::boards;
use crate::domain::ledger::{self, Kind, LedgerEntry, Posting, Reason};
use crate::domain::referrals::Action;
use crate::domain::tiers::{MultiplierWindow, Multipliers, TierConfig, TierState};
use crate::domain::{DomainError, UserId};
use crate::metrics::{self, Metric};

/// Multiplier windows kept at once (the item holding them stays far below 400 KB).
const MAX_MULTIPLIER_WINDOWS: usize = 50;

/// An API call made with an `Idempotency-Key`: its record's key and a digest of the request.
#[derive(Debug, Clone)]
pub struct IdempotentCall {
    pub key: Key,
    pub request_hash: String,
}

/// Who made a manual change and why, recorded on the ledger entry.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub by: String,
    pub note: Option<String>,
}

/// Where a hold's member and amount are found by hold id.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HoldRecord {
    hold_id: String,
    user_id: String,
    amount: i64,
    #[serde(rename = "ref")]
    reference: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    by: String,
}

/// How much of a grant has been reversed so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ReversedRecord {
    total: i64,
    version: u64,
}

/// The stored answer to a replay of `call`, or 409 when the key was used for another request.
pub(crate) fn replay(record: IdempotencyRecord, call: &IdempotentCall) -> Result<String, crate::Error> {
    if record.request_hash == call.request_hash {
        Ok(record.response)
    } else {
        Err(DomainError::IdempotencyKeyReused.into())
    }
}

fn entry_for<'a>(entries: &'a [LedgerEntry], business_key: &str) -> Option<&'a LedgerEntry> {
    entries.iter().find(|e| e.business_key == business_key)
}

pub(crate) fn to_json(value: impl Serialize) -> Result<String, crate::Error> {
    serde_json::to_string(&value).map_err(|e| StoreError::Internal(e.to_string()).into())
}

impl Store {
    /// Runs an idempotent ledger operation: a replay of the same call gets the stored answer
    /// (forever, also when racing the first), the same key with another request gets 409, and
    /// otherwise `decide`'s postings and writes commit with the answer in one transaction.
    /// `already` is the refusal when the operation's business key was taken by another call.
    pub async fn idempotent<F>(
        &self,
        user: &UserId,
        extra: &[Key],
        call: &IdempotentCall,
        already: DomainError,
        now: DateTime<Utc>,
        mut decide: F,
    ) -> Result<String, crate::Error>
    where
        F: FnMut(&Snapshot) -> Result<(Vec<Posting>, Vec<Write>, Respond), crate::Error>,
    {
        let mut wanted = extra.to_vec();
        wanted.push(call.key.clone());
        let outcome = self
            .ledger_transaction(user, &wanted, now, |snapshot| {
                if let Some(record) = snapshot.get::<IdempotencyRecord>(&call.key)? {
                    return Ok(Decision::Nothing(Some(record)));
                }
                let (postings, writes, respond) = decide(snapshot)?;
                Ok(Decision::Write(Plan::idempotent(
                    postings, writes, call, respond, None,
                )))
            })
            .await?;
        match outcome {
            TxOutcome::Committed {
                response: Some(response),
                ..
            } => Ok(response),
            TxOutcome::Nothing(Some(record)) | TxOutcome::IdempotentReplay(record) => replay(record, call),
            TxOutcome::Replayed(_) => Err(already.into()),
            TxOutcome::Committed { response: None, .. } | TxOutcome::Nothing(None) => {
                Err(StoreError::Internal("an idempotent call stored no answer".into()).into())
            }
        }
    }

    /// Credits `base` points (multiplied for purchases) to `user`, once per idempotency key.
    #[allow(clippy::too_many_arguments)]
    pub async fn grant(
        &self,
        caller: &str,
        idempotency_key: &str,
        user: &UserId,
        base: i64,
        reason: Reason,
        reference: &str,
        who: &Attribution,
        call: &IdempotentCall,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        let business_key = super::keys::business::grant(caller, idempotency_key);
        // Purchases count on the boards; grants never do (no buying rank).
        let store = match boards::counts(reason) {
            true => self.scored(super::Scoring::earn(now)),
            false => self.clone(),
        };
        // A purchase worth a point may qualify the member's referral (one extra action in this
        // transaction); the referrer's step follows right after.
        let qualifying = reason == Reason::Purchase && base >= 1;
        let extra = match qualifying {
            true => vec![keys::referred_by(user)],
            false => vec![],
        };
        let mut qualified = false;
        let answer = store
            .idempotent(
                user,
                &extra,
                call,
                DomainError::IdempotencyKeyReused,
                now,
                |snap| {
                    qualified = false;
                    let mut writes = Vec::new();
                    if qualifying
                        && let Some(write) = self.qualify_write(
                            snap,
                            user,
                            Action::Purchase { points: base },
                            Some(&business_key),
                            now,
                        )?
                    {
                        writes.push(write);
                        qualified = true;
                    }
                    // A member never moved yet is in the lowest tier.
                    let lowest = snap
                        .get::<TierState>(&keys::tiers())?
                        .unwrap_or_default()
                        .config()
                        .tiers[0]
                        .name
                        .clone();
                    let mut postings = Vec::new();
                    if base > 0 {
                        let mut posting = Posting::new(base, reason, reference, business_key.clone());
                        posting.by = Some(who.by.clone());
                        posting.note = who.note.clone();
                        postings.push(posting);
                    }
                    let (user_id, key, reference) =
                        (user.to_string(), business_key.clone(), reference.to_owned());
                    let respond: Respond = Box::new(move |entries, account| {
                        let entry = entry_for(entries, &key);
                        to_json(json!({
                            "user_id": user_id,
                            "points": entry.map_or(0, |e| e.delta),
                            "base": base,
                            "factors_bps": entry.and_then(|e| e.factors_bps.clone()).unwrap_or_default(),
                            "reason": reason,
                            "ref": reference,
                            "entry_seq": entry.map(|e| e.seq),
                            "expires_after": entry.and_then(|e| e.expires_after),
                            "balance": account.balance,
                            "tier": account.tier.clone().unwrap_or(lowest),
                        }))
                    });
                    Ok((postings, writes, respond))
                },
            )
            .await?;
        if qualified {
            metrics::count(Metric::ReferralsQualified, 1);
            self.referrer_step_now(user, now).await;
        }
        Ok(answer)
    }

    /// `caller` takes back up to `amount` (default: all that is left) of the grant made by
    /// `grant_caller` with `grant_key`: never more than the grant in total, however many reversals
    /// race. (Who may name another caller's grant is the handler's rule.)
    #[allow(clippy::too_many_arguments)]
    pub async fn reverse(
        &self,
        caller: &str,
        idempotency_key: &str,
        grant_caller: &str,
        grant_key: &str,
        amount: Option<i64>,
        who: &Attribution,
        call: &IdempotentCall,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        let grant_business_key = super::keys::business::grant(grant_caller, grant_key);
        let grant = self
            .guard(&grant_business_key)
            .await?
            .ok_or(DomainError::NotFound("grant"))?;
        let user = UserId::parse(&grant.user_id)?;
        // A reversal lowers the boards the earn raised (its period, its contests): the earn's
        // entry says whether it counted.
        let earned: Option<LedgerEntry> = self
            .get_item(&keys::ledger_entry(&user, grant.seq), true)
            .await?
            .map(super::from_item)
            .transpose()?;
        let store = match earned.map(|e| e.reason).filter(|r| boards::counts(*r)) {
            Some(reason) => self.scored(super::Scoring::reversal(grant.at, reason)),
            None => self.clone(),
        };
        let counter_key = keys::reversed(&grant_business_key);
        let bucket = self.rules.bucket_for(grant.at);
        let business_key = super::keys::business::reversal(caller, idempotency_key);
        // A full reversal of the purchase that qualified a referral sends it back to waiting, or
        // (referrer settled already) makes the referrer's undo due.
        let extra = [counter_key.clone(), keys::referred_by(&user)];
        let mut undo = false;
        let answer = store
            .idempotent(
                &user,
                &extra,
                call,
                DomainError::IdempotencyKeyReused,
                now,
                |snap| {
                    undo = false;
                    let reversed: ReversedRecord = snap.get(&counter_key)?.unwrap_or_default();
                    let remaining = grant.delta - reversed.total;
                    if remaining <= 0 {
                        return Err(DomainError::GrantFullyReversed.into());
                    }
                    let take = amount.unwrap_or(remaining).min(remaining);
                    // The grant's share of its bucket that expired is forgiven, never taken twice.
                    let forgiven = ledger::forgiven_part(&snap.account, bucket, take, self.rules.today(now));
                    let mut posting = Posting::new(
                        -(take - forgiven),
                        Reason::Reversal,
                        grant_key,
                        business_key.clone(),
                    )
                    .with_kind(Kind::Reverse {
                        bucket: Some(bucket),
                        forgiven,
                    });
                    posting.by = Some(who.by.clone());
                    posting.note = who.note.clone();
                    posting.reverses = Some(grant_business_key.clone());
                    let next = ReversedRecord {
                        total: reversed.total + take,
                        version: reversed.version + 1,
                    };
                    let expected = (reversed.version > 0).then_some(reversed.version);
                    let mut writes = vec![Write {
                        action: put_versioned(&self.table, to_item_with_key(&counter_key, &next)?, expected)?,
                        on_conflict: OnConflict::Retry,
                    }];
                    if take == remaining
                        && let Some((write, undoes)) =
                            self.reversal_write(snap, &user, &grant_business_key, now)?
                    {
                        writes.push(write);
                        undo = undoes;
                    }
                    let (user_id, grant_key) = (user.to_string(), grant_key.to_owned());
                    let respond: Respond = Box::new(move |_, account| {
                        to_json(json!({
                            "user_id": user_id,
                            "grant_idempotency_key": grant_key,
                            "reversed": take,
                            "taken": take - forgiven,
                            "forgiven_expired": forgiven,
                            "grant_remaining": remaining - take,
                            "balance": account.balance,
                        }))
                    });
                    Ok((vec![posting], writes, respond))
                },
            )
            .await?;
        if undo {
            self.referrer_step_now(&user, now).await;
        }
        Ok(answer)
    }

    /// Reserves `amount` points of `user` for a checkout, soonest-expiring first.
    #[allow(clippy::too_many_arguments)]
    pub async fn hold(
        &self,
        user: &UserId,
        amount: i64,
        reference: &str,
        who: &Attribution,
        call: &IdempotentCall,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        let expires_at = now + Duration::minutes(i64::from(self.rules.hold_minutes));
        self.idempotent(user, &[], call, DomainError::IdempotencyKeyReused, now, |_| {
            let hold_id = ulid::Ulid::from_datetime(now.into()).to_string();
            let mut posting = Posting::new(
                -amount,
                Reason::Hold,
                reference,
                super::keys::business::hold(&hold_id),
            )
            .with_kind(Kind::Hold {
                hold_id: hold_id.clone(),
                expires_at,
            });
            posting.by = Some(who.by.clone());
            let record = HoldRecord {
                hold_id: hold_id.clone(),
                user_id: user.to_string(),
                amount,
                reference: reference.to_owned(),
                created_at: now,
                expires_at,
                by: who.by.clone(),
            };
            let write = Write {
                action: put_if_absent(&self.table, to_item_with_key(&keys::hold(&hold_id), &record)?)?,
                on_conflict: OnConflict::Retry,
            };
            let user_id = user.to_string();
            let respond: Respond = Box::new(move |_, account| {
                to_json(json!({
                    "hold_id": hold_id,
                    "user_id": user_id,
                    "amount": amount,
                    "status": "held",
                    "expires_at": expires_at,
                    "balance": account.balance,
                }))
            });
            Ok((vec![posting], vec![write], respond))
        })
        .await
    }

    /// Captures (spends) or releases (gives back) an open hold. A hold captured, released or
    /// timed out is not active any more: 409.
    pub async fn settle_hold(
        &self,
        hold_id: &str,
        capture: bool,
        who: &Attribution,
        call: &IdempotentCall,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        let record: HoldRecord = self
            .get_item(&keys::hold(hold_id), true)
            .await?
            .map(from_item)
            .transpose()?
            .ok_or(DomainError::NotFound("hold"))?;
        // A hold belongs to the caller that made it (admins may settle any).
        if record.by != who.by && !who.by.starts_with("admin:") {
            return Err(DomainError::NotFound("hold").into());
        }
        let user = UserId::parse(&record.user_id)?;
        self.idempotent(&user, &[], call, DomainError::HoldNotActive, now, |snap| {
            let hold = snap
                .account
                .holds
                .get(hold_id)
                .ok_or(DomainError::HoldNotActive)?;
            let id = hold_id.to_owned();
            let (posting, status) = if capture {
                let p = Posting::new(
                    0,
                    Reason::Capture,
                    hold.reference.clone(),
                    super::keys::business::capture(hold_id),
                );
                (p.with_kind(Kind::Capture { hold_id: id.clone() }), "captured")
            } else {
                let p = Posting::new(
                    hold.amount,
                    Reason::Release,
                    hold.reference.clone(),
                    super::keys::business::release(hold_id),
                );
                (p.with_kind(Kind::Release { hold_id: id.clone() }), "released")
            };
            let posting = Posting {
                by: Some(who.by.clone()),
                ..posting
            };
            let amount = hold.amount;
            let respond: Respond = Box::new(move |_, account| {
                to_json(
                    json!({ "hold_id": id, "status": status, "amount": amount, "balance": account.balance }),
                )
            });
            Ok((vec![posting], vec![], respond))
        })
        .await
    }

    /// The tier ladder and the seat counts of capped tiers.
    pub async fn tier_state(&self) -> Result<TierState, crate::Error> {
        Ok(self
            .get_item(&keys::tiers(), true)
            .await?
            .map(from_item)
            .transpose()?
            .unwrap_or_default())
    }

    /// Replaces the tier ladder, keeping the seat counts (version-checked read-modify-write). The
    /// multiplier windows are re-checked against the new highest tier multiplier (422 if they
    /// would stack above 100×), in the same transaction as a condition on their version.
    pub async fn put_tiers(&self, config: TierConfig, now: DateTime<Utc>) -> Result<TierState, crate::Error> {
        config.validate()?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let (state, multipliers) = tokio::try_join!(self.tier_state(), self.multipliers())?;
            // Windows that have ended multiply nothing: they do not count against the new ladder.
            let mut current = multipliers.clone();
            current.prune(now);
            current
                .check_stacking(config.max_multiplier_bps())
                .map_err(|reason| DomainError::invalid("tiers", reason))?;
            // Seats are counted while a tier is capped; a tier without a cap drops its count.
            let mut seats = state.seats.clone();
            seats.retain(|name, _| {
                config
                    .tiers
                    .iter()
                    .any(|t| &t.name == name && t.max_members.is_some())
            });
            let next = TierState {
                config: Some(config.clone()),
                seats,
                version: state.version + 1,
            };
            let unchanged = (keys::multipliers(), multipliers.version);
            if self
                .put_config(&keys::tiers(), &next, state.version, Some(unchanged))
                .await?
            {
                return Ok(next);
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Every multiplier window.
    pub async fn multipliers(&self) -> Result<Multipliers, crate::Error> {
        Ok(self
            .get_item(&keys::multipliers(), true)
            .await?
            .map(from_item)
            .transpose()?
            .unwrap_or_default())
    }

    /// Creates or replaces one multiplier window; windows that ended by `now` are dropped. Refused
    /// (422) when more than 50 windows would remain, or when the windows would stack above the
    /// limits with the ladder's highest tier multiplier (checked against the ladder's version in
    /// the same transaction).
    pub async fn put_multiplier(
        &self,
        id: &str,
        window: MultiplierWindow,
        now: DateTime<Utc>,
    ) -> Result<(), crate::Error> {
        window.validate()?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let (state, mut all) = tokio::try_join!(self.tier_state(), self.multipliers())?;
            let version = all.version;
            all.prune(now);
            all.windows.insert(id.to_owned(), window.clone());
            if all.windows.len() > MAX_MULTIPLIER_WINDOWS {
                return Err(DomainError::invalid(
                    "multiplier_id",
                    format!("at most {MAX_MULTIPLIER_WINDOWS} windows that have not ended"),
                )
                .into());
            }
            all.check_stacking(state.config().max_multiplier_bps())
                .map_err(|reason| DomainError::invalid("factor_bps", reason))?;
            all.version += 1;
            let unchanged = (keys::tiers(), state.version);
            if self
                .put_config(&keys::multipliers(), &all, version, Some(unchanged))
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Deletes one multiplier window (404 if there is none by that id); windows that ended by
    /// `now` are dropped too.
    pub async fn delete_multiplier(&self, id: &str, now: DateTime<Utc>) -> Result<(), crate::Error> {
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let mut all = self.multipliers().await?;
            let version = all.version;
            if all.windows.remove(id).is_none() {
                // Gone after a lost race: ours (a retry of a put whose answer was lost) or another
                // admin's. Either way the window is deleted, which is what was asked.
                return match attempt {
                    0 => Err(DomainError::NotFound("multiplier").into()),
                    _ => Ok(()),
                };
            }
            all.prune(now);
            all.version += 1;
            if self.put_config(&keys::multipliers(), &all, version, None).await? {
                return Ok(());
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Puts a configuration item if its version is still `expected` (0: absent) and, when given,
    /// another item's version is still the one read (`ConditionCheck` in one transaction). False
    /// on a lost race, to read again.
    async fn put_config<T: Serialize>(
        &self,
        key: &Key,
        value: &T,
        expected: u64,
        unchanged: Option<(Key, u64)>,
    ) -> Result<bool, crate::Error> {
        let item = to_item_with_key(key, value)?;
        let Some((other, other_version)) = unchanged else {
            let written = self
                .put_if_version(item, (expected > 0).then_some(expected))
                .await?;
            if written {
                self.cache.forget(key);
            }
            return Ok(written);
        };
        let put = put_versioned(&self.table, item, (expected > 0).then_some(expected))?;
        let check = condition_check_version(&self.table, &other, other_version)?;
        let written = self.transact_or_lost(vec![put, check]).await?;
        if written {
            self.cache.forget(key);
        }
        Ok(written)
    }
}

/// Admin configuration writes try this many times against concurrent writers before 503.
pub(crate) const CONFIG_ATTEMPTS: u32 = 8;

/// A `ConditionCheck` that `key`'s `version` is still `version` (0: the item is absent).
pub(crate) fn condition_check_version(
    table: &str,
    key: &Key,
    version: u64,
) -> Result<TransactWriteItem, StoreError> {
    let check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(key.to_item()));
    let check = match version {
        0 => check.condition_expression("attribute_not_exists(pk)"),
        v => check
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
    };
    Ok(TransactWriteItem::builder()
        .condition_check(check.build().map_err(|e| StoreError::Internal(e.to_string()))?)
        .build())
}

/// Everything the app's home screen needs, from one batch read.
#[derive(Debug, Clone)]
pub struct Home {
    pub account: crate::domain::ledger::Account,
    pub tiers: TierState,
    pub checkin: crate::domain::checkin::StreakView,
    pub member: super::Member,
    /// Contests and draws live now, from their home indexes. Their member state is read in the
    /// second round trip by the features that fill them (see `domain::home`).
    pub contests: Vec<crate::domain::home::IndexEntry>,
    pub draws: Vec<crate::domain::home::IndexEntry>,
    /// The draws index as read (what the draw cards show, and their limits).
    pub draws_index: crate::domain::draws::DrawIndex,
    /// The same contests index item, read as the earn path reads it (who is in without joining).
    pub contests_index: crate::domain::contests::ContestIndex,
    /// The member's referral code, once made.
    pub referral_code: Option<String>,
    /// The referral program is on (a code is then made on the first home screen).
    pub referrals_on: bool,
}

impl Store {
    /// Read 2 of the home screen (`domain::home`): my entries in the live contests and my state
    /// in the open draws, in one batch read (none when nothing is live).
    pub async fn home_cards(
        &self,
        user: &UserId,
        home: &Home,
        now: DateTime<Utc>,
    ) -> Result<(Vec<super::ContestCard>, Vec<super::DrawCard>), crate::Error> {
        let mut wanted: Vec<Key> = home
            .contests
            .iter()
            .map(|c| keys::contest_entry(user, &c.id))
            .collect();
        wanted.extend(
            home.draws_index
                .open(now)
                .iter()
                .map(|d| keys::member_draw(user, &d.id)),
        );
        let found = match wanted.is_empty() {
            true => Default::default(),
            false => self.read_items(wanted).await?,
        };
        let ladder = home.tiers.config();
        let extra = ladder.tier(home.account.tier.as_deref()).extra_daily_spins;
        Ok((
            self.contest_cards(user, &home.contests, &home.contests_index, &found)?,
            self.home_draw_cards(user, &home.draws_index, &found, extra, now)?,
        ))
    }

    /// The home screen: the account (brought up to date), the tier ladder, the default check-in
    /// campaign's status, the profile and the home indexes in one consistent `BatchGetItem`
    /// (configuration from the process's cache when fresh), plus a write only when a release or
    /// an expiry is due, or when this is the member's first appearance.
    pub async fn home(&self, user: &UserId, now: DateTime<Utc>) -> Result<Home, crate::Error> {
        use crate::domain::checkin::{self, DEFAULT_CAMPAIGN};
        use crate::domain::home::HomeIndex;
        use crate::domain::members::{self, Profile};
        let extra = [
            keys::campaign(DEFAULT_CAMPAIGN),
            keys::streak(user, DEFAULT_CAMPAIGN),
            keys::profile(user),
            keys::contests_index(),
            keys::draws_index(),
            keys::referrer(user),
            keys::referral_program(),
        ];
        let outcome = self
            .ledger_transaction(user, &extra, now, |snap| {
                let (campaign, state) =
                    super::checkin::read_campaign_and_state(snap, user, DEFAULT_CAMPAIGN)?;
                let stored: Option<Profile> = snap.get(&keys::profile(user))?;
                let live = |key: &Key| -> Result<_, crate::Error> {
                    let index: HomeIndex = snap.get(key)?.unwrap_or_default();
                    Ok(index.live(now).into_iter().cloned().collect())
                };
                Ok(Decision::Nothing((
                    Home {
                        account: snap.account.clone(),
                        tiers: snap.get(&keys::tiers())?.unwrap_or_default(),
                        checkin: checkin::view(&campaign, &state, now),
                        member: super::Member {
                            user: user.clone(),
                            profile: stored.clone().unwrap_or_default(),
                            account_exists: snap.exists,
                            account_first_seen: snap.account.first_seen,
                        },
                        contests: live(&keys::contests_index())?,
                        draws: live(&keys::draws_index())?,
                        draws_index: snap.get(&keys::draws_index())?.unwrap_or_default(),
                        contests_index: snap.get(&keys::contests_index())?.unwrap_or_default(),
                        referral_code: snap
                            .get::<super::Referrer>(&keys::referrer(user))?
                            .map(|r| r.code),
                        referrals_on: snap
                            .get::<super::StoredProgram>(&keys::referral_program())?
                            .is_some_and(|p| p.program.enabled),
                    },
                    stored.is_some(),
                )))
            })
            .await?;
        let (mut home, profile_exists) = match outcome {
            TxOutcome::Nothing(read) => read,
            _ => return Err(StoreError::Internal("a read wrote something else".into()).into()),
        };
        // A bookkeeping write: if it fails, the home screen is still served, and the next visit
        // records the first appearance.
        if members::first_appearance_due(&home.member.profile, home.member.account_exists) {
            match self
                .record_first_appearance(user, &home.member.profile, profile_exists, now)
                .await
            {
                Ok(Some(profile)) => home.member.profile = profile,
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "first appearance not recorded; the next visit will"),
            }
        }
        // The referral code is made on first need (the program on): a bookkeeping write too.
        if home.referral_code.is_none() && home.referrals_on {
            match self.referral_code(user, now).await {
                Ok(code) => home.referral_code = Some(code),
                Err(err) => tracing::warn!(%err, "referral code not made; the next visit will"),
            }
        }
        Ok(home)
    }
}
