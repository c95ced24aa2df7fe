//! The OpenID Connect client toward Slack. openidconnect does discovery, JWKS
//! and ID-token verification; the token and userInfo calls are made directly
//! because Slack answers errors as HTTP 200 `{"ok":false,"error":…}`, which a
//! generic OAuth client reports as a missing `access_token`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, ClaimsVerificationError, ClientId,
    ClientSecret, HttpRequest, HttpResponse, IdToken, IdTokenVerifier, IssuerUrl, JsonWebKeySetUrl,
    Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use url::Url;

use super::UpstreamError;
use super::jwk::SlackJwk;

/// Slack's JWKS, checked with aws-lc-rs (see `jwk`).
type SlackJwks = openidconnect::JsonWebKeySet<SlackJwk>;
use crate::config::UpstreamConfig;
use crate::observability::metrics::{self, UpstreamCall};
use crate::outbound;

/// Slack's answers are small; anything larger is refused unread.
const MAX_BODY: usize = 1 << 20;
/// Clock skew tolerated on Slack's `exp` and `iat`.
const SKEW_SECS: i64 = 60;

/// Slack's namespaced claims, kept by the ID-token parser.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlackClaims {
    #[serde(flatten)]
    extra: Map<String, Value>,
}
impl AdditionalClaims for SlackClaims {}

type SlackIdToken = IdToken<
    SlackClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

struct Endpoints {
    issuer: IssuerUrl,
    authorization: Url,
    token: String,
    userinfo: Option<String>,
    jwks_uri: JsonWebKeySetUrl,
}

struct JwksCache {
    keys: SlackJwks,
    fetched_at: Option<Instant>,
}

/// Tokens from Slack's `openid.connect.token`.
pub struct SlackTokens {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

impl SlackTokens {
    /// The tokens in a successful answer of `openid.connect.token`.
    pub fn from_answer(body: &Map<String, Value>) -> Result<SlackTokens, UpstreamError> {
        let text = |key: &'static str| body.get(key).and_then(Value::as_str).map(str::to_string);
        Ok(SlackTokens {
            access_token: text("access_token").ok_or(UpstreamError::Missing("access_token"))?,
            id_token: text("id_token").ok_or(UpstreamError::Missing("id_token"))?,
            refresh_token: text("refresh_token"),
            expires_in: body.get("expires_in").and_then(Value::as_u64),
        })
    }
}

/// Slack's tokens for one sign-in, as the bridge keeps them (sealed): the
/// access token for userInfo and, with Slack's token rotation, the refresh
/// token that renews it.
#[derive(Clone, Serialize, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix seconds); none without rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl UpstreamTokens {
    pub fn from_answer(tokens: &SlackTokens) -> UpstreamTokens {
        UpstreamTokens {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_at: tokens.expires_in.map(|s| Utc::now().timestamp() + s as i64),
        }
    }

    /// The text that is sealed and stored.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("tokens serialize")
    }

    /// Reads [`to_text`](Self::to_text); a bare access token (kept by
    /// earlier versions) is read as one without rotation.
    pub fn from_text(text: &str) -> UpstreamTokens {
        serde_json::from_str(text).unwrap_or_else(|_| UpstreamTokens {
            access_token: text.to_string(),
            refresh_token: None,
            expires_at: None,
        })
    }

    /// True when the access token is known to have expired (or expires
    /// within a minute): renew it before using it.
    pub fn is_expiring(&self) -> bool {
        self.expires_at
            .is_some_and(|at| at - SKEW_SECS <= Utc::now().timestamp())
    }
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("rotating", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SlackTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackTokens").finish_non_exhaustive()
    }
}

pub struct SlackClient {
    http: reqwest::Client,
    config: UpstreamConfig,
    redirect_uri: String,
    endpoints: Mutex<Option<Arc<Endpoints>>>,
    jwks: Mutex<JwksCache>,
}

