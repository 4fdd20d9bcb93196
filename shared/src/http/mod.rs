//! HTTP helpers shared by every handler: who is calling, reading the request, and the one place
//! that turns an error into an `application/problem+json` response.

mod auth;
#[cfg(test)]
mod fuzz_tests;
mod problem;
mod request;

pub use auth::{Caller, POINTS_WRITE_SCOPE, admin, caller, member, points_writer, writer};
pub use problem::{ApiError, PROBLEM_CONTENT_TYPE, respond};
pub use request::{
    DEBUG_NOW_HEADER, MAX_BODY_BYTES, cursor, idempotency_key, json_body, json_body_and_value,
    json_body_or_default, json_body_or_default_and_value, now, optional_idempotency_key, page, path_param,
    query_param, request_digest, request_id, route_key,
};

use lambda_http::Body;
use serde::Serialize;

use crate::metrics::Metric;

/// What handlers return.
pub type Response = lambda_http::Response<Body>;
pub use lambda_http::Request;

/// A handler's work for one request, boxed (see [`serve`]).
pub type Work<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, ApiError>> + Send + 'a>>;

/// Runs one request's handler: every log line inside carries the request's id and route (a
/// span), a panic answers `500` problem+json instead of taking the sandbox down (the release
/// profile unwinds), an error becomes its problem+json, and what the request counted is written as
/// EMF lines with `Requests`, `ServerErrors` and `Errors` by problem type.
///
/// `work` comes boxed: a handler's future nests deep (routes, ledger transactions), and boxed it
/// adds no depth to the future of the function's `handle`.
pub async fn serve(app: &crate::App, req: &Request, work: Work<'_>) -> Response {
    use futures_util::FutureExt;
    use tracing::Instrument;
    let span = tracing::info_span!("request", request_id = %request_id(req), route = %route_key(req));
    let guarded = std::panic::AssertUnwindSafe(work).catch_unwind();
    let (result, mut recorded) = crate::metrics::scope(guarded).instrument(span.clone()).await;
    let result = result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ApiError::internal(format!("handler panicked: {message}")))
    });
    if let Err(err) = &result {
        recorded.add(Metric::Errors, Some(err.slug), 1);
    }
    let response = span.in_scope(|| respond(req, result));
    recorded.add(Metric::Requests, None, 1);
    if response.status().is_server_error() {
        recorded.add(Metric::ServerErrors, None, 1);
    }
    if let Some(stack) = &app.config.metrics_stack {
        recorded.write_to_stdout(stack);
    }
    response
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response, ApiError> {
    let text =
        serde_json::to_string(body).map_err(|e| ApiError::internal(format!("serialize response: {e}")))?;
    lambda_http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .map_err(|e| ApiError::internal(format!("build response: {e}")))
}

/// A response whose JSON body is already serialized (an idempotent call's stored answer).
pub fn raw_json(status: u16, body: String) -> Result<Response, ApiError> {
    lambda_http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .map_err(|e| ApiError::internal(format!("build response: {e}")))
}

/// A member write's optional `Idempotency-Key`, scoped to the member (`member:<sub>`), with the
/// digest of the request (`body`: the JSON body as sent, `{}` when empty).
pub fn member_call(
    req: &Request,
    user: &crate::domain::UserId,
    body: &serde_json::Value,
) -> Result<Option<crate::store::IdempotentCall>, ApiError> {
    Ok(
        optional_idempotency_key(req)?.map(|key| crate::store::IdempotentCall {
            key: crate::store::keys::idempotency(&format!("member:{user}"), &key),
            request_hash: request_digest(req, body),
        }),
    )
}

/// `200 OK` with a JSON body.
pub fn ok<T: Serialize>(body: &T) -> Result<Response, ApiError> {
    json(200, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> crate::App {
        let config =
            crate::Config::from_lookup(|name| (name == "TABLE_NAME").then(|| "t".to_owned())).unwrap();
        crate::App::new(config, crate::store::local_client("http://127.0.0.1:9"))
    }

    fn request() -> Request {
        lambda_http::request::from_str(include_str!("../../../events/post-v1-checkins.json")).unwrap()
    }

    async fn boom(fail: bool) -> Result<Response, ApiError> {
        tokio::task::yield_now().await;
        if fail {
            panic!("a bug in a handler");
        }
        ok(&serde_json::json!({"fine": true}))
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_problem_json_and_the_next_request_is_served() {
        let app = app();
        let req = request();
        let response = serve(&app, &req, Box::pin(boom(true))).await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["content-type"], PROBLEM_CONTENT_TYPE);
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["type"], "internal");
        assert_eq!(body["request_id"], "Zx8YhgQ2oAMEVKQ=");
        assert!(
            !body.to_string().contains("a bug in a handler"),
            "the panic message is internal"
        );
        // The same process (the same sandbox) goes on serving.
        let response = serve(&app, &req, Box::pin(boom(false))).await;
        assert_eq!(response.status(), 200);
    }
}
