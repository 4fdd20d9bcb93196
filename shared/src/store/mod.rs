//! All DynamoDB access. The only module that formats key strings ([`keys`]).

mod boards;
mod cache;
mod checkin;
mod contests;
mod draws;
mod http1;
pub mod keys;
mod leaderboards;
pub mod ledger;
mod members;
mod points;
mod referral_rewards;
mod referrals;
mod settlement;
mod tx;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1 as dynamo;

use crate::domain::ledger::LedgerRules;

pub use boards::{BoardEntry, Scoring, Team};
pub use checkin::{CheckinDay, CheckinMonth, CheckinOutcome, MakeupOutcome};
pub use contests::{
    AdminContest, ContestCard, ContestView, Fulfilment, FulfilmentStatus, MyResult, ResultRow, Results,
    TeamView,
};
pub use draws::{
    AdminDraw, CodesUploaded, Coupon, Draw, DrawCard, DrawStatus, DrawView, MAX_CODES_PER_UPLOAD, PrizeOdds,
    Proof, Reveal, Spin, SpinAnswer, SpinPage, WonPrize,
};
pub use keys::Key;
pub use leaderboards::{BoardPage, BoardRow, ContestResult, MyStanding, Neighbour};
pub use members::{BackfillReport, Member, ProfileChange};
pub use points::{Attribution, Home, IdempotentCall};
pub use referral_rewards::{RECONCILE_AFTER_SECONDS, ReconcileReport, ReferrerStep};
pub use referrals::{
    AdminReferral, AdminReferrals, Claimed, InviteeView, MyReferrals, Referral, Referrer, StoredProgram,
};
pub use settlement::{CHECKPOINT_EVERY, ContestSettlement, SettleOutcome};
pub use tx::{
    Decision, GuardRecord, Idempotency, IdempotencyRecord, OnConflict, Plan, Respond, Snapshot, TxOutcome,
    Write,
};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Seconds a client is told to wait (`Retry-After`) when the store is unavailable or throttled.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The store failed; nothing can be said about the business rule.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, throttled or overloaded after the SDK's own retries: try later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Optimistic retries ran out: too many concurrent writers to one account.
    #[error("too much contention on one item after {0} attempts")]
    Contention(u32),
    /// Anything else: a bug or a misconfiguration. Its text is logged, never returned to callers.
    #[error("store failure: {0}")]
    Internal(String),
}

impl StoreError {
    fn internal(err: impl std::fmt::Display) -> Self {
        StoreError::Internal(err.to_string())
    }
}

/// What real DynamoDB answers a plain (non-transactional) write to an item that a transaction
/// holds at that moment. DynamoDB Local never answers it.
const TRANSACTION_CONFLICT: &str = "TransactionConflictException";

/// Plain writes retried after a [`TRANSACTION_CONFLICT`] before the request gives up (503).
const CONFLICT_RETRIES: u32 = 8;

/// Error codes DynamoDB uses for "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    // Contention, not a bug: when a write meets it after its retries, the caller may try later.
    TRANSACTION_CONFLICT,
];

/// Whether a call failed because a transaction held one of its items.
fn is_conflict<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .is_some_and(|e| e.code() == Some(TRANSACTION_CONFLICT))
}

/// Maps an SDK failure to [`StoreError`]: transport faults and throttling are `Unavailable`.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{err:?}"))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if TRANSIENT_CODES.contains(&code) {
                StoreError::Unavailable(code.to_owned())
            } else {
                StoreError::Internal(format!("{code}: {}", service.err().message().unwrap_or_default()))
            }
        }
        _ => StoreError::Internal(format!("{err:?}")),
    }
}

/// The SDK's retries and time limits: every call ends well inside a Lambda timeout.
fn sdk_limits() -> (TimeoutConfig, RetryConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(4))
        .build();
    (timeouts, RetryConfig::standard().with_max_attempts(3))
}

