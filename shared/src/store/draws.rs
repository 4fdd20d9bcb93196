//! Lucky draws in the one table (docs/data-model.md, "Draws"): the draw's configuration and
//! secret seed (`DRAW#<id>/CONFIG`), its prizes' stock split over items in their own partitions
//! (`DRAW#<id>#STOCK#<prize>#<split>/STOCK`), coupon codes numbered at upload, and per member
//! their state in the draw and one record per spin.
//!
//! A spin is one ledger transaction: the cost and prize postings with their guards, the member's
//! draw state (version-checked), the spin record, the idempotency record, and for a stocked
//! prize the stock item (conditioned on what was read), its coupon or its fulfilment. A winner
//! takes stock from the item their id hashes to first; an empty item sends them to the next one,
//! and a prize is out of stock only once this spin found every item of it empty.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use rand::TryRng;
use serde::{Deserialize, Serialize};

use super::contests::{Fulfilment, FulfilmentStatus};
use super::points::{CONFIG_ATTEMPTS, IdempotentCall, replay, to_json};
use super::tx::{put_if_absent, put_versioned};
use super::{
    Decision, IdempotencyRecord, Item, Key, OnConflict, Plan, Store, StoreError, TxOutcome, Write, classify,
    from_item, keys, to_item_with_key,
};
use crate::domain::draws::{self, DrawIndex, DrawSpec, MemberDraw, Payment, Prize, PrizeKind, Why};
use crate::domain::ledger::{Posting, Reason};
use crate::domain::{DomainError, UserId, ids};
use crate::metrics::{self, Metric};

/// Lead a changed end must keep on `now`, beyond the configuration cache: by the new end every
/// warm function has read it, so no spin is taken after the seed is revealed.
const END_CHANGE_LEAD_SECONDS: i64 = 30;

/// Rounds of "read a stock item or a code this spin needs, decide again" before giving up (a
/// prize has at most 8 items; a coupon winner racing others for an item reads ahead its codes);
/// the request's deadline usually comes first.
const MAX_SPIN_ROUNDS: u32 = 64;

/// Code numbers of a stock item read ahead when a winner needs one.
const CODES_AHEAD: u64 = 8;

/// Codes written per transaction at upload (a coupon and a numbered code each, plus the pool
/// and one stock item: 92 actions).
const CODES_PER_TRANSACTION: usize = 45;

/// Most codes one upload carries.
pub const MAX_CODES_PER_UPLOAD: usize = 500;

/// A draw as stored: the admin's spec, the secret server seed and its commitment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draw {
    pub id: String,
    pub spec: DrawSpec,
    /// The server seed, 32 bytes in hex: secret until the end.
    seed: String,
    /// SHA-256 of the seed's bytes (published from creation).
    pub commitment: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// Where a draw is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawStatus {
    Upcoming,
    Open,
    Ended,
}

impl Draw {
    pub fn status(&self, now: DateTime<Utc>) -> DrawStatus {
        if now < self.spec.starts_at {
            DrawStatus::Upcoming
        } else if now < self.spec.ends_at {
            DrawStatus::Open
        } else {
            DrawStatus::Ended
        }
    }

    fn seed_bytes(&self) -> Result<[u8; 32], StoreError> {
        from_hex(&self.seed).ok_or_else(|| StoreError::Internal(format!("draw {} has a bad seed", self.id)))
    }

    fn item(&self) -> Result<Item, StoreError> {
        let mut item = to_item_with_key(&keys::draw(&self.id), self)?;
        item.insert("gsi1pk".into(), AttributeValue::S(keys::DRAWS_ALL.to_owned()));
        item.insert(
            "gsi1sk".into(),
            AttributeValue::S(format!("{}#{}", keys::instant(self.spec.ends_at), self.id)),
        );
        Ok(item)
    }
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A new server seed from the operating system's randomness.
fn new_seed() -> Result<[u8; 32], StoreError> {
    let mut seed = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| StoreError::Internal(format!("no OS randomness: {e}")))?;
    Ok(seed)
}

/// One stock item of a prize: units allocated to it and taken from it; a coupon prize's item
/// also holds which code numbers its units hand out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stock {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    taken: u64,
    /// Code number ranges `(first, count)`, for a coupon prize.
    #[serde(default)]
    ranges: Vec<(u64, u64)>,
    /// When its last unit was taken (cleared when stock is added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emptied_at: Option<DateTime<Utc>>,
}

/// A coupon pool's numbering state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pool {
    /// Codes numbered so far (numbers 1..=count).
    #[serde(default)]
    count: u64,
    /// Upload transactions so far (which stock item the next one fills).
    #[serde(default)]
    batches: u64,
    #[serde(default)]
    version: u64,
}

/// A numbered code of a pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NumberedCode {
    code: String,
}

/// A coupon code: unique across all draws; who won it and whether it was redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    pub code: String,
    pub draw_id: String,
    pub prize_id: String,
    pub number: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub won_at: Option<DateTime<Utc>>,
    /// The winner's spin number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spin: Option<u64>,
    #[serde(default)]
    pub redeemed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_by: Option<String>,
    /// The redeeming call's own id: how a call whose answer was lost knows the write is its own.
    #[serde(default, skip_serializing)]
    redeem_call: Option<String>,
}

/// A prize as a spin record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WonPrize {
    pub prize_id: String,
    pub name: String,
    pub kind: PrizeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

