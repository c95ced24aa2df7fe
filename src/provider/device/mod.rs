//! The device authorization grant (RFC 8628): command-line tools and
//! devices without a browser sign in with Slack through a browser elsewhere.
//!
//! 1. The device asks `POST /device_authorization` ([`endpoint`]) and shows
//!    the person a short user code and `{issuer}/device`.
//! 2. The person opens that page ([`verify`]), enters the code, signs in with
//!    Slack (or reuses their SSO session) and is always shown a confirmation
//!    naming the application, the scopes and the code, with Approve and Deny:
//!    a device code is never approved silently (§5.4, remote phishing).
//! 3. Meanwhile the device polls the token endpoint ([`poll`]) and, once the
//!    person approved, gets the tokens a code redemption would give.
//!
//! Stored like everything else ([`records`]): under hashes, with TTLs, one key
//! per operation. Guessing user codes is limited per address and per code
//! ([`limits`], [`verify`]).

pub mod endpoint;
pub mod limits;
pub mod poll;
pub mod records;
pub mod user_code;
pub mod verify;

use actix_web::web;

pub use limits::DeviceLimits;

use super::Provider;
use super::clients::Client;
use super::error::{ErrorCode, OAuthError};

/// Seconds a device waits between polls (RFC 8628 §3.2 `interval`).
pub const INTERVAL_SECS: u64 = 5;
/// What each `slow_down` adds to a device code's interval (§3.5).
pub const SLOW_DOWN_SECS: u64 = 5;
/// The purpose Slack's tokens are sealed for (with the key set) in an
/// approval, until the device redeems it.
const SEAL_UPSTREAM: &str = "device-upstream-token";

/// The device flow's routes, mounted with the provider's.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/device_authorization",
        web::post().to(endpoint::device_authorization),
    )
    .route("/device", web::get().to(verify::page))
    .route("/device", web::post().to(verify::enter))
    .route("/device/confirm", web::post().to(verify::confirm));
}

/// A client registered without the device grant gets `unauthorized_client`
/// at the device authorization endpoint and at the token endpoint alike.
fn check_client_allows_device_code(provider: &Provider, client: &Client) -> Result<(), OAuthError> {
    let registered = provider
        .config
        .clients
        .iter()
        .any(|c| c.client_id == client.id && c.allows_device_code());
    if registered {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the device authorization grant",
        ))
    }
}
