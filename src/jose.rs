//! JWTs that others sign with their own public keys: client assertions
//! (RFC 7523, `provider::client_auth`) and DPoP proofs (RFC 9449,
//! `provider::dpop`). Only asymmetric algorithms, each with the one key type
//! it is defined for; a key must be public (a JWK carrying a private member
//! is refused, not trimmed) and an RSA modulus must have 2048 bits or more.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The algorithms a client may sign with (discovery's
/// `token_endpoint_auth_signing_alg_values_supported` and
/// `dpop_signing_alg_values_supported`).
pub const ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// Members that only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

const MIN_RSA_BITS: usize = 2048;
/// Larger keys would make each verification (a DPoP proof comes with any
/// request) cost the bridge more than it is worth.
const MAX_RSA_BITS: usize = 8192;

/// One of [`ALGORITHMS`], by its JOSE name.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "PS256" => Some(Algorithm::PS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// A public JWK of a supported type, from its JSON.
pub fn public_jwk(value: &Value) -> Result<Jwk, String> {
    let object = value.as_object().ok_or("a JWK must be a JSON object")?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
        return Err(format!(
            "the key has the private member \"{member}\": give the public key only"
        ));
    }
    let jwk: Jwk =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a usable JWK: {e}"))?;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "the RSA modulus is not base64url")?;
            // Leading zero octets add length, not bits.
            let n = &n[n.iter().take_while(|b| **b == 0).count()..];
            let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "the RSA key has {bits} bits; at most {MAX_RSA_BITS} are accepted"
                ));
            }
            if rsa.e != "AQAB" {
                return Err("the RSA public exponent must be 65537 (AQAB)".into());
            }
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {}
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {}
        _ => return Err("only RSA, EC P-256 and OKP Ed25519 keys are supported".into()),
    }
    DecodingKey::from_jwk(&jwk).map_err(|e| format!("not a usable key: {e}"))?;
    Ok(jwk)
}

/// Whether `alg` is defined for the key's type (and curve), and the key
/// does not restrict itself to another algorithm or to encryption.
pub fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if jwk
        .common
        .key_algorithm
        .is_some_and(|declared| Algorithm::try_from(declared).ok() != Some(alg))
        || matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// The JWK SHA-256 thumbprint (RFC 7638), base64url: what a DPoP-bound
/// token's `cnf.jkt` holds.
pub fn thumbprint(jwk: &Jwk) -> Result<String, String> {
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| format!("no thumbprint: {e}"))
}

/// A compact JWS's protected header as JSON, before anything is trusted.
pub fn header(token: &str) -> Result<Map<String, Value>, String> {
    let header = segment(token, 0).map_err(|e| format!("the header {e}"))?;
    if header.contains_key("crit") {
        return Err("the header has \"crit\" extensions, which are not understood".into());
    }
    Ok(header)
}

/// A compact JWS's claims, not verified: only to know whose keys verify it.
pub fn unverified_claims(token: &str) -> Result<Map<String, Value>, String> {
    segment(token, 1).map_err(|e| format!("the payload {e}"))
}

/// Part `index` of a compact JWS (three dot-separated parts), as JSON.
fn segment(token: &str, index: usize) -> Result<Map<String, Value>, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("is not in a compact JWS (three dot-separated parts)".into());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[index])
        .map_err(|_| "is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "is not a JSON object".into())
}

/// The header's `alg`, when it is one of [`ALGORITHMS`] and among `allowed`.
pub fn header_alg(header: &Map<String, Value>, allowed: &[Algorithm]) -> Result<Algorithm, String> {
    let name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the header has no alg")?;
    algorithm(name)
        .filter(|alg| allowed.contains(alg))
        .ok_or_else(|| format!("alg \"{name}\" is not accepted"))
}