impl SlackClient {
    pub fn new(config: UpstreamConfig, redirect_uri: String) -> Result<SlackClient, UpstreamError> {
        let http = outbound::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .build()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        Ok(SlackClient {
            http,
            config,
            redirect_uri,
            endpoints: Mutex::new(None),
            jwks: Mutex::new(JwksCache {
                keys: SlackJwks::new(Vec::new()),
                fetched_at: None,
            }),
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// True once Slack's discovery document has been loaded.
    pub async fn is_discovered(&self) -> bool {
        self.endpoints.lock().await.is_some()
    }

    fn openid_http(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, UpstreamError>> + Send>,
    > + use<> {
        let http = self.http.clone();
        move |request: HttpRequest| {
            let http = http.clone();
            Box::pin(async move { send(&http, request).await })
        }
    }

    /// Loads Slack's discovery document once; a failure is retried on the
    /// next sign-in rather than stopping the bridge.
    async fn endpoints(&self) -> Result<Arc<Endpoints>, UpstreamError> {
        let mut slot = self.endpoints.lock().await;
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| UpstreamError::Discovery(e.to_string()))?;
        let client = self.openid_http();
        let metadata = metrics::upstream(UpstreamCall::Discovery, async {
            CoreProviderMetadata::discover_async(issuer.clone(), &client)
                .await
                .map_err(|e| match e {
                    openidconnect::DiscoveryError::Request(inner) => inner,
                    other => UpstreamError::Discovery(other.to_string()),
                })
        })
        .await?;
        let endpoints = Arc::new(Endpoints {
            issuer,
            authorization: metadata.authorization_endpoint().url().clone(),
            token: metadata
                .token_endpoint()
                .ok_or(UpstreamError::Discovery("no token_endpoint".into()))?
                .to_string(),
            userinfo: metadata.userinfo_endpoint().map(|u| u.to_string()),
            jwks_uri: metadata.jwks_uri().clone(),
        });
        *slot = Some(endpoints.clone());
        Ok(endpoints)
    }

    /// Warms the discovery document and JWKS (at startup; failures are logged
    /// by the caller and retried later).
    pub async fn warm_up(&self) -> Result<(), UpstreamError> {
        let endpoints = self.endpoints().await?;
        self.refresh_jwks(&endpoints, true).await.map(|_| ())
    }

    /// The URL that sends the person to Slack.
    pub async fn authorize_url(
        &self,
        state: &str,
        nonce: &str,
        pkce_challenge: Option<&str>,
    ) -> Result<String, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let mut url = endpoints.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("scope", &self.config.scopes.join(" "))
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("state", state)
                .append_pair("nonce", nonce);
            if let Some(challenge) = pkce_challenge {
                q.append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", "S256");
            }
            // With one workspace, `team` skips Slack's workspace picker and consent.
            if let [team] = self.config.allowed_team_ids.as_slice()
                && team.starts_with('T')
            {
                q.append_pair("team", team);
            }
        }
        Ok(url.into())
    }

    /// Exchanges Slack's code at `openid.connect.token`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<SlackTokens, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
        ];
        if let Some(v) = pkce_verifier {
            form.push(("code_verifier", v));
        }
        let body = self.token_call(&endpoints, &form).await?;
        SlackTokens::from_answer(&body)
    }

    /// One call of `openid.connect.token`.
    async fn token_call(
        &self,
        endpoints: &Endpoints,
        form: &[(&str, &str)],
    ) -> Result<Map<String, Value>, UpstreamError> {
        metrics::upstream(UpstreamCall::Token, async {
            let response = self
                .http
                .post(&endpoints.token)
                .form(form)
                .send()
                .await
                .map_err(UpstreamError::from_reqwest)?;
            slack_json(response).await
        })
        .await
    }

    /// Renews Slack's tokens with its refresh token (token rotation): a new
    /// access and refresh token; Slack sends no ID token here.
    pub async fn renew(&self, refresh_token: &str) -> Result<UpstreamTokens, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
        ];
        let body = self.token_call(&endpoints, &form).await?;
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        Ok(UpstreamTokens {
            access_token: text("access_token").ok_or(UpstreamError::Missing("access_token"))?,
            // Slack's refresh tokens are single use: the answer names the next.
            refresh_token: text("refresh_token").or_else(|| Some(refresh_token.to_string())),
            expires_at: body
                .get("expires_in")
                .and_then(Value::as_u64)
                .map(|s| Utc::now().timestamp() + s as i64),
        })
    }

    /// Calls one of Slack's Web API methods (`users.info`,
    /// `usergroups.list`) with a bot token, under `upstream.api_url`.
    pub async fn web_api(
        &self,
        call: UpstreamCall,
        method: &str,
        bot_token: &str,
        args: &[(&str, &str)],
    ) -> Result<Map<String, Value>, UpstreamError> {
        let url = format!("{}/{method}", self.config.api_url.trim_end_matches('/'));
        metrics::upstream(call, async {
            let response = self
                .http
                .post(&url)
                .bearer_auth(bot_token)
                .form(args)
                .send()
                .await
                .map_err(UpstreamError::from_reqwest)?;
            slack_json(response).await
        })
        .await
    }

    /// Reads Slack's userInfo (profile claims beyond the ID token).
    pub async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let url = endpoints
            .userinfo
            .as_deref()
            .ok_or(UpstreamError::Missing("userinfo_endpoint"))?;
        metrics::upstream(UpstreamCall::Userinfo, async {
            let response = self
                .http
                .post(url)
                .bearer_auth(access_token)
                .send()
                .await
                .map_err(UpstreamError::from_reqwest)?;
            slack_json(response).await
        })
        .await
    }

    /// Verifies Slack's ID token: signature (JWKS refetched once on an unknown
    /// kid, at most once per cooldown), iss, aud, exp, iat, nonce, at_hash.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        expected_nonce: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let token: SlackIdToken = id_token
            .parse()
            .map_err(|e: serde_json::Error| UpstreamError::IdToken(format!("malformed: {e}")))?;
        let keys = self.current_jwks(&endpoints).await?;
        match self.check(&token, &endpoints, keys, expected_nonce, access_token) {
            Err(Retry::UnknownKey) => {
                let keys = self.refresh_jwks(&endpoints, false).await?;
                self.check(&token, &endpoints, keys, expected_nonce, access_token)
                    .map_err(Retry::into_error)
            }
            other => other.map_err(Retry::into_error),
        }
    }

    fn check(
        &self,
        token: &SlackIdToken,
        endpoints: &Endpoints,
        keys: SlackJwks,
        expected_nonce: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, Retry> {
        let verifier = IdTokenVerifier::new_confidential_client(
            ClientId::new(self.config.client_id.clone()),
            ClientSecret::new(self.config.client_secret.clone()),
            endpoints.issuer.clone(),
            keys,
        )
        .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
        .set_time_fn(|| Utc::now() - chrono::Duration::seconds(SKEW_SECS))
        .set_issue_time_verifier_fn(|iat| {
            let now = Utc::now();
            if iat > now + chrono::Duration::seconds(SKEW_SECS) {
                Err("issued in the future".into())
            } else if iat < now - chrono::Duration::seconds(3600) {
                Err("issued more than an hour ago".into())
            } else {
                Ok(())
            }
        });
        let nonce = Nonce::new(expected_nonce.to_string());
        let claims = token.claims(&verifier, &nonce).map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => Retry::UnknownKey,
            other => Retry::Failed(other.to_string()),
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = token
                .signing_alg()
                .map_err(|e| Retry::Failed(e.to_string()))?;
            let key = token
                .signing_key(&verifier)
                .map_err(|e| Retry::Failed(e.to_string()))?;
            let actual =
                AccessTokenHash::from_token(&AccessToken::new(access_token.to_string()), alg, key)
                    .map_err(|e| Retry::Failed(e.to_string()))?;
            if actual != *expected {
                return Err(Retry::Failed(
                    "at_hash does not match the access token".into(),
                ));
            }
        }
        match serde_json::to_value(claims) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Retry::Failed("claims are not an object".into())),
        }
    }

    async fn current_jwks(&self, endpoints: &Endpoints) -> Result<SlackJwks, UpstreamError> {
        {
            let cache = self.jwks.lock().await;
            if cache.fetched_at.is_some() {
                return Ok(cache.keys.clone());
            }
        }
        self.refresh_jwks(endpoints, true).await
    }

    /// Refetches Slack's JWKS unless it was fetched within the cooldown (then
    /// the cached set is returned and verification fails cleanly).
    async fn refresh_jwks(
        &self,
        endpoints: &Endpoints,
        force: bool,
    ) -> Result<SlackJwks, UpstreamError> {
        let mut cache = self.jwks.lock().await;
        let cooldown = Duration::from_secs(self.config.jwks_refetch_cooldown_secs);
        if !force && cache.fetched_at.is_some_and(|t| t.elapsed() < cooldown) {
            return Ok(cache.keys.clone());
        }
        let client = self.openid_http();
        let keys = metrics::upstream(UpstreamCall::Jwks, async {
            SlackJwks::fetch_async(&endpoints.jwks_uri, &client)
                .await
                .map_err(|e| match e {
                    openidconnect::DiscoveryError::Request(inner) => inner,
                    other => UpstreamError::Discovery(format!("JWKS: {other}")),
                })
        })
        .await?;
        cache.keys = keys.clone();
        cache.fetched_at = Some(Instant::now());
        Ok(keys)
    }

    /// PKCE pair for the upstream leg, when enabled.
    pub fn pkce_pair(&self) -> Option<(String, String)> {
        self.config.pkce.then(|| {
            let verifier = crate::store::records::random_secret();
            let challenge = s256(&verifier);
            (verifier, challenge)
        })
    }
}

