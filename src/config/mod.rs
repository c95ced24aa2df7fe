//! Typed configuration: a TOML file, then `BRIDGE_` environment overrides, then
//! validation. Every error names the key it is about.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::keys::Algorithm;

mod assurance;
pub use assurance::{DpopConfig, MIN_SALT_LEN, SubjectType, check_fetchable, sector_of};

/// Prefix of environment overrides: `BRIDGE_UPSTREAM__CLIENT_SECRET` sets
/// `upstream.client_secret`; `BRIDGE_CLIENTS__0__CLIENT_SECRET` indexes arrays.
pub const ENV_PREFIX: &str = "BRIDGE_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public base URL; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub listen: SocketAddr,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub tokens: TokensConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub logout: LogoutConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub standin: StandinConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub pages: PagesConfig,
    /// Every application must push its authorization requests first
    /// (RFC 9126 PAR); discovery says so.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// The secret that pairwise subjects are derived with (OIDC Core §8.1);
    /// required when a client has `subject_type = "pairwise"`. Changing it
    /// changes every pairwise `sub`. Better set by `BRIDGE_PAIRWISE_SALT`.
    #[serde(default)]
    pub pairwise_salt: Option<String>,
    #[serde(default)]
    pub dpop: DpopConfig,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub redis_url: String,
    /// Redis Cluster: `redis_url` and `redis_cluster_nodes` are seed nodes of
    /// one cluster (any of its masters or replicas); the others are found.
    pub redis_cluster: bool,
    /// More seed nodes of the cluster, tried when `redis_url` is down.
    pub redis_cluster_nodes: Vec<String>,
    /// PEM file of the certificate authority that signed the Redis server's
    /// certificate, for `rediss://` URLs; without it the system's roots are
    /// trusted (enough for managed Redis services with public certificates).
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Every store call gives up after this long and the request answers 503.
    pub timeout_ms: u64,
    /// Cap of the memory store; at the cap new logins get 503, nothing is evicted.
    pub memory_max_entries: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Memory,
            redis_url: "redis://127.0.0.1:6379/0".into(),
            redis_cluster: false,
            redis_cluster_nodes: Vec::new(),
            redis_ca_file: None,
            key_prefix: "sob:".into(),
            timeout_ms: 2000,
            memory_max_entries: 100_000,
        }
    }
}

impl StoreConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Directory of the key set; created on first start.
    pub dir: PathBuf,
    /// Algorithms that have signing keys; clients choose among them.
    pub algorithms: Vec<Algorithm>,
    /// JWKS `Cache-Control` max-age, and so how long a new key is published
    /// before it signs. Also bounds how long applications may keep trusting
    /// a revoked key.
    pub jwks_cache_secs: u32,
    /// How often running servers reread the key file (also on SIGHUP).
    pub reload_interval_secs: u64,
    /// Automatic rotation period; 0: only by `keys rotate`.
    pub rotation_period_days: u32,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            dir: PathBuf::from("keys"),
            algorithms: vec![Algorithm::Rs256],
            jwks_cache_secs: 300,
            reload_interval_secs: 5,
            rotation_period_days: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    pub code_ttl_secs: u64,
    pub access_token_ttl_secs: u64,
    pub id_token_ttl_secs: u64,
    /// How long a person may take at Slack before the pending login expires.
    pub login_ttl_secs: u64,
    /// A refresh token unused for this long expires.
    pub refresh_token_idle_secs: u64,
    /// No refresh token of a login lives longer than this after the login.
    pub refresh_token_absolute_secs: u64,
    /// A rotated refresh token presented again within this many seconds gets
    /// the same successor (a client retrying a lost response); after it, reuse
    /// is theft and revokes the whole family. 0 turns the window off.
    pub refresh_reuse_grace_secs: u64,
    /// How long a device code and its user code live (RFC 8628 `expires_in`).
    pub device_code_ttl_secs: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            code_ttl_secs: 60,
            access_token_ttl_secs: 3600,
            id_token_ttl_secs: 3600,
            login_ttl_secs: 600,
            refresh_token_idle_secs: 30 * 86400,
            refresh_token_absolute_secs: 90 * 86400,
            refresh_reuse_grace_secs: 0,
            device_code_ttl_secs: 600,
        }
    }
}

/// The single sign-on session a browser holds after a Slack login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// A session unused for this long ends.
    pub idle_secs: u64,
    /// No session outlives this, however active (then Slack is asked again).
    pub absolute_secs: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            idle_secs: 12 * 3600,
            absolute_secs: 7 * 86400,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutConfig {
    /// Timeout of each back-channel logout request to a client.
    pub backchannel_timeout_ms: u64,
    /// Further attempts after a failed back-channel logout request.
    pub backchannel_retries: u32,
}