/// What a verifier needs beside the revealed seed and the draw's published odds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub algorithm: String,
    pub client_seed: String,
    /// The prize the `draw` number landed on.
    pub drawn: String,
    pub why: Why,
    /// The member's spins since their last rare prize, before this spin.
    pub since_rare: u32,
    /// Prizes the member had won before this spin (the per-member maxima).
    pub won: BTreeMap<String, u32>,
    /// Prizes this spin found out of stock (every stock item empty).
    pub out_of_stock: Vec<String>,
}

/// A member's spin, as stored and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spin {
    pub draw_id: String,
    /// The member's spin number in this draw (1, 2, …).
    pub spin: u64,
    pub at: DateTime<Utc>,
    pub payment: Payment,
    /// Points the spin cost (0 for a free one).
    pub cost: i64,
    pub prize: WonPrize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulfilment_id: Option<String>,
    pub proof: Proof,
}

/// The answer to a spin (stored with its idempotency record).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpinAnswer {
    pub spin: Spin,
    pub spins_left_today: u32,
    pub free_spins_left_today: u32,
    pub balance: i64,
}

/// An admin's view of a draw (never the seed).
#[derive(Debug, Clone, Serialize)]
pub struct AdminDraw {
    pub draw_id: String,
    pub status: DrawStatus,
    #[serde(flatten)]
    pub spec: DrawSpec,
    pub commitment: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl AdminDraw {
    fn of(draw: &Draw, now: DateTime<Utc>) -> Self {
        AdminDraw {
            draw_id: draw.id.clone(),
            status: draw.status(now),
            spec: draw.spec.clone(),
            commitment: draw.commitment.clone(),
            created_at: draw.created_at,
            updated_at: draw.updated_at,
            version: draw.version,
        }
    }
}

/// A prize as members see it: its odds and whether it is in stock.
#[derive(Debug, Clone, Serialize)]
pub struct PrizeOdds {
    pub prize_id: String,
    pub name: String,
    pub kind: PrizeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    pub weight: u32,
    /// `weight / total_weight`, as a decimal with 6 places (no floats anywhere).
    pub probability: String,
    pub rare: bool,
    pub in_stock: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_member_max: Option<u32>,
}

/// A draw as a member sees it (`GET /v1/draws/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct DrawView {
    pub draw_id: String,
    pub title: String,
    pub description: String,
    pub status: DrawStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub cost: i64,
    pub free_per_day: u32,
    pub daily_limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_limit: Option<u32>,
    pub share_bonus: u32,
    pub total_weight: u64,
    pub prizes: Vec<PrizeOdds>,
    pub consolation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pity: Option<draws::Pity>,
    pub algorithm: &'static str,
    pub commitment: String,
    #[serde(flatten)]
    pub allowance: draws::Allowance,
    pub spins: u64,
}

/// An open draw with my spins left (`GET /v1/draws`, the home screen).
#[derive(Debug, Clone, Serialize)]
pub struct DrawCard {
    pub draw_id: String,
    pub title: String,
    pub ends_at: DateTime<Utc>,
    pub cost: i64,
    #[serde(flatten)]
    pub allowance: draws::Allowance,
}

/// The seed and the stock-outs, after the end.
#[derive(Debug, Clone, Serialize)]
pub struct Reveal {
    pub draw_id: String,
    pub algorithm: &'static str,
    pub commitment: String,
    pub server_seed: String,
    /// When each prize that ran out lost its last unit.
    pub ran_out: BTreeMap<String, DateTime<Utc>>,
}

/// What a codes upload did.
#[derive(Debug, Clone, Serialize)]
pub struct CodesUploaded {
    pub prize_id: String,
    /// Codes numbered by this call.
    pub added: usize,
    /// Codes this prize had already (a repeated upload).
    pub already: usize,
    /// Codes the prize has in all.
    pub total: u64,
}

/// A page of my spins, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct SpinPage {
    pub spins: Vec<Spin>,
    /// The spin number the next page starts below.
    #[serde(skip)]
    pub next_before: Option<u64>,
}

/// A stock item's update: take the unit read (`taken`), with the `total` read.
fn take_unit(table: &str, key: &Key, stock: &Stock, now: DateTime<Utc>) -> Result<Write, StoreError> {
    let last = stock.taken + 1 == stock.total;
    let expression = match last {
        true => "SET taken = :next, emptied_at = :now",
        false => "SET taken = :next",
    };
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key.to_item()))
        .update_expression(expression)
        .condition_expression("taken = :taken AND #total = :total")
        .expression_attribute_names("#total", "total")
        .expression_attribute_values(":next", AttributeValue::N((stock.taken + 1).to_string()))
        .expression_attribute_values(":taken", AttributeValue::N(stock.taken.to_string()))
        .expression_attribute_values(":total", AttributeValue::N(stock.total.to_string()));
    if last {
        update = update.expression_attribute_values(":now", AttributeValue::S(keys::instant(now)));
    }
    Ok(Write {
        action: TransactWriteItem::builder()
            .update(update.build().map_err(StoreError::internal)?)
            .build(),
        // Another winner took it first (or stock was added): read it again and decide again.
        on_conflict: OnConflict::Retry,
    })
}

