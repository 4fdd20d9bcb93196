//! `functions/contests`: contests (积分挑战赛) for admins (create, change, cancel, list, winners)
//! and members (list, join, teams, my result), and the fulfilment records of non-points prizes.
//! Settlement is `functions/settle-contests`, on a schedule.

use serde::Deserialize;
use serde_json::json;
use shared::App;
use shared::domain::contests::{ContestSpec, Status};
use shared::domain::ids::validate_slug;
use shared::http::{self, ApiError, Request, Response};
use shared::store::{Fulfilment, FulfilmentStatus};

/// The routes this function serves (checked against template.yaml and openapi.yaml).
pub const ROUTES: &[&str] = &[
    "GET /v1/admin/contests",
    "PUT /v1/admin/contests/{contest_id}",
    "GET /v1/admin/contests/{contest_id}",
    "POST /v1/admin/contests/{contest_id}/cancel",
    "GET /v1/admin/contests/{contest_id}/results",
    "GET /v1/admin/fulfilments",
    "POST /v1/admin/fulfilments/{fulfilment_id}/shipped",
    "GET /v1/contests",
    "GET /v1/contests/{contest_id}",
    "POST /v1/contests/{contest_id}/entries",
    "POST /v1/contests/{contest_id}/teams",
    "POST /v1/contests/{contest_id}/teams/join",
    "POST /v1/contests/{contest_id}/teams/leave",
];

/// Fulfilments listed unless `limit` says otherwise (and at most).
pub const MAX_FULFILMENTS: u32 = 100;

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    let store = &app.store;
    match http::route_key(req).as_str() {
        "GET /v1/admin/contests" => {
            http::admin(req)?;
            let status = http::query_param::<String>(req, "status")?
                .map(|s| parse_enum::<Status>("status", &s))
                .transpose()?;
            http::ok(&json!({ "contests": store.admin_contests(status, now).await? }))
        }
        "PUT /v1/admin/contests/{contest_id}" => {
            http::admin(req)?;
            let id = http::path_param(req, "contest_id")?;
            let spec: ContestSpec = http::json_body(req)?;
            let (contest, created) = store.put_contest(&id, spec, now).await?;
            let status = contest.status(now);
            http::json(
                if created { 201 } else { 200 },
                &json!({ "status": status, "contest": contest }),
            )
        }
        "GET /v1/admin/contests/{contest_id}" => {
            http::admin(req)?;
            let id = contest_id(req)?;
            let contest = store
                .contest(&id)
                .await?
                .ok_or_else(|| ApiError::not_found("no such contest"))?;
            http::ok(&json!({ "status": contest.status(now), "contest": contest }))
        }
        "POST /v1/admin/contests/{contest_id}/cancel" => {
            http::admin(req)?;
            let id = contest_id(req)?;
            let contest = store.cancel_contest(&id, now).await?;
            http::ok(&json!({ "status": contest.status(now), "contest": contest }))
        }
        "GET /v1/admin/contests/{contest_id}/results" => {
            http::admin(req)?;
            let id = contest_id(req)?;
            http::ok(&store.contest_results(&id, now).await?)
        }
        "GET /v1/admin/fulfilments" => {
            http::admin(req)?;
            let source = http::query_param::<String>(req, "source")?
                .ok_or_else(|| ApiError::invalid_request("source is required (e.g. contest:<id>)"))?;
            check_source(&source)?;
            let status = http::query_param::<String>(req, "status")?
                .map(|s| parse_enum::<FulfilmentStatus>("status", &s))
                .transpose()?
                .unwrap_or(FulfilmentStatus::ToFulfil);
            let limit = match http::query_param::<u32>(req, "limit")? {
                Some(n) if (1..=MAX_FULFILMENTS).contains(&n) => n,
                Some(_) => {
                    return Err(ApiError::invalid_value(format!(
                        "limit must be 1-{MAX_FULFILMENTS}"
                    )));
                }
                None => MAX_FULFILMENTS,
            };
            let list: Vec<Fulfilment> = store.fulfilments(&source, status, limit as i32).await?;
            http::ok(&json!({ "fulfilments": list }))
        }
        "POST /v1/admin/fulfilments/{fulfilment_id}/shipped" => {
            http::admin(req)?;
            let id = http::path_param(req, "fulfilment_id")?;
            http::ok(&store.ship_fulfilment(&id, now).await?)
        }
        "GET /v1/contests" => {
            let user = http::member(req)?;
            http::ok(&json!({ "contests": store.member_contests(&user, now).await? }))
        }
        "GET /v1/contests/{contest_id}" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "contest_id")?;
            http::ok(&store.member_contest(&user, &id, now).await?)
        }
        "POST /v1/contests/{contest_id}/entries" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "contest_id")?;
            let _: Empty = http::json_body_or_default(req)?;
            http::ok(&store.join_contest(&user, &id, now).await?)
        }
        "POST /v1/contests/{contest_id}/teams" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "contest_id")?;
            let body: NewTeam = http::json_body(req)?;
            http::json(201, &store.create_team(&user, &id, &body.name, now).await?)
        }
        "POST /v1/contests/{contest_id}/teams/join" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "contest_id")?;
            let body: JoinTeam = http::json_body(req)?;
            if body.code.chars().count() > 32 {
                return Err(ApiError::invalid_value("code is at most 32 characters"));
            }
            http::ok(&store.join_team(&user, &id, &body.code, now).await?)
        }
        "POST /v1/contests/{contest_id}/teams/leave" => {
            let user = http::member(req)?;
            let id = http::path_param(req, "contest_id")?;
            let _: Empty = http::json_body_or_default(req)?;
            store.leave_team(&user, &id, now).await?;
            http::ok(&json!({ "contest_id": id, "left": true }))
        }
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinTeam {
    code: String,
}

/// A contest id from the path (404 when it cannot be one).
fn contest_id(req: &Request) -> Result<String, ApiError> {
    let id = http::path_param(req, "contest_id")?;
    validate_slug("contest_id", &id).map_err(|_| ApiError::not_found("no such contest"))?;
    Ok(id)
}

/// A fulfilment source: `<kind>:<id>` with a known kind and a valid id.
fn check_source(source: &str) -> Result<(), ApiError> {
    let valid = source
        .split_once(':')
        .is_some_and(|(kind, id)| matches!(kind, "contest" | "draw") && validate_slug("source", id).is_ok());
    match valid {
        true => Ok(()),
        false => Err(ApiError::invalid_value(
            "source must be contest:<id> or draw:<id>",
        )),
    }
}

/// A snake_case enum value from a query parameter (422 when it is not one).
fn parse_enum<T: for<'de> Deserialize<'de>>(name: &str, raw: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|_| ApiError::invalid_value(format!("{name}: unknown value {raw:?}")))
}
