//! The Docker-free local stack: reads `template.yaml`, creates its table in DynamoDB Local, and
//! serves every route of the template over HTTP by turning each request into the API Gateway HTTP
//! API v2 event the Lambda would receive and calling the same handler.

pub mod event;
pub mod registry;
pub mod schedule;
pub mod server;
pub mod table;
pub mod template;

use std::path::PathBuf;

/// The repository's root (where `template.yaml` and `events/` live), known at compile time.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
