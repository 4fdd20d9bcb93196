//! `functions/points`: the calling member's balance and ledger history.
//!
//! | route                    | answer                                                        |
//! |--------------------------|---------------------------------------------------------------|
//! | `GET /v1/points`         | balance, held, lifetime earned, next expiry, expiring by month |
//! | `GET /v1/me`             | the home screen: points, tier, today's check-in, profile, …   |
//! | `GET /v1/points/ledger`  | entries newest first; `?limit=` (1–100, default 20), `?cursor=`; an admin is `admin` |

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::Serialize;
use shared::App;
use shared::domain::checkin::{DEFAULT_CAMPAIGN, StreakView};
use shared::domain::ledger::{Account, LedgerEntry, LedgerRules};
use shared::http::{self, ApiError, Request, Response, cursor};
use shared::store::ContestCard;

/// The routes this function serves, as API Gateway route keys (checked against template.yaml).
pub const ROUTES: &[&str] = &["GET /v1/points", "GET /v1/points/ledger", "GET /v1/me"];

const CURSOR_KIND: &str = "ledger";

pub async fn handle(app: &App, req: Request) -> Response {
    let app = app.for_request(&req);
    http::serve(&app, &req, Box::pin(route(&app, &req))).await
}

async fn route(app: &App, req: &Request) -> Result<Response, ApiError> {
    let now = http::now(&app.config, req)?;
    match http::route_key(req).as_str() {
        "GET /v1/points" => balance(app, req, now).await,
        "GET /v1/points/ledger" => ledger(app, req, now).await,
        "GET /v1/me" => me(app, req, now).await,
        other => Err(ApiError::not_found(format!("no route {other}"))),
    }
}

#[derive(Debug, Serialize)]
struct Expiry {
    date: NaiveDate,
    points: i64,
}

#[derive(Debug, Serialize)]
struct MonthExpiry {
    month: String,
    points: i64,
}

#[derive(Debug, Serialize)]
struct Balance {
    /// Spendable points (negative while a reversal's debt is unpaid).
    balance: i64,
    /// Points reserved by open holds (not in the balance).
    held: i64,
    lifetime_earned: i64,
    /// The soonest expiry: the last day those points are valid, and how many.
    next_expiry: Option<Expiry>,
    /// Points expiring in this calendar month and the next two (business zone).
    expiring_by_month: Vec<MonthExpiry>,
}

async fn balance(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let account = app.store.account(&user, now).await?;
    http::ok(&balance_view(&account, app.store.rules(), now))
}

fn balance_view(account: &Account, rules: &LedgerRules, now: DateTime<Utc>) -> Balance {
    let today = rules.today(now);
    let expiring_by_month = (0..3)
        .filter_map(|i| today.with_day(1)?.checked_add_months(Months::new(i)))
        .map(|first| MonthExpiry {
            month: first.format("%Y-%m").to_string(),
            points: account
                .buckets
                .iter()
                .filter(|(d, _)| d.year() == first.year() && d.month() == first.month())
                .map(|(_, p)| p)
                .sum(),
        })
        .collect();
    Balance {
        balance: account.balance,
        held: account.holds.values().map(|h| h.amount).sum(),
        lifetime_earned: account.lifetime_earned,
        next_expiry: account
            .buckets
            .iter()
            .next()
            .map(|(d, p)| Expiry { date: *d, points: *p }),
        expiring_by_month,
    }
}

#[derive(Debug, Serialize)]
struct LedgerPage {
    entries: Vec<LedgerEntry>,
    next_cursor: Option<String>,
}

async fn ledger(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let limit: u32 = http::query_param(req, "limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_value("limit must be between 1 and 100"));
    }
    let before = match http::query_param::<String>(req, "cursor")? {
        Some(raw) => Some(cursor::decode(CURSOR_KIND, &raw)?),
        None => None,
    };
    // Bring the account up to date first, so releases and expiries that are due are in the page.
    app.store.account(&user, now).await?;
    let page = app.store.ledger_page(&user, limit, before).await?;
    http::ok(&LedgerPage {
        entries: page.entries.into_iter().map(member_view).collect(),
        next_cursor: page.next.map(|seq| cursor::encode(CURSOR_KIND, seq)),
    })
}

