//! `functions/points-admin`: what a shop's backend (an OAuth client-credentials token with scope
//! `campaign/points.write`) or an admin does to members' points — grants, holds at checkout,
//! captures, releases, reversals — each with a required `Idempotency-Key`; and the admins' tier
//! ladder and earn multiplier windows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::App;
use shared::domain::ids::validate_slug;
use shared::domain::ledger::{MAX_POSTING, Reason};
use shared::domain::tiers::{MultiplierWindow, TierConfig};
use shared::domain::{DomainError, UserId};
use shared::http::{self, ApiError, Request, Response};
use shared::store::{Attribution, IdempotentCall, keys};

/// The routes this function serves (checked against template.yaml).
pub const ROUTES: &[&str] = &[
    "POST /v1/admin/points/grants",
    "POST /v1/admin/points/holds",
    "POST /v1/admin/points/holds/{hold_id}/capture",
    "POST /v1/admin/points/holds/{hold_id}/release",
    "POST /v1/admin/points/reversals",
    "GET /v1/admin/tiers",
    "PUT /v1/admin/tiers",
    "GET /v1/admin/multipliers",
    "PUT /v1/admin/multipliers/{multiplier_id}",
    "DELETE /v1/admin/multipliers/{multiplier_id}",
];

/// Largest order accepted, in cents (10 billion yuan).
const MAX_ORDER_CENTS: i64 = 1_000_000_000_000;

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    let result = route(&app, &req).await;
    http::respond(&req, result)
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    match http::route_key(req).as_str() {
        "POST /v1/admin/points/grants" => grant(app, req, now).await,
        "POST /v1/admin/points/holds" => hold(app, req, now).await,
        "POST /v1/admin/points/holds/{hold_id}/capture" => settle(app, req, now, true).await,
        "POST /v1/admin/points/holds/{hold_id}/release" => settle(app, req, now, false).await,
        "POST /v1/admin/points/reversals" => reverse(app, req, now).await,
        "GET /v1/admin/tiers" => get_tiers(app, req).await,
        "PUT /v1/admin/tiers" => put_tiers(app, req, now).await,
        "GET /v1/admin/multipliers" => get_multipliers(app, req).await,
        "PUT /v1/admin/multipliers/{multiplier_id}" => put_multiplier(app, req, now).await,
        "DELETE /v1/admin/multipliers/{multiplier_id}" => delete_multiplier(app, req, now).await,
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

/// The caller (admin or service), its idempotency key and the call's digest, and the body.
struct Write<T> {
    caller: String,
    key: String,
    call: IdempotentCall,
    body: T,
}

fn write_call<T: serde::de::DeserializeOwned>(req: &Request) -> Result<Write<T>, ApiError> {
    let caller = http::points_writer(req)?;
    let key = http::idempotency_key(req)?;
    let (body, value) = http::json_body_and_value::<T>(req)?;
    let call = IdempotentCall {
        key: keys::idempotency(&caller, &key),
        request_hash: http::request_digest(req, &value),
    };
    Ok(Write {
        caller,
        key,
        call,
        body,
    })
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(DomainError::invalid(field, format!("must be 1-{max} characters")).into());
    }
    Ok(())
}

