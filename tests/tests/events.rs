//! Every file in events/ goes through its handler against DynamoDB Local; every route of
//! template.yaml has a file named after it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use e2e::TestEnv;
use local_api::template::Template;
use serde_json::Value;

/// The member of the sample events (the grant, hold and make-up samples act on this member).
const SAMPLE_MEMBER: &str = "3f1c9a52-7d4e-4b1a-9a55-2f6c1b0e8d11";
/// The hold id in the capture and release samples, replaced by a hold the test creates.
const SAMPLE_HOLD: &str = "01KAW0M9B4E8Y6T3R1Q2P5N7XZ";
/// The join code in the team-join sample, replaced by the code of a team the test creates.
const SAMPLE_TEAM_CODE: &str = "7KQ2M9XD";
/// The team contest the team samples act on (events/setup/).
const TEAM_CONTEST: &str = "setup/put-v1-admin-contests-team-relay.json";
const SOLO_CONTEST: &str = "put-v1-admin-contests-contest_id.json";
/// The draw the draw samples act on, its codes and a spin.
const DRAW: &str = "put-v1-admin-draws-draw_id.json";
const CODES: &str = "post-v1-admin-draws-draw_id-prizes-prize_id-codes.json";
const SPIN: &str = "post-v1-draws-draw_id-spins.json";
/// The referral code in the claim sample, replaced by the code of a member the test sets up.
const SAMPLE_REFERRAL_CODE: &str = "K7M2-Q9XD";

/// What each sample event must answer on a fresh table: status, top-level fields, the points
/// the sample member is given first, and the sample events (paths under events/) to run before
/// it on the same table, in order.
struct Expect {
    status: u16,
    fields: &'static [&'static str],
    seed_points: i64,
    before: &'static [&'static str],
}

