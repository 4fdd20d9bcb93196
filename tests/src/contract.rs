//! The API contract, `openapi.yaml`, as the tests use it: its routes, and a check that a response
//! matches what the spec says its route answers with that status. Every response the end-to-end
//! tests receive through [`crate::TestApi::send`] is checked.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

/// The parsed `openapi.yaml` and the schema validators built from it so far.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The contract of this repository (parsed once).
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let path = local_api::repo_root().join("openapi.yaml");
        let text = std::fs::read_to_string(&path).expect("openapi.yaml");
        Contract::parse(&text).expect("openapi.yaml parses")
    })
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

impl Contract {
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let doc: Value = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        Ok(Self {
            doc,
            validators: Mutex::new(HashMap::new()),
        })
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every route, as API Gateway route keys (`GET /v1/me`).
    pub fn routes(&self) -> BTreeSet<String> {
        let mut routes = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for method in METHODS {
                if item.get(method).is_some() {
                    routes.insert(format!("{} {path}", method.to_ascii_uppercase()));
                }
            }
        }
        routes
    }

    /// The operation serving `method` on a concrete `path`, with its path template. A template
    /// with more literal segments wins (`/v1/me/profile` over `/v1/me/{x}`).
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let method = method.to_ascii_lowercase();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in self.doc["paths"].as_object()? {
            let Some(op) = item.get(&method) else { continue };
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let fits = parts.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if fits && best.is_none_or(|(n, _, _)| literal > n) {
                best = Some((literal, template.as_str(), op));
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    /// Whether a response matches the spec: the route declares the status and the content type,
    /// the body validates against the schema, and a problem's `type` is one the route declares.
    /// `Ok(false)` when the spec has no such route (the gateway's own 404s, preflights).
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &Value,
    ) -> Result<bool, String> {
        let Some((template, op)) = self.operation(method, path) else {
            return Ok(false);
        };
        let route = format!("{} {template}", method.to_ascii_uppercase());
        let response = op["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("{route} answered {status}, which openapi.yaml does not list: {body}"))?;
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let Some(content) = response.get("content") else {
            return if body.is_null() {
                Ok(true)
            } else {
                Err(format!(
                    "{route} {status} has a body the spec does not describe: {body}"
                ))
            };
        };
        let schema = content.get(media).and_then(|c| c.get("schema")).ok_or_else(|| {
            format!("{route} {status} answered {media:?}, which openapi.yaml does not list")
        })?;
        self.validate(schema, body).map_err(|errors| {
            format!("{route} {status} does not match its schema: {errors:?}\nbody: {body}")
        })?;
        if media == "application/problem+json"
            && let Some(types) = response.get("x-problem-types").and_then(Value::as_array)
            && !types.contains(&body["type"])
        {
            return Err(format!(
                "{route} {status} answered problem type {}, which its x-problem-types {types:?} do not list",
                body["type"]
            ));
        }
        Ok(true)
    }

    /// Validates `instance` against `schema` (which may `$ref` the spec's components), with
    /// formats (`date-time`, `date`) checked. The errors, if any.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
        let validator = self.validator(schema)?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn validator(&self, schema: &Value) -> Result<Arc<jsonschema::Validator>, Vec<String>> {
        let key = schema.to_string();
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        // The component schemas become `$defs` of one self-contained schema.
        let defs = self.doc["components"]["schemas"].clone();
        let root = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs, "allOf": [schema] });
        let root: Value =
            serde_json::from_str(&root.to_string().replace("#/components/schemas/", "#/$defs/"))
                .map_err(|e| vec![e.to_string()])?;
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| vec![format!("the schema does not compile: {e}")])?;
        let validator = Arc::new(validator);
        cache.insert(key, validator.clone());
        Ok(validator)
    }
}