/// The DynamoDB client of a Lambda function: the region, the credentials and (for `sam local`)
/// `AWS_ENDPOINT_URL_DYNAMODB` from the environment, which is where Lambda puts them. Not the
/// whole default chain ([`client_from_env`]): its profile, SSO, STS web-identity and IMDS
/// providers never apply on Lambda, and leaving them out keeps their code out of every function
/// binary (docs/PERFORMANCE.md has the measured size).
pub async fn lambda_client() -> Client {
    use aws_config::environment::{
        EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
    };
    use aws_config::meta::region::ProvideRegion;
    let (timeouts, retry) = sdk_limits();
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(EnvironmentVariableRegionProvider::new().region().await)
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .http_client(http1::client())
        .timeout_config(timeouts)
        .retry_config(retry);
    if let Some(endpoint) = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// The DynamoDB client from the standard AWS chain (region, credentials, and
/// `AWS_ENDPOINT_URL_DYNAMODB` when set): for tools run by a person (profiles, SSO, roles).
pub async fn client_from_env() -> Client {
    let (timeouts, retry) = sdk_limits();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        // Also the client of the chain's own providers (STS, IMDS, ECS credentials).
        .http_client(http1::client())
        .timeout_config(timeouts)
        .retry_config(retry)
        .load()
        .await;
    Client::new(&sdk)
}

/// A client for DynamoDB Local at `endpoint`, with dummy credentials (tests and local tools).
pub fn local_client(endpoint: &str) -> Client {
    use aws_sdk_dynamodb::config::{Credentials, Region};
    let (timeouts, retry) = sdk_limits();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .http_client(http1::client())
        .timeout_config(timeouts)
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

/// The table, its client, the ledger's rules (validity, hold time, business zone) and the
/// process's configuration cache.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    table: String,
    rules: LedgerRules,
    cache: std::sync::Arc<cache::ConfigCache>,
    /// When set (per request, [`Store::until`]), no DynamoDB call, retry or backoff runs past it:
    /// the request answers 503 instead.
    deadline: Option<Instant>,
    /// Set by [`Store::scored`]: the ledger transactions of this operation move board scores.
    scoring: Option<boards::Scoring>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>, rules: LedgerRules) -> Self {
        Self::with_config_cache(client, table, rules, Duration::from_secs(30))
    }

    /// Like [`Store::new`], caching configuration items for `ttl` (zero: no cache).
    pub fn with_config_cache(
        client: Client,
        table: impl Into<String>,
        rules: LedgerRules,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            rules,
            cache: std::sync::Arc::new(cache::ConfigCache::new(ttl)),
            deadline: None,
            scoring: None,
        }
    }

    /// This store for one request: every DynamoDB call it makes — reads, lookups, retried
    /// transactions, backoffs — ends by `deadline`, after which the request fails with
    /// [`StoreError::Unavailable`] (503 with `Retry-After`).
    pub fn until(&self, deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// Awaits one DynamoDB call, bounded by the request's deadline.
    pub(crate) async fn bounded<F: Future>(&self, call: F) -> Result<F::Output, StoreError> {
        let Some(deadline) = self.deadline else {
            return Ok(call.await);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Unavailable("the request's deadline passed".into()));
        }
        tokio::time::timeout(left, call)
            .await
            .map_err(|_| StoreError::Unavailable("the request's deadline passed during a call".into()))
    }

    /// Whether the request's deadline has passed.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Full-jitter exponential backoff before retry `attempt`, never past the deadline.
    pub(crate) async fn pause(&self, attempt: u32) {
        let wait = tx::backoff_duration(attempt);
        let wait = match self.deadline {
            Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
            None => wait,
        };
        tokio::time::sleep(wait).await;
    }

    pub fn rules(&self) -> &LedgerRules {
        &self.rules
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One cheap read that opens the connection (used to warm a cold start).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.get_item(&keys::warmup(), false).await.map(|_| ())
    }

    /// A strongly consistent `Query` of one partition of the base table for sort keys between
    /// `lo` and `hi` (inclusive): a page never misses what this request's own housekeeping just
    /// wrote. (Index queries cannot be consistent; they get their own helper.)
    pub(crate) fn query_between(
        &self,
        pk: String,
        lo: String,
        hi: String,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":lo", AttributeValue::S(lo))
            .expression_attribute_values(":hi", AttributeValue::S(hi))
    }

    /// Sends a plain write, and again (with jittered backoff) while another transaction holds its
    /// item; after [`CONFLICT_RETRIES`] (or at the deadline) the conflict is returned, which
    /// [`classify`] makes a 503. Every other outcome is returned as it came.
    pub(crate) async fn retry_conflicts<T, E, R, F, Fut>(
        &self,
        mut send: F,
    ) -> Result<Result<T, SdkError<E, R>>, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata,
    {
        let mut attempt = 0;
        loop {
            match self.bounded(send()).await? {
                Err(err) if is_conflict(&err) && attempt < CONFLICT_RETRIES && !self.past_deadline() => {
                    attempt += 1;
                    self.pause(attempt).await;
                }
                other => return Ok(other),
            }
        }
    }

    /// A plain `PutItem` of `item` if the stored item's `version` is still `expected` (`None`: the
    /// item must not exist yet), again while a transaction holds it. False when another write
    /// came first (the caller reads again).
    pub(crate) async fn put_if_version(&self, item: Item, expected: Option<u64>) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match expected {
            Some(version) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        match self.retry_conflicts(|| put.clone().send()).await? {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(err)),
        }
    }

    /// Writes `actions` in one transaction. False when a condition failed or another transaction
    /// held one of the items (a lost race: the caller reads again); other failures are errors.
    pub(crate) async fn transact_or_lost(
        &self,
        actions: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let call = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send();
        match self.bounded(call).await? {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancel))
                    if cancel.cancellation_reasons().iter().all(|r| {
                        matches!(
                            r.code(),
                            None | Some("None" | "ConditionalCheckFailed" | "TransactionConflict")
                        )
                    }) =>
                {
                    Ok(false)
                }
                _ => Err(classify(err)),
            },
        }
    }

    /// A strongly consistent read of one item, deserialized.
    pub(crate) async fn read_one<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, StoreError> {
        self.get_item(key, true).await?.map(from_item).transpose()
    }

    /// A single `GetItem`.
    pub(crate) async fn get_item(&self, key: &Key, consistent: bool) -> Result<Option<Item>, StoreError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.to_item()))
            .consistent_read(consistent)
            .send();
        let out = self.bounded(call).await?.map_err(classify)?;
        Ok(out.item)
    }
}

/// Serializes `body` and adds the item's key attributes.
pub(crate) fn to_item_with_key<T: Serialize>(key: &Key, body: &T) -> Result<Item, StoreError> {
    let mut item: Item = dynamo::to_item(body).map_err(StoreError::internal)?;
    item.extend(key.to_item());
    Ok(item)
}

/// Deserializes an item without its key attributes (so types may deny unknown fields).
pub(crate) fn from_item<T: DeserializeOwned>(mut item: Item) -> Result<T, StoreError> {
    item.remove(keys::PK);
    item.remove(keys::SK);
    dynamo::from_item(item).map_err(StoreError::internal)
}
