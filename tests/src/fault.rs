//! A fault-injecting proxy in front of DynamoDB Local: the SDK makes real HTTP calls, and chosen
//! calls get a real DynamoDB error response (throttling, a transaction conflict) instead of
//! reaching the emulator, reach it late, or reach it and lose their answer. Everything else is
//! forwarded unchanged. Every call is recorded (operation and body), so tests can also count round
//! trips and read which actions touched which table or index.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

/// A DynamoDB error to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `ThrottlingException` (the SDK retries it, then gives up).
    Throttle,
    /// `TransactionCanceledException` whose every reason is `TransactionConflict`, as real
    /// DynamoDB answers when another transaction holds an item (DynamoDB Local never does).
    TransactionConflict,
    /// `TransactionConflictException`: what real DynamoDB answers a plain `PutItem` or
    /// `UpdateItem` on an item that a transaction holds at that moment.
    ConflictException,
    /// The call reaches DynamoDB Local and is applied, but its answer is lost: the client gets a
    /// 500 `InternalServerError` instead (the SDK retries it, as it would a dropped connection).
    LoseResponse,
    /// The call reaches DynamoDB Local only after this delay (a slow or hanging store).
    Delay(Duration),
    /// "Stale index": the call is answered with the answer an earlier identical call got (an
    /// index `Query` seeing an older state, as a lagging GSI would), or forwarded if none was.
    Stale,
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    pub body: String,
    /// Capacity units DynamoDB Local reported for it (the proxy asks for `TOTAL`).
    pub capacity: f64,
    /// DynamoDB Local's answer to it, when it succeeded (empty otherwise).
    pub answer: String,
}

/// An IAM action a call needed, and what it touched: `table` or `index`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub action: String,
    pub resource: &'static str,
}

/// Decides per call: the operation name (`GetItem`, `TransactWriteItems`…) and how many calls of
/// that operation came before this one.
pub type Rule = Arc<dyn Fn(&str, usize) -> Option<Fault> + Send + Sync>;

/// Like [`Rule`], also seeing the request body (to fault calls that touch a given item).
pub type BodyRule = Arc<dyn Fn(&str, usize, &str) -> Option<Fault> + Send + Sync>;

pub struct FaultProxy {
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// The last answer to each (operation, body), for [`Fault::Stale`].
type Answers = Mutex<std::collections::HashMap<(String, String), Bytes>>;

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: String, rule: Rule) -> Self {
        Self::start_matching(upstream, Arc::new(move |op, nth, _| rule(op, nth))).await
    }

    /// Starts a proxy whose rule also sees each request's body.
    pub async fn start_matching(upstream: String, rule: BodyRule) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let answers: Arc<Answers> = Arc::default();
        let state = (
            Arc::new(upstream),
            calls.clone(),
            rule,
            reqwest::Client::new(),
            answers,
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (upstream, calls, rule, client, answers) = state.clone();
                        async move {
                            Ok::<_, Infallible>(proxy(req, &upstream, &calls, &rule, &client, &answers).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { endpoint, calls }
    }

    /// How many calls of `operation` reached the proxy (faulted or forwarded).
    pub fn calls(&self, operation: &str) -> usize {
        self.bodies(operation).len()
    }

    /// The request bodies of the calls of `operation`, in order.
    pub fn bodies(&self, operation: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| c.operation == operation)
            .map(|c| c.body)
            .collect()
    }

    /// Every call so far, in order.
    pub fn all(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    /// How many calls so far (of any operation).
    pub fn total(&self) -> usize {
        self.calls.lock().expect("lock").len()
    }

    /// The calls after the first `n` (e.g. `total()` taken before an API call).
    pub fn since(&self, n: usize) -> Vec<Call> {
        self.all().into_iter().skip(n).collect()
    }

    /// Capacity units of the calls after the first `n`, as DynamoDB Local reports them (a
    /// regression threshold, not what AWS bills for transactions).
    pub fn capacity_since(&self, n: usize) -> f64 {
        self.since(n).iter().map(|c| c.capacity).sum()
    }

    /// Every IAM action the recorded calls needed, with the kind of resource it touched.
    pub fn accesses(&self) -> BTreeSet<Access> {
        self.all().iter().flat_map(accesses_of).collect()
    }
}

/// The IAM actions one DynamoDB call needs: a transaction needs its members' item actions.
pub fn accesses_of(call: &Call) -> Vec<Access> {
    let body: serde_json::Value = serde_json::from_str(&call.body).unwrap_or_default();
    let on = |action: &str, v: &serde_json::Value| Access {
        action: action.to_owned(),
        resource: if v.get("IndexName").is_some() {
            "index"
        } else {
            "table"
        },
    };
    match call.operation.as_str() {
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.iter().next())
            .map(|(kind, member)| {
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => other,
                };
                on(action, member)
            })
            .collect(),
        op => vec![on(op, &body)],
    }
}

