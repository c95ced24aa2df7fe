//! The face toward Slack: an OpenID Connect client that absorbs Slack's quirks
//! (errors as HTTP 200 `{"ok":false}`, `"nonce":""`, non-JSON answers), and the
//! built-in Slack stand-in for development and tests.

mod client;
mod error;
mod jwk;
pub mod standin;

pub use client::{SlackClient, SlackTokens, UpstreamTokens, s256};
pub use error::UpstreamError;
// Who Slack says the person is lives below both faces (the store keeps it).
pub use crate::identity::{self, SlackIdentity};

#[cfg(test)]
pub(crate) mod arbitrary;
