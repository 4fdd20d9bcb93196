//! The one way points move: read the account (and whatever the feature needs), bring it up to
//! date (holds past their time released, expired points expired), let a pure function decide,
//! then write everything in one `TransactWriteItems`:
//!
//! - a guard item per business key, put only if absent: the same key can never pay twice, ever;
//! - the account item, put only if its `seq` is still the one that was read (optimistic lock);
//! - one immutable ledger entry per posting, numbered `seq + 1, seq + 2, …`;
//! - an idempotency record for API calls that carry an `Idempotency-Key`;
//! - the feature's own writes (a check-in, a spin…), each with its own condition.
//!
//! A lost race re-reads and decides again (bounded, with jittered backoff). A failed guard on the
//! first posting means the operation already happened: the caller gets [`TxOutcome::Replayed`];
//! a taken idempotency record gives [`TxOutcome::IdempotentReplay`] with the stored answer.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::boards::Targets;
use super::cache::ConfigCache;
use super::{Item, Key, Store, StoreError, classify, from_item, keys, to_item_with_key};
use crate::domain::contests::Listed;
use crate::domain::ledger::{self, Account, Kind, LedgerEntry, Posting, Reason};
use crate::domain::tiers::{self, Multipliers, TierState};
use crate::domain::{DomainError, UserId};

/// DynamoDB's limit on actions in one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Lost races before a contended operation gives up with [`StoreError::Contention`] (→ 503);
/// the request's deadline ([`Store::until`]) usually comes first.
const MAX_ATTEMPTS: u32 = 40;

/// What was read before deciding. `account` is already brought up to date as of `now`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub account: Account,
    /// Whether the account item exists (a member's first write creates it).
    pub exists: bool,
    items: HashMap<Key, Item>,
}

impl Snapshot {
    /// One of the extra items asked for, deserialized; `None` if it does not exist.
    pub fn get<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, StoreError> {
        self.items.get(key).cloned().map(from_item).transpose()
    }

    /// Prices an earning exactly as the transaction will (the member's tier × the multiplier
    /// windows active at `now`, see [`tiers::price`]), for a feature that must record what it
    /// credits. `None` when it rounds down to nothing. A priced posting is not priced again.
    pub fn price(&self, posting: Posting, now: DateTime<Utc>) -> Result<Option<Posting>, crate::Error> {
        let state: TierState = self.get(&keys::tiers())?.unwrap_or_default();
        let multipliers: Multipliers = self.get(&keys::multipliers())?.unwrap_or_default();
        let ladder = state.config();
        let tier = ladder.tier(self.account.tier.as_deref());
        Ok(tiers::price(posting, tier, &multipliers, now)?)
    }
}

/// What to do with a conditional feature write whose condition fails.
#[derive(Debug, Clone)]
pub enum OnConflict {
    /// Someone changed the state concurrently: read again and decide again.
    Retry,
    /// A business rule failed (out of stock…): give up with this error; nothing is written.
    Reject(DomainError),
}

/// A feature's own action inside the ledger transaction.
#[derive(Debug, Clone)]
pub struct Write {
    pub action: TransactWriteItem,
    pub on_conflict: OnConflict,
}

/// Builds the answer an idempotent API stores, from the entries and account just written.
pub type Respond = Box<dyn FnOnce(&[LedgerEntry], &Account) -> Result<String, crate::Error> + Send>;

/// The idempotency record of an API call: written with the transaction, if absent.
pub struct Idempotency {
    pub key: Key,
    /// A digest of the request, to tell a replay from a reuse of the key for something else.
    pub request_hash: String,
    pub respond: Respond,
}

/// The stored idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub response: String,
    pub at: DateTime<Utc>,
}

/// A decision to write: postings to the member's ledger plus the feature's writes.
pub struct Plan<T> {
    /// Applied in order. The first one's business key identifies the operation (replays).
    pub postings: Vec<Posting>,
    pub writes: Vec<Write>,
    pub idempotency: Option<Idempotency>,
    pub output: T,
    /// Whether the operation moves scores as its store's [`super::Scoring`] says (true unless
    /// [`Plan::unscored`]): a repeat check-in that only stores its answer is no check-in.
    pub scored: bool,
}

impl<T> Plan<T> {
    pub fn new(postings: Vec<Posting>, writes: Vec<Write>, output: T) -> Self {
        Self {
            postings,
            writes,
            idempotency: None,
            output,
            scored: true,
        }
    }

    /// This plan moves no score, whatever the store's scoring says.
    pub fn unscored(self) -> Self {
        Self {
            scored: false,
            ..self
        }
    }

