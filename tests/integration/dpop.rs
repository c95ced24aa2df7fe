//! DPoP (RFC 9449) against the real binary: a token request with a proof
//! gets tokens bound to the proof key's thumbprint (RFC 7638), which the
//! test computes itself from keys it generates (ES256, EdDSA, RS256, PS256).
//! Userinfo takes a bound token only as `Authorization: DPoP` with a proof by
//! the same key that hashes the token; proofs are single use (on the memory
//! store and on Redis), must fit the request, and carry the bridge's nonce
//! when it requires one. One sign-in is driven by the `openidconnect`
//! library, with the proofs added by a wrapper around its HTTP client.

use crate::common;

use common::bridge::{BASIC, Bridge, REDIRECT_URI, REFRESH, Setup};
use common::browser::{Browser, auth_params, jwt_claims, location, param, pkce, verify_id_token};
use common::jws::{Key, b64, now, random_id, sha256, thumbprint};
use common::rp::{DiscoveredClient, HttpFuture, discover, library_http};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreTokenType};
use openidconnect::http::HeaderValue;
use openidconnect::http::header::AUTHORIZATION;
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, HttpRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, UserInfoClaims,
};
use serde_json::{Value, json};

const ADA: &str = "U0000000001";
const ALGS: &str = "RS256 PS256 ES256 EdDSA";

/// A public client registered for refresh tokens.
const NATIVE: &str = "app-dpop-native";
/// A confidential client registered with `dpop_bound_access_tokens`.
const BOUND_ONLY: (&str, &str) = ("app-dpop-only", "dpop-only-secret-0123456789abcdef01234567");
/// A confidential client with JWT access tokens (RFC 9068).
const JWT_CLIENT: (&str, &str) = ("app-dpop-jwt", "dpop-jwt-secret-0123456789abcdef012345678");

fn with_clients(mut setup: Setup) -> Setup {
    setup.extra_toml.push_str(&format!(
        r#"
[[clients]]
client_id = "{NATIVE}"
redirect_uris = ["{REDIRECT_URI}"]
token_endpoint_auth_method = "none"
grant_types = ["authorization_code", "refresh_token"]

[[clients]]
client_id = "{bound_id}"
client_secret = "{bound_secret}"
redirect_uris = ["{REDIRECT_URI}"]
dpop_bound_access_tokens = true

[[clients]]
client_id = "{jwt_id}"
client_secret = "{jwt_secret}"
redirect_uris = ["{REDIRECT_URI}"]
access_token_format = "jwt"
"#,
        bound_id = BOUND_ONLY.0,
        bound_secret = BOUND_ONLY.1,
        jwt_id = JWT_CLIENT.0,
        jwt_secret = JWT_CLIENT.1,
    ));
    setup
}

async fn bridge() -> Bridge {
    Bridge::start(with_clients(Setup::default())).await
}

async fn bridge_requiring_nonces() -> Bridge {
    Bridge::start(with_clients(Setup {
        env: vec![("BRIDGE_DPOP__REQUIRE_NONCE".into(), "true".into())],
        ..Setup::default()
    }))
    .await
}

// ------------------------------------------------------------------ keys

/// DPoP proofs (RFC 9449 §4.2) by a client's key.
trait Proofs {
    /// The header of a proof by this key.
    fn dpop_header(&self) -> Value;
    /// A proof of a request to `htu` by `htm`, with these claims added.
    fn proof_with(&self, htm: &str, htu: &str, more: Value) -> String;
    fn proof(&self, htm: &str, htu: &str) -> String;
    /// A proof presented with `access_token` (its `ath`).
    fn proof_for(&self, htm: &str, htu: &str, access_token: &str) -> String;
}

impl Proofs for Key {
    fn dpop_header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk()})
    }

    fn proof_with(&self, htm: &str, htu: &str, more: Value) -> String {
        let mut claims = proof_claims(htm, htu);
        for (k, v) in more.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.sign(&self.dpop_header(), &claims)
    }

    fn proof(&self, htm: &str, htu: &str) -> String {
        self.proof_with(htm, htu, json!({}))
    }

    fn proof_for(&self, htm: &str, htu: &str, access_token: &str) -> String {
        self.proof_with(htm, htu, json!({ "ath": ath(access_token) }))
    }
}

fn proof_claims(htm: &str, htu: &str) -> Value {
    json!({"jti": random_id(), "htm": htm, "htu": htu, "iat": now()})
}

/// `ath` (RFC 9449 §4.2): base64url of the SHA-256 of the token.
fn ath(access_token: &str) -> String {
    b64(&sha256(access_token.as_bytes()))
}

// ------------------------------------------------------------ requests

/// How a client authenticates at the bridge's back channel.
#[derive(Clone, Copy)]
enum Caller {
    Secret(&'static str, &'static str),
    Public(&'static str),
}

const BASIC_CALLER: Caller = Caller::Secret(BASIC.0, BASIC.1);

impl Caller {
    fn id(self) -> &'static str {
        match self {
            Caller::Secret(id, _) | Caller::Public(id) => id,
        }
    }
}

