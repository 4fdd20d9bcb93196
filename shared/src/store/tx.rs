//! The one way points move: read the account (and whatever the feature needs), let a pure function
//! decide, then write everything in one `TransactWriteItems`:
//!
//! - a guard item per business key, put only if absent: the same key can never pay twice, ever;
//! - the account item, put only if its `seq` is still the one that was read (optimistic lock);
//! - one immutable ledger entry per posting, numbered `seq + 1, seq + 2, …`;
//! - the feature's own writes (a check-in, a spin…), each with its own condition.
//!
//! A lost race re-reads and decides again (bounded, with jittered backoff). A failed guard on the
//! first posting means the operation already happened: the caller gets [`TxOutcome::Replayed`].

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Item, Key, Store, StoreError, classify, from_item, keys, to_item_with_key};
use crate::domain::ledger::{self, Account, LedgerEntry, Posting};
use crate::domain::{DomainError, UserId};

/// DynamoDB's limit on actions in one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Attempts before a contended operation gives up with [`StoreError::Contention`] (→ 503).
const MAX_ATTEMPTS: u32 = 40;

/// What was read before deciding.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub account: Account,
    account_exists: bool,
    items: HashMap<Key, Item>,
}

impl Snapshot {
    /// One of the extra items asked for, deserialized; `None` if it does not exist.
    pub fn get<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, StoreError> {
        self.items.get(key).cloned().map(from_item).transpose()
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

/// A decision to write: postings to the member's ledger plus the feature's writes.
#[derive(Debug, Clone)]
pub struct Plan<T> {
    /// Applied in order. The first one's business key identifies the operation (replays).
    pub postings: Vec<Posting>,
    pub writes: Vec<Write>,
    /// Stored on the first posting's guard item: what a replay should answer (idempotent APIs).
    pub memo: Option<String>,
    pub output: T,
}

/// The outcome of `decide`.
#[derive(Debug, Clone)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// How a ledger transaction ended.
#[derive(Debug, Clone)]
pub enum TxOutcome<T> {
    /// Written now.
    Committed {
        output: T,
        entries: Vec<LedgerEntry>,
        account: Account,
    },
    /// `decide` chose to write nothing.
    Nothing(T),
    /// The first posting's business key was already paid (a retry, a double tap, a replay).
    Replayed(GuardRecord),
}

/// The account item's stored form.
#[derive(Debug, Serialize, Deserialize)]
struct AccountRecord {
    balance: i64,
    lifetime_earned: i64,
    seq: u64,
    updated_at: DateTime<Utc>,
}

/// What each action of an assembled transaction is, to read `CancellationReasons` by index.
#[derive(Debug, Clone)]
enum Role {
    Guard { primary: bool },
    Account,
    Entry,
    Feature(OnConflict),
}

enum Attempt<T> {
    Done(TxOutcome<T>),
    Retry,
}

impl Store {
    /// Reads the account and `extra` items (one consistent `BatchGetItem`), calls `decide`, and
    /// writes its plan in one transaction; see the module documentation.
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
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let snapshot = self.read_snapshot(user, extra).await?;
            let plan = match decide(&snapshot)? {
                Decision::Nothing(output) => return Ok(TxOutcome::Nothing(output)),
                Decision::Write(plan) => plan,
            };
            match self.try_commit(user, &snapshot, plan, now).await? {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Retry => continue,
            }
        }
        Err(StoreError::Contention(MAX_ATTEMPTS).into())
    }

    /// Credits or debits one member: the single entry point every feature uses to move points
    /// when it has no writes of its own.
    pub async fn post(
        &self,
        user: &UserId,
        posting: Posting,
        now: DateTime<Utc>,
    ) -> Result<TxOutcome<()>, crate::Error> {
        self.ledger_transaction(user, &[], now, |_| {
            Ok(Decision::Write(Plan {
                postings: vec![posting.clone()],
                writes: vec![],
                memo: None,
                output: (),
            }))
        })
        .await
    }

    /// The member's account (zeros for a member without entries), strongly consistent.
    pub async fn account(&self, user: &UserId) -> Result<Account, StoreError> {
        match self.get_item(&keys::account(user), true).await? {
            Some(item) => Ok(account_from(from_item(item)?)),
            None => Ok(Account::default()),
        }
    }

    /// The guard item of a business key, if that key was paid.
    pub async fn guard(&self, business_key: &str) -> Result<Option<GuardRecord>, StoreError> {
        self.get_item(&keys::business_key(business_key), true)
            .await?
            .map(from_item)
            .transpose()
    }

    pub(crate) async fn read_snapshot(&self, user: &UserId, extra: &[Key]) -> Result<Snapshot, StoreError> {
        let account_key = keys::account(user);
        let mut wanted: Vec<Key> = vec![account_key.clone()];
        wanted.extend(extra.iter().filter(|k| **k != account_key).cloned());
        let mut found = self.batch_get(wanted).await?;
        let (account, account_exists) = match found.remove(&account_key) {
            Some(item) => (account_from(from_item(item)?), true),
            None => (Account::default(), false),
        };
        Ok(Snapshot {
            account,
            account_exists,
            items: found,
        })
    }

