//! The floor's replay: DynamoDB requests recorded from a function, sent again through the SDK.
//! Used by the floor binary (`src/main.rs`) and by the benchmark's bare SDK loop.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Sends `body` as a DynamoDB `op` request: the builder gets the least input its checks need,
/// and the recorded body replaces what it serialised (before signing, so it is signed as sent).
pub async fn replay(client: &Client, table: &str, op: &str, body: String) -> Result<(), Error> {
    let swap = move |request: &mut aws_sdk_dynamodb::config::http::HttpRequest| {
        request
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *request.body_mut() = SdkBody::from(body.clone());
    };
    let key = |b| ("pk", AttributeValue::S(b));
    let (k, v) = key("FLOOR".to_owned());
    match op {
        "GetItem" => {
            client
                .get_item()
                .table_name(table)
                .key(k, v)
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "Query" => {
            client
                .query()
                .table_name(table)
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "PutItem" => {
            client
                .put_item()
                .table_name(table)
                .item(k, v)
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "UpdateItem" => {
            client
                .update_item()
                .table_name(table)
                .key(k, v)
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "DeleteItem" => {
            client
                .delete_item()
                .table_name(table)
                .key(k, v)
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "Scan" => {
            client
                .scan()
                .table_name(table)
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "BatchGetItem" => {
            client
                .batch_get_item()
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "BatchWriteItem" => {
            client
                .batch_write_item()
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "TransactGetItems" => {
            client
                .transact_get_items()
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        "TransactWriteItems" => {
            let check = ConditionCheck::builder()
                .table_name(table)
                .key(k, v)
                .condition_expression("attribute_exists(pk)")
                .build()?;
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(check).build())
                .customize()
                .mutate_request(swap)
                .send()
                .await?;
        }
        other => return Err(format!("no replay for {other}").into()),
    }
    Ok(())
}

/// The bare SDK loop: `concurrency` tasks send one route's recorded DynamoDB requests (`calls`:
/// `[[op, body], …]`) in order, again and again for `seconds`, each time with the member `from`
/// replaced by `<prefix><n>` (a fresh member per request, as the load through the API has).
/// Answers `{requests, seconds, rps, p50_ms, p99_ms, failed}`.
pub async fn load(client: &Client, plan: Value) -> Value {
    let calls: Vec<(String, String)> = plan["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c[0].as_str()?.to_owned(), c[1].as_str()?.to_owned())))
        .collect();
    let from = plan["from"].as_str().unwrap_or_default().to_owned();
    let prefix = plan["prefix"].as_str().unwrap_or("floor-").to_owned();
    let table = plan["table"].as_str().unwrap_or_default().to_owned();
    let concurrency = plan["concurrency"].as_u64().unwrap_or(16) as usize;
    let until = Instant::now() + Duration::from_secs_f64(plan["seconds"].as_f64().unwrap_or(5.0));
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, calls, from, prefix, table) = (
                client.clone(),
                calls.clone(),
                from.clone(),
                prefix.clone(),
                table.clone(),
            );
            let (next, failed, first_error) = (next.clone(), failed.clone(), first_error.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let member = format!("{prefix}{}", next.fetch_add(1, Ordering::Relaxed));
                    let t = Instant::now();
                    for (op, body) in &calls {
                        if let Err(err) = replay(&client, &table, op, body.replace(&from, &member)).await {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                            first.get_or_insert_with(|| format!("{op}: {err:?}"));
                        }
                    }
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |p: f64| {
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies
            .get(rank.clamp(1, latencies.len().max(1)) - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    json!({
        "requests": latencies.len(),
        "seconds": seconds,
        "rps": latencies.len() as f64 / seconds,
        "p50_ms": at(50.0),
        "p99_ms": at(99.0),
        "failed": failed.load(Ordering::Relaxed),
        "first_error": *first_error.lock().unwrap_or_else(|e| e.into_inner()),
    })
}
