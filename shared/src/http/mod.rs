//! HTTP helpers shared by every handler: who is calling, reading the request, and the one place
//! that turns an error into an `application/problem+json` response.

mod auth;
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

/// What handlers return.
pub type Response = lambda_http::Response<Body>;
pub use lambda_http::Request;

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
