//! The UserInfo endpoint (OIDC Core §5.3, RFC 6750, RFC 9449 §7): the token
//! comes in the Authorization header or, for POST, in the form body, never
//! both. A DPoP-bound token comes only as `Authorization: DPoP` with a proof
//! by its key; a bound token presented as a bearer token is refused.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::Provider;
use super::claims;
use super::dpop;
use super::params::{Params, is_form};
use crate::store::records::AccessGrant;
use crate::store::{StoreError, StoreResult};

pub async fn userinfo(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    match presented_token(&req, &body) {
        Ok(Some(presented)) => match answer(&req, &provider, &presented).await {
            Ok(answer) => answer,
            Err(refusal) => refusal,
        },
        Ok(None) => challenge(StatusCode::UNAUTHORIZED, None),
        Err(why) => challenge(
            StatusCode::BAD_REQUEST,
            Some(Challenge::new(Scheme::Bearer, "invalid_request", why)),
        ),
    }
}

async fn answer(
    req: &HttpRequest,
    provider: &Provider,
    presented: &Presented,
) -> Result<HttpResponse, HttpResponse> {
    // RFC 9449 §7.1: with the DPoP scheme, a proof by the token's key that
    // hashes this very token. Checked first; spent (its `jti` recorded)
    // only once the token is live and bound to its key, so a request with a
    // made-up token writes nothing.
    let proof = match presented.scheme {
        Scheme::Dpop => {
            match dpop::verify_request(provider, req, "userinfo", Some(&presented.token)) {
                Ok(Some(unspent)) => Some(unspent),
                Ok(None) => {
                    crate::observability::metrics::dpop_proof("missing");
                    return Err(challenge(
                        StatusCode::UNAUTHORIZED,
                        Some(Challenge::new(
                            Scheme::Dpop,
                            "invalid_dpop_proof",
                            "the DPoP proof is missing",
                        )),
                    ));
                }
                Err(refused) => return Err(proof_refused(refused)),
            }
        }
        Scheme::Bearer => None,
    };
    let live = live_access_token(provider, &presented.token)
        .await
        .map_err(|e| unavailable(&e))?
        .and_then(|g| provider.clients.get(&g.client_id).map(|c| (g, c)));
    let invalid = |scheme: Scheme, why: &str| {
        challenge(
            StatusCode::UNAUTHORIZED,
            Some(Challenge::new(scheme, "invalid_token", why)),
        )
    };
    let Some((grant, client)) = live else {
        return Err(invalid(
            presented.scheme,
            "the access token is invalid or expired",
        ));
    };
    match (&grant.jkt, proof) {
        (None, None) => {}
        (Some(bound), Some(proof)) if bound == proof.jkt() => {
            dpop::spend(provider, proof).await.map_err(proof_refused)?;
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                Scheme::Dpop,
                "the DPoP proof is not by the key the access token is bound to",
            ));
        }
        // RFC 9449 §7.2: a bound token is never accepted as a bearer token.
        (Some(_), None) => {
            crate::observability::metrics::dpop_proof("missing");
            return Err(invalid(
                Scheme::Dpop,
                "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                Scheme::Dpop,
                "the access token is not DPoP-bound: present it as a Bearer token",
            ));
        }
    }
    // The token names its client: only that client's origins may read the
    // claims (CORS, `crate::web::cors`).
    client.restrict_cors_to(req);
    let subject = client.subject(&grant.identity);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(claims::userinfo(
            &grant.identity,
            &claims::Subject {
                sub: &subject,
                pairwise: client.pairwise.is_some(),
            },
            &grant.scopes,
        )))
}

/// A proof refused: 401 with its error in a DPoP challenge
/// (`invalid_dpop_proof`, `use_dpop_nonce`: RFC 9449 §7.1, §9), or 503.
fn proof_refused(refused: dpop::Refused) -> HttpResponse {
    if let dpop::Refused::Unavailable(e) = &refused {
        return unavailable(e);
    }
    let e = refused.oauth();
    challenge(
        StatusCode::UNAUTHORIZED,
        Some(Challenge::new(
            Scheme::Dpop,
            e.code.as_str(),
            &e.description,
        )),
    )
}