/// Verifies the signature with `jwk` under `alg` and returns the claims.
/// Time and audience are the caller's to check: each use has its own rules.
pub fn verify(token: &str, jwk: &Jwk, alg: Algorithm) -> Result<Map<String, Value>, String> {
    if !fits(jwk, alg) {
        return Err(format!("alg {alg:?} does not fit the key's type"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("not a usable key: {e}"))?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "the signature is invalid".into(),
            _ => format!("the JWT is not valid: {e}"),
        })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Keys and signatures for tests, made with aws-lc-rs.
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    type Signer = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

    pub struct TestKey {
        pub alg: &'static str,
        pub public: Value,
        sign: Signer,
    }

    impl TestKey {
        pub fn es256() -> TestKey {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
            )
            .unwrap();
            let point = pair.public_key().as_ref().to_vec();
            let public = json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            TestKey {
                alg: "ES256",
                public,
                sign: Box::new(move |m| {
                    pair.sign(&SystemRandom::new(), m)
                        .unwrap()
                        .as_ref()
                        .to_vec()
                }),
            }
        }

        pub fn ed25519() -> TestKey {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let public = json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            });
            TestKey {
                alg: "EdDSA",
                public,
                sign: Box::new(move |m| pair.sign(m).as_ref().to_vec()),
            }
        }

        pub fn jws(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
            );
            let signature = (self.sign)(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestKey;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signature_verifies_under_its_key_and_no_other() {
        for key in [TestKey::es256(), TestKey::ed25519()] {
            let alg = algorithm(key.alg).unwrap();
            let jwk = public_jwk(&key.public).unwrap();
            let token = key.jws(&json!({"alg": key.alg}), &json!({"a": 1}));
            assert_eq!(verify(&token, &jwk, alg).unwrap()["a"], 1);
            let other = public_jwk(&TestKey::es256().public).unwrap();
            if alg == Algorithm::ES256 {
                assert!(verify(&token, &other, alg).is_err());
            }
            let mut tampered = token.clone();
            tampered.insert_str(token.find('.').unwrap() + 1, "e30");
            assert!(verify(&tampered, &jwk, alg).is_err());
        }
    }

    #[test]
    fn an_algorithm_must_fit_the_key_type() {
        let ec = public_jwk(&TestKey::es256().public).unwrap();
        assert!(fits(&ec, Algorithm::ES256));
        assert!(!fits(&ec, Algorithm::EdDSA));
        assert!(!fits(&ec, Algorithm::RS256));
        let ed = public_jwk(&TestKey::ed25519().public).unwrap();
        assert!(fits(&ed, Algorithm::EdDSA));
        assert!(!fits(&ed, Algorithm::ES256));
        let mut declared = TestKey::es256().public;
        declared["alg"] = json!("ES384");
        assert!(!fits(&public_jwk(&declared).unwrap(), Algorithm::ES256));
        declared["alg"] = json!("ES256");
        assert!(fits(&public_jwk(&declared).unwrap(), Algorithm::ES256));
        declared["use"] = json!("enc");
        assert!(!fits(&public_jwk(&declared).unwrap(), Algorithm::ES256));
    }

    #[test]
    fn private_members_symmetric_keys_and_small_rsa_keys_are_refused() {
        let mut private = TestKey::es256().public;
        private["d"] = json!("AAAA");
        assert!(public_jwk(&private).unwrap_err().contains("\"d\""));
        assert!(public_jwk(&json!({"kty": "oct", "k": "c2VjcmV0"})).is_err());
        let small = json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128])});
        assert!(public_jwk(&small).unwrap_err().contains("1024 bits"));
        let mut padded = vec![0u8; 129];
        padded.extend([0xc5u8; 128]);
        let padded = json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode(padded)});
        assert!(public_jwk(&padded).unwrap_err().contains("1024 bits"));
        let empty = json!({"kty": "RSA", "e": "AQAB", "n": ""});
        assert!(public_jwk(&empty).unwrap_err().contains("0 bits"));
        let huge = json!({"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 1025])});
        assert!(public_jwk(&huge).unwrap_err().contains("at most 8192"));
        let odd_e = json!({"kty": "RSA", "e": "Aw", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 256])});
        assert!(public_jwk(&odd_e).unwrap_err().contains("65537"));
        let p384 = json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"});
        assert!(public_jwk(&p384).is_err());
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk = public_jwk(&json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_header_with_crit_or_an_unknown_alg_is_refused() {
        let key = TestKey::es256();
        let token = key.jws(&json!({"alg": "ES256", "crit": ["x"]}), &json!({}));
        assert!(header(&token).unwrap_err().contains("crit"));
        let token = key.jws(&json!({"alg": "HS256"}), &json!({}));
        let h = header(&token).unwrap();
        assert!(header_alg(&h, &[Algorithm::ES256]).is_err());
        let token = key.jws(&json!({"alg": "ES256"}), &json!({}));
        let h = header(&token).unwrap();
        assert!(header_alg(&h, &[Algorithm::EdDSA]).is_err());
        assert_eq!(
            header_alg(&h, &[Algorithm::ES256]).unwrap(),
            Algorithm::ES256
        );
        assert!(header("a.b").is_err());
    }
}