/// POST to a back-channel endpoint, with a `DPoP` header when given.
async fn back_channel(
    bridge: &Bridge,
    path: &str,
    caller: Caller,
    form: &[(&str, &str)],
    proof: Option<&str>,
) -> reqwest::Response {
    let mut form = form.to_vec();
    let mut req = reqwest::Client::new().post(bridge.url(path));
    match caller {
        Caller::Secret(id, secret) => req = req.basic_auth(id, Some(secret)),
        Caller::Public(id) => form.push(("client_id", id)),
    }
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    req.form(&form).send().await.unwrap()
}

/// Signs Ada in for `client_id` with PKCE; the code and the verifier.
async fn sign_in(bridge: &Bridge, client_id: &str, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut params = auth_params(client_id, "st", "n");
    params.retain(|(k, _)| *k != "scope");
    params.extend([
        ("scope", scope),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let back = Browser::new().sign_in(bridge, &params, ADA).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    (code, verifier)
}

async fn redeem(
    bridge: &Bridge,
    caller: Caller,
    (code, verifier): &(String, String),
    proof: Option<&str>,
) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    back_channel(bridge, "/token", caller, &form, proof).await
}

/// A sign-in whose code is redeemed with a proof by `key`: the tokens.
async fn bound_tokens(bridge: &Bridge, caller: Caller, scope: &str, key: &Key) -> Value {
    let code = sign_in(bridge, caller.id(), scope).await;
    let proof = key.proof("POST", &bridge.url("/token"));
    let r = redeem(bridge, caller, &code, Some(&proof)).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    tokens
}

async fn refresh(
    bridge: &Bridge,
    caller: Caller,
    refresh_token: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    back_channel(bridge, "/token", caller, &form, proof).await
}

async fn introspect(bridge: &Bridge, caller: Caller, token: &str) -> Value {
    let r = back_channel(bridge, "/introspect", caller, &[("token", token)], None).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// GET {bridge}/userinfo with this Authorization header and proof.
async fn userinfo(bridge: &Bridge, authorization: &str, proof: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .header("Authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    req.send().await.unwrap()
}

/// Userinfo with the DPoP scheme and a fresh proof by `key`.
async fn userinfo_with_proof(bridge: &Bridge, token: &str, key: &Key) -> reqwest::Response {
    let proof = key.proof_for("GET", &bridge.url("/userinfo"), token);
    userinfo(bridge, &format!("DPoP {token}"), Some(&proof)).await
}

/// The status and the OAuth `error` of a refusal.
async fn error_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or_default().into())
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

/// A `WWW-Authenticate` DPoP challenge with this error and the algorithms.
fn assert_dpop_challenge(r: &reqwest::Response, error: &str) {
    let challenge = header(r, "www-authenticate");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("error_description=\""), "{challenge}");
    assert!(
        challenge.contains(&format!("algs=\"{ALGS}\"")),
        "{challenge}"
    );
}

// ------------------------------------------------- the relying-party library

/// The library's HTTP client with a DPoP proof by `key` added to every
/// request, and a bearer token turned into `Authorization: DPoP` with the
/// proof's `ath` (what a DPoP-aware client library does).
fn dpop_http(key: std::sync::Arc<Key>) -> impl Fn(HttpRequest) -> HttpFuture {
    let inner = library_http();
    move |mut request: HttpRequest| {
        let uri = request.uri();
        let htu = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap(),
            uri.authority().unwrap(),
            uri.path()
        );
        let htm = request.method().as_str().to_string();
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let proof = match &token {
            Some(token) => {
                request.headers_mut().insert(
                    AUTHORIZATION,
                    HeaderValue::from_str(&format!("DPoP {token}")).unwrap(),
                );
                key.proof_for(&htm, &htu, token)
            }
            None => key.proof(&htm, &htu),
        };
        request
            .headers_mut()
            .insert("DPoP", HeaderValue::from_str(&proof).unwrap());
        inner(request)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openidconnect_exchanges_a_code_with_a_dpop_proof_and_reads_userinfo_with_the_dpop_scheme()
{
    let bridge = bridge().await;
    let key = std::sync::Arc::new(Key::ed25519());
    let http = dpop_http(key.clone());
    let client: DiscoveredClient = CoreClient::from_provider_metadata(
        discover(&bridge).await,
        ClientId::new(BASIC.0.into()),
        Some(ClientSecret::new(BASIC.1.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
    .set_auth_type(AuthType::BasicAuth);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, _csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new();
    let r = browser.get(authorize_url.as_str()).await;
    assert_eq!(r.status(), 302);
    let callback = browser.slack_decide(&location(&r), ADA).await;
    let back = location(&browser.get(callback.as_str()).await);
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect's code exchange with DPoP fails: {e:?}"));
    // The library lowercases token types it does not know.
    assert_eq!(
        tokens.token_type(),
        &CoreTokenType::Extension("dpop".into())
    );
    let id_token = tokens.id_token().expect("an id_token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .unwrap_or_else(|e| panic!("openidconnect rejects the ID token: {e:?}"));
    assert_eq!(claims.subject().as_str(), "T0000000001:U0000000001");
    let alg = id_token.signing_alg().unwrap();
    let signing_key = id_token.signing_key(&id_verifier).unwrap();
    assert_eq!(
        claims.access_token_hash(),
        Some(&AccessTokenHash::from_token(tokens.access_token(), alg, signing_key).unwrap()),
        "at_hash of the DPoP-bound access token"
    );

    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo with the DPoP scheme fails: {e:?}"));
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some("ada@example.com"));
}

// ------------------------------------------------------------- userinfo

#[tokio::test(flavor = "multi_thread")]
async fn a_bound_access_token_presented_as_bearer_is_refused_with_a_dpop_challenge() {
    let bridge = bridge().await;
    let key = Key::es256();
    let tokens = bound_tokens(&bridge, BASIC_CALLER, "openid email", &key).await;
    let token = tokens["access_token"].as_str().unwrap();

    let r = userinfo(&bridge, &format!("Bearer {token}"), None).await;
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "invalid_token");
    assert_eq!(error_of(r).await, (401, "invalid_token".into()));
    // Not even with a valid proof beside it, nor as a form parameter.
    let proof = key.proof_for("GET", &bridge.url("/userinfo"), token);
    let r = userinfo(&bridge, &format!("Bearer {token}"), Some(&proof)).await;
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "invalid_token");
    let r = reqwest::Client::new()
        .post(bridge.url("/userinfo"))
        .form(&[("access_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "invalid_token");

    // The same token, shown as the RFC says, is good.
    let r = userinfo_with_proof(&bridge, token, &key).await;
    assert_eq!(r.status(), 200);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["email"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_accepts_a_bound_token_only_with_a_fresh_proof_by_its_key() {
    let bridge = bridge().await;
    let key = Key::es256();
    let tokens = bound_tokens(&bridge, BASIC_CALLER, "openid email", &key).await;
    let token = tokens["access_token"].as_str().unwrap();
    let url = bridge.url("/userinfo");
    let dpop = format!("DPoP {token}");

    // A valid proof, but by another key than the token's.
    let r = userinfo_with_proof(&bridge, token, &Key::es256()).await;
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "invalid_token");
    let r = userinfo_with_proof(&bridge, token, &Key::ed25519()).await;
    assert_dpop_challenge(&r, "invalid_token");

    // Proofs by the right key that do not fit the request.
    let bad_proofs = [
        ("no proof", None),
        ("no ath", Some(key.proof("GET", &url))),
        (
            "the ath of another token",
            Some(key.proof_for("GET", &url, "another-token")),
        ),
        (
            "the token endpoint's htu",
            Some(key.proof_for("GET", &bridge.url("/token"), token)),
        ),
        (
            "htm POST for a GET",
            Some(key.proof_for("POST", &url, token)),
        ),
    ];
    for (case, proof) in bad_proofs {
        let r = userinfo(&bridge, &dpop, proof.as_deref()).await;
        assert_eq!(r.status(), 401, "{case}");
        assert_dpop_challenge(&r, "invalid_dpop_proof");
    }

    // GET and POST, each with its own proof.
    assert_eq!(
        userinfo_with_proof(&bridge, token, &key).await.status(),
        200
    );
    let r = reqwest::Client::new()
        .post(&url)
        .header("Authorization", &dpop)
        .header("DPoP", key.proof_for("POST", &url, token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unbound_access_token_presented_with_the_dpop_scheme_is_refused() {
    let bridge = bridge().await;
    let code = sign_in(&bridge, BASIC.0, "openid email").await;
    let r = redeem(&bridge, BASIC_CALLER, &code, None).await;
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let token = tokens["access_token"].as_str().unwrap();

    let r = userinfo_with_proof(&bridge, token, &Key::es256()).await;
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "invalid_token");
    let r = userinfo(&bridge, &format!("Bearer {token}"), None).await;
    assert_eq!(r.status(), 200, "as a bearer token it is good");
}

// ------------------------------------------------------- token endpoint

#[tokio::test(flavor = "multi_thread")]
async fn proofs_by_keys_of_every_advertised_algorithm_bind_the_token_to_the_keys_thumbprint() {
    let bridge = bridge().await;
    for key in [
        Key::es256(),
        Key::ed25519(),
        Key::rsa("RS256"),
        Key::rsa("PS256"),
    ] {
        let tokens = bound_tokens(&bridge, BASIC_CALLER, "openid", &key).await;
        let token = tokens["access_token"].as_str().unwrap();
        let described = introspect(&bridge, BASIC_CALLER, token).await;
        assert_eq!(described["cnf"]["jkt"], key.thumbprint(), "{}", key.alg);
        assert_eq!(
            userinfo_with_proof(&bridge, token, &key).await.status(),
            200,
            "{}",
            key.alg
        );
    }
}

/// A code that was never issued: a request whose proof passes is refused
/// `invalid_grant`, one whose proof does not `invalid_dpop_proof`.
const NO_SUCH_CODE: [(&str, &str); 3] = [
    ("grant_type", "authorization_code"),
    ("code", "no-such-code"),
    ("redirect_uri", REDIRECT_URI),
];

#[tokio::test(flavor = "multi_thread")]
async fn proofs_that_do_not_fit_the_request_are_refused_with_invalid_dpop_proof() {
    let bridge = bridge().await;
    let key = Key::es256();
    let other = Key::ed25519();
    let url = bridge.url("/token");
    let header_with = |patch: Value| {
        let mut h = key.dpop_header();
        for (k, v) in patch.as_object().unwrap() {
            h[k] = v.clone();
        }
        h
    };
    let claims_without = |member: &str| {
        let mut c = proof_claims("POST", &url);
        c.as_object_mut().unwrap().remove(member);
        c
    };
    let hs256 = {
        let secret = b"a-shared-secret-of-thirty-two-bytes!";
        let header =
            json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(secret)}});
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap()),
            b64(&serde_json::to_vec(&proof_claims("POST", &url)).unwrap())
        );
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            input.as_bytes(),
        );
        format!("{input}.{}", b64(tag.as_ref()))
    };
    let none = format!(
        "{}.{}.",
        b64(&serde_json::to_vec(&header_with(json!({"alg": "none"}))).unwrap()),
        b64(&serde_json::to_vec(&proof_claims("POST", &url)).unwrap())
    );
    // A proof of this request by `key`, its header patched.
    let with_header = |patch: Value| key.sign(&header_with(patch), &proof_claims("POST", &url));
    let declaring = |member: &str, value: &str| {
        let mut jwk = key.public_jwk().clone();
        jwk[member] = json!(value);
        jwk
    };
    let mut private_jwk = key.public_jwk().clone();
    private_jwk["d"] = json!(key.private_d().unwrap());
    let origin_port = url.trim_end_matches("/token").rsplit(':').next().unwrap();

    let refused: Vec<(&str, String)> = vec![
        (
            "htu of another endpoint",
            key.proof("POST", &bridge.url("/userinfo")),
        ),
        (
            "htu on another host",
            key.proof("POST", &format!("http://evil.example:{origin_port}/token")),
        ),
        (
            "htu https",
            key.proof("POST", &url.replace("http:", "https:")),
        ),
        (
            "htu missing",
            key.sign(&key.dpop_header(), &claims_without("htu")),
        ),
        ("htm GET", key.proof("GET", &url)),
        ("htm lowercase", key.proof("post", &url)),
        (
            "iat 2 minutes ago",
            key.proof_with("POST", &url, json!({"iat": now() - 120})),
        ),
        (
            "iat 2 minutes ahead",
            key.proof_with("POST", &url, json!({"iat": now() + 120})),
        ),
        (
            "iat missing",
            key.sign(&key.dpop_header(), &claims_without("iat")),
        ),
        (
            "jti missing",
            key.sign(&key.dpop_header(), &claims_without("jti")),
        ),
        ("alg HS256 with a shared secret", hs256),
        ("alg none", none),
        (
            "alg EdDSA for an EC key",
            with_header(json!({"alg": "EdDSA"})),
        ),
        ("typ JWT", with_header(json!({"typ": "JWT"}))),
        ("no typ", with_header(json!({"typ": null}))),
        (
            "a private key in jwk",
            with_header(json!({ "jwk": private_jwk })),
        ),
        ("no jwk", with_header(json!({"jwk": null}))),
        (
            "a jwk declaring another alg",
            with_header(json!({ "jwk": declaring("alg", "ES384") })),
        ),
        (
            "a jwk for encryption",
            with_header(json!({ "jwk": declaring("use", "enc") })),
        ),
        (
            "signed by another key than its jwk",
            with_header(json!({"alg": "EdDSA", "jwk": other.public_jwk()})),
        ),
        (
            "signed by another key of the same type",
            with_header(json!({ "jwk": Key::es256().public_jwk() })),
        ),
        ("not a JWS", "not-a-proof".into()),
    ];
    for (case, proof) in &refused {
        let r = back_channel(&bridge, "/token", BASIC_CALLER, &NO_SUCH_CODE, Some(proof)).await;
        assert_eq!(
            error_of(r).await,
            (400, "invalid_dpop_proof".into()),
            "{case}"
        );
    }
    // Two DPoP headers, each valid alone.
    let r = reqwest::Client::new()
        .post(&url)
        .basic_auth(BASIC.0, Some(BASIC.1))
        .header("DPoP", key.proof("POST", &url))
        .header("DPoP", key.proof("POST", &url))
        .form(&NO_SUCH_CODE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_dpop_proof".into()),
        "two headers"
    );

    // Near misses that fit: the proof passes and the (unknown) code fails.
    let accepted = [
        ("exact", key.proof("POST", &url)),
        (
            "query and fragment ignored",
            key.proof("POST", &format!("{url}?x=1#f")),
        ),
        (
            "scheme case",
            key.proof("POST", &url.replace("http:", "HTTP:")),
        ),
        (
            "iat 30 s ago",
            key.proof_with("POST", &url, json!({"iat": now() - 30})),
        ),
        (
            "iat 30 s ahead",
            key.proof_with("POST", &url, json!({"iat": now() + 30})),
        ),
        ("by the other key", other.proof("POST", &url)),
    ];
    for (case, proof) in &accepted {
        let r = back_channel(&bridge, "/token", BASIC_CALLER, &NO_SUCH_CODE, Some(proof)).await;
        assert_eq!(error_of(r).await, (400, "invalid_grant".into()), "{case}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_bound_with_dpop_jkt_is_redeemed_only_with_a_proof_by_that_key() {
    let bridge = bridge().await;
    let key = Key::es256();
    let jkt = key.thumbprint();
    let url = bridge.url("/token");
    let bound_code = |jkt: String| {
        let bridge = &bridge;
        async move {
            let (verifier, challenge) = pkce();
            let mut params = auth_params(BASIC.0, "st", "n");
            params.extend([
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("dpop_jkt", jkt.as_str()),
            ]);
            let back = Browser::new().sign_in(bridge, &params, ADA).await;
            (param(&back, "code").expect("a code"), verifier)
        }
    };

    let code = bound_code(jkt.clone()).await;
    let r = redeem(
        &bridge,
        BASIC_CALLER,
        &code,
        Some(&Key::es256().proof("POST", &url)),
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_grant".into()),
        "another key"
    );
    let code = bound_code(jkt.clone()).await;
    let r = redeem(&bridge, BASIC_CALLER, &code, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()), "no proof");
    let code = bound_code(jkt.clone()).await;
    let r = redeem(&bridge, BASIC_CALLER, &code, Some(&key.proof("POST", &url))).await;
    assert_eq!(r.status(), 200, "its key");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");

    // A malformed dpop_jkt is refused at the authorization endpoint.
    let mut params = auth_params(BASIC.0, "st", "n");
    params.push(("dpop_jkt", "not a thumbprint"));
    let r = Browser::new().authorize(&bridge, &params).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proof_sent_with_a_pushed_request_binds_the_code_to_its_key() {
    let bridge = bridge().await;
    let key = Key::ed25519();
    let push = |proof: Option<String>, extra: Vec<(&'static str, String)>| {
        let bridge = &bridge;
        async move {
            let mut params: Vec<(&str, String)> = auth_params(BASIC.0, "st", "n")
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect();
            params.extend(extra);
            let mut req = reqwest::Client::new()
                .post(bridge.url("/par"))
                .basic_auth(BASIC.0, Some(BASIC.1));
            if let Some(proof) = proof {
                req = req.header("DPoP", proof);
            }
            req.form(&params).send().await.unwrap()
        }
    };
    let signed_in_code = |request_uri: String| {
        let bridge = &bridge;
        async move {
            let back = Browser::new()
                .sign_in(
                    bridge,
                    &[("client_id", BASIC.0), ("request_uri", &request_uri)],
                    ADA,
                )
                .await;
            param(&back, "code").expect("a code")
        }
    };
    let request_uri = |body: Value| body["request_uri"].as_str().unwrap().to_string();
    let redeem_plain = |code: String, proof: Option<String>| {
        let bridge = &bridge;
        async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
            ];
            back_channel(bridge, "/token", BASIC_CALLER, &form, proof.as_deref()).await
        }
    };
    let par_url = bridge.url("/par");
    let token_url = bridge.url("/token");

    let r = push(Some(key.proof("POST", &par_url)), vec![]).await;
    assert_eq!(r.status(), 201);
    let code = signed_in_code(request_uri(r.json().await.unwrap())).await;
    let r = redeem_plain(code, Some(Key::ed25519().proof("POST", &token_url))).await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_grant".into()),
        "another key"
    );

    let r = push(Some(key.proof("POST", &par_url)), vec![]).await;
    let code = signed_in_code(request_uri(r.json().await.unwrap())).await;
    let r = redeem_plain(code, Some(key.proof("POST", &token_url))).await;
    assert_eq!(r.status(), 200, "its key");

    // A proof for another URL, or one naming another key than dpop_jkt.
    let r = push(Some(key.proof("POST", &token_url)), vec![]).await;
    assert_eq!(error_of(r).await, (400, "invalid_dpop_proof".into()));
    let other_jkt = Key::es256().thumbprint();
    let r = push(
        Some(key.proof("POST", &par_url)),
        vec![("dpop_jkt", other_jkt)],
    )
    .await;
    assert_eq!(error_of(r).await, (400, "invalid_dpop_proof".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nonces_required_a_pushed_request_with_a_proof_gets_a_nonce_then_goes_through() {
    let bridge = bridge_requiring_nonces().await;
    let key = Key::es256();
    let url = bridge.url("/par");
    let push = |proof: String| {
        reqwest::Client::new()
            .post(&url)
            .basic_auth(BASIC.0, Some(BASIC.1))
            .header("DPoP", proof)
            .form(&auth_params(BASIC.0, "st", "n"))
            .send()
    };
    let r = push(key.proof("POST", &url)).await.unwrap();
    assert_eq!(r.status(), 400);
    let nonce = header(&r, "dpop-nonce");
    assert_eq!(error_of(r).await, (400, "use_dpop_nonce".into()));
    let r = push(key.proof_with("POST", &url, json!({ "nonce": nonce })))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_registered_for_bound_tokens_is_refused_a_token_request_without_a_proof() {
    let bridge = bridge().await;
    let caller = Caller::Secret(BOUND_ONLY.0, BOUND_ONLY.1);
    let code = sign_in(&bridge, BOUND_ONLY.0, "openid").await;
    assert_eq!(
        error_of(redeem(&bridge, caller, &code, None).await).await,
        (400, "invalid_request".into())
    );
    // The refusal did not spend the code.
    let proof = Key::es256().proof("POST", &bridge.url("/token"));
    let r = redeem(&bridge, caller, &code, Some(&proof)).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    // Other clients may still go without.
    let code = sign_in(&bridge, BASIC.0, "openid").await;
    assert_eq!(
        redeem(&bridge, BASIC_CALLER, &code, None).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwt_access_token_of_a_dpop_request_carries_cnf_jkt() {
    let bridge = bridge().await;
    let key = Key::es256();
    let tokens = bound_tokens(
        &bridge,
        Caller::Secret(JWT_CLIENT.0, JWT_CLIENT.1),
        "openid",
        &key,
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = verify_id_token(&bridge, token, JWT_CLIENT.0).await;
    assert_eq!(
        claims["cnf"],
        json!({ "jkt": key.thumbprint() }),
        "{claims}"
    );
    assert_eq!(
        userinfo_with_proof(&bridge, token, &key).await.status(),
        200
    );

    // Without a proof, no cnf.
    let code = sign_in(&bridge, JWT_CLIENT.0, "openid").await;
    let r = redeem(
        &bridge,
        Caller::Secret(JWT_CLIENT.0, JWT_CLIENT.1),
        &code,
        None,
    )
    .await;
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert!(claims.get("cnf").is_none(), "{claims}");
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_the_dpop_signing_algorithms() {
    let bridge = bridge().await;
    let doc: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "EdDSA"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_accepted_and_replayed_proofs() {
    let bridge = bridge().await;
    let key = Key::es256();
    let proof = key.proof("POST", &bridge.url("/token"));
    let code = sign_in(&bridge, BASIC.0, "openid").await;
    assert_eq!(
        redeem(&bridge, BASIC_CALLER, &code, Some(&proof))
            .await
            .status(),
        200
    );
    let code = sign_in(&bridge, BASIC.0, "openid").await;
    assert_eq!(
        error_of(redeem(&bridge, BASIC_CALLER, &code, Some(&proof)).await).await,
        (400, "invalid_dpop_proof".into())
    );
    let bad = key.proof("GET", &bridge.url("/token"));
    assert_eq!(
        redeem(&bridge, BASIC_CALLER, &code, Some(&bad))
            .await
            .status(),
        400
    );

    let text = bridge.metrics().await;
    let count =
        |outcome| common::metric(&text, "bridge_dpop_proofs_total", &[("outcome", outcome)]);
    assert_eq!(count("ok"), 1.0, "{text}");
    assert_eq!(count("replayed"), 1.0);
    assert_eq!(count("invalid"), 1.0);
}

// --------------------------------------------------------------- nonces

#[tokio::test(flavor = "multi_thread")]
async fn with_nonces_required_the_token_endpoint_answers_use_dpop_nonce_then_takes_the_retry() {
    let bridge = bridge_requiring_nonces().await;
    let key = Key::es256();
    let url = bridge.url("/token");
    let code = sign_in(&bridge, BASIC.0, "openid").await;

    let r = redeem(&bridge, BASIC_CALLER, &code, Some(&key.proof("POST", &url))).await;
    let nonce = header(&r, "dpop-nonce");
    assert_eq!(error_of(r).await, (400, "use_dpop_nonce".into()));
    let forged = key.proof_with("POST", &url, json!({"nonce": "made-up"}));
    let r = redeem(&bridge, BASIC_CALLER, &code, Some(&forged)).await;
    assert_eq!(error_of(r).await, (400, "use_dpop_nonce".into()));

    let retry = key.proof_with("POST", &url, json!({ "nonce": nonce }));
    let r = redeem(&bridge, BASIC_CALLER, &code, Some(&retry)).await;
    assert_eq!(r.status(), 200, "the refusals did not spend the code");
    assert!(
        !header(&r, "dpop-nonce").is_empty(),
        "a fresh nonce each time"
    );
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nonces_required_userinfo_answers_401_use_dpop_nonce_then_takes_the_retry() {
    let bridge = bridge_requiring_nonces().await;
    let key = Key::es256();
    let code = sign_in(&bridge, BASIC.0, "openid email").await;
    let first = redeem(
        &bridge,
        BASIC_CALLER,
        &code,
        Some(&key.proof("POST", &bridge.url("/token"))),
    )
    .await;
    let nonce = header(&first, "dpop-nonce");
    let r = redeem(
        &bridge,
        BASIC_CALLER,
        &code,
        Some(&key.proof_with("POST", &bridge.url("/token"), json!({ "nonce": nonce }))),
    )
    .await;
    let tokens: Value = r.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let dpop = format!("DPoP {token}");
    let url = bridge.url("/userinfo");

    let r = userinfo(&bridge, &dpop, Some(&key.proof_for("GET", &url, token))).await;
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "use_dpop_nonce");
    let nonce = header(&r, "dpop-nonce");

    let retry = key.proof_with("GET", &url, json!({ "nonce": nonce, "ath": ath(token) }));
    let r = userinfo(&bridge, &dpop, Some(&retry)).await;
    assert_eq!(r.status(), 200);
    assert!(!header(&r, "dpop-nonce").is_empty());
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["email"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nonce_given_by_one_instance_is_accepted_by_another() {
    let bridge = bridge_requiring_nonces().await;
    let sibling = bridge
        .start_sibling(&[("BRIDGE_DPOP__REQUIRE_NONCE".into(), "true".into())])
        .await;
    let key = Key::es256();
    // A nonce from the first instance (every token response has one).
    let r = back_channel(&bridge, "/token", BASIC_CALLER, &NO_SUCH_CODE, None).await;
    let nonce = header(&r, "dpop-nonce");

    // The memory store is not shared: an unknown code tells that the proof
    // passed. Its htu is the issuer's URL, the same for both instances.
    let at_sibling = |proof: String| {
        reqwest::Client::new()
            .post(sibling.url("/token"))
            .basic_auth(BASIC.0, Some(BASIC.1))
            .header("DPoP", proof)
            .form(&NO_SUCH_CODE)
            .send()
    };
    let url = bridge.url("/token");
    let r = at_sibling(key.proof("POST", &url)).await.unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "use_dpop_nonce".into()),
        "no nonce"
    );
    let r = at_sibling(key.proof_with("POST", &url, json!({ "nonce": nonce })))
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (400, "invalid_grant".into()),
        "the other instance's nonce: {}",
        sibling.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nonces_required_every_userinfo_answer_carries_a_nonce() {
    let bridge = bridge_requiring_nonces().await;
    let url = bridge.url("/userinfo");
    let http = reqwest::Client::new();
    let answers = [
        ("no token", http.get(&url)),
        (
            "an unknown token",
            http.get(&url).bearer_auth("no-such-token"),
        ),
        (
            "a malformed Authorization",
            http.get(&url).header("Authorization", "Basic"),
        ),
    ];
    for (case, request) in answers {
        let r = request.send().await.unwrap();
        assert!(r.status().is_client_error(), "{case}");
        assert!(
            r.headers().contains_key("dpop-nonce"),
            "{case}: {} {:?}",
            r.status(),
            r.headers()
        );
    }
}

// ------------------------------------------- on the memory store and Redis

async fn introspection_shows_the_binding_as_cnf_jkt(setup: Setup) {
    let bridge = Bridge::start(with_clients(setup)).await;
    let key = Key::es256();
    let native = Caller::Public(NATIVE);
    let tokens = bound_tokens(&bridge, native, "openid offline_access", &key).await;
    let expected = json!({ "jkt": key.thumbprint() });

    let access = introspect(&bridge, native, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(access["active"], true, "{access}");
    assert_eq!(access["token_type"], "DPoP");
    assert_eq!(access["cnf"], expected);
    let refresh = introspect(&bridge, native, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refresh["active"], true, "{refresh}");
    assert_eq!(refresh["cnf"], expected, "a public client's refresh token");

    // Without a proof: a bearer token, no cnf.
    let code = sign_in(&bridge, BASIC.0, "openid").await;
    let tokens: Value = redeem(&bridge, BASIC_CALLER, &code, None)
        .await
        .json()
        .await
        .unwrap();
    let access = introspect(
        &bridge,
        BASIC_CALLER,
        tokens["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(access["token_type"], "Bearer");
    assert!(access.get("cnf").is_none(), "{access}");
}

async fn a_proof_is_accepted_once(setup: Setup) {
    let bridge = Bridge::start(with_clients(setup)).await;
    let key = Key::es256();
    let proof = key.proof("POST", &bridge.url("/token"));
    let first = sign_in(&bridge, BASIC.0, "openid").await;
    let second = sign_in(&bridge, BASIC.0, "openid").await;
    let r = redeem(&bridge, BASIC_CALLER, &first, Some(&proof)).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(
        error_of(redeem(&bridge, BASIC_CALLER, &second, Some(&proof)).await).await,
        (400, "invalid_dpop_proof".into()),
        "the same proof again"
    );
    // The proof is spent once the code is known to be good: the code was
    // taken, as with a wrong PKCE verifier, and is not good again.
    let fresh = key.proof("POST", &bridge.url("/token"));
    assert_eq!(
        error_of(redeem(&bridge, BASIC_CALLER, &second, Some(&fresh)).await).await,
        (400, "invalid_grant".into()),
        "a code presented with a replayed proof is used up"
    );
    // A made-up code with a fresh proof does not spend the proof.
    let unspent = key.proof("POST", &bridge.url("/token"));
    let made_up = ("made-up-code".to_string(), second.1.clone());
    assert_eq!(
        error_of(redeem(&bridge, BASIC_CALLER, &made_up, Some(&unspent)).await).await,
        (400, "invalid_grant".into())
    );
    let third = sign_in(&bridge, BASIC.0, "openid").await;
    assert_eq!(
        redeem(&bridge, BASIC_CALLER, &third, Some(&unspent))
            .await
            .status(),
        200,
        "the proof sent with a made-up code is still good"
    );

    // At userinfo too.
    let token = tokens["access_token"].as_str().unwrap();
    let proof = key.proof_for("GET", &bridge.url("/userinfo"), token);
    let dpop = format!("DPoP {token}");
    assert_eq!(userinfo(&bridge, &dpop, Some(&proof)).await.status(), 200);
    let r = userinfo(&bridge, &dpop, Some(&proof)).await;
    assert_eq!(r.status(), 401);
    assert_dpop_challenge(&r, "invalid_dpop_proof");
}

/// A bound refresh token presented with a proof by `thief`, then with none:
/// `invalid_grant` both times.
async fn refused_without_its_key(bridge: &Bridge, caller: Caller, refresh_token: &str, thief: Key) {
    let url = bridge.url("/token");
    let r = refresh(
        bridge,
        caller,
        refresh_token,
        Some(&thief.proof("POST", &url)),
    )
    .await;
    assert_eq!(
        error_of(r).await,
        (400, "invalid_grant".into()),
        "another key"
    );
    let r = refresh(bridge, caller, refresh_token, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()), "no proof");
}

async fn a_public_clients_refresh_token_is_bound_to_its_key(setup: Setup) {
    let bridge = Bridge::start(with_clients(setup)).await;
    let key = Key::ed25519();
    let native = Caller::Public(NATIVE);
    let url = bridge.url("/token");
    let tokens = bound_tokens(&bridge, native, "openid offline_access", &key).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");

    refused_without_its_key(&bridge, native, refresh_token, Key::ed25519()).await;

    let r = refresh(
        &bridge,
        native,
        refresh_token,
        Some(&key.proof("POST", &url)),
    )
    .await;
    assert_eq!(r.status(), 200, "its key; the refusals did not spend it");
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "DPoP");
    let access = introspect(&bridge, native, next["access_token"].as_str().unwrap()).await;
    assert_eq!(access["cnf"]["jkt"], key.thumbprint());
    // The rotated refresh token stays bound.
    let next_refresh = next["refresh_token"].as_str().unwrap();
    let r = refresh(&bridge, native, next_refresh, None).await;
    assert_eq!(error_of(r).await, (400, "invalid_grant".into()));
    let r = refresh(
        &bridge,
        native,
        next_refresh,
        Some(&key.proof("POST", &url)),
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn a_confidential_clients_refresh_token_is_not_bound(setup: Setup) {
    let bridge = Bridge::start(with_clients(setup)).await;
    let key = Key::es256();
    let caller = Caller::Secret(REFRESH.0, REFRESH.1);
    let tokens = bound_tokens(&bridge, caller, "openid offline_access", &key).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");
    let described = introspect(&bridge, caller, refresh_token).await;
    assert_eq!(described["active"], true);
    assert!(described.get("cnf").is_none(), "{described}");

    let r = refresh(&bridge, caller, refresh_token, None).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["token_type"], "Bearer");
    let token = next["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo(&bridge, &format!("Bearer {token}"), None)
            .await
            .status(),
        200
    );
    // A refresh with a proof binds its access token to that key.
    let other = Key::ed25519();
    let proof = other.proof("POST", &bridge.url("/token"));
    let r = refresh(
        &bridge,
        caller,
        next["refresh_token"].as_str().unwrap(),
        Some(&proof),
    )
    .await;
    let last: Value = r.json().await.unwrap();
    assert_eq!(last["token_type"], "DPoP");
    let described = introspect(&bridge, caller, last["access_token"].as_str().unwrap()).await;
    assert_eq!(described["cnf"]["jkt"], other.thumbprint());
}

/// A refresh token retried within `tokens.refresh_reuse_grace_secs` gets
/// the same answer again only with a proof by its key; shown without one it
/// is a reuse, which ends its family.
async fn a_bound_refresh_token_retried_within_the_grace_window_still_needs_its_key(
    mut setup: Setup,
) {
    setup.refresh_grace_secs = 30;
    let bridge = Bridge::start(with_clients(setup)).await;
    let key = Key::es256();
    let native = Caller::Public(NATIVE);
    let url = bridge.url("/token");
    let tokens = bound_tokens(&bridge, native, "openid offline_access", &key).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let r = refresh(
        &bridge,
        native,
        refresh_token,
        Some(&key.proof("POST", &url)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();

    // The client itself, retrying, gets the same answer again.
    let r = refresh(
        &bridge,
        native,
        refresh_token,
        Some(&key.proof("POST", &url)),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["refresh_token"], next["refresh_token"]);

    refused_without_its_key(&bridge, native, refresh_token, Key::es256()).await;
    let access = introspect(&bridge, native, next["access_token"].as_str().unwrap()).await;
    assert_eq!(access["active"], false, "the family ended: {access}");
}

crate::on_both_stores!(
    introspection_shows_the_binding_as_cnf_jkt,
    a_proof_is_accepted_once,
    a_public_clients_refresh_token_is_bound_to_its_key,
    a_confidential_clients_refresh_token_is_not_bound,
    a_bound_refresh_token_retried_within_the_grace_window_still_needs_its_key,
);

/// The test's own thumbprint against RFC 7638 §3.1's example.
#[test]
fn the_tests_thumbprint_gives_rfc7638s_example() {
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

/// A proof is spent (its `jti` stored) only for a live token bound to its
/// key: userinfo with a made-up token and a valid proof adds no key to Redis,
/// while the same with a real bound token adds the proof's one.
#[tokio::test(flavor = "multi_thread")]
async fn a_proof_with_a_made_up_token_writes_nothing() {
    let server = common::redis_server::RedisServer::start();
    let bridge = Bridge::start(with_clients(Setup {
        redis_url: Some(server.url.clone()),
        ..Setup::default()
    }))
    .await;
    let key = Key::es256();
    let tokens = bound_tokens(&bridge, BASIC_CALLER, "openid", &key).await;
    let access_token = tokens["access_token"].as_str().unwrap();
    let redis = ::redis::Client::open(server.url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let mut keys = async || {
        ::redis::cmd("DBSIZE")
            .query_async::<i64>(&mut conn)
            .await
            .unwrap()
    };
    let before = keys().await;
    for made_up in [
        "not-a-token",
        "a-made-up-token-of-a-plausible-length-000000",
    ] {
        let r = userinfo_with_proof(&bridge, made_up, &key).await;
        assert_eq!(r.status(), 401);
        assert_dpop_challenge(&r, "invalid_token");
    }
    assert_eq!(keys().await, before, "nothing written for made-up tokens");
    let r = userinfo_with_proof(&bridge, access_token, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(keys().await, before + 1, "the live token's proof is spent");
}
