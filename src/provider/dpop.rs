//! DPoP (RFC 9449): a client proves, at each request, that it holds the
//! private key its tokens are bound to, so a stolen token is useless.
//!
//! A proof is checked as §4.3 lists: one `DPoP` header; a JWS typed
//! `dpop+jwt`, signed with an asymmetric algorithm by the public key in its
//! own `jwk` header; `htm` and `htu` name this request (the URL under the
//! issuer, without query or fragment); `iat` within `dpop.proof_max_age_secs`
//! of now; `ath` the hash of the access token presented with it; the nonce
//! the bridge gave, when `dpop.require_nonce`; and a `jti` never seen
//! before (kept in the store while the proof could be replayed).
//!
//! Nonces are stateless: the time, sealed under the active signing key's
//! sealing key, so every instance accepts every other's, for [`NONCE_LIFE`].

use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, web};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use url::Url;

use super::Provider;
use super::error::{ErrorCode, OAuthError};
use super::session::now;
use crate::jose;
use crate::observability::metrics;
use crate::store::records::secret_hash;
use crate::store::{Namespace, StoreError};

pub const DPOP: &str = "DPoP";
pub const DPOP_NONCE: &str = "DPoP-Nonce";
/// How long a nonce the bridge gave is accepted.
pub const NONCE_LIFE: i64 = 300;
const NONCE_PURPOSE: &str = "dpop-nonce";
pub const REPLAYED: &str = "the DPoP proof was already used (jti)";
/// Longer `jti`s are refused rather than stored.
const MAX_JTI_LEN: usize = 256;

/// A checked proof: the thumbprint (RFC 7638) of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub jkt: String,
}

/// Why a proof was not accepted.
#[derive(Debug)]
pub enum Refused {
    Invalid(String),
    /// Its `jti` was seen before: a replay.
    Replayed,
    /// The proof lacks the nonce the bridge requires, or its nonce expired.
    Nonce,
    Unavailable(StoreError),
}

impl Refused {
    /// As the token endpoint answers (RFC 9449 §5, §8).
    pub fn oauth(&self) -> OAuthError {
        match self {
            Refused::Invalid(why) => OAuthError::new(ErrorCode::InvalidDpopProof, why),
            Refused::Replayed => OAuthError::new(ErrorCode::InvalidDpopProof, REPLAYED),
            Refused::Nonce => OAuthError::new(
                ErrorCode::UseDpopNonce,
                "the DPoP proof must carry the nonce in the DPoP-Nonce header",
            ),
            Refused::Unavailable(e) => OAuthError::unavailable(e),
        }
    }
}

/// The algorithms a proof may be signed with (discovery's
/// `dpop_signing_alg_values_supported`).
pub fn algorithms() -> Vec<Algorithm> {
    jose::ALGORITHMS
        .iter()
        .filter_map(|a| jose::algorithm(a))
        .collect()
}

/// The proof of a request to `{issuer}/{endpoint}`, if it carries one,
/// checked and spent. `access_token`: the token presented with it, which
/// `ath` must hash.
pub async fn check(
    provider: &Provider,
    req: &HttpRequest,
    endpoint: &str,
    access_token: Option<&str>,
) -> Result<Option<Proof>, Refused> {
    match verify_request(provider, req, endpoint, access_token)? {
        Some(unspent) => spend(provider, unspent).await.map(Some),
        None => Ok(None),
    }
}

/// A token request's proof, if it had one: checked when the request came,
/// spent once the grant it comes with is known to be good, so a made-up
/// code or refresh token writes nothing.
pub struct TokenProof(pub Option<Unspent>);

impl TokenProof {
    pub fn jkt(&self) -> Option<&str> {
        self.0.as_ref().map(Unspent::jkt)
    }

    /// Records the `jti`'s first use; a replay is refused.
    pub async fn spend(&self, provider: &Provider) -> Result<(), OAuthError> {
        match &self.0 {
            Some(unspent) => record_first_use(provider, unspent)
                .await
                .map_err(|r| r.oauth()),
            None => Ok(()),
        }
    }
}

/// A proof that passed every check but the first use of its `jti`.
pub struct Unspent {
    proof: Proof,
    jti: String,
}

impl Unspent {
    pub fn jkt(&self) -> &str {
        &self.proof.jkt
    }
}

fn counted(r: Refused) -> Refused {
    metrics::dpop_proof(match &r {
        Refused::Invalid(_) => "invalid",
        Refused::Replayed => "replayed",
        Refused::Nonce => "nonce",
        Refused::Unavailable(_) => "unavailable",
    });
    r
}