    /// A plan whose answer (`respond`) is stored under the call's `Idempotency-Key` in the same
    /// transaction.
    pub fn idempotent(
        postings: Vec<Posting>,
        writes: Vec<Write>,
        call: &super::IdempotentCall,
        respond: Respond,
        output: T,
    ) -> Self {
        Self {
            postings,
            writes,
            idempotency: Some(Idempotency {
                key: call.key.clone(),
                request_hash: call.request_hash.clone(),
                respond,
            }),
            output,
            scored: true,
        }
    }
}

/// The outcome of `decide`.
pub enum Decision<T> {
    /// Nothing to write (e.g. a repeat check-in on the same day).
    Nothing(T),
    Write(Plan<T>),
}

/// The guard item of a business key: who was paid, by which entry, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRecord {
    pub business_key: String,
    pub user_id: String,
    pub seq: u64,
    pub entry_id: String,
    pub delta: i64,
    pub at: DateTime<Utc>,
}

/// How a ledger transaction ended.
#[derive(Debug, Clone)]
pub enum TxOutcome<T> {
    /// Written now. `entries` are all entries written, housekeeping (releases, expiries) first;
    /// `response` is the answer stored with the idempotency record, if the plan had one.
    Committed {
        output: T,
        entries: Vec<LedgerEntry>,
        account: Account,
        response: Option<String>,
    },
    /// `decide` chose to write nothing (housekeeping that was due may have been written).
    Nothing(T),
    /// The first posting's business key was already paid (a retry, a double tap, a replay).
    Replayed(GuardRecord),
    /// The idempotency key was already used: the stored request digest and answer.
    IdempotentReplay(IdempotencyRecord),
}

impl<T> TxOutcome<T> {
    /// Whether the operation's own plan was written now (not a replay, not nothing to do).
    pub fn committed(&self) -> bool {
        matches!(self, TxOutcome::Committed { .. })
    }
}

/// Business metrics of committed ledger entries: points by reason, holds and reversals.
fn count_entries(entries: impl Iterator<Item = (i64, Reason)>) {
    use crate::metrics::{Metric, count, count_by, label};
    for (delta, reason) in entries {
        let name = label(&reason);
        if delta > 0 {
            count_by(Metric::PointsEarned, &name, delta.unsigned_abs());
        } else if delta < 0 {
            count_by(Metric::PointsSpent, &name, delta.unsigned_abs());
        }
        match reason {
            Reason::Hold => count(Metric::Holds, 1),
            Reason::Capture => count(Metric::HoldCaptures, 1),
            Reason::Release => count(Metric::HoldReleases, 1),
            Reason::Reversal => count(Metric::Reversals, 1),
            _ => {}
        }
    }
}

/// What each action of an assembled transaction is, to read `CancellationReasons` by index.
#[derive(Debug, Clone)]
enum Role {
    Guard { primary: bool },
    Account,
    Entry,
    Idempotency,
    Feature(OnConflict),
}

enum Attempt<T> {
    /// The transaction ended; `capped_move` says a move into or out of a capped tier is due.
    Done {
        outcome: TxOutcome<T>,
        capped_move: bool,
    },
    /// Lost a race: back off, read fresh and decide again.
    Retry,
    /// A tier move was decided on cached configuration: read it fresh and decide again.
    Refresh,
}

/// How a ledger transaction treats tier moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TierMode {
    /// Moves between uncapped tiers go into the operation's transaction; a move into or out of a
    /// capped tier never does (the operation never waits on the ladder item): it follows.
    Operation,
    /// The follow-up: the ladder read fresh, any move, a capped one with its version-checked
    /// seat count.
    Admit,
}

/// An operation's transaction carries at most this many housekeeping postings (2 actions each:
/// 20 actions); when more are due, the oldest commit first in transactions of their own.
pub const MAX_INLINE_HOUSEKEEPING: usize = 10;
/// Housekeeping postings per transaction of their own (2 actions each, plus the account: 91).
const HOUSEKEEPING_CHUNK: usize = 45;

