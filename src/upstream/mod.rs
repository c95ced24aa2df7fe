//! The face toward Slack.
pub mod standin;