/// Every check of the request's proof that needs no store: userinfo runs
/// them, then checks the token, and [`spend`]s the proof only for a live
/// one, so a request with a made-up token writes nothing.
pub fn verify_request(
    provider: &Provider,
    req: &HttpRequest,
    endpoint: &str,
    access_token: Option<&str>,
) -> Result<Option<Unspent>, Refused> {
    let mut headers = req.headers().get_all(DPOP);
    let Some(value) = headers.next() else {
        return Ok(None);
    };
    if headers.next().is_some() {
        return Err(counted(Refused::Invalid(
            "send one DPoP header, not several".into(),
        )));
    }
    let jwt = value
        .to_str()
        .map_err(|_| counted(Refused::Invalid("the DPoP header is not text".into())))?;
    let expected = Expected {
        method: req.method().as_str(),
        url: format!("{}/{endpoint}", provider.issuer),
        access_token,
        now: now(),
        max_age: provider.config.dpop.proof_max_age_secs as i64,
    };
    let (verified, jti) = verify(jwt, &expected).map_err(|why| counted(Refused::Invalid(why)))?;
    if provider.config.dpop.require_nonce && !nonce_is_fresh(provider, &verified.nonce) {
        return Err(counted(Refused::Nonce));
    }
    Ok(Some(Unspent {
        proof: verified.checked,
        jti,
    }))
}

/// The `jti`'s first use, recorded in the store for as long as the proof
/// could be replayed (twice the `iat` window: either side of now).
pub async fn spend(provider: &Provider, unspent: Unspent) -> Result<Proof, Refused> {
    record_first_use(provider, &unspent).await?;
    Ok(unspent.proof)
}

async fn record_first_use(provider: &Provider, unspent: &Unspent) -> Result<(), Refused> {
    let keep = Duration::from_secs(2 * provider.config.dpop.proof_max_age_secs);
    let first_use = provider
        .records
        .store()
        .put_new(
            Namespace::Jti,
            &jti_key(&unspent.proof.jkt, &unspent.jti),
            b"1",
            keep,
        )
        .await
        .map_err(|e| counted(Refused::Unavailable(e)))?;
    if !first_use {
        return Err(counted(Refused::Replayed));
    }
    metrics::dpop_proof("ok");
    Ok(())
}

/// What a proof must say to be this request's.
struct Expected<'a> {
    method: &'a str,
    url: String,
    access_token: Option<&'a str>,
    now: i64,
    max_age: i64,
}

struct Verified {
    checked: Proof,
    nonce: Option<String>,
}

