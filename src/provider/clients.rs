//! The client registry (from the config file): what each application
//! registered, how its secret is checked (`super::client_auth` authenticates),
//! its subjects (`super::subject`), which redirect URIs it may use (exact strings, and for native apps
//! the loopback port rule of RFC 8252 §7.3) and which origins its scripts
//! may call from (CORS, `crate::web::cors`).

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest};
use aws_lc_rs::digest;
use subtle::ConstantTimeEq;

use super::client_auth::keys::ClientKeys;
use super::subject::Pairwise;
use crate::config::{ClientConfig, SubjectType, TokenEndpointAuthMethod};
use crate::identity::SlackIdentity;
use crate::web::cors::{self, AnyClient, OfClient, Origins};

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
    /// Access tokens are RFC 9068 JWTs (`access_token_format = "jwt"`).
    pub jwt_access_tokens: bool,
    /// Authorization requests must be pushed first (RFC 9126).
    pub require_par: bool,
    /// Origins whose scripts may read this client's answers (CORS).
    pub cors_origins: Arc<Origins>,
    /// Pairwise subjects (OIDC Core §8.1): the sector and its key.
    pub pairwise: Option<Pairwise>,
    /// With `private_key_jwt`: where the client's public keys are.
    pub keys: Option<ClientKeys>,
    /// With `private_key_jwt`: the one algorithm its assertions may use.
    pub assertion_alg: Option<jsonwebtoken::Algorithm>,
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2).
    pub dpop_required: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Client {
    fn from_config(c: &ClientConfig, pairwise_salt: Option<&str>) -> Client {
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
            jwt_access_tokens: c.access_token_format == crate::config::AccessTokenFormat::Jwt,
            require_par: c.require_pushed_authorization_requests,
            cors_origins: Arc::new(cors_origins(c)),
            pairwise: match (c.subject_type, pairwise_salt, crate::config::sector_of(c)) {
                (SubjectType::Pairwise, Some(salt), Some(sector)) => {
                    Some(Pairwise::new(&sector, salt))
                }
                _ => None,
            },
            keys: ClientKeys::from_config(c.jwks.as_ref(), c.jwks_uri.as_deref()),
            assertion_alg: c
                .token_endpoint_auth_signing_alg
                .as_deref()
                .and_then(crate::jose::algorithm),
            dpop_required: c.dpop_bound_access_tokens,
        }
    }

    /// The `sub` this client knows the person by (OIDC Core §8): in ID
    /// tokens, userinfo, logout tokens, introspection and access tokens.
    pub fn subject(&self, identity: &SlackIdentity) -> String {
        self.subject_of(&identity.subject())
    }

    /// [`Client::subject`] of the person whose public subject is `public`.
    pub fn subject_of(&self, public: &str) -> String {
        match &self.pairwise {
            Some(pairwise) => pairwise.subject_of(public),
            None => public.to_string(),
        }
    }

    pub fn is_public(&self) -> bool {
        self.auth_method == TokenEndpointAuthMethod::None
    }

    /// Exact string comparison (OIDC Core §3.1.2.1): no normalization of case,
    /// trailing slashes, ports or query. One exception, for public clients
    /// only (native applications, RFC 8252 §7.3): a registered
    /// `http://127.0.0.1[:port]…` or `http://[::1][:port]…` also matches the
    /// same string with any other port, or none ([`loopback_any_port`]).
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| r == uri || (self.is_public() && loopback_any_port(r, uri)))
    }

    /// From now on, the answer to `req` is readable by scripts only from
    /// this client's origins (`crate::web::cors`): called once the endpoint
    /// knows which client it answers.
    pub fn restrict_cors_to(&self, req: &HttpRequest) {
        req.extensions_mut()
            .insert(OfClient(self.cors_origins.clone()));
    }

    pub(super) fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_sha256 {
            Some(expected) => bool::from(sha256(presented.as_bytes()).ct_eq(expected)),
            None => false,
        }
    }
}