enum Retry {
    UnknownKey,
    Failed(String),
}

impl Retry {
    fn into_error(self) -> UpstreamError {
        match self {
            Retry::UnknownKey => {
                UpstreamError::IdToken("signed with a key Slack does not publish".into())
            }
            Retry::Failed(m) => UpstreamError::IdToken(m),
        }
    }
}

/// RFC 7636 S256: base64url(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    outbound::read_capped(response, MAX_BODY)
        .await
        .map_err(|e| match e {
            outbound::ReadError::TooLarge => UpstreamError::Unreachable("answer too large".into()),
            outbound::ReadError::Broken(e) => UpstreamError::from_reqwest(e),
        })
}

/// Reads one of Slack's Web API answers (see [`slack_answer`]).
async fn slack_json(response: reqwest::Response) -> Result<Map<String, Value>, UpstreamError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = if status == 429 {
        Vec::new()
    } else {
        read_limited(response).await?
    };
    slack_answer(status, retry_after.as_deref(), &body)
}

/// What one of Slack's Web API answers means: 429 is rate limiting, other
/// non-2xx or non-JSON bodies are errors, and `"ok": false` carries Slack's
/// error code (HTTP 200 with an error is how Slack usually refuses).
fn slack_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, UpstreamError> {
    if status == 429 {
        return Err(UpstreamError::RateLimited {
            retry_after: retry_after.and_then(|v| v.trim().parse().ok()),
        });
    }
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    if !(200..300).contains(&status) {
        return Err(
            match parsed
                .as_ref()
                .and_then(|m| m.get("error"))
                .and_then(Value::as_str)
            {
                Some(code) => UpstreamError::Slack(sanitize_code(code)),
                None => UpstreamError::Http(status),
            },
        );
    }
    let map = parsed.ok_or(UpstreamError::NotJson)?;
    if map.get("ok").and_then(Value::as_bool) == Some(false) {
        let code = map
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error");
        return Err(UpstreamError::Slack(sanitize_code(code)));
    }
    Ok(map)
}

