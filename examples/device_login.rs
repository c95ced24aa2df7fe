//! Signs in on the command line with the device flow (RFC 8628), the way
//! `kubectl`, database consoles and tools on a headless server do: no
//! browser here; the person opens a page elsewhere and enters a code.
//!
//! ```sh
//! cargo run -- serve --config config/dev.toml   # the bridge and its Slack stand-in
//! cargo run --example device_login               # this: the demo-cli client of config/dev.toml
//! ```
//!
//! It finds the device authorization endpoint in the bridge's discovery
//! document, asks for a code, prints where to enter it, polls the token
//! endpoint (waiting `interval` seconds, longer after `slow_down`), then has
//! the `openidconnect` crate verify the ID token (signature against the
//! bridge's JWKS, issuer, audience, expiry, `at_hash`) and prints its claims.
//!
//! Options (flag or environment variable): `--issuer` / `DEVICE_ISSUER`,
//! `--client-id` / `DEVICE_CLIENT_ID`, `--client-secret` /
//! `DEVICE_CLIENT_SECRET` (confidential clients only), `--scope` (besides
//! `openid`, which is always asked; e.g. `--scope email --scope groups`).

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreErrorResponseType, CoreGenderClaim, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenIntrospectionResponse,
    CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, Client, ClientId, ClientSecret,
    DeviceAuthorizationUrl, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse, ProviderMetadata, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(about = "Signs in through slack-oidc-bridge with the device flow and prints the claims")]
struct Options {
    /// The bridge's issuer URL.
    #[arg(long, env = "DEVICE_ISSUER", default_value = "http://127.0.0.1:18080")]
    issuer: String,
    /// A client registered with the grant
    /// urn:ietf:params:oauth:grant-type:device_code.
    #[arg(long, env = "DEVICE_CLIENT_ID", default_value = "demo-cli")]
    client_id: String,
    /// Only for a confidential client (a command-line tool is usually public).
    #[arg(long, env = "DEVICE_CLIENT_SECRET")]
    client_secret: Option<String>,
    /// Scopes besides openid.
    #[arg(long = "scope", default_values = ["email", "profile"])]
    scopes: Vec<String>,
    /// Give up after this many seconds (the code expires before anyway).
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
}

/// The claims the bridge adds: Slack's, and `groups` with the `groups` scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BridgeClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<String>>,
    #[serde(
        rename = "https://slack.com/team_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    team_id: Option<String>,
    #[serde(
        rename = "https://slack.com/user_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    user_id: Option<String>,
    #[serde(
        rename = "https://slack.com/team_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    team_name: Option<String>,
}
impl AdditionalClaims for BridgeClaims {}

/// Discovery's `device_authorization_endpoint` (RFC 8628 §4), which the core
/// metadata type does not carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeviceMetadata {
    device_authorization_endpoint: DeviceAuthorizationUrl,
}
impl AdditionalProviderMetadata for DeviceMetadata {}

type Metadata = ProviderMetadata<
    DeviceMetadata,
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
        BridgeClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type OidcClient = Client<
    BridgeClaims,
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
    let http = library_http(
        reqwest::Client::builder()
            // A redirect could send the client's requests elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?,
    );
    let issuer = IssuerUrl::new(opts.issuer.clone()).map_err(|e| format!("--issuer: {e}"))?;
    let metadata = Metadata::discover_async(issuer, &http)
        .await
        .map_err(|e| format!("discovery at {} failed: {}", opts.issuer, describe(&e)))?;
    let device_endpoint = metadata
        .additional_metadata()
        .device_authorization_endpoint
        .clone();
    let client = OidcClient::from_provider_metadata(
        metadata,
        ClientId::new(opts.client_id.clone()),
        opts.client_secret.clone().map(ClientSecret::new),
    )
    .set_device_authorization_url(device_endpoint);

    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(opts.scopes.iter().cloned().map(Scope::new))
        .request_async(&http)
        .await
        .map_err(|e| format!("the device authorization failed: {}", describe(&e)))?;
    println!(
        "\nOn a phone or a computer, open\n\n    {}\n\nand enter the code\n\n    {}\n",
        details.verification_uri().as_str(),
        details.user_code().secret()
    );
    if let Some(complete) = details.verification_uri_complete() {
        println!("(or open {} to have it filled in)\n", complete.secret());
    }
    println!(
        "Waiting for you to approve (the code expires in {} s)...",
        details.expires_in().as_secs()
    );

    let tokens = client
        .exchange_device_access_token(&details)
        .map_err(|e| format!("the bridge has no token endpoint: {e}"))?
        .request_async(
            &http,
            tokio::time::sleep,
            Some(Duration::from_secs(opts.timeout_secs)),
        )
        .await
        .map_err(|e| format!("no tokens: {}", describe(&e)))?;

    let id_token = tokens
        .id_token()
        .ok_or("the token response has no ID token")?;
    let verifier = client.id_token_verifier();
    // The device flow has no nonce: the ID token must not carry one either.
    let no_nonce = |nonce: Option<&Nonce>| match nonce {
        None => Ok(()),
        Some(_) => Err("the ID token carries a nonce nobody sent".to_string()),
    };
    let claims = id_token
        .claims(&verifier, no_nonce)
        .map_err(|e| format!("the ID token does not verify: {e}"))?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token.signing_alg().map_err(|e| e.to_string())?;
        let key = id_token.signing_key(&verifier).map_err(|e| e.to_string())?;
        let actual = AccessTokenHash::from_token(tokens.access_token(), alg, key)
            .map_err(|e| e.to_string())?;
        if &actual != expected {
            return Err("the ID token's at_hash does not match the access token".into());
        }
    }
    println!("\nSigned in. The ID token verified; its claims:\n");
    println!(
        "{}",
        serde_json::to_string_pretty(claims).map_err(|e| e.to_string())?
    );
    if let Some(scopes) = tokens.scopes() {
        let granted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        println!("\nGranted scopes: {}", granted.join(" "));
    }
    if tokens.refresh_token().is_some() {
        println!("A refresh token was issued too (offline_access).");
    }
    Ok(())
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

/// The library's HTTP client: its requests sent with reqwest.
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