impl Store {
    /// Reads the account and `extra` items (one consistent `BatchGetItem`), brings the account up
    /// to date, calls `decide`, and writes its plan in one transaction; see the module docs.
    ///
    /// A move into or out of a capped tier is never part of that transaction: it follows as its
    /// own transaction on the ladder's version ([`Store::admit`]); if that is interrupted, the next
    /// read or write of the account completes it.
    pub async fn ledger_transaction<T, F>(
        &self,
        user: &UserId,
        extra: &[Key],
        now: DateTime<Utc>,
        mut decide: F,
    ) -> Result<TxOutcome<T>, crate::Error>
    where
        F: FnMut(&Snapshot) -> Result<Decision<T>, crate::Error>,
    {
        let mut admitted = false;
        loop {
            let (outcome, capped_move) = self
                .run(user, extra, now, &mut decide, TierMode::Operation)
                .await?;
            if !capped_move || admitted {
                return Ok(outcome);
            }
            admitted = true;
            // The operation stands whatever happens to its follow-up; the next read completes it.
            if let Err(err) = self.admit(user, now).await {
                tracing::warn!(error = %err, %user, "capped tier admission deferred to the next read");
                return Ok(outcome);
            }
            // A read answers with the tier it just completed; a write has its answer already.
            if !matches!(outcome, TxOutcome::Nothing(_)) {
                return Ok(outcome);
            }
        }
    }

    /// The follow-up of an operation that made a capped tier move due: the account and the
    /// ladder read fresh, the move (or the next tier down, if the capped one is full) written
    /// with the ladder's version-checked seat count, retried on a lost race.
    pub(crate) async fn admit(&self, user: &UserId, now: DateTime<Utc>) -> Result<(), crate::Error> {
        let mut decide = |_: &Snapshot| Ok(Decision::Nothing(()));
        self.run(user, &[], now, &mut decide, TierMode::Admit)
            .await
            .map(|_| ())
    }

    async fn run<T, F>(
        &self,
        user: &UserId,
        extra: &[Key],
        now: DateTime<Utc>,
        decide: &mut F,
        mode: TierMode,
    ) -> Result<(TxOutcome<T>, bool), crate::Error>
    where
        F: FnMut(&Snapshot) -> Result<Decision<T>, crate::Error>,
    {
        let targets = match mode {
            TierMode::Operation => self.score_targets(now)?,
            TierMode::Admit => None,
        };
        let mut wanted = with_config(extra);
        if let Some(targets) = &targets {
            wanted.extend(targets.keys(user));
        }
        let mut fresh = mode == TierMode::Admit;
        let mut lost = 0;
        loop {
            let read = self.read_raw(user, &wanted, fresh).await?;
            let due = ledger::housekeeping(&read.account, user.as_str(), now, &self.rules);
            if due.len() > MAX_INLINE_HOUSEKEEPING {
                // A long-dormant account: the oldest releases and expiries commit first, on their own.
                let chunk = &due[..due.len().min(HOUSEKEEPING_CHUNK)];
                if !self.commit_housekeeping(user, &read, chunk, now).await? {
                    lost += 1;
                    self.lost_race(lost).await?;
                }
                fresh = true;
                continue;
            }
            let (account, housekeeping) = self.bring_up_to_date(user, &read.account, now)?;
            let mut snapshot = Snapshot {
                account,
                exists: read.exists,
                items: read.items,
            };
            // Scored operations: the contests counting it, their entries and the member's teams
            // (a second read only when the index was not cached, or for team contests).
            let contests = match &targets {
                Some(targets) => {
                    let contests = targets.contests(&snapshot, now)?;
                    let more = targets.second_read(user, &contests, &snapshot)?;
                    if !more.is_empty() {
                        snapshot.items.extend(self.batch_get(more).await?);
                        let teams = targets.team_keys(user, &contests, &snapshot)?;
                        let teams: Vec<Key> = teams
                            .into_iter()
                            .filter(|k| !snapshot.items.contains_key(k))
                            .collect();
                        if !teams.is_empty() {
                            snapshot.items.extend(self.batch_get(teams).await?);
                        }
                    }
                    contests
                }
                None => vec![],
            };
            let tier_state: TierState = snapshot.get(&keys::tiers())?.unwrap_or_default();
            let multipliers: Multipliers = snapshot.get(&keys::multipliers())?.unwrap_or_default();
            let config = Config {
                tiers: &tier_state,
                multipliers: &multipliers,
                cached: read.config_cached,
                mode,
            };
            // `nothing`: the decision was to write nothing; only housekeeping that was due commits.
            let (plan, nothing) = match decide(&snapshot)? {
                Decision::Nothing(output) if housekeeping.is_empty() && mode == TierMode::Operation => {
                    // A read completes a capped tier move an earlier operation left due.
                    let capped_move = tier_move(&config, &snapshot.account).is_some_and(|m| m.capped);
                    return Ok((TxOutcome::Nothing(output), capped_move));
                }
                Decision::Nothing(output) => (Plan::new(vec![], vec![], Some(output)), true),
                Decision::Write(plan) => (
                    Plan {
                        postings: plan.postings,
                        writes: plan.writes,
                        idempotency: plan.idempotency,
                        output: Some(plan.output),
                        scored: plan.scored,
                    },
                    false,
                ),
            };
            let stored = Stored {
                account: &read.account,
                exists: read.exists,
            };
            let scores = targets
                .as_ref()
                .filter(|_| !nothing && plan.scored)
                .map(|t| (t, contests.as_slice(), &snapshot));
            match self
                .try_commit(user, stored, housekeeping, plan, config, scores, now)
                .await?
            {
                Attempt::Retry => {
                    lost += 1;
                    self.lost_race(lost).await?;
                    fresh = true;
                }
                Attempt::Refresh => fresh = true,
                Attempt::Done { outcome, capped_move } => {
                    let outcome = match outcome {
                        TxOutcome::Committed {
                            output: Some(output), ..
                        } if nothing => TxOutcome::Nothing(output),
                        TxOutcome::Committed {
                            output: Some(output),
                            entries,
                            account,
                            response,
                        } => TxOutcome::Committed {
                            output,
                            entries,
                            account,
                            response,
                        },
                        TxOutcome::Nothing(Some(output)) => TxOutcome::Nothing(output),
                        TxOutcome::Replayed(g) => TxOutcome::Replayed(g),
                        TxOutcome::IdempotentReplay(r) => TxOutcome::IdempotentReplay(r),
                        TxOutcome::Committed { output: None, .. } | TxOutcome::Nothing(None) => {
                            return Err(StoreError::Internal("a plan lost its output".into()).into());
                        }
                    };
                    return Ok((outcome, capped_move));
                }
            }
        }
    }

