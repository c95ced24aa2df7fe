//! slack-oidc-bridge: an OpenID Provider that signs people in with Slack.

pub mod config;
pub mod store;
pub mod upstream;
