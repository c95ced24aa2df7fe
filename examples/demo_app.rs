//! A tiny application that signs people in through the bridge.
//!
//! ```sh
//! cargo run -- serve --config config/dev.toml   # the bridge and its Slack stand-in
//! cargo run --example demo_app                  # this, on http://127.0.0.1:18999
//! ```
//!
//! Open <http://127.0.0.1:18999>, click "Sign in" and pick a test user: the
//! page then shows the claims of the verified ID token. It is the `demo`
//! client of `config/dev.toml`: a confidential client (`client_secret_basic`)
//! that also uses PKCE (S256), checks `state`, `nonce` and `iss`, and has the
//! `openidconnect` crate verify the ID token against the bridge's JWKS.
//!
//! Its single-page mode, <http://127.0.0.1:18999/spa>, is the `demo-spa`
//! client: a static page whose script (`examples/spa/app.js`) runs the whole
//! code flow with PKCE in the browser, with fetch and WebCrypto only, and
//! calls the bridge's token and userinfo endpoints across origins (CORS).
//!
//! Options (flag or environment variable): `--issuer` / `DEMO_ISSUER`,
//! `--listen` / `DEMO_LISTEN` (the redirect URI is `http://{listen}/cb`, which
//! the bridge must have registered), `--client-id` / `DEMO_CLIENT_ID`,
//! `--client-secret` / `DEMO_CLIENT_SECRET`, `--spa-client-id` /
//! `DEMO_SPA_CLIENT_ID` (redirect URI `http://{listen}/spa/cb`, after sign-out
//! `http://{listen}/spa/bye`).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, Client,
    ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdTokenClaims, IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

#[derive(Parser, Debug, Clone)]
#[command(about = "A tiny relying party that signs in through slack-oidc-bridge")]
pub struct Options {
    /// The bridge's issuer URL.
    #[arg(long, env = "DEMO_ISSUER", default_value = "http://127.0.0.1:18080")]
    pub issuer: String,
    /// Where this application listens (loopback only).
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:18999")]
    pub listen: SocketAddr,
    #[arg(long, env = "DEMO_CLIENT_ID", default_value = "demo")]
    pub client_id: String,
    #[arg(
        long,
        env = "DEMO_CLIENT_SECRET",
        default_value = "demo-secret-for-local-development-only"
    )]
    pub client_secret: String,
    /// The public client of the single-page mode (`/spa`).
    #[arg(long, env = "DEMO_SPA_CLIENT_ID", default_value = "demo-spa")]
    pub spa_client_id: String,
}

/// The claims the bridge adds under Slack's names.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlackClaims {
    #[serde(
        rename = "https://slack.com/team_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    team_id: Option<String>,
    #[serde(
        rename = "https://slack.com/team_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    team_name: Option<String>,
    #[serde(
        rename = "https://slack.com/user_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    user_id: Option<String>,
}
impl AdditionalClaims for SlackClaims {}

/// Discovery's `end_session_endpoint` (RP-Initiated Logout), which the core
/// metadata type does not carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogoutMetadata {
    end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for LogoutMetadata {}

type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Tokens = StandardTokenResponse<
    IdTokenFields<
        SlackClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type OidcClient = Client<
    SlackClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type Claims = IdTokenClaims<SlackClaims, CoreGenderClaim>;

/// A sign-in that went to the bridge and has not come back yet.
struct Pending {
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    started: Instant,
}

/// A person signed in here.
struct Session {
    claims: Claims,
    id_token: String,
    started: Instant,
}

struct Demo {
    opts: Options,
    redirect_uri: RedirectUrl,
    http: reqwest::Client,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Session>>,
    style_hash: String,
}

const LOGIN_COOKIE: &str = "demo_login";
const SESSION_COOKIE: &str = "demo_session";
/// A sign-in must come back within this time; both maps are bounded.
const PENDING_TTL: Duration = Duration::from_secs(600);
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const MAX_ENTRIES: usize = 1000;

const STYLE: &str = "body{margin:0;padding:1rem;font-family:system-ui,sans-serif;line-height:1.5;\
background:#eef3f6;color:#17232b}main{max-width:40rem;margin:6vh auto;background:#fff;\
border:1px solid #cfdbe2;border-radius:.75rem;padding:1.5rem}h1{margin-top:0;font-size:1.5rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.4rem .6rem;\
border-top:1px solid #e3eaee;overflow-wrap:anywhere}th{width:9rem;color:#4f6470;font-weight:500}\
pre{background:#f4f7f9;padding:.75rem;overflow:auto;font-size:.85rem}\
.button{display:inline-block;padding:.6rem 1.2rem;border-radius:.5rem;background:#0b6e99;color:#fff;\
text-decoration:none;font-weight:600;margin:0 .5rem .5rem 0}.quiet{background:#e3eaee;color:#17232b}\
.note{color:#4f6470;font-size:.9rem}details{margin:1rem 0}summary{cursor:pointer}\
button.button{border:0;font:inherit;font-weight:600;cursor:pointer}";

