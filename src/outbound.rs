//! Calls the bridge makes to other servers: Slack (`crate::upstream`) and
//! applications (logout tokens, `jwks_uri`, `sector_identifier_uri`). One
//! client setup (no redirects: a redirect could send a call elsewhere; our
//! user agent) and one bounded read of an answer's body.

use std::time::Duration;

use serde_json::Value;
use url::Url;

/// A client builder with redirects off and the bridge's user agent; the
/// caller adds its timeouts.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("slack-oidc-bridge/", env!("CARGO_PKG_VERSION")))
}

/// The client for calls to applications.
pub fn client() -> reqwest::Result<reqwest::Client> {
    builder().build()
}

/// Why a body was not read whole.
#[derive(Debug)]
pub enum ReadError {
    /// Larger than the cap.
    TooLarge,
    /// The answer broke off.
    Broken(reqwest::Error),
}

/// The answer's body, refused as soon as it grows past `max` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|l| l > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Broken)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GETs a JSON document from an application's side: 200, within `timeout`,
/// at most `max` bytes.
pub async fn fetch_json(
    http: &reqwest::Client,
    uri: &Url,
    timeout: Duration,
    max: usize,
) -> Result<Value, String> {
    let response = http
        .get(uri.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("answered HTTP {}", response.status().as_u16()));
    }
    let body = read_capped(response, max).await.map_err(|e| match e {
        ReadError::TooLarge => format!("larger than {max} bytes"),
        ReadError::Broken(e) => format!("the answer broke off: {e}"),
    })?;
    serde_json::from_slice(&body).map_err(|_| "the answer is not JSON".to_string())
}
