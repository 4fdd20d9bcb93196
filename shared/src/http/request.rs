//! Reading a request: route, request id, the clock, JSON bodies and query parameters.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::config::Config;

/// Largest request body accepted: 16 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Header that sets "now" for one request when `CAMPAIGN_DEV_CLOCK=1` (local development only).
pub const DEBUG_NOW_HEADER: &str = "x-debug-now";

/// The route as API Gateway names it, e.g. `GET /v1/points/ledger`.
pub fn route_key(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(key) = &ctx.route_key
    {
        return key.clone();
    }
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    };
    format!("{} {}", req.method(), path)
}

/// API Gateway's request id, else the Lambda invocation's, else `-`.
pub fn request_id(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(id) = &ctx.request_id
    {
        return id.clone();
    }
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| "-".to_owned())
}

/// The instant this request happens at: the wall clock, or `x-debug-now` when the dev clock is on.
pub fn now(config: &Config, req: &Request) -> Result<DateTime<Utc>, ApiError> {
    if config.dev_clock
        && let Some(value) = req.headers().get(DEBUG_NOW_HEADER)
    {
        let text = value.to_str().unwrap_or_default();
        return DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid_request(format!("{DEBUG_NOW_HEADER} must be an RFC 3339 instant"))
            });
    }
    Ok(Utc::now())
}

/// Parses a JSON body: 413 over 16 KiB, 415 unless the content-type is JSON, 400 for malformed
/// JSON, unknown fields (types use `deny_unknown_fields`) and wrong types.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    check_size(bytes)?;
    check_content_type(req)?;
    parse(bytes)
}

/// Like [`json_body`], but an empty body (with or without a content-type) means `{}`.
pub fn json_body_or_default<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    check_size(bytes)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return parse(b"{}");
    }
    json_body(req)
}

fn check_size(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(format!(
            "the body may be at most {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_content_type(req: &Request) -> Result<(), ApiError> {
    let value = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(
            "send the body as application/json",
        ))
    }
}

/// Every body is a JSON object: serde would also read a struct from a positional array (`[]`,
/// `["alice", 7]`), which no client means.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(serde_error)?;
    if !value.is_object() {
        return Err(ApiError::invalid_request("the body must be a JSON object"));
    }
    whole_numbers_as_integers(&mut value);
    serde_json::from_value(value).map_err(serde_error)
}

/// JSON has one number type, and JSON Schema's `integer` includes `5.0` and `5e2`: a whole
/// number written with a fraction or an exponent is read as the integer it is (up to 2^53, where
/// every integer is exact as a double; beyond, it stays a float and an integer field refuses it).
/// No request field is a float (amounts are integers, factors basis points).
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) {
                // Exact: a whole double within ±2^53 converts without rounding.
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

/// Maps a serde_json error to 400 or 422.
fn serde_error(e: serde_json::Error) -> ApiError {
    let text = e.to_string();
    match e.classify() {
        // A number out of its type's range or an unknown enum value: well-formed, invalid → 422.
        serde_json::error::Category::Data
            if text.starts_with("invalid value:") || text.starts_with("unknown variant") =>
        {
            ApiError::invalid_value(text)
        }
        // Unknown or missing fields, wrong types → 400.
        serde_json::error::Category::Data => ApiError::invalid_request(text),
        _ => ApiError::malformed_json(text),
    }
}

/// Like [`json_body`], and also the body as a JSON value (for [`request_digest`]).
pub fn json_body_and_value<T: DeserializeOwned>(req: &Request) -> Result<(T, serde_json::Value), ApiError> {
    let value: serde_json::Value = json_body(req)?;
    let typed = serde_json::from_value(value.clone()).map_err(serde_error)?;
    Ok((typed, value))
}

/// Like [`json_body_or_default`], and also the body as a JSON value (`{}` when empty).
pub fn json_body_or_default_and_value<T: DeserializeOwned>(
    req: &Request,
) -> Result<(T, serde_json::Value), ApiError> {
    let value: serde_json::Value = json_body_or_default(req)?;
    let typed = serde_json::from_value(value.clone()).map_err(serde_error)?;
    Ok((typed, value))
}

/// The `Idempotency-Key` header: required, 1-128 visible ASCII characters without `#`.
pub fn idempotency_key(req: &Request) -> Result<String, ApiError> {
    optional_idempotency_key(req)?
        .ok_or_else(|| ApiError::invalid_request("the Idempotency-Key header is required"))
}

/// The `Idempotency-Key` header where it is optional (member writes): `None` when absent, 400
/// when present but malformed.
pub fn optional_idempotency_key(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    let ok = !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if ok {
        Ok(Some(key.to_owned()))
    } else {
        Err(ApiError::invalid_request(
            "the Idempotency-Key must be 1-128 visible ASCII characters without '#'",
        ))
    }
}

/// A digest of what a request asks for (route, path parameters and the JSON body with its keys
/// in a canonical order), to tell a replay from another request that reuses an idempotency key.
pub fn request_digest(req: &Request, body: &serde_json::Value) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let mut params: Vec<(String, String)> = req
        .path_parameters_ref()
        .map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();
    params.sort();
    let canonical = serde_json::json!({ "route": route_key(req), "params": params, "body": body });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// A path parameter of the route (API Gateway always sends the ones its path template names).
pub fn path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::not_found(format!("no {name} in the path")))
}