/// An entry as the member sees it: an admin who made a manual change is `admin`, never their user
/// id (`admin:<sub>` in `by` and inside the business key of an admin's grant or reversal, and of
/// the grant a reversal names). A shop backend stays `service:<client id>` (not a member).
fn member_view(mut entry: LedgerEntry) -> LedgerEntry {
    fn redact(part: &str) -> String {
        match part.split_once(':') {
            Some(("admin", _)) => "admin".to_owned(),
            _ => part.to_owned(),
        }
    }
    fn redact_key(key: &str) -> String {
        key.split('#').map(redact).collect::<Vec<_>>().join("#")
    }
    entry.by = entry.by.as_deref().map(redact);
    entry.business_key = redact_key(&entry.business_key);
    entry.reverses = entry.reverses.as_deref().map(redact_key);
    entry
}

#[derive(Debug, Serialize)]
struct NextTier {
    name: String,
    points_needed: i64,
}

#[derive(Debug, Serialize)]
struct Tier {
    name: String,
    multiplier_bps: u32,
    extra_daily_spins: u32,
    next: Option<NextTier>,
}

#[derive(Debug, Serialize)]
struct Checkin {
    campaign_id: &'static str,
    #[serde(flatten)]
    view: StreakView,
}

/// How others see the member, and the name they chose.
#[derive(Debug, Serialize)]
struct Profile {
    display_name: Option<String>,
    public_name: String,
    leaderboard_visible: bool,
}

#[derive(Debug, Serialize)]
struct Me {
    user_id: String,
    points: Balance,
    tier: Tier,
    checkin: Checkin,
    profile: Profile,
    contests: Vec<ContestCard>,
    draws: Vec<shared::store::DrawCard>,
    /// The member's referral code (made on the first home screen while the program is on).
    referral_code: Option<String>,
}

/// The app's home screen in one call: at most two batch reads (`shared::domain::home`), plus a
/// write only when a hold release or an expiry is due, or on the member's first appearance.
async fn me(app: &App, req: &Request, now: DateTime<Utc>) -> Result<Response, ApiError> {
    let user = http::member(req)?;
    let home = app.store.home(&user, now).await?;
    let (contests, draws) = app.store.home_cards(&user, &home, now).await?;
    let config = home.tiers.config();
    let current = config.tier(home.account.tier.as_deref());
    let next = config
        .next(home.account.tier.as_deref(), home.account.lifetime_earned)
        .map(|(t, need)| NextTier {
            name: t.name.clone(),
            points_needed: need,
        });
    http::ok(&Me {
        user_id: user.to_string(),
        points: balance_view(&home.account, app.store.rules(), now),
        tier: Tier {
            name: current.name.clone(),
            multiplier_bps: current.multiplier_bps,
            extra_daily_spins: current.extra_daily_spins,
            next,
        },
        checkin: Checkin {
            campaign_id: DEFAULT_CAMPAIGN,
            view: home.checkin,
        },
        profile: Profile {
            display_name: home.member.profile.display_name.clone(),
            public_name: home.member.public_name(),
            leaderboard_visible: home.member.profile.leaderboard_visible,
        },
        // Live contests with my score and open draws with my spins left (the second read).
        contests,
        draws,
        referral_code: home.referral_code.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_never_sees_an_admin_id_in_an_entry() {
        let entry: LedgerEntry = serde_json::from_value(serde_json::json!({
            "seq": 3, "entry_id": "01KAW0M9B4E8Y6T3R1Q2P5N7XZ", "delta": -5, "reason": "reversal",
            "ref": "g", "business_key": "reversal#admin:sue#k", "at": "2026-11-23T08:00:00Z",
            "balance_after": 0, "by": "admin:sue", "reverses": "grant#admin:sue#g"
        }))
        .unwrap();
        let seen = member_view(entry);
        assert_eq!(
            (
                seen.by.as_deref(),
                seen.business_key.as_str(),
                seen.reverses.as_deref()
            ),
            (Some("admin"), "reversal#admin#k", Some("grant#admin#g"))
        );
        let shop = member_view(LedgerEntry {
            reverses: Some("grant#service:shop#g".into()),
            ..seen
        });
        assert_eq!(shop.reverses.as_deref(), Some("grant#service:shop#g"));
    }
}