/// The single-page mode's script: the whole code flow in the browser.
const SPA_SCRIPT: &str = include_str!("spa/app.js");

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let opts = Options::parse();
    let (addr, server) = start(opts.clone())?;
    println!(
        "demo application on http://{addr} (bridge: {}); open it in a browser",
        opts.issuer
    );
    server.await
}

/// Binds the listen address and returns the server, ready to be awaited or
/// spawned (the browser test runs it in its own process).
pub fn start(opts: Options) -> std::io::Result<(SocketAddr, actix_web::dev::Server)> {
    if !opts.listen.ip().is_loopback() {
        return Err(std::io::Error::other(format!(
            "the demo application only listens on loopback, not {}",
            opts.listen
        )));
    }
    let listener = std::net::TcpListener::bind(opts.listen)?;
    let addr = listener.local_addr()?;
    let redirect_uri =
        RedirectUrl::new(format!("http://{addr}/cb")).map_err(std::io::Error::other)?;
    let demo = web::Data::new(Demo {
        opts,
        redirect_uri,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?,
        pending: Mutex::new(HashMap::new()),
        sessions: Mutex::new(HashMap::new()),
        style_hash: STANDARD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, STYLE.as_bytes()).as_ref(),
        ),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(demo.clone())
            .route("/", web::get().to(home))
            .route("/login", web::get().to(login))
            .route("/cb", web::get().to(callback))
            .route("/logout", web::get().to(logout))
            .route("/bye", web::get().to(bye))
            .route("/spa", web::get().to(spa_page))
            .route("/spa/cb", web::get().to(spa_page))
            .route("/spa/bye", web::get().to(spa_page))
            .route("/spa/app.js", web::get().to(spa_script))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok((addr, server))
}

// ---------------------------------------------------------------- handlers

async fn home(req: HttpRequest, demo: web::Data<Demo>) -> HttpResponse {
    let signed_in = cookie(&req, SESSION_COOKIE).and_then(|id| {
        let sessions = demo.sessions.lock().unwrap();
        sessions.get(&id).map(|s| claims_table(&s.claims))
    });
    let body = match signed_in {
        Some(table) => format!(
            "<h1>Signed in</h1><p>The bridge vouched for this person; the ID token's signature, \
             issuer, audience, nonce and expiry were checked.</p>{table}\
             <p><a class=\"button quiet\" href=\"/logout\">Sign out</a></p>"
        ),
        None => format!(
            "<h1>Demo application</h1><p>This application trusts the bridge at <code>{issuer}</code> \
             to say who you are.</p>\
             <p><a class=\"button\" href=\"/login\">Sign in</a>\
             <a class=\"button quiet\" href=\"/login?ui_locales=fr\">Sign in (pages in French)</a></p>\
             <p class=\"note\">With <code>config/dev.toml</code> the bridge uses its Slack stand-in: \
             pick any test user.</p>\
             <p class=\"note\">The <a href=\"/spa\">single-page mode</a> does the same from the \
             browser alone: a public client, PKCE, and cross-origin calls to the bridge.</p>",
            issuer = esc(&demo.opts.issuer)
        ),
    };
    page(&demo, StatusCode::OK, "Demo application", &body)
}

#[derive(Deserialize)]
struct LoginQuery {
    ui_locales: Option<String>,
}

