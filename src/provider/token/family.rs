//! Token families and what is issued in them: a redeemed grant (a code, an
//! approved device code) starts a family named in its person's index; every
//! response of the family (the first, each refresh) is issued here: the ID
//! token, the access token (opaque or JWT, maybe DPoP-bound) and the next
//! refresh token.

use std::time::Duration;

use super::TokenResponse;
use crate::provider::Provider;
use crate::provider::access_token;
use crate::provider::claims::{IdTokenRequest, Subject, sign_id_token};
use crate::provider::clients::Client;
use crate::provider::error::{ErrorCode, OAuthError};
use crate::provider::grant::SEAL_UPSTREAM;
use crate::provider::session::now;
use crate::store::Namespace;
use crate::store::person::{Held, PersonEntry};
use crate::store::records::{AccessGrant, Family, RefreshGrant, RefreshRecord, random_secret};
use crate::store::seal;
use crate::upstream::SlackIdentity;

/// What a redeemed grant (an authorization code, or an approved device
/// code: `provider::device`) carries into the token family it starts.
pub(crate) struct Redeemed<'a> {
    pub scopes: &'a [String],
    pub identity: &'a SlackIdentity,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
    /// The SSO session's public id.
    pub sid: Option<&'a str>,
    /// When the grant was issued (Unix milliseconds).
    pub issued_at_ms: i64,
}

/// A token family [`start_family`] just started.
pub(crate) struct StartedFamily {
    expires_at: i64,
    created_at: i64,
    with_refresh: bool,
}

/// Starts the token family of a redeemed grant, named in its person's index
/// (so Slack or an admin can end it); refused when the person was signed
/// out everywhere after the grant was issued.
pub(crate) async fn start_family(
    provider: &Provider,
    client: &Client,
    family_id: &str,
    grant: &Redeemed<'_>,
) -> Result<StartedFamily, OAuthError> {
    let wants_refresh = client.allows_refresh && grant.scopes.iter().any(|s| s == "offline_access");
    let family_life = if wants_refresh {
        provider.config.tokens.refresh_token_absolute_secs
    } else {
        provider.config.tokens.access_token_ttl_secs
    };
    let family = Family {
        client_id: client.id.clone(),
        sub: grant.identity.subject(),
        expires_at: now() + family_life as i64,
    };
    let records = &provider.records;
    let entry = PersonEntry {
        held: Held::Family,
        client_id: Some(client.id.clone()),
        sid: grant.sid.map(str::to_string),
        created_at: now(),
        last_used_at: now(),
        expires_at: family.expires_at,
    };
    // Both or neither: a family its person's index does not name could not
    // be ended from Slack.
    let ((), signed_out_at) = tokio::try_join!(
        records.put(
            Namespace::Family,
            family_id,
            &family,
            Duration::from_secs(family_life),
        ),
        records.index_family(&family.sub, family_id, &entry),
    )
    .map_err(|e| OAuthError::unavailable(&e))?;
    if signed_out_at.is_some_and(|at| at >= grant.issued_at_ms) {
        tracing::warn!(client_id = %client.id, "code issued before its person was signed out everywhere");
        records
            .revoke_family(family_id)
            .await
            .map_err(|e| OAuthError::unavailable(&e))?;
        return Err(OAuthError::invalid_grant(
            "the person was signed out after this code was issued",
        ));
    }
    Ok(StartedFamily {
        expires_at: family.expires_at,
        created_at: entry.created_at,
        with_refresh: wants_refresh,
    })
}

/// The first tokens of a family [`start_family`] started: what a code
/// redemption answers (ID token, access token, and a refresh token when
/// `offline_access` was granted to a client registered for it).
pub(crate) async fn issue_first(
    provider: &Provider,
    client: &Client,
    family_id: &str,
    grant: &Redeemed<'_>,
    family: &StartedFamily,
    upstream_token: Option<&str>,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    issue(
        provider,
        client,
        Issue {
            scopes: grant.scopes,
            refresh_scopes: grant.scopes,
            identity: grant.identity,
            auth_time: grant.auth_time,
            nonce: grant.nonce,
            sid: grant.sid,
            family_id,
            family_expires_at: family.expires_at,
            family_created_at: Some(family.created_at),
            upstream_token,
            jkt,
            with_refresh: family.with_refresh,
            // The family was indexed just now, and Slack confirmed the
            // identity when the person signed in there: the first refreshes
            // within the TTL need not ask again.
            marks: Marks {
                checked_at: grant.auth_time,
                indexed_at: now(),
            },
        },
    )
    .await
}

/// When a refresh grant's identity was last checked with Slack and its use
/// last indexed; carried from one refresh token to its successor.
#[derive(Clone, Copy, Default)]
pub(crate) struct Marks {
    pub(super) checked_at: i64,
    pub(super) indexed_at: i64,
}