async fn proxy(
    req: hyper::Request<Incoming>,
    upstream: &str,
    calls: &Mutex<Vec<Call>>,
    rule: &BodyRule,
    client: &reqwest::Client,
    answers: &Answers,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let text = String::from_utf8_lossy(&body).into_owned();
    let (index, nth) = {
        let mut calls = calls.lock().expect("lock");
        let nth = calls.iter().filter(|c| c.operation == operation).count();
        calls.push(Call {
            operation: operation.clone(),
            body: text.clone(),
            capacity: 0.0,
            answer: String::new(),
        });
        (calls.len() - 1, nth)
    };
    let fault = rule(&operation, nth, &text);
    let answer_key = (operation.clone(), text.clone());
    match fault {
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Stale) => {
            let earlier = answers.lock().expect("lock").get(&answer_key).cloned();
            if let Some(bytes) = earlier {
                return hyper::Response::builder()
                    .status(200)
                    .header("content-type", "application/x-amz-json-1.0")
                    .body(Full::new(bytes))
                    .expect("response");
            }
        }
        Some(Fault::LoseResponse) | None => {}
        Some(other) => return fault_response(other),
    }
    let mut forward = client
        .post(format!("{upstream}{}", parts.uri.path()))
        .body(with_capacity(&operation, body));
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    let forwarded = forward.send().await;
    if fault == Some(Fault::LoseResponse) {
        // Applied by DynamoDB Local (the answer is read in full first), then lost on the way back.
        if let Ok(resp) = forwarded {
            let _ = resp.bytes().await;
        }
        return error_response(
            500,
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "message": "Internal server error"
            }),
        );
    }
    match forwarded {
        Ok(resp) => {
            let mut out = hyper::Response::builder().status(resp.status().as_u16());
            for (name, value) in resp.headers() {
                out = out.header(name, value);
            }
            let ok = resp.status().is_success();
            let bytes = resp.bytes().await.unwrap_or_default();
            if ok {
                let mut calls = calls.lock().expect("lock");
                calls[index].capacity = capacity_of(&bytes);
                calls[index].answer = String::from_utf8_lossy(&bytes).into_owned();
                drop(calls);
                answers.lock().expect("lock").insert(answer_key, bytes.clone());
            }
            out.body(Full::new(bytes)).expect("response")
        }
        Err(_) => hyper::Response::builder()
            .status(502)
            .body(Full::new(Bytes::new()))
            .expect("response"),
    }
}

fn fault_response(fault: Fault) -> hyper::Response<Full<Bytes>> {
    let body = match fault {
        Fault::Throttle => json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "message": "Rate of requests exceeds the allowed throughput."
        }),
        Fault::TransactionConflict => json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
            "CancellationReasons": [
                { "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" }
            ]
        }),
        Fault::ConflictException => json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
            "message": "Transaction is ongoing for the item"
        }),
        Fault::LoseResponse | Fault::Delay(_) | Fault::Stale => {
            unreachable!("forwarded faults have no error body")
        }
    };
    error_response(400, body)
}

fn error_response(status: u16, body: serde_json::Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// Operations that can report the capacity they consumed.
const MEASURED: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
];

/// The request asking for `ReturnConsumedCapacity: TOTAL` (which changes nothing else).
fn with_capacity(operation: &str, body: Bytes) -> Bytes {
    if !MEASURED.contains(&operation) {
        return body;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.entry("ReturnConsumedCapacity")
                .or_insert_with(|| json!("TOTAL"));
            Bytes::from(serde_json::Value::Object(map).to_string())
        }
        _ => body,
    }
}

/// The capacity units an answer reports (one object, or a list for batches and transactions).
fn capacity_of(bytes: &[u8]) -> f64 {
    let body: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let units = |v: &serde_json::Value| v["CapacityUnits"].as_f64().unwrap_or(0.0);
    match &body["ConsumedCapacity"] {
        serde_json::Value::Array(list) => list.iter().map(units).sum(),
        one => units(one),
    }
}
