//! The built-in Slack stand-in.