    /// Consistent `BatchGetItem` of up to 100 keys, following `UnprocessedKeys`.
    async fn batch_get(&self, keys: Vec<Key>) -> Result<HashMap<Key, Item>, StoreError> {
        let mut found = HashMap::new();
        let mut pending: Vec<HashMap<String, AttributeValue>> = keys.iter().map(Key::to_item).collect();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            if rounds > 1 {
                backoff(rounds).await;
            }
            if rounds > 8 {
                return Err(StoreError::Unavailable(
                    "BatchGetItem left keys unprocessed".into(),
                ));
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(StoreError::internal)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(classify)?;
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

    async fn try_commit<T>(
        &self,
        user: &UserId,
        snapshot: &Snapshot,
        plan: Plan<T>,
        now: DateTime<Utc>,
    ) -> Result<Attempt<T>, crate::Error> {
        let mut actions: Vec<(TransactWriteItem, Role)> = Vec::new();
        let mut account = snapshot.account.clone();
        let mut entries = Vec::with_capacity(plan.postings.len());
        for (i, posting) in plan.postings.iter().enumerate() {
            let (next, entry) = ledger::apply(
                &account,
                posting,
                now,
                ulid::Ulid::from_datetime(now.into()).to_string(),
            )?;
            account = next;
            let guard = GuardRecord {
                business_key: posting.business_key.clone(),
                user_id: user.to_string(),
                seq: entry.seq,
                entry_id: entry.entry_id.clone(),
                delta: entry.delta,
                at: now,
                memo: if i == 0 { plan.memo.clone() } else { None },
            };
            actions.push((
                put_if_absent(
                    &self.table,
                    to_item_with_key(&keys::business_key(&posting.business_key), &guard)?,
                )?,
                Role::Guard { primary: i == 0 },
            ));
            actions.push((
                put_if_absent(
                    &self.table,
                    to_item_with_key(&keys::ledger_entry(user, entry.seq), &entry)?,
                )?,
                Role::Entry,
            ));
            entries.push(entry);
        }
        if !plan.postings.is_empty() {
            let record = AccountRecord {
                balance: account.balance,
                lifetime_earned: account.lifetime_earned,
                seq: account.seq,
                updated_at: now,
            };
            let item = to_item_with_key(&keys::account(user), &record)?;
            let put = if snapshot.account_exists {
                Put::builder()
                    .condition_expression("#seq = :seq")
                    .expression_attribute_names("#seq", "seq")
                    .expression_attribute_values(":seq", AttributeValue::N(snapshot.account.seq.to_string()))
            } else {
                Put::builder().condition_expression("attribute_not_exists(pk)")
            };
            let put = put
                .table_name(&self.table)
                .set_item(Some(item))
                .build()
                .map_err(StoreError::internal)?;
            actions.push((TransactWriteItem::builder().put(put).build(), Role::Account));
        }
        for write in plan.writes {
            actions.push((write.action, Role::Feature(write.on_conflict)));
        }
        if actions.is_empty() {
            return Ok(Attempt::Done(TxOutcome::Nothing(plan.output)));
        }
        if actions.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Internal(format!("transaction of {} actions", actions.len())).into());
        }
        let (items, roles): (Vec<_>, Vec<_>) = actions.into_iter().unzip();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => {
                return Ok(Attempt::Done(TxOutcome::Committed {
                    output: plan.output,
                    entries,
                    account,
                }));
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
        self.read_cancellation(&plan.postings, &roles, &reasons).await
    }

    /// Decides what a cancelled transaction means from its per-action reasons.
    async fn read_cancellation<T>(
        &self,
        postings: &[Posting],
        roles: &[Role],
        reasons: &[Option<String>],
    ) -> Result<Attempt<T>, crate::Error> {
        let failed = |i: usize| reasons.get(i).and_then(|r| r.as_deref());
        // 1. The operation was already paid: answer with what was paid.
        for (i, role) in roles.iter().enumerate() {
            if matches!(role, Role::Guard { primary: true }) && failed(i) == Some("ConditionalCheckFailed") {
                let key = &postings[0].business_key;
                return match self.guard(key).await? {
                    Some(guard) => Ok(Attempt::Done(TxOutcome::Replayed(guard))),
                    None => Ok(Attempt::Retry),
                };
            }
        }
        // 2. A business rule failed at write time.
        for (i, role) in roles.iter().enumerate() {
            if let Role::Feature(OnConflict::Reject(error)) = role
                && failed(i) == Some("ConditionalCheckFailed")
            {
                return Err(error.clone().into());
            }
        }
        // 3. Lost a race (the account or a feature item moved, or a conflict): read and decide again.
        let mut retry = false;
        for i in 0..roles.len() {
            match failed(i) {
                None | Some("None") => {}
                Some("ConditionalCheckFailed" | "TransactionConflict") => retry = true,
                Some(code @ ("ThrottlingError" | "ProvisionedThroughputExceeded")) => {
                    return Err(StoreError::Unavailable(code.to_owned()).into());
                }
                Some(other) => {
                    return Err(StoreError::Internal(format!("transaction cancelled: {other}")).into());
                }
            }
        }
        if retry {
            Ok(Attempt::Retry)
        } else {
            Err(StoreError::Internal("transaction cancelled without a reason".into()).into())
        }
    }
}

fn account_from(record: AccountRecord) -> Account {
    Account {
        balance: record.balance,
        lifetime_earned: record.lifetime_earned,
        seq: record.seq,
    }
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
async fn backoff(attempt: u32) {
    let cap = 4u64.saturating_mul(1 << attempt.min(6)).min(200);
    let wait = rand::rng().random_range(1..=cap);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}