/// Slack's error codes are snake_case words; anything else is cut down so it
/// can be shown and logged safely.
fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

async fn send(http: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, UpstreamError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(UpstreamError::from_reqwest)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_limited(response).await?;
    let mut out = HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::upstream::arbitrary;

        fn is_clean_code(code: &str) -> bool {
            !code.is_empty()
                && code.len() <= 64
                && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }

        proptest! {
            #[test]
            fn any_answer_is_a_json_object_or_a_clean_error(
                status in prop_oneof![Just(200u16), Just(429u16), 100u16..600],
                retry_after in proptest::option::of("[0-9 ]{0,6}|.{0,10}"),
                body in arbitrary::body(),
            ) {
                match slack_answer(status, retry_after.as_deref(), &body) {
                    Ok(map) => {
                        prop_assert!((200..300).contains(&status));
                        prop_assert_ne!(map.get("ok"), Some(&Value::Bool(false)));
                        // The token answer's reader takes any object.
                        if let Ok(tokens) = SlackTokens::from_answer(&map) {
                            prop_assert_eq!(Some(tokens.access_token.as_str()),
                                map.get("access_token").and_then(Value::as_str));
                        }
                    }
                    Err(UpstreamError::RateLimited { .. }) => prop_assert_eq!(status, 429),
                    Err(UpstreamError::Http(s)) => {
                        prop_assert_eq!(s, status);
                        prop_assert!(!(200..300).contains(&s));
                    }
                    Err(UpstreamError::NotJson) => prop_assert!(
                        serde_json::from_slice::<Map<String, Value>>(&body).is_err()
                    ),
                    // Slack's own codes are shown and logged: never markup.
                    Err(UpstreamError::Slack(code)) => {
                        prop_assert!(is_clean_code(&code) || code.is_empty(), "{code:?}")
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }

            #[test]
            fn a_token_answer_needs_both_tokens_as_text(map in arbitrary::object()) {
                let has = |k: &str| map.get(k).is_some_and(Value::is_string);
                let parsed = SlackTokens::from_answer(&map);
                prop_assert_eq!(parsed.is_ok(), has("access_token") && has("id_token"));
            }
        }
    }

    #[test]
    fn error_codes_from_slack_are_sanitized() {
        assert_eq!(sanitize_code("invalid_code"), "invalid_code");
        assert_eq!(sanitize_code("<script>x"), "scriptx");
    }
}
