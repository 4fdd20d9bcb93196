//! The local HTTP API: API Gateway's job (route matching, the JWT authorizer, the event) done on
//! loopback, then the real handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming as HyperIncoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lambda_http::Body;
use shared::App;
use tokio::net::TcpListener;

use crate::event::{self, Incoming};
use crate::registry::{self, Handler};
use crate::template::{Cors, Route, Template, TemplateError};

/// Largest body the local API reads (API Gateway's own limit is 10 MB; handlers refuse > 16 KiB).
const MAX_READ: usize = 1024 * 1024;

type HttpResponse = hyper::Response<Full<Bytes>>;

pub struct LocalApi {
    /// Each route with its handler and the app of its function (as on Lambda, every function
    /// has its own process: its own client and configuration cache).
    routes: Vec<(Route, Handler, App)>,
    cors: Option<Cors>,
    /// The API contract, served at `GET /openapi.yaml` (a local convenience: API Gateway does not).
    openapi: Option<Bytes>,
    /// The Swagger UI files (the pinned npm `swagger-ui-dist` that scripts/setup.sh installs),
    /// served at [`DOCS_PATH`].
    docs: Option<std::path::PathBuf>,
}

/// Where the local API serves the interactive page for the contract.
pub const DOCS_PATH: &str = "/docs";

/// The page at [`DOCS_PATH`]: Swagger UI from the local files, on the local contract. Nothing is
/// fetched from anywhere else.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Campaign Functions API</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.yaml",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      validatorUrl: null,
      persistAuthorization: true
    });
  </script>
</body>
</html>
"##;

/// A file of the docs directory: a plain name (no path), one of the kinds the page uses.
fn docs_file(dir: &std::path::Path, name: &str) -> Option<(Vec<u8>, &'static str)> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let kind = match name.rsplit_once('.')?.1 {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "png" => "image/png",
        "map" => "application/json",
        _ => return None,
    };
    plain
        .then(|| std::fs::read(dir.join(name)).ok())
        .flatten()
        .map(|b| (b, kind))
}

/// Where the local API serves the contract.
pub const OPENAPI_PATH: &str = "/openapi.yaml";

impl LocalApi {
    /// Routes from the template, each bound to its registered handler; one app for them all.
    pub fn new(app: App, template: &Template) -> Result<Self, TemplateError> {
        Self::with_apps(template, |_| app.clone())
    }

    /// Routes from the template, the handlers of each function sharing the app `app_for` gives
    /// for its logical id (called once per function).
    pub fn with_apps(
        template: &Template,
        mut app_for: impl FnMut(&str) -> App,
    ) -> Result<Self, TemplateError> {
        let mut apps: std::collections::HashMap<String, App> = std::collections::HashMap::new();
        let mut routes = Vec::new();
        for route in template.routes()? {
            let handler = registry::handler_for(&route.key())
                .ok_or_else(|| TemplateError::Shape(format!("no handler registered for {}", route.key())))?;
            let app = apps
                .entry(route.function.clone())
                .or_insert_with(|| app_for(&route.function))
                .clone();
            routes.push((route, handler, app));
        }
        // Most specific first: fewer path parameters wins, as in API Gateway.
        routes.sort_by_key(|(r, _, _)| r.path.matches('{').count());
        Ok(Self {
            routes,
            cors: template.cors()?,
            openapi: None,
            docs: None,
        })
    }

    /// Serves `yaml` (the contract, `openapi.yaml`) at [`OPENAPI_PATH`], without a token.
    pub fn with_openapi(mut self, yaml: impl Into<Bytes>) -> Self {
        self.openapi = Some(yaml.into());
        self
    }

    /// Serves the interactive page for the contract at [`DOCS_PATH`] from `dir` (the Swagger UI
    /// files; [`crate::docs_dir`]), without a token.
    pub fn with_docs(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.docs = dir;
        self
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(r, _, _)| r)
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(listener: TcpListener, api: Arc<LocalApi>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(api.clone(), req, remote));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%err, "connection closed");
            }
        });
    }
}

