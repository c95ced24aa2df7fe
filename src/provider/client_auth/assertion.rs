//! `private_key_jwt` (OIDC Core §9, RFC 7523 §3): the client signs a short
//! JWT with its private key. Checked in order: the signature under one of
//! the client's keys (by `kid`, else each key the `alg` fits), `iss` and
//! `sub` are the client, `aud` names the issuer or the endpoint, `exp` is
//! near, and the `jti` was never used before (in the store until `exp`).

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::keys::KeysError;
use crate::jose;
use crate::provider::Provider;
use crate::provider::clients::Client;
use crate::provider::error::{ErrorCode, OAuthError};
use crate::provider::session::now;
use crate::store::Namespace;
use crate::store::records::secret_hash;

/// `client_assertion_type` for a JWT (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest an assertion may live: its `jti` is kept that long.
pub const MAX_LIFETIME_SECS: i64 = 600;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;

fn invalid(why: impl AsRef<str>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, why)
}

/// The client an assertion claims to come from (its `iss`), read before
/// anything is verified, to know whose keys to verify it with.
pub fn claimed_client(assertion: &str) -> Result<String, OAuthError> {
    let claims =
        jose::unverified_claims(assertion).map_err(|_| invalid("client_assertion is not a JWT"))?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| invalid("client_assertion has no iss"))
}

/// Verifies `assertion` for `client`, presented at `endpoint_url`.
pub async fn verify(
    provider: &Provider,
    client: &Client,
    assertion: &str,
    endpoint_url: &str,
) -> Result<(), OAuthError> {
    let keys_of_client = client
        .keys
        .as_ref()
        .ok_or_else(|| invalid("the client has no registered keys"))?;
    let header = jose::header(assertion).map_err(|e| invalid(format!("client_assertion: {e}")))?;
    let allowed: Vec<Algorithm> = match client.assertion_alg {
        Some(alg) => vec![alg],
        None => jose::ALGORITHMS
            .iter()
            .filter_map(|a| jose::algorithm(a))
            .collect(),
    };
    let alg = jose::header_alg(&header, &allowed)
        .map_err(|e| invalid(format!("client_assertion: {e}")))?;
    let kid = header.get("kid").and_then(Value::as_str);
    let keys = provider
        .client_keys
        .keys(&client.id, keys_of_client, kid)
        .await
        .map_err(|KeysError::Unavailable(why)| {
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("the client's keys could not be fetched: {why}"),
            )
        })?;
    let claims = keys
        .iter()
        // A `kid` picks its key; a key registered without one may still be it.
        .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref().is_none_or(|own| own == kid)))
        .filter(|k| jose::fits(k, alg))
        .find_map(|k| jose::verify(assertion, k, alg).ok())
        .ok_or_else(|| invalid("client_assertion is not signed by a key the client registered"))?;
    check_claims(&claims, &client.id, &provider.issuer, endpoint_url, now())?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| invalid("client_assertion has no jti"))?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let keep = Duration::from_secs((exp - now() + LEEWAY_SECS).max(1) as u64);
    let first_use = provider
        .records
        .store()
        .put_new(Namespace::Jti, &jti_key(&client.id, jti), b"1", keep)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    if !first_use {
        return Err(invalid("client_assertion was already used (jti)"));
    }
    Ok(())
}

/// The store key of an assertion's `jti`: per client, hashed.
fn jti_key(client_id: &str, jti: &str) -> String {
    secret_hash(&format!("assertion\n{client_id}\n{jti}"))
}

/// RFC 7523 §3 and OIDC Core §9, on verified claims.
fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    issuer: &str,
    endpoint_url: &str,
    now: i64,
) -> Result<(), OAuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) {
        return Err(invalid("client_assertion: iss must be the client_id"));
    }
    if text("sub") != Some(client_id) {
        return Err(invalid("client_assertion: sub must be the client_id"));
    }
    let token_endpoint = format!("{issuer}/token");
    let accepted = |aud: &str| aud == issuer || aud == endpoint_url || aud == token_endpoint;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid(
            "client_assertion: aud must be the issuer or the endpoint's URL",
        ));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("client_assertion has no exp"))?;
    if exp.saturating_add(LEEWAY_SECS) <= now {
        return Err(invalid("client_assertion has expired"));
    }
    if exp > now + MAX_LIFETIME_SECS {
        return Err(invalid(format!(
            "client_assertion: exp must be within {MAX_LIFETIME_SECS} seconds"
        )));
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + LEEWAY_SECS)
    {
        return Err(invalid("client_assertion is not valid yet (nbf)"));
    }
    if claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_some_and(|iat| iat > now + LEEWAY_SECS)
    {
        return Err(invalid("client_assertion was issued in the future (iat)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://sso.example.com";
    const AT_PAR: &str = "https://sso.example.com/par";

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "app", "sub": "app", "aud": ISSUER, "exp": 1_100, "jti": "j1",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    fn check(extra: Value) -> Result<(), String> {
        check_claims(&claims(extra), "app", ISSUER, AT_PAR, 1_000).map_err(|e| e.description)
    }

    #[test]
    fn iss_and_sub_must_both_be_the_client() {
        assert!(check(json!({})).is_ok());
        assert!(check(json!({"iss": "other"})).unwrap_err().contains("iss"));
        assert!(check(json!({"sub": "other"})).unwrap_err().contains("sub"));
        assert!(check(json!({"sub": null})).unwrap_err().contains("sub"));
    }

    #[test]
    fn aud_may_be_the_issuer_the_token_endpoint_or_the_endpoint_itself() {
        for aud in [
            json!(ISSUER),
            json!("https://sso.example.com/token"),
            json!(AT_PAR),
            json!(["https://elsewhere", ISSUER]),
        ] {
            assert!(check(json!({ "aud": aud })).is_ok());
        }
        for aud in [
            json!("https://sso.example.com/"),
            json!("https://sso.example.com/revoke"),
            json!(["https://elsewhere"]),
            json!(7),
        ] {
            assert!(check(json!({ "aud": aud })).unwrap_err().contains("aud"));
        }
    }

    #[test]
    fn exp_must_be_present_and_near() {
        assert!(check(json!({"exp": null})).unwrap_err().contains("no exp"));
        assert!(check(json!({"exp": 960})).unwrap_err().contains("expired"));
        assert!(check(json!({"exp": 1_000 + MAX_LIFETIME_SECS + 1})).is_err());
        assert!(check(json!({"exp": 1_000 + MAX_LIFETIME_SECS})).is_ok());
        assert!(check(json!({"exp": i64::MAX})).is_err());
    }

    #[test]
    fn nbf_and_iat_may_not_lie_in_the_future() {
        assert!(check(json!({"nbf": 1_100})).unwrap_err().contains("nbf"));
        assert!(check(json!({"iat": 1_100})).unwrap_err().contains("iat"));
        assert!(check(json!({"nbf": 990, "iat": 990})).is_ok());
    }

    #[test]
    fn the_claimed_client_is_read_from_iss() {
        let key = crate::jose::testing::TestKey::es256();
        let jwt = key.jws(&json!({"alg": "ES256"}), &json!({"iss": "app"}));
        assert_eq!(claimed_client(&jwt).unwrap(), "app");
        assert!(claimed_client("nonsense").is_err());
    }
}