/// Adds `count` units (and, for coupons, the code range) to a stock item; clears its stock-out.
fn add_units(
    table: &str,
    key: &Key,
    count: u64,
    range: Option<(u64, u64)>,
) -> Result<TransactWriteItem, StoreError> {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key.to_item()))
        .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()));
    let clear = if count > 0 { " REMOVE emptied_at" } else { "" };
    update = match range {
        Some((first, n)) => update
            .update_expression(format!(
                "SET #total = if_not_exists(#total, :zero) + :n, taken = if_not_exists(taken, :zero), \
                 ranges = list_append(if_not_exists(ranges, :empty), :range){clear}"
            ))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(
                ":range",
                AttributeValue::L(vec![AttributeValue::L(vec![
                    AttributeValue::N(first.to_string()),
                    AttributeValue::N(n.to_string()),
                ])]),
            ),
        None => update.update_expression(format!(
            "SET #total = if_not_exists(#total, :zero) + :n, taken = if_not_exists(taken, :zero){clear}"
        )),
    };
    let update = update
        .expression_attribute_names("#total", "total")
        .build()
        .map_err(StoreError::internal)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// The writes that give a draw its stock. Before the start a prize's items are put afresh with
/// its stock spread as evenly as it goes; once started, only added units are (`ADD`, so spins
/// taking units meanwhile are never overwritten). A coupon prize's items are made empty when the
/// prize is new: its uploads fill them.
fn stock_writes(
    table: &str,
    id: &str,
    spec: &DrawSpec,
    old: Option<&DrawSpec>,
    now: DateTime<Utc>,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let started = old.is_some_and(|o| now >= o.starts_at);
    let mut writes = vec![];
    for prize in spec.prizes.iter().filter(|p| p.stocked()) {
        let was = old.and_then(|o| o.prize(&prize.prize_id));
        let k = prize.split_count();
        if prize.kind == PrizeKind::Coupon {
            let known = was.is_some_and(|w| w.kind == PrizeKind::Coupon && w.split_count() == k);
            if !known {
                for split in 0..k {
                    writes.push(add_units(
                        table,
                        &keys::draw_stock(id, &prize.prize_id, split),
                        0,
                        None,
                    )?);
                }
            }
            continue;
        }
        let stock = prize.stock.unwrap_or(0);
        if !started {
            if was.is_some_and(|w| w.stock == prize.stock && w.split_count() == k) {
                continue;
            }
            for (split, units) in (0..k).zip(draws::split_shares(stock, k)) {
                let item = to_item_with_key(
                    &keys::draw_stock(id, &prize.prize_id, split),
                    &Stock {
                        total: units,
                        ..Stock::default()
                    },
                )?;
                let put = aws_sdk_dynamodb::types::Put::builder()
                    .table_name(table)
                    .set_item(Some(item))
                    .build()
                    .map_err(StoreError::internal)?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }
            continue;
        }
        let added = stock.saturating_sub(was.and_then(|w| w.stock).unwrap_or(0));
        for (split, units) in (0..k).zip(draws::split_shares(added, k)) {
            if units > 0 {
                writes.push(add_units(
                    table,
                    &keys::draw_stock(id, &prize.prize_id, split),
                    units,
                    None,
                )?);
            }
        }
    }
    Ok(writes)
}

/// `weight / total` with 6 decimal places, rounded down.
fn probability(weight: u32, total: u64) -> String {
    let millionths = u128::from(weight) * 1_000_000 / u128::from(total.max(1));
    format!("{}.{:06}", millionths / 1_000_000, millionths % 1_000_000)
}

impl Store {
    /// A draw, strongly consistent.
    pub async fn draw(&self, id: &str) -> Result<Option<Draw>, StoreError> {
        self.read_one(&keys::draw(id)).await
    }

    /// A draw by the id in a path (404 when unknown).
    async fn known_draw(&self, id: &str, cached: bool) -> Result<Draw, crate::Error> {
        ids::validate_slug("draw_id", id).map_err(|_| DomainError::NotFound("draw"))?;
        let draw = match cached {
            true => self.config_item::<Draw>(&keys::draw(id)).await?,
            false => self.draw(id).await?,
        };
        Ok(draw.ok_or(DomainError::NotFound("draw"))?)
    }

    /// Creates or changes a draw (see `draws::validate`), with the draws index and the stock
    /// items in one transaction. A new draw gets its secret seed from OS randomness. A repeat of
    /// the same spec changes nothing. Returns the draw and whether it was created.
    pub async fn put_draw(
        &self,
        id: &str,
        spec: DrawSpec,
        now: DateTime<Utc>,
    ) -> Result<(AdminDraw, bool), crate::Error> {
        ids::validate_slug("draw_id", id)?;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let index_key = keys::draws_index();
            let (existing, index) = tokio::try_join!(self.draw(id), self.read_one::<DrawIndex>(&index_key))?;
            draws::validate(&spec, existing.as_ref().map(|d| &d.spec), now)?;
            if let Some(old) = &existing {
                if old.spec == spec {
                    return Ok((AdminDraw::of(old, now), false));
                }
                if now >= old.spec.ends_at {
                    return Err(
                        DomainError::invalid("ends_at", "the draw has ended; it cannot change").into(),
                    );
                }
                let lead = i64::from(self.config_cache_seconds()) + END_CHANGE_LEAD_SECONDS;
                if spec.ends_at != old.spec.ends_at && spec.ends_at < now + chrono::Duration::seconds(lead) {
                    return Err(DomainError::invalid(
                        "ends_at",
                        format!("a changed end must lie at least {lead} s ahead"),
                    )
                    .into());
                }
            }
            let index = index.unwrap_or_default();
            let next_index = index.with(id, &spec, now)?;
            let draw = match &existing {
                Some(old) => Draw {
                    spec: spec.clone(),
                    updated_at: now,
                    version: old.version + 1,
                    ..old.clone()
                },
                None => {
                    let seed = new_seed()?;
                    Draw {
                        id: id.to_owned(),
                        spec: spec.clone(),
                        seed: draws::hex(&seed),
                        commitment: draws::commitment(&seed),
                        created_at: now,
                        updated_at: now,
                        version: 1,
                    }
                }
            };
            let mut actions = vec![
                put_versioned(&self.table, draw.item()?, existing.as_ref().map(|d| d.version))?,
                put_versioned(
                    &self.table,
                    to_item_with_key(&index_key, &next_index)?,
                    (index.version > 0).then_some(index.version),
                )?,
            ];
            actions.extend(stock_writes(
                &self.table,
                id,
                &spec,
                existing.as_ref().map(|d| &d.spec),
                now,
            )?);
            if self.transact_or_lost(actions).await? {
                self.cache.forget(&index_key);
                self.cache.forget(&keys::draw(id));
                return Ok((AdminDraw::of(&draw, now), existing.is_none()));
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// Every draw (at most 100, by end), filtered by status.
    pub async fn admin_draws(
        &self,
        status: Option<DrawStatus>,
        now: DateTime<Utc>,
    ) -> Result<Vec<AdminDraw>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(keys::DRAWS_ALL.to_owned()))
            .limit(100);
        let out = self.bounded(query.send()).await?.map_err(classify)?;
        let mut list = vec![];
        for item in out.items.unwrap_or_default() {
            let draw: Draw = from_item(item)?;
            let view = AdminDraw::of(&draw, now);
            if status.is_none_or(|s| s == view.status) {
                list.push(view);
            }
        }
        Ok(list)
    }

