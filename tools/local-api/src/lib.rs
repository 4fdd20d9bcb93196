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

/// Where scripts/setup.sh installed the Swagger UI files (`.local/swagger-ui/<version>`, the
/// version pinned in scripts/pins.env), if it did.
pub fn docs_dir() -> Option<PathBuf> {
    let root = repo_root();
    let pins = std::fs::read_to_string(root.join("scripts/pins.env")).ok()?;
    let version = pins
        .lines()
        .find_map(|line| line.strip_prefix("SWAGGER_UI_VERSION="))?
        .trim();
    let dir = root.join(".local/swagger-ui").join(version);
    dir.join("swagger-ui-bundle.js").exists().then_some(dir)
}