/// Sends the browser to the bridge with a fresh state, nonce and PKCE pair.
async fn login(demo: web::Data<Demo>, query: web::Query<LoginQuery>) -> HttpResponse {
    let (client, _) = match discover(&demo).await {
        Ok(c) => c,
        Err(e) => return bridge_unreachable(&demo, &e),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    // Only the languages the bridge speaks are passed on.
    if let Some(lang) = query
        .ui_locales
        .as_deref()
        .filter(|l| matches!(*l, "en" | "fr"))
    {
        request = request.add_extra_param("ui_locales", lang.to_string());
    }
    let (url, state, nonce) = request.url();
    let key = random_key();
    {
        let mut pending = demo.pending.lock().unwrap();
        pending.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_ENTRIES {
            return page(
                &demo,
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "<h1>Too many sign-ins in progress</h1><p>Try again in a few minutes.</p>",
            );
        }
        pending.insert(
            key.clone(),
            Pending {
                state,
                nonce,
                verifier,
                started: Instant::now(),
            },
        );
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(new_cookie(LOGIN_COOKIE, key))
        .finish()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The bridge's answer: checks state and iss, redeems the code with the PKCE
/// verifier, verifies the ID token and opens a session here.
async fn callback(
    req: HttpRequest,
    demo: web::Data<Demo>,
    query: Result<web::Query<CallbackQuery>, actix_web::Error>,
) -> HttpResponse {
    let refuse = |why: &str| {
        page(
            &demo,
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            &format!(
                "<h1>Sign-in failed</h1><p>{}</p><p><a class=\"button\" href=\"/\">Back</a></p>",
                esc(why)
            ),
        )
    };
    let Ok(query) = query else {
        return refuse("The answer from the bridge is malformed.");
    };
    let pending = cookie(&req, LOGIN_COOKIE)
        .and_then(|key| demo.pending.lock().unwrap().remove(&key))
        .filter(|p| p.started.elapsed() < PENDING_TTL);
    let Some(pending) = pending else {
        return refuse(
            "No sign-in was started from this browser, or it took too long. Start again.",
        );
    };
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.secret().as_bytes())));
    if !state_ok {
        return refuse("The state parameter does not match the sign-in started here.");
    }
    // RFC 9207: the answer names the issuer it comes from.
    if query.iss.as_deref() != Some(demo.opts.issuer.as_str()) {
        return refuse("The answer does not come from the expected issuer.");
    }
    if let Some(error) = &query.error {
        return refuse(&format!(
            "The bridge answered {error}: {}",
            query
                .error_description
                .as_deref()
                .unwrap_or("no description")
        ));
    }
    let Some(code) = query.code.clone() else {
        return refuse("The answer carries no code.");
    };
    // Fresh discovery: the JWKS then includes any key the bridge rotated in.
    let (client, _) = match discover(&demo).await {
        Ok(c) => c,
        Err(e) => return bridge_unreachable(&demo, &e),
    };
    let http = library_http(demo.http.clone());
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(request) => request.set_pkce_verifier(pending.verifier),
        Err(e) => return refuse(&format!("The bridge has no token endpoint: {e}")),
    };
    let tokens = match exchange.request_async(&http).await {
        Ok(t) => t,
        Err(e) => return refuse(&format!("The code could not be redeemed: {}", describe(&e))),
    };
    let Some(id_token) = tokens.id_token() else {
        return refuse("The token response has no ID token.");
    };
    let verifier = client.id_token_verifier();
    let claims = match id_token.claims(&verifier, &pending.nonce) {
        Ok(c) => c.clone(),
        Err(e) => return refuse(&format!("The ID token does not verify: {e}")),
    };
    if let Some(expected) = claims.access_token_hash() {
        let signing = id_token
            .signing_alg()
            .and_then(|alg| id_token.signing_key(&verifier).map(|key| (alg, key)));
        let matches = signing.ok().and_then(|(alg, key)| {
            AccessTokenHash::from_token(tokens.access_token(), alg, key).ok()
        });
        if matches.as_ref() != Some(expected) {
            return refuse("The ID token's at_hash does not match the access token.");
        }
    }
    let id = random_key();
    {
        let mut sessions = demo.sessions.lock().unwrap();
        sessions.retain(|_, s| s.started.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_ENTRIES {
            sessions.clear();
        }
        sessions.insert(
            id.clone(),
            Session {
                claims,
                id_token: id_token.to_string(),
                started: Instant::now(),
            },
        );
    }
    let mut gone = new_cookie(LOGIN_COOKIE, String::new());
    gone.make_removal();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .cookie(new_cookie(SESSION_COOKIE, id))
        .cookie(gone)
        .finish()
}

/// Ends the session here, then at the bridge (RP-Initiated Logout).
async fn logout(req: HttpRequest, demo: web::Data<Demo>) -> HttpResponse {
    let session =
        cookie(&req, SESSION_COOKIE).and_then(|id| demo.sessions.lock().unwrap().remove(&id));
    let mut gone = new_cookie(SESSION_COOKIE, String::new());
    gone.make_removal();
    let end_session = match (&session, discover(&demo).await) {
        (Some(s), Ok((_, metadata))) => metadata
            .additional_metadata()
            .end_session_endpoint
            .as_deref()
            .and_then(|e| url::Url::parse(e).ok())
            .map(|mut url| {
                url.query_pairs_mut()
                    .append_pair("id_token_hint", &s.id_token)
                    .append_pair("post_logout_redirect_uri", &bye_uri(&demo))
                    .append_pair("client_id", &demo.opts.client_id);
                url.to_string()
            }),
        _ => None,
    };
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            end_session.unwrap_or_else(|| "/bye".into()),
        ))
        .cookie(gone)
        .finish()
}