pub(super) struct Issue<'a> {
    pub(super) scopes: &'a [String],
    /// Scope of the refresh token (unchanged by a narrower refresh, RFC 6749 §6).
    pub(super) refresh_scopes: &'a [String],
    pub(super) identity: &'a SlackIdentity,
    pub(super) auth_time: i64,
    pub(super) nonce: Option<&'a str>,
    pub(super) sid: Option<&'a str>,
    pub(super) family_id: &'a str,
    pub(super) family_expires_at: i64,
    pub(super) family_created_at: Option<i64>,
    pub(super) upstream_token: Option<&'a str>,
    /// The thumbprint of the DPoP key the tokens are bound to (RFC 9449).
    pub(super) jkt: Option<&'a str>,
    pub(super) with_refresh: bool,
    pub(super) marks: Marks,
}

pub(super) async fn issue(
    provider: &Provider,
    client: &Client,
    issue: Issue<'_>,
) -> Result<TokenResponse, OAuthError> {
    let keys = provider.keys.current();
    let alg = provider.config.id_token_alg(&client.id);
    let key = keys.signer_for(alg).ok_or_else(|| {
        tracing::error!(%alg, "no active signing key for the client's algorithm");
        OAuthError::new(ErrorCode::ServerError, "the ID token could not be signed")
    })?;
    let ttl = provider.ttl_access_token();
    let issued_at = now();
    let subject = client.subject(issue.identity);
    let access_token = if client.jwt_access_tokens {
        access_token::sign(
            key,
            &access_token::AccessTokenClaims {
                issuer: &provider.issuer,
                client_id: &client.id,
                subject: &subject,
                scopes: issue.scopes,
                issued_at,
                expires_at: issued_at + ttl.as_secs() as i64,
                jkt: issue.jkt,
            },
        )
        .map_err(|e| {
            tracing::error!(error = %e, "access token signing failed");
            OAuthError::new(
                ErrorCode::ServerError,
                "the access token could not be signed",
            )
        })?
    } else {
        random_secret()
    };
    let id_token = sign_id_token(
        key,
        issue.identity,
        &IdTokenRequest {
            issuer: &provider.issuer_url,
            client_id: &client.id,
            subject: Subject {
                sub: &subject,
                pairwise: client.pairwise.is_some(),
            },
            scopes: issue.scopes,
            nonce: issue.nonce,
            auth_time: issue.auth_time,
            access_token: &access_token,
            lifetime_secs: provider.config.tokens.id_token_ttl_secs,
            sid: issue
                .sid
                .filter(|_| client.backchannel_logout_session_required),
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, "ID token signing failed");
        OAuthError::new(ErrorCode::ServerError, "the ID token could not be signed")
    })?;
    let access = AccessGrant {
        client_id: client.id.clone(),
        scopes: issue.scopes.to_vec(),
        identity: issue.identity.clone(),
        expires_at: issued_at + ttl.as_secs() as i64,
        issued_at,
        family_id: issue.family_id.to_string(),
        kid: key.kid().to_string(),
        jkt: issue.jkt.map(str::to_string),
    };
    let records = &provider.records;
    let refresh = issue.with_refresh.then(|| {
        let token = random_secret();
        let grant = RefreshGrant {
            client_id: client.id.clone(),
            scopes: issue.refresh_scopes.to_vec(),
            identity: issue.identity.clone(),
            auth_time: issue.auth_time,
            family_id: issue.family_id.to_string(),
            family_expires_at: issue.family_expires_at,
            family_created_at: issue.family_created_at,
            sid: issue.sid.map(str::to_string),
            issued_at,
            kid: key.kid().to_string(),
            upstream_token: issue
                .upstream_token
                .map(|t| seal::seal(&token, SEAL_UPSTREAM, t.as_bytes())),
            checked_at: issue.marks.checked_at,
            indexed_at: issue.marks.indexed_at,
            // A confidential client's refresh token is bound by its client
            // authentication already (RFC 9449 §5).
            jkt: issue.jkt.filter(|_| client.is_public()).map(str::to_string),
        };
        (token, RefreshRecord::Live(Box::new(grant)))
    });
    // Two independent writes, sent together. Should one fail, the other
    // token is never handed out and expires unused.
    let put_refresh = async {
        match &refresh {
            Some((token, record)) => {
                records
                    .put(
                        Namespace::RefreshToken,
                        token,
                        record,
                        refresh_ttl(provider, issue.family_expires_at),
                    )
                    .await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(
        records.put_access_token(&access_token, &access, ttl),
        put_refresh
    )
    .map_err(|e| OAuthError::unavailable(&e))?;
    let refresh_token = refresh.map(|(token, _)| token);
    Ok(TokenResponse {
        access_token,
        token_type: if issue.jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
        .into(),
        expires_in: ttl.as_secs(),
        scope: issue.scopes.join(" "),
        id_token,
        refresh_token,
    })
}

pub(super) fn refresh_ttl(provider: &Provider, family_expires_at: i64) -> Duration {
    let left = (family_expires_at - now()).max(1) as u64;
    Duration::from_secs(provider.config.tokens.refresh_token_idle_secs.min(left))
}
