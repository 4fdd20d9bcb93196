//! `functions/draws`: lucky draws (积分抽奖, 分享抽奖). Admins configure draws and upload coupon
//! codes; a shop's backend looks coupons up and redeems them; members see the odds, spin (free,
//! bonus or paid with points, once per `Idempotency-Key`), share for bonus spins, list their
//! spins with proofs, and after the end read the seed to verify every outcome.

use serde::Deserialize;
use serde_json::json;
use shared::App;
use shared::domain::draws::DrawSpec;
use shared::http::{self, ApiError, Request, Response, cursor};
use shared::store::DrawStatus;

/// The routes this function serves (checked against template.yaml and openapi.yaml).
pub const ROUTES: &[&str] = &[
    "PUT /v1/admin/draws/{draw_id}",
    "GET /v1/admin/draws",
    "POST /v1/admin/draws/{draw_id}/prizes/{prize_id}/codes",
    "GET /v1/admin/coupons/{code}",
    "POST /v1/admin/coupons/{code}/redeem",
    "GET /v1/draws",
    "GET /v1/draws/{draw_id}",
    "POST /v1/draws/{draw_id}/spins",
    "GET /v1/draws/{draw_id}/spins",
    "POST /v1/draws/{draw_id}/shares",
    "GET /v1/draws/{draw_id}/reveal",
];

/// The scope a shop backend's token needs to look up and redeem coupons.
pub const COUPONS_SCOPE: &str = "campaign/coupons";

/// Spins a page lists unless `limit` says otherwise (1-100).
pub const DEFAULT_LIMIT: u32 = 20;
const CURSOR_KIND: &str = "spins";

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    let store = &app.store;
    match http::route_key(req).as_str() {
        "PUT /v1/admin/draws/{draw_id}" => {
            http::admin(req)?;
            let id = http::path_param(req, "draw_id")?;
            let spec: DrawSpec = http::json_body(req)?;
            let (draw, created) = store.put_draw(&id, spec, now).await?;
            http::json(if created { 201 } else { 200 }, &draw)
        }
        "GET /v1/admin/draws" => {
            http::admin(req)?;
            let status = http::query_param::<String>(req, "status")?
                .map(|raw| {
                    serde_json::from_value::<DrawStatus>(json!(raw))
                        .map_err(|_| ApiError::invalid_value(format!("status: unknown value {raw:?}")))
                })
                .transpose()?;
            http::ok(&json!({ "draws": store.admin_draws(status, now).await? }))
        }
        "POST /v1/admin/draws/{draw_id}/prizes/{prize_id}/codes" => {
            http::admin(req)?;
            let id = http::path_param(req, "draw_id")?;
            let prize = http::path_param(req, "prize_id")?;
            let body: Codes = http::json_body(req)?;
            http::ok(&store.upload_codes(&id, &prize, body.codes).await?)
        }
        "GET /v1/admin/coupons/{code}" => {
            http::writer(req, COUPONS_SCOPE)?;
            http::ok(&store.coupon(&http::path_param(req, "code")?).await?)
        }
        "POST /v1/admin/coupons/{code}/redeem" => {
            let by = http::writer(req, COUPONS_SCOPE)?;
            let code = http::path_param(req, "code")?;
            http::ok(&store.redeem_coupon(&code, &by, now).await?)
        }
        "GET /v1/draws" => {
            let user = http::member(req)?;
            http::ok(&json!({ "draws": store.open_draws(&user, now).await? }))
        }
        "GET /v1/draws/{draw_id}" => {
            let user = http::member(req)?;
            http::ok(
                &store
                    .draw_view(&user, &http::path_param(req, "draw_id")?, now)
                    .await?,
            )
        }
        "POST /v1/draws/{draw_id}/spins" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "draw_id")?;
            let (body, value) = http::json_body_or_default_and_value::<SpinRequest>(req)?;
            // The key is required here: a spin is never paid or charged twice.
            let call = http::member_call(req, &user, &value)?
                .ok_or_else(|| ApiError::invalid_request("the Idempotency-Key header is required"))?;
            let answer = store
                .spin(&user, &id, body.client_seed.as_deref().unwrap_or(""), &call, now)
                .await?;
            http::raw_json(200, answer)
        }
        "GET /v1/draws/{draw_id}/spins" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "draw_id")?;
            let (limit, before) = http::page(req, CURSOR_KIND, DEFAULT_LIMIT)?;
            let page = store.my_spins(&user, &id, limit, before).await?;
            http::ok(&json!({
                "spins": page.spins,
                "next_cursor": page.next_before.map(|n| cursor::encode(CURSOR_KIND, n)),
            }))
        }
        "POST /v1/draws/{draw_id}/shares" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "draw_id")?;
            http::ok(&store.share_draw(&user, &id, now).await?)
        }
        "GET /v1/draws/{draw_id}/reveal" => {
            http::caller(req)?;
            http::ok(&store.reveal(&http::path_param(req, "draw_id")?, now).await?)
        }
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinRequest {
    #[serde(default)]
    client_seed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Codes {
    codes: Vec<String>,
}