    /// After the `n`th lost race: give up (503) when out of attempts or time, else back off.
    async fn lost_race(&self, n: u32) -> Result<(), StoreError> {
        if n >= MAX_ATTEMPTS || self.past_deadline() {
            return Err(StoreError::Contention(n));
        }
        self.pause(n).await;
        if self.past_deadline() {
            return Err(StoreError::Contention(n));
        }
        Ok(())
    }

    /// Commits the first housekeeping postings that are due (releases, then expiries, oldest
    /// first) in a transaction of their own. False when the account moved meanwhile.
    async fn commit_housekeeping(
        &self,
        user: &UserId,
        read: &RawRead,
        postings: &[Posting],
        now: DateTime<Utc>,
    ) -> Result<bool, crate::Error> {
        let mut actions = Vec::with_capacity(2 * postings.len() + 1);
        let mut account = read.account.clone();
        for posting in postings {
            let (next, entry, guard) = self.entry_actions(user, &account, posting, now)?;
            account = next;
            actions.push(guard);
            actions.push(entry.1);
        }
        actions.push(self.account_put(user, &read.account, read.exists, &account)?);
        let call = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send();
        let err = match self.bounded(call).await? {
            Ok(_) => {
                count_entries(postings.iter().map(|p| (p.delta, p.reason)));
                return Ok(true);
            }
            Err(err) => err,
        };
        match err.as_service_error() {
            // The account moved, or another transaction held it: read again, like any lost race.
            Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => {
                lost_a_race(cancel.cancellation_reasons().iter().map(|r| r.code()))?;
                Ok(false)
            }
            Some(e) if e.code() == Some("TransactionConflictException") => Ok(false),
            _ => Err(classify(err).into()),
        }
    }

    /// The ledger entry of `posting` on `account` with its two puts (guard, entry).
    #[allow(clippy::type_complexity)]
    fn entry_actions(
        &self,
        user: &UserId,
        account: &Account,
        posting: &Posting,
        now: DateTime<Utc>,
    ) -> Result<(Account, (LedgerEntry, TransactWriteItem), TransactWriteItem), crate::Error> {
        let entry_id = ulid::Ulid::from_datetime(now.into()).to_string();
        let (next, entry) = ledger::apply(account, posting, now, &self.rules, entry_id)?;
        let guard = GuardRecord {
            business_key: posting.business_key.clone(),
            user_id: user.to_string(),
            seq: entry.seq,
            entry_id: entry.entry_id.clone(),
            delta: entry.delta,
            at: now,
        };
        let guard = put_if_absent(
            &self.table,
            to_item_with_key(&keys::business_key(&posting.business_key), &guard)?,
        )?;
        let put = put_if_absent(
            &self.table,
            to_item_with_key(&keys::ledger_entry(user, entry.seq), &entry)?,
        )?;
        Ok((next, (entry, put), guard))
    }

