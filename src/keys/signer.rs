//! One signing key: an aws-lc-rs key pair parsed once and kept. The private key
//! never goes through the `rsa` crate (RUSTSEC-2023-0071) nor through
//! `jsonwebtoken::encode`, which would re-parse it on every token.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use openidconnect::core::{CoreJsonCurveType, CoreJsonWebKey, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKeyId, PrivateSigningKey, SigningError};
use serde::{Deserialize, Serialize};

/// The JWS algorithms we sign ID tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA-2048 or larger: required by OIDC.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256; the signature is r||s (64 bytes).
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    pub fn jws(self) -> CoreJwsSigningAlgorithm {
        match self {
            Algorithm::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Algorithm::Es256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            Algorithm::EdDsa => CoreJwsSigningAlgorithm::EdDsa,
        }
    }

    fn jwk_alg(self) -> KeyAlgorithm {
        match self {
            Algorithm::Rs256 => KeyAlgorithm::RS256,
            Algorithm::Es256 => KeyAlgorithm::ES256,
            Algorithm::EdDsa => KeyAlgorithm::EdDSA,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    /// Exact, case-sensitive names, as in JWS headers and client metadata.
    fn from_str(s: &str) -> Result<Algorithm, String> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("\"{s}\" is not offered (offered: \"RS256\", \"ES256\", \"EdDSA\")")
            })
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: Pair,
    rng: SystemRandom,
    /// The public half, built once: published in the JWKS.
    jwk: Jwk,
    /// The same, as openidconnect wants it (`kid` header, `at_hash`).
    verification: CoreJsonWebKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint: SHA-256 over the required members, in lexicographic
/// order, no whitespace. Computed here for every key type because
/// jsonwebtoken refuses some Ed25519 encodings.
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