    /// The stock items of every stocked prize of a draw, by prize (consistent).
    async fn stock_of(&self, draw: &Draw) -> Result<HashMap<String, Vec<Stock>>, crate::Error> {
        let mut wanted = vec![];
        for prize in draw.spec.prizes.iter().filter(|p| p.stocked()) {
            for split in 0..prize.split_count() {
                wanted.push(keys::draw_stock(&draw.id, &prize.prize_id, split));
            }
        }
        let found = self.read_items(wanted).await?;
        let mut by_prize: HashMap<String, Vec<Stock>> = HashMap::new();
        for prize in draw.spec.prizes.iter().filter(|p| p.stocked()) {
            let mut items = vec![];
            for split in 0..prize.split_count() {
                let key = keys::draw_stock(&draw.id, &prize.prize_id, split);
                items.push(
                    found
                        .get(&key)
                        .cloned()
                        .map(from_item)
                        .transpose()?
                        .unwrap_or_default(),
                );
            }
            by_prize.insert(prize.prize_id.clone(), items);
        }
        Ok(by_prize)
    }

    /// A member's state in a draw and the extra daily spins of their tier, in one batch read.
    async fn member_state(
        &self,
        user: &UserId,
        ids: &[&str],
        now: DateTime<Utc>,
    ) -> Result<(HashMap<String, MemberDraw>, u32), crate::Error> {
        let keys_wanted: Vec<Key> = ids.iter().map(|id| keys::member_draw(user, id)).collect();
        let snapshot = self.read_snapshot(user, &keys_wanted, now).await?;
        let tiers: crate::domain::tiers::TierState = snapshot.get(&keys::tiers())?.unwrap_or_default();
        let extra = tiers
            .config()
            .tier(snapshot.account.tier.as_deref())
            .extra_daily_spins;
        let mut states = HashMap::new();
        for id in ids {
            let state: MemberDraw = snapshot.get(&keys::member_draw(user, id))?.unwrap_or_default();
            states.insert((*id).to_owned(), state);
        }
        Ok((states, extra))
    }