/// A query parameter parsed as `T`; 400 when present but not a `T`.
pub fn query_param<T: FromStr>(req: &Request, name: &str) -> Result<Option<T>, ApiError> {
    let params = req.query_string_parameters_ref();
    match params.and_then(|p| p.first(name)) {
        None => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            if raw.parse::<i128>().is_ok() {
                ApiError::invalid_value(format!("query parameter {name} is out of range"))
            } else {
                ApiError::invalid_request(format!("query parameter {name} has the wrong type"))
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        n: Option<u32>,
    }

    fn req(content_type: Option<&str>, body: &str) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/x");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(lambda_http::Body::Text(body.to_owned())).unwrap()
    }

    #[test]
    fn body_rules() {
        let ok: Body = json_body(&req(Some("application/json; charset=utf-8"), r#"{"n":3}"#)).unwrap();
        assert_eq!(ok, Body { n: Some(3) });
        let status = |ct, body: &str| json_body::<Body>(&req(ct, body)).unwrap_err();
        assert_eq!(status(Some("application/json"), "{").slug, "malformed-json");
        assert_eq!(
            status(Some("application/json"), r#"{"x":1}"#).slug,
            "invalid-request"
        );
        // A whole number is an integer however it is written; a fraction is not.
        for whole in [r#"{"n":3.0}"#, r#"{"n":3e0}"#, r#"{"n":0.3e1}"#, r#"{"n":-0.0}"#] {
            let n = json_body::<Body>(&req(Some("application/json"), whole))
                .unwrap()
                .n;
            assert!(
                n == Some(3) || (n == Some(0) && whole.contains("-0.0")),
                "{whole}: {n:?}"
            );
        }
        for not_whole in [r#"{"n":3.5}"#, r#"{"n":1e300}"#] {
            let err = status(Some("application/json"), not_whole);
            assert_eq!(err.status, 400, "{not_whole}");
        }
        // Up to 2^53 exactly; beyond, a double no longer says which integer was meant.
        #[derive(Debug, Deserialize)]
        struct Big {
            n: i64,
        }
        let big = |text: &str| json_body::<Big>(&req(Some("application/json"), text));
        assert_eq!(
            big(r#"{"n":9007199254740992.0}"#).unwrap().n,
            9_007_199_254_740_992
        );
        assert_eq!(
            big(r#"{"n":-9.007199254740992e15}"#).unwrap().n,
            -9_007_199_254_740_992
        );
        assert_eq!(big(r#"{"n":9007199254740994.0}"#).unwrap_err().status, 400);
        assert_eq!(big(r#"{"n":9007199254740994}"#).unwrap().n, 9_007_199_254_740_994);
        // Only an object is a body: not an array serde could read positionally, nor a scalar.
        for not_an_object in ["[]", "[3]", "3", "\"n\"", "null"] {
            let err = status(Some("application/json"), not_an_object);
            assert_eq!(
                (err.status, err.slug),
                (400, "invalid-request"),
                "{not_an_object}"
            );
        }
        assert_eq!(
            json_body_or_default::<Body>(&req(None, "")).unwrap(),
            Body::default()
        );
        assert_eq!(
            json_body_or_default::<Body>(&req(Some("application/json"), "[]"))
                .unwrap_err()
                .slug,
            "invalid-request"
        );
        assert_eq!(
            status(Some("application/json"), r#"{"n":"3"}"#).slug,
            "invalid-request"
        );
        assert_eq!(status(Some("text/plain"), r#"{"n":3}"#).status, 415);
        assert_eq!(status(None, r#"{"n":3}"#).status, 415);
        let big = format!(r#"{{"n":1{}}}"#, " ".repeat(MAX_BODY_BYTES));
        assert_eq!(status(Some("application/json"), &big).status, 413);
        assert_eq!(
            json_body_or_default::<Body>(&req(None, "")).unwrap(),
            Body::default()
        );
    }

    #[test]
    fn limits_of_size_type_and_number() {
        let status = |ct, body: &str| {
            json_body::<Body>(&req(ct, body))
                .map(|_| 200)
                .unwrap_or_else(|e| e.status)
        };
        // 16 KiB exactly is read; one byte more is not.
        let padded = |len: usize| format!(r#"{{"n":1{}}}"#, " ".repeat(len - 7));
        assert_eq!(padded(MAX_BODY_BYTES).len(), 16 * 1024);
        assert_eq!(status(Some("application/json"), &padded(MAX_BODY_BYTES)), 200);
        assert_eq!(status(Some("application/json"), &padded(MAX_BODY_BYTES + 1)), 413);
        // JSON media types only: application/json and application/*+json.
        assert_eq!(status(Some("application/problem+json"), r#"{"n":1}"#), 200);
        for other in ["text/plain+json", "application/xml", "application/jsonx"] {
            assert_eq!(status(Some(other), r#"{"n":1}"#), 415, "{other}");
        }
        // Whole numbers inside lists too; an integer beyond 2^53 is kept exactly as sent.
        #[derive(Debug, Deserialize)]
        struct Lists {
            list: Vec<u32>,
            big: i64,
        }
        let lists: Lists = json_body(&req(
            Some("application/json"),
            r#"{"list":[1.0,2e0,3],"big":9007199254740993}"#,
        ))
        .unwrap();
        assert_eq!((lists.list, lists.big), (vec![1, 2, 3], 9_007_199_254_740_993));
        // Well-formed but invalid values are 422: out of the type's range, an unknown variant.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Kind {
            Points,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Typed {
            small: Option<u8>,
            kind: Option<Kind>,
        }
        let slug = |body: &str| {
            json_body::<Typed>(&req(Some("application/json"), body))
                .unwrap_err()
                .slug
        };
        assert_eq!(slug(r#"{"small":300}"#), "invalid-value");
        assert_eq!(slug(r#"{"kind":"Coupon"}"#), "invalid-value");
        assert_eq!(slug(r#"{"small":"3"}"#), "invalid-request");
    }

    fn with_headers(headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::builder().method("POST").uri("/x");
        for (name, value) in headers {
            b = b.header(*name, *value);
        }
        b.body(lambda_http::Body::Empty).unwrap()
    }

    #[test]
    fn idempotency_keys_digests_and_parameters() {
        let key = |value: &str| optional_idempotency_key(&with_headers(&[("idempotency-key", value)]));
        assert_eq!(key("order-1").unwrap().as_deref(), Some("order-1"));
        assert_eq!(key(&"k".repeat(128)).unwrap().map(|k| k.len()), Some(128));
        for bad in ["", "a#b", "with space", &"k".repeat(129)] {
            assert_eq!(key(bad).unwrap_err().status, 400, "{bad:?}");
        }
        // The route as API Gateway names it; without its context, the method and the path.
        assert_eq!(route_key(&with_headers(&[])), "POST /x");
        let mut ctx = lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default();
        ctx.route_key = Some("POST /v1/draws/{draw_id}/spins".into());
        let routed = with_headers(&[]).with_request_context(RequestContext::ApiGatewayV2(ctx));
        assert_eq!(route_key(&routed), "POST /v1/draws/{draw_id}/spins");
        assert_eq!(optional_idempotency_key(&with_headers(&[])).unwrap(), None);
        assert_eq!(idempotency_key(&with_headers(&[])).unwrap_err().status, 400);
        assert_eq!(
            idempotency_key(&with_headers(&[("idempotency-key", "k-2")])).unwrap(),
            "k-2"
        );

        let params = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            with_headers(&[])
                .with_path_parameters(map.clone())
                .with_query_string_parameters(map)
        };
        let r = params(&[("draw_id", "wheel"), ("limit", "20")]);
        assert_eq!(path_param(&r, "draw_id").unwrap(), "wheel");
        assert_eq!(path_param(&r, "nope").unwrap_err().status, 404);
        assert_eq!(query_param::<u32>(&r, "limit").unwrap(), Some(20));
        assert_eq!(query_param::<u32>(&r, "nope").unwrap(), None);
        // Same route, parameters and body: the same digest; anything else differs.
        let body = serde_json::json!({ "a": 1 });
        let digest = request_digest(&r, &body);
        assert_eq!(digest.len(), 43);
        assert_eq!(
            digest,
            request_digest(&params(&[("limit", "20"), ("draw_id", "wheel")]), &body)
        );
        assert_ne!(digest, request_digest(&r, &serde_json::json!({ "a": 2 })));
        assert_ne!(
            digest,
            request_digest(&params(&[("draw_id", "other"), ("limit", "20")]), &body)
        );

        let page_of = |pairs: &[(&str, &str)]| page(&params(pairs), "ledger", 20);
        assert_eq!(page_of(&[]).unwrap(), (20, None));
        assert_eq!(page_of(&[("limit", "1")]).unwrap(), (1, None));
        assert_eq!(page_of(&[("limit", "100")]).unwrap(), (100, None));
        for bad in ["0", "101"] {
            assert_eq!(page_of(&[("limit", bad)]).unwrap_err().status, 422, "{bad}");
        }
        let cursor = cursor::encode("ledger", 7);
        assert_eq!(page_of(&[("cursor", cursor.as_str())]).unwrap(), (20, Some(7)));
    }

    #[test]
    fn dev_clock_only_when_enabled() {
        let mut config = Config::from_lookup(|k| (k == "TABLE_NAME").then(|| "t".to_owned())).unwrap();
        let r = http::Request::builder()
            .header(DEBUG_NOW_HEADER, "2026-11-23T23:59:59+08:00")
            .body(lambda_http::Body::Empty)
            .unwrap();
        let wall = now(&config, &r).unwrap();
        assert!(wall > "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_ne!(wall, "2026-11-23T15:59:59Z".parse::<DateTime<Utc>>().unwrap());
        config.dev_clock = true;
        assert_eq!(
            now(&config, &r).unwrap(),
            "2026-11-23T15:59:59Z".parse::<DateTime<Utc>>().unwrap()
        );
        let bad = http::Request::builder()
            .header(DEBUG_NOW_HEADER, "tomorrow")
            .body(lambda_http::Body::Empty)
            .unwrap();
        assert_eq!(now(&config, &bad).unwrap_err().status, 400);
    }
}

/// Most items a page lists.
pub const MAX_PAGE: u32 = 100;

/// A page's `limit` (1-100, `default` when absent; 422 otherwise) and its `cursor` of `kind`
/// (the position to start below; 400 when it is not one of this kind's).
pub fn page(req: &Request, kind: &str, default: u32) -> Result<(u32, Option<u64>), ApiError> {
    let limit = match query_param::<u32>(req, "limit")? {
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid_value(format!("limit must be 1-{MAX_PAGE}"))),
        None => default,
    };
    let before = query_param::<String>(req, "cursor")?
        .map(|c| cursor::decode(kind, &c))
        .transpose()?;
    Ok((limit, before))
}

/// Opaque pagination cursors: a kind tag and a position, base64url-encoded. A cursor carries no
/// partition key, so it can only ever page the caller's own items.
pub mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::ApiError;

    pub fn encode(kind: &str, position: u64) -> String {
        URL_SAFE_NO_PAD.encode(format!("{kind}:{position}"))
    }

    /// 400 `invalid-request` for anything [`encode`] did not make for this `kind`.
    pub fn decode(kind: &str, raw: &str) -> Result<u64, ApiError> {
        let invalid = || ApiError::invalid_request("the cursor is not valid here");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let (k, position) = text.split_once(':').ok_or_else(invalid)?;
        if k != kind {
            return Err(invalid());
        }
        position.parse().map_err(|_| invalid())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip_and_rejects() {
            assert_eq!(decode("ledger", &encode("ledger", 42)).unwrap(), 42);
            assert!(decode("spins", &encode("ledger", 42)).is_err());
            for bad in ["", "!!", "bGVkZ2Vy", "bGVkZ2VyOi0x"] {
                assert_eq!(decode("ledger", bad).unwrap_err().status, 400, "{bad}");
            }
        }
    }
}
