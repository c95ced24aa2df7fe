//! Pairwise subject identifiers (OIDC Core §8.1). An application registered
//! with `subject_type = "pairwise"` knows each person by a `sub` of its
//! sector's own — base64url(HMAC-SHA256(pairwise_salt, sector "\n" public
//! sub)), recomputed here independently — wherever a `sub` reaches it (ID
//! token, userinfo, introspection, JWT access tokens, logout tokens, the
//! device flow) and wherever it sends one back (`id_token_hint`). The sector
//! is the host of its `sector_identifier_uri`, which must list every redirect
//! URI, else the one host of its redirect URIs; `check-config` and the server
//! refuse what cannot work, naming the key.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::bridge::{
    BASIC, Bridge, POST_LOGOUT_URI, REDIRECT_URI, SIGNING_SECRET, Setup, config_text, free_port,
};
use common::browser::{Browser, ClientAuth, client_request, location, param, token_request};
use common::json_server::JsonServer;
use common::receiver::Receiver;
use common::rp::{discover, library_http};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreSubjectIdentifierType,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyAdditionalClaims, Nonce,
    OAuth2TokenResponse, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use serde_json::{Value, json};
use slack_oidc_bridge::upstream::standin::Signature;
use slack_oidc_bridge::upstream::standin::events::{self, tokens_revoked_event};

const BIN: &str = env!("CARGO_BIN_EXE_slack-oidc-bridge");

/// Exactly the shortest salt accepted (32 characters).
const SALT: &str = "pairwise-salt-for-tests-01234567";
const ANOTHER_SALT: &str = "another-pairwise-salt-for-the-tests-0123";

const ADA: &str = "U0000000001";
const ADA_PUBLIC: &str = "T0000000001:U0000000001";
const GRACE: &str = "U0000000002";
/// An Enterprise Grid person: her public sub names the enterprise.
const KATHERINE: &str = "W0000000003";
const KATHERINE_PUBLIC: &str = "E0000000001:W0000000003";

/// The host of the harness's `REDIRECT_URI`: the sector of a pairwise
/// client registered with it.
const LOOPBACK_SECTOR: &str = "127.0.0.1";

type Credentials = (&'static str, &'static str);

/// Pairwise, on `REDIRECT_URI`. The harness registers six clients before
/// the ones a test adds: the first added is `clients[6]`.
const PAIRWISE: Credentials = ("app-pairwise", "pairwise-secret-0123456789abcdef0123456789");
/// Pairwise, on the same host as `PAIRWISE` with another path.
const SAME_SECTOR: Credentials = (
    "app-pairwise-same",
    "same-sector-secret-0123456789abcdef012345",
);
const SAME_SECTOR_URI: &str = "http://127.0.0.1:9/elsewhere";
/// Pairwise, on another host (never followed: tests read the Location).
const OTHER_SECTOR: Credentials = (
    "app-pairwise-other",
    "other-sector-secret-0123456789abcdef01234",
);
const OTHER_URI: &str = "https://other.example/cb";

const REFRESH_GRANTS: &str = r#"grant_types = ["authorization_code", "refresh_token"]"#;
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

// ---------------------------------------------------------------------------
// Helpers

/// The pairwise `sub`, computed as OIDC Core §8.1 and the bridge's
/// documentation say, without the bridge's code.
fn pairwise_sub(salt: &str, sector: &str, public: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt.as_bytes());
    let tag = hmac::sign(&key, format!("{sector}\n{public}").as_bytes());
    URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// A `[[clients]]` table: a confidential pairwise client.
fn pairwise_client((id, secret): Credentials, redirect_uris: &[&str], extra: &str) -> String {
    let uris = redirect_uris
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = [{uris}]
subject_type = "pairwise"
{extra}
"#
    )
}

fn salt_env(salt: &str) -> Vec<(String, String)> {
    vec![("BRIDGE_PAIRWISE_SALT".into(), salt.into())]
}

