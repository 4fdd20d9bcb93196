//! Who is calling, from the JWT claims API Gateway's authorizer put in the request context.
//!
//! API Gateway passes every claim as a string; an array claim such as `cognito:groups` arrives as
//! `"[admin support]"`. The caller is the `sub` claim; no route takes a user id for the caller's
//! own data.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::ApiError;
use crate::domain::UserId;

/// The group that makes a member an admin.
pub const ADMIN_GROUP: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A signed-in member (admins are members of the `admin` group).
    Member { user: UserId, admin: bool },
    /// A trusted backend using an OAuth client-credentials token: no member, only scopes.
    Service { client_id: String, scopes: Vec<String> },
}

/// The caller, or 401 when the request carries no usable claims.
pub fn caller(req: &Request) -> Result<Caller, ApiError> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| &j.claims),
        _ => None,
    };
    match claims {
        Some(claims) if !claims.is_empty() => caller_from_claims(claims),
        _ => Err(ApiError::unauthenticated("no JWT claims on the request")),
    }
}

/// The calling member; 403 for a service token (it has no member).
pub fn member(req: &Request) -> Result<UserId, ApiError> {
    match caller(req)? {
        Caller::Member { user, .. } => Ok(user),
        Caller::Service { .. } => Err(ApiError::forbidden(
            "this route is for members; a service token has no member",
        )),
    }
}

/// The scope a shop backend's client-credentials token needs for the points write routes.
pub const POINTS_WRITE_SCOPE: &str = "campaign/points.write";

/// A trusted writer of points: an admin, or a service token with [`POINTS_WRITE_SCOPE`]. Returns
/// how the caller is named in keys and on ledger entries: `admin:<sub>` or `service:<client id>`.
pub fn points_writer(req: &Request) -> Result<String, ApiError> {
    writer(req, POINTS_WRITE_SCOPE)
}

/// An admin, or a service token with `scope`. Returns how the caller is named in keys and on
/// ledger entries: `admin:<sub>` or `service:<client id>`.
pub fn writer(req: &Request, scope: &str) -> Result<String, ApiError> {
    match caller(req)? {
        Caller::Member { user, admin: true } => Ok(format!("admin:{user}")),
        Caller::Service { client_id, scopes } if scopes.iter().any(|s| s == scope) => {
            Ok(format!("service:{client_id}"))
        }
        _ => Err(ApiError::forbidden(format!(
            "this route is for admins and services with scope {scope}"
        ))),
    }
}

/// The calling admin; 403 for anyone else.
pub fn admin(req: &Request) -> Result<UserId, ApiError> {
    match caller(req)? {
        Caller::Member { user, admin: true } => Ok(user),
        _ => Err(ApiError::forbidden("this route is for admins")),
    }
}

pub(crate) fn caller_from_claims(claims: &HashMap<String, String>) -> Result<Caller, ApiError> {
    let claim = |name: &str| claims.get(name).map(String::as_str).filter(|v| !v.is_empty());
    // A client-credentials access token: it names a client and no user.
    if let Some(client_id) = claim("client_id")
        && claim("username").is_none()
        && claim("cognito:username").is_none()
    {
        if UserId::parse(client_id).is_err() {
            return Err(ApiError::unauthenticated("the client_id claim is malformed"));
        }
        let scopes = claim("scope")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        return Ok(Caller::Service {
            client_id: client_id.to_owned(),
            scopes,
        });
    }
    let sub = claim("sub").ok_or_else(|| ApiError::unauthenticated("the token has no sub claim"))?;
    let user = UserId::parse(sub).map_err(|_| ApiError::unauthenticated("the sub claim is malformed"))?;
    let admin = claim("cognito:groups").is_some_and(|groups| parse_groups(groups).any(|g| g == ADMIN_GROUP));
    Ok(Caller::Member { user, admin })
}

/// Splits a groups claim exactly as API Gateway renders an array claim: `[admin support]`, the
/// names separated by single spaces (Cognito group names contain no white space). Any other value
/// is one group name, taken whole: `ops,admin`, `admin]` and `["admin"]` are not `admin`.
fn parse_groups(raw: &str) -> Box<dyn Iterator<Item = &str> + '_> {
    match raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(list) => Box::new(list.split(' ').filter(|g| !g.is_empty())),
        None => Box::new(std::iter::once(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn members_and_admins() {
        let c = caller_from_claims(&claims(&[("sub", "u-1")])).unwrap();
        assert_eq!(
            c,
            Caller::Member {
                user: UserId::parse("u-1").unwrap(),
                admin: false
            }
        );
        for groups in ["[admin support]", "[support admin]", "[admin]", "admin"] {
            let c = caller_from_claims(&claims(&[("sub", "u-2"), ("cognito:groups", groups)])).unwrap();
            assert!(matches!(c, Caller::Member { admin: true, .. }), "{groups}");
        }
    }

    #[test]
    fn only_an_exact_group_name_makes_an_admin() {
        for groups in [
            "[administrators]",
            "[support]",
            "",
            "[]",
            "ops,admin",
            "[ops,admin]",
            "admin]",
            "[admin",
            r#"["support","admin"]"#,
            "[Admin]",
            " admin",
        ] {
            let c = caller_from_claims(&claims(&[("sub", "u-2"), ("cognito:groups", groups)])).unwrap();
            assert!(matches!(c, Caller::Member { admin: false, .. }), "{groups}");
        }
    }

    #[test]
    fn service_tokens() {
        let c = caller_from_claims(&claims(&[
            ("sub", "shopclient"),
            ("client_id", "shopclient"),
            ("token_use", "access"),
            ("scope", "campaign/points.write campaign/points.read"),
        ]))
        .unwrap();
        assert_eq!(
            c,
            Caller::Service {
                client_id: "shopclient".into(),
                scopes: vec!["campaign/points.write".into(), "campaign/points.read".into()]
            }
        );
        // A member's access token also names its client, but has a username.
        let c = caller_from_claims(&claims(&[
            ("sub", "u-3"),
            ("client_id", "app"),
            ("username", "bob"),
        ]))
        .unwrap();
        assert!(matches!(c, Caller::Member { .. }));
    }

    #[test]
    fn malformed_claims_are_401() {
        for bad in [
            claims(&[("email", "x@y")]),
            claims(&[("sub", "")]),
            claims(&[("sub", "a#b")]),
        ] {
            assert_eq!(caller_from_claims(&bad).unwrap_err().status, 401);
        }
    }
}
