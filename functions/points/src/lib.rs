//! `functions/points`: the calling member's balance and ledger history.
//!
//! | route                    | answer                                                        |
//! |--------------------------|---------------------------------------------------------------|
//! | `GET /v1/points`         | balance and lifetime earned                                   |
//! | `GET /v1/points/ledger`  | entries newest first; `?limit=` (1–100, default 20), `?cursor=` |

use serde::Serialize;
use shared::App;
use shared::domain::ledger::LedgerEntry;
use shared::http::{self, ApiError, Request, Response, cursor};

/// The routes this function serves, as API Gateway route keys (checked against template.yaml).
pub const ROUTES: &[&str] = &["GET /v1/points", "GET /v1/points/ledger"];

const CURSOR_KIND: &str = "ledger";

pub async fn handle(app: &App, req: Request) -> Response {
    let result = route(app, &req).await;
    http::respond(&req, result)
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    // Every route reads the clock first, so a malformed x-debug-now is refused the same way
    // everywhere (balances will apply expiry as of `now`).
    let _now = http::now(&app.config, req)?;
    match http::route_key(req).as_str() {
        "GET /v1/points" => balance(app, req).await,
        "GET /v1/points/ledger" => ledger(app, req).await,
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

#[derive(Debug, Serialize)]
struct Balance {
    balance: i64,
    lifetime_earned: i64,
}

async fn balance(app: &App, req: &Request) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let account = app.store.account(&user).await?;
    http::ok(&Balance {
        balance: account.balance,
        lifetime_earned: account.lifetime_earned,
    })
}

#[derive(Debug, Serialize)]
struct LedgerPage {
    entries: Vec<LedgerEntry>,
    next_cursor: Option<String>,
}

async fn ledger(app: &App, req: &Request) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let limit: u32 = http::query_param(req, "limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_value("limit must be between 1 and 100"));
    }
    let before = match http::query_param::<String>(req, "cursor")? {
        Some(raw) => Some(cursor::decode(CURSOR_KIND, &raw)?),
        None => None,
    };
    let page = app.store.ledger_page(&user, limit, before).await?;
    http::ok(&LedgerPage {
        entries: page.entries,
        next_cursor: page.next.map(|seq| cursor::encode(CURSOR_KIND, seq)),
    })
}
