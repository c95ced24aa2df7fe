//! One signing key: an aws-lc-rs key pair parsed once and kept. The private key
//! never goes through the `rsa` crate (RUSTSEC-2023-0071) nor through
//! `jsonwebtoken::encode`, which would re-parse it on every token.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, KeyAlgorithm, PublicKeyUse, RSAKeyParameters,
    RSAKeyType, ThumbprintHash,
};
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKeyId, PrivateSigningKey, SigningError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "RS256")]
    Rs256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
        }
    }

    pub fn jws(self) -> CoreJwsSigningAlgorithm {
        match self {
            Algorithm::Rs256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        }
    }
}

pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pair: RsaKeyPair,
    n: Vec<u8>,
    e: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key and its PKCS#8 encoding (for the key file).
    pub fn generate(alg: Algorithm) -> Result<(SigningKey, Vec<u8>), String> {
        match alg {
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| "RSA key generation failed")?;
                let der =
                    AsDer::<Pkcs8V1Der>::as_der(&pair).map_err(|_| "cannot encode the key")?;
                let der = der.as_ref().to_vec();
                Ok((Self::from_rsa(pair)?, der))
            }
        }
    }

    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, String> {
        match alg {
            Algorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| format!("not an RSA private key: {e}"))?;
                if pair.public_modulus_len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                Self::from_rsa(pair)
            }
        }
    }

    fn from_rsa(pair: RsaKeyPair) -> Result<SigningKey, String> {
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let mut key = SigningKey {
            kid: String::new(),
            alg: Algorithm::Rs256,
            pair,
            n,
            e,
            rng: SystemRandom::new(),
        };
        key.kid = key
            .jwk_without_kid()
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| e.to_string())?;
        Ok(key)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    fn jwk_without_kid(&self) -> Jwk {
        Jwk {
            common: CommonParameters::default(),
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(&self.n),
                e: URL_SAFE_NO_PAD.encode(&self.e),
            }),
        }
    }

    /// The public half as published in the JWKS: `kid` is the RFC 7638 thumbprint.
    pub fn public_jwk(&self) -> Jwk {
        let mut jwk = self.jwk_without_kid();
        jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::RS256),
            key_id: Some(self.kid.clone()),
            ..CommonParameters::default()
        };
        jwk
    }

    /// Raw signature over `message` (the JWS signing input).
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| "RSA signing failed".to_string())?;
        Ok(signature)
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
        CoreJsonWebKey::new_rsa(
            self.n.clone(),
            self.e.clone(),
            Some(JsonWebKeyId::new(self.kid.clone())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_the_published_jwk() {
        let (key, der) = SigningKey::generate(Algorithm::Rs256).unwrap();
        let again = SigningKey::from_pkcs8(Algorithm::Rs256, &der).unwrap();
        assert_eq!(
            again.kid(),
            key.kid(),
            "kid is a function of the public key"
        );
        let jwk = key.public_jwk();
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","kid":"{}"}}"#, key.kid()));
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"x","exp":4102444800}"#);
        let input = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(key.sign_bytes(input.as_bytes()).unwrap());
        let token = format!("{input}.{sig}");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token.as_str(), &decoding, &validation)
                .unwrap();
        assert_eq!(data.claims["sub"], "x");
    }

    #[test]
    fn the_jwk_carries_kid_use_and_alg() {
        let (key, _) = SigningKey::generate(Algorithm::Rs256).unwrap();
        let json = serde_json::to_value(key.public_jwk()).unwrap();
        assert_eq!(json["kid"], key.kid());
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "RS256");
        assert_eq!(json["kty"], "RSA");
        assert!(json.get("d").is_none(), "no private part");
    }
}
