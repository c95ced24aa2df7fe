//! The face toward Slack: an OpenID Connect client that absorbs Slack's quirks
//! (errors as HTTP 200 `{"ok":false}`, `"nonce":""`, non-JSON answers), and the
//! built-in Slack stand-in for development and tests.

mod client;
mod error;
pub mod identity;
mod jwk;
pub mod standin;

pub use client::{SlackClient, SlackTokens, UpstreamTokens, s256};
pub use error::UpstreamError;
pub use identity::SlackIdentity;

#[cfg(test)]
mod arbitrary;