    /// The account put, conditioned on the `seq` that was read (absent for a new account).
    fn account_put(
        &self,
        user: &UserId,
        stored: &Account,
        exists: bool,
        account: &Account,
    ) -> Result<TransactWriteItem, crate::Error> {
        let item = to_item_with_key(&keys::account(user), account)?;
        let put = if exists {
            Put::builder()
                .condition_expression("#seq = :seq")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_values(":seq", AttributeValue::N(stored.seq.to_string()))
        } else {
            Put::builder().condition_expression("attribute_not_exists(pk)")
        };
        let put = put
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(StoreError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Credits or debits one member: the entry point every feature uses to move points when it
    /// has no writes of its own.
    pub async fn post(
        &self,
        user: &UserId,
        posting: Posting,
        now: DateTime<Utc>,
    ) -> Result<TxOutcome<()>, crate::Error> {
        self.ledger_transaction(user, &[], now, |_| {
            Ok(Decision::Write(Plan::new(vec![posting.clone()], vec![], ())))
        })
        .await
    }

    /// The member's account as of `now` (zeros for a member without entries), strongly
    /// consistent; writes the releases and expiries that are due, if any.
    pub async fn account(&self, user: &UserId, now: DateTime<Utc>) -> Result<Account, crate::Error> {
        match self
            .ledger_transaction(user, &[], now, |s| Ok(Decision::Nothing(s.account.clone())))
            .await?
        {
            TxOutcome::Nothing(account) => Ok(account),
            _ => Err(StoreError::Internal("an account read wrote something else".into()).into()),
        }
    }

    /// The guard item of a business key, if that key was paid.
    pub async fn guard(&self, business_key: &str) -> Result<Option<GuardRecord>, StoreError> {
        self.get_item(&keys::business_key(business_key), true)
            .await?
            .map(from_item)
            .transpose()
    }

    /// Releases and expiries due at `now`: the account after them and the postings.
    fn bring_up_to_date(
        &self,
        user: &UserId,
        stored: &Account,
        now: DateTime<Utc>,
    ) -> Result<(Account, Vec<Posting>), crate::Error> {
        let due = ledger::housekeeping(stored, user.as_str(), now, &self.rules);
        let mut account = stored.clone();
        for posting in &due {
            account = ledger::apply(&account, posting, now, &self.rules, String::new())?.0;
        }
        Ok((account, due))
    }

    /// The stored account (and whether it exists) and the extra items, in one batch read.
    /// Configuration items come from the process's cache unless `fresh` (a retry after a lost
    /// race reads everything fresh).
    async fn read_raw(&self, user: &UserId, extra: &[Key], fresh: bool) -> Result<RawRead, StoreError> {
        let account_key = keys::account(user);
        let mut wanted: Vec<Key> = vec![account_key.clone()];
        let mut cached = HashMap::new();
        let mut config_cached = false;
        for key in extra {
            if *key == account_key || wanted.contains(key) || cached.contains_key(key) {
                continue;
            }
            if !fresh
                && ConfigCache::is_config(key)
                && let Some(hit) = self.cache.get(key)
            {
                config_cached |= *key == keys::tiers();
                if let Some(item) = hit {
                    cached.insert(key.clone(), item);
                }
                continue;
            }
            wanted.push(key.clone());
        }
        let mut found = self.batch_get(wanted.clone()).await?;
        for key in wanted.into_iter().filter(ConfigCache::is_config) {
            let item = found.get(&key).cloned();
            self.cache.put(key, item);
        }
        found.extend(cached);
        let (account, exists) = match found.remove(&account_key) {
            Some(item) => (from_item::<Account>(item)?, true),
            None => (Account::default(), false),
        };
        Ok(RawRead {
            account,
            exists,
            items: found,
            config_cached,
        })
    }

    /// Reads the account and `extra` items without writing anything (the account is brought up
    /// to date in memory only).
    pub(crate) async fn read_snapshot(
        &self,
        user: &UserId,
        extra: &[Key],
        now: DateTime<Utc>,
    ) -> Result<Snapshot, crate::Error> {
        let read = self.read_raw(user, extra, false).await?;
        let (account, _) = self.bring_up_to_date(user, &read.account, now)?;
        Ok(Snapshot {
            account,
            exists: read.exists,
            items: read.items,
        })
    }

    /// Consistent `BatchGetItem` of up to 100 keys, following `UnprocessedKeys` (each round within
    /// the request's deadline).
    pub(crate) async fn batch_get(&self, keys: Vec<Key>) -> Result<HashMap<Key, Item>, StoreError> {
        let mut found = HashMap::new();
        let mut pending: Vec<HashMap<String, AttributeValue>> = keys.iter().map(Key::to_item).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            if rounds > 1 {
                self.pause(rounds).await;
            }
            if rounds > 4 || self.past_deadline() {
                return Err(StoreError::Unavailable(
                    "BatchGetItem left keys unprocessed".into(),
                ));
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(StoreError::internal)?;
            let call = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send();
            let out = self.bounded(call).await?.map_err(classify)?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default()
            {
                let key = key_of(&item)?;
                found.insert(key, item);
            }
            if let Some(rest) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                pending = rest.keys;
            }
        }
        Ok(found)
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_commit<T>(
        &self,
        user: &UserId,
        stored: Stored<'_>,
        housekeeping: Vec<Posting>,
        plan: Plan<T>,
        config: Config<'_>,
        scores: Option<(&Targets, &[Listed], &Snapshot)>,
        now: DateTime<Utc>,
    ) -> Result<Attempt<T>, crate::Error> {
        let mut actions: Vec<(TransactWriteItem, Role)> = Vec::new();
        let Some(Completed {
            postings,
            primary,
            seats,
            capped_move,
        }) = self.complete(user, stored.account, housekeeping, plan.postings, config, now)?
        else {
            return Ok(Attempt::Refresh);
        };
        let wrote_seats = seats.is_some();
        if let Some(action) = seats {
            actions.push((action, Role::Feature(OnConflict::Retry)));
        }
        let mut account = stored.account.clone();
        let mut entries = Vec::with_capacity(postings.len());
        for posting in &postings {
            let (next, (entry, put), guard) = self.entry_actions(user, &account, posting, now)?;
            account = next;
            let is_primary = primary.as_deref() == Some(posting.business_key.as_str());
            actions.push((guard, Role::Guard { primary: is_primary }));
            actions.push((put, Role::Entry));
            entries.push(entry);
        }
        // A member's first write of any kind creates the account, which records the first
        // appearance (docs/data-model.md, "Members"); later ones put it only when entries move it.
        let creates = !stored.exists && (!plan.writes.is_empty() || plan.idempotency.is_some());
        if !entries.is_empty() || creates {
            if !stored.exists {
                account.first_seen = Some(now);
            }
            let put = self.account_put(user, stored.account, stored.exists, &account)?;
            actions.push((put, Role::Account));
        }
        let idempotency_key = plan.idempotency.as_ref().map(|i| i.key.clone());
        let mut response = None;
        if let Some(idem) = plan.idempotency {
            let record = IdempotencyRecord {
                request_hash: idem.request_hash,
                response: (idem.respond)(&entries, &account)?,
                at: now,
            };
            response = Some(record.response.clone());
            actions.push((
                put_if_absent(&self.table, to_item_with_key(&idem.key, &record)?)?,
                Role::Idempotency,
            ));
        }
        for write in plan.writes {
            actions.push((write.action, Role::Feature(write.on_conflict)));
        }
        // Scores move in the same transaction as the entries that earn them.
        if let Some((targets, contests, snapshot)) = scores {
            for write in self.score_writes(user, targets, contests, snapshot, &postings, now)? {
                actions.push((write.action, Role::Feature(write.on_conflict)));
            }
        }
        if actions.is_empty() {
            return Ok(Attempt::Done {
                outcome: TxOutcome::Nothing(plan.output),
                capped_move,
            });
        }
        if actions.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Internal(format!("transaction of {} actions", actions.len())).into());
        }
        let (items, roles): (Vec<_>, Vec<_>) = actions.into_iter().unzip();
        let call = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send();
        let err = match self.bounded(call).await? {
            Ok(_) => {
                if wrote_seats {
                    self.cache.forget(&keys::tiers());
                }
                count_entries(entries.iter().map(|e| (e.delta, e.reason)));
                return Ok(Attempt::Done {
                    outcome: TxOutcome::Committed {
                        output: plan.output,
                        entries,
                        account,
                        response,
                    },
                    capped_move,
                });
            }
            Err(err) => err,
        };
        let reasons: Vec<Option<String>> = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancel)) => cancel
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().map(str::to_owned))
                .collect(),
            // Another transaction holds one of the items right now: a race like any other.
            Some(e) if e.code() == Some("TransactionConflictException") => return Ok(Attempt::Retry),
            _ => return Err(classify(err).into()),
        };
        self.read_cancellation(
            user,
            primary.as_deref(),
            idempotency_key.as_ref(),
            &roles,
            &reasons,
        )
        .await
    }

    /// The postings to write: the housekeeping that is due, the plan's postings priced (tier ×
    /// multiplier windows, for purchases and check-ins), and a tier change if growth moved the
    /// member. In [`TierMode::Operation`] a capped move is left out (`capped_move`), and an
    /// uncapped one decided on cached configuration asks for a fresh read (`None`); in
    /// [`TierMode::Admit`] a capped move comes with the seat-count write.
    fn complete(
        &self,
        user: &UserId,
        stored: &Account,
        housekeeping: Vec<Posting>,
        planned: Vec<Posting>,
        config: Config<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Completed>, crate::Error> {
        let tier_config = config.tiers.config();
        let mut account = stored.clone();
        for posting in &housekeeping {
            account = ledger::apply(&account, posting, now, &self.rules, String::new())?.0;
        }
        let mut postings = housekeeping;
        let mut primary = None;
        for posting in planned {
            let tier = tier_config.tier(account.tier.as_deref());
            // A feature may have priced a posting already (`Snapshot::price`, same inputs).
            let priced = match posting.detail {
                Some(_) => Some(posting),
                None => tiers::price(posting, tier, config.multipliers, now)?,
            };
            if let Some(priced) = priced {
                account = ledger::apply(&account, &priced, now, &self.rules, String::new())?.0;
                primary.get_or_insert_with(|| priced.business_key.clone());
                postings.push(priced);
            }
        }
        // A release may have put points back into a bucket that has expired meanwhile: they
        // expire in the same transaction, so no answer or balance ever shows them.
        for posting in ledger::expire_due(&account, user.as_str(), now, &self.rules) {
            account = ledger::apply(&account, &posting, now, &self.rules, String::new())?.0;
            postings.push(posting);
        }
        let mut seats = None;
        let mut capped_move = false;
        let evaluate = !postings.is_empty() || config.mode == TierMode::Admit;
        if let Some(found) = tier_move(&config, &account).filter(|_| evaluate) {
            match config.mode {
                TierMode::Operation if found.capped => capped_move = true,
                // An uncapped move on a cached ladder could miss a cap just added: read it fresh.
                TierMode::Operation if config.cached => return Ok(None),
                TierMode::Operation | TierMode::Admit => {
                    let tier_move = found.tier_move;
                    let note = Posting::new(
                        0,
                        Reason::TierChange,
                        format!("{} -> {}", tier_move.from, tier_move.to),
                        format!("tier#{user}#{}", account.seq + 1),
                    );
                    postings.push(note.with_kind(Kind::TierChange {
                        to: tier_move.to.clone(),
                    }));
                    if tier_move.seats != config.tiers.seats {
                        let next = TierState {
                            config: config.tiers.config.clone(),
                            seats: tier_move.seats,
                            version: config.tiers.version + 1,
                        };
                        let expected = (config.tiers.version > 0).then_some(config.tiers.version);
                        seats = Some(put_versioned(
                            &self.table,
                            to_item_with_key(&keys::tiers(), &next)?,
                            expected,
                        )?);
                    }
                }
            }
        }
        Ok(Some(Completed {
            postings,
            primary,
            seats,
            capped_move,
        }))
    }

    /// Decides what a cancelled transaction means from its per-action reasons.
    async fn read_cancellation<T>(
        &self,
        user: &UserId,
        primary: Option<&str>,
        idempotency_key: Option<&Key>,
        roles: &[Role],
        reasons: &[Option<String>],
    ) -> Result<Attempt<T>, crate::Error> {
        let failed = |i: usize| reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed");
        // 1. The same API call was already made: answer with what it answered.
        if let (Some(key), Some(i)) = (
            idempotency_key,
            roles.iter().position(|r| matches!(r, Role::Idempotency)),
        ) && failed(i)
        {
            return match self
                .get_item(key, true)
                .await?
                .map(from_item::<IdempotencyRecord>)
                .transpose()?
            {
                Some(record) => Ok(Attempt::Done {
                    outcome: TxOutcome::IdempotentReplay(record),
                    capped_move: false,
                }),
                None => Ok(Attempt::Retry),
            };
        }
        // 2. The operation was already paid: answer with what was paid.
        for (i, role) in roles.iter().enumerate() {
            if matches!(role, Role::Guard { primary: true })
                && failed(i)
                && let Some(key) = primary
            {
                return match self.guard(key).await? {
                    // A key paid to another member is not a replay of this operation: a bug in
                    // how the caller builds keys, never an answer to hand out.
                    Some(guard) if guard.user_id != user.as_str() => Err(StoreError::Internal(format!(
                        "business key {key} was paid to another member"
                    ))
                    .into()),
                    Some(guard) => Ok(Attempt::Done {
                        outcome: TxOutcome::Replayed(guard),
                        capped_move: false,
                    }),
                    None => Ok(Attempt::Retry),
                };
            }
        }
        // 3. A business rule failed at write time.
        for (i, role) in roles.iter().enumerate() {
            if let Role::Feature(OnConflict::Reject(error)) = role
                && failed(i)
            {
                return Err(error.clone().into());
            }
        }
        // 4. Lost a race (the account or a feature item moved, or a conflict): read and decide again.
        if lost_a_race(reasons.iter().take(roles.len()).map(|r| r.as_deref()))? {
            Ok(Attempt::Retry)
        } else {
            Err(StoreError::Internal("transaction cancelled without a reason".into()).into())
        }
    }
}

