//! Property-based fuzzing of what a request brings in: claims, bodies (every admin
//! configuration, mutated from its sample event), headers, query parameters, cursors, dates,
//! boards, codes and ids. Whatever comes, nothing panics and every rejection is a 4xx of the
//! documented kind (400, 413, 415 for the shape; 401 for claims; 422 for values).

use std::collections::HashMap;

use lambda_http::{Request, RequestExt};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::caller_from_claims;
use super::request::{idempotency_key, json_body, now, page};
use crate::config::Config;
use crate::domain::DomainError;

fn request(content_type: &str, body: Vec<u8>) -> Request {
    http::Request::builder()
        .method("PUT")
        .uri("/x")
        .header("content-type", content_type)
        .body(lambda_http::Body::Binary(body))
        .unwrap()
}

fn sample(event: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(format!("{event}.json"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_str(event["body"].as_str().unwrap()).unwrap()
}

/// A JSON leaf of the kinds that break things: extremes, negatives, empties, long and odd text.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN),
            Just(u32::MAX as i64 + 1)
        ]
        .prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[0-9T:+.Z-]{0,30}".prop_map(Value::String),
        (0usize..3000).prop_map(|n| Value::String("x".repeat(n))),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Replaces the value at a path chosen by `choices` (objects by key, arrays by index) with `with`.
fn mutate(mut value: Value, choices: &[usize], with: Value) -> Value {
    fn go(v: &mut Value, choices: &[usize], with: Value) {
        let (first, rest) = match choices.split_first() {
            Some(split) => split,
            None => {
                *v = with;
                return;
            }
        };
        match v {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(first % map.len()).cloned().unwrap();
                // Stop here now and then: replace a whole object or list.
                if rest.is_empty() || first % 5 == 0 {
                    map.insert(key, with);
                } else {
                    go(map.get_mut(&key).unwrap(), rest, with);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let n = items.len();
                go(&mut items[first % n], rest, with);
            }
            other => *other = with,
        }
    }
    go(&mut value, choices, with);
    value
}

fn is_4xx(err: &ApiError) -> bool {
    (400..500).contains(&err.status)
}

/// A body parsed into `T`: accepted, or refused with 400 (shape), 413 (size) or 422 (a value no
/// variant of an enum has).
fn parsed<T: DeserializeOwned>(body: &Value) -> Option<T> {
    let bytes = serde_json::to_vec(body).unwrap();
    match json_body::<T>(&request("application/json", bytes)) {
        Ok(t) => Some(t),
        Err(e) => {
            assert!(matches!(e.status, 400 | 413 | 422), "{} for {body}", e.status);
            None
        }
    }
}

fn refused_as_4xx(result: Result<impl Sized, DomainError>, body: &Value) {
    if let Err(e) = result {
        let api = ApiError::from(e);
        assert!(is_4xx(&api), "{} {} for {body}", api.status, api.slug);
    }
}

fn at() -> chrono::DateTime<chrono::Utc> {
    "2026-11-23T08:00:00Z".parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_claims_make_a_caller_or_a_401(
        claims in proptest::collection::hash_map(
            prop_oneof![
                Just("sub".to_owned()), Just("client_id".to_owned()), Just("scope".to_owned()),
                Just("cognito:groups".to_owned()), Just("username".to_owned()),
                Just("token_use".to_owned()), ".{0,12}",
            ],
            prop_oneof![".{0,20}", "\\[[a-z ]{0,20}\\]", Just(String::new()), (0usize..300).prop_map(|n| "u".repeat(n))],
            0..6,
        )
    ) {
        let claims: HashMap<String, String> = claims;
        if let Err(e) = caller_from_claims(&claims) {
            prop_assert_eq!(e.status, 401);
        }
    }

    #[test]
    fn any_bytes_as_a_body_are_parsed_or_refused_with_400_413_or_415(
        content_type in prop_oneof![
            Just("application/json"), Just("application/json; charset=utf-8"), Just("text/plain"),
            Just(""), Just("application/problem+json"), Just("application/jsonx")
        ],
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            (16_000usize..17_000).prop_map(|n| format!("{{\"title\":\"{}\"}}", "a".repeat(n)).into_bytes()),
        ],
    ) {
        let req = request(content_type, body);
        if let Err(e) = json_body::<Value>(&req) {
            prop_assert!(matches!(e.status, 400 | 413 | 415), "{}", e.status);
        }
    }

    #[test]
    fn mutated_admin_configurations_are_accepted_or_refused_with_a_4xx(
        which in 0usize..6,
        choices in proptest::collection::vec(any::<usize>(), 1..4),
        with in leaf(),
    ) {
        let (event, body) = match which {
            0 => ("put-v1-admin-draws-draw_id", sample("put-v1-admin-draws-draw_id")),
            1 => ("put-v1-admin-contests-contest_id", sample("put-v1-admin-contests-contest_id")),
            2 => ("put-v1-admin-checkin-campaigns-campaign_id", sample("put-v1-admin-checkin-campaigns-campaign_id")),
            3 => ("put-v1-admin-tiers", sample("put-v1-admin-tiers")),
            4 => ("put-v1-admin-multipliers-multiplier_id", sample("put-v1-admin-multipliers-multiplier_id")),
            _ => ("put-v1-admin-referral-program", sample("put-v1-admin-referral-program")),
        };
        let body = mutate(body, &choices, with);
        match event {
            "put-v1-admin-draws-draw_id" => {
                if let Some(spec) = parsed::<crate::domain::draws::DrawSpec>(&body) {
                    refused_as_4xx(crate::domain::draws::validate(&spec, None, at()), &body);
                }
            }
            "put-v1-admin-contests-contest_id" => {
                if let Some(spec) = parsed::<crate::domain::contests::ContestSpec>(&body) {
                    refused_as_4xx(crate::domain::contests::validate("c", spec, None, at(), 30), &body);
                }
            }
            "put-v1-admin-checkin-campaigns-campaign_id" => {
                if let Some(config) = parsed::<crate::domain::checkin::CampaignConfig>(&body) {
                    refused_as_4xx(config.validate("daily"), &body);
                }
            }
            "put-v1-admin-tiers" => {
                if let Some(config) = parsed::<crate::domain::tiers::TierConfig>(&body) {
                    refused_as_4xx(config.validate(), &body);
                }
            }
            "put-v1-admin-multipliers-multiplier_id" => {
                if let Some(window) = parsed::<crate::domain::tiers::MultiplierWindow>(&body) {
                    refused_as_4xx(window.validate(), &body);
                }
            }
            _ => {
                if let Some(program) = parsed::<crate::domain::referrals::Program>(&body) {
                    refused_as_4xx(program.validate(), &body);
                }
            }
        }
    }

    #[test]
    fn any_query_makes_a_page_or_a_4xx(
        limit in proptest::option::of(prop_oneof![".{0,12}", "-?[0-9]{1,25}"]),
        cursor in proptest::option::of(prop_oneof![".{0,40}", "[A-Za-z0-9_-]{0,40}"]),
    ) {
        let mut query = HashMap::new();
        if let Some(l) = limit { query.insert("limit".to_owned(), l); }
        if let Some(c) = cursor { query.insert("cursor".to_owned(), c); }
        let req = request("application/json", vec![]).with_query_string_parameters(query);
        if let Err(e) = page(&req, "ledger", 20) {
            prop_assert!(matches!(e.status, 400 | 422), "{}", e.status);
        }
    }

    #[test]
    fn any_headers_make_an_instant_and_a_key_or_a_400(
        debug_now in prop_oneof![".{0,40}", "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}"],
        key in prop_oneof![".{0,200}", "[!-~]{0,140}"],
    ) {
        let Ok(req) = http::Request::builder()
            .uri("/x")
            .header("x-debug-now", debug_now.as_str())
            .header("idempotency-key", key.as_str())
            .body(lambda_http::Body::Empty)
        else {
            // Not a header value at all: no request carries it.
            return Ok(());
        };
        let config = Config::from_lookup(|name| match name {
            "TABLE_NAME" => Some("t".into()),
            "CAMPAIGN_DEV_CLOCK" => Some("1".into()),
            _ => None,
        }).unwrap();
        if let Err(e) = now(&config, &req) { prop_assert_eq!(e.status, 400); }
        match idempotency_key(&req) {
            Err(e) => prop_assert_eq!(e.status, 400),
            Ok(k) => prop_assert!(!k.is_empty() && k.len() <= 128 && !k.contains('#')),
        }
    }

    #[test]
    fn any_board_code_id_or_slug_is_read_or_refused_with_a_4xx(text in prop_oneof![".{0,80}", "(contest|weekly|monthly):[A-Za-z0-9:-]{0,30}"]) {
        refused_as_4xx(crate::domain::boards::Board::parse(&text, at(), chrono_tz::Asia::Shanghai), &Value::String(text.clone()));
        refused_as_4xx(crate::domain::UserId::parse(&text), &Value::String(text.clone()));
        refused_as_4xx(crate::domain::ids::validate_slug("id", &text), &Value::String(text.clone()));
        refused_as_4xx(crate::domain::draws::validate_code(&text), &Value::String(text.clone()));
        refused_as_4xx(crate::domain::draws::validate_client_seed(&text), &Value::String(text.clone()));
        if let Some(code) = crate::domain::ids::normalize_code(&text) {
            prop_assert_eq!(code.len(), 8);
        }
    }
}

#[test]
fn the_samples_parse_and_validate_so_the_mutations_start_from_valid_bodies() {
    let draw: crate::domain::draws::DrawSpec = parsed(&sample("put-v1-admin-draws-draw_id")).unwrap();
    crate::domain::draws::validate(&draw, None, at()).unwrap();
    let contest: crate::domain::contests::ContestSpec =
        parsed(&sample("put-v1-admin-contests-contest_id")).unwrap();
    crate::domain::contests::validate("c", contest, None, at(), 30).unwrap();
    let campaign: crate::domain::checkin::CampaignConfig =
        parsed(&sample("put-v1-admin-checkin-campaigns-campaign_id")).unwrap();
    campaign.validate("daily").unwrap();
    let tiers: crate::domain::tiers::TierConfig = parsed(&sample("put-v1-admin-tiers")).unwrap();
    tiers.validate().unwrap();
    let window: crate::domain::tiers::MultiplierWindow =
        parsed(&sample("put-v1-admin-multipliers-multiplier_id")).unwrap();
    window.validate().unwrap();
    let program: crate::domain::referrals::Program =
        parsed(&sample("put-v1-admin-referral-program")).unwrap();
    program.validate().unwrap();
}
