//! Keys a test makes for a client (ES256, EdDSA, RSA for RS256 or PS256,
//! with aws-lc-rs) and the compact JWSs it signs with them: client
//! assertions (`private_key_jwt`) and DPoP proofs. The public JWK and its
//! RFC 7638 thumbprint are written here by hand, independently of the
//! bridge's own code.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A key pair with the algorithm it signs with by default and a `kid`.
pub struct Key {
    pair: Pair,
    pub alg: &'static str,
    pub kid: String,
}

impl Key {
    pub fn es256() -> Key {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        Key::new(
            Pair::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap()),
            "ES256",
        )
    }

    pub fn ed25519() -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key::new(
            Pair::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
            "EdDSA",
        )
    }

    /// A 2048-bit RSA key that signs with `alg` (RS256 or PS256) by default.
    pub fn rsa(alg: &'static str) -> Key {
        assert!(matches!(alg, "RS256" | "PS256"), "{alg}");
        Key::new(
            Pair::Rsa(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap()),
            alg,
        )
    }

    fn new(pair: Pair, alg: &'static str) -> Key {
        Key {
            pair,
            alg,
            kid: random_id()[..8].to_string(),
        }
    }

    pub fn with_kid(mut self, kid: &str) -> Key {
        self.kid = kid.to_string();
        self
    }

    /// The public JWK's required members (a DPoP proof's `jwk`).
    pub fn public_jwk(&self) -> Value {
        match &self.pair {
            Pair::Ec(pair) => {
                // The uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                let point = pair.public_key().as_ref();
                assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed point");
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Pair::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
            }
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
        }
    }

    /// The public JWK with its `kid` (an entry of a client's `jwks`).
    pub fn jwk(&self) -> Value {
        let mut jwk = self.public_jwk();
        jwk["kid"] = json!(self.kid);
        jwk
    }

    /// An EC key's private scalar `d`, to leak into a JWK on purpose.
    pub fn private_d(&self) -> Option<String> {
        match &self.pair {
            Pair::Ec(pair) => Some(b64(pair.private_key().as_be_bytes().unwrap().as_ref())),
            _ => None,
        }
    }

    /// A compact JWS of `claims` under `header`, signed with this key (an
    /// RSA key pads as the header's alg says: PS256, or else RS256).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).unwrap()),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Ec(pair) => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Pair::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Pair::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match header["alg"].as_str() {
                    Some("PS256") => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut out)
                    .unwrap();
                out
            }
        };
        format!("{input}.{}", b64(&signature))
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.public_jwk())
    }
}

/// The JWK SHA-256 thumbprint (RFC 7638 §3): the required members, in
/// lexicographic order, no whitespace, hashed, base64url.
pub fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("RSA") => &["e", "kty", "n"],
        other => panic!("no thumbprint for kty {other:?}"),
    };
    let canonical = members
        .iter()
        .map(|m| format!("\"{m}\":\"{}\"", jwk[*m].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    b64(&sha256(format!("{{{canonical}}}").as_bytes()))
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// 128 random bits, base64url (a `jti`).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    b64(&bytes)
}