impl Default for LogoutConfig {
    fn default() -> Self {
        LogoutConfig {
            backchannel_timeout_ms: 3000,
            backchannel_retries: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Slack's issuer; endpoints are discovered from it.
    #[serde(default = "default_upstream_issuer")]
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_upstream_scopes")]
    pub scopes: Vec<String>,
    /// Slack team (workspace) or enterprise ids allowed to sign in; empty: any.
    #[serde(default)]
    pub allowed_team_ids: Vec<String>,
    /// Send PKCE to Slack (documented by Slack only since 2026).
    #[serde(default)]
    pub pkce: bool,
    #[serde(default = "default_upstream_timeout_ms")]
    pub timeout_ms: u64,
    /// Least time between two refetches of Slack's JWKS on an unknown `kid`.
    #[serde(default = "default_jwks_cooldown")]
    pub jwks_refetch_cooldown_secs: u64,
    /// Slack's Web API base, for the bot-token calls (`users.info`,
    /// `usergroups.list`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The Slack app's bot token (`users:read`, `usergroups:read`): turns on
    /// the directory (guests, deactivated accounts, user groups).
    #[serde(default)]
    pub bot_token: Option<String>,
    /// The Slack app's signing secret: turns on `POST {issuer}/slack/events`.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// Admit Slack guests (multi- and single-channel); known only with a bot token.
    #[serde(default)]
    pub allow_guests: bool,
    /// How long a person's directory answer, a person's userInfo answer and a
    /// workspace's user groups are reused before Slack is asked again.
    #[serde(default = "default_directory_ttl")]
    pub directory_ttl_secs: u64,
    /// How long a last-known answer stands in while Slack does not answer.
    #[serde(default = "default_max_staleness")]
    pub max_staleness_secs: u64,
}

fn default_api_url() -> String {
    "https://slack.com/api".into()
}
fn default_directory_ttl() -> u64 {
    300
}
fn default_max_staleness() -> u64 {
    3600
}

fn default_upstream_issuer() -> String {
    "https://slack.com".into()
}
fn default_upstream_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}
fn default_upstream_timeout_ms() -> u64 {
    10_000
}
fn default_jwks_cooldown() -> u64 {
    60
}

impl UpstreamConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The built-in Slack stand-in, for development and tests only.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StandinConfig {
    pub enabled: bool,
    /// Loopback address it listens on; `upstream.issuer` must point at it.
    pub listen: Option<SocketAddr>,
}

/// The pages people see.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// Show a "Sign in with Slack" page before going to Slack; by default
    /// the bridge sends the browser straight there.
    pub login_page: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter; `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Human,
        }
    }
}

/// One rate limit: a bucket of `burst` requests (default: `per_minute`)
/// refilled at `per_minute` requests a minute. `per_minute = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_minute: u32,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    pub const fn new(per_minute: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_minute,
            burst: Some(burst),
        }
    }
}

/// Rate limits of the authorization and token endpoints, per client address
/// and per client; over a limit the answer is 429 with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Take the client address from the last `X-Forwarded-For` entry (the one
    /// the nearest reverse proxy added) instead of the connection's peer.
    pub trust_forwarded_for: bool,
    pub authorize_per_address: RateLimit,
    pub authorize_per_client: RateLimit,
    pub token_per_address: RateLimit,
    pub token_per_client: RateLimit,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            trust_forwarded_for: false,
            // An office behind one NAT address: 300 people arriving within
            // a minute (docs/decisions/0014).
            authorize_per_address: RateLimit::new(900, 150),
            authorize_per_client: RateLimit::new(6000, 1000),
            token_per_address: RateLimit::new(6000, 1000),
            token_per_client: RateLimit::new(6000, 1000),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523, OIDC Core §9).
    PrivateKeyJwt,
    None,
}

impl TokenEndpointAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }
}

/// One registered application, named with RFC 7591 client metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    #[serde(default)]
    pub client_name: Option<String>,
    /// The secret itself; or give `client_secret_sha256` (hex) instead.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_sha256: Option<String>,
    /// Required with the authorization_code grant; a client of the device
    /// grant alone has none.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    #[serde(default = "default_signing_alg")]
    pub id_token_signed_response_alg: String,
    /// RFC 7591 grant types; add "refresh_token" to allow `offline_access`,
    /// [`DEVICE_CODE_GRANT`] for the device flow (RFC 8628).
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<String>,
    /// Ask the person before the first sign-in (per user and scope set) and on
    /// `prompt=consent`. Off: the admin's registration is the consent.
    #[serde(default)]
    pub require_consent: bool,
    /// OpenID Back-Channel Logout 1.0: where logout tokens are POSTed.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Put `sid` in ID tokens and logout tokens.
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// Slack workspaces (or enterprises) this application admits, within
    /// `upstream.allowed_team_ids`; empty: every allowed workspace.
    #[serde(default)]
    pub allowed_team_ids: Vec<String>,
    /// Slack user group handles; the person must be in one (needs a bot token).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Overrides `upstream.allow_guests` for this application.
    #[serde(default)]
    pub allow_guests: Option<bool>,
    /// Origins (`https://app.example`) whose scripts may call the token,
    /// userinfo and revocation endpoints (CORS), besides the origins of
    /// `redirect_uris`, which are allowed without being listed.
    #[serde(default)]
    pub allowed_cors_origins: Vec<String>,
    /// `opaque` (default): a random access token; `jwt`: an RFC 9068 JWT
    /// access token, signed like the client's ID tokens, still revocable.
    #[serde(default)]
    pub access_token_format: AccessTokenFormat,
    /// This application's authorization requests must be pushed first
    /// (RFC 9126 PAR): a plain one is refused.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// `public` (default) or `pairwise` (OIDC Core §8.1): a `sub` of its own
    /// for this application's sector, so applications cannot match people.
    #[serde(default)]
    pub subject_type: SubjectType,
    /// For pairwise subjects: an https URL holding a JSON array of redirect
    /// URIs; its host is the sector. Without it, the redirect URIs' host.
    #[serde(default)]
    pub sector_identifier_uri: Option<String>,
    /// With `private_key_jwt`: the client's public keys, `{ keys = [...] }`.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// With `private_key_jwt`: where the client publishes its public keys.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// With `private_key_jwt`: the one algorithm its assertions may use.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Every token request of this client must carry a DPoP proof (RFC 9449
    /// §5.2), so all its access tokens are bound to a key.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
}

/// How a client's access tokens are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    #[default]
    Opaque,
    Jwt,
}

fn default_grant_types() -> Vec<String> {
    vec!["authorization_code".into()]
}

/// The device authorization grant (RFC 8628 §3.4), as `grant_types` and
/// the token endpoint's `grant_type` name it.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl ClientConfig {
    /// A public client with one https redirect URI and every default.
    #[cfg(test)]
    pub fn for_tests(client_id: &str) -> ClientConfig {
        ClientConfig {
            client_id: client_id.into(),
            client_name: None,
            client_secret: None,
            client_secret_sha256: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            post_logout_redirect_uris: vec![],
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            id_token_signed_response_alg: "RS256".into(),
            grant_types: default_grant_types(),
            require_consent: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            allowed_team_ids: vec![],
            allowed_groups: vec![],
            allow_guests: None,
            allowed_cors_origins: vec![],
            access_token_format: AccessTokenFormat::Opaque,
            require_pushed_authorization_requests: false,
            subject_type: SubjectType::Public,
            sector_identifier_uri: None,
            jwks: None,
            jwks_uri: None,
            token_endpoint_auth_signing_alg: None,
            dpop_bound_access_tokens: false,
        }
    }

    pub fn allows_refresh(&self) -> bool {
        self.grant_types.iter().any(|g| g == "refresh_token")
    }

    pub fn allows_device_code(&self) -> bool {
        self.grant_types.iter().any(|g| g == DEVICE_CODE_GRANT)
    }

    fn allows_authorization_code(&self) -> bool {
        self.grant_types.iter().any(|g| g == "authorization_code")
    }
}

