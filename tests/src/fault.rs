//! A fault-injecting proxy in front of DynamoDB Local: the SDK makes real HTTP calls, and chosen
//! calls get a real DynamoDB error response (throttling, a transaction conflict) instead of
//! reaching the emulator. Everything else is forwarded unchanged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A DynamoDB error to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `ThrottlingException` (the SDK retries it, then gives up).
    Throttle,
    /// `TransactionCanceledException` whose every reason is `TransactionConflict`, as real
    /// DynamoDB answers when another transaction holds an item (DynamoDB Local never does).
    TransactionConflict,
}

/// Decides per call: the operation name (`GetItem`, `TransactWriteItems`…) and how many calls of
/// that operation came before this one.
pub type Rule = Arc<dyn Fn(&str, usize) -> Option<Fault> + Send + Sync>;

pub struct FaultProxy {
    pub endpoint: String,
    calls: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: String, rule: Rule) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let calls: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let state = (Arc::new(upstream), calls.clone(), rule, reqwest::Client::new());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (upstream, calls, rule, client) = state.clone();
                        async move { Ok::<_, Infallible>(proxy(req, &upstream, &calls, &rule, &client).await) }
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
        self.calls
            .lock()
            .expect("lock")
            .get(operation)
            .cloned()
            .unwrap_or_default()
    }
}

async fn proxy(
    req: hyper::Request<Incoming>,
    upstream: &str,
    calls: &Mutex<HashMap<String, Vec<String>>>,
    rule: &Rule,
    client: &reqwest::Client,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
    let nth = {
        let mut calls = calls.lock().expect("lock");
        let seen = calls.entry(operation.clone()).or_default();
        seen.push(String::from_utf8_lossy(&body).into_owned());
        seen.len() - 1
    };
    if let Some(fault) = rule(&operation, nth) {
        return fault_response(fault);
    }
    let mut forward = client.post(format!("{upstream}{}", parts.uri.path())).body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    match forward.send().await {
        Ok(resp) => {
            let mut out = hyper::Response::builder().status(resp.status().as_u16());
            for (name, value) in resp.headers() {
                out = out.header(name, value);
            }
            let bytes = resp.bytes().await.unwrap_or_default();
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
        Fault::Throttle => serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "message": "Rate of requests exceeds the allowed throughput."
        }),
        Fault::TransactionConflict => serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
            "CancellationReasons": [
                { "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" }
            ]
        }),
    };
    hyper::Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}
