//! Limits, on every route that reads a body: over 16 KiB → 413, a wrong content type → 415,
//! malformed JSON, an unknown field or a wrong type → 400, each changing nothing; and in the
//! contract, every string and list a request carries is bounded and every integer range-checked
//! (what the handlers enforce is fuzzed against it: tests/py/test_fuzz.py).

use e2e::{TestEnv, admin_token};
use reqwest::Method;
use serde_json::Value;

/// A route's sample body (events/<method>-<path segments>.json), with the path it was sent to.
fn sample(route: &str) -> (String, Value) {
    let (method, path) = route.split_once(' ').unwrap();
    let mut name = method.to_ascii_lowercase();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        name.push('-');
        name.push_str(segment.trim_start_matches('{').trim_end_matches('}'));
    }
    let body = e2e::story::event_body(&name);
    let file = local_api::repo_root().join("events").join(format!("{name}.json"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    (event["rawPath"].as_str().unwrap().to_owned(), body)
}

fn routes_with_bodies() -> Vec<String> {
    let contract = e2e::contract::contract();
    contract
        .routes()
        .into_iter()
        .filter(|route| {
            let (method, path) = route.split_once(' ').unwrap();
            contract.doc()["paths"][path][method.to_ascii_lowercase()]
                .get("requestBody")
                .is_some()
        })
        .collect()
}

#[tokio::test]
async fn every_body_is_bounded_typed_and_closed() {
    let env = TestEnv::new().await;
    let api = env.spawn_api().await;
    // An admin is let into every route (admins are members, and points writers).
    let admin = admin_token("ops");
    let routes = routes_with_bodies();
    assert!(routes.len() >= 20, "{routes:?}");
    let before = env.item_count().await;
    for route in &routes {
        let (method, _) = route.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (path, body) = sample(route);
        let send = |content_type: &'static str, raw: Vec<u8>| {
            api.request(method.clone(), &path)
                .bearer_auth(&admin)
                .header("content-type", content_type)
                .header("idempotency-key", "limits")
                .header("x-debug-now", "2026-11-23T08:00:00Z")
                .body(raw)
        };
        // 16 KiB and one byte, as valid JSON (the sample with a long unknown field).
        let mut big = body.clone();
        if let Some(object) = big.as_object_mut() {
            object.insert("padding".into(), Value::String("x".repeat(16 * 1024)));
        }
        let big = serde_json::to_vec(&big).unwrap();
        assert!(big.len() > 16 * 1024);
        api.send(send("application/json", big))
            .await
            .assert_problem(413, "payload-too-large");
        let json = serde_json::to_vec(&body).unwrap();
        api.send(send("text/plain", json.clone()))
            .await
            .assert_problem(415, "unsupported-media-type");
        api.send(send("application/json", b"not json".to_vec()))
            .await
            .assert_problem(400, "malformed-json");
        let mut unknown = body.clone();
        if let Some(object) = unknown.as_object_mut() {
            object.insert("no_such_field".into(), Value::Bool(true));
            let reply = api
                .send(send("application/json", serde_json::to_vec(&unknown).unwrap()))
                .await;
            reply.assert_problem(400, "invalid-request");
            assert!(
                reply.body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("no_such_field"),
                "{route}: {}",
                reply.body
            );
        }
        // A wrong type for the first field of the sample.
        if let Some((field, value)) = body.as_object().and_then(|o| o.iter().next()) {
            let mut wrong = body.clone();
            wrong[field] = match value {
                Value::String(_) => Value::Array(vec![]),
                _ => Value::String("nope".into()),
            };
            let reply = api
                .send(send("application/json", serde_json::to_vec(&wrong).unwrap()))
                .await;
            assert_eq!(
                reply.status, 400,
                "{route}: {field} of the wrong type: {}",
                reply.body
            );
        }
    }
    assert_eq!(
        env.item_count().await,
        before,
        "a refused request wrote something"
    );
}

/// Every string in a request (body, path, query, header) has a length bound (`maxLength`, or an
/// `enum`, or a `format` with a fixed shape), every array a `maxItems`, every integer a minimum
/// and a maximum.
#[test]
fn every_request_value_is_bounded_in_the_contract() {
    let doc = e2e::contract::contract().doc().clone();
    let mut unbounded = Vec::new();
    let resolve = |schema: &Value| -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                doc.pointer(pointer).cloned().unwrap_or(Value::Null)
            }
            None => schema.clone(),
        }
    };
    fn walk(
        schema: &Value,
        at: String,
        resolve: &dyn Fn(&Value) -> Value,
        out: &mut Vec<String>,
        depth: u32,
    ) {
        if depth > 12 {
            return;
        }
        let schema = resolve(schema);
        for key in ["oneOf", "anyOf", "allOf"] {
            for (i, s) in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                walk(s, format!("{at}/{key}/{i}"), resolve, out, depth + 1);
            }
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let has = |k: &str| schema.get(k).is_some();
        // A pattern bounds the length when every repetition in it is bounded.
        let bounded_pattern = schema["pattern"].as_str().is_some_and(|p| {
            !p.contains('*')
                && !p.contains('+')
                && !p.contains(",}")
                && p.starts_with('^')
                && p.ends_with('$')
        });
        if types.contains(&"string")
            && !(has("maxLength") || has("enum") || has("const") || has("format") || bounded_pattern)
        {
            out.push(format!("{at}: a string without maxLength"));
        }
        if types.contains(&"integer")
            && !(has("enum")
                || has("const")
                || (has("minimum") || has("exclusiveMinimum")) && (has("maximum") || has("exclusiveMaximum")))
        {
            out.push(format!("{at}: an integer without a range"));
        }
        if types.contains(&"array") {
            if !has("maxItems") {
                out.push(format!("{at}: an array without maxItems"));
            }
            if let Some(items) = schema.get("items") {
                walk(items, format!("{at}/items"), resolve, out, depth + 1);
            }
        }
        for (name, property) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            walk(property, format!("{at}.{name}"), resolve, out, depth + 1);
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            walk(extra, format!("{at}.*"), resolve, out, depth + 1);
        }
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(op) = op.as_object() else { continue };
            let at = format!("{} {path}", method.to_uppercase());
            if let Some(body) = op.get("requestBody") {
                let body = resolve(body);
                if let Some(schema) = body.pointer("/content/application~1json/schema") {
                    walk(schema, format!("{at} body"), &resolve, &mut unbounded, 0);
                }
            }
            let shared = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let own = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for parameter in shared.iter().chain(own.iter()) {
                let parameter = resolve(parameter);
                let name = parameter["name"].as_str().unwrap_or("?");
                walk(
                    &parameter["schema"],
                    format!("{at} {name}"),
                    &resolve,
                    &mut unbounded,
                    0,
                );
            }
        }
    }
    assert!(
        unbounded.is_empty(),
        "{} unbounded request values:\n{}",
        unbounded.len(),
        unbounded.join("\n")
    );
}
