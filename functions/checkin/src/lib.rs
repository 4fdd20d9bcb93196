//! `functions/checkin`: daily check-ins, make-ups (补签), the month view, and campaign admin.
//! The rules are in docs/checkin.md.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::App;
use shared::domain::DomainError;
use shared::domain::checkin::{self, CampaignConfig, DEFAULT_CAMPAIGN, StreakView};
use shared::domain::ids::validate_slug;
use shared::http::{self, ApiError, Request, Response};

/// The routes this function serves (checked against template.yaml).
pub const ROUTES: &[&str] = &[
    "POST /v1/checkins",
    "POST /v1/checkins/makeup",
    "GET /v1/checkins",
    "PUT /v1/admin/checkin-campaigns/{campaign_id}",
    "GET /v1/admin/checkin-campaigns/{campaign_id}",
];

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    match http::route_key(req).as_str() {
        "POST /v1/checkins" => check_in(app, req, now).await,
        "POST /v1/checkins/makeup" => make_up(app, req, now).await,
        "GET /v1/checkins" => month(app, req, now).await,
        "PUT /v1/admin/checkin-campaigns/{campaign_id}" => put_campaign(app, req).await,
        "GET /v1/admin/checkin-campaigns/{campaign_id}" => get_campaign(app, req).await,
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

fn campaign_id(raw: Option<String>) -> Result<String, ApiError> {
    let id = raw.unwrap_or_else(|| DEFAULT_CAMPAIGN.to_owned());
    validate_slug("campaign_id", &id)?;
    Ok(id)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckinBody {
    #[serde(default)]
    campaign_id: Option<String>,
}

async fn check_in(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let (body, value): (CheckinBody, _) = http::json_body_or_default_and_value(req)?;
    let campaign = campaign_id(body.campaign_id)?;
    let call = http::member_call(req, &user, &value)?;
    let answer = app.store.check_in(&user, &campaign, call.as_ref(), now).await?;
    http::raw_json(200, answer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MakeupBody {
    #[serde(default)]
    campaign_id: Option<String>,
    date: String,
}

async fn make_up(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let (body, value): (MakeupBody, _) = http::json_body_and_value(req)?;
    let campaign = campaign_id(body.campaign_id)?;
    let date = checkin::parse_date("date", &body.date)?;
    let call = http::member_call(req, &user, &value)?;
    let answer = app
        .store
        .make_up(&user, &campaign, date, call.as_ref(), now)
        .await?;
    http::raw_json(200, answer)
}

#[derive(Debug, Serialize)]
struct Today {
    date: chrono::NaiveDate,
    checked_in: bool,
    /// What checking in pays now (if not yet), else what tomorrow pays.
    next_reward: i64,
}

#[derive(Debug, Serialize)]
struct Day {
    date: chrono::NaiveDate,
    made_up: bool,
}

#[derive(Debug, Serialize)]
struct MonthResponse {
    campaign_id: String,
    month: String,
    days: Vec<Day>,
    current_streak: u32,
    best_streak: u32,
    makeups_left_this_month: u32,
    today: Today,
}

async fn month(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let campaign = campaign_id(http::query_param(req, "campaign_id")?)?;
    let month = match http::query_param::<String>(req, "month")? {
        Some(raw) => Some(checkin::parse_month("month", &raw)?),
        None => None,
    };
    let out = app.store.checkin_month(&user, &campaign, month, now).await?;
    let StreakView {
        today,
        checked_in_today,
        current_streak,
        best_streak,
        makeups_left_this_month,
        next_reward,
    } = out.view;
    http::ok(&MonthResponse {
        campaign_id: out.campaign_id,
        month: out.month.format("%Y-%m").to_string(),
        days: out
            .days
            .into_iter()
            .map(|d| Day {
                date: d.date,
                made_up: d.made_up,
            })
            .collect(),
        current_streak,
        best_streak,
        makeups_left_this_month,
        today: Today {
            date: today,
            checked_in: checked_in_today,
            next_reward,
        },
    })
}

#[derive(Debug, Serialize)]
struct CampaignResponse {
    campaign_id: String,
    #[serde(flatten)]
    config: CampaignConfig,
}

async fn put_campaign(app: &App, req: &Request) -> Result<Response, ApiError> {
    http::admin(req)?;
    let id = http::path_param(req, "campaign_id")?;
    validate_slug("campaign_id", &id)?;
    let config: CampaignConfig = http::json_body(req)?;
    app.store.put_campaign(&id, &config).await?;
    http::ok(&CampaignResponse {
        campaign_id: id,
        config,
    })
}

async fn get_campaign(app: &App, req: &Request) -> Result<Response, ApiError> {
    http::admin(req)?;
    let id = http::path_param(req, "campaign_id")?;
    validate_slug("campaign_id", &id).map_err(|_| ApiError::from(DomainError::NotFound("campaign")))?;
    let config = app.store.campaign_config(&id).await?;
    http::ok(&CampaignResponse {
        campaign_id: id,
        config,
    })
}
