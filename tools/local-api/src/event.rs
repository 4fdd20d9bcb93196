//! Builds the API Gateway HTTP API (payload 2.0) event that Lambda would receive for a request.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderMap;
use serde_json::{Map, Value, json};

/// An HTTP request as the local API received it.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
}

/// Splits a path into segments and matches it against a route's path template (`{name}` matches
/// one segment, `{name+}` the rest). Returns the path parameters.
pub fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let mut actual = path.trim_matches('/').split('/');
    let mut wanted = template.trim_matches('/').split('/');
    loop {
        match (wanted.next(), actual.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(a)) if w.starts_with('{') && w.ends_with("+}") => {
                let rest: Vec<&str> = std::iter::once(a).chain(actual).collect();
                params.insert(w[1..w.len() - 2].to_owned(), rest.join("/"));
                return Some(params);
            }
            (Some(w), Some(a)) if w.starts_with('{') && w.ends_with('}') && !a.is_empty() => {
                params.insert(w[1..w.len() - 1].to_owned(), percent_decode(a));
            }
            (Some(w), Some(a)) if w == a => {}
            _ => return None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes the bearer token's payload WITHOUT checking its signature or expiry (local mode only,
/// as the README says) and turns it into claims the way API Gateway passes them: every value a
/// string, arrays as `[a b]`.
pub fn claims_from_bearer(headers: &HeaderMap) -> Option<HashMap<String, String>> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    // API Gateway's JWT authorizer takes the token with or without the "Bearer " prefix.
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value);
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let Value::Object(map) = serde_json::from_slice::<Value>(&bytes).ok()? else {
        return None;
    };
    Some(map.into_iter().map(|(k, v)| (k, claim_string(v))).collect())
}

fn claim_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Array(items) => {
            let parts: Vec<String> = items.into_iter().map(claim_string).collect();
            format!("[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// The payload 2.0 event for `incoming`, matched to `route_key` with `path_params`.
pub fn build(
    incoming: &Incoming<'_>,
    route_key: &str,
    path_params: &BTreeMap<String, String>,
    claims: &HashMap<String, String>,
    request_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in incoming.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| Value::String(c.trim().to_owned())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let mut query = Map::new();
    for pair in incoming.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (
            percent_decode(&k.replace('+', " ")),
            percent_decode(&v.replace('+', " ")),
        );
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(incoming.body) {
        _ if incoming.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(STANDARD.encode(incoming.body)), true),
    };
    let scopes: Vec<Value> = claims
        .get("scope")
        .map(|s| {
            s.split_whitespace()
                .map(|x| Value::String(x.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    // API Gateway adds the forwarding headers.
    headers
        .entry("x-forwarded-for")
        .or_insert_with(|| Value::String(incoming.source_ip.clone()));
    headers.insert("x-forwarded-proto".into(), Value::String("http".into()));
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": incoming.path,
        "rawQueryString": incoming.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "authorizer": { "jwt": { "claims": claims, "scopes": if scopes.is_empty() { Value::Null } else { Value::Array(scopes) } } },
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": incoming.method,
                "path": incoming.path,
                "protocol": "HTTP/1.1",
                "sourceIp": incoming.source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": is_base64,
    });
    let object = event.as_object_mut().expect("json! of an object");
    if !cookies.is_empty() {
        object.insert("cookies".into(), Value::Array(cookies));
    }
    if !query.is_empty() {
        object.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !path_params.is_empty() {
        object.insert("pathParameters".into(), json!(path_params));
    }
    if !body.is_null() {
        object.insert("body".into(), body);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_templates() {
        assert_eq!(match_path("/v1/points", "/v1/points"), Some(BTreeMap::new()));
        assert_eq!(match_path("/v1/points", "/v1/points/ledger"), None);
        let p = match_path(
            "/v1/admin/campaigns/{campaign_id}",
            "/v1/admin/campaigns/spring%2D1",
        )
        .unwrap();
        assert_eq!(p["campaign_id"], "spring-1");
        assert_eq!(match_path("/v1/a/{id}", "/v1/a/"), None);
    }

    #[test]
    fn claims_take_api_gateway_string_form() {
        let payload =
            URL_SAFE_NO_PAD.encode(r#"{"sub":"u1","cognito:groups":["admin","support"],"exp":1900000000}"#);
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer e30.{payload}.sig").parse().unwrap(),
        );
        let claims = claims_from_bearer(&headers).unwrap();
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["cognito:groups"], "[admin support]");
        assert_eq!(claims["exp"], "1900000000");
        headers.insert("authorization", "Bearer garbage".parse().unwrap());
        assert!(claims_from_bearer(&headers).is_none());
    }
}
