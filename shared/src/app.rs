//! What a function builds once per cold start and lends to every invocation.

use crate::config::{Config, ConfigError};
use crate::store::Store;

/// The handler's world: configuration and the store (one DynamoDB client, built once).
#[derive(Debug, Clone)]
pub struct App {
    pub config: Config,
    pub store: Store,
}

impl App {
    pub fn new(config: Config, client: aws_sdk_dynamodb::Client) -> Self {
        let store = Store::with_config_cache(
            client,
            config.table_name.clone(),
            config.ledger_rules(),
            std::time::Duration::from_secs(u64::from(config.config_cache_seconds)),
        );
        Self { config, store }
    }

    /// Reads the configuration from the environment and builds the DynamoDB client as a Lambda
    /// function has it (region and credentials from the environment; `AWS_ENDPOINT_URL_DYNAMODB`
    /// for DynamoDB Local).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let client = crate::store::lambda_client().await;
        Ok(Self::new(config, client))
    }

    /// This app for one request: its store gives up (503) at the request's deadline —
    /// `REQUEST_DEADLINE_MS` from now, or earlier when the Lambda invocation has less time left
    /// (keeping half a second to answer).
    #[cfg(feature = "http")]
    pub fn for_request(&self, req: &lambda_http::Request) -> Self {
        use lambda_http::RequestExt;
        let now = std::time::Instant::now();
        let mut deadline = now + std::time::Duration::from_millis(u64::from(self.config.request_deadline_ms));
        if let Some(context) = req.lambda_context_ref()
            && context.deadline > 0
        {
            let epoch_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let left = context.deadline.saturating_sub(epoch_ms).saturating_sub(500);
            deadline = deadline.min(now + std::time::Duration::from_millis(left));
        }
        Self {
            config: self.config.clone(),
            store: self.store.until(deadline),
        }
    }

    /// This app for one job that must end by `deadline` (its store answers `Unavailable` after).
    pub fn until(&self, deadline: std::time::Instant) -> Self {
        Self {
            config: self.config.clone(),
            store: self.store.until(deadline),
        }
    }

    /// Opens the connection to DynamoDB during init (which Lambda runs with a full CPU), so the
    /// first invocation does not pay for the TLS handshake. Failures are only logged.
    pub async fn warm(&self) {
        if let Err(err) = self.store.ping().await {
            tracing::warn!(error = %err, "warm-up read failed");
        }
    }
}

impl App {
    /// Cold-start wiring for a function's `main`: logging (JSON when the template asks for it),
    /// configuration, the client, and a warm connection.
    pub async fn init() -> Result<Self, ConfigError> {
        lambda_runtime::tracing::init_default_subscriber();
        let app = Self::from_env().await?;
        app.warm().await;
        Ok(app)
    }
}
