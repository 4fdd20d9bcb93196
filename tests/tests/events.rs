//! Every file in events/ goes through its handler against DynamoDB Local; every route of
//! template.yaml has a file named after it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use e2e::TestEnv;
use local_api::template::Template;
use serde_json::Value;

/// What each sample event must answer on a fresh table: status, top-level fields, and the points
/// its caller is given first (a make-up costs points).
struct Expect {
    status: u16,
    fields: &'static [&'static str],
    seed_points: i64,
}

fn expectation(file: &str) -> Option<Expect> {
    let e = |status, fields, seed_points| {
        Some(Expect {
            status,
            fields,
            seed_points,
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
        ),
        "get-v1-points-ledger.json" => e(200, &["entries", "next_cursor"], 0),
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
        ),
        "get-v1-checkins.json" => e(
            200,
            &["month", "days", "current_streak", "best_streak", "today"],
            0,
        ),
        "put-v1-admin-checkin-campaigns-campaign_id.json" => {
            e(200, &["campaign_id", "time_zone", "ladder"], 0)
        }
        "get-v1-admin-checkin-campaigns-campaign_id.json" => {
            e(200, &["campaign_id", "time_zone", "ladder"], 0)
        }
        _ => None,
    }
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
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        let route_key = raw["routeKey"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no routeKey"));
        let handler = local_api::registry::handler_for(route_key)
            .unwrap_or_else(|| panic!("{name}: no handler serves {route_key}"));
        let expect = expectation(&name).unwrap_or_else(|| panic!("{name}: no expectation in this test"));
        let env = TestEnv::new().await;
        if expect.seed_points > 0 {
            let sub = raw["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
                .as_str()
                .unwrap();
            env.seed_points(sub, expect.seed_points).await;
        }
        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: not an HTTP API event: {e}"));
        let response = handler(&env.app, request).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(response.status().as_u16(), expect.status, "{name}: {body}");
        for field in expect.fields {
            assert!(body.get(field).is_some(), "{name}: no {field} in {body}");
        }
    }
}
