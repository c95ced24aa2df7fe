//! Verifying JWTs we issued ourselves (`id_token_hint`): the signature must
//! come from a key we publish and `iss` must be ours. Expiry is not checked:
//! an expired ID token is still a valid hint (OIDC Core §3.1.2.1).

use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::LoadedKeys;

impl LoadedKeys {
    pub fn verify_own_jwt(&self, token: &str, issuer: &str) -> Result<Map<String, Value>, String> {
        let header = decode_header(token).map_err(|e| format!("malformed: {e}"))?;
        // Our other JWTs (access tokens, logout tokens) are typed: only an
        // ID token is a hint.
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err("not an ID token".into());
        }
        let kid = header.kid.ok_or("no kid")?;
        let key = self
            .published
            .iter()
            .find(|k| k.kid() == kid)
            .ok_or("signed by a key we do not publish")?;
        let jwk = key.public_jwk();
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        let alg: JwtAlgorithm = key
            .alg()
            .as_str()
            .parse()
            .map_err(|_| "unsupported algorithm")?;
        if header.alg != alg {
            return Err("algorithm does not match the key".into());
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[issuer]);
        let data = decode::<Map<String, Value>>(token, &decoding, &validation)
            .map_err(|e| e.to_string())?;
        Ok(data.claims)
    }
}
