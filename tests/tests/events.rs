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

/// What each sample event must answer on a fresh table: status, top-level fields, the points
/// the sample member is given first, and the sample events to run before it on the same table.
struct Expect {
    status: u16,
    fields: &'static [&'static str],
    seed_points: i64,
    before: Option<&'static str>,
}

fn expectation(file: &str) -> Option<Expect> {
    let e = |status, fields, seed_points, before| {
        Some(Expect {
            status,
            fields,
            seed_points,
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
            None,
        ),
        "get-v1-points-ledger.json" => e(200, &["entries", "next_cursor"], 0, None),
        "get-v1-me.json" => e(
            200,
            &[
                "user_id", "points", "tier", "checkin", "profile", "contests", "draws",
            ],
            0,
            None,
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
            None,
        ),
        "get-v1-leaderboards-board.json" => e(200, &["board", "final", "entries"], 0, None),
        "get-v1-leaderboards-board-me.json" => e(200, &["board", "ranked", "above", "below"], 0, None),
        "get-v1-admin-reserved-names.json" | "put-v1-admin-reserved-names.json" => {
            e(200, &["names", "version", "updated_at"], 0, None)
        }
        "post-v1-admin-members-user_id-display-name-reset.json" => e(
            200,
            &["user_id", "display_name", "public_name"],
            0,
            Some("put-v1-me-profile.json"),
        ),
        "post-v1-admin-members-user_id-registered.json" => e(200, &["user_id", "registered_at"], 0, None),
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
            None,
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
            None,
        ),
        "get-v1-checkins.json" => e(
            200,
            &["month", "days", "current_streak", "best_streak", "today"],
            0,
            None,
        ),
        "put-v1-admin-checkin-campaigns-campaign_id.json" => {
            e(200, &["campaign_id", "time_zone", "ladder"], 0, None)
        }
        "get-v1-admin-checkin-campaigns-campaign_id.json" => {
            e(200, &["campaign_id", "time_zone", "ladder"], 0, None)
        }
        "post-v1-admin-points-grants.json" => e(
            200,
            &["user_id", "points", "base", "factors_bps", "balance"],
            0,
            None,
        ),
        "post-v1-admin-points-holds.json" => {
            e(200, &["hold_id", "amount", "expires_at", "balance"], 500, None)
        }
        "post-v1-admin-points-holds-hold_id-capture.json" => e(
            200,
            &["hold_id", "status", "amount", "balance"],
            500,
            Some("post-v1-admin-points-holds.json"),
        ),
        "post-v1-admin-points-holds-hold_id-release.json" => e(
            200,
            &["hold_id", "status", "amount", "balance"],
            500,
            Some("post-v1-admin-points-holds.json"),
        ),
        "post-v1-admin-points-reversals.json" => e(
            200,
            &["reversed", "grant_remaining", "balance"],
            0,
            Some("post-v1-admin-points-grants.json"),
        ),
        "get-v1-admin-tiers.json" | "put-v1-admin-tiers.json" => e(200, &["tiers", "seats"], 0, None),
        "get-v1-admin-multipliers.json" => e(200, &["multipliers"], 0, None),
        "put-v1-admin-multipliers-multiplier_id.json" => e(200, &["multiplier_id", "window"], 0, None),
        "delete-v1-admin-multipliers-multiplier_id.json" => e(
            200,
            &["multiplier_id", "deleted"],
            0,
            Some("put-v1-admin-multipliers-multiplier_id.json"),
        ),
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
        if let Some(first) = expect.before {
            let (status, body) = run(&env, first, &std::fs::read_to_string(dir.join(first)).unwrap()).await;
            assert_eq!(status, 200, "{first} (before {name}): {body}");
            if let Some(hold_id) = body["hold_id"].as_str() {
                text = text.replace(SAMPLE_HOLD, hold_id);
            }
        }
        let (status, body) = run(&env, &name, &text).await;
        assert_eq!(status, expect.status, "{name}: {body}");
        for field in expect.fields {
            assert!(body.get(field).is_some(), "{name}: no {field} in {body}");
        }
    }
}