/// The harness's clients, `clients` after them, and the salt.
fn pairwise_setup(clients: &str) -> Setup {
    Setup {
        env: salt_env(SALT),
        extra_toml: clients.to_string(),
        ..Setup::default()
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// An authorization code for `client_id` at `redirect_uri`: through Slack
/// as `user` when the browser has no session, else straight from it.
async fn code_for(
    bridge: &Bridge,
    browser: &Browser,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    user: &str,
) -> String {
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "st"),
        ("nonce", "n"),
    ];
    let r = browser.authorize(bridge, &params).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let mut back = location(&r);
    if back.as_str().starts_with(&bridge.standin.base_url) {
        let callback = browser.slack_decide(&back, user).await;
        let r = browser.get(callback.as_str()).await;
        assert_eq!(r.status(), 302, "{:?}", r.text().await);
        back = location(&r);
    }
    assert!(back.as_str().starts_with(redirect_uri), "{back}");
    param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"))
}

/// Signs `user` in to the client and redeems the code: the token response.
async fn tokens_for(
    bridge: &Bridge,
    browser: &Browser,
    client: Credentials,
    redirect_uri: &str,
    scope: &str,
    user: &str,
) -> Value {
    let code = code_for(bridge, browser, client.0, redirect_uri, scope, user).await;
    let r = token_request(
        bridge,
        ClientAuth::Other(client.0, client.1),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
        ],
    )
    .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The `sub` of a token response's ID token, verified against the JWKS.
async fn verified_sub(bridge: &Bridge, tokens: &Value, client_id: &str) -> String {
    let claims = common::browser::verify_id_token(bridge, &s(tokens, "id_token"), client_id).await;
    s(&claims, "sub")
}

/// The `sub` the client gets for `user` (through this browser's session
/// when it has one).
async fn sub_in(
    bridge: &Bridge,
    browser: &Browser,
    client: Credentials,
    redirect_uri: &str,
    user: &str,
) -> String {
    let tokens = tokens_for(bridge, browser, client, redirect_uri, "openid", user).await;
    verified_sub(bridge, &tokens, client.0).await
}