/// The loopback IP literals of RFC 8252 §7.3, with plain http: `localhost`
/// is not among them (§8.3), nor any other address of 127.0.0.0/8.
const LOOPBACK_PREFIXES: [&str; 2] = ["http://127.0.0.1", "http://[::1]"];

/// Splits `http://127.0.0.1[:port]rest` or `http://[::1][:port]rest` into the
/// literal and `rest` (empty, or from the path's `/` or the query's `?`).
/// The port, when written, must be 1 to 65535 in plain decimal; anything
/// else after the literal (`@`, `.`, `%`, a userinfo before it) is no match.
fn split_loopback(uri: &str) -> Option<(&'static str, &str)> {
    let (prefix, after) = LOOPBACK_PREFIXES
        .iter()
        .find_map(|p| uri.strip_prefix(p).map(|after| (*p, after)))?;
    let rest = match after.strip_prefix(':') {
        Some(port_and_rest) => {
            let end = port_and_rest
                .find(['/', '?', '#'])
                .unwrap_or(port_and_rest.len());
            if !cors::is_port(&port_and_rest[..end]) {
                return None;
            }
            &port_and_rest[end..]
        }
        None => after,
    };
    (rest.is_empty() || rest.starts_with(['/', '?'])).then_some((prefix, rest))
}

/// RFC 8252 §7.3: the registered loopback redirect URI and the presented one
/// are the same string except for the port (either may have none).
fn loopback_any_port(registered: &str, presented: &str) -> bool {
    match (split_loopback(registered), split_loopback(presented)) {
        (Some((a, rest_a)), Some((b, rest_b))) => a == b && rest_a == rest_b,
        _ => false,
    }
}

/// The origins of a client's redirect URIs (for a public client's loopback
/// ones, the loopback literal on any port) and its `allowed_cors_origins`.
fn cors_origins(c: &ClientConfig) -> Origins {
    let public = c.token_endpoint_auth_method == TokenEndpointAuthMethod::None;
    let mut origins = Origins::default();
    for uri in &c.redirect_uris {
        match split_loopback(uri) {
            Some((loopback, _)) if public => origins.add_any_port(loopback),
            _ => {
                if let Some(origin) = cors::origin_of(uri) {
                    origins.add(origin);
                }
            }
        }
    }
    for origin in &c.allowed_cors_origins {
        origins.add(origin.clone());
    }
    origins
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
    /// Every client's CORS origins together.
    any_cors_origin: Arc<AnyClient>,
}

impl Clients {
    /// From the validated config: a pairwise client has its salt there.
    pub fn from_config(configs: &[ClientConfig], pairwise_salt: Option<&str>) -> Clients {
        let by_id: HashMap<String, Arc<Client>> = configs
            .iter()
            .map(|c| {
                let client = Client::from_config(c, pairwise_salt);
                (c.client_id.clone(), Arc::new(client))
            })
            .collect();
        let mut any = Origins::default();
        for client in by_id.values() {
            any.extend(&client.cors_origins);
        }
        Clients {
            by_id,
            any_cors_origin: Arc::new(AnyClient(any)),
        }
    }

    /// The origins some client allows: what the CORS middleware answers
    /// with before an endpoint knows the client (app data).
    pub fn any_cors_origin(&self) -> Arc<AnyClient> {
        self.any_cors_origin.clone()
    }

