//! The API contract, `openapi.yaml`: the same routes as template.yaml and the handlers, closed
//! schemas, every error status documented, and a validator that really refuses a response that
//! strays from it. (Every reply the end-to-end tests see is validated in `TestApi::send`.)

use std::collections::BTreeSet;

use e2e::contract::contract;
use e2e::{TestEnv, member_token};
use local_api::template::Template;
use reqwest::Method;
use serde_json::{Value, json};

const T0: &str = "2026-11-23T09:00:00+08:00";

#[test]
fn template_openapi_and_handlers_name_the_same_routes() {
    let template = Template::load(&local_api::repo_root().join("template.yaml")).unwrap();
    let from_template: BTreeSet<String> = template.routes().unwrap().iter().map(|r| r.key()).collect();
    let from_handlers: BTreeSet<String> = [
        points::ROUTES,
        checkin::ROUTES,
        points_admin::ROUTES,
        members::ROUTES,
        leaderboards::ROUTES,
        contests::ROUTES,
        referrals::ROUTES,
        draws::ROUTES,
    ]
    .concat()
    .into_iter()
    .map(str::to_owned)
    .collect();
    let from_spec = contract().routes();
    assert_eq!(
        from_template, from_handlers,
        "template.yaml vs the handlers' ROUTES"
    );
    assert_eq!(from_spec, from_template, "openapi.yaml vs template.yaml");
}