fn unavailable(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "store call failed");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "2"))
        .json(serde_json::json!({"error": "temporarily_unavailable", "error_description": "the session store is unavailable"}))
}

/// An access token whose record exists and whose family is not revoked.
pub async fn live_access_token(
    provider: &Provider,
    token: &str,
) -> StoreResult<Option<AccessGrant>> {
    let Some(grant) = provider.records.get_access_token(token).await? else {
        return Ok(None);
    };
    if provider.keys.current().is_revoked(&grant.kid)
        || !provider.records.family_alive(&grant.family_id).await?
    {
        return Ok(None);
    }
    Ok(Some(grant))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

struct Presented {
    token: String,
    scheme: Scheme,
}

/// The token from `Authorization: Bearer` or `DPoP` (RFC 9449 §7.1) or,
/// for a bearer token, a POST form body (RFC 6750 §2.2); never from both.
fn presented_token(req: &HttpRequest, body: &[u8]) -> Result<Option<Presented>, &'static str> {
    let from_header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().map_err(|_| "malformed Authorization header")?;
            let (scheme, token) = v
                .split_once(' ')
                .ok_or("the Authorization header must be Bearer or DPoP")?;
            let token = token.trim();
            if token.is_empty() {
                return Err("the Authorization header has no token");
            }
            let scheme = if scheme.eq_ignore_ascii_case("bearer") {
                Scheme::Bearer
            } else if scheme.eq_ignore_ascii_case("dpop") {
                Scheme::Dpop
            } else {
                return Err("the Authorization header must be Bearer or DPoP");
            };
            Some(Presented {
                token: token.to_string(),
                scheme,
            })
        }
    };
    let from_body =
        if req.method() == actix_web::http::Method::POST && is_form(req) && !body.is_empty() {
            let text = std::str::from_utf8(body).map_err(|_| "the body is not valid UTF-8")?;
            let params = Params::parse(text).map_err(|_| "the body is malformed")?;
            params.get("access_token").map(|token| Presented {
                token: token.to_string(),
                scheme: Scheme::Bearer,
            })
        } else {
            None
        };
    match (from_header, from_body) {
        (Some(_), Some(_)) => {
            Err("send the access token once, not in both the header and the body")
        }
        (h, b) => Ok(h.or(b)),
    }
}

/// One `WWW-Authenticate` challenge with its error (RFC 6750 §3, RFC 9449
/// §7.1).
struct Challenge {
    scheme: Scheme,
    error: &'static str,
    description: String,
}

impl Challenge {
    fn new(scheme: Scheme, error: &'static str, description: &str) -> Challenge {
        Challenge {
            scheme,
            error,
            description: description.to_string(),
        }
    }
}

/// The `algs` parameter of a DPoP challenge.
fn dpop_algs() -> String {
    format!("algs=\"{}\"", crate::jose::ALGORITHMS.join(" "))
}

/// Without a token, both schemes are offered; with a bad one, the error in
/// the scheme it concerns.
fn challenge(status: StatusCode, challenge: Option<Challenge>) -> HttpResponse {
    let description = |c: &Challenge| {
        // A quoted-string: no quotes or backslashes inside.
        c.description.replace(['"', '\\'], "'")
    };
    let value = match &challenge {
        None => format!("Bearer, DPoP {}", dpop_algs()),
        Some(c) if c.scheme == Scheme::Bearer => format!(
            "Bearer error=\"{}\", error_description=\"{}\"",
            c.error,
            description(c)
        ),
        Some(c) => format!(
            "DPoP error=\"{}\", error_description=\"{}\", {}",
            c.error,
            description(c),
            dpop_algs()
        ),
    };
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((header::WWW_AUTHENTICATE, value))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match challenge {
        Some(c) => {
            builder.json(serde_json::json!({"error": c.error, "error_description": c.description}))
        }
        None => builder.finish(),
    }
}