fn default_auth_method() -> TokenEndpointAuthMethod {
    TokenEndpointAuthMethod::ClientSecretBasic
}
fn default_signing_alg() -> String {
    "RS256".into()
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

impl Config {
    /// Reads the file, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        Self::from_toml_with_env(&text, std::env::vars())
    }

    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| {
            let span = e
                .span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default();
            err(
                "config file",
                format!("not valid TOML{span}: {}", e.message()),
            )
        })?;
        let mut typed = apply_env_overrides(&mut value, env)?;
        // An override read as a number or boolean that lands on a text field
        // (a Slack client id like 1234.5678, a numeric secret) is retried as
        // the text it was; `typed` shrinks each round, so this ends.
        let config: Config = loop {
            match serde_path_to_error::deserialize(value.clone()) {
                Ok(config) => break config,
                Err(e) => {
                    let path = e.path().to_string();
                    if let Some(i) = typed.iter().position(|t| t.path == path) {
                        let t = typed.swap_remove(i);
                        set_path(&mut value, &t.segments, toml::Value::String(t.raw))
                            .map_err(|m| err(&t.path, m))?;
                        continue;
                    }
                    let path = if path == "." { "config".into() } else { path };
                    return Err(err(path, e.into_inner().to_string()));
                }
            }
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let issuer =
            Url::parse(&self.issuer).map_err(|e| err("issuer", format!("not a URL: {e}")))?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(err(
                "issuer",
                "must not have a query or a fragment (OIDC Discovery §3)",
            ));
        }
        if self.issuer.ends_with('/') {
            return Err(err(
                "issuer",
                "must not end with '/': it is compared as a string",
            ));
        }
        check_https_or_loopback("issuer", &issuer)?;

        let upstream = Url::parse(&self.upstream.issuer)
            .map_err(|e| err("upstream.issuer", format!("not a URL: {e}")))?;
        check_https_or_loopback("upstream.issuer", &upstream)?;
        self.validate_directory()?;
        if self.upstream.client_id.trim().is_empty() {
            return Err(err("upstream.client_id", "must not be empty"));
        }
        if self.upstream.client_secret.trim().is_empty() {
            return Err(err("upstream.client_secret", "must not be empty"));
        }
        if !self.upstream.scopes.iter().any(|s| s == "openid") {
            return Err(err("upstream.scopes", "must contain \"openid\""));
        }
        if self.upstream.timeout_ms == 0 {
            return Err(err("upstream.timeout_ms", "must be greater than 0"));
        }
        if self.store.timeout_ms == 0 {
            return Err(err("store.timeout_ms", "must be greater than 0"));
        }
        if self.store.memory_max_entries == 0 {
            return Err(err("store.memory_max_entries", "must be greater than 0"));
        }
        if self.store.backend == StoreBackend::Redis {
            redis_url_ok(&self.store.redis_url).map_err(|m| err("store.redis_url", m))?;
            if self.store.redis_cluster {
                cluster_node_ok(&self.store.redis_url).map_err(|m| err("store.redis_url", m))?;
                for (i, url) in self.store.redis_cluster_nodes.iter().enumerate() {
                    let key = format!("store.redis_cluster_nodes[{i}]");
                    redis_url_ok(url).map_err(|m| err(&key, m))?;
                    cluster_node_ok(url).map_err(|m| err(&key, m))?;
                }
            } else if !self.store.redis_cluster_nodes.is_empty() {
                return Err(err(
                    "store.redis_cluster_nodes",
                    "is only used with store.redis_cluster = true",
                ));
            }
            self.check_redis_tls()?;
        }
        for (name, v) in [
            (
                "tokens.refresh_token_idle_secs",
                self.tokens.refresh_token_idle_secs,
            ),
            (
                "tokens.refresh_token_absolute_secs",
                self.tokens.refresh_token_absolute_secs,
            ),
            ("sessions.idle_secs", self.sessions.idle_secs),
            ("sessions.absolute_secs", self.sessions.absolute_secs),
            (
                "logout.backchannel_timeout_ms",
                self.logout.backchannel_timeout_ms,
            ),
            ("tokens.code_ttl_secs", self.tokens.code_ttl_secs),
            (
                "tokens.access_token_ttl_secs",
                self.tokens.access_token_ttl_secs,
            ),
            ("tokens.id_token_ttl_secs", self.tokens.id_token_ttl_secs),
            ("tokens.login_ttl_secs", self.tokens.login_ttl_secs),
            (
                "tokens.device_code_ttl_secs",
                self.tokens.device_code_ttl_secs,
            ),
        ] {
            if v == 0 {
                return Err(err(name, "must be greater than 0"));
            }
        }
        if self.tokens.code_ttl_secs > 600 {
            return Err(err("tokens.code_ttl_secs", "at most 600 (RFC 6749 §4.1.2)"));
        }
        // An approved device code is redeemed like a code: a sign-out
        // everywhere is remembered 600 s (store::person), and must outlive it.
        if self.tokens.device_code_ttl_secs > 600 {
            return Err(err(
                "tokens.device_code_ttl_secs",
                "at most 600 (an approved device code must not outlive the record of a sign-out everywhere)",
            ));
        }
        if self.standin.enabled {
            let listen = self
                .standin
                .listen
                .ok_or_else(|| err("standin.listen", "required when standin.enabled"))?;
            if !listen.ip().is_loopback() {
                return Err(err(
                    "standin.listen",
                    "the Slack stand-in only runs on a loopback address",
                ));
            }
            if self.upstream.issuer != format!("http://{listen}") {
                return Err(err(
                    "upstream.issuer",
                    format!("the Slack stand-in is enabled, so this must be \"http://{listen}\""),
                ));
            }
        }
        for (name, limit) in [
            (
                "limits.authorize_per_address",
                self.limits.authorize_per_address,
            ),
            (
                "limits.authorize_per_client",
                self.limits.authorize_per_client,
            ),
            ("limits.token_per_address", self.limits.token_per_address),
            ("limits.token_per_client", self.limits.token_per_client),
        ] {
            if limit.burst == Some(0) {
                return Err(err(
                    format!("{name}.burst"),
                    "must be greater than 0 (turn the limit off with per_minute = 0)",
                ));
            }
        }
        self.validate_keys()?;
        self.validate_dpop()?;
        self.validate_clients()
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        let algs = &self.keys.algorithms;
        if !algs.contains(&Algorithm::Rs256) {
            return Err(err(
                "keys.algorithms",
                "must contain \"RS256\" (OpenID Connect Discovery §3 requires it)",
            ));
        }
        for (i, a) in algs.iter().enumerate() {
            if algs[..i].contains(a) {
                return Err(err(
                    format!("keys.algorithms[{i}]"),
                    format!("\"{a}\" is listed twice"),
                ));
            }
        }
        if self.keys.reload_interval_secs == 0 {
            return Err(err("keys.reload_interval_secs", "must be greater than 0"));
        }
        Ok(())
    }

    /// The algorithm of a client's ID tokens (its validated
    /// `id_token_signed_response_alg`); RS256 for an unknown client.
    pub fn id_token_alg(&self, client_id: &str) -> Algorithm {
        self.clients
            .iter()
            .find(|c| c.client_id == client_id)
            .and_then(|c| c.id_token_signed_response_alg.parse().ok())
            .unwrap_or(Algorithm::Rs256)
    }

    fn validate_clients(&self) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let at = |key: &str| format!("clients[{i}].{key}");
            if c.client_id.trim().is_empty() {
                return Err(err(at("client_id"), "must not be empty"));
            }
            if !ids.insert(c.client_id.as_str()) {
                return Err(err(
                    at("client_id"),
                    format!("\"{}\" is registered twice", c.client_id),
                ));
            }
            match c.token_endpoint_auth_method {
                TokenEndpointAuthMethod::None | TokenEndpointAuthMethod::PrivateKeyJwt => {
                    if c.client_secret.is_some() || c.client_secret_sha256.is_some() {
                        return Err(err(
                            at("client_secret"),
                            format!(
                                "a client with token_endpoint_auth_method = \"{}\" has no secret",
                                c.token_endpoint_auth_method.as_str()
                            ),
                        ));
                    }
                }
                _ => match (&c.client_secret, &c.client_secret_sha256) {
                    (Some(_), Some(_)) => {
                        return Err(err(
                            at("client_secret"),
                            "give client_secret or client_secret_sha256, not both",
                        ));
                    }
                    (None, None) => {
                        return Err(err(
                            at("client_secret"),
                            "required for a confidential client (or set client_secret_sha256, or token_endpoint_auth_method = \"none\")",
                        ));
                    }
                    (Some(s), None) if s.len() < 32 => {
                        return Err(err(
                            at("client_secret"),
                            "must be at least 32 characters (high entropy)",
                        ));
                    }
                    (None, Some(h))
                        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        return Err(err(
                            at("client_secret_sha256"),
                            "must be 64 hexadecimal digits",
                        ));
                    }
                    _ => {}
                },
            }
            if c.redirect_uris.is_empty() && c.allows_authorization_code() {
                return Err(err(
                    at("redirect_uris"),
                    "at least one redirect URI is required",
                ));
            }
            for (j, uri) in c.redirect_uris.iter().enumerate() {
                check_redirect_uri(uri)
                    .map_err(|m| err(format!("clients[{i}].redirect_uris[{j}]"), m))?;
            }
            for (j, uri) in c.post_logout_redirect_uris.iter().enumerate() {
                check_redirect_uri(uri)
                    .map_err(|m| err(format!("clients[{i}].post_logout_redirect_uris[{j}]"), m))?;
            }
            for (j, origin) in c.allowed_cors_origins.iter().enumerate() {
                check_cors_origin(origin)
                    .map_err(|m| err(format!("clients[{i}].allowed_cors_origins[{j}]"), m))?;
            }
            for (j, g) in c.grant_types.iter().enumerate() {
                if !matches!(
                    g.as_str(),
                    "authorization_code" | "refresh_token" | DEVICE_CODE_GRANT
                ) {
                    return Err(err(
                        format!("clients[{i}].grant_types[{j}]"),
                        format!(
                            "only \"authorization_code\", \"refresh_token\" and \"{DEVICE_CODE_GRANT}\" are supported"
                        ),
                    ));
                }
            }
            // Only a device-flow client may do without the code flow.
            if !c.allows_authorization_code() && !c.allows_device_code() {
                return Err(err(
                    at("grant_types"),
                    format!(
                        "must contain \"authorization_code\" (or, for a client of the device flow alone, \"{DEVICE_CODE_GRANT}\")"
                    ),
                ));
            }
            if !c.redirect_uris.is_empty() && !c.allows_authorization_code() {
                return Err(err(
                    at("redirect_uris"),
                    "redirect URIs are only used by the \"authorization_code\" grant: add it to grant_types or remove them",
                ));
            }
            if let Some(uri) = &c.backchannel_logout_uri {
                check_redirect_uri(uri).map_err(|m| err(at("backchannel_logout_uri"), m))?;
            }
            self.validate_client_policy(c, &at)?;
            self.validate_assurance(c, &at)?;
            let alg: Algorithm = c
                .id_token_signed_response_alg
                .parse()
                .map_err(|m: String| err(at("id_token_signed_response_alg"), m))?;
            if !self.keys.algorithms.contains(&alg) {
                return Err(err(
                    at("id_token_signed_response_alg"),
                    format!("\"{alg}\" has no signing key: add it to keys.algorithms"),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// The bot-token directory and the Events API: what cannot work is
    /// refused here, naming the key.
    fn validate_directory(&self) -> Result<(), ConfigError> {
        let upstream = &self.upstream;
        let api = Url::parse(&upstream.api_url)
            .map_err(|e| err("upstream.api_url", format!("not a URL: {e}")))?;
        check_https_or_loopback("upstream.api_url", &api)?;
        if let Some(token) = &upstream.bot_token
            && !token.starts_with("xoxb-")
        {
            return Err(err(
                "upstream.bot_token",
                "must be the Slack app's bot token (it starts with \"xoxb-\")",
            ));
        }
        if upstream
            .signing_secret
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(err("upstream.signing_secret", "must not be empty"));
        }
        if upstream.directory_ttl_secs == 0 {
            return Err(err("upstream.directory_ttl_secs", "must be greater than 0"));
        }
        if upstream.max_staleness_secs < upstream.directory_ttl_secs {
            return Err(err(
                "upstream.max_staleness_secs",
                "must be at least upstream.directory_ttl_secs (a last answer stands in after it goes stale)",
            ));
        }
        if self.standin.enabled
            && upstream.bot_token.is_some()
            && let Some(listen) = self.standin.listen
            && upstream.api_url != format!("http://{listen}/api")
        {
            return Err(err(
                "upstream.api_url",
                format!("the Slack stand-in is enabled, so this must be \"http://{listen}/api\""),
            ));
        }
        Ok(())
    }

    /// A client's policy must be one the directory can enforce.
    fn validate_client_policy(
        &self,
        c: &ClientConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        let upstream = &self.upstream;
        if !c.allowed_groups.is_empty() && upstream.bot_token.is_none() {
            return Err(err(
                at("allowed_groups"),
                "needs upstream.bot_token (with the usergroups:read scope): user groups are read from Slack's directory",
            ));
        }
        if c.allowed_groups
            .iter()
            .any(|g| g.trim().is_empty() || g.starts_with('@'))
        {
            return Err(err(
                at("allowed_groups"),
                "each entry is a user group handle without '@', e.g. \"engineering\"",
            ));
        }
        if c.allow_guests.is_some() && upstream.bot_token.is_none() {
            return Err(err(
                at("allow_guests"),
                "needs upstream.bot_token (with the users:read scope): guests are only known from Slack's directory",
            ));
        }
        for (j, team) in c.allowed_team_ids.iter().enumerate() {
            if !upstream.allowed_team_ids.is_empty() && !upstream.allowed_team_ids.contains(team) {
                return Err(err(
                    format!("{}[{j}]", at("allowed_team_ids")),
                    format!(
                        "\"{team}\" is not in upstream.allowed_team_ids, so nobody from it can sign in"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every node is TLS or none is (one set of certificates serves them
    /// all), and a CA file is only given for TLS and holds a certificate.
    fn check_redis_tls(&self) -> Result<(), ConfigError> {
        let store = &self.store;
        let tls = store.redis_url.starts_with("rediss://");
        for (i, url) in store.redis_cluster_nodes.iter().enumerate() {
            if url.starts_with("rediss://") != tls {
                return Err(err(
                    format!("store.redis_cluster_nodes[{i}]"),
                    "mixes rediss:// and redis://: every node of the cluster uses TLS or none does",
                ));
            }
        }
        let Some(path) = &store.redis_ca_file else {
            return Ok(());
        };
        if !tls {
            return Err(err(
                "store.redis_ca_file",
                "is only used with a rediss:// URL (TLS)",
            ));
        }
        let pem = std::fs::read_to_string(path).map_err(|e| {
            err(
                "store.redis_ca_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(err(
                "store.redis_ca_file",
                format!("{} holds no PEM certificate", path.display()),
            ));
        }
        Ok(())
    }
}

fn redis_url_ok(s: &str) -> Result<(), String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "redis" | "redis+unix" | "unix" => Ok(()),
        "rediss" => Ok(()),
        other => Err(format!("scheme \"{other}\" is not redis:// or rediss://")),
    }
}

/// A cluster node is reached over TCP, and a cluster has only database 0.
fn cluster_node_ok(s: &str) -> Result<(), String> {
    let url = Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err("a Redis Cluster node must be a redis:// or rediss://host:port URL".into());
    }
    if !matches!(url.path(), "" | "/" | "/0") {
        return Err("Redis Cluster has only database 0: leave the path empty or /0".into());
    }
    Ok(())
}

pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_https_or_loopback(key: &str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(err(
            key,
            "must use https (http is allowed only on loopback)",
        )),
        other => Err(err(key, format!("scheme \"{other}\" is not https"))),
    }
}

/// A redirect URI is compared as an exact string later; here it must be an
/// absolute URL without a fragment, and http only on loopback (RFC 8252 §7.3).
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("not an absolute URL: {e}"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err("must not contain a fragment (RFC 6749 §3.1.2)".into());
    }
    match url.scheme() {
        "http" if !url.host_str().is_some_and(is_loopback_host) => {
            Err("http is allowed only for loopback hosts; use https".into())
        }
        "javascript" | "data" | "file" | "vbscript" => {
            Err(format!("scheme \"{}\" is not allowed", url.scheme()))
        }
        _ => Ok(()),
    }
}

/// An origin a browser sends in `Origin`, written exactly so (it is compared
/// as a string): scheme, host and port only, https or loopback http.
fn check_cors_origin(origin: &str) -> Result<(), String> {
    let url = Url::parse(origin).map_err(|e| {
        format!("not an origin ({e}): write scheme, host and port, e.g. \"https://app.example\"")
    })?;
    match url.scheme() {
        "https" => {}
        "http" if url.host_str().is_some_and(is_loopback_host) => {}
        "http" => return Err("http is allowed only for loopback hosts; use https".into()),
        other => return Err(format!("scheme \"{other}\" is not https")),
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != origin {
        return Err(format!(
            "must be an origin as a browser sends it (no path, query, trailing slash, user or default port; lower case): \"{serialized}\""
        ));
    }
    Ok(())
}

/// Applies `BRIDGE_A__B__0__C=value` overrides onto the parsed file. The value is
/// read as TOML when it parses as a scalar or an array (`true`, `30`, `["a"]`),
/// else taken as a string, so secrets need no quoting.
/// An override that was not stored as text, in case its field wants text.
struct TypedOverride {
    /// As serde_path_to_error prints it: `clients[0].client_secret`.
    path: String,
    segments: Vec<String>,
    raw: String,
}

fn apply_env_overrides(
    root: &mut toml::Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<TypedOverride>, ConfigError> {
    let mut typed = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let segments: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(err(name, "malformed override name (empty path segment)"));
        }
        let value = parse_env_value(&raw);
        let is_text = value.is_str();
        set_path(root, &segments, value).map_err(|m| err(&name, m))?;
        if !is_text {
            let mut path = String::new();
            for s in &segments {
                if s.parse::<usize>().is_ok() {
                    path.push_str(&format!("[{s}]"));
                } else {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(s);
                }
            }
            typed.push(TypedOverride {
                path,
                segments,
                raw,
            });
        }
    }
    Ok(typed)
}

fn parse_env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Boolean(_)
                | toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Array(_)),
            ) => v,
            Some(toml::Value::String(s)) => toml::Value::String(s),
            _ => toml::Value::String(raw.to_string()),
        },
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(node: &mut toml::Value, path: &[String], value: toml::Value) -> Result<(), String> {
    let (head, rest) = path.split_first().expect("non-empty path");
    match node {
        toml::Value::Table(table) => {
            if rest.is_empty() {
                table.insert(head.clone(), value);
                return Ok(());
            }
            let child = table.entry(head.clone()).or_insert_with(|| {
                if rest[0].parse::<usize>().is_ok() {
                    toml::Value::Array(Vec::new())
                } else {
                    toml::Value::Table(toml::Table::new())
                }
            });
            set_path(child, rest, value)
        }
        toml::Value::Array(items) => {
            let index: usize = head
                .parse()
                .map_err(|_| format!("\"{head}\" is not an array index"))?;
            if index > items.len() {
                return Err(format!(
                    "index {index} skips entries (the array has {})",
                    items.len()
                ));
            }
            if index == items.len() {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            if rest.is_empty() {
                items[index] = value;
                return Ok(());
            }
            set_path(&mut items[index], rest, value)
        }
        _ => Err(format!("\"{head}\" is inside a value that is not a table")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"
issuer = "http://127.0.0.1:18080"
listen = "127.0.0.1:18080"
[upstream]
client_id = "1.2"
client_secret = "s"
[[clients]]
client_id = "demo"
client_secret = "0123456789abcdef0123456789abcdef"
redirect_uris = ["http://127.0.0.1:18999/cb"]
"#;

    pub(crate) fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(
            text,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    /// A client of the device flow alone (RFC 8628): no redirect URI, no
    /// authorization_code; the code flow stays required for every other.
    #[test]
    fn only_a_client_of_the_device_grant_may_omit_authorization_code() {
        let device_only = r#"
issuer = "http://127.0.0.1:18080"
listen = "127.0.0.1:18080"
[upstream]
client_id = "1.2"
client_secret = "s"
[[clients]]
client_id = "cli"
token_endpoint_auth_method = "none"
grant_types = ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]
"#;
        let c = load(device_only, &[]).unwrap();
        assert!(c.clients[0].allows_device_code() && c.clients[0].allows_refresh());
        assert_eq!(c.tokens.device_code_ttl_secs, 600);

        let with_redirect = format!("{device_only}redirect_uris = [\"http://127.0.0.1:9/cb\"]\n");
        let e = load(&with_redirect, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].redirect_uris");
        assert!(e.message.contains("authorization_code"), "{e}");

        let refresh_only =
            device_only.replace("\"urn:ietf:params:oauth:grant-type:device_code\", ", "");
        let e = load(&refresh_only, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].grant_types");
        assert!(e.message.contains(DEVICE_CODE_GRANT), "{e}");

        let both =
            format!("{MINIMAL}grant_types = [\"authorization_code\", \"{DEVICE_CODE_GRANT}\"]\n");
        assert!(load(&both, &[]).unwrap().clients[0].allows_device_code());
        let e = load(&format!("{MINIMAL}grant_types = [\"device_code\"]\n"), &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].grant_types[0]");
        let no_uris = MINIMAL.replace("redirect_uris = [\"http://127.0.0.1:18999/cb\"]\n", "");
        assert_eq!(
            load(&no_uris, &[]).unwrap_err().path,
            "clients[0].redirect_uris"
        );
    }

    #[test]
    fn the_device_code_lifetime_is_at_most_600_seconds() {
        let ttl = |v: &str| load(MINIMAL, &[("BRIDGE_TOKENS__DEVICE_CODE_TTL_SECS", v)]);
        assert_eq!(ttl("2").unwrap().tokens.device_code_ttl_secs, 2);
        for bad in ["0", "601"] {
            assert_eq!(ttl(bad).unwrap_err().path, "tokens.device_code_ttl_secs");
        }
    }

    #[test]
    fn allowed_groups_without_a_bot_token_is_refused_naming_the_key() {
        let text = format!("{MINIMAL}allowed_groups = [\"engineering\"]\n");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].allowed_groups");
        assert!(e.message.contains("upstream.bot_token"), "{e}");
        let ok = load(&text, &[("BRIDGE_UPSTREAM__BOT_TOKEN", "xoxb-1-abc")]).unwrap();
        assert_eq!(ok.clients[0].allowed_groups, vec!["engineering"]);
        assert_eq!(ok.upstream.directory_ttl_secs, 300);
        assert_eq!(ok.upstream.max_staleness_secs, 3600);
    }

    #[test]
    fn a_client_guest_rule_without_a_bot_token_is_refused() {
        let text = format!("{MINIMAL}allow_guests = true\n");
        assert_eq!(
            load(&text, &[]).unwrap_err().path,
            "clients[0].allow_guests"
        );
    }

    #[test]
    fn a_user_token_in_place_of_the_bot_token_is_refused() {
        let e = load(MINIMAL, &[("BRIDGE_UPSTREAM__BOT_TOKEN", "xoxp-1-abc")]).unwrap_err();
        assert_eq!(e.path, "upstream.bot_token");
    }

    #[test]
    fn a_client_workspace_outside_the_upstream_list_is_refused() {
        let text = format!("{MINIMAL}allowed_team_ids = [\"T9\"]\n");
        let e = load(&text, &[("BRIDGE_UPSTREAM__ALLOWED_TEAM_IDS", "[\"T1\"]")]).unwrap_err();
        assert_eq!(e.path, "clients[0].allowed_team_ids[0]");
        // Without an upstream list every workspace may sign in.
        assert!(load(&text, &[]).is_ok());
    }

    #[test]
    fn staleness_shorter_than_the_directory_ttl_is_refused() {
        let e = load(
            MINIMAL,
            &[
                ("BRIDGE_UPSTREAM__DIRECTORY_TTL_SECS", "600"),
                ("BRIDGE_UPSTREAM__MAX_STALENESS_SECS", "60"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.path, "upstream.max_staleness_secs");
    }

    #[test]
    fn minimal_file_loads_with_defaults() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.store.backend, StoreBackend::Memory);
        assert_eq!(c.store.timeout_ms, 2000);
        assert_eq!(
            c.clients[0].token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(c.upstream.issuer, "https://slack.com");
    }

    #[test]
    fn env_overrides_nested_keys_and_array_entries() {
        let c = load(
            MINIMAL,
            &[
                ("BRIDGE_UPSTREAM__CLIENT_SECRET", "from-env"),
                ("BRIDGE_STORE__TIMEOUT_MS", "500"),
                (
                    "BRIDGE_CLIENTS__0__CLIENT_SECRET",
                    "ffffffffffffffffffffffffffffffffff",
                ),
                ("BRIDGE_UPSTREAM__ALLOWED_TEAM_IDS", "[\"T1\", \"T2\"]"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.upstream.client_secret, "from-env");
        assert_eq!(c.store.timeout_ms, 500);
        assert_eq!(
            c.clients[0].client_secret.as_deref(),
            Some("ffffffffffffffffffffffffffffffffff")
        );
        assert_eq!(c.upstream.allowed_team_ids, vec!["T1", "T2"]);
    }

    #[test]
    fn a_numeric_looking_override_of_a_text_field_stays_text() {
        let c = load(
            MINIMAL,
            &[
                ("BRIDGE_UPSTREAM__CLIENT_ID", "1234567890.1234567890123"),
                ("BRIDGE_UPSTREAM__CLIENT_SECRET", "true"),
                (
                    "BRIDGE_CLIENTS__0__CLIENT_SECRET",
                    "12345678901234567890123456789012345",
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.upstream.client_id, "1234567890.1234567890123");
        assert_eq!(c.upstream.client_secret, "true");
        assert_eq!(
            c.clients[0].client_secret.as_deref(),
            Some("12345678901234567890123456789012345")
        );
    }

    #[test]
    fn the_login_page_is_off_by_default_and_can_be_turned_on() {
        assert!(!load(MINIMAL, &[]).unwrap().pages.login_page);
        let on = load(MINIMAL, &[("BRIDGE_PAGES__LOGIN_PAGE", "true")]).unwrap();
        assert!(on.pages.login_page);
        let e = load(&format!("{MINIMAL}\n[pages]\nlogin = true\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("login"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let e = load(MINIMAL, &[("BRIDGE_STORE__TIMEOUT_MS", "soon")]).unwrap_err();
        assert_eq!(e.path, "store.timeout_ms");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_name() {
        let e = load(&format!("{MINIMAL}\n[keys]\ndirr = \"x\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("dirr"), "{e}");
    }

    #[test]
    fn a_short_client_secret_is_refused() {
        let text = MINIMAL.replace("0123456789abcdef0123456789abcdef", "short");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].client_secret");
    }

    #[test]
    fn allowed_cors_origins_must_be_https_or_loopback_origins_naming_the_key() {
        let with = |origins: &str| format!("{MINIMAL}allowed_cors_origins = [{origins}]\n");
        let ok = load(
            &with("\"https://app.example\", \"https://app.example:8443\", \"http://127.0.0.1:3000\", \"http://[::1]:3000\", \"http://localhost:5173\""),
            &[],
        )
        .unwrap();
        assert_eq!(ok.clients[0].allowed_cors_origins.len(), 5);
        for (bad, says) in [
            ("https://app.example/", "\"https://app.example\""),
            ("https://app.example/spa", "\"https://app.example\""),
            ("https://app.example?x=1", "\"https://app.example\""),
            ("https://app.example:443", "\"https://app.example\""),
            ("https://App.Example", "\"https://app.example\""),
            ("https://user@app.example", "\"https://app.example\""),
            ("http://app.example", "loopback"),
            ("*", "not an origin"),
            ("app.example", "not an origin"),
            ("ftp://app.example", "not https"),
        ] {
            let e = load(&with(&format!("\"https://ok.example\", \"{bad}\"")), &[]).unwrap_err();
            assert_eq!(e.path, "clients[0].allowed_cors_origins[1]", "{bad}");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_redirect_uri_with_a_fragment_is_refused() {
        let text = MINIMAL.replace("18999/cb", "18999/cb#x");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].redirect_uris[0]");
    }

    #[test]
    fn plain_http_issuer_off_loopback_is_refused() {
        let text = MINIMAL.replace(
            "issuer = \"http://127.0.0.1:18080\"",
            "issuer = \"http://bridge.example\"",
        );
        assert_eq!(load(&text, &[]).unwrap_err().path, "issuer");
    }

    #[test]
    fn key_settings_default_to_rs256_a_five_minute_jwks_cache_and_no_automatic_rotation() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.keys.algorithms, vec![Algorithm::Rs256]);
        assert_eq!(c.keys.jwks_cache_secs, 300);
        assert_eq!(c.keys.reload_interval_secs, 5);
        assert_eq!(c.keys.rotation_period_days, 0);
        assert_eq!(c.id_token_alg("demo"), Algorithm::Rs256);
    }

    #[test]
    fn a_client_may_ask_for_a_configured_algorithm() {
        let text = format!(
            "{MINIMAL}id_token_signed_response_alg = \"EdDSA\"\n[keys]\nalgorithms = [\"RS256\", \"EdDSA\"]\n"
        );
        assert_eq!(
            load(&text, &[]).unwrap().id_token_alg("demo"),
            Algorithm::EdDsa
        );
    }

    #[test]
    fn a_client_asking_for_an_algorithm_without_keys_is_refused_naming_the_key() {
        let text = format!("{MINIMAL}id_token_signed_response_alg = \"ES256\"\n");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].id_token_signed_response_alg");
        assert!(e.message.contains("keys.algorithms"), "{e}");
        let text = format!("{MINIMAL}id_token_signed_response_alg = \"HS256\"\n");
        let e = load(&text, &[]).unwrap_err();
        assert_eq!(e.path, "clients[0].id_token_signed_response_alg");
        assert!(e.message.contains("not offered"), "{e}");
    }

    #[test]
    fn key_algorithms_must_include_rs256_and_be_known() {
        let e = load(MINIMAL, &[("BRIDGE_KEYS__ALGORITHMS", "[\"ES256\"]")]).unwrap_err();
        assert_eq!(e.path, "keys.algorithms");
        let e = load(
            MINIMAL,
            &[("BRIDGE_KEYS__ALGORITHMS", "[\"RS256\", \"ES512\"]")],
        )
        .unwrap_err();
        assert!(e.path.starts_with("keys.algorithms"), "{e}");
        let e = load(
            MINIMAL,
            &[("BRIDGE_KEYS__ALGORITHMS", "[\"RS256\", \"RS256\"]")],
        )
        .unwrap_err();
        assert_eq!(e.path, "keys.algorithms[1]");
    }

    #[test]
    fn limits_have_defaults_and_env_overrides_set_one_field() {
        let c = load(MINIMAL, &[]).unwrap();
        assert!(!c.limits.trust_forwarded_for);
        assert_eq!(c.limits.authorize_per_address, RateLimit::new(900, 150));
        let c = load(
            MINIMAL,
            &[
                ("BRIDGE_LIMITS__TOKEN_PER_CLIENT__PER_MINUTE", "5"),
                ("BRIDGE_LIMITS__TRUST_FORWARDED_FOR", "true"),
            ],
        )
        .unwrap();
        assert!(c.limits.trust_forwarded_for);
        assert_eq!(
            c.limits.token_per_client,
            RateLimit {
                per_minute: 5,
                burst: None
            }
        );
        let e = load(
            MINIMAL,
            &[
                ("BRIDGE_LIMITS__TOKEN_PER_ADDRESS__PER_MINUTE", "5"),
                ("BRIDGE_LIMITS__TOKEN_PER_ADDRESS__BURST", "0"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.path, "limits.token_per_address.burst");
    }

    #[test]
    fn public_client_with_secret_is_refused() {
        let text = format!("{MINIMAL}token_endpoint_auth_method = \"none\"\n");
        assert_eq!(
            load(&text, &[]).unwrap_err().path,
            "clients[0].client_secret"
        );
    }

    #[test]
    fn redis_cluster_takes_seed_nodes_on_database_0_over_tcp() {
        let cluster = |extra: &str| {
            format!(
                "{MINIMAL}[store]\nbackend = \"redis\"\nredis_url = \"redis://10.0.0.1:7000\"\nredis_cluster = true\n{extra}"
            )
        };
        let c = load(
            &cluster("redis_cluster_nodes = [\"redis://10.0.0.2:7000\"]"),
            &[],
        )
        .unwrap();
        assert!(c.store.redis_cluster);
        assert_eq!(c.store.redis_cluster_nodes, vec!["redis://10.0.0.2:7000"]);
        let c = load(
            &cluster(""),
            &[(
                "BRIDGE_STORE__REDIS_CLUSTER_NODES__0",
                "redis://10.0.0.3:7000",
            )],
        )
        .unwrap();
        assert_eq!(c.store.redis_cluster_nodes, vec!["redis://10.0.0.3:7000"]);

        let e = load(&cluster("redis_cluster_nodes = [\"redis://h:1/2\"]"), &[]).unwrap_err();
        assert_eq!(e.path, "store.redis_cluster_nodes[0]");
        assert!(e.message.contains("database 0"), "{}", e.message);
        let e = load(
            &cluster("").replace("redis://10.0.0.1:7000", "unix:///tmp/redis.sock"),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.path, "store.redis_url");
        let e = load(
            &format!(
                "{MINIMAL}[store]\nbackend = \"redis\"\nredis_cluster_nodes = [\"redis://h:1\"]"
            ),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.path, "store.redis_cluster_nodes");
    }

    #[test]
    fn rediss_is_accepted_and_a_ca_file_needs_tls_and_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let store = |url: &str, extra: &str| {
            format!("{MINIMAL}[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\n{extra}")
        };
        let ca_line = |path: &Path| format!("redis_ca_file = \"{}\"", path.display());

        let c = load(&store("rediss://:pw@10.0.0.1:6380/0", ""), &[]).unwrap();
        assert_eq!(c.store.redis_ca_file, None);
        let c = load(&store("rediss://10.0.0.1:6380/0", &ca_line(&ca)), &[]).unwrap();
        assert_eq!(c.store.redis_ca_file.as_deref(), Some(ca.as_path()));

        let e = load(&store("redis://10.0.0.1:6379/0", &ca_line(&ca)), &[]).unwrap_err();
        assert_eq!(e.path, "store.redis_ca_file");
        assert!(e.message.contains("rediss://"), "{}", e.message);
        let e = load(&store("rediss://10.0.0.1:6380/0", &ca_line(&not_pem)), &[]).unwrap_err();
        assert!(e.message.contains("no PEM certificate"), "{}", e.message);
        let missing = dir.path().join("missing.pem");
        let e = load(&store("rediss://10.0.0.1:6380/0", &ca_line(&missing)), &[]).unwrap_err();
        assert!(e.message.contains("cannot read"), "{}", e.message);

        let mixed = store(
            "rediss://10.0.0.1:7000",
            "redis_cluster = true\nredis_cluster_nodes = [\"redis://10.0.0.2:7000\"]",
        );
        let e = load(&mixed, &[]).unwrap_err();
        assert_eq!(e.path, "store.redis_cluster_nodes[0]");
    }
}