/// §4.3's checks 1 to 11 but the nonce and the `jti`'s first use.
fn verify(jwt: &str, expected: &Expected<'_>) -> Result<(Verified, String), String> {
    let header = jose::header(jwt).map_err(|e| format!("the DPoP proof: {e}"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err("the DPoP proof's typ must be dpop+jwt".into());
    }
    let alg =
        jose::header_alg(&header, &algorithms()).map_err(|e| format!("the DPoP proof: {e}"))?;
    let jwk = header
        .get("jwk")
        .ok_or("the DPoP proof has no jwk header")
        .and_then(|v| {
            jose::public_jwk(v).map_err(|_| "the DPoP proof's jwk is not a usable public key")
        })?;
    let claims = jose::verify(jwt, &jwk, alg).map_err(|e| format!("the DPoP proof: {e}"))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or("the DPoP proof has no usable jti")?;
    if text("htm") != Some(expected.method) {
        return Err("the DPoP proof's htm is not this request's method".into());
    }
    if !same_target(text("htu").unwrap_or(""), &expected.url) {
        return Err("the DPoP proof's htu is not this endpoint's URL".into());
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("the DPoP proof has no iat")?;
    if (expected.now - iat).abs() > expected.max_age {
        return Err("the DPoP proof's iat is too far from now".into());
    }
    if let Some(token) = expected.access_token
        // §4.2: base64url of the SHA-256 of the token, as the store keys it.
        && text("ath") != Some(&secret_hash(token))
    {
        return Err("the DPoP proof's ath is not the access token's hash".into());
    }
    let jkt = jose::thumbprint(&jwk)?;
    Ok((
        Verified {
            checked: Proof { jkt },
            nonce: text("nonce").map(str::to_string),
        },
        jti.to_string(),
    ))
}

/// `htu` against the endpoint's URL, ignoring query and fragment (§4.3),
/// with the syntax-based normalization of RFC 3986 §6.2.2 and §6.2.3
/// (scheme and host case, default port, percent-encoding case).
fn same_target(htu: &str, expected: &str) -> bool {
    let Ok(mut htu) = Url::parse(htu) else {
        return false;
    };
    htu.set_query(None);
    htu.set_fragment(None);
    Url::parse(expected).is_ok_and(|e| e == htu)
}

/// The store key of a proof's `jti`: per key, hashed.
fn jti_key(jkt: &str, jti: &str) -> String {
    secret_hash(&format!("dpop\n{jkt}\n{jti}"))
}

/// A fresh nonce: the time, sealed.
pub fn nonce(provider: &Provider) -> String {
    provider
        .keys
        .current()
        .seal(NONCE_PURPOSE, &now().to_be_bytes())
}

fn nonce_is_fresh(provider: &Provider, nonce: &Option<String>) -> bool {
    let Some(nonce) = nonce else {
        return false;
    };
    let Ok(bytes) = provider.keys.current().open(NONCE_PURPOSE, nonce) else {
        return false;
    };
    let Ok(time) = <[u8; 8]>::try_from(bytes.as_slice()) else {
        return false;
    };
    let age = now() - i64::from_be_bytes(time);
    (0..=NONCE_LIFE).contains(&age)
}

/// Middleware of the endpoints that take proofs (token, PAR, userinfo):
/// when nonces are required, every answer, refusals and 429s included,
/// carries a fresh `DPoP-Nonce`, so a client told `use_dpop_nonce` always
/// has one to retry with (§8.2, §9).
pub async fn nonces(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let provider = req
        .app_data::<web::Data<Provider>>()
        .filter(|p| p.config.dpop.require_nonce)
        .cloned();
    let mut response = next.call(req).await?;
    if let Some(provider) = provider
        && let Ok(value) = HeaderValue::from_str(&nonce(&provider))
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("dpop-nonce"), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::testing::TestKey;
    use serde_json::json;

    const URL: &str = "https://sso.example.com/token";

    fn expected(access_token: Option<&str>) -> Expected<'_> {
        Expected {
            method: "POST",
            url: URL.into(),
            access_token,
            now: 1_000,
            max_age: 60,
        }
    }

    fn proof(key: &TestKey, header: Value, claims: Value) -> String {
        let mut h = json!({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public});
        for (k, v) in header.as_object().unwrap() {
            h[k] = v.clone();
        }
        let mut c = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": 1_000});
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        key.jws(&h, &c)
    }

    fn check(jwt: &str, access_token: Option<&str>) -> Result<String, String> {
        verify(jwt, &expected(access_token)).map(|(v, _)| v.checked.jkt)
    }

    #[test]
    fn a_proof_binds_to_the_thumbprint_of_its_key() {
        for key in [TestKey::es256(), TestKey::ed25519()] {
            let jkt = check(&proof(&key, json!({}), json!({})), None).unwrap();
            let jwk = jose::public_jwk(&key.public).unwrap();
            assert_eq!(jkt, jose::thumbprint(&jwk).unwrap());
        }
    }

    #[test]
    fn htm_and_htu_must_name_this_request() {
        let key = TestKey::es256();
        let bad = |claims| check(&proof(&key, json!({}), claims), None).unwrap_err();
        assert!(bad(json!({"htm": "GET"})).contains("htm"));
        assert!(bad(json!({"htu": "https://sso.example.com/userinfo"})).contains("htu"));
        assert!(bad(json!({"htu": "https://evil.example/token"})).contains("htu"));
        assert!(bad(json!({"htu": null})).contains("htu"));
        for same in [
            "https://SSO.example.com/token",
            "https://sso.example.com:443/token",
            "https://sso.example.com/token?x=1#f",
        ] {
            assert!(
                check(&proof(&key, json!({}), json!({"htu": same})), None).is_ok(),
                "{same}"
            );
        }
    }

    #[test]
    fn iat_must_be_within_the_window_either_way() {
        let key = TestKey::es256();
        let at = |iat: i64| check(&proof(&key, json!({}), json!({"iat": iat})), None);
        assert!(at(940).is_ok());
        assert!(at(1_060).is_ok());
        assert!(at(939).unwrap_err().contains("iat"));
        assert!(at(1_061).unwrap_err().contains("iat"));
    }

    #[test]
    fn ath_must_hash_the_presented_token() {
        let key = TestKey::es256();
        let good = proof(&key, json!({}), json!({"ath": secret_hash("tok")}));
        assert!(check(&good, Some("tok")).is_ok());
        assert!(check(&good, Some("other")).unwrap_err().contains("ath"));
        let none = proof(&key, json!({}), json!({}));
        assert!(check(&none, Some("tok")).unwrap_err().contains("ath"));
    }

    #[test]
    fn the_header_must_be_typed_asymmetric_and_carry_a_public_key() {
        let key = TestKey::es256();
        let bad = |header| check(&proof(&key, header, json!({})), None).unwrap_err();
        assert!(bad(json!({"typ": "JWT"})).contains("typ"));
        assert!(bad(json!({"alg": "HS256"})).contains("alg"));
        assert!(bad(json!({"alg": "none"})).contains("alg"));
        assert!(bad(json!({"jwk": null})).contains("jwk"));
        let mut private = key.public.clone();
        private["d"] = json!("AAAA");
        assert!(bad(json!({ "jwk": private })).contains("jwk"));
        // Signed by one key, claiming another.
        assert!(bad(json!({ "jwk": TestKey::es256().public })).contains("signature"));
    }

    #[test]
    fn jti_is_required() {
        let key = TestKey::es256();
        let e = check(&proof(&key, json!({}), json!({"jti": ""})), None).unwrap_err();
        assert!(e.contains("jti"));
    }
}
