//! `functions/leaderboards`: every `/v1/leaderboards/...` route. A board is one path segment:
//! `all-time`, `weekly` (the current week), `weekly:2026-W47`, `monthly`, `monthly:2026-11`,
//! `contest:{id}` and `contest:{id}:teams`. Listings show public identities only
//! (`shared::domain::members::public_name`); ranks are shared by equal scores, listings order
//! equal scores by who reached them first.

use shared::App;
use shared::domain::boards::{self, Board};
use shared::http::{self, ApiError, Request, Response};

/// The routes this function serves (checked against template.yaml and openapi.yaml).
pub const ROUTES: &[&str] = &["GET /v1/leaderboards/{board}", "GET /v1/leaderboards/{board}/me"];

/// Entries a listing returns unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 20;

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    match http::route_key(req).as_str() {
        "GET /v1/leaderboards/{board}" => {
            http::caller(req)?;
            let board = board(app, req, now)?;
            let limit = range(req, "limit", 1..=boards::MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
            http::ok(&app.store.leaderboard(&board, limit).await?)
        }
        "GET /v1/leaderboards/{board}/me" => {
            let user = http::member(req)?;
            let board = board(app, req, now)?;
            let neighbours = range(req, "neighbours", 0..=boards::MAX_NEIGHBOURS)?.unwrap_or(0);
            http::ok(&app.store.my_standing(&board, &user, neighbours).await?)
        }
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

fn board(app: &App, req: &Request, now: chrono::DateTime<chrono::Utc>) -> Result<Board, ApiError> {
    let segment = http::path_param(req, "board")?;
    Ok(Board::parse(&segment, now, app.config.business_zone)?)
}

/// A whole-number query parameter within `range` (422 outside it, 400 when not a number).
fn range(req: &Request, name: &str, range: std::ops::RangeInclusive<u32>) -> Result<Option<u32>, ApiError> {
    match http::query_param::<u32>(req, name)? {
        Some(n) if !range.contains(&n) => Err(ApiError::invalid_value(format!(
            "{name} must be {}-{}",
            range.start(),
            range.end()
        ))),
        other => Ok(other),
    }
}
