//! The floor the benchmark (`tools/bench`) measures the functions against: a Lambda made of
//! `lambda_runtime` and a DynamoDB client built as the functions build theirs
//! (`shared::store::lambda_client`), and nothing else.
//!
//! Its init makes one `GetItem` (the functions open their connection during init too:
//! `App::warm`). An event `{}` makes one `GetItem`. An event `{"replay": [{"op": "Query", "body": "…"}, …]}`
//! sends those DynamoDB requests, in order, through the SDK (each as its operation, with the
//! recorded JSON body in place of the one the builder made): the same calls a function's handler
//! made, without the function.
//!
//! `bench-floor load <plan.json>` is the bare SDK loop of the benchmark's overhead section
//! instead: see [`bench_floor::load`].

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use bench_floor::replay;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let client = shared::store::lambda_client().await;
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, plan] = args.as_slice()
        && mode == "load"
    {
        let plan = serde_json::from_str(&std::fs::read_to_string(plan)?)?;
        println!("{}", bench_floor::load(&client, plan).await);
        return Ok(());
    }
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "campaign".to_owned());
    let (client, table) = (&client, table.as_str());
    get_one(client, table).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(client, table, event.payload).await
    }))
    .await
}

async fn handle(client: &Client, table: &str, event: Value) -> Result<Value, Error> {
    let Some(calls) = event.get("replay").and_then(Value::as_array) else {
        return Ok(json!({ "found": get_one(client, table).await? }));
    };
    let mut failed = 0;
    for call in calls {
        let op = call["op"].as_str().unwrap_or_default();
        let body = call["body"].as_str().unwrap_or_default().to_owned();
        if replay(client, table, op, body).await.is_err() {
            failed += 1;
        }
    }
    Ok(json!({ "calls": calls.len(), "failed": failed }))
}

/// One strongly consistent `GetItem`; whether it found the item.
async fn get_one(client: &Client, table: &str) -> Result<bool, Error> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("FLOOR".into()))
        .key("sk", AttributeValue::S("FLOOR".into()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.item.is_some())
}