async fn bye(demo: web::Data<Demo>) -> HttpResponse {
    page(
        &demo,
        StatusCode::OK,
        "Signed out",
        "<h1>Signed out</h1><p>You are signed out of the demo application and of the bridge.</p>\
         <p><a class=\"button\" href=\"/\">Home</a></p>",
    )
}

// --------------------------------------------------------- single-page mode

/// The single-page mode's one page (also its callback and signed-out page):
/// a heading and an empty frame that `/spa/app.js` fills. The issuer and the
/// client id travel in data attributes; the CSP lets the page run only its
/// own script and call only the bridge.
async fn spa_page(demo: web::Data<Demo>) -> HttpResponse {
    let bridge_origin = url::Url::parse(&demo.opts.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "'none'".into());
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Security-Policy",
            format!(
                "default-src 'none'; script-src 'self'; style-src 'sha256-{}'; connect-src {bridge_origin}; \
                 base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                demo.style_hash
            ),
        ))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Single-page demo · Demo application</title><style>{STYLE}</style></head>\
             <body><main><h1 id=\"title\">Single-page demo</h1>\
             <div id=\"content\" data-issuer=\"{issuer}\" data-client-id=\"{client_id}\">\
             <noscript><p>This page signs you in with JavaScript; the \
             <a href=\"/\">server-side demo</a> works without.</p></noscript></div></main>\
             <script src=\"/spa/app.js\"></script></body></html>",
            issuer = esc(&demo.opts.issuer),
            client_id = esc(&demo.opts.spa_client_id),
        ))
}

async fn spa_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(SPA_SCRIPT)
}

// ----------------------------------------------------------------- helpers

fn bye_uri(demo: &Demo) -> String {
    demo.redirect_uri.as_str().replace("/cb", "/bye")
}

async fn discover(demo: &Demo) -> Result<(OidcClient, Metadata), String> {
    let issuer = IssuerUrl::new(demo.opts.issuer.clone()).map_err(|e| e.to_string())?;
    let metadata = Metadata::discover_async(issuer, &library_http(demo.http.clone()))
        .await
        .map_err(|e| describe(&e))?;
    let client = OidcClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(demo.opts.client_id.clone()),
        Some(ClientSecret::new(demo.opts.client_secret.clone())),
    )
    .set_redirect_uri(demo.redirect_uri.clone());
    Ok((client, metadata))
}

/// An error and its causes on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

type HttpFuture =
    Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send>>;

/// The library's HTTP client: its requests sent with reqwest, redirects off.
fn library_http(http: reqwest::Client) -> impl Fn(openidconnect::HttpRequest) -> HttpFuture {
    move |request: openidconnect::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
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

fn claims_table(claims: &Claims) -> String {
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string());
    let email = claims.email().map(|e| e.as_str().to_string());
    let extra = claims.additional_claims();
    let team = match (&extra.team_name, &extra.team_id) {
        (Some(name), Some(id)) => Some(format!("{name} ({id})")),
        (None, Some(id)) => Some(id.clone()),
        (Some(name), None) => Some(name.clone()),
        (None, None) => None,
    };
    let rows = [
        ("Name", "name", name),
        ("Email", "email", email),
        (
            "Subject",
            "sub",
            Some(claims.subject().as_str().to_string()),
        ),
        ("Workspace", "team", team),
    ];
    let mut html = String::from("<table>");
    for (label, id, value) in rows {
        html.push_str(&format!(
            "<tr><th scope=\"row\">{label}</th><td id=\"claim-{id}\">{}</td></tr>",
            esc(value.as_deref().unwrap_or("(not sent)"))
        ));
    }
    html.push_str("</table>");
    if let Ok(all) = serde_json::to_string_pretty(claims) {
        html.push_str(&format!(
            "<details><summary>Every claim of the ID token</summary><pre>{}</pre></details>",
            esc(&all)
        ));
    }
    html
}

fn bridge_unreachable(demo: &Demo, error: &str) -> HttpResponse {
    page(
        demo,
        StatusCode::BAD_GATEWAY,
        "Bridge unreachable",
        &format!(
            "<h1>The bridge cannot be reached</h1><p>Discovery at <code>{}</code> failed: {}</p>\
             <p class=\"note\">Is it running? <code>cargo run -- serve --config config/dev.toml</code></p>",
            esc(&demo.opts.issuer),
            esc(error)
        ),
    )
}

/// A whole page: inline stylesheet allowed by its hash, nothing else loads.
fn page(demo: &Demo, status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Security-Policy",
            format!(
                "default-src 'none'; style-src 'sha256-{}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                demo.style_hash
            ),
        ))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · Demo application</title><style>{STYLE}</style></head>\
             <body><main>{body}</main></body></html>",
            esc(title)
        ))
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("system random generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name).map(|c| c.value().to_string())
}

fn new_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish()
}
