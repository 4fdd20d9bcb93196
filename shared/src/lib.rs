//! Campaign Functions' domain crate.
//!
//! - [`domain`]: pure rules. No I/O: `now` and randomness are arguments.
//! - [`store`]: every DynamoDB call and the only place that formats a key string.
//! - [`http`]: claims → caller, request parsing, and the one mapping of errors to problem+json.
//! - [`metrics`]: business metrics (CloudWatch EMF), counted where the store commits.
//! - [`app`]: what a function builds once at cold start (config, client) and hands to its handler.

pub mod app;
pub mod config;
pub mod domain;
#[cfg(feature = "http")]
pub mod http;
pub mod metrics;
pub mod store;

pub use app::App;
pub use config::Config;

/// Every failure a handler can meet: a rule said no, or the store did.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] domain::DomainError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}