fn expectation(file: &str) -> Option<Expect> {
    let e = |status, fields, seed_points, before: &'static [&'static str]| {
        Some(Expect {
            status,
            fields,
            seed_points,
            before,
        })
    };
    let after = |status, fields, before: &'static [&'static str]| {
        Some(Expect {
            status,
            fields,
            seed_points: 0,
            before,
        })
    };
    match file {
        "get-v1-points.json" => e(
            200,
            &[
                "balance",
                "held",
                "lifetime_earned",
                "next_expiry",
                "expiring_by_month",
            ],
            0,
            &[],
        ),
        "get-v1-points-ledger.json" => e(200, &["entries", "next_cursor"], 0, &[]),
        "get-v1-me.json" => e(
            200,
            &[
                "user_id", "points", "tier", "checkin", "profile", "contests", "draws",
            ],
            0,
            &[],
        ),
        "get-v1-me-profile.json" | "put-v1-me-profile.json" => e(
            200,
            &[
                "display_name",
                "leaderboard_visible",
                "public_name",
                "registered_at",
            ],
            0,
            &[],
        ),
        "get-v1-leaderboards-board.json" => e(200, &["board", "final", "entries"], 0, &[]),
        "get-v1-leaderboards-board-me.json" => e(200, &["board", "ranked", "above", "below"], 0, &[]),
        "get-v1-admin-reserved-names.json" | "put-v1-admin-reserved-names.json" => {
            e(200, &["names", "version", "updated_at"], 0, &[])
        }
        "post-v1-admin-members-user_id-display-name-reset.json" => e(
            200,
            &["user_id", "display_name", "public_name"],
            0,
            &["put-v1-me-profile.json"],
        ),
        "post-v1-admin-members-user_id-registered.json" => e(200, &["user_id", "registered_at"], 0, &[]),
        "post-v1-checkins.json" => e(
            200,
            &[
                "campaign_id",
                "date",
                "checked_in_now",
                "points_awarded",
                "current_streak",
                "tomorrow_reward",
                "balance",
            ],
            0,
            &[],
        ),
        "post-v1-checkins-makeup.json" => e(
            200,
            &[
                "date",
                "points_charged",
                "milestones",
                "current_streak",
                "makeups_left_this_month",
                "balance",
            ],
            100,
            &[],
        ),
        "get-v1-checkins.json" => e(
            200,
            &["month", "days", "current_streak", "best_streak", "today"],
            0,
            &[],
        ),
        "put-v1-admin-checkin-campaigns-campaign_id.json" => {
            e(200, &["campaign_id", "time_zone", "ladder"], 0, &[])
        }
        "get-v1-admin-checkin-campaigns-campaign_id.json" => {
            e(200, &["campaign_id", "time_zone", "ladder"], 0, &[])
        }
        "post-v1-admin-points-grants.json" => e(
            200,
            &["user_id", "points", "base", "factors_bps", "balance"],
            0,
            &[],
        ),
        "post-v1-admin-points-holds.json" => {
            e(200, &["hold_id", "amount", "expires_at", "balance"], 500, &[])
        }
        "post-v1-admin-points-holds-hold_id-capture.json" => e(
            200,
            &["hold_id", "status", "amount", "balance"],
            500,
            &["post-v1-admin-points-holds.json"],
        ),
        "post-v1-admin-points-holds-hold_id-release.json" => e(
            200,
            &["hold_id", "status", "amount", "balance"],
            500,
            &["post-v1-admin-points-holds.json"],
        ),
        "post-v1-admin-points-reversals.json" => e(
            200,
            &["reversed", "grant_remaining", "balance"],
            0,
            &["post-v1-admin-points-grants.json"],
        ),
        "get-v1-admin-tiers.json" | "put-v1-admin-tiers.json" => e(200, &["tiers", "seats"], 0, &[]),
        "get-v1-admin-multipliers.json" => e(200, &["multipliers"], 0, &[]),
        "put-v1-admin-multipliers-multiplier_id.json" => e(200, &["multiplier_id", "window"], 0, &[]),
        "delete-v1-admin-multipliers-multiplier_id.json" => e(
            200,
            &["multiplier_id", "deleted"],
            0,
            &["put-v1-admin-multipliers-multiplier_id.json"],
        ),
        "get-v1-admin-contests.json" => after(200, &["contests"], &[SOLO_CONTEST]),
        "put-v1-admin-contests-contest_id.json" => after(201, &["status", "contest"], &[]),
        "get-v1-admin-contests-contest_id.json" | "post-v1-admin-contests-contest_id-cancel.json" => {
            after(200, &["status", "contest"], &[SOLO_CONTEST])
        }
        "get-v1-admin-contests-contest_id-results.json" => {
            after(200, &["contest_id", "status", "winners"], &[SOLO_CONTEST])
        }
        "get-v1-admin-fulfilments.json" => after(200, &["fulfilments"], &[]),
        // No prize was recorded on a fresh table: the sample shows the refusal.
        "post-v1-admin-fulfilments-fulfilment_id-shipped.json" => after(404, &["type", "title"], &[]),
        "get-v1-contests.json" => after(200, &["contests"], &[SOLO_CONTEST]),
        "get-v1-contests-contest_id.json" | "post-v1-contests-contest_id-entries.json" => {
            after(200, &["contest_id", "status", "joined"], &[SOLO_CONTEST])
        }
        "post-v1-contests-contest_id-teams.json" => after(201, &["contest_id", "team"], &[TEAM_CONTEST]),
        "post-v1-contests-contest_id-teams-join.json" => after(
            200,
            &["contest_id", "team"],
            &[TEAM_CONTEST, "post-v1-contests-contest_id-teams.json"],
        ),
        "post-v1-contests-contest_id-teams-leave.json" => after(
            200,
            &["contest_id", "left"],
            &[TEAM_CONTEST, "post-v1-contests-contest_id-teams.json"],
        ),
        "get-v1-admin-referral-program.json" | "put-v1-admin-referral-program.json" => after(
            200,
            &["invitee_reward", "referrer_reward", "qualifying", "enabled"],
            &[],
        ),
        "get-v1-referrals-me.json" => after(200, &["code", "claimed", "invitees", "next_cursor"], &[]),
        "post-v1-referrals-claim.json" => after(
            200,
            &["referrer", "invitee_reward", "status", "balance"],
            &[
                "put-v1-admin-referral-program.json",
                "setup/get-v1-referrals-me-friend.json",
            ],
        ),
        "get-v1-admin-referrals-user_id.json" => after(
            200,
            &[
                "user_id",
                "code",
                "claimed",
                "invitees",
                "referred_by",
                "next_cursor",
            ],
            &[
                "put-v1-admin-referral-program.json",
                "setup/get-v1-referrals-me-friend.json",
                "post-v1-referrals-claim.json",
            ],
        ),
        "post-v1-admin-referrals-user_id-revoke.json" => after(
            200,
            &["invitee_id", "referrer_id", "status", "claimed_at"],
            &[
                "put-v1-admin-referral-program.json",
                "setup/get-v1-referrals-me-friend.json",
                "post-v1-referrals-claim.json",
            ],
        ),
        "put-v1-admin-draws-draw_id.json" => after(201, &["draw_id", "status", "commitment", "prizes"], &[]),
        "get-v1-admin-draws.json" => after(200, &["draws"], &[DRAW]),
        "post-v1-admin-draws-draw_id-prizes-prize_id-codes.json" => {
            after(200, &["prize_id", "added", "already", "total"], &[DRAW])
        }
        "get-v1-admin-coupons-code.json" => after(
            200,
            &["code", "draw_id", "prize_id", "number", "redeemed"],
            &[DRAW, CODES],
        ),
        // Nobody has won the sample code on a fresh table: the sample shows the refusal.
        "post-v1-admin-coupons-code-redeem.json" => after(409, &["type", "title"], &[DRAW, CODES]),
        "get-v1-draws.json" => after(200, &["draws"], &[DRAW]),
        "get-v1-draws-draw_id.json" => after(
            200,
            &["draw_id", "prizes", "commitment", "spins_left_today"],
            &[DRAW],
        ),
        "post-v1-draws-draw_id-spins.json" => after(
            200,
            &["spin", "spins_left_today", "free_spins_left_today", "balance"],
            &[DRAW],
        ),
        "get-v1-draws-draw_id-spins.json" => after(200, &["spins", "next_cursor"], &[DRAW, SPIN]),
        "post-v1-draws-draw_id-shares.json" => {
            after(200, &["spins_left_today", "free_spins_left_today"], &[DRAW])
        }
        "get-v1-draws-draw_id-reveal.json" => {
            after(200, &["server_seed", "commitment", "ran_out"], &[DRAW, SPIN])
        }
        _ => None,
    }
}

