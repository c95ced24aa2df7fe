//! The stand-in's RSA signing keys and its JWKS.
//!
//! Slack has served one RS256 key (no `use` field) for years; the stand-in
//! does the same, but can rotate on demand so clients' refetch logic can be
//! exercised.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::StandinError;
use super::http::Obj;

/// One RSA-2048 key with its `kid` and public JWK parts.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

/// A JWK in Slack's field order and without `use`.
#[derive(Serialize)]
struct Jwk<'a> {
    e: &'a str,
    n: &'a str,
    kty: &'static str,
    kid: &'a str,
    alg: &'static str,
}

#[derive(Serialize)]
struct Jwks<'a> {
    keys: Vec<Jwk<'a>>,
}

impl SigningKey {
    /// A fresh key whose `kid` is `mock-` plus its RFC 7638 thumbprint.
    pub fn generate() -> Result<Self, StandinError> {
        let pair =
            KeyPair::generate(KeySize::Rsa2048).map_err(|e| StandinError::Key(e.to_string()))?;
        let pkcs8: Pkcs8V1Der<'static> = pair
            .as_der()
            .map_err(|e| StandinError::Key(e.to_string()))?;
        // jsonwebtoken takes PKCS#1 DER or PEM; PKCS#8 goes in through PEM.
        let encoding = EncodingKey::from_rsa_pem(pkcs8_pem(pkcs8.as_ref()).as_bytes())
            .map_err(|e| StandinError::Key(e.to_string()))?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, thumbprint_input.as_bytes());
        let kid = format!("mock-{}", URL_SAFE_NO_PAD.encode(digest.as_ref()));
        Ok(Self {
            kid,
            encoding,
            n,
            e,
        })
    }

    /// Signs claims as an RS256 JWT with the given `kid` in its header
    /// (usually its own; another one to forge a bad signature).
    pub fn sign(&self, kid: &str, claims: &Obj) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("RS256 signing with a valid key")
    }
}

/// The JWKS document for a set of keys.
pub fn jwks_json(keys: &[std::sync::Arc<SigningKey>]) -> String {
    let doc = Jwks {
        keys: keys
            .iter()
            .map(|k| Jwk {
                e: &k.e,
                n: &k.n,
                kty: "RSA",
                kid: &k.kid,
                alg: "RS256",
            })
            .collect(),
    };
    serde_json::to_string(&doc).expect("JWKS serializes")
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}
