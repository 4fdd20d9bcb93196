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

/// The log subscriber of a function: one line per event (JSON when `AWS_LAMBDA_LOG_FORMAT` is
/// `JSON`, as the template's `LoggingConfig` sets), no timestamps (CloudWatch adds them), filtered
/// by [`log_filter`]. What `lambda_runtime`'s default subscriber does, without its regex-based
/// filter (~260 KiB of every binary, docs/PERFORMANCE.md).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer().with_target(false).without_time();
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (a test, a tool) keeps the first.
    let _ = match json {
        true => registry.with(fmt.json()).try_init(),
        false => registry.with(fmt).try_init(),
    };
}

/// Which events are logged: `RUST_LOG` when it is set and reads as `level,target=level,…` (a
/// filter of targets; the template sets one), else every target at `AWS_LAMBDA_LOG_LEVEL` (the
/// function's `ApplicationLogLevel`), else at `info`.
pub fn log_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> tracing_subscriber::filter::Targets {
    use std::str::FromStr;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    if let Some(targets) = rust_log
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| s.parse::<Targets>().ok())
    {
        return targets;
    }
    let level = lambda_level
        .and_then(|l| LevelFilter::from_str(l).ok())
        .unwrap_or(LevelFilter::INFO);
    Targets::new().with_default(level)
}

impl App {
    /// Cold-start wiring for a function's `main`: logging (JSON when the template asks for it),
    /// configuration, the client, and a warm connection.
    pub async fn init() -> Result<Self, ConfigError> {
        init_logging();
        let app = Self::from_env().await?;
        app.warm().await;
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::filter::{LevelFilter, Targets};

    use super::log_filter;

    fn allows(filter: &Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn the_log_filter_reads_the_templates_rust_log_then_the_lambda_level() {
        let template = log_filter(
            Some("info,hyper=info,aws_smithy_runtime=info,aws_config=warn,rustls=info"),
            Some("DEBUG"),
        );
        assert!(allows(&template, "shared::store", Level::INFO));
        assert!(!allows(&template, "shared::store", Level::DEBUG));
        assert!(!allows(&template, "aws_config::loader", Level::INFO));
        assert!(allows(&template, "aws_config::loader", Level::WARN));
        let lambda = log_filter(None, Some("DEBUG"));
        assert_eq!(lambda.default_level(), Some(LevelFilter::DEBUG));
        assert_eq!(log_filter(None, None).default_level(), Some(LevelFilter::INFO));
        assert_eq!(
            log_filter(Some(""), Some("warn")).default_level(),
            Some(LevelFilter::WARN)
        );
        // Not a targets filter (a span or field directive): the Lambda level instead.
        assert_eq!(
            log_filter(Some("[request{id=1}]=trace"), Some("error")).default_level(),
            Some(LevelFilter::ERROR)
        );
    }
}
