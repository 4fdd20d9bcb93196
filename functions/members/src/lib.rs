//! `functions/members`: who a member is to others. The member's own profile (display name,
//! leaderboard opt-out), the names admins reserve, an admin's reset of an offensive name, and the
//! registration date a shop's backend knows (service scope `campaign/members.write`).
//!
//! How a member appears to others is decided once, by `shared::domain::members::public_name`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::App;
use shared::domain::UserId;
use shared::domain::members::ReservedNames;
use shared::http::{self, ApiError, Request, Response};
use shared::store::{Member, ProfileChange};

/// The routes this function serves (checked against template.yaml and openapi.yaml).
pub const ROUTES: &[&str] = &[
    "GET /v1/me/profile",
    "PUT /v1/me/profile",
    "GET /v1/admin/reserved-names",
    "PUT /v1/admin/reserved-names",
    "POST /v1/admin/members/{user_id}/display-name/reset",
    "POST /v1/admin/members/{user_id}/registered",
];

/// The scope a shop's backend needs to set registration dates.
pub const MEMBERS_WRITE_SCOPE: &str = "campaign/members.write";

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    match http::route_key(req).as_str() {
        "GET /v1/me/profile" => {
            let user = http::member(req)?;
            http::ok(&MemberProfile::of(&app.store.member(&user, now).await?))
        }
        "PUT /v1/me/profile" => put_profile(app, req, now).await,
        "GET /v1/admin/reserved-names" => {
            http::admin(req)?;
            http::ok(&Reserved::of(app.store.reserved_names().await?))
        }
        "PUT /v1/admin/reserved-names" => put_reserved(app, req, now).await,
        "POST /v1/admin/members/{user_id}/display-name/reset" => {
            http::admin(req)?;
            let user = path_user(req)?;
            http::ok(&AdminProfile::of(
                &app.store.reset_display_name(&user, now).await?,
            ))
        }
        "POST /v1/admin/members/{user_id}/registered" => set_registered(app, req, now).await,
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

/// A member's profile as the member sees it.
#[derive(Debug, Serialize)]
struct MemberProfile {
    display_name: Option<String>,
    leaderboard_visible: bool,
    /// What other members see: the name, a masked id, or "anonymous".
    public_name: String,
    registered_at: Option<DateTime<Utc>>,
}

impl MemberProfile {
    fn of(member: &Member) -> Self {
        Self {
            display_name: member.profile.display_name.clone(),
            leaderboard_visible: member.profile.leaderboard_visible,
            public_name: member.public_name(),
            registered_at: member.registered_at(),
        }
    }
}

/// The same, with the member's id (admins may see it).
#[derive(Debug, Serialize)]
struct AdminProfile {
    user_id: String,
    #[serde(flatten)]
    profile: MemberProfile,
}

impl AdminProfile {
    fn of(member: &Member) -> Self {
        Self {
            user_id: member.user.to_string(),
            profile: MemberProfile::of(member),
        }
    }
}

/// `PUT /v1/me/profile`: absent fields stay as they are; `"display_name": null` clears the name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    #[serde(default, deserialize_with = "present")]
    display_name: Option<Option<String>>,
    /// `null` is refused (400): only a name can be cleared.
    #[serde(default, deserialize_with = "not_null")]
    leaderboard_visible: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A field that may be left out but not sent as `null`.
fn not_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(d).map(Some)
}

async fn put_profile(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let body: ProfileBody = http::json_body(req)?;
    let change = ProfileChange {
        display_name: body.display_name,
        leaderboard_visible: body.leaderboard_visible,
    };
    http::ok(&MemberProfile::of(
        &app.store.change_profile(&user, &change, now).await?,
    ))
}

#[derive(Debug, Serialize)]
struct Reserved {
    names: Vec<String>,
    version: u64,
    updated_at: Option<DateTime<Utc>>,
}

impl Reserved {
    fn of(stored: ReservedNames) -> Self {
        Self {
            names: stored.names.into_iter().collect(),
            version: stored.version,
            updated_at: stored.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservedBody {
    names: Vec<String>,
}

async fn put_reserved(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    http::admin(req)?;
    let body: ReservedBody = http::json_body(req)?;
    let names = ReservedNames::from_list(&body.names)?;
    http::ok(&Reserved::of(app.store.put_reserved_names(names, now).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisteredBody {
    registered_at: DateTime<Utc>,
}

async fn set_registered(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    http::writer(req, MEMBERS_WRITE_SCOPE)?;
    let user = path_user(req)?;
    let body: RegisteredBody = http::json_body(req)?;
    if body.registered_at > now {
        return Err(ApiError::invalid_value("registered_at must not be in the future"));
    }
    let member = app.store.set_registered(&user, body.registered_at, now).await?;
    http::ok(&AdminProfile::of(&member))
}

fn path_user(req: &Request) -> Result<UserId, ApiError> {
    UserId::parse(&http::path_param(req, "user_id")?)
        .map_err(|e| ApiError::invalid_request(format!("user_id in the path: {e}")))
}
