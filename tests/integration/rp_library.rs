//! A whole sign-in driven by a real relying-party library (`openidconnect`):
//! discovery, the authorization request, the code exchange, ID-token and
//! at_hash verification and userinfo all go through the library's own code,
//! so anything it finds non-conforming in the bridge fails here.

use crate::common;

use common::bridge::{BASIC, Bridge, POST, PUBLIC, REDIRECT_URI, Setup};
use common::browser::{Browser, location, param};
use common::rp::{DiscoveredClient, discover, library_http};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse, UserInfoClaims,
};

fn client(
    metadata: CoreProviderMetadata,
    client_id: &str,
    secret: Option<&str>,
    auth_type: AuthType,
) -> DiscoveredClient {
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_string()),
        secret.map(|s| ClientSecret::new(s.to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_string()).unwrap())
    .set_auth_type(auth_type)
}

/// Signs Ada in through `client` and checks every artefact with the library.
async fn sign_in_through_the_library(bridge: &Bridge, client: &DiscoveredClient, client_id: &str) {
    let http = library_http();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(
        authorize_url
            .as_str()
            .starts_with(&bridge.url("/authorize?")),
        "the library uses the discovered authorization endpoint: {authorize_url}"
    );

    // The browser's part: bridge → Slack stand-in → bridge → application.
    let browser = Browser::new();
    let r = browser.get(authorize_url.as_str()).await;
    assert_eq!(
        r.status(),
        302,
        "the library's authorization request is accepted: {:?}",
        r.text().await
    );
    let slack = location(&r);
    assert!(
        slack.as_str().starts_with(&bridge.standin.base_url),
        "{slack}"
    );
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let r = browser.get(callback.as_str()).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let back = location(&r);
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    assert_eq!(
        param(&back, "state").as_deref(),
        Some(csrf.secret().as_str()),
        "state comes back unchanged"
    );
    assert_eq!(
        param(&back, "iss").as_deref(),
        Some(bridge.base.as_str()),
        "iss (RFC 9207) is the issuer"
    );
    let code = param(&back, "code").expect("a code");

    // The back channel, all through the library.
    let token_response = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("discovery gave a token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect's code exchange fails: {e:?}"));
    assert_eq!(
        token_response.token_type(),
        &openidconnect::core::CoreTokenType::Bearer
    );
    assert!(token_response.expires_in().is_some_and(|d| d.as_secs() > 0));
    let id_token = token_response
        .id_token()
        .expect("the token response has an id_token");

    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("openidconnect rejects the ID token: {e:?}"));
    assert!(
        id_token.claims(&verifier, &Nonce::new_random()).is_err(),
        "the verifier checks the nonce (this test could fail)"
    );
    assert_eq!(claims.issuer().as_str(), bridge.base);
    assert_eq!(claims.subject().as_str(), "T0000000001:U0000000001");
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        vec![client_id]
    );
    assert_eq!(
        claims.authorized_party().map(|a| a.as_str()),
        Some(client_id)
    );
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Ada Lovelace")
    );
    assert!(claims.auth_time().is_some());

    let alg = id_token
        .signing_alg()
        .unwrap_or_else(|e| panic!("the ID token's alg: {e:?}"));
    let key = id_token
        .signing_key(&verifier)
        .unwrap_or_else(|e| panic!("the ID token's signing key is not in the JWKS: {e:?}"));
    let expected = AccessTokenHash::from_token(token_response.access_token(), alg, key)
        .unwrap_or_else(|e| panic!("at_hash cannot be computed: {e:?}"));
    assert_eq!(
        claims.access_token_hash(),
        Some(&expected),
        "at_hash matches the access token"
    );

    let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = client
        .user_info(token_response.access_token().clone(), None)
        .expect("discovery gave a userinfo endpoint")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("openidconnect rejects the userinfo response: {e:?}"));
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some("ada@example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn openidconnect_signs_in_a_confidential_client_with_basic_auth() {
    let bridge = Bridge::start(Setup::default()).await;
    let metadata = discover(&bridge).await;
    let client = client(metadata, BASIC.0, Some(BASIC.1), AuthType::BasicAuth);
    sign_in_through_the_library(&bridge, &client, BASIC.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openidconnect_signs_in_a_confidential_client_with_post_auth() {
    let bridge = Bridge::start(Setup::default()).await;
    let metadata = discover(&bridge).await;
    let client = client(metadata, POST.0, Some(POST.1), AuthType::RequestBody);
    sign_in_through_the_library(&bridge, &client, POST.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openidconnect_signs_in_a_public_client_with_pkce() {
    let bridge = Bridge::start(Setup::default()).await;
    let metadata = discover(&bridge).await;
    let client = client(metadata, PUBLIC, None, AuthType::RequestBody);
    sign_in_through_the_library(&bridge, &client, PUBLIC).await;
}
