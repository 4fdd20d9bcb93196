//! Errors as RFC 9457 problem details. Every status and `type` slug is decided here, once.

use lambda_http::{Body, Request};
use serde::Serialize;

use super::Response;
use crate::domain::DomainError;
use crate::store::{RETRY_AFTER_SECS, StoreError};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error response: a status, a stable `type` slug clients can match on, and a detail for people.
/// A handler that returns one has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// For 503: seconds for the `Retry-After` header.
    pub retry_after: Option<u32>,
    /// Logged for 5xx, never sent.
    internal: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            retry_after: None,
            internal: None,
        }
    }

    /// 400: the JSON does not parse.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(400, "malformed-json", "Malformed JSON", detail)
    }

    /// 400: parses, but has an unknown field, a missing field or a wrong type (body or query).
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(400, "invalid-request", "Invalid request", detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(401, "unauthenticated", "Unauthenticated", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "not-found", "Not found", detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(413, "payload-too-large", "Payload too large", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(415, "unsupported-media-type", "Unsupported media type", detail)
    }

    /// 422: well-formed but not acceptable.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(422, "invalid-value", "Invalid value", detail)
    }

    /// 500: a bug. `internal` is logged; callers see only the request id.
    pub fn internal(internal: impl Into<String>) -> Self {
        let mut e = Self::new(500, "internal", "Internal error", "an internal error occurred");
        e.internal = Some(internal.into());
        e
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(internal: impl Into<String>) -> Self {
        let mut e = Self::new(
            503,
            "unavailable",
            "Service unavailable",
            "the store is unavailable or busy; retry later",
        );
        e.retry_after = Some(RETRY_AFTER_SECS);
        e.internal = Some(internal.into());
        e
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match &err {
            DomainError::InsufficientPoints { .. } => {
                ApiError::new(409, "insufficient-points", "Insufficient points", err.to_string())
            }
            DomainError::Invalid { .. } => ApiError::invalid_value(err.to_string()),
            DomainError::Overflow => ApiError::invalid_value(err.to_string()),
            DomainError::NotFound(_) => ApiError::not_found(err.to_string()),
            DomainError::CampaignNotActive => {
                ApiError::new(409, "campaign-not-active", "Campaign not active", err.to_string())
            }
            DomainError::HoldNotActive => {
                ApiError::new(409, "hold-not-active", "Hold not active", err.to_string())
            }
            DomainError::IdempotencyKeyReused => ApiError::new(
                409,
                "idempotency-key-reused",
                "Idempotency key reused",
                err.to_string(),
            ),
            DomainError::GrantFullyReversed => ApiError::new(
                409,
                "grant-fully-reversed",
                "Grant fully reversed",
                err.to_string(),
            ),
            DomainError::HoldLimitReached { .. } => {
                ApiError::new(429, "hold-limit-reached", "Hold limit reached", err.to_string())
            }
            DomainError::ReservedName => {
                ApiError::new(422, "reserved-name", "Reserved name", err.to_string())
            }
            DomainError::TooManyContests { .. } => {
                ApiError::new(429, "too-many-contests", "Too many contests", err.to_string())
            }
            DomainError::ContestClosed(_) => {
                ApiError::new(409, "contest-closed", "Contest closed", err.to_string())
            }
            DomainError::ContestStarted => {
                ApiError::new(409, "contest-started", "Contest started", err.to_string())
            }
            DomainError::TeamFull { .. } => ApiError::new(409, "team-full", "Team full", err.to_string()),
            DomainError::AlreadyInTeam => {
                ApiError::new(409, "already-in-team", "Already in a team", err.to_string())
            }
            DomainError::Referral(refusal) => {
                use crate::domain::referrals::Refusal;
                let (kind, title) = match refusal {
                    Refusal::ProgramOff => ("referral-program-off", "Referral program off"),
                    Refusal::OwnCode => ("own-referral-code", "Own referral code"),
                    Refusal::AlreadyReferred => ("already-referred", "Already referred"),
                    Refusal::WindowPassed => ("claim-window-passed", "Claim window passed"),
                    Refusal::Cycle => ("referral-cycle", "Referral cycle"),
                };
                ApiError::new(409, kind, title, err.to_string())
            }
            DomainError::ReferralRevoked => {
                ApiError::new(409, "referral-revoked", "Referral revoked", err.to_string())
            }
            DomainError::AlreadyShipped => {
                ApiError::new(409, "already-shipped", "Already shipped", err.to_string())
            }
            DomainError::DrawNotOpen => ApiError::new(409, "draw-not-open", "Draw not open", err.to_string()),
            DomainError::DrawLimit { .. } => {
                ApiError::new(429, "spin-limit-reached", "Spin limit reached", err.to_string())
            }
            DomainError::DrawSharesOff => {
                ApiError::new(409, "share-bonus-off", "No share bonus", err.to_string())
            }
            DomainError::AlreadySharedToday => ApiError::new(
                429,
                "share-limit-reached",
                "Shared today already",
                err.to_string(),
            ),
            DomainError::TooManyDraws { .. } => {
                ApiError::new(429, "too-many-draws", "Too many draws", err.to_string())
            }
            DomainError::DrawNotEnded => {
                ApiError::new(409, "draw-not-ended", "Draw not ended", err.to_string())
            }
            DomainError::CouponCodeTaken(_) => {
                ApiError::new(409, "coupon-code-taken", "Coupon code taken", err.to_string())
            }
            DomainError::CouponRedeemed => {
                ApiError::new(409, "coupon-redeemed", "Coupon redeemed", err.to_string())
            }
            DomainError::CouponNotWon => {
                ApiError::new(409, "coupon-not-won", "Coupon not won", err.to_string())
            }
            DomainError::NotMissed => ApiError::new(409, "not-missed", "Date not missed", err.to_string()),
            DomainError::MakeupLimitReached { .. } => ApiError::new(
                409,
                "makeup-limit-reached",
                "Make-up limit reached",
                err.to_string(),
            ),
            DomainError::OutsideMakeupWindow { .. } => ApiError::new(
                422,
                "outside-makeup-window",
                "Outside the make-up window",
                err.to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) | StoreError::Contention(_) => ApiError::unavailable(err.to_string()),
            StoreError::Internal(_) => ApiError::internal(err.to_string()),
        }
    }
}

impl From<crate::Error> for ApiError {
    fn from(err: crate::Error) -> Self {
        match err {
            crate::Error::Domain(e) => e.into(),
            crate::Error::Store(e) => e.into(),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
}

impl ApiError {
    /// The problem+json response. Never fails: a fixed body stands in if serialization could.
    pub fn to_response(&self, request_id: &str) -> Response {
        let body = serde_json::to_string(&Problem {
            kind: self.slug,
            title: self.title,
            status: self.status,
            detail: &self.detail,
            request_id,
        })
        .unwrap_or_else(|_| format!(r#"{{"type":"internal","status":{}}}"#, self.status));
        let mut response = lambda_http::Response::new(Body::Text(body));
        *response.status_mut() =
            http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

/// Turns a handler's result into the response, logging failures (5xx with their internal cause).
pub fn respond(req: &Request, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(response) => response,
        Err(err) => {
            let request_id = super::request_id(req);
            if err.status >= 500 {
                tracing::error!(status = err.status, slug = err.slug, cause = ?err.internal, %request_id, "request failed");
            } else {
                tracing::info!(status = err.status, slug = err.slug, detail = %err.detail, %request_id, "request refused");
            }
            err.to_response(&request_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_has_retry_after_and_hides_the_cause() {
        let err: ApiError =
            StoreError::Unavailable("dispatch failure: connection refused at 10.0.0.1".into()).into();
        let resp = err.to_response("req-1");
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_eq!(resp.headers()["content-type"], PROBLEM_CONTENT_TYPE);
        let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
        assert_eq!(body["type"], "unavailable");
        assert_eq!(body["request_id"], "req-1");
        assert!(!body.to_string().contains("10.0.0.1"));
    }

    #[test]
    fn domain_errors_map_to_stable_slugs() {
        let e: ApiError = DomainError::InsufficientPoints {
            balance: 1,
            needed: 5,
        }
        .into();
        assert_eq!((e.status, e.slug), (409, "insufficient-points"));
        let e: ApiError = DomainError::invalid("date", "bad").into();
        assert_eq!((e.status, e.slug), (422, "invalid-value"));
        let e: ApiError = StoreError::Internal("boom".into()).into();
        assert_eq!(
            (e.status, e.slug, e.detail.contains("boom")),
            (500, "internal", false)
        );
    }
}