/// Runs one sample event (its text) through its handler.
async fn run(env: &TestEnv, name: &str, text: &str) -> (u16, Value) {
    let raw: Value = serde_json::from_str(text).unwrap();
    let route_key = raw["routeKey"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no routeKey"));
    let handler = local_api::registry::handler_for(route_key)
        .unwrap_or_else(|| panic!("{name}: no handler serves {route_key}"));
    let request =
        lambda_http::request::from_str(text).unwrap_or_else(|e| panic!("{name}: not an HTTP API event: {e}"));
    let response = handler(&env.app, request).await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let path = raw["rawPath"].as_str().unwrap_or_default();
    let (method, _) = route_key.split_once(' ').unwrap();
    let checked = e2e::contract::contract().check(method, path, status, content_type, &body);
    assert_eq!(checked, Ok(true), "{name}: the answer must match openapi.yaml");
    (status, body)
}

/// `GET /v1/points/ledger` → `get-v1-points-ledger.json`; `{id}` → `id`.
fn file_name_for(route_key: &str) -> String {
    let (method, path) = route_key.split_once(' ').unwrap();
    let mut name = method.to_ascii_lowercase();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        name.push('-');
        name.push_str(
            segment
                .trim_start_matches('{')
                .trim_end_matches('}')
                .trim_end_matches('+'),
        );
    }
    name + ".json"
}

