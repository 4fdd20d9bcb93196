//! `local-api`: the whole HTTP API on 127.0.0.1, against DynamoDB Local.
//!
//! Environment: `AWS_ENDPOINT_URL_DYNAMODB` (DynamoDB Local, required), `TABLE_NAME` (default
//! `campaign-local`), `LOCAL_API_PORT` (default 3000), `TEMPLATE` (default `template.yaml`; the
//! `openapi.yaml` beside it is served at `/openapi.yaml`), and the functions' own variables
//! (`BUSINESS_TIME_ZONE`, `CAMPAIGN_DEV_CLOCK`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use local_api::server::{LocalApi, serve};
use local_api::table::ensure_table;
use local_api::template::Template;
use shared::{App, Config};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_init();
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .map_err(|_| "AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local (scripts/dev.sh sets it)")?;
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "campaign-local".to_owned());
    let port: u16 = std::env::var("LOCAL_API_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let template_path =
        PathBuf::from(std::env::var("TEMPLATE").unwrap_or_else(|_| "template.yaml".to_owned()));

    let template = Template::load(&template_path)?;
    let client = shared::store::local_client(&endpoint);
    if ensure_table(&client, &table, &template.table()?).await? {
        tracing::info!(%table, "created the table from template.yaml");
    }
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        other => std::env::var(other).ok(),
    })?;
    let dev_clock = config.dev_clock;
    let openapi_path = template_path.with_file_name("openapi.yaml");
    let openapi = std::fs::read(&openapi_path).map_err(|e| format!("{}: {e}", openapi_path.display()))?;
    let app = App::new(config, client);
    // The template's schedules (contest settlement) fire at their rates, as EventBridge would.
    let schedules = template.schedules()?;
    for schedule in &schedules {
        println!(
            "  every {:>5} s  -> {}",
            schedule.every.as_secs(),
            schedule.function
        );
    }
    local_api::schedule::spawn(Arc::new(app.clone()), schedules);
    let docs = local_api::docs_dir();
    let api = Arc::new(
        LocalApi::new(app, &template)?
            .with_openapi(openapi)
            .with_docs(docs.clone()),
    );
    // Loopback only: tokens are decoded without checking signatures.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("Campaign Functions local API on http://{addr} (DynamoDB Local at {endpoint}, table {table})");
    println!("The contract (OpenAPI 3.1): http://{addr}/openapi.yaml");
    match docs {
        Some(_) => println!("Its interactive page: http://{addr}/docs"),
        None => println!("(no /docs page: scripts/setup.sh installs Swagger UI)"),
    }
    println!(
        "JWT signatures are NOT checked locally; dev clock (x-debug-now) is {}",
        if dev_clock { "ON" } else { "off" }
    );
    for route in api.routes() {
        println!("  {:<6} {}  -> {}", route.method, route.path, route.function);
    }
    serve(listener, api, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    println!("local API stopped");
    Ok(())
}

/// Human-readable lines on the terminal, filtered by `RUST_LOG` in full `EnvFilter` syntax.
fn tracing_init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt().with_env_filter(filter).init();
}