/// Reads a cancelled transaction's reasons: true when an item moved or another transaction held
/// one (a lost race: read again); throttling is 503 at once, anything else a bug.
fn lost_a_race<'a>(reasons: impl Iterator<Item = Option<&'a str>>) -> Result<bool, StoreError> {
    let mut race = false;
    for reason in reasons {
        match reason {
            None | Some("None") => {}
            Some("ConditionalCheckFailed" | "TransactionConflict") => race = true,
            Some(code @ ("ThrottlingError" | "ProvisionedThroughputExceeded")) => {
                return Err(StoreError::Unavailable(code.to_owned()));
            }
            Some(other) => return Err(StoreError::Internal(format!("transaction cancelled: {other}"))),
        }
    }
    Ok(race)
}

/// The configuration every ledger decision needs, read with the account.
#[derive(Clone, Copy)]
struct Config<'a> {
    tiers: &'a TierState,
    multipliers: &'a Multipliers,
    /// The ladder came from the process's cache (it may be up to `CONFIG_CACHE_SECONDS` old).
    cached: bool,
    mode: TierMode,
}

/// What one batch read found.
struct RawRead {
    account: Account,
    exists: bool,
    items: HashMap<Key, Item>,
    config_cached: bool,
}

/// The account as stored, which the account put is conditioned on.
#[derive(Clone, Copy)]
struct Stored<'a> {
    account: &'a Account,
    exists: bool,
}

