//! Signs in the way a bank or a public-sector application does (the FAPI 2.0
//! kind): no shared secret, nothing to tamper with in the browser, tokens a
//! thief cannot replay, a `sub` no other application shares.
//!
//! ```sh
//! cargo run -- serve --config config/dev.toml   # the bridge and its Slack stand-in
//! cargo run --example high_assurance             # this: the demo-bank client of config/dev.toml
//! ```
//!
//! What it does, in order:
//! 1. makes an ES256 key to authenticate with (`private_key_jwt`) and an
//!    Ed25519 key for DPoP, and publishes the first at its own `jwks_uri`
//!    (`http://127.0.0.1:18997/jwks.json`, where the bridge fetches it);
//! 2. pushes its authorization request (PAR), authenticated by a signed
//!    assertion, with a DPoP proof that binds the code to its DPoP key;
//! 3. prints the address to open in a browser (the request is only a
//!    `request_uri` there) and waits for the redirect back;
//! 4. redeems the code through the `openidconnect` crate, with a new
//!    assertion and a DPoP proof, and has it verify the ID token;
//! 5. calls userinfo with `Authorization: DPoP` and a proof carrying `ath`,
//!    then shows that the same token presented as a bearer token is refused.
//!
//! Options: `--issuer`, `--client-id`, `--listen` (where the callback and
//! the `jwks_uri` are served; the client's registration must name them).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, TokenResponse,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Parser, Debug)]
#[command(about = "Signs in through slack-oidc-bridge with private_key_jwt, PAR and DPoP")]
struct Options {
    /// The bridge's issuer URL.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    issuer: String,
    /// A client registered with private_key_jwt and this jwks_uri.
    #[arg(long, default_value = "demo-bank")]
    client_id: String,
    /// Where the callback (`/cb`) and the `jwks_uri` (`/jwks.json`) are served.
    #[arg(long, default_value = "127.0.0.1:18997")]
    listen: SocketAddr,
    /// Give up waiting for the browser after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[tokio::main]
async fn main() -> ExitCode {
    let opts = Options::parse();
    match run(&opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(opts: &Options) -> Result<(), String> {
    let client_key = ClientKey::generate();
    let dpop_key = Arc::new(DpopKey::generate());
    let redirect_uri = format!("http://{}/cb", opts.listen);
    let (callback, returned) = oneshot::channel();
    serve(opts.listen, client_key.jwks(), callback)?;
    println!(
        "Publishing the client's public key at http://{}/jwks.json (kid {})",
        opts.listen, client_key.kid
    );

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let discovery: Value = http
        .get(format!("{}/.well-known/openid-configuration", opts.issuer))
        .send()
        .await
        .map_err(|e| format!("discovery: {e}"))?
        .json()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let par_endpoint = discovery["pushed_authorization_request_endpoint"]
        .as_str()
        .ok_or("the bridge does not advertise PAR")?
        .to_string();

    // 2. The pushed request: authenticated, DPoP-bound, nothing left for the
    // browser to carry but its handle.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = random();
    let nonce = random();
    let pushed = http
        .post(&par_endpoint)
        .header("DPoP", dpop_key.proof("POST", &par_endpoint, None))
        .form(&[
            ("client_id", opts.client_id.as_str()),
            ("response_type", "code"),
            ("scope", "openid profile email"),
            ("redirect_uri", &redirect_uri),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("client_assertion_type", JWT_BEARER),
            (
                "client_assertion",
                &client_key.assertion(&opts.client_id, &opts.issuer),
            ),
        ])
        .send()
        .await
        .map_err(|e| format!("PAR: {e}"))?;
    let status = pushed.status();
    let pushed: Value = pushed.json().await.map_err(|e| format!("PAR: {e}"))?;
    if status != 201 {
        return Err(format!(
            "the pushed request was refused ({status}): {pushed}"
        ));
    }
    let request_uri = pushed["request_uri"].as_str().ok_or("no request_uri")?;
    let mut authorize = url::Url::parse(
        discovery["authorization_endpoint"]
            .as_str()
            .ok_or("no authorization_endpoint")?,
    )
    .map_err(|e| e.to_string())?;
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &opts.client_id)
        .append_pair("request_uri", request_uri);
    println!("\nOpen this in a browser and sign in:\n\n    {authorize}\n");

    // 3. Back from the browser.
    let query = tokio::time::timeout(Duration::from_secs(opts.timeout_secs), returned)
        .await
        .map_err(|_| "nobody came back from the browser in time")?
        .map_err(|_| "the callback server stopped")?;
    if let Some(error) = query.get("error") {
        return Err(format!(
            "the bridge answered {error}: {}",
            query
                .get("error_description")
                .map(String::as_str)
                .unwrap_or("")
        ));
    }
    if query.get("state") != Some(&state) {
        return Err("the state that came back is not ours".into());
    }
    if query.get("iss") != Some(&opts.issuer) {
        return Err("the iss that came back is not the bridge's (RFC 9207)".into());
    }
    let code = query.get("code").ok_or("no code came back")?;

    // 4. The code exchange, through the library: assertion and DPoP proof.
    let issuer = IssuerUrl::new(opts.issuer.clone()).map_err(|e| e.to_string())?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &with_dpop(&http, &dpop_key))
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(opts.client_id.clone()), None)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.clone()).map_err(|e| e.to_string())?)
            .set_auth_type(AuthType::RequestBody);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .map_err(|e| e.to_string())?
        .set_pkce_verifier(verifier)
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param(
            "client_assertion",
            client_key.assertion(&opts.client_id, &opts.issuer),
        )
        .request_async(&with_dpop(&http, &dpop_key))
        .await
        .map_err(|e| format!("the code exchange failed: {e:?}"))?;
    let token_type = tokens.token_type().as_ref().to_string();
    let id_token = tokens.id_token().ok_or("no ID token")?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.clone()))
        .map_err(|e| format!("the ID token does not verify: {e}"))?;
    println!(
        "Tokens issued (token_type {token_type}); the ID token verified. Its sub, for this application only: {}",
        claims.subject().as_str()
    );

    // 5. Userinfo with the DPoP scheme, then the same token as a bearer token.
    let access_token = tokens.access_token().secret();
    let userinfo_endpoint = discovery["userinfo_endpoint"]
        .as_str()
        .ok_or("no userinfo_endpoint")?;
    let answer = http
        .get(userinfo_endpoint)
        .header("Authorization", format!("DPoP {access_token}"))
        .header(
            "DPoP",
            dpop_key.proof("GET", userinfo_endpoint, Some(access_token)),
        )
        .send()
        .await
        .map_err(|e| format!("userinfo: {e}"))?;
    println!("\nUserinfo with the DPoP scheme: {}", answer.status());
    let userinfo: Value = answer.json().await.map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&userinfo).map_err(|e| e.to_string())?
    );
    let stolen = http
        .get(userinfo_endpoint)
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| format!("userinfo: {e}"))?;
    println!(
        "\nThe same token as a bearer token (a thief without the key): {}\n    WWW-Authenticate: {}",
        stolen.status(),
        stolen
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    );
    Ok(())
}