impl SigningKey {
    /// A fresh key and its PKCS#8 v1 encoding (for the key file).
    pub fn generate(alg: Algorithm) -> Result<(SigningKey, Vec<u8>), String> {
        let der = match alg {
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| "RSA key generation failed")?;
                let der =
                    AsDer::<Pkcs8V1Der>::as_der(&pair).map_err(|_| "cannot encode the key")?;
                der.as_ref().to_vec()
            }
            Algorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| "P-256 key generation failed")?
                .as_ref()
                .to_vec(),
            Algorithm::EdDsa => Ed25519KeyPair::generate()
                .and_then(|p| p.to_pkcs8v1())
                .map_err(|_| "Ed25519 key generation failed")?
                .as_ref()
                .to_vec(),
        };
        // Parsing what we just encoded proves the file will load.
        Ok((Self::from_pkcs8(alg, &der)?, der))
    }

    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, String> {
        match alg {
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| format!("not an RSA private key: {e}"))?;
                if pair.public_modulus_len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                let public = pair.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                let (n64, e64) = (URL_SAFE_NO_PAD.encode(&n), URL_SAFE_NO_PAD.encode(&e));
                let kid = thumbprint(&format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#));
                let params = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: n64,
                    e: e64,
                });
                let verification =
                    CoreJsonWebKey::new_rsa(n, e, Some(JsonWebKeyId::new(kid.clone())));
                Ok(Self::assemble(
                    alg,
                    kid,
                    Pair::Rsa(pair),
                    params,
                    verification,
                ))
            }
            Algorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| format!("not a P-256 private key: {e}"))?;
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err("unexpected P-256 public key encoding".into());
                }
                let (x, y) = (point[1..33].to_vec(), point[33..].to_vec());
                let (x64, y64) = (URL_SAFE_NO_PAD.encode(&x), URL_SAFE_NO_PAD.encode(&y));
                let kid = thumbprint(&format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{x64}","y":"{y64}"}}"#
                ));
                let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: x64,
                    y: y64,
                });
                let verification = CoreJsonWebKey::new_ec(
                    x,
                    y,
                    CoreJsonCurveType::P256,
                    Some(JsonWebKeyId::new(kid.clone())),
                );
                Ok(Self::assemble(
                    alg,
                    kid,
                    Pair::Ecdsa(pair),
                    params,
                    verification,
                ))
            }
            Algorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|e| format!("not an Ed25519 private key: {e}"))?;
                let x = pair.public_key().as_ref().to_vec();
                let x64 = URL_SAFE_NO_PAD.encode(&x);
                let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x64}"}}"#));
                let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: x64,
                });
                // `crv` must be set: openidconnect picks SHA-512 for EdDSA's
                // `at_hash` from it.
                let verification = CoreJsonWebKey::new_okp(
                    x,
                    CoreJsonCurveType::Ed25519,
                    Some(JsonWebKeyId::new(kid.clone())),
                );
                Ok(Self::assemble(
                    alg,
                    kid,
                    Pair::Ed25519(pair),
                    params,
                    verification,
                ))
            }
        }
    }

    fn assemble(
        alg: Algorithm,
        kid: String,
        pair: Pair,
        params: AlgorithmParameters,
        verification: CoreJsonWebKey,
    ) -> SigningKey {
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(alg.jwk_alg()),
                key_id: Some(kid.clone()),
                ..CommonParameters::default()
            },
            algorithm: params,
        };
        SigningKey {
            kid,
            alg,
            pair,
            rng: SystemRandom::new(),
            jwk,
            verification,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half as published in the JWKS: `kid` is the RFC 7638
    /// thumbprint, with `use` and `alg` set.
    pub fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// Raw JWS signature over `message` (the JWS signing input).
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| "RSA signing failed".to_string())?;
                Ok(signature)
            }
            Pair::Ecdsa(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_string()),
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl PrivateSigningKey for SigningKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(&self, alg: &CoreJwsSigningAlgorithm, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        if *alg != self.alg.jws() {
            return Err(SigningError::UnsupportedAlg(format!("{alg:?}")));
        }
        self.sign_bytes(message).map_err(SigningError::Other)
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.verification.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::ThumbprintHash;

    fn jws(key: &SigningKey, payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"{}","kid":"{}"}}"#,
            key.alg().as_str(),
            key.kid()
        ));
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let sig = URL_SAFE_NO_PAD.encode(key.sign_bytes(input.as_bytes()).unwrap());
        format!("{input}.{sig}")
    }

    fn jsonwebtoken_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
        alg.as_str().parse().unwrap()
    }

    #[test]
    fn every_algorithm_signs_a_jws_that_jsonwebtoken_verifies_with_the_published_jwk() {
        for alg in Algorithm::ALL {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(
                again.kid(),
                key.kid(),
                "{alg}: kid is a function of the public key"
            );
            let token = jws(&key, r#"{"sub":"x","exp":4102444800}"#);
            // Through JSON, as a relying party would see it.
            let json = serde_json::to_string(&key.public_jwk()).unwrap();
            let jwk: Jwk = serde_json::from_str(&json).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken_alg(alg));
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            let data =
                jsonwebtoken::decode::<serde_json::Value>(token.as_str(), &decoding, &validation)
                    .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(data.claims["sub"], "x");
        }
    }

    #[test]
    fn an_es256_signature_is_the_64_byte_r_s_form() {
        let (key, _) = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(key.sign_bytes(b"m").unwrap().len(), 64);
    }

    #[test]
    fn each_jwk_carries_kid_use_alg_and_no_private_part() {
        for (alg, kty) in [
            (Algorithm::Rs256, "RSA"),
            (Algorithm::Es256, "EC"),
            (Algorithm::EdDsa, "OKP"),
        ] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let json = serde_json::to_value(key.public_jwk()).unwrap();
            assert_eq!(json["kid"], key.kid());
            assert_eq!(json["use"], "sig");
            assert_eq!(json["alg"], alg.as_str());
            assert_eq!(json["kty"], kty);
            assert!(json.get("d").is_none(), "{alg}: no private part");
        }
    }

    #[test]
    fn kids_match_the_rfc_7638_and_rfc_8037_examples() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(&format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#)),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 8037 Appendix A.3.
        assert_eq!(
            thumbprint(
                r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
            ),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rsa_and_ec_kids_equal_jsonwebtokens_thumbprint() {
        // Existing key files hold kids computed by jsonwebtoken: ours must agree.
        for alg in [Algorithm::Rs256, Algorithm::Es256] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let mut jwk = key.public_jwk();
            jwk.common = CommonParameters::default();
            assert_eq!(
                jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
                key.kid(),
                "{alg}"
            );
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let (_, der) = SigningKey::generate(Algorithm::Es256).unwrap();
        assert!(SigningKey::from_pkcs8(Algorithm::Rs256, &der).is_err());
        assert!(SigningKey::from_pkcs8(Algorithm::EdDsa, &der).is_err());
    }

    #[test]
    fn algorithm_names_parse_exactly() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{}\"", alg.as_str()));
        }
        assert!("rs256".parse::<Algorithm>().is_err());
        assert!("ES512".parse::<Algorithm>().is_err());
    }
}
