//! A person's browser (cookies, no automatic redirects) and an application's
//! back channel, for driving sign-ins step by step.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::bridge::{BASIC, Bridge, POST, PUBLIC, REDIRECT_URI};

pub struct Browser {
    pub http: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    /// GET {bridge}/authorize with these parameters.
    pub async fn authorize(&self, bridge: &Bridge, params: &[(&str, &str)]) -> reqwest::Response {
        let mut url = Url::parse(&bridge.url("/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        self.get(url.as_str()).await
    }

    /// Starts a sign-in and returns Slack's authorize URL the bridge sent us to.
    pub async fn to_slack(&self, bridge: &Bridge, params: &[(&str, &str)]) -> Url {
        let r = self.authorize(bridge, params).await;
        assert_eq!(
            r.status(),
            302,
            "authorize should redirect to Slack: {:?}",
            r.text().await
        );
        let slack = location(&r);
        assert!(
            slack.as_str().starts_with(&bridge.standin.base_url),
            "{slack}"
        );
        slack
    }

    /// At Slack: loads the picker page, then picks `user` (or `deny`).
    /// Returns the bridge callback URL Slack redirects to.
    pub async fn slack_decide(&self, slack: &Url, user: &str) -> Url {
        let page = self.get(slack.as_str()).await;
        assert_eq!(page.status(), 200, "Slack's picker page");
        let mut form: Vec<(String, String)> = slack.query_pairs().into_owned().collect();
        form.push(("user".into(), user.into()));
        let decide = slack.join("/openid/connect/authorize/decide").unwrap();
        let r = self.http.post(decide).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 302, "Slack's decision redirects");
        location(&r)
    }

    /// The whole front channel: returns where the bridge finally sends the
    /// browser (the application's redirect URI with code or error).
    pub async fn sign_in(&self, bridge: &Bridge, params: &[(&str, &str)], user: &str) -> Url {
        let slack = self.to_slack(bridge, params).await;
        let callback = self.slack_decide(&slack, user).await;
        let r = self.get(callback.as_str()).await;
        assert_eq!(
            r.status(),
            302,
            "callback should redirect to the application: {}",
            r.text().await.unwrap_or_default()
        );
        location(&r)
    }
}

pub fn location(r: &reqwest::Response) -> Url {
    let loc = r
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap();
    Url::parse(loc).unwrap()
}

pub fn param(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

/// Authorization request parameters for one of the test clients.
pub fn auth_params<'a>(
    client_id: &'a str,
    state: &'a str,
    nonce: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid email profile"),
        ("state", state),
        ("nonce", nonce),
    ]
}

#[derive(Clone, Copy)]
pub enum ClientAuth {
    Basic,
    Post,
    Public,
    /// `client_secret_basic` with another registered client's credentials.
    Other(&'static str, &'static str),
}

impl ClientAuth {
    pub fn client_id(self) -> &'static str {
        match self {
            ClientAuth::Basic => BASIC.0,
            ClientAuth::Post => POST.0,
            ClientAuth::Public => PUBLIC,
            ClientAuth::Other(id, _) => id,
        }
    }
}

/// POST {bridge}/token with the given client authentication and form.
pub async fn token_request(
    bridge: &Bridge,
    auth: ClientAuth,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client_request(bridge, "/token", auth, form).await
}

/// POST to a client-authenticated endpoint (token, revoke, introspect).
pub async fn client_request(
    bridge: &Bridge,
    path: &str,
    auth: ClientAuth,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let http = reqwest::Client::new();
    let mut form: Vec<(&str, &str)> = form.to_vec();
    let mut req = http.post(bridge.url(path));
    match auth {
        ClientAuth::Basic => req = req.basic_auth(BASIC.0, Some(BASIC.1)),
        ClientAuth::Post => {
            form.push(("client_id", POST.0));
            form.push(("client_secret", POST.1));
        }
        ClientAuth::Public => form.push(("client_id", PUBLIC)),
        ClientAuth::Other(id, secret) => req = req.basic_auth(id, Some(secret)),
    }
    req.form(&form).send().await.unwrap()
}

/// Redeems a code with the usual parameters.
pub async fn redeem(
    bridge: &Bridge,
    auth: ClientAuth,
    code: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    token_request(bridge, auth, &form).await
}

/// Decodes a JWT's payload without verifying it (tests verify separately).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Verifies an ID token against the bridge's published JWKS with jsonwebtoken.
pub async fn verify_id_token(bridge: &Bridge, jwt: &str, audience: &str) -> serde_json::Value {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(bridge.url("/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.expect("the ID token names its key");
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[bridge.base.as_str()]);
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
        .expect("the ID token verifies")
        .claims
}

/// A whole sign-in and redemption for a confidential client; returns the
/// token response.
pub async fn sign_in_and_redeem(
    bridge: &Bridge,
    browser: &Browser,
    auth: ClientAuth,
    scope: &str,
    user: &str,
) -> serde_json::Value {
    let mut params = auth_params(auth.client_id(), "st", "n");
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", scope));
    let back = browser.sign_in(bridge, &params, user).await;
    let code = param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    let r = redeem(bridge, auth, &code, None).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The token response's ID token claims (unverified).
pub fn id_claims(tokens: &serde_json::Value) -> serde_json::Value {
    jwt_claims(tokens["id_token"].as_str().expect("an id_token"))
}
