//! A real relying-party library (`openidconnect`) pointed at the bridge:
//! its HTTP client, discovery through it, and the client type it yields.
//! A test may wrap [`library_http`] to add headers (a DPoP proof).

use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl,
};

use super::bridge::Bridge;

/// A client built from discovery: authorization endpoint known, token and
/// userinfo endpoints "maybe" (the library checks them at use).
pub type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

pub type HttpFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send>>;

/// The library's HTTP client: its requests sent with reqwest, redirects off.
pub fn library_http() -> impl Fn(HttpRequest) -> HttpFuture {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    move |request: HttpRequest| {
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
            let mut out = HttpResponse::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

/// Discovery through the library (it also fetches the JWKS and checks that the
/// document's issuer is the one asked for).
pub async fn discover(bridge: &Bridge) -> CoreProviderMetadata {
    let issuer = IssuerUrl::new(bridge.base.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &library_http())
        .await
        .unwrap_or_else(|e| panic!("openidconnect rejects the discovery document: {e:?}"));
    assert_eq!(metadata.issuer().as_str(), bridge.base);
    metadata
}
