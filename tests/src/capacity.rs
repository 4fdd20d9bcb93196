//! Capacity units by DynamoDB's published rules, from the calls a recording proxy saw
//! (`crate::fault`), for the benchmark and the tests that pin what each route costs.
//!
//! A read of up to 4 KB is 1 read unit when strongly consistent (0.5 eventually, 2 in a
//! transaction; a get that finds nothing or an empty query still costs one); a write of up to 1 KB
//! is 1 write unit (2 in a transaction); an item in an index costs a write of its projection.
//! Reads are priced from the items in their answers; single writes take DynamoDB Local's figure
//! (it applies the rules to the item it wrote); transactional writes are priced here from the
//! items' sizes, read back after the request, because DynamoDB Local does not bill them as AWS
//! does.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use crate::fault::{Call, FaultProxy};

pub fn number_size(n: &str) -> usize {
    let digits: String = n
        .trim_start_matches('-')
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

/// The size DynamoDB counts for a value.
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// The size DynamoDB counts for an item: names and values.
pub fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// A value in DynamoDB's JSON wire format (`{"S": "…"}`) as the SDK's type.
fn wire(v: &Value) -> Option<AttributeValue> {
    let (kind, inner) = v.as_object()?.iter().next()?;
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(true),
        "L" => AttributeValue::L(inner.as_array()?.iter().filter_map(wire).collect()),
        "M" => AttributeValue::M(wire_map(inner)?),
        "SS" => AttributeValue::Ss(
            inner
                .as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        "NS" => AttributeValue::Ns(
            inner
                .as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => return None,
    })
}

fn wire_map(v: &Value) -> Option<std::collections::HashMap<String, AttributeValue>> {
    v.as_object()?
        .iter()
        .map(|(k, v)| wire(v).map(|v| (k.clone(), v)))
        .collect()
}

/// One item a write touched: its key, and what the write cost by the published rules.
#[derive(Debug, Clone)]
pub struct Touch {
    pub pk: String,
    pub sk: String,
    pub write_units: f64,
    /// Index partitions written (index name and partition key), each a write of 1 KB or less
    /// (gsi2 projects keys only; gsi1 the item, counted by its size).
    pub index_writes: Vec<(String, String, f64)>,
}

/// The published-rule cost of one request's recorded calls.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    pub calls: BTreeMap<String, usize>,
    pub read_units: f64,
    pub write_units: f64,
    /// What DynamoDB Local reported (a regression threshold only).
    pub local_units: f64,
    pub touches: Vec<Touch>,
    pub transact_actions: usize,
}

fn is_read(op: &str) -> bool {
    matches!(
        op,
        "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems"
    )
}

async fn stored_size(
    client: &Client,
    table: &str,
    key: &std::collections::HashMap<String, AttributeValue>,
) -> Option<(usize, std::collections::HashMap<String, AttributeValue>)> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .ok()?;
    out.item.map(|i| (item_size(&i), i))
}

pub fn units(size: usize, per: usize) -> f64 {
    size.max(1).div_ceil(per) as f64
}

fn key_text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        _ => String::new(),
    }
}

fn index_writes(
    item: &std::collections::HashMap<String, AttributeValue>,
    size: usize,
) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    if item.contains_key("gsi1pk") {
        out.push(("gsi1".to_owned(), key_text(item, "gsi1pk"), units(size, 1024)));
    }
    if item.contains_key("gsi2pk") {
        out.push(("gsi2".to_owned(), key_text(item, "gsi2pk"), 1.0));
    }
    out
}

fn item_size_of(v: &Value) -> usize {
    wire_map(v).map_or(0, |i| item_size(&i))
}

