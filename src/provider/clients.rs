//! The client registry (from the config file) and client authentication at
//! the token endpoint (RFC 6749 §2.3): secrets are compared as SHA-256 digests
//! in constant time, and a client must use the method it registered.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use crate::config::{ClientConfig, TokenEndpointAuthMethod};

pub struct Client {
    pub id: String,
    pub name: Option<String>,
    secret_sha256: Option<[u8; 32]>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub auth_method: TokenEndpointAuthMethod,
    pub allows_refresh: bool,
    pub require_consent: bool,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// Workspaces (or enterprises) this application admits; empty: all.
    pub allowed_team_ids: Vec<String>,
    /// User group handles; when set, the person must be in one.
    pub allowed_groups: Vec<String>,
    /// Overrides `upstream.allow_guests`.
    pub allow_guests: Option<bool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Client {
    fn from_config(c: &ClientConfig) -> Client {
        let secret_sha256 = match (&c.client_secret, &c.client_secret_sha256) {
            (Some(secret), _) => Some(sha256(secret.as_bytes())),
            (None, Some(hex)) => Some(parse_hex32(hex)),
            (None, None) => None,
        };
        Client {
            id: c.client_id.clone(),
            name: c.client_name.clone(),
            secret_sha256,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            auth_method: c.token_endpoint_auth_method,
            allows_refresh: c.allows_refresh(),
            require_consent: c.require_consent,
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            allowed_team_ids: c.allowed_team_ids.clone(),
            allowed_groups: c.allowed_groups.clone(),
            allow_guests: c.allow_guests,
        }
    }

    pub fn is_public(&self) -> bool {
        self.auth_method == TokenEndpointAuthMethod::None
    }

    /// Exact string comparison (OIDC Core §3.1.2.1): no normalization of case,
    /// trailing slashes, ports or query.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_sha256 {
            Some(expected) => bool::from(sha256(presented.as_bytes()).ct_eq(expected)),
            None => false,
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn parse_hex32(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).take(32).enumerate() {
        let s = std::str::from_utf8(chunk).unwrap_or("00");
        out[i] = u8::from_str_radix(s, 16).unwrap_or(0);
    }
    out
}

#[derive(Default)]
pub struct Clients {
    by_id: HashMap<String, Arc<Client>>,
}

impl Clients {
    pub fn from_config(configs: &[ClientConfig]) -> Clients {
        Clients {
            by_id: configs
                .iter()
                .map(|c| (c.client_id.clone(), Arc::new(Client::from_config(c))))
                .collect(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.by_id.values()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.by_id.get(id).cloned()
    }

    /// Authenticates the client of a token-endpoint request.
    pub fn authenticate(
        &self,
        req: &HttpRequest,
        params: &Params,
    ) -> Result<Arc<Client>, OAuthError> {
        let basic = basic_credentials(req)?;
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        let invalid = |why: &str| OAuthError::new(ErrorCode::InvalidClient, why);

        let (id, secret, method) = match (basic, body_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not two",
                ));
            }
            (Some((id, secret)), None) => {
                if body_id.is_some_and(|b| b != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the authenticated client",
                    ));
                }
                (id, Some(secret), TokenEndpointAuthMethod::ClientSecretBasic)
            }
            (None, Some(secret)) => {
                let id =
                    body_id.ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
                (
                    id.to_string(),
                    Some(secret.to_string()),
                    TokenEndpointAuthMethod::ClientSecretPost,
                )
            }
            (None, None) => {
                let id = body_id.ok_or_else(|| invalid("client authentication is required"))?;
                (id.to_string(), None, TokenEndpointAuthMethod::None)
            }
        };
        let client = self
            .get(&id)
            .ok_or_else(|| invalid("client authentication failed"))?;
        if client.auth_method != method {
            return Err(invalid(&format!(
                "this client is registered for token_endpoint_auth_method {}",
                client.auth_method.as_str()
            )));
        }
        if let Some(secret) = secret
            && !client.secret_matches(&secret)
        {
            return Err(invalid("client authentication failed"));
        }
        Ok(client)
    }
}

/// `Authorization: Basic` credentials; both parts are form-urlencoded before
/// base64 (RFC 6749 §2.3.1).
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::new(ErrorCode::InvalidClient, "malformed Basic credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "only Basic client authentication is supported",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        let spaced = s.replace('+', " ");
        String::from_utf8(percent_encoding::percent_decode_str(&spaced).collect())
            .map_err(|_| bad())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn clients() -> Clients {
        let confidential = ClientConfig {
            client_id: "app".into(),
            client_name: None,
            client_secret: Some("s3cret:with%chars-0123456789abcdef".into()),
            client_secret_sha256: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            id_token_signed_response_alg: "RS256".into(),
            grant_types: vec!["authorization_code".into()],
            require_consent: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            allowed_team_ids: vec![],
            allowed_groups: vec![],
            allow_guests: None,
        };
        let public = ClientConfig {
            client_id: "spa".into(),
            client_secret: None,
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            ..confidential.clone()
        };
        Clients::from_config(&[confidential, public])
    }

    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
        )
    }

    #[test]
    fn basic_auth_with_urlencoded_secret_succeeds() {
        let req = TestRequest::default()
            .insert_header((
                "Authorization",
                basic("app", "s3cret:with%chars-0123456789abcdef"),
            ))
            .to_http_request();
        assert_eq!(
            clients().authenticate(&req, &Params::default()).unwrap().id,
            "app"
        );
    }

    #[test]
    fn a_wrong_secret_is_invalid_client() {
        let req = TestRequest::default()
            .insert_header(("Authorization", basic("app", "nope")))
            .to_http_request();
        let e = clients()
            .authenticate(&req, &Params::default())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn a_client_must_use_its_registered_method() {
        let req = TestRequest::default().to_http_request();
        let params =
            Params::parse("client_id=app&client_secret=s3cret%3Awith%25chars-0123456789abcdef")
                .unwrap();
        let e = clients().authenticate(&req, &params).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn a_public_client_authenticates_by_id_alone() {
        let req = TestRequest::default().to_http_request();
        let params = Params::parse("client_id=spa").unwrap();
        assert_eq!(clients().authenticate(&req, &params).unwrap().id, "spa");
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let c = clients().get("app").unwrap();
        assert!(c.has_redirect_uri("https://app.example/cb"));
        for near in [
            "https://app.example/cb/",
            "https://APP.example/cb",
            "https://app.example:443/cb",
            "https://app.example/cb?x=1",
        ] {
            assert!(!c.has_redirect_uri(near), "{near}");
        }
    }
}
