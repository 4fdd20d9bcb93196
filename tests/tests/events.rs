//! Every file in events/ goes through its handler against DynamoDB Local; every route of
//! template.yaml has a file named after it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use e2e::TestEnv;
use local_api::template::Template;
use serde_json::Value;

/// The expected status and top-level fields of each sample event's response on a fresh table.
fn expectation(file: &str) -> Option<(u16, &'static [&'static str])> {
    Some(match file {
        "get-v1-points.json" => (200, &["balance", "lifetime_earned"]),
        "get-v1-points-ledger.json" => (200, &["entries", "next_cursor"]),
        _ => return None,
    })
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
    let env = TestEnv::new().await;
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
        let (status, fields) =
            expectation(&name).unwrap_or_else(|| panic!("{name}: no expectation in this test"));
        let request = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: not an HTTP API event: {e}"));
        let response = handler(&env.app, request).await;
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}: {body}");
        for field in fields {
            assert!(body.get(field).is_some(), "{name}: no {field} in {body}");
        }
    }
}
