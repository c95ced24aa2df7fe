//! The settings of high-assurance applications: pairwise subjects (OIDC
//! Core §8.1), `private_key_jwt` (OIDC Core §9, RFC 7523) and DPoP (RFC
//! 9449). What cannot work is refused when the file is loaded, naming the key.

use serde::Deserialize;
use url::Url;

use super::{ClientConfig, Config, ConfigError, TokenEndpointAuthMethod, err, is_loopback_host};
use crate::jose;

/// The shortest pairwise salt accepted: it is what keeps pairwise subjects
/// from being recomputed by anyone who knows the Slack ids.
pub const MIN_SALT_LEN: usize = 32;

/// How a client's `sub` is made (OIDC Core §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectType {
    /// The Slack person's own `team:user`, the same for every application.
    #[default]
    Public,
    /// Derived from the application's sector, the person and a secret salt.
    Pairwise,
}

/// DPoP proofs (RFC 9449) at the token and userinfo endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopConfig {
    /// Proofs must carry a nonce the bridge gave (RFC 9449 §8): a proof
    /// made in advance is then useless. Clients retry once on `use_dpop_nonce`.
    pub require_nonce: bool,
    /// How far a proof's `iat` may be from now, either way.
    pub proof_max_age_secs: u64,
}

impl Default for DpopConfig {
    fn default() -> Self {
        DpopConfig {
            require_nonce: false,
            proof_max_age_secs: 60,
        }
    }
}

/// A URL the bridge fetches from an application's side (`jwks_uri`,
/// `sector_identifier_uri`): https, or plain http on a loopback address for
/// development.
pub fn check_fetchable(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|e| format!("not an absolute URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        _ => Err("must use https (http is allowed only on a loopback address)".into()),
    }
}

impl Config {
    pub(super) fn validate_assurance(
        &self,
        c: &ClientConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        self.validate_subject(c, at)?;
        validate_client_keys(c, at)
    }

    pub(super) fn validate_dpop(&self) -> Result<(), ConfigError> {
        if self.dpop.proof_max_age_secs == 0 || self.dpop.proof_max_age_secs > 600 {
            return Err(err(
                "dpop.proof_max_age_secs",
                "must be between 1 and 600 seconds",
            ));
        }
        Ok(())
    }

