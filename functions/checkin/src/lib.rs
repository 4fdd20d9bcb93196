//! `functions/checkin`: daily check-ins, make-ups (补签), the month view, and campaign admin.
//! The rules are in docs/checkin.md.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::App;
use shared::domain::DomainError;
use shared::domain::checkin::{self, CampaignConfig, DEFAULT_CAMPAIGN, MilestonePay, StreakView};
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
    let result = route(app, &req).await;
    http::respond(&req, result)
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

#[derive(Debug, Serialize)]
struct Milestone {
    days: u32,
    points: i64,
}

impl From<&MilestonePay> for Milestone {
    fn from(m: &MilestonePay) -> Self {
        Self {
            days: m.days,
            points: m.points,
        }
    }
}

#[derive(Debug, Serialize)]
struct CheckinResponse {
    campaign_id: String,
    date: chrono::NaiveDate,
    checked_in_now: bool,
    points_awarded: i64,
    milestone_bonus: Option<Milestone>,
    current_streak: u32,
    best_streak: u32,
    tomorrow_reward: i64,
    balance: i64,
}

async fn check_in(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let body: CheckinBody = http::json_body_or_default(req)?;
    let campaign = campaign_id(body.campaign_id)?;
    let out = app.store.check_in(&user, &campaign, now).await?;
    http::ok(&CheckinResponse {
        campaign_id: out.campaign_id,
        date: out.view.today,
        checked_in_now: out.checked_in_now,
        points_awarded: out.points_awarded,
        milestone_bonus: out.milestone_bonus.as_ref().map(Milestone::from),
        current_streak: out.view.current_streak,
        best_streak: out.view.best_streak,
        tomorrow_reward: out.view.next_reward,
        balance: out.balance,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MakeupBody {
    #[serde(default)]
    campaign_id: Option<String>,
    date: String,
}

#[derive(Debug, Serialize)]
struct MakeupResponse {
    campaign_id: String,
    date: chrono::NaiveDate,
    points_charged: i64,
    milestones: Vec<Milestone>,
    current_streak: u32,
    best_streak: u32,
    makeups_left_this_month: u32,
    balance: i64,
}

async fn make_up(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let body: MakeupBody = http::json_body(req)?;
    let campaign = campaign_id(body.campaign_id)?;
    let date = checkin::parse_date("date", &body.date)?;
    let out = app.store.make_up(&user, &campaign, date, now).await?;
    http::ok(&MakeupResponse {
        campaign_id: out.campaign_id,
        date: out.date,
        points_charged: out.points_charged,
        milestones: out.milestones.iter().map(Milestone::from).collect(),
        current_streak: out.view.current_streak,
        best_streak: out.view.best_streak,
        makeups_left_this_month: out.view.makeups_left_this_month,
        balance: out.balance,
    })
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