/// Read units of a read, from the items in its answer: 4 KB per unit (per item for gets, for the
/// whole result for a query), halved when eventually consistent, doubled in a transaction; a get
/// that finds nothing and an empty query still cost one unit. A count-only query (no items in
/// its answer) is taken as 100 bytes an item scanned (index keys).
fn read_units(op: &str, body: &Value, answer: &str) -> f64 {
    let answer: Value = serde_json::from_str(answer).unwrap_or_default();
    let factor = |v: &Value| {
        if v["ConsistentRead"].as_bool() == Some(true) {
            1.0
        } else {
            0.5
        }
    };
    match op {
        "GetItem" => factor(body) * units(item_size_of(&answer["Item"]), 4096),
        "BatchGetItem" => {
            let mut total = 0.0;
            for (table, request) in body["RequestItems"].as_object().into_iter().flatten() {
                let keys = request["Keys"].as_array().map_or(0, Vec::len);
                let found = answer["Responses"][table].as_array().cloned().unwrap_or_default();
                let found_units: f64 = found.iter().map(|i| units(item_size_of(i), 4096)).sum();
                total += factor(request) * (found_units + keys.saturating_sub(found.len()) as f64);
            }
            total
        }
        "Query" | "Scan" => {
            let size = match answer["Items"].as_array() {
                Some(items) => items.iter().map(item_size_of).sum(),
                None => answer["ScannedCount"].as_u64().unwrap_or(0) as usize * 100,
            };
            factor(body) * units(size, 4096)
        }
        "TransactGetItems" => answer["Responses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| 2.0 * units(item_size_of(&r["Item"]), 4096))
            .sum(),
        _ => 0.0,
    }
}

/// Prices the calls of one request. Items written in a transaction are read back (after the
/// request) for their size.
pub async fn capacity(client: &Client, table: &str, calls: &[Call]) -> Capacity {
    let mut c = Capacity::default();
    for call in calls {
        *c.calls.entry(call.operation.clone()).or_default() += 1;
        c.local_units += call.capacity;
        let body: Value = serde_json::from_str(&call.body).unwrap_or_default();
        match call.operation.as_str() {
            "TransactWriteItems" => {
                let actions = body["TransactItems"].as_array().cloned().unwrap_or_default();
                c.transact_actions += actions.len();
                for action in actions {
                    let Some((kind, inner)) = action.as_object().and_then(|o| o.iter().next()) else {
                        continue;
                    };
                    let key = match kind.as_str() {
                        "Put" => wire_map(&inner["Item"]).map(|mut i| {
                            i.retain(|k, _| k == "pk" || k == "sk");
                            i
                        }),
                        _ => wire_map(&inner["Key"]),
                    };
                    let Some(key) = key else { continue };
                    let stored = stored_size(client, table, &key).await;
                    let size = match (kind.as_str(), &stored) {
                        ("Put", _) => wire_map(&inner["Item"]).map_or(1, |i| item_size(&i)),
                        (_, Some((size, _))) => *size,
                        // A deleted item: at least one unit.
                        (_, None) => 1,
                    };
                    let write_units = 2.0 * units(size, 1024);
                    c.write_units += write_units;
                    let indexes = stored
                        .as_ref()
                        .map(|(s, i)| index_writes(i, *s))
                        .unwrap_or_default();
                    c.write_units += indexes.iter().map(|i| i.2).sum::<f64>();
                    c.touches.push(Touch {
                        pk: key_text(&key, "pk"),
                        sk: key_text(&key, "sk"),
                        write_units,
                        index_writes: indexes,
                    });
                }
            }
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                c.write_units += call.capacity;
                let key = if call.operation == "PutItem" {
                    wire_map(&body["Item"])
                } else {
                    wire_map(&body["Key"])
                };
                if let Some(key) = key {
                    c.touches.push(Touch {
                        pk: key_text(&key, "pk"),
                        sk: key_text(&key, "sk"),
                        write_units: call.capacity,
                        index_writes: Vec::new(),
                    });
                }
            }
            op if is_read(op) => c.read_units += read_units(op, &body, &call.answer),
            _ => c.write_units += call.capacity,
        }
    }
    c
}

/// Runs one event (an HTTP API event, or a scheduled one for the settlement) through its handler
/// on `app`; answers its JSON answer (a job's result), or what went wrong (a non-2xx answer
/// included).
pub async fn handle_event(app: &shared::App, event: &str) -> Result<Value, String> {
    let raw: Value = serde_json::from_str(event).map_err(|e| e.to_string())?;
    if let Some(route) = raw["routeKey"].as_str() {
        let handler = local_api::registry::handler_for(route).ok_or(format!("no handler for {route}"))?;
        let request = lambda_http::request::from_str(event).map_err(|e| e.to_string())?;
        let response = handler(app, request).await;
        if !response.status().is_success() {
            return Err(format!(
                "{route}: {} {}",
                response.status(),
                String::from_utf8_lossy(response.body().as_ref())
            ));
        }
        Ok(serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null))
    } else {
        let job = local_api::registry::scheduled()
            .into_iter()
            .next()
            .ok_or("no scheduled function")?;
        let event = serde_json::from_value(raw).map_err(|e| e.to_string())?;
        (job.job)(app, event).await
    }
}

/// [`handle_event`] on an `app` whose client goes through `proxy`: answers the answer and the
/// calls the proxy saw meanwhile.
pub async fn run_event(
    app: &shared::App,
    proxy: &FaultProxy,
    event: &str,
) -> Result<(Value, Vec<Call>), String> {
    let before = proxy.total();
    let answer = handle_event(app, event).await?;
    Ok((answer, proxy.since(before)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_published_rules() {
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("-1200"), 2);
        assert_eq!(number_size("1.5"), 2);
        let mut item = std::collections::HashMap::new();
        item.insert("pk".to_owned(), AttributeValue::S("abc".into()));
        item.insert("n".to_owned(), AttributeValue::N("7".into()));
        item.insert(
            "l".to_owned(),
            AttributeValue::L(vec![AttributeValue::Bool(true)]),
        );
        // pk: 2 + 3; n: 1 + 2; l: 1 + 3 + (1 + 1).
        assert_eq!(item_size(&item), 5 + 3 + 6);
        assert_eq!(units(1024, 1024), 1.0);
        assert_eq!(units(1025, 1024), 2.0);
        assert_eq!(units(0, 4096), 1.0);
    }
}