/// What [`Store::complete`] returns.
struct Completed {
    postings: Vec<Posting>,
    primary: Option<String>,
    seats: Option<TransactWriteItem>,
    capped_move: bool,
}

/// A tier move that is due, and whether a capped tier is on either side of it.
struct DueMove {
    tier_move: tiers::TierMove,
    capped: bool,
}

fn tier_move(config: &Config<'_>, account: &Account) -> Option<DueMove> {
    let ladder = config.tiers.config();
    let tier_move = tiers::evaluate(
        &ladder,
        config.tiers,
        account.tier.as_deref(),
        account.lifetime_earned,
    )?;
    let capped = ladder.tier(Some(&tier_move.from)).max_members.is_some()
        || ladder.tier(Some(&tier_move.to)).max_members.is_some();
    Some(DueMove { tier_move, capped })
}

/// `extra` plus the tier and multiplier configuration items.
fn with_config(extra: &[Key]) -> Vec<Key> {
    let mut keys = extra.to_vec();
    for key in [keys::tiers(), keys::multipliers()] {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// A put that fails if the item exists.
pub(crate) fn put_if_absent(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(StoreError::internal)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A put conditioned on the item's `version`: `None` means the item must not exist yet.
pub(crate) fn put_versioned(
    table: &str,
    item: Item,
    expected: Option<u64>,
) -> Result<TransactWriteItem, StoreError> {
    let put = match expected {
        Some(version) => Put::builder()
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
        None => Put::builder().condition_expression("attribute_not_exists(pk)"),
    };
    let put = put
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(StoreError::internal)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn key_of(item: &Item) -> Result<Key, StoreError> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StoreError::Internal(format!("item without string {name}"))),
    };
    Ok(Key {
        pk: text(keys::PK)?,
        sk: text(keys::SK)?,
    })
}

/// Full-jitter exponential backoff: a random wait up to min(200 ms, 4 ms × 2^attempt).
pub(crate) fn backoff_duration(attempt: u32) -> Duration {
    let cap = 4u64.saturating_mul(1 << attempt.min(6)).min(200);
    Duration::from_millis(rand::rng().random_range(1..=cap))
}