async fn introspect(bridge: &Bridge, client: Credentials, token: &str) -> Value {
    let r = client_request(
        bridge,
        "/introspect",
        ClientAuth::Other(client.0, client.1),
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn userinfo(bridge: &Bridge, access_token: &str) -> Value {
    let r = reqwest::Client::new()
        .get(bridge.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `prompt=none` with this hint: where the bridge sends the browser.
async fn silent_with_hint(bridge: &Bridge, browser: &Browser, hint: &str) -> url::Url {
    let r = browser
        .authorize(
            bridge,
            &[
                ("response_type", "code"),
                ("client_id", PAIRWISE.0),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid"),
                ("state", "st"),
                ("prompt", "none"),
                ("id_token_hint", hint),
            ],
        )
        .await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    location(&r)
}

async fn logout(bridge: &Bridge, browser: &Browser, params: &[(&str, &str)]) -> reqwest::Response {
    let mut url = url::Url::parse(&bridge.url("/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    browser.get(url.as_str()).await
}

/// The claims of a received back-channel logout request, verified against
/// the bridge's keys.
async fn logout_token_claims(bridge: &Bridge, body: &str, client_id: &str) -> Value {
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no logout_token in {body}"));
    let claims = common::browser::verify_id_token(bridge, &token, client_id).await;
    assert!(claims["events"][BACKCHANNEL_EVENT].is_object(), "{claims}");
    claims
}

fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A config file as the harness writes it (upstream unreachable: only
/// loading and the sector check run), `top` before its tables and
/// `clients` after them.
struct ConfigFile {
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl ConfigFile {
    fn new(top: &str, clients: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let setup = Setup {
            extra_toml: clients.to_string(),
            ..Setup::default()
        };
        let text = config_text(
            &format!("http://127.0.0.1:{port}"),
            port,
            "http://127.0.0.1:9",
            &setup,
            &dir,
        );
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, format!("{top}\n{text}")).unwrap();
        ConfigFile { dir, path }
    }

    fn command(&self, verb: &str, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args([verb, "--config", self.path.to_str().unwrap()])
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("BRIDGE_PAIRWISE_SALT")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// `check-config`: whether it passed, and what it printed.
    fn check(&self, env: &[(&str, &str)]) -> (bool, String) {
        let out = self
            .command("check-config", env)
            .output()
            .expect("the binary runs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `serve`, expected to stop by itself: whether it exited successfully,
    /// and what it printed.
    async fn serve_until_it_stops(&self, env: &[(&str, &str)]) -> (bool, String) {
        let log = self.dir.path().join("serve.log");
        let mut child = self
            .command("serve", env)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the binary runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the bridge kept running: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (
            status.success(),
            std::fs::read_to_string(&log).unwrap_or_default(),
        )
    }
}

/// The bridge's server process started again on its config file, keys
/// and port, with a given `BRIDGE_PAIRWISE_SALT`; killed on drop.
struct Restarted {
    child: Child,
}

impl Restarted {
    /// Kills the running server (the harness's, or `previous`), waits until
    /// its port is free, starts the server again with `salt`.
    async fn start(bridge: &Bridge, previous: Option<Restarted>, salt: &str) -> Restarted {
        match previous {
            Some(previous) => drop(previous),
            None => {
                let killed = Command::new("kill")
                    .args(["-KILL", &bridge.pid().to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
            }
        }
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while http.get(bridge.url("/healthz")).send().await.is_ok() {
            assert!(Instant::now() < deadline, "the old server still answers");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = bridge.dir.path().join("restarted.log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&bridge.config_path)
            .current_dir(bridge.dir.path())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("BRIDGE_PAIRWISE_SALT", salt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the bridge binary runs");
        let restarted = Restarted { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(bridge.url("/healthz")).send().await
                && r.status() == 200
            {
                return restarted;
            }
            assert!(
                Instant::now() < deadline,
                "the restarted bridge did not become healthy: {}",
                read(&log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Scenarios

/// A whole sign-in driven by the `openidconnect` library for a pairwise
/// client: the verified ID token names the person by the pairwise sub, and
/// userinfo (which the library checks against the ID token) and
/// introspection of the access and refresh tokens say the same.
#[tokio::test(flavor = "multi_thread")]
async fn the_openidconnect_library_gets_the_pairwise_sub_and_userinfo_and_introspection_agree() {
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        REFRESH_GRANTS,
    )))
    .await;
    let http = library_http();
    let client = CoreClient::from_provider_metadata(
        discover(&bridge).await,
        ClientId::new(PAIRWISE.0.into()),
        Some(ClientSecret::new(PAIRWISE.1.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
    .set_auth_type(AuthType::BasicAuth);
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .url();

    let browser = Browser::new();
    let r = browser.get(authorize_url.as_str()).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let callback = browser.slack_decide(&location(&r), ADA).await;
    let r = browser.get(callback.as_str()).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let back = location(&r);
    assert_eq!(
        param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("discovery gave a token endpoint")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect's code exchange fails: {e:?}"));
    let claims = tokens
        .id_token()
        .expect("an id_token")
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap_or_else(|e| panic!("openidconnect rejects the ID token: {e:?}"));
    let sub = claims.subject().as_str().to_string();
    assert_ne!(sub, ADA_PUBLIC, "not the public sub");
    assert_eq!(sub, pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC));
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));

    // The library refuses a userinfo answer whose sub is not the expected one.
    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("discovery gave a userinfo endpoint")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect rejects the userinfo answer: {e:?}"));
    assert_eq!(info.subject().as_str(), sub);

    let refresh = tokens.refresh_token().expect("offline_access was granted");
    for (token, token_type) in [
        (tokens.access_token().secret(), "Bearer"),
        (refresh.secret(), "refresh_token"),
    ] {
        let answer = introspect(&bridge, PAIRWISE, token).await;
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["token_type"], token_type);
        assert_eq!(answer["sub"], sub.as_str(), "{token_type}: {answer}");
    }
}

/// Two pairwise clients on one host (different paths) know a person by
/// one sub; a pairwise client on another host by another; a public client
/// by the public one. Each is the HMAC of its sector and the public sub,
/// for a workspace person and for a Grid person.
#[tokio::test(flavor = "multi_thread")]
async fn one_sector_shares_a_pairwise_sub_that_other_sectors_and_public_clients_do_not_get() {
    let clients = [
        pairwise_client(PAIRWISE, &[REDIRECT_URI], ""),
        pairwise_client(SAME_SECTOR, &[SAME_SECTOR_URI], ""),
        pairwise_client(OTHER_SECTOR, &[OTHER_URI], ""),
    ]
    .concat();
    let bridge = Bridge::start(pairwise_setup(&clients)).await;
    for (user, public) in [(ADA, ADA_PUBLIC), (KATHERINE, KATHERINE_PUBLIC)] {
        // Through Slack for the public client, then through the session.
        let browser = Browser::new();
        assert_eq!(
            sub_in(&bridge, &browser, BASIC, REDIRECT_URI, user).await,
            public,
            "the public client gets the public sub"
        );
        let here = sub_in(&bridge, &browser, PAIRWISE, REDIRECT_URI, user).await;
        let same = sub_in(&bridge, &browser, SAME_SECTOR, SAME_SECTOR_URI, user).await;
        let other = sub_in(&bridge, &browser, OTHER_SECTOR, OTHER_URI, user).await;
        assert_eq!(here, pairwise_sub(SALT, LOOPBACK_SECTOR, public), "{user}");
        assert_eq!(same, here, "one sector, one sub: {user}");
        assert_eq!(other, pairwise_sub(SALT, "other.example", public), "{user}");
        assert_ne!(other, here, "another sector, another sub: {user}");
        assert_ne!(here, public);
    }
}

/// The sub does not change from one sign-in or refresh to the next, nor
/// when the server restarts with the same salt; another salt changes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_pairwise_sub_survives_sign_ins_refreshes_and_restarts_and_changes_with_the_salt() {
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        REFRESH_GRANTS,
    )))
    .await;
    let expected = pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC);
    let scope = "openid offline_access";
    let first = tokens_for(&bridge, &Browser::new(), PAIRWISE, REDIRECT_URI, scope, ADA).await;
    assert_eq!(verified_sub(&bridge, &first, PAIRWISE.0).await, expected);
    let second = tokens_for(&bridge, &Browser::new(), PAIRWISE, REDIRECT_URI, scope, ADA).await;
    assert_eq!(
        verified_sub(&bridge, &second, PAIRWISE.0).await,
        expected,
        "a second sign-in"
    );
    let r = token_request(
        &bridge,
        ClientAuth::Other(PAIRWISE.0, PAIRWISE.1),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&first, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    assert_eq!(
        verified_sub(&bridge, &refreshed, PAIRWISE.0).await,
        expected,
        "a refresh"
    );

    let restarted = Restarted::start(&bridge, None, SALT).await;
    let again = tokens_for(
        &bridge,
        &Browser::new(),
        PAIRWISE,
        REDIRECT_URI,
        "openid",
        ADA,
    )
    .await;
    assert_eq!(
        verified_sub(&bridge, &again, PAIRWISE.0).await,
        expected,
        "after a restart with the same salt"
    );

    let _restarted = Restarted::start(&bridge, Some(restarted), ANOTHER_SALT).await;
    let salted = tokens_for(
        &bridge,
        &Browser::new(),
        PAIRWISE,
        REDIRECT_URI,
        "openid",
        ADA,
    )
    .await;
    let other = verified_sub(&bridge, &salted, PAIRWISE.0).await;
    assert_ne!(other, expected, "another salt, another sub");
    assert_eq!(
        other,
        pairwise_sub(ANOTHER_SALT, LOOPBACK_SECTOR, ADA_PUBLIC)
    );
}

/// Two clients on different redirect hosts that name one
/// `sector_identifier_uri` (listing both their redirect URIs) share its
/// host as their sector, and so one sub.
#[tokio::test(flavor = "multi_thread")]
async fn a_sector_identifier_uri_s_host_is_the_sector_of_every_client_naming_it() {
    let document = JsonServer::start(json!([REDIRECT_URI, OTHER_URI])).await;
    // Another host than either redirect URI's: `localhost`.
    let sector_uri = document.url.replace("127.0.0.1", "localhost");
    let named = format!("sector_identifier_uri = \"{sector_uri}\"");
    let clients = [
        pairwise_client(PAIRWISE, &[REDIRECT_URI], &named),
        pairwise_client(OTHER_SECTOR, &[OTHER_URI], &named),
    ]
    .concat();
    let bridge = Bridge::start(pairwise_setup(&clients)).await;
    assert!(document.gets() >= 1, "the bridge read the sector's list");

    let browser = Browser::new();
    let here = sub_in(&bridge, &browser, PAIRWISE, REDIRECT_URI, ADA).await;
    let there = sub_in(&bridge, &browser, OTHER_SECTOR, OTHER_URI, ADA).await;
    assert_eq!(here, there, "one sector URI, one sector");
    assert_eq!(here, pairwise_sub(SALT, "localhost", ADA_PUBLIC));
    assert_ne!(
        here,
        pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC),
        "not the redirect URI's host"
    );
}

/// A `sector_identifier_uri` that does not list every redirect URI of its
/// client (or is no JSON array, or cannot be read) fails `check-config` and
/// stops the server at start, naming the key; once it lists them all,
/// `check-config` passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_sector_identifier_uri_not_listing_every_redirect_uri_fails_check_config_and_the_start() {
    let document = JsonServer::start(json!([REDIRECT_URI])).await;
    let config = ConfigFile::new(
        "",
        &pairwise_client(
            PAIRWISE,
            &[REDIRECT_URI, OTHER_URI],
            &format!("sector_identifier_uri = \"{}\"", document.url),
        ),
    );
    let env = [("BRIDGE_PAIRWISE_SALT", SALT)];
    let key = "clients[6].sector_identifier_uri";

    let (ok, out) = config.check(&env);
    assert!(!ok, "check-config refuses: {out}");
    assert!(
        out.contains(key) && out.contains(OTHER_URI),
        "names the key and the missing redirect URI: {out}"
    );
    let (ok, log) = config.serve_until_it_stops(&env).await;
    assert!(!ok, "the server refuses to start: {log}");
    assert!(
        log.contains(key) && log.contains(OTHER_URI),
        "names the key and the missing redirect URI: {log}"
    );

    document.set(json!({"redirect_uris": [REDIRECT_URI, OTHER_URI]}));
    let (ok, out) = config.check(&env);
    assert!(!ok && out.contains(key), "not a JSON array: {out}");
    document.fail();
    let (ok, out) = config.check(&env);
    assert!(!ok && out.contains(key), "unreadable: {out}");

    document.set(json!([REDIRECT_URI, OTHER_URI, "https://third.example/cb"]));
    let (ok, out) = config.check(&env);
    assert!(ok, "every redirect URI is listed: {out}");
}

/// `check-config` refuses a pairwise client when there is no salt, when it
/// is shorter than 32 characters, and when its redirect URIs are on two
/// hosts without a `sector_identifier_uri` (or that URI is plain http
/// elsewhere than on loopback), naming the key each time.
#[test]
fn check_config_refuses_a_pairwise_client_without_a_salt_with_a_short_salt_or_without_a_sector() {
    let one_host = pairwise_client(PAIRWISE, &[REDIRECT_URI, SAME_SECTOR_URI], "");
    let salt = [("BRIDGE_PAIRWISE_SALT", SALT)];

    let (ok, out) = ConfigFile::new("", &one_host).check(&salt);
    assert!(ok, "a salt of 32 characters: {out}");
    let (ok, out) = ConfigFile::new(&format!("pairwise_salt = \"{SALT}\""), &one_host).check(&[]);
    assert!(ok, "the salt in the file: {out}");

    let (ok, out) = ConfigFile::new("", &one_host).check(&[]);
    assert!(!ok, "no salt: {out}");
    assert!(
        out.contains("pairwise_salt") && out.contains("clients[6].subject_type"),
        "names the missing key and who needs it: {out}"
    );
    let (ok, out) = ConfigFile::new("", &one_host).check(&[("BRIDGE_PAIRWISE_SALT", &SALT[..31])]);
    assert!(!ok, "a salt of 31 characters: {out}");
    assert!(out.contains("pairwise_salt") && out.contains("32"), "{out}");

    let two_hosts = pairwise_client(PAIRWISE, &[REDIRECT_URI, OTHER_URI], "");
    let (ok, out) = ConfigFile::new("", &two_hosts).check(&salt);
    assert!(!ok, "redirect URIs on two hosts: {out}");
    assert!(out.contains("clients[6].sector_identifier_uri"), "{out}");

    let plain_http = pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI, OTHER_URI],
        "sector_identifier_uri = \"http://sector.example/uris.json\"",
    );
    let (ok, out) = ConfigFile::new("", &plain_http).check(&salt);
    assert!(!ok, "plain http: {out}");
    assert!(
        out.contains("clients[6].sector_identifier_uri") && out.contains("https"),
        "{out}"
    );
}

/// A pairwise client's logout tokens name the person by its pairwise sub:
/// when the person signs out there (the session's clients are told) and
/// when Slack revokes their tokens after that session ended (the token
/// family's client is told by the person's public sub, which must be turned
/// into the client's).
#[tokio::test(flavor = "multi_thread")]
async fn logout_tokens_sent_to_a_pairwise_client_carry_its_pairwise_sub() {
    let receiver = Receiver::start().await;
    let extra = format!(
        r#"{REFRESH_GRANTS}
post_logout_redirect_uris = ["{POST_LOGOUT_URI}"]
backchannel_logout_uri = "{}"
backchannel_logout_session_required = true"#,
        receiver.url
    );
    let mut setup = pairwise_setup(&pairwise_client(PAIRWISE, &[REDIRECT_URI], &extra));
    setup.events = true;
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let tokens = tokens_for(
        &bridge,
        &browser,
        PAIRWISE,
        REDIRECT_URI,
        "openid offline_access",
        ADA,
    )
    .await;
    let id = common::browser::verify_id_token(&bridge, &s(&tokens, "id_token"), PAIRWISE.0).await;
    let sub = s(&id, "sub");
    assert_eq!(sub, pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC));
    let sid = s(&id, "sid");

    let r = logout(
        &bridge,
        &browser,
        &[
            ("id_token_hint", &s(&tokens, "id_token")),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    assert_eq!(r.status(), 302, "signed out at once");
    let bodies = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(bodies.len(), 1, "a logout token for the session");
    let claims = logout_token_claims(&bridge, &bodies[0], PAIRWISE.0).await;
    assert_eq!(claims["sub"], sub.as_str(), "{claims}");
    assert_eq!(claims["sid"], sid.as_str());

    // The refresh token's family outlived the session; Slack ends it.
    bridge.standin.control.revoke_user_tokens(ADA);
    let r = events::send_event(
        &bridge.url("/slack/events"),
        SIGNING_SECRET,
        &tokens_revoked_event("T0000000001", &[ADA]),
        Signature::Good,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let bodies = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(bodies.len(), 2, "a logout token for the token family");
    let claims = logout_token_claims(&bridge, &bodies[1], PAIRWISE.0).await;
    assert_eq!(claims["sub"], sub.as_str(), "{claims}");
}

/// An `id_token_hint` names the person by the client's sub: at
/// `/authorize` with `prompt=none`, the pairwise hint of the session's
/// person reuses the session and someone else's gets `login_required`; at
/// `/logout`, someone else's gets the confirmation page and the person's
/// own signs out at once.
#[tokio::test(flavor = "multi_thread")]
async fn an_id_token_hint_is_matched_by_its_pairwise_sub_at_authorize_and_at_logout() {
    let extra = format!("post_logout_redirect_uris = [\"{POST_LOGOUT_URI}\"]");
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        &extra,
    )))
    .await;
    let ada = Browser::new();
    let ada_tokens = tokens_for(&bridge, &ada, PAIRWISE, REDIRECT_URI, "openid", ADA).await;
    let ada_hint = s(&ada_tokens, "id_token");
    let grace_tokens = tokens_for(
        &bridge,
        &Browser::new(),
        PAIRWISE,
        REDIRECT_URI,
        "openid",
        GRACE,
    )
    .await;
    let grace_hint = s(&grace_tokens, "id_token");

    let back = silent_with_hint(&bridge, &ada, &ada_hint).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("the session is reused: {back}"));
    let r = token_request(
        &bridge,
        ClientAuth::Other(PAIRWISE.0, PAIRWISE.1),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let silent: Value = r.json().await.unwrap();
    assert_eq!(
        verified_sub(&bridge, &silent, PAIRWISE.0).await,
        pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC)
    );

    let back = silent_with_hint(&bridge, &ada, &grace_hint).await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("login_required"),
        "the hint names someone else: {back}"
    );

    let r = logout(
        &bridge,
        &ada,
        &[
            ("id_token_hint", &grace_hint),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "the confirmation page");
    assert!(r.headers().get("location").is_none());
    let back = silent_with_hint(&bridge, &ada, &ada_hint).await;
    assert!(param(&back, "code").is_some(), "still signed in: {back}");

    let r = logout(
        &bridge,
        &ada,
        &[
            ("id_token_hint", &ada_hint),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    assert_eq!(r.status(), 302, "signed out at once");
    assert!(location(&r).as_str().starts_with(POST_LOGOUT_URI));
    let back = silent_with_hint(&bridge, &ada, &ada_hint).await;
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
}

/// A pairwise client registered for RFC 9068 access tokens gets them with
/// its pairwise sub; userinfo and introspection of that token agree.
#[tokio::test(flavor = "multi_thread")]
async fn a_pairwise_client_s_jwt_access_token_carries_its_pairwise_sub() {
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        "access_token_format = \"jwt\"",
    )))
    .await;
    let tokens = tokens_for(
        &bridge,
        &Browser::new(),
        PAIRWISE,
        REDIRECT_URI,
        "openid",
        ADA,
    )
    .await;
    let expected = pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC);
    let access = s(&tokens, "access_token");
    let header = jsonwebtoken::decode_header(&access).expect("a JWT access token");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = common::browser::verify_id_token(&bridge, &access, PAIRWISE.0).await;
    assert_eq!(claims["sub"], expected.as_str(), "{claims}");
    assert_eq!(verified_sub(&bridge, &tokens, PAIRWISE.0).await, expected);
    assert_eq!(userinfo(&bridge, &access).await["sub"], expected.as_str());
    assert_eq!(
        introspect(&bridge, PAIRWISE, &access).await["sub"],
        expected.as_str()
    );
}

/// The device flow (RFC 8628) gives a pairwise client the same pairwise
/// sub as its code flow, in the ID token and at userinfo.
#[tokio::test(flavor = "multi_thread")]
async fn the_device_flow_gives_a_pairwise_client_its_pairwise_sub() {
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        &format!("grant_types = [\"authorization_code\", \"{DEVICE_GRANT}\"]"),
    )))
    .await;
    let expected = pairwise_sub(SALT, LOOPBACK_SECTOR, ADA_PUBLIC);
    let http = reqwest::Client::new();
    let r = http
        .post(bridge.url("/device_authorization"))
        .basic_auth(PAIRWISE.0, Some(PAIRWISE.1))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();

    let browser = Browser::new();
    let r = browser
        .http
        .post(bridge.url("/device"))
        .form(&[("user_code", s(&started, "user_code"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "to Slack: {:?}", r.text().await);
    let callback = browser.slack_decide(&location(&r), ADA).await;
    let r = browser.get(callback.as_str()).await;
    assert_eq!(r.status(), 200, "the confirmation page");
    let html = r.text().await.unwrap();
    let r = browser
        .http
        .post(bridge.url("/device/confirm"))
        .form(&[
            ("token", hidden_value(&html, "token").as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = http
        .post(bridge.url("/token"))
        .basic_auth(PAIRWISE.0, Some(PAIRWISE.1))
        .form(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", &s(&started, "device_code")),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(verified_sub(&bridge, &tokens, PAIRWISE.0).await, expected);
    assert_eq!(
        userinfo(&bridge, &s(&tokens, "access_token")).await["sub"],
        expected.as_str()
    );
    // The code flow, through the session the device flow started.
    assert_eq!(
        sub_in(&bridge, &browser, PAIRWISE, REDIRECT_URI, ADA).await,
        expected
    );
}

/// Discovery lists both subject types, and the relying-party library reads
/// them.
#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_the_public_and_pairwise_subject_types() {
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        "",
    )))
    .await;
    let doc: Value = reqwest::get(bridge.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["subject_types_supported"],
        json!(["public", "pairwise"])
    );
    let metadata = discover(&bridge).await;
    assert_eq!(
        metadata.subject_types_supported(),
        &vec![
            CoreSubjectIdentifierType::Public,
            CoreSubjectIdentifierType::Pairwise
        ]
    );
}

/// Slack's user id would give every application the public sub back: a
/// pairwise client is not shown it (ID token, userinfo), a public one is;
/// the workspace stays, it names no one.
#[tokio::test(flavor = "multi_thread")]
async fn a_pairwise_client_is_not_shown_slack_s_user_id() {
    const USER_ID: &str = "https://slack.com/user_id";
    const TEAM_ID: &str = "https://slack.com/team_id";
    let bridge = Bridge::start(pairwise_setup(&pairwise_client(
        PAIRWISE,
        &[REDIRECT_URI],
        "",
    )))
    .await;
    let browser = Browser::new();
    let pairwise = tokens_for(
        &bridge,
        &browser,
        PAIRWISE,
        REDIRECT_URI,
        "openid profile",
        ADA,
    )
    .await;
    let public = tokens_for(
        &bridge,
        &browser,
        BASIC,
        REDIRECT_URI,
        "openid profile",
        ADA,
    )
    .await;
    let id_token = |tokens: &Value| common::browser::jwt_claims(&s(tokens, "id_token"));
    for claims in [
        id_token(&pairwise),
        userinfo(&bridge, &s(&pairwise, "access_token")).await,
    ] {
        assert!(claims.get(USER_ID).is_none(), "{claims}");
        assert_eq!(claims[TEAM_ID], "T0000000001", "{claims}");
    }
    for claims in [
        id_token(&public),
        userinfo(&bridge, &s(&public, "access_token")).await,
    ] {
        assert_eq!(claims[USER_ID], ADA, "{claims}");
    }
}
