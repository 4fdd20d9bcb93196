//! What the draws test files share: the sample draws and a spin through the store.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use shared::domain::draws::{DrawSpec, Prize, PrizeKind};
use shared::store::{IdempotentCall, SpinAnswer, Store, keys};

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub const SETUP: &str = "2026-11-23T00:00:00Z";
pub const SPIN: &str = "2026-11-24T04:00:00Z";

pub fn prize(id: &str, kind: PrizeKind, weight: u32) -> Prize {
    Prize {
        prize_id: id.into(),
        name: id.to_uppercase(),
        kind,
        value: (kind == PrizeKind::Points).then_some(5),
        weight,
        stock: None,
        per_member_max: None,
        rare: false,
        splits: None,
    }
}

/// A paid draw (20 points a spin, no free spins) whose `phone` (stock 10 over 3 items: 4, 3, 3)
/// is drawn about half the time.
pub fn rush() -> DrawSpec {
    DrawSpec {
        title: "Midnight rush".into(),
        description: String::new(),
        starts_at: at("2026-11-24T00:00:00Z"),
        ends_at: at("2026-11-30T00:00:00Z"),
        cost: 20,
        free_per_day: 0,
        daily_limit: 10,
        total_limit: None,
        prizes: vec![
            Prize {
                stock: Some(10),
                splits: Some(3),
                rare: true,
                ..prize("phone", PrizeKind::Physical, 50)
            },
            prize("points", PrizeKind::Points, 10),
            prize("thanks", PrizeKind::Nothing, 40),
        ],
        consolation: "thanks".into(),
        pity: None,
        share_bonus: 1,
    }
}

pub fn call(who: &str, key: &str) -> IdempotentCall {
    IdempotentCall {
        key: keys::idempotency(&format!("member:{who}"), key),
        request_hash: format!("spin:{key}"),
    }
}

pub async fn spin(
    store: &Store,
    who: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<SpinAnswer, shared::Error> {
    let answer = store
        .spin(&e2e::user(who), "rush", "", &call(who, key), now)
        .await?;
    Ok(serde_json::from_str(&answer).unwrap())
}

pub fn is_unavailable(err: &shared::Error) -> bool {
    matches!(err, shared::Error::Store(_))
}
