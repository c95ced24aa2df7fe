//! JWT access tokens (RFC 9068), for applications registered with
//! `access_token_format = "jwt"`: a JWS with `typ: at+jwt` that a resource
//! server can check offline against the JWKS. The bridge still keeps the
//! token's record (under its SHA-256, like an opaque token), so revoking it
//! ends it at userinfo and introspection at once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::keys::SigningKey;
use crate::store::records::random_secret;

/// What an access token JWT says (RFC 9068 §2.2).
pub struct AccessTokenClaims<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub scopes: &'a [String],
    pub issued_at: i64,
    pub expires_at: i64,
    /// A DPoP-bound token's key thumbprint: `cnf.jkt` (RFC 9449 §6.1).
    pub jkt: Option<&'a str>,
}

/// Signs the access token with the key of the client's algorithm. `aud`
/// is the application itself: the bridge has no resource indicators, and
/// the application (or its API) is what the token is for.
pub fn sign(key: &SigningKey, claims: &AccessTokenClaims<'_>) -> Result<String, String> {
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt"});
    let mut body = json!({
        "iss": claims.issuer,
        "sub": claims.subject,
        "aud": claims.client_id,
        "client_id": claims.client_id,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "jti": random_secret(),
        "scope": claims.scopes.join(" "),
    });
    if let Some(jkt) = claims.jkt {
        body["cnf"] = json!({ "jkt": jkt });
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(|e| e.to_string())?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
    );
    let signature = key.sign_bytes(input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    #[test]
    fn an_access_token_jwt_is_typed_and_carries_rfc9068s_claims() {
        let (key, _) = SigningKey::generate(Algorithm::Es256).unwrap();
        let scopes = vec!["openid".to_string(), "email".to_string()];
        let token = sign(
            &key,
            &AccessTokenClaims {
                issuer: "https://sso.example.com",
                client_id: "app",
                subject: "T1:U1",
                scopes: &scopes,
                issued_at: 1_000,
                expires_at: 4_600,
                jkt: None,
            },
        )
        .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        let (header, claims) = (decode(parts[0]), decode(parts[1]));
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], key.kid());
        assert_eq!(claims["scope"], "openid email");
        assert_eq!(claims["client_id"], "app");
        assert_eq!(claims["aud"], "app");
        assert_eq!(claims["exp"], 4_600);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 43);
        let other = sign(
            &key,
            &AccessTokenClaims {
                issuer: "https://sso.example.com",
                client_id: "app",
                subject: "T1:U1",
                scopes: &scopes,
                issued_at: 1_000,
                expires_at: 4_600,
                jkt: None,
            },
        )
        .unwrap();
        assert_ne!(token, other, "each token has its own jti");
    }
}
