//! Operating on AWS, proved on the real binaries: a function run as Lambda runs it (the fake
//! Runtime API of `e2e::runtime`) writes its business metrics as top-level EMF lines on stdout,
//! logs every line of a request with its request id and route and never a token; and the
//! dashboard in template.yaml shows every metric the functions emit.

use e2e::TestEnv;
use e2e::runtime::{Outcome, Sandbox, binary};
use serde_json::Value;
use shared::metrics::{Metric, NAMESPACE};

const STACK: &str = "ops-test";

fn sample(file: &str) -> String {
    std::fs::read_to_string(local_api::repo_root().join("events").join(file)).expect("sample event")
}

async fn checkin_sandbox(env: &TestEnv) -> Sandbox {
    let vars = [
        ("TABLE_NAME", env.table.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", e2e::endpoint()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("METRICS_STACK", STACK.to_owned()),
        ("BUSINESS_TIME_ZONE", "Asia/Shanghai".to_owned()),
    ];
    Sandbox::start(binary("checkin"), "campaign-checkin", &vars).await
}

fn answer(outcome: Outcome) -> (u16, Value) {
    match outcome {
        Outcome::Response(response) => {
            let status = response["statusCode"].as_u64().expect("statusCode") as u16;
            let body = serde_json::from_str(response["body"].as_str().unwrap_or("null")).expect("JSON body");
            (status, body)
        }
        Outcome::Error(error) => panic!("the invocation failed: {error}"),
    }
}

/// The EMF lines on stdout: top-level JSON objects with `_aws` (not wrapped by the log formatter).
fn emf_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// The EMF line of one request: the one with `Requests` and no second dimension.
fn request_lines(lines: &[String]) -> Vec<Value> {
    emf_lines(lines)
        .into_iter()
        .filter(|v| v.get(Metric::Requests.name()).is_some())
        .collect()
}

fn assert_emf_shape(line: &Value) {
    let directives = line["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(line["_aws"]["Timestamp"].as_i64().expect("Timestamp") > 1_700_000_000_000);
    for directive in directives {
        assert_eq!(directive["Namespace"], NAMESPACE);
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            for dimension in set.as_array().expect("a dimension set") {
                assert!(line[dimension.as_str().expect("name")].is_string(), "{line}");
            }
        }
        for metric in directive["Metrics"].as_array().expect("Metrics") {
            assert!(line[metric["Name"].as_str().expect("Name")].is_number(), "{line}");
        }
    }
    assert_eq!(line["Stack"], STACK);
}

#[tokio::test]
async fn a_check_in_on_the_real_binary_writes_top_level_emf_lines_with_the_right_values() {
    let env = TestEnv::new().await;
    let mut sandbox = checkin_sandbox(&env).await;
    let event = sample("post-v1-checkins.json");

    let (_, outcome) = sandbox.invoke(&event).await;
    let (status, body) = answer(outcome);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checked_in_now"], true);
    let points = body["points_awarded"].as_u64().expect("points");
    assert!(points > 0);

    sandbox
        .wait_for_line(|l| l.starts_with('{') && l.contains("\"CheckIns\""))
        .await;
    let lines = sandbox.stdout();
    let requests = request_lines(&lines);
    assert_eq!(
        requests.len(),
        1,
        "one EMF line for the request:\n{}",
        lines.join("\n")
    );
    let first = &requests[0];
    assert_emf_shape(first);
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Stack"]])
    );
    assert_eq!(first["CheckIns"], 1);
    assert_eq!(first["Requests"], 1);
    assert!(first.get("ServerErrors").is_none());
    let earned: Vec<Value> = emf_lines(&lines)
        .into_iter()
        .filter(|l| l.get("Reason").is_some())
        .collect();
    assert_eq!(earned.len(), 1, "{earned:?}");
    assert_emf_shape(&earned[0]);
    assert_eq!(earned[0]["Reason"], "checkin");
    assert_eq!(earned[0]["PointsEarned"].as_u64(), Some(points));
    assert_eq!(
        earned[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Stack", "Reason"]])
    );

    // The same call again (its Idempotency-Key): the same answer, nothing counted but the request.
    let (_, outcome) = sandbox.invoke(&event).await;
    let (status, again) = answer(outcome);
    assert_eq!((status, &again), (200, &body));
    for _ in 0..200 {
        if request_lines(&sandbox.stdout()).len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let lines = sandbox.stdout();
    let requests = request_lines(&lines);
    assert_eq!(requests.len(), 2);
    assert!(requests[1].get("CheckIns").is_none(), "{}", requests[1]);
    assert_eq!(
        emf_lines(&lines)
            .iter()
            .filter(|l| l.get("Reason").is_some())
            .count(),
        1
    );
    // The same day with a fresh key (the app's retry button): a repeat, which stores its answer but
    // is no check-in: still only the request counts.
    let fresh = event.replace("checkin-7d1c2a90-2026-11-23", "checkin-7d1c2a90-again");
    assert_ne!(fresh, event);
    let (_, outcome) = sandbox.invoke(&fresh).await;
    let (status, repeat) = answer(outcome);
    assert_eq!(
        (status, &repeat["checked_in_now"]),
        (200, &serde_json::json!(false))
    );
    for _ in 0..200 {
        if request_lines(&sandbox.stdout()).len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let requests = request_lines(&sandbox.stdout());
    assert_eq!(requests.len(), 3);
    assert!(requests[2].get("CheckIns").is_none(), "{}", requests[2]);
    assert!(sandbox.alive());
    env.assert_audit_clean().await;
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id_and_route_and_no_token() {
    let env = TestEnv::new().await;
    let mut sandbox = checkin_sandbox(&env).await;
    let mut event: Value = serde_json::from_str(&sample("post-v1-checkins.json")).expect("event");
    let token = event["headers"]["authorization"]
        .as_str()
        .expect("token")
        .to_owned();
    // Claims the authorizer would never pass: the handler refuses (401) and logs why.
    event["requestContext"]["authorizer"]["jwt"]["claims"] = serde_json::json!({});
    let (_, outcome) = sandbox.invoke(&event.to_string()).await;
    let (status, body) = answer(outcome);
    assert_eq!((status, body["type"].as_str()), (401, Some("unauthenticated")));

    let refused = sandbox.wait_for_line(|l| l.contains("request refused")).await;
    let refused: Value = serde_json::from_str(&refused).expect("a JSON log line");
    assert_eq!(refused["level"], "INFO");
    sandbox.wait_for_line(|l| l.contains("\"ProblemType\"")).await;

    let lines = sandbox.stdout();
    let secret = token.trim_start_matches("Bearer ");
    let mut request_lines = 0;
    for line in &lines {
        assert!(!line.contains(secret), "a log line carries the token: {line}");
        let value: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if value.get("_aws").is_some() {
            continue;
        }
        let spans = value["spans"].as_array().cloned().unwrap_or_default();
        if spans.iter().any(|s| s["name"] == "Lambda runtime invoke") {
            request_lines += 1;
            let request = spans
                .iter()
                .find(|s| s["name"] == "request")
                .unwrap_or_else(|| panic!("a request's log line without its request span: {line}"));
            assert_eq!(request["request_id"], "Zx8YhgQ2oAMEVKQ=", "{line}");
            assert_eq!(request["route"], "POST /v1/checkins", "{line}");
        }
    }
    assert!(
        request_lines >= 1,
        "the refusal was logged inside the request:\n{}",
        lines.join("\n")
    );
    let problem = emf_lines(&lines)
        .into_iter()
        .find(|l| l.get("ProblemType").is_some())
        .expect("Errors by problem type");
    assert_emf_shape(&problem);
    assert_eq!(
        (problem["ProblemType"].as_str(), problem["Errors"].as_u64()),
        (Some("unauthenticated"), Some(1))
    );
    assert!(sandbox.alive());
    env.assert_audit_clean().await;
}

#[test]
fn the_dashboard_shows_every_metric_the_functions_emit() {
    let text = std::fs::read_to_string(local_api::repo_root().join("template.yaml")).expect("template");
    let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let body = &template["Resources"]["Dashboard"]["Properties"]["DashboardBody"];
    let body = match body {
        serde_yaml_ng::Value::Tagged(tagged) => tagged.value.as_str().expect("a !Sub string"),
        other => panic!("DashboardBody is {other:?}"),
    };
    // ${…} placeholders become strings so the body parses as the JSON CloudWatch will get.
    let mut json = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}').expect("closing brace");
        json.push_str(&rest[..start]);
        json.push_str("SUB");
        rest = &rest[end + 1..];
    }
    json.push_str(rest);
    let dashboard: Value = serde_json::from_str(&json).expect("the dashboard body is JSON");
    let mut shown = std::collections::BTreeSet::new();
    for widget in dashboard["widgets"].as_array().expect("widgets") {
        for metric in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts = metric.as_array().expect("a metric row");
            if let Some(name) = parts.get(1).and_then(Value::as_str)
                && parts[0] == NAMESPACE
            {
                shown.insert(name.to_owned());
            }
            if let Some(expression) = parts[0]["expression"].as_str()
                && expression.contains(NAMESPACE)
            {
                let name = expression
                    .split("MetricName=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next());
                shown.insert(name.expect("a metric name in the search").to_owned());
            }
        }
    }
    let emitted: std::collections::BTreeSet<String> =
        Metric::ALL.iter().map(|m| m.name().to_owned()).collect();
    assert_eq!(shown, emitted);
}
