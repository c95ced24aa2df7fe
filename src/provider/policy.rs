//! Who may hold tokens for which application, decided by Slack: checked in
//! this one place at every code issuance (sign-ins that reuse the SSO session
//! included) and at every refresh.
//!
//! In order: the bridge's workspaces, the application's workspaces, the
//! person's standing in Slack's directory (deactivated accounts and bots
//! never; guests only where allowed), then the application's user groups.

use super::Provider;
use super::claims::GROUPS_SCOPE;
use super::clients::Client;
use super::error::{Cause, ErrorCode, OAuthError};
use crate::directory::DirectoryError;
use crate::store::StoreError;
use crate::upstream::SlackIdentity;

/// Why a person was not admitted.
#[derive(Debug)]
pub enum Denied {
    /// Slack (or the configuration) says no: `access_denied` at sign-in,
    /// `invalid_grant` and the family's end at refresh.
    No(String),
    /// Slack did not answer and no recent answer stands in.
    Unavailable(String),
    /// The bot token is refused: the operator must act; nobody is let in.
    Misconfigured(String),
    Store(StoreError),
}

impl From<DirectoryError> for Denied {
    fn from(e: DirectoryError) -> Denied {
        match e {
            DirectoryError::Refused(why) => Denied::No(why),
            DirectoryError::Unavailable(_) => Denied::Unavailable(e.to_string()),
            DirectoryError::BotToken(_) => Denied::Misconfigured(e.to_string()),
            DirectoryError::Store(e) => Denied::Store(e),
        }
    }
}

impl Denied {
    /// The answer at the authorization endpoint (an error redirect).
    pub fn at_sign_in(&self) -> OAuthError {
        match self {
            Denied::No(why) => {
                OAuthError::new(ErrorCode::AccessDenied, why).with_cause(Cause::Policy)
            }
            Denied::Unavailable(why) => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!("{why}; try again shortly"),
            )
            .with_cause(Cause::Upstream),
            Denied::Misconfigured(why) => {
                tracing::error!(error = %why, "Slack's directory refused the bridge");
                OAuthError::new(
                    ErrorCode::ServerError,
                    "the bridge cannot read Slack's directory; an administrator must fix its configuration",
                )
                .with_cause(Cause::Upstream)
            }
            Denied::Store(e) => OAuthError::unavailable(e),
        }
    }

    /// The answer at the token endpoint. Only a "no" ends the family; the
    /// caller revokes it.
    pub fn at_refresh(&self) -> OAuthError {
        match self {
            Denied::No(why) => OAuthError::invalid_grant(why).with_cause(Cause::Policy),
            Denied::Misconfigured(why) => {
                tracing::error!(error = %why, "Slack's directory refused the bridge");
                OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the bridge cannot read Slack's directory; try again later",
                )
                .with_cause(Cause::Upstream)
            }
            other => other.at_sign_in(),
        }
    }

    pub fn is_no(&self) -> bool {
        matches!(self, Denied::No(_))
    }
}

/// Guests are admitted where the application (or, by default, the bridge)
/// allows them.
pub fn allows_guests(provider: &Provider, client: &Client) -> bool {
    client
        .allow_guests
        .unwrap_or(provider.config.upstream.allow_guests)
}

/// Admits the person to `client` for `scopes`, or says why not. The identity
/// returned carries the person's groups when `groups` was granted.
pub async fn admit(
    provider: &Provider,
    client: &Client,
    identity: &SlackIdentity,
    scopes: &[String],
) -> Result<SlackIdentity, Denied> {
    if !identity.is_in(&provider.config.upstream.allowed_team_ids) {
        return Err(Denied::No(
            "this Slack workspace is not allowed to sign in here".into(),
        ));
    }
    if !identity.is_in(&client.allowed_team_ids) {
        return Err(Denied::No(
            "this application does not admit people of this Slack workspace".into(),
        ));
    }
    let directory = &provider.directory;
    let wants_groups = scopes.iter().any(|s| s == GROUPS_SCOPE);
    let needs_groups = wants_groups || !client.allowed_groups.is_empty();
    // Both answers may need Slack: ask for them together.
    let (member, groups) = tokio::join!(directory.member(identity), async {
        if needs_groups {
            directory.groups_of(identity).await
        } else {
            Ok(None)
        }
    });
    if let Some(member) = member? {
        if let Some(why) = member.barred() {
            return Err(Denied::No(why.into()));
        }
        if member.is_guest() && !allows_guests(provider, client) {
            return Err(Denied::No(
                "Slack guests are not admitted to this application".into(),
            ));
        }
    }
    let groups = groups?;
    if !client.allowed_groups.is_empty() {
        let held = groups.as_deref().unwrap_or_default();
        if !client.allowed_groups.iter().any(|g| held.contains(g)) {
            return Err(Denied::No(
                "this application admits only members of certain Slack user groups".into(),
            ));
        }
    }
    let mut admitted = identity.clone();
    admitted.groups = if wants_groups { groups } else { None };
    Ok(admitted)
}