    fn validate_subject(
        &self,
        c: &ClientConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if c.subject_type == SubjectType::Public {
            if c.sector_identifier_uri.is_some() {
                return Err(err(
                    at("sector_identifier_uri"),
                    "only used with subject_type = \"pairwise\"",
                ));
            }
            return Ok(());
        }
        match self.pairwise_salt.as_deref() {
            None => {
                return Err(err(
                    "pairwise_salt",
                    format!(
                        "required by {}: a secret of at least {MIN_SALT_LEN} characters (or BRIDGE_PAIRWISE_SALT)",
                        at("subject_type")
                    ),
                ));
            }
            Some(salt) if salt.chars().count() < MIN_SALT_LEN => {
                return Err(err(
                    "pairwise_salt",
                    format!("must be at least {MIN_SALT_LEN} characters"),
                ));
            }
            Some(_) => {}
        }
        match &c.sector_identifier_uri {
            Some(uri) => {
                check_fetchable(uri).map_err(|m| err(at("sector_identifier_uri"), m))?;
            }
            None => {
                let hosts = redirect_hosts(c);
                if hosts.len() != 1 {
                    return Err(err(
                        at("sector_identifier_uri"),
                        "required with pairwise subjects when the redirect URIs are not all on one host (OIDC Core §8.1)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The distinct hosts of a client's redirect URIs.
pub fn redirect_hosts(c: &ClientConfig) -> Vec<String> {
    let mut hosts: Vec<String> = c
        .redirect_uris
        .iter()
        .filter_map(|u| Url::parse(u).ok()?.host_str().map(str::to_string))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The sector of a pairwise client (OIDC Core §8.1): the host of its
/// `sector_identifier_uri`, else the one host of its redirect URIs.
pub fn sector_of(c: &ClientConfig) -> Option<String> {
    match &c.sector_identifier_uri {
        Some(uri) => Url::parse(uri).ok()?.host_str().map(str::to_string),
        None => redirect_hosts(c).into_iter().next(),
    }
}

fn validate_client_keys(c: &ClientConfig, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let private_key_jwt = c.token_endpoint_auth_method == TokenEndpointAuthMethod::PrivateKeyJwt;
    if !private_key_jwt {
        let keys_only_for_it = [
            ("jwks", c.jwks.is_some()),
            ("jwks_uri", c.jwks_uri.is_some()),
            (
                "token_endpoint_auth_signing_alg",
                c.token_endpoint_auth_signing_alg.is_some(),
            ),
        ];
        for (key, set) in keys_only_for_it {
            if set {
                return Err(err(
                    at(key),
                    "only used with token_endpoint_auth_method = \"private_key_jwt\"",
                ));
            }
        }
        return Ok(());
    }
    if let Some(alg) = &c.token_endpoint_auth_signing_alg
        && jose::algorithm(alg).is_none()
    {
        return Err(err(
            at("token_endpoint_auth_signing_alg"),
            format!("must be one of {}", jose::ALGORITHMS.join(", ")),
        ));
    }
    match (&c.jwks, &c.jwks_uri) {
        (Some(_), Some(_)) => Err(err(at("jwks"), "give jwks or jwks_uri, not both")),
        (None, None) => Err(err(
            at("jwks"),
            "private_key_jwt needs the client's public keys: jwks = { keys = [...] } or jwks_uri",
        )),
        (None, Some(uri)) => check_fetchable(uri)
            .map(|_| ())
            .map_err(|m| err(at("jwks_uri"), m)),
        (Some(set), None) => {
            let keys = set
                .get("keys")
                .and_then(|k| k.as_array())
                .ok_or_else(|| err(at("jwks"), "must be a JWK set: { keys = [...] }"))?;
            if keys.is_empty() {
                return Err(err(at("jwks.keys"), "must hold at least one key"));
            }
            for (k, key) in keys.iter().enumerate() {
                jose::public_jwk(key).map_err(|m| err(at(&format!("jwks.keys[{k}]")), m))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MINIMAL, load};
    use super::*;

    const SALT: (&str, &str) = (
        "BRIDGE_PAIRWISE_SALT",
        "a-salt-of-at-least-thirty-two-characters",
    );
    const EC_KEY: &str = r#"{ kty = "EC", crv = "P-256", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", kid = "k1" }"#;

    fn with_client(client: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(
            &format!("{MINIMAL}\n[[clients]]\nclient_id = \"x\"\n{client}"),
            env,
        )
    }

    #[test]
    fn a_pairwise_client_needs_a_long_enough_salt() {
        let pairwise = r#"redirect_uris = ["https://a.example/cb"]
token_endpoint_auth_method = "none"
subject_type = "pairwise""#;
        assert_eq!(
            with_client(pairwise, &[]).unwrap_err().path,
            "pairwise_salt"
        );
        let e = with_client(pairwise, &[("BRIDGE_PAIRWISE_SALT", "short")]).unwrap_err();
        assert!(e.message.contains("32"), "{e:?}");
        let c = with_client(pairwise, &[SALT]).unwrap();
        assert_eq!(sector_of(&c.clients[1]).as_deref(), Some("a.example"));
    }

    #[test]
    fn a_pairwise_client_on_several_hosts_needs_a_sector_identifier_uri() {
        let two_hosts = r#"redirect_uris = ["https://a.example/cb", "https://b.example/cb"]
token_endpoint_auth_method = "none"
subject_type = "pairwise""#;
        let e = with_client(two_hosts, &[SALT]).unwrap_err();
        assert_eq!(e.path, "clients[1].sector_identifier_uri");
        let with_sector =
            format!("{two_hosts}\nsector_identifier_uri = \"https://sector.example/uris.json\"");
        let c = with_client(&with_sector, &[SALT]).unwrap();
        assert_eq!(sector_of(&c.clients[1]).as_deref(), Some("sector.example"));
        let plain_http =
            format!("{two_hosts}\nsector_identifier_uri = \"http://sector.example/uris.json\"");
        assert!(
            with_client(&plain_http, &[SALT])
                .unwrap_err()
                .message
                .contains("https")
        );
    }

    #[test]
    fn a_sector_identifier_uri_without_pairwise_subjects_is_refused() {
        let public = r#"redirect_uris = ["https://a.example/cb"]
token_endpoint_auth_method = "none"
sector_identifier_uri = "https://a.example/uris.json""#;
        let e = with_client(public, &[]).unwrap_err();
        assert_eq!(e.path, "clients[1].sector_identifier_uri");
    }

    #[test]
    fn private_key_jwt_needs_public_keys_inline_or_at_a_fetchable_uri() {
        let base = r#"redirect_uris = ["https://a.example/cb"]
token_endpoint_auth_method = "private_key_jwt""#;
        assert_eq!(with_client(base, &[]).unwrap_err().path, "clients[1].jwks");
        let inline = format!("{base}\njwks = {{ keys = [{EC_KEY}] }}");
        assert!(with_client(&inline, &[]).is_ok());
        let remote = format!("{base}\njwks_uri = \"https://a.example/jwks\"");
        assert!(with_client(&remote, &[]).is_ok());
        let loopback = format!("{base}\njwks_uri = \"http://127.0.0.1:9/jwks\"");
        assert!(with_client(&loopback, &[]).is_ok());
        let plain = format!("{base}\njwks_uri = \"http://a.example/jwks\"");
        assert_eq!(
            with_client(&plain, &[]).unwrap_err().path,
            "clients[1].jwks_uri"
        );
        let both = format!("{inline}\njwks_uri = \"https://a.example/jwks\"");
        assert!(
            with_client(&both, &[])
                .unwrap_err()
                .message
                .contains("not both")
        );
        let empty = format!("{base}\njwks = {{ keys = [] }}");
        assert_eq!(
            with_client(&empty, &[]).unwrap_err().path,
            "clients[1].jwks.keys"
        );
    }

    #[test]
    fn a_private_key_or_a_secret_is_refused_for_private_key_jwt() {
        let base = r#"redirect_uris = ["https://a.example/cb"]
token_endpoint_auth_method = "private_key_jwt""#;
        let private = EC_KEY.replace(
            "kid =",
            "d = \"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\", kid =",
        );
        let e = with_client(&format!("{base}\njwks = {{ keys = [{private}] }}"), &[]).unwrap_err();
        assert_eq!(e.path, "clients[1].jwks.keys[0]");
        assert!(e.message.contains("private member"), "{e:?}");
        let secret = format!(
            "{base}\njwks = {{ keys = [{EC_KEY}] }}\nclient_secret = \"0123456789abcdef0123456789abcdef\""
        );
        assert_eq!(
            with_client(&secret, &[]).unwrap_err().path,
            "clients[1].client_secret"
        );
        let alg = format!(
            "{base}\njwks = {{ keys = [{EC_KEY}] }}\ntoken_endpoint_auth_signing_alg = \"HS256\""
        );
        assert_eq!(
            with_client(&alg, &[]).unwrap_err().path,
            "clients[1].token_endpoint_auth_signing_alg"
        );
    }

    #[test]
    fn keys_for_another_method_are_refused() {
        let e = with_client(
            r#"redirect_uris = ["https://a.example/cb"]
token_endpoint_auth_method = "none"
jwks_uri = "https://a.example/jwks""#,
            &[],
        )
        .unwrap_err();
        assert_eq!(e.path, "clients[1].jwks_uri");
    }

    #[test]
    fn the_dpop_proof_window_is_bounded() {
        let ok = load(MINIMAL, &[("BRIDGE_DPOP__PROOF_MAX_AGE_SECS", "120")]).unwrap();
        assert_eq!(ok.dpop.proof_max_age_secs, 120);
        assert!(!ok.dpop.require_nonce);
        for bad in ["0", "601"] {
            let e = load(MINIMAL, &[("BRIDGE_DPOP__PROOF_MAX_AGE_SECS", bad)]).unwrap_err();
            assert_eq!(e.path, "dpop.proof_max_age_secs");
        }
    }
}
