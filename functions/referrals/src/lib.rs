//! `functions/referrals`: invite codes (每邀请1位好友注册，双方各得100积分). Members see their code
//! and invitees and claim a friend's code; admins configure the program, look up a member's
//! referrals and revoke one (fraud). The referrer's reward follows the invitee's qualifying action
//! (see `shared::store` `referral_rewards`).

use serde::Deserialize;
use serde_json::json;
use shared::App;
use shared::domain::UserId;
use shared::domain::referrals::Program;
use shared::http::{self, ApiError, Request, Response, cursor};

/// The routes this function serves (checked against template.yaml and openapi.yaml).
pub const ROUTES: &[&str] = &[
    "GET /v1/admin/referral-program",
    "PUT /v1/admin/referral-program",
    "GET /v1/referrals/me",
    "POST /v1/referrals/claim",
    "GET /v1/admin/referrals/{user_id}",
    "POST /v1/admin/referrals/{user_id}/revoke",
];

/// Invitees a page lists unless `limit` says otherwise (1-100).
pub const DEFAULT_LIMIT: u32 = 20;
const CURSOR_KIND: &str = "invitees";

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    let store = &app.store;
    match http::route_key(req).as_str() {
        "GET /v1/admin/referral-program" => {
            http::admin(req)?;
            http::ok(&store.referral_program().await?)
        }
        "PUT /v1/admin/referral-program" => {
            http::admin(req)?;
            let program: Program = http::json_body(req)?;
            http::ok(&store.put_referral_program(program, now).await?.program)
        }
        "GET /v1/referrals/me" => {
            let user = http::member(req)?;
            let (limit, before) = page(req)?;
            let mine = store.my_referrals(&user, limit, before, now).await?;
            paged(&mine, mine.next_before)
        }
        "POST /v1/referrals/claim" => {
            let user = http::member(req)?;
            let (body, value) = http::json_body_and_value::<Claim>(req)?;
            if body.code.chars().count() > 32 {
                return Err(ApiError::invalid_value("code is at most 32 characters"));
            }
            let call = http::member_call(req, &user, &value)?;
            let answer = store
                .claim_referral(&user, &body.code, call.as_ref(), now)
                .await?;
            http::raw_json(200, answer)
        }
        "GET /v1/admin/referrals/{user_id}" => {
            http::admin(req)?;
            let user = path_user(req)?;
            let (limit, before) = page(req)?;
            let view = store.admin_referrals(&user, limit, before, now).await?;
            paged(&view, view.next_before)
        }
        "POST /v1/admin/referrals/{user_id}/revoke" => {
            let admin = http::admin(req)?;
            let invitee = path_user(req)?;
            http::ok(
                &store
                    .revoke_referral(&invitee, &format!("admin:{admin}"), now)
                    .await?,
            )
        }
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

/// `limit` (1-100, default [`DEFAULT_LIMIT`]) and the `cursor` of an invitee page.
fn page(req: &Request) -> Result<(u32, Option<u64>), ApiError> {
    http::page(req, CURSOR_KIND, DEFAULT_LIMIT)
}

/// A page of invitees with its `next_cursor` (null on the last page).
fn paged(view: &impl serde::Serialize, next_before: Option<u64>) -> Result<Response, ApiError> {
    let mut body = serde_json::to_value(view).map_err(|e| ApiError::internal(format!("serialize: {e}")))?;
    body["next_cursor"] = json!(next_before.map(|ms| cursor::encode(CURSOR_KIND, ms)));
    http::ok(&body)
}

fn path_user(req: &Request) -> Result<UserId, ApiError> {
    UserId::parse(&http::path_param(req, "user_id")?)
        .map_err(|e| ApiError::invalid_request(format!("user_id in the path: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    code: String,
}