type Query = std::collections::HashMap<String, String>;
type Callback = Mutex<Option<oneshot::Sender<Query>>>;

/// The callback and the `jwks_uri`, until the first callback arrives.
fn serve(listen: SocketAddr, jwks: Value, callback: oneshot::Sender<Query>) -> Result<(), String> {
    let callback = web::Data::new(Mutex::new(Some(callback)));
    let jwks = web::Data::new(jwks);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(callback.clone())
            .app_data(jwks.clone())
            .route(
                "/jwks.json",
                web::get().to(|jwks: web::Data<Value>| async move {
                    HttpResponse::Ok().json(jwks.get_ref())
                }),
            )
            .route(
                "/cb",
                web::get().to(
                    |query: web::Query<Query>, callback: web::Data<Callback>| async move {
                        if let Some(sender) = callback.lock().unwrap().take() {
                            let _ = sender.send(query.into_inner());
                        }
                        HttpResponse::Ok()
                            .content_type("text/plain; charset=utf-8")
                            .body("Signed in: go back to the terminal.")
                    },
                ),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(listen)
    .map_err(|e| format!("cannot listen on {listen}: {e}"))?
    .run();
    tokio::spawn(server);
    Ok(())
}

/// The library's HTTP client with a fresh DPoP proof on every POST (the
/// token endpoint): htm and htu are the request's own.
fn with_dpop(
    http: &reqwest::Client,
    key: &Arc<DpopKey>,
) -> impl Fn(openidconnect::HttpRequest) -> HttpFuture {
    let http = http.clone();
    let key = key.clone();
    move |request: openidconnect::HttpRequest| {
        let http = http.clone();
        let key = key.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            let mut builder = http
                .request(parts.method.clone(), &url)
                .headers(parts.headers);
            if parts.method == reqwest::Method::POST {
                builder = builder.header("DPoP", key.proof("POST", &url, None));
            }
            let response = builder.body(body).send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            let mut out = openidconnect::HttpResponse::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

type HttpFuture =
    Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send>>;

/// The client's authentication key (ES256), which only it holds.
struct ClientKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl ClientKey {
    fn generate() -> ClientKey {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .expect("key generation");
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .expect("a fresh key parses");
        ClientKey {
            pair,
            kid: random()[..12].to_string(),
        }
    }

    fn jwks(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
    }

    /// RFC 7523: iss = sub = the client, aud = the issuer, one minute, once.
    fn assertion(&self, client_id: &str, issuer: &str) -> String {
        let now = now();
        jws(
            &json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            &json!({
                "iss": client_id, "sub": client_id, "aud": issuer,
                "iat": now, "exp": now + 60, "jti": random(),
            }),
            |input| {
                self.pair
                    .sign(&SystemRandom::new(), input)
                    .expect("signing")
                    .as_ref()
                    .to_vec()
            },
        )
    }
}

/// The key DPoP proofs are signed with (EdDSA).
struct DpopKey {
    pair: Ed25519KeyPair,
}

impl DpopKey {
    fn generate() -> DpopKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key generation");
        DpopKey {
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses"),
        }
    }

    /// RFC 9449 §4.2: typed, with the public key, for this method and URL;
    /// `ath` when an access token goes with it.
    fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> String {
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
        });
        let mut claims = json!({"jti": random(), "htm": method, "htu": url, "iat": now()});
        if let Some(token) = access_token {
            claims["ath"] = json!(
                URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
            );
        }
        jws(
            &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}),
            &claims,
            |input| self.pair.sign(input).as_ref().to_vec(),
        )
    }
}

fn jws(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn random() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