/// Every object schema, wherever it is nested, with where it is.
fn objects<'a>(at: String, schema: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match schema {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object")) || map.contains_key("properties") {
                out.push((at.clone(), schema));
            }
            for (k, v) in map {
                objects(format!("{at}/{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                objects(format!("{at}/{i}"), v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_schema_is_closed() {
    let doc = contract().doc();
    let mut found = Vec::new();
    objects(
        "#/components/schemas".into(),
        &doc["components"]["schemas"],
        &mut found,
    );
    assert!(found.len() > 30, "too few object schemas: {}", found.len());
    for (at, schema) in found {
        assert_eq!(schema["additionalProperties"], json!(false), "{at} is open");
        let props: BTreeSet<&String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap().to_owned();
            assert!(
                props.contains(&name),
                "{at} requires {name}, which it does not define"
            );
        }
    }
}

#[test]
fn every_operation_documents_its_auth_and_errors() {
    let doc = contract().doc();
    for route in contract().routes() {
        let (method, path) = route.split_once(' ').unwrap();
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(op["operationId"].is_string(), "{route}: operationId");
        assert!(
            !op["security"].as_array().unwrap().is_empty(),
            "{route}: security"
        );
        let responses = op["responses"].as_object().unwrap();
        for status in ["401", "500", "503"] {
            assert!(
                responses.contains_key(status),
                "{route} does not document {status}"
            );
        }
        assert!(
            responses["503"]["headers"].get("Retry-After").is_some(),
            "{route}: 503 without Retry-After"
        );
        let has_body = op.get("requestBody").is_some();
        for status in ["413", "415"] {
            assert_eq!(
                responses.contains_key(status),
                has_body,
                "{route}: {status} iff it reads a body"
            );
        }
        for (status, response) in responses {
            if status.starts_with('2') {
                continue;
            }
            assert!(
                response["content"].get("application/problem+json").is_some(),
                "{route} {status}: not problem+json"
            );
            let types = response["x-problem-types"].as_array();
            assert!(
                types.is_some_and(|t| !t.is_empty()),
                "{route} {status}: no x-problem-types"
            );
        }
        let path_params: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p["$ref"].as_str() {
                // A shared parameter: `#/components/parameters/<name>`.
                Some(r) => &doc["components"]["parameters"][r.rsplit('/').next().unwrap()],
                None => p,
            })
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(declared, path_params, "{route}: path parameters");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["member", "admin", "service"] {
        assert!(schemes.contains_key(scheme), "no {scheme} security scheme");
    }
}

/// The validator is not a rubber stamp: a real response passes, and the same response with a
/// field added, a field removed, a wrong type or an undeclared problem type fails.
#[tokio::test]
async fn a_mutated_response_fails_validation() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let home = api.get("/v1/me", Some(&member_token("ann")), Some(T0)).await;
    assert_eq!(home.status, 200, "{}", home.body);
    let check = |body: &Value| contract().check("GET", "/v1/me", 200, "application/json", body);
    assert_eq!(check(&home.body), Ok(true));

    let mut extra = home.body.clone();
    extra["points"]["bonus"] = json!(1);
    assert!(check(&extra).is_err(), "an unknown field passed");
    let mut missing = home.body.clone();
    missing.as_object_mut().unwrap().remove("profile");
    assert!(check(&missing).is_err(), "a missing field passed");
    let mut wrong = home.body.clone();
    wrong["points"]["balance"] = json!("0");
    assert!(check(&wrong).is_err(), "a string balance passed");
    let mut card = home.body.clone();
    card["contests"] =
        json!([{ "contest_id": "c1", "title": "Week", "ends_at": "soon", "joined": true, "score": 1 }]);
    assert!(check(&card).is_err(), "a malformed date-time passed");
    card["contests"][0]["ends_at"] = json!("2026-11-30T00:00:00Z");
    assert_eq!(check(&card), Ok(true), "a well-formed contest card passes");

    // Status and problem type must be the route's own.
    let refused = api
        .send_json(
            Method::PUT,
            "/v1/me/profile",
            &member_token("ann"),
            T0,
            &json!({ "display_name": "" }),
        )
        .await;
    refused.assert_problem(422, "invalid-value");
    let ct = "application/problem+json";
    assert_eq!(
        contract().check("PUT", "/v1/me/profile", 422, ct, &refused.body),
        Ok(true)
    );
    let mut other = refused.body.clone();
    other["type"] = json!("hold-not-active");
    assert!(
        contract()
            .check("PUT", "/v1/me/profile", 422, ct, &other)
            .is_err()
    );
    assert!(
        contract()
            .check("PUT", "/v1/me/profile", 409, ct, &refused.body)
            .is_err()
    );
    assert!(
        contract()
            .check("PUT", "/v1/me/profile", 422, "application/json", &refused.body)
            .is_err()
    );
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn the_local_api_serves_the_contract() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let resp = api
        .http
        .get(format!("{}/openapi.yaml", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    let served = resp.text().await.unwrap();
    let file = std::fs::read_to_string(local_api::repo_root().join("openapi.yaml")).unwrap();
    assert_eq!(served, file);
    env.assert_audit_clean().await;
}

/// The interactive page for the contract: served by the local API at /docs without a token, from
/// the pinned Swagger UI files scripts/setup.sh installed, on the local /openapi.yaml; it loads
/// nothing from anywhere else, and serves no file outside its directory.
#[tokio::test]
async fn the_docs_page_is_served_from_the_pinned_files() {
    let dir = local_api::docs_dir().expect("scripts/setup.sh installs Swagger UI into .local/swagger-ui");
    let env = e2e::TestEnv::new().await;
    let api = env.spawn_api().await;
    let get = |path: &'static str| {
        let api = api.clone();
        async move {
            let r = reqwest::get(format!("{}{path}", api.base)).await.unwrap();
            let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), kind, r.bytes().await.unwrap())
        }
    };
    let (status, kind, page) = get("/docs").await;
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains(r#"url: "/openapi.yaml""#), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"),
        "{page}"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    ] {
        assert!(page.contains(&format!("/docs/{asset}")), "{asset}");
    }
    let (status, kind, bundle) = get("/docs/swagger-ui-bundle.js").await;
    assert_eq!((status, kind.as_str()), (200, "text/javascript; charset=utf-8"));
    assert_eq!(
        bundle.to_vec(),
        std::fs::read(dir.join("swagger-ui-bundle.js")).unwrap()
    );
    assert_eq!(get("/docs/swagger-ui.css").await.0, 200);
    for outside in [
        "/docs/../Cargo.toml",
        "/docs/..%2FCargo.toml",
        "/docs/.hidden.js",
        "/docs/package.json",
        "/docs/nope.js",
    ] {
        assert_eq!(get(outside).await.0, 404, "{outside}");
    }
}