/// API Gateway answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) itself,
/// without calling any function or authorizer.
fn cors_preflight(cors: Option<&Cors>, parts: &http::request::Parts) -> Option<HttpResponse> {
    let cors = cors?;
    if parts.method != http::Method::OPTIONS
        || !parts
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
    let headers = resp.headers_mut();
    let join = |v: &[String]| http::HeaderValue::from_str(&v.join(",")).ok();
    if let Some(v) = join(&cors.allow_methods) {
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if let Some(v) = join(&cors.allow_headers) {
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age {
        headers.insert(http::header::ACCESS_CONTROL_MAX_AGE, http::HeaderValue::from(age));
    }
    Some(resp)
}

fn gateway_error(status: u16, message: &str) -> HttpResponse {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(format!(r#"{{"message":"{message}"}}"#))));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(
    api: Arc<LocalApi>,
    req: hyper::Request<HyperIncoming>,
    remote: SocketAddr,
) -> Result<HttpResponse, Infallible> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let mut response = match cors_preflight(api.cors.as_ref(), &parts) {
        Some(preflight) => preflight,
        None => dispatch(&api, parts.clone(), body, remote).await,
    };
    // API Gateway adds the allowed origin to every response of a CORS-enabled API.
    if let (Some(cors), Some(origin)) = (api.cors.as_ref(), parts.headers.get(http::header::ORIGIN))
        && let Some(allowed) = cors.allow_origin(origin.to_str().unwrap_or_default())
        && let Ok(value) = http::HeaderValue::from_str(&allowed)
    {
        response
            .headers_mut()
            .insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    tracing::info!(
        method = %parts.method,
        path = %parts.uri.path(),
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(response)
}

async fn dispatch(
    api: &LocalApi,
    parts: http::request::Parts,
    body: HyperIncoming,
    remote: SocketAddr,
) -> HttpResponse {
    let body = match Limited::new(body, MAX_READ).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return gateway_error(413, "Request Entity Too Large"),
    };
    let method = parts.method.as_str();
    let path = parts.uri.path();
    if let (Some(spec), "GET", OPENAPI_PATH) = (&api.openapi, method, path) {
        let mut resp = hyper::Response::new(Full::new(spec.clone()));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/yaml"),
        );
        return resp;
    }
    if method == "GET" && (path == DOCS_PATH || path.starts_with("/docs/")) {
        let Some(dir) = &api.docs else {
            return gateway_error(
                404,
                "Not Found (the docs page needs scripts/setup.sh to install Swagger UI)",
            );
        };
        let (bytes, kind) = match path.trim_start_matches(DOCS_PATH).trim_start_matches('/') {
            "" | "index.html" => (DOCS_PAGE.as_bytes().to_vec(), "text/html; charset=utf-8"),
            name => match docs_file(dir, name) {
                Some(found) => found,
                None => return gateway_error(404, "Not Found"),
            },
        };
        let mut resp = hyper::Response::new(Full::new(Bytes::from(bytes)));
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(kind));
        return resp;
    }
    let matched = api.routes.iter().find_map(|(route, handler, app)| {
        (route.method == method || route.method == "ANY")
            .then(|| event::match_path(&route.path, path))
            .flatten()
            .map(|params| (route, *handler, app, params))
    });
    let Some((route, handler, app, params)) = matched else {
        return gateway_error(404, "Not Found");
    };
    // The JWT authorizer: every route has it. Locally the signature is NOT checked.
    let Some(claims) = event::claims_from_bearer(&parts.headers) else {
        return gateway_error(401, "Unauthorized");
    };
    let incoming = Incoming {
        method,
        path,
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
        source_ip: remote.ip().to_string(),
    };
    let request_id = ulid::Ulid::generate().to_string();
    let event = event::build(
        &incoming,
        &route.key(),
        &params,
        &claims,
        &request_id,
        chrono::Utc::now(),
    );
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => {
            tracing::error!(%err, "could not build the Lambda request");
            return gateway_error(500, "Internal Server Error");
        }
    };
    let app = app.clone();
    // A panic in a handler becomes API Gateway's 500, as a crashed Lambda would.
    let response = match tokio::spawn(async move { handler(&app, request).await }).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(%err, "handler panicked");
            return gateway_error(500, "Internal Server Error");
        }
    };
    let (head, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(head, Full::new(bytes))
}
