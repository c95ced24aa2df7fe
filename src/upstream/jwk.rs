//! Slack's signing keys as openidconnect verifies them, with RS256
//! signatures checked by aws-lc-rs. openidconnect's own RSA check goes
//! through the `rsa` crate's big-number code: profiled under load, it took
//! a tenth of the bridge's CPU per sign-in, half as much as signing our own
//! ID token. Public-key work only: nothing secret passes here.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm};
use openidconnect::{
    JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyId, JwsSigningAlgorithm, SignatureVerificationError,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// One of Slack's published keys: openidconnect's own type for everything
/// but the RS256 check, and the RSA modulus and exponent read once.
#[derive(Clone, Debug)]
pub struct SlackJwk {
    inner: CoreJsonWebKey,
    rsa: Option<RsaPublicKeyComponents<Vec<u8>>>,
}

impl Serialize for SlackJwk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SlackJwk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let part = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        };
        let rsa = match (
            value.get("kty").and_then(Value::as_str),
            part("n"),
            part("e"),
        ) {
            (Some("RSA"), Some(n), Some(e)) => Some(RsaPublicKeyComponents { n, e }),
            _ => None,
        };
        let inner = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
        Ok(SlackJwk { inner, rsa })
    }
}

impl JsonWebKey for SlackJwk {
    type KeyUse = CoreJsonWebKeyUse;
    type SigningAlgorithm = CoreJwsSigningAlgorithm;

    fn key_id(&self) -> Option<&JsonWebKeyId> {
        self.inner.key_id()
    }

    fn key_type(&self) -> &<Self::SigningAlgorithm as JwsSigningAlgorithm>::KeyType {
        self.inner.key_type()
    }

    fn key_use(&self) -> Option<&Self::KeyUse> {
        self.inner.key_use()
    }

    fn signing_alg(&self) -> JsonWebKeyAlgorithm<&Self::SigningAlgorithm> {
        self.inner.signing_alg()
    }

    fn new_symmetric(key: Vec<u8>) -> Self {
        SlackJwk {
            inner: CoreJsonWebKey::new_symmetric(key),
            rsa: None,
        }
    }

    fn verify_signature(
        &self,
        signature_alg: &Self::SigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureVerificationError> {
        match (signature_alg, &self.rsa) {
            (CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, Some(rsa)) => {
                // The key's own use and algorithm constraints, as openidconnect
                // checks them, before the signature.
                if let Some(key_use) = self.key_use()
                    && *key_use != CoreJsonWebKeyUse::Signature
                {
                    return Err(SignatureVerificationError::InvalidKey(
                        "key usage not permitted for digital signatures".into(),
                    ));
                }
                if let JsonWebKeyAlgorithm::Algorithm(alg) = self.signing_alg()
                    && alg != signature_alg
                {
                    return Err(SignatureVerificationError::InvalidKey(
                        "key algorithm does not match the signature's".into(),
                    ));
                }
                rsa.verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                    .map_err(|_| SignatureVerificationError::CryptoError("bad signature".into()))
            }
            _ => self
                .inner
                .verify_signature(signature_alg, message, signature),
        }
    }

    fn hash_bytes(&self, bytes: &[u8], alg: &Self::SigningAlgorithm) -> Result<Vec<u8>, String> {
        self.inner.hash_bytes(bytes, alg)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::KeyPair as _;

    use super::*;

    /// A key pair of our own (aws-lc-rs) and its public JWK, as Slack would
    /// publish it.
    fn key() -> (aws_lc_rs::rsa::KeyPair, Value) {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let components: RsaPublicKeyComponents<Vec<u8>> = public.into();
        let jwk = serde_json::json!({
            "kty": "RSA", "kid": "k1", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
        });
        (pair, jwk)
    }

    fn sign(pair: &aws_lc_rs::rsa::KeyPair, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message,
            &mut sig,
        )
        .unwrap();
        sig
    }

    #[test]
    fn an_rs256_signature_verifies_and_agrees_with_openidconnects_own_check() {
        let (pair, jwk) = key();
        let ours: SlackJwk = serde_json::from_value(jwk.clone()).unwrap();
        let theirs: CoreJsonWebKey = serde_json::from_value(jwk).unwrap();
        let alg = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
        let sig = sign(&pair, b"header.payload");
        assert!(ours.verify_signature(&alg, b"header.payload", &sig).is_ok());
        assert!(
            theirs
                .verify_signature(&alg, b"header.payload", &sig)
                .is_ok()
        );
        for (message, signature) in [
            (&b"header.other"[..], sig.clone()),
            (&b"header.payload"[..], {
                let mut s = sig.clone();
                s[10] ^= 1;
                s
            }),
            (&b"header.payload"[..], sig[..100].to_vec()),
        ] {
            assert!(ours.verify_signature(&alg, message, &signature).is_err());
            assert!(theirs.verify_signature(&alg, message, &signature).is_err());
        }
    }

    #[test]
    fn a_key_published_for_another_use_or_algorithm_is_refused() {
        let (pair, mut jwk) = key();
        let sig = sign(&pair, b"m");
        let alg = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;
        jwk["use"] = "enc".into();
        let enc: SlackJwk = serde_json::from_value(jwk.clone()).unwrap();
        assert!(enc.verify_signature(&alg, b"m", &sig).is_err());
        jwk["use"] = "sig".into();
        jwk["alg"] = "RS384".into();
        let other: SlackJwk = serde_json::from_value(jwk).unwrap();
        assert!(other.verify_signature(&alg, b"m", &sig).is_err());
    }

    #[test]
    fn a_jwk_round_trips_through_json() {
        let (_, jwk) = key();
        let ours: SlackJwk = serde_json::from_value(jwk.clone()).unwrap();
        let back = serde_json::to_value(&ours).unwrap();
        assert_eq!(back["n"], jwk["n"]);
        assert_eq!(back["kid"], "k1");
    }
}
