//! Client authentication at every back-channel endpoint (token, PAR,
//! revocation, introspection, device authorization): RFC 6749 §2.3 and OIDC
//! Core §9. A client presents exactly one credential, and it must be of the
//! method it registered:
//! - `client_secret_basic`: `Authorization: Basic`, both parts
//!   form-urlencoded before base64 (RFC 6749 §2.3.1);
//! - `client_secret_post`: `client_id` and `client_secret` in the body;
//! - `private_key_jwt`: `client_assertion_type` and a signed
//!   `client_assertion` (`assertion`), `client_id` optional;
//! - `none`: `client_id` alone (public clients).
//!
//! Secrets are compared as SHA-256 digests in constant time. On success the
//! answer becomes CORS-readable only from that client's origins.

pub mod assertion;
pub mod keys;

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Provider;
use super::clients::{Client, Clients};
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use crate::config::TokenEndpointAuthMethod;

/// What the request presented.
enum Credential {
    Secret(String),
    Assertion(String),
    IdOnly,
}

/// The authenticated client of a back-channel request at `endpoint` (its
/// path under the issuer, e.g. `token`: an assertion may name it as `aud`).
pub async fn authenticate(
    provider: &Provider,
    req: &HttpRequest,
    params: &Params,
    endpoint: &str,
) -> Result<Arc<Client>, OAuthError> {
    let (client, assertion) = identify(&provider.clients, req, params)?;
    if let Some(jwt) = assertion {
        let url = format!("{}/{endpoint}", provider.issuer);
        assertion::verify(provider, &client, &jwt, &url).await?;
    }
    client.restrict_cors_to(req);
    Ok(client)
}

/// The registered client the request names, if its credential is of the
/// client's method and, for a secret, matches; an assertion is returned to
/// be verified.
fn identify(
    clients: &Clients,
    req: &HttpRequest,
    params: &Params,
) -> Result<(Arc<Client>, Option<String>), OAuthError> {
    let (id, credential, method) = presented(req, params)?;
    let invalid = |why: &str| OAuthError::new(ErrorCode::InvalidClient, why);
    let client = clients
        .get(&id)
        .ok_or_else(|| invalid("client authentication failed"))?;
    if client.auth_method != method {
        return Err(invalid(&format!(
            "this client is registered for token_endpoint_auth_method {}",
            client.auth_method.as_str()
        )));
    }
    match credential {
        Credential::Secret(secret) if !client.secret_matches(&secret) => {
            Err(invalid("client authentication failed"))
        }
        Credential::Assertion(jwt) => Ok((client, Some(jwt))),
        _ => Ok((client, None)),
    }
}

/// The client id, the credential and the method they amount to; more than
/// one credential is refused.
fn presented(
    req: &HttpRequest,
    params: &Params,
) -> Result<(String, Credential, TokenEndpointAuthMethod), OAuthError> {
    let basic = basic_credentials(req)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let body_assertion = params.get("client_assertion");
    let credentials = [
        basic.is_some(),
        body_secret.is_some(),
        body_assertion.is_some(),
    ];
    if credentials.iter().filter(|c| **c).count() > 1 {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        ));
    }
    let same_as_body = |id: &str| {
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        Ok(())
    };
    if let Some((id, secret)) = basic {
        same_as_body(&id)?;
        return Ok((
            id,
            Credential::Secret(secret),
            TokenEndpointAuthMethod::ClientSecretBasic,
        ));
    }
    if let Some(secret) = body_secret {
        let id = body_id.ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
        return Ok((
            id.to_string(),
            Credential::Secret(secret.to_string()),
            TokenEndpointAuthMethod::ClientSecretPost,
        ));
    }
    if let Some(jwt) = body_assertion {
        if params.get("client_assertion_type") != Some(assertion::JWT_BEARER) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {}",
                assertion::JWT_BEARER
            )));
        }
        let id = assertion::claimed_client(jwt)?;
        same_as_body(&id)?;
        return Ok((
            id,
            Credential::Assertion(jwt.to_string()),
            TokenEndpointAuthMethod::PrivateKeyJwt,
        ));
    }
    let id = body_id.ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidClient,
            "client authentication is required",
        )
    })?;
    Ok((
        id.to_string(),
        Credential::IdOnly,
        TokenEndpointAuthMethod::None,
    ))
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
    use crate::config::ClientConfig;
    use actix_web::test::TestRequest;

    fn clients() -> Clients {
        let confidential = ClientConfig {
            client_secret: Some("s3cret:with%chars-0123456789abcdef".into()),
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            ..ClientConfig::for_tests("app")
        };
        let public = ClientConfig {
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            ..ClientConfig::for_tests("spa")
        };
        let keyed = ClientConfig {
            token_endpoint_auth_method: TokenEndpointAuthMethod::PrivateKeyJwt,
            jwks_uri: Some("https://app.example/jwks".into()),
            ..ClientConfig::for_tests("keyed")
        };
        Clients::from_config(&[confidential, public, keyed], None)
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

    fn identified(req: &HttpRequest, body: &str) -> Result<String, OAuthError> {
        let params = Params::parse(body).unwrap();
        identify(&clients(), req, &params).map(|(c, _)| c.id.clone())
    }

    #[test]
    fn basic_auth_with_urlencoded_secret_succeeds() {
        let req = TestRequest::default()
            .insert_header((
                "Authorization",
                basic("app", "s3cret:with%chars-0123456789abcdef"),
            ))
            .to_http_request();
        assert_eq!(identified(&req, "").unwrap(), "app");
    }

    #[test]
    fn a_wrong_secret_is_invalid_client() {
        let req = TestRequest::default()
            .insert_header(("Authorization", basic("app", "nope")))
            .to_http_request();
        assert_eq!(
            identified(&req, "").unwrap_err().code,
            ErrorCode::InvalidClient
        );
    }

    #[test]
    fn a_client_must_use_its_registered_method() {
        let req = TestRequest::default().to_http_request();
        let e = identified(
            &req,
            "client_id=app&client_secret=s3cret%3Awith%25chars-0123456789abcdef",
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        let e = identified(&req, "client_id=keyed").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn a_public_client_authenticates_by_id_alone() {
        let req = TestRequest::default().to_http_request();
        assert_eq!(identified(&req, "client_id=spa").unwrap(), "spa");
    }

    #[test]
    fn an_assertion_names_its_client_and_is_handed_on_to_be_verified() {
        let key = crate::jose::testing::TestKey::es256();
        let jwt = key.jws(
            &serde_json::json!({"alg": "ES256"}),
            &serde_json::json!({"iss": "keyed"}),
        );
        let req = TestRequest::default().to_http_request();
        let body = format!(
            "client_assertion_type={}&client_assertion={jwt}",
            assertion::JWT_BEARER
        );
        let params = Params::parse(&body).unwrap();
        let (client, handed) = identify(&clients(), &req, &params).unwrap();
        assert_eq!(client.id, "keyed");
        assert_eq!(handed.as_deref(), Some(jwt.as_str()));
        let other = format!("{body}&client_id=app");
        assert_eq!(
            identified(&req, &other).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let wrong_type = body.replace("jwt-bearer", "saml2-bearer");
        assert_eq!(
            identified(&req, &wrong_type).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn two_credentials_at_once_are_refused() {
        let req = TestRequest::default()
            .insert_header((
                "Authorization",
                basic("app", "s3cret:with%chars-0123456789abcdef"),
            ))
            .to_http_request();
        let e = identified(&req, "client_assertion=x.y.z").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }
}
