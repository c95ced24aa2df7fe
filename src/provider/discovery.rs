//! OpenID Connect Discovery 1.0 metadata and the JWKS, both served from bytes
//! serialized once.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::Provider;
use super::claims::{CLAIMS_SUPPORTED, GROUPS_SCOPE, SUPPORTED_SCOPES};
use crate::config::DEVICE_CODE_GRANT;
use crate::jose;
use crate::keys::Algorithm;
use crate::web::cached::CachedJson;

/// Client authentication at every back-channel endpoint (`super::client_auth`).
const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// `algorithms`: those with signing keys (`keys.algorithms`); `groups`:
/// Slack's directory is configured, so the `groups` scope and claim exist.
/// `par_required`: every application must push its requests (RFC 9126).
pub fn metadata(
    issuer: &str,
    algorithms: &[Algorithm],
    groups: bool,
    par_required: bool,
) -> CachedJson {
    let signing_algs: Vec<&str> = algorithms.iter().map(|a| a.as_str()).collect();
    let mut scopes = SUPPORTED_SCOPES.to_vec();
    let mut claims = CLAIMS_SUPPORTED.to_vec();
    if groups {
        scopes.push(GROUPS_SCOPE);
        claims.push("groups");
    }
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
        "require_pushed_authorization_requests": par_required,
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "device_authorization_endpoint": format!("{issuer}/device_authorization"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": signing_algs,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": jose::ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": jose::ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": jose::ALGORITHMS,
        "dpop_signing_alg_values_supported": jose::ALGORITHMS,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims,
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    CachedJson::new(&doc, 3600)
}

pub async fn openid_configuration(req: HttpRequest, provider: web::Data<Provider>) -> HttpResponse {
    provider.discovery.respond(&req)
}

pub async fn jwks(req: HttpRequest, provider: web::Data<Provider>) -> HttpResponse {
    provider.keys.current().jwks.respond(&req)
}