fn points(field: &'static str, value: i64) -> Result<i64, ApiError> {
    if (1..=MAX_POSTING).contains(&value) {
        Ok(value)
    } else {
        Err(DomainError::invalid(field, format!("must be between 1 and {MAX_POSTING}")).into())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    user_id: String,
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    order_amount_cents: Option<i64>,
    reason: String,
    #[serde(rename = "ref")]
    reference: String,
}

async fn grant(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let w: Write<GrantBody> = write_call(req)?;
    let user = UserId::parse(&w.body.user_id)?;
    text("reason", &w.body.reason, 200)?;
    text("ref", &w.body.reference, 128)?;
    let (base, reason) = match (w.body.amount, w.body.order_amount_cents) {
        (Some(amount), None) => (points("amount", amount)?, Reason::Grant),
        (None, Some(cents)) => {
            if !(1..=MAX_ORDER_CENTS).contains(&cents) {
                return Err(DomainError::invalid("order_amount_cents", "must be between 1 and 10^12").into());
            }
            // cents × (rate in basis points of a point per yuan) / (100 cents × 10000), rounded down.
            let points = i128::from(cents) * i128::from(app.config.purchase_rate_bps) / 1_000_000;
            (
                i64::try_from(points).map_err(|_| DomainError::Overflow)?,
                Reason::Purchase,
            )
        }
        _ => {
            return Err(
                DomainError::invalid("amount", "give exactly one of amount and order_amount_cents").into(),
            );
        }
    };
    let who = Attribution {
        by: w.caller.clone(),
        note: Some(w.body.reason.clone()),
    };
    let answer = app
        .store
        .grant(
            &w.caller,
            &w.key,
            &user,
            base,
            reason,
            &w.body.reference,
            &who,
            &w.call,
            now,
        )
        .await?;
    http::raw_json(200, answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    user_id: String,
    amount: i64,
    #[serde(rename = "ref")]
    reference: String,
}

async fn hold(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let w: Write<HoldBody> = write_call(req)?;
    let user = UserId::parse(&w.body.user_id)?;
    let amount = points("amount", w.body.amount)?;
    text("ref", &w.body.reference, 128)?;
    let who = Attribution {
        by: w.caller.clone(),
        note: None,
    };
    http::raw_json(
        200,
        app.store
            .hold(&user, amount, &w.body.reference, &who, &w.call, now)
            .await?,
    )
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn settle(app: &App, req: &Request, now: DateTime<Utc>, capture: bool) -> Result<Response, ApiError> {
    let caller = http::points_writer(req)?;
    let key = http::idempotency_key(req)?;
    let _: Empty = http::json_body_or_default(req)?;
    let hold_id = http::path_param(req, "hold_id")?;
    if hold_id.len() != 26 || !hold_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(DomainError::NotFound("hold").into());
    }
    let call = IdempotentCall {
        key: keys::idempotency(&caller, &key),
        request_hash: http::request_digest(req, &serde_json::Value::Null),
    };
    let who = Attribution {
        by: caller,
        note: None,
    };
    http::raw_json(
        200,
        app.store.settle_hold(&hold_id, capture, &who, &call, now).await?,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReversalBody {
    grant_idempotency_key: String,
    /// Whose grant: `service:<client id>` or `admin:<sub>` (default: the caller's own). Only an
    /// admin may name another caller (support refunding a shop's grant).
    #[serde(default)]
    grant_caller: Option<String>,
    #[serde(default)]
    amount: Option<i64>,
    reason: String,
}

async fn reverse(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let w: Write<ReversalBody> = write_call(req)?;
    let amount = w.body.amount.map(|a| points("amount", a)).transpose()?;
    text("reason", &w.body.reason, 200)?;
    let grant_key = &w.body.grant_idempotency_key;
    if grant_key.is_empty() || grant_key.len() > 128 || grant_key.contains('#') {
        return Err(DomainError::NotFound("grant").into());
    }
    let owner = w.body.grant_caller.clone().unwrap_or_else(|| w.caller.clone());
    if owner != w.caller && !w.caller.starts_with("admin:") {
        return Err(ApiError::forbidden(
            "only an admin may reverse a grant made by another caller",
        ));
    }
    if owner.is_empty() || owner.len() > 160 || !owner.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(DomainError::NotFound("grant").into());
    }
    let who = Attribution {
        by: w.caller.clone(),
        note: Some(w.body.reason.clone()),
    };
    let answer = app
        .store
        .reverse(&w.caller, &w.key, &owner, grant_key, amount, &who, &w.call, now)
        .await?;
    http::raw_json(200, answer)
}

#[derive(Debug, Serialize)]
struct TiersResponse {
    #[serde(flatten)]
    config: TierConfig,
    seats: std::collections::BTreeMap<String, u64>,
}

async fn get_tiers(app: &App, req: &Request) -> Result<Response, ApiError> {
    http::admin(req)?;
    let state = app.store.tier_state().await?;
    http::ok(&TiersResponse {
        config: state.config(),
        seats: state.seats,
    })
}

async fn put_tiers(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    http::admin(req)?;
    let config: TierConfig = http::json_body(req)?;
    let state = app.store.put_tiers(config, now).await?;
    http::ok(&TiersResponse {
        config: state.config(),
        seats: state.seats,
    })
}

async fn get_multipliers(app: &App, req: &Request) -> Result<Response, ApiError> {
    http::admin(req)?;
    let all = app.store.multipliers().await?;
    http::ok(&json!({ "multipliers": all.windows }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiplierBody {
    start: String,
    end: String,
    factor_bps: u32,
    #[serde(default)]
    reasons: Option<Vec<Reason>>,
}

fn instant(field: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| DomainError::invalid(field, "must be an RFC 3339 instant").into())
}

async fn put_multiplier(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    http::admin(req)?;
    let id = http::path_param(req, "multiplier_id")?;
    validate_slug("multiplier_id", &id)?;
    let body: MultiplierBody = http::json_body(req)?;
    let window = MultiplierWindow {
        start: instant("start", &body.start)?,
        end: instant("end", &body.end)?,
        factor_bps: body.factor_bps,
        reasons: body
            .reasons
            .unwrap_or_else(|| shared::domain::tiers::MULTIPLIABLE.to_vec()),
    };
    app.store.put_multiplier(&id, window.clone(), now).await?;
    http::ok(&json!({ "multiplier_id": id, "window": window }))
}

async fn delete_multiplier(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    http::admin(req)?;
    let id = http::path_param(req, "multiplier_id")?;
    validate_slug("multiplier_id", &id).map_err(|_| ApiError::from(DomainError::NotFound("multiplier")))?;
    app.store.delete_multiplier(&id, now).await?;
    http::ok(&json!({ "multiplier_id": id, "deleted": true }))
}