    /// A draw as a member sees it: the odds, what is in stock, the commitment, my spins left.
    pub async fn draw_view(
        &self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<DrawView, crate::Error> {
        let draw = self.known_draw(id, true).await?;
        let ids = [id];
        let (stock, (states, extra)) =
            tokio::try_join!(self.stock_of(&draw), self.member_state(user, &ids, now))?;
        let state = states.get(id).cloned().unwrap_or_default();
        let spec = &draw.spec;
        let total = spec.total_weight();
        let prizes = spec
            .prizes
            .iter()
            .map(|p| PrizeOdds {
                prize_id: p.prize_id.clone(),
                name: p.name.clone(),
                kind: p.kind,
                value: p.value,
                weight: p.weight,
                probability: probability(p.weight, total),
                rare: p.rare,
                in_stock: !p.stocked()
                    || stock
                        .get(&p.prize_id)
                        .is_some_and(|s| s.iter().any(|i| i.taken < i.total)),
                per_member_max: p.per_member_max,
            })
            .collect();
        let mut allowance = state.allowance(spec, self.rules.today(now), extra);
        if !draws::is_open(spec, now) {
            allowance = draws::Allowance {
                spins_left_today: 0,
                free_spins_left_today: 0,
            };
        }
        Ok(DrawView {
            draw_id: draw.id.clone(),
            title: spec.title.clone(),
            description: spec.description.clone(),
            status: draw.status(now),
            starts_at: spec.starts_at,
            ends_at: spec.ends_at,
            cost: spec.cost,
            free_per_day: spec.free_per_day,
            daily_limit: spec.daily_limit,
            total_limit: spec.total_limit,
            share_bonus: spec.share_bonus,
            total_weight: total,
            prizes,
            consolation: spec.consolation.clone(),
            pity: spec.pity,
            algorithm: draws::ALGORITHM,
            commitment: draw.commitment.clone(),
            allowance,
            spins: state.spins,
        })
    }

    /// The open draws (from the cached index) with my spins left, in one batch read.
    pub async fn open_draws(&self, user: &UserId, now: DateTime<Utc>) -> Result<Vec<DrawCard>, crate::Error> {
        let index: DrawIndex = self.config_item(&keys::draws_index()).await?.unwrap_or_default();
        let open = index.open(now);
        let ids: Vec<&str> = open.iter().map(|l| l.id.as_str()).collect();
        let (states, extra) = self.member_state(user, &ids, now).await?;
        Ok(draw_cards(&open, &states, extra, self.rules.today(now)))
    }

    /// The home screen's draw cards: the member's state items for the open draws the home read
    /// listed (`found`: read 2 of the home screen).
    pub fn home_draw_cards(
        &self,
        user: &UserId,
        index: &DrawIndex,
        found: &HashMap<Key, Item>,
        extra: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<DrawCard>, crate::Error> {
        let open = index.open(now);
        let mut states = HashMap::new();
        for listed in &open {
            let state: MemberDraw = found
                .get(&keys::member_draw(user, &listed.id))
                .cloned()
                .map(from_item)
                .transpose()?
                .unwrap_or_default();
            states.insert(listed.id.clone(), state);
        }
        Ok(draw_cards(&open, &states, extra, self.rules.today(now)))
    }

    /// Adds the draw's share bonus to the member's spins today (once a day).
    pub async fn share_draw(
        &self,
        user: &UserId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<draws::Allowance, crate::Error> {
        let draw = self.known_draw(id, true).await?;
        if !draws::is_open(&draw.spec, now) {
            return Err(DomainError::DrawNotOpen.into());
        }
        let today = self.rules.today(now);
        // What this call last tried to write: found stored on a re-read, it is this call's own
        // write whose answer was lost (the SDK's retry then failed its condition).
        let mut attempted: Option<MemberDraw> = None;
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let (states, extra) = self.member_state(user, &[id], now).await?;
            let state = states.get(id).cloned().unwrap_or_default();
            if attempted.as_ref() == Some(&state) {
                return Ok(state.allowance(&draw.spec, today, extra));
            }
            let next = state.share(&draw.spec, today)?;
            let item = to_item_with_key(&keys::member_draw(user, id), &next)?;
            if self
                .put_if_version(item, (state.version > 0).then_some(state.version))
                .await?
            {
                metrics::count(Metric::ShareBonuses, 1);
                return Ok(next.allowance(&draw.spec, today, extra));
            }
            attempted = Some(next);
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// A spin (see the module docs): the stored answer, the same for every replay of the call.
    pub async fn spin(
        &self,
        user: &UserId,
        id: &str,
        client_seed: &str,
        call: &IdempotentCall,
        now: DateTime<Utc>,
    ) -> Result<String, crate::Error> {
        draws::validate_client_seed(client_seed)?;
        let draw = self.known_draw(id, true).await?;
        let seed = draw.seed_bytes()?;
        let spec = &draw.spec;
        let today = self.rules.today(now);
        // Stock items this request found empty, and the items and codes it must read.
        let mut empty: HashSet<(String, u32)> = HashSet::new();
        let mut wanted: Vec<Key> = vec![keys::draw(id), keys::member_draw(user, id), call.key.clone()];
        for prize in spec.prizes.iter().filter(|p| p.stocked()) {
            let first = draws::split_order(user.as_str(), prize.split_count())[0];
            wanted.push(keys::draw_stock(id, &prize.prize_id, first));
        }
        for _ in 0..MAX_SPIN_ROUNDS {
            let mut need: Vec<Key> = vec![];
            let mut won: Option<PrizeKind> = None;
            let outcome = self
                .ledger_transaction(user, &wanted, now, |snap| {
                    need.clear();
                    if let Some(record) = snap.get::<IdempotencyRecord>(&call.key)? {
                        return Ok(Decision::Nothing(Some(record)));
                    }
                    if !draws::is_open(spec, now) {
                        return Err(DomainError::DrawNotOpen.into());
                    }
                    let tiers: crate::domain::tiers::TierState =
                        snap.get(&keys::tiers())?.unwrap_or_default();
                    let extra = tiers
                        .config()
                        .tier(snap.account.tier.as_deref())
                        .extra_daily_spins;
                    let state: MemberDraw = snap.get(&keys::member_draw(user, id))?.unwrap_or_default();
                    let (payment, mut next) = state.spin(spec, today, extra)?;
                    let number = next.spins;
                    let message = draws::message(id, user.as_str(), number, client_seed);
                    // Decide; a stocked prize's item (or a coupon's code) not read yet is asked for.
                    loop {
                        let known_out = |p: &Prize| {
                            p.stocked()
                                && draws::split_order(user.as_str(), p.split_count())
                                    .iter()
                                    .all(|s| empty.contains(&(p.prize_id.clone(), *s)))
                        };
                        let result = draws::outcome(spec, &seed, &message, &state.odds, |p| !known_out(p));
                        let prize = spec
                            .prize(&result.prize)
                            .ok_or_else(|| StoreError::Internal("an outcome outside the prizes".into()))?;
                        let mut writes = vec![];
                        let mut code = None;
                        if prize.stocked() {
                            let Some(split) = draws::split_order(user.as_str(), prize.split_count())
                                .into_iter()
                                .find(|s| !empty.contains(&(prize.prize_id.clone(), *s)))
                            else {
                                return Err(
                                    StoreError::Internal("a stocked prize with no item left".into()).into()
                                );
                            };
                            let key = keys::draw_stock(id, &prize.prize_id, split);
                            let stock: Stock = match snap.get(&key)? {
                                Some(stock) => stock,
                                // Read and absent: an item never made holds nothing.
                                None if wanted.contains(&key) => Stock::default(),
                                None => {
                                    need.push(key);
                                    return Ok(Decision::Nothing(None));
                                }
                            };
                            if stock.taken >= stock.total {
                                empty.insert((prize.prize_id.clone(), split));
                                continue;
                            }
                            if prize.kind == PrizeKind::Coupon {
                                let number =
                                    draws::code_number(&stock.ranges, stock.taken).ok_or_else(|| {
                                        StoreError::Internal("a coupon unit without a code".into())
                                    })?;
                                let slot = keys::numbered_code(id, &prize.prize_id, number);
                                let Some(numbered) = snap.get::<NumberedCode>(&slot)? else {
                                    if wanted.contains(&slot) {
                                        return Err(
                                            StoreError::Internal(format!("code {number} missing")).into()
                                        );
                                    }
                                    // This code and the next ones of the item: winners racing
                                    // for the item find theirs in the next read.
                                    need.extend(
                                        (stock.taken..stock.total.min(stock.taken + CODES_AHEAD))
                                            .filter_map(|unit| draws::code_number(&stock.ranges, unit))
                                            .map(|n| keys::numbered_code(id, &prize.prize_id, n)),
                                    );
                                    return Ok(Decision::Nothing(None));
                                };
                                code = Some(numbered.code);
                            }
                            writes.push(take_unit(&self.table, &key, &stock, now)?);
                        }
                        next.odds = state.odds.after(spec, &prize.prize_id);
                        let mut out_of_stock: Vec<String> = spec
                            .prizes
                            .iter()
                            .filter(|p| known_out(p))
                            .map(|p| p.prize_id.clone())
                            .collect();
                        out_of_stock.sort();
                        let fulfilment_id = (prize.kind == PrizeKind::Physical)
                            .then(|| ulid::Ulid::from_datetime(now.into()).to_string());
                        let record = Spin {
                            draw_id: id.to_owned(),
                            spin: number,
                            at: now,
                            payment,
                            cost: if payment == Payment::Paid { spec.cost } else { 0 },
                            prize: WonPrize {
                                prize_id: prize.prize_id.clone(),
                                name: prize.name.clone(),
                                kind: prize.kind,
                                value: prize.value,
                            },
                            code: code.clone(),
                            fulfilment_id: fulfilment_id.clone(),
                            proof: Proof {
                                algorithm: draws::ALGORITHM.to_owned(),
                                client_seed: client_seed.to_owned(),
                                drawn: result.drawn.clone(),
                                why: result.why,
                                since_rare: state.odds.since_rare,
                                won: state.odds.won.clone(),
                                out_of_stock,
                            },
                        };
                        let mut postings = vec![];
                        if record.cost > 0 {
                            postings.push(Posting::new(
                                -record.cost,
                                Reason::DrawSpin,
                                format!("draw {id} spin {number}"),
                                keys::business::spin(id, user, number),
                            ));
                        }
                        if let (PrizeKind::Points, Some(value)) = (prize.kind, prize.value) {
                            postings.push(Posting::new(
                                value,
                                Reason::DrawPrize,
                                format!("draw {id} spin {number}: {}", prize.name),
                                keys::business::spin_prize(id, user, number),
                            ));
                        }
                        let state_key = keys::member_draw(user, id);
                        writes.push(Write {
                            action: put_versioned(
                                &self.table,
                                to_item_with_key(&state_key, &next)?,
                                (state.version > 0).then_some(state.version),
                            )?,
                            on_conflict: OnConflict::Retry,
                        });
                        writes.push(Write {
                            action: put_if_absent(
                                &self.table,
                                to_item_with_key(&keys::spin(user, id, number), &record)?,
                            )?,
                            on_conflict: OnConflict::Retry,
                        });
                        if let Some(code) = &code {
                            writes.push(win_coupon(&self.table, code, user, number, now)?);
                        }
                        if let Some(fid) = &fulfilment_id {
                            let fulfilment = Fulfilment {
                                fulfilment_id: fid.clone(),
                                source: format!("draw:{id}"),
                                user_id: user.to_string(),
                                item: prize.name.clone(),
                                detail: format!("spin {number}"),
                                status: FulfilmentStatus::ToFulfil,
                                created_at: now,
                                shipped_at: None,
                            };
                            writes.push(Write {
                                action: put_if_absent(&self.table, fulfilment.item()?)?,
                                on_conflict: OnConflict::Retry,
                            });
                        }
                        let allowance = next.allowance(spec, today, extra);
                        won = Some(prize.kind);
                        let respond: super::Respond = Box::new(move |_, account| {
                            to_json(SpinAnswer {
                                spin: record,
                                spins_left_today: allowance.spins_left_today,
                                free_spins_left_today: allowance.free_spins_left_today,
                                balance: account.balance,
                            })
                        });
                        return Ok(Decision::Write(Plan::idempotent(
                            postings, writes, call, respond, None,
                        )));
                    }
                })
                .await?;
            match outcome {
                TxOutcome::Committed {
                    response: Some(response),
                    ..
                } => {
                    metrics::count(Metric::Spins, 1);
                    if let Some(kind) = won {
                        metrics::count_by(Metric::Prizes, &metrics::label(&kind), 1);
                    }
                    return Ok(response);
                }
                TxOutcome::Nothing(Some(record)) | TxOutcome::IdempotentReplay(record) => {
                    return replay(record, call);
                }
                // Another call took this spin number first: read again for the next number.
                TxOutcome::Replayed(_) => self.pause(1).await,
                TxOutcome::Nothing(None) => {
                    // The batch stays far below 100 keys: codes read before are dropped first.
                    if wanted.len() + need.len() > 60 {
                        wanted.retain(|k| !k.sk.starts_with("CODE#"));
                    }
                    for key in need.drain(..) {
                        if !wanted.contains(&key) {
                            wanted.push(key);
                        }
                    }
                }
                TxOutcome::Committed { response: None, .. } => {
                    return Err(StoreError::Internal("a spin stored no answer".into()).into());
                }
            }
        }
        Err(StoreError::Contention(MAX_SPIN_ROUNDS).into())
    }

    /// A page of my spins of a draw, newest first (`before`: the spin number to start below).
    pub async fn my_spins(
        &self,
        user: &UserId,
        id: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<SpinPage, crate::Error> {
        ids::validate_slug("draw_id", id).map_err(|_| DomainError::NotFound("draw"))?;
        let hi = match before {
            Some(0 | 1) => {
                return Ok(SpinPage {
                    spins: vec![],
                    next_before: None,
                });
            }
            Some(n) => keys::spin(user, id, n - 1).sk,
            None => keys::spin(user, id, 9_999_999_999).sk,
        };
        let lo = keys::spin(user, id, 1).sk;
        let query = self
            .query_between(keys::user_pk(user), lo, hi)
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(100));
        let out = self.bounded(query.send()).await?.map_err(classify)?;
        let spins: Vec<Spin> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        let next_before = match (spins.last(), out.last_evaluated_key.is_some()) {
            (Some(last), true) if last.spin > 1 => Some(last.spin),
            _ => None,
        };
        Ok(SpinPage { spins, next_before })
    }

    /// After the end: the server seed and when each prize ran out (409 before the end).
    pub async fn reveal(&self, id: &str, now: DateTime<Utc>) -> Result<Reveal, crate::Error> {
        let draw = self.known_draw(id, false).await?;
        if now < draw.spec.ends_at {
            return Err(DomainError::DrawNotEnded.into());
        }
        let stock = self.stock_of(&draw).await?;
        let mut ran_out = BTreeMap::new();
        for (prize, items) in stock {
            let all_out = !items.is_empty() && items.iter().all(|i| i.taken >= i.total);
            let last = items.iter().filter_map(|i| i.emptied_at).max();
            if let (true, Some(at)) = (all_out, last) {
                ran_out.insert(prize, at);
            }
        }
        Ok(Reveal {
            draw_id: draw.id.clone(),
            algorithm: draws::ALGORITHM,
            commitment: draw.commitment.clone(),
            server_seed: draw.seed.clone(),
            ran_out,
        })
    }

    /// Uploads coupon codes for a coupon prize: each numbered once (a repeat is safe), unique
    /// across all draws (409 `coupon-code-taken` when another draw or prize has one).
    pub async fn upload_codes(
        &self,
        id: &str,
        prize_id: &str,
        codes: Vec<String>,
    ) -> Result<CodesUploaded, crate::Error> {
        let draw = self.known_draw(id, false).await?;
        let prize = draw
            .spec
            .prize(prize_id)
            .ok_or(DomainError::NotFound("prize"))?
            .clone();
        if prize.kind != PrizeKind::Coupon {
            return Err(DomainError::invalid("prize_id", "codes are for a coupon prize").into());
        }
        if codes.is_empty() || codes.len() > MAX_CODES_PER_UPLOAD {
            return Err(
                DomainError::invalid("codes", format!("1-{MAX_CODES_PER_UPLOAD} codes a call")).into(),
            );
        }
        let mut unique: Vec<String> = vec![];
        for code in codes {
            draws::validate_code(&code)?;
            if !unique.contains(&code) {
                unique.push(code);
            }
        }
        let mut already = 0;
        let mut fresh: Vec<String> = vec![];
        let found = self
            .read_items(unique.iter().map(|c| keys::coupon(c)).collect())
            .await?;
        for code in unique {
            match found
                .get(&keys::coupon(&code))
                .cloned()
                .map(from_item::<Coupon>)
                .transpose()?
            {
                Some(c) if c.draw_id == id && c.prize_id == prize_id => already += 1,
                Some(_) => return Err(DomainError::CouponCodeTaken(code).into()),
                None => fresh.push(code),
            }
        }
        let mut added = 0;
        for chunk in fresh.chunks(CODES_PER_TRANSACTION) {
            added += self.number_codes(&draw.id, &prize, chunk).await?;
        }
        let pool: Pool = self
            .read_one(&keys::code_pool(id, prize_id))
            .await?
            .unwrap_or_default();
        Ok(CodesUploaded {
            prize_id: prize_id.to_owned(),
            added,
            already: already + (fresh.len() - added),
            total: pool.count,
        })
    }

    /// Numbers one chunk of new codes in one transaction (the pool's version-checked count, a
    /// coupon and a numbered code each, the stock item the batch fills); codes another call
    /// numbered meanwhile are skipped. Returns how many this call numbered.
    async fn number_codes(&self, id: &str, prize: &Prize, chunk: &[String]) -> Result<usize, crate::Error> {
        let pool_key = keys::code_pool(id, &prize.prize_id);
        for attempt in 0..CONFIG_ATTEMPTS {
            if attempt > 0 {
                self.pause(attempt).await;
            }
            let mut wanted: Vec<Key> = chunk.iter().map(|c| keys::coupon(c)).collect();
            wanted.push(pool_key.clone());
            let found = self.batch_get(wanted).await?;
            let pool: Pool = found
                .get(&pool_key)
                .cloned()
                .map(from_item)
                .transpose()?
                .unwrap_or_default();
            let mut new = vec![];
            for code in chunk {
                match found
                    .get(&keys::coupon(code))
                    .cloned()
                    .map(from_item::<Coupon>)
                    .transpose()?
                {
                    Some(c) if c.draw_id == id && c.prize_id == prize.prize_id => {}
                    Some(_) => return Err(DomainError::CouponCodeTaken(code.clone()).into()),
                    None => new.push(code.clone()),
                }
            }
            if new.is_empty() {
                return Ok(0);
            }
            let first = pool.count + 1;
            let split = u32::try_from(pool.batches % u64::from(prize.split_count())).unwrap_or(0);
            let next = Pool {
                count: pool.count + new.len() as u64,
                batches: pool.batches + 1,
                version: pool.version + 1,
            };
            let mut actions = vec![put_versioned(
                &self.table,
                to_item_with_key(&pool_key, &next)?,
                (pool.version > 0).then_some(pool.version),
            )?];
            for (i, code) in new.iter().enumerate() {
                let number = first + i as u64;
                let coupon = Coupon {
                    code: code.clone(),
                    draw_id: id.to_owned(),
                    prize_id: prize.prize_id.clone(),
                    number,
                    winner: None,
                    won_at: None,
                    spin: None,
                    redeemed: false,
                    redeemed_at: None,
                    redeemed_by: None,
                    redeem_call: None,
                };
                actions.push(put_if_absent(
                    &self.table,
                    to_item_with_key(&keys::coupon(code), &coupon)?,
                )?);
                actions.push(put_if_absent(
                    &self.table,
                    to_item_with_key(
                        &keys::numbered_code(id, &prize.prize_id, number),
                        &NumberedCode { code: code.clone() },
                    )?,
                )?);
            }
            actions.push(add_units(
                &self.table,
                &keys::draw_stock(id, &prize.prize_id, split),
                new.len() as u64,
                Some((first, new.len() as u64)),
            )?);
            if self.transact_or_lost(actions).await? {
                return Ok(new.len());
            }
        }
        Err(StoreError::Contention(CONFIG_ATTEMPTS).into())
    }

    /// A coupon by code (404 when unknown).
    pub async fn coupon(&self, code: &str) -> Result<Coupon, crate::Error> {
        draws::validate_code(code).map_err(|_| DomainError::NotFound("coupon"))?;
        Ok(self
            .read_one(&keys::coupon(code))
            .await?
            .ok_or(DomainError::NotFound("coupon"))?)
    }

    /// Redeems a won coupon once (409 `coupon-redeemed` the second time, `coupon-not-won` when
    /// nobody won it, 404 when unknown): one conditional `UpdateItem`, read again only when it is
    /// refused.
    pub async fn redeem_coupon(
        &self,
        code: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Coupon, crate::Error> {
        draws::validate_code(code).map_err(|_| DomainError::NotFound("coupon"))?;
        let call = ulid::Ulid::from_datetime(std::time::SystemTime::now()).to_string();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::coupon(code).to_item()))
            .update_expression(
                "SET redeemed = :t, redeemed_at = :now, redeemed_by = :by, redeem_call = :call",
            )
            .condition_expression("attribute_exists(winner) AND redeemed = :f")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":now", AttributeValue::S(keys::instant(now)))
            .expression_attribute_values(":by", AttributeValue::S(by.to_owned()))
            .expression_attribute_values(":call", AttributeValue::S(call.clone()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        match self.retry_conflicts(|| update.clone().send()).await? {
            Ok(out) => Ok(from_item(out.attributes.unwrap_or_default())?),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let stored = self.coupon(code).await?;
                let ours = stored.redeem_call.as_deref() == Some(call.as_str());
                match (&stored.winner, ours) {
                    // This request's own write, its answer lost and the SDK's retry refused.
                    (Some(_), true) => Ok(stored),
                    (None, _) => Err(DomainError::CouponNotWon.into()),
                    (Some(_), false) => Err(DomainError::CouponRedeemed.into()),
                }
            }
            Err(err) => Err(classify(err).into()),
        }
    }
}

/// The coupon's winner, set once (the stock item's unit made this code this spin's alone).
fn win_coupon(
    table: &str,
    code: &str,
    user: &UserId,
    spin: u64,
    now: DateTime<Utc>,
) -> Result<Write, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(keys::coupon(code).to_item()))
        .update_expression("SET winner = :u, won_at = :now, spin = :n")
        .condition_expression("attribute_exists(pk) AND attribute_not_exists(winner)")
        .expression_attribute_values(":u", AttributeValue::S(user.to_string()))
        .expression_attribute_values(":now", AttributeValue::S(keys::instant(now)))
        .expression_attribute_values(":n", AttributeValue::N(spin.to_string()))
        .build()
        .map_err(StoreError::internal)?;
    Ok(Write {
        action: TransactWriteItem::builder().update(update).build(),
        on_conflict: OnConflict::Retry,
    })
}

fn draw_cards(
    open: &[&draws::Listed],
    states: &HashMap<String, MemberDraw>,
    extra: u32,
    today: chrono::NaiveDate,
) -> Vec<DrawCard> {
    open.iter()
        .map(|listed| {
            let state = states.get(&listed.id).cloned().unwrap_or_default();
            DrawCard {
                draw_id: listed.id.clone(),
                title: listed.title.clone(),
                ends_at: listed.ends_at,
                cost: listed.cost,
                allowance: state.allowance(&listed.limits(), today, extra),
            }
        })
        .collect()
}