fn event_files() -> Vec<PathBuf> {
    let dir = local_api::repo_root().join("events");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_route_has_a_sample_event() {
    let template = Template::load(&local_api::repo_root().join("template.yaml")).unwrap();
    let have: BTreeSet<String> = event_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for route in template.routes().unwrap() {
        let want = file_name_for(&route.key());
        assert!(have.contains(&want), "no events/{want} for {}", route.key());
    }
}

#[tokio::test]
async fn every_sample_event_runs_through_its_handler() {
    let files = event_files();
    assert!(!files.is_empty());
    let dir = local_api::repo_root().join("events");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut text = std::fs::read_to_string(&path).unwrap();
        let expect = expectation(&name).unwrap_or_else(|| panic!("{name}: no expectation in this test"));
        let env = TestEnv::new().await;
        if expect.seed_points > 0 {
            env.seed_points(SAMPLE_MEMBER, expect.seed_points).await;
        }
        // What earlier events made (a hold id, a team code, a referral code) replaces the
        // sample's placeholder in every later event.
        let mut made: Vec<(&str, String)> = Vec::new();
        for first in expect.before {
            let mut before = std::fs::read_to_string(dir.join(first)).unwrap();
            for (placeholder, value) in &made {
                before = before.replace(placeholder, value);
            }
            let (status, body) = run(&env, first, &before).await;
            assert!(matches!(status, 200 | 201), "{first} (before {name}): {body}");
            if let Some(hold_id) = body["hold_id"].as_str() {
                made.push((SAMPLE_HOLD, hold_id.to_owned()));
            }
            if let Some(code) = body["team"]["code"].as_str() {
                made.push((SAMPLE_TEAM_CODE, code.to_owned()));
            }
            if let Some(code) = body["code"].as_str() {
                made.push((SAMPLE_REFERRAL_CODE, code.to_owned()));
            }
        }
        for (placeholder, value) in &made {
            text = text.replace(placeholder, value);
        }
        let (status, body) = run(&env, &name, &text).await;
        assert_eq!(status, expect.status, "{name}: {body}");
        for field in expect.fields {
            assert!(body.get(field).is_some(), "{name}: no {field} in {body}");
        }
        env.assert_audit_clean().await;
    }
}

#[tokio::test]
async fn the_scheduled_sample_event_settles_what_is_due() {
    use shared::domain::contests::{ContestSpec, Metric, Prize};
    let env = TestEnv::new().await;
    // A contest that ended an hour ago by the wall clock (the sample event carries no "now").
    let now = chrono::Utc::now();
    let spec = ContestSpec {
        title: "Yesterday".into(),
        description: String::new(),
        starts_at: now - chrono::Duration::days(1),
        ends_at: now - chrono::Duration::hours(1),
        metric: Metric::PointsEarned,
        reasons: None,
        campaign: None,
        entry: Default::default(),
        format: Default::default(),
        team_size: None,
        prizes: vec![Prize {
            from: 1,
            to: 1,
            points: Some(5),
            item: None,
        }],
        grace_seconds: None,
    };
    env.app
        .store
        .put_contest("yesterday", spec, now - chrono::Duration::days(2))
        .await
        .unwrap();
    let dir = local_api::repo_root().join("events/schedules");
    let mut ran = 0;
    for file in std::fs::read_dir(dir).unwrap() {
        let path = file.unwrap().path();
        let event: aws_lambda_events::eventbridge::EventBridgeEvent =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let report = local_api::schedule::fire(&env.app, "SettleContestsFunction", event)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(report["contests"][0]["contest_id"], "yesterday", "{report}");
        assert_eq!(report["contests"][0]["outcome"], "settled", "{report}");
        ran += 1;
    }
    assert_eq!(ran, 1);
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn the_local_api_fires_the_schedule_at_its_rate() {
    use shared::domain::contests::{ContestSpec, Metric};
    let env = TestEnv::new().await;
    let now = chrono::Utc::now();
    let spec = ContestSpec {
        title: "Done".into(),
        description: String::new(),
        starts_at: now - chrono::Duration::days(1),
        ends_at: now - chrono::Duration::hours(1),
        metric: Metric::Checkins,
        reasons: None,
        campaign: None,
        entry: Default::default(),
        format: Default::default(),
        team_size: None,
        prizes: vec![],
        grace_seconds: None,
    };
    env.app
        .store
        .put_contest("done", spec, now - chrono::Duration::days(2))
        .await
        .unwrap();
    // The template's schedule, sped up: the same loop the local API runs at `rate(1 minute)`.
    let template = Template::load(&local_api::repo_root().join("template.yaml")).unwrap();
    let schedules: Vec<_> = template
        .schedules()
        .unwrap()
        .into_iter()
        .map(|s| local_api::template::Schedule {
            every: std::time::Duration::from_millis(100),
            ..s
        })
        .collect();
    local_api::schedule::spawn(std::sync::Arc::new(env.app.clone()), schedules);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let contest = env.app.store.contest("done").await.unwrap().unwrap();
        if contest.settled.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule never settled it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    env.assert_audit_clean().await;
}