    /// [`Client::restrict_cors_to`] for the client named `client_id`; no
    /// origin at all when it is no longer registered.
    pub fn restrict_cors_to(&self, client_id: &str, req: &HttpRequest) {
        match self.get(client_id) {
            Some(client) => client.restrict_cors_to(req),
            None => {
                req.extensions_mut().insert(OfClient(Arc::default()));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.by_id.values()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Client>> {
        self.by_id.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public client (native application) and a confidential one, both
    /// registered with the same loopback and other redirect URIs.
    fn loopback_clients() -> (Arc<Client>, Arc<Client>) {
        let config = |id: &str, method, secret: Option<&str>| ClientConfig {
            client_id: id.into(),
            client_secret: secret.map(str::to_string),
            token_endpoint_auth_method: method,
            redirect_uris: vec![
                "http://127.0.0.1/callback".into(),
                "http://127.0.0.1:8400/with-port?app=1".into(),
                "http://[::1]/callback".into(),
                "http://localhost:8400/cb".into(),
                "https://127.0.0.1/secure".into(),
                "com.example.app:/oauth".into(),
            ],
            ..base_config()
        };
        let clients = Clients::from_config(
            &[
                config("native", TokenEndpointAuthMethod::None, None),
                config(
                    "server",
                    TokenEndpointAuthMethod::ClientSecretBasic,
                    Some("0123456789abcdef0123456789abcdef"),
                ),
            ],
            None,
        );
        (
            clients.get("native").unwrap(),
            clients.get("server").unwrap(),
        )
    }

    fn base_config() -> ClientConfig {
        ClientConfig {
            redirect_uris: vec![],
            ..ClientConfig::for_tests("x")
        }
    }

    #[test]
    fn a_public_client_s_loopback_redirect_uri_matches_on_any_port() {
        let (native, _) = loopback_clients();
        for ok in [
            "http://127.0.0.1/callback",
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:51004/callback",
            "http://127.0.0.1:65535/callback",
            // Registered with a port: another port, or none, matches too.
            "http://127.0.0.1:8400/with-port?app=1",
            "http://127.0.0.1:9000/with-port?app=1",
            "http://127.0.0.1/with-port?app=1",
            "http://[::1]/callback",
            "http://[::1]:51004/callback",
        ] {
            assert!(native.has_redirect_uri(ok), "{ok}");
        }
    }

    #[test]
    fn loopback_port_matching_changes_nothing_but_the_port() {
        let (native, _) = loopback_clients();
        for no in [
            // The path, the query and a fragment stay exact.
            "http://127.0.0.1:5/callback/",
            "http://127.0.0.1:5/Callback",
            "http://127.0.0.1:5/other",
            "http://127.0.0.1:5/callback?x=1",
            "http://127.0.0.1:5/with-port",
            "http://127.0.0.1:5/with-port?app=2",
            "http://127.0.0.1:5/callback#x",
            // Only plain http on the two loopback literals.
            "https://127.0.0.1:5/secure",
            "HTTP://127.0.0.1:5/callback",
            "http://127.0.0.2:5/callback",
            "http://127.1:5/callback",
            "http://[0:0:0:0:0:0:0:1]:5/callback",
            "http://[::1]5/callback",
            "http://[::ffff:127.0.0.1]:5/callback",
            // localhost is matched only exactly as registered (§8.3).
            "http://localhost:5/cb",
            "http://localhost/cb",
            // A userinfo, or the literal as part of another host.
            "http://a@127.0.0.1:5/callback",
            "http://127.0.0.1:5@evil.example/callback",
            "http://127.0.0.1.evil.example/callback",
            "http://127.0.0.1:5.evil.example/callback",
            // Ports that are not ports.
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:99999999999/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:-1/callback",
            "http://127.0.0.1:+5/callback",
            "http://127.0.0.1:080/callback",
            "http://[::1]:0/callback",
            // Percent-encoding is not decoded here (the parameter was, once).
            "http://127.0.0.1:%35/callback",
            "http://127.0.0.1%3A5/callback",
            "http://127.0.0.1:5/%63allback",
            "http://127.0.0.1:5%2Fcallback",
            "http%3A%2F%2F127.0.0.1%3A5%2Fcallback",
        ] {
            assert!(!native.has_redirect_uri(no), "{no}");
        }
        // Exact matches of the other registered URIs still work.
        assert!(native.has_redirect_uri("http://localhost:8400/cb"));
        assert!(native.has_redirect_uri("https://127.0.0.1/secure"));
        assert!(native.has_redirect_uri("com.example.app:/oauth"));
    }

    #[test]
    fn a_confidential_client_s_loopback_redirect_uris_match_exactly() {
        let (_, server) = loopback_clients();
        assert!(server.has_redirect_uri("http://127.0.0.1/callback"));
        assert!(server.has_redirect_uri("http://127.0.0.1:8400/with-port?app=1"));
        for no in [
            "http://127.0.0.1:5/callback",
            "http://127.0.0.1:9000/with-port?app=1",
            "http://[::1]:5/callback",
        ] {
            assert!(!server.has_redirect_uri(no), "{no}");
        }
    }

    #[test]
    fn cors_origins_come_from_redirect_uris_and_allowed_cors_origins() {
        let (native, server) = loopback_clients();
        // A public client's loopback redirect URIs: any port.
        for ok in [
            "http://127.0.0.1",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
            "http://localhost:8400",
            "https://127.0.0.1",
        ] {
            assert!(native.cors_origins.allows(ok), "{ok}");
        }
        for no in ["http://localhost:3000", "https://127.0.0.1:8443", "null"] {
            assert!(!native.cors_origins.allows(no), "{no}");
        }
        // A confidential client's: exactly their origins.
        assert!(server.cors_origins.allows("http://127.0.0.1"));
        assert!(server.cors_origins.allows("http://127.0.0.1:8400"));
        assert!(!server.cors_origins.allows("http://127.0.0.1:3000"));

        let spa = ClientConfig {
            client_id: "spa".into(),
            redirect_uris: vec!["https://spa.example/app/cb".into()],
            allowed_cors_origins: vec!["https://cdn.example:8443".into()],
            ..base_config()
        };
        let clients = Clients::from_config(&[spa], None);
        let spa = clients.get("spa").unwrap();
        assert!(spa.cors_origins.allows("https://spa.example"));
        assert!(spa.cors_origins.allows("https://cdn.example:8443"));
        assert!(!spa.cors_origins.allows("https://cdn.example"));
        assert!(!spa.cors_origins.allows("https://spa.example:8443"));
    }

    #[test]
    fn the_union_of_cors_origins_covers_every_client() {
        let a = ClientConfig {
            client_id: "a".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            ..base_config()
        };
        let b = ClientConfig {
            client_id: "b".into(),
            redirect_uris: vec!["https://b.example/cb".into()],
            ..base_config()
        };
        let clients = Clients::from_config(&[a, b], None);
        let any = clients.any_cors_origin();
        assert!(any.0.allows("https://a.example"));
        assert!(any.0.allows("https://b.example"));
        assert!(!any.0.allows("https://c.example"));
        assert!(
            !clients
                .get("a")
                .unwrap()
                .cors_origins
                .allows("https://b.example")
        );
    }

    #[test]
    fn a_pairwise_client_knows_people_by_its_sector_s_subject() {
        let salt = "a-salt-of-at-least-thirty-two-characters";
        let pairwise = |id: &str, redirect: &str| ClientConfig {
            subject_type: SubjectType::Pairwise,
            redirect_uris: vec![redirect.into()],
            ..ClientConfig::for_tests(id)
        };
        let clients = Clients::from_config(
            &[
                pairwise("a", "https://one.example/cb"),
                pairwise("b", "https://one.example/other"),
                pairwise("c", "https://two.example/cb"),
                ClientConfig::for_tests("public"),
            ],
            Some(salt),
        );
        let person = "T1:U1";
        let sub = |id: &str| clients.get(id).unwrap().subject_of(person);
        assert_eq!(sub("a"), sub("b"), "one sector, one subject");
        assert_ne!(sub("a"), sub("c"));
        assert_eq!(sub("public"), person);
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let app = ClientConfig {
            token_endpoint_auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            client_secret: Some("0123456789abcdef0123456789abcdef".into()),
            ..ClientConfig::for_tests("app")
        };
        let c = Clients::from_config(&[app], None).get("app").unwrap();
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
