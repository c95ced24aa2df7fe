//! The refresh grant (RFC 6749 §6) with rotation: the presented token is
//! swapped for a tombstone atomically, so of two concurrent uses exactly one
//! wins and the other is seen as reuse, which revokes the family (unless it
//! is the client's own retry within the grace window). Before the token is
//! spent: its DPoP binding, the scopes asked, and what Slack says now.

use super::TokenResponse;
use super::family::{Issue, Marks, issue, refresh_ttl};
use crate::provider::Provider;
use crate::provider::clients::Client;
use crate::provider::dpop;
use crate::provider::error::{ErrorCode, OAuthError};
use crate::provider::grant::SEAL_UPSTREAM;
use crate::provider::params::Params;
use crate::provider::policy::{self, Denied};
use crate::provider::session::now;
use crate::store::Namespace;
use crate::store::person::{Held, PersonEntry};
use crate::store::records::{RefreshGrant, RefreshRecord, RotatedRefresh};
use crate::store::seal;
use crate::upstream::{SlackIdentity, UpstreamTokens};

const SEAL_SUCCESSOR: &str = "refresh-successor";

/// The refresh grant with rotation: the presented token is swapped for a
/// tombstone atomically, so of two concurrent uses exactly one wins and the
/// other is seen as reuse.
pub(super) async fn refresh(
    provider: &Provider,
    client: &Client,
    params: &Params,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    let token = params.require("refresh_token")?;
    let jkt = proof.jkt();
    let records = &provider.records;
    let unavailable = |e| OAuthError::unavailable(&e);
    let record: Option<RefreshRecord> = records
        .get(Namespace::RefreshToken, token)
        .await
        .map_err(unavailable)?;
    let grant = match record {
        None => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ));
        }
        Some(r) if r.client_id() != client.id => {
            // Nothing of the owner's is touched.
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        Some(RefreshRecord::Rotated(rotated)) => {
            return reuse(provider, client, token, rotated, proof).await;
        }
        Some(RefreshRecord::Live(grant)) => grant,
    };
    if provider.keys.current().is_revoked(&grant.kid) {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued under a revoked key",
        ));
    }
    // Checked before the token is spent: a bad request, or Slack not
    // answering, must not burn it.
    check_refresh_binding(&grant, jkt)?;
    proof.spend(provider).await?;
    let scopes = narrowed_scopes(params, &grant.scopes)?;
    let upstream = grant
        .upstream_token
        .as_deref()
        .and_then(|sealed| seal::open(token, SEAL_UPSTREAM, sealed))
        .and_then(|t| String::from_utf8(t).ok())
        .map(|t| UpstreamTokens::from_text(&t));
    // Round trips (store, Slack) that do not depend on each other.
    let (alive, checked) = tokio::join!(
        records.family_alive(&grant.family_id),
        checked_identity(provider, client, &grant, upstream),
    );
    if !alive.map_err(unavailable)? {
        return Err(OAuthError::invalid_grant("the refresh token was revoked"));
    }
    let (identity, checked_at, upstream) = match checked {
        Ok(checked) => checked,
        Err(denied) => {
            if denied.is_no() {
                tracing::warn!(client_id = %client.id, reason = ?denied, "Slack says no: ending the token family");
                records
                    .revoke_family(&grant.family_id)
                    .await
                    .map_err(unavailable)?;
            }
            return Err(denied.at_refresh());
        }
    };
    let marks = Marks {
        checked_at,
        // "Last used" to the minute: not every refresh writes the index.
        indexed_at: if now() - grant.indexed_at < INDEX_EVERY_SECS {
            grant.indexed_at
        } else {
            now()
        },
    };
    let tombstone = RotatedRefresh {
        client_id: client.id.clone(),
        family_id: grant.family_id.clone(),
        rotated_at: now(),
        successor: None,
    };
    let tombstone_ttl = refresh_ttl(provider, grant.family_expires_at);
    let previous: Option<RefreshRecord> = records
        .swap(
            Namespace::RefreshToken,
            token,
            &RefreshRecord::Rotated(tombstone.clone()),
            tombstone_ttl,
        )
        .await
        .map_err(unavailable)?;
    match previous {
        Some(RefreshRecord::Live(_)) => {}
        Some(RefreshRecord::Rotated(raced)) => {
            let _ = records
                .put(
                    Namespace::RefreshToken,
                    token,
                    &RefreshRecord::Rotated(raced.clone()),
                    tombstone_ttl,
                )
                .await;
            return reuse(provider, client, token, raced, proof).await;
        }
        None => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ));
        }
    }
    let upstream_text = upstream.as_ref().map(UpstreamTokens::to_text);
    let entry = PersonEntry {
        held: Held::Family,
        client_id: Some(client.id.clone()),
        sid: grant.sid.clone(),
        created_at: grant.family_created_at.unwrap_or(grant.issued_at),
        last_used_at: now(),
        expires_at: grant.family_expires_at,
    };
    let subject = identity.subject();
    let index_now = marks.indexed_at != grant.indexed_at;
    let (response, indexed) = tokio::join!(
        issue(
            provider,
            client,
            Issue {
                scopes: &scopes,
                refresh_scopes: &grant.scopes,
                identity: &identity,
                auth_time: grant.auth_time,
                nonce: None,
                sid: grant.sid.as_deref(),
                family_id: &grant.family_id,
                family_expires_at: grant.family_expires_at,
                family_created_at: grant.family_created_at,
                upstream_token: upstream_text.as_deref(),
                jkt,
                with_refresh: true,
                marks,
            },
        ),
        // When the family was last used, for `sessions list`.
        async {
            if index_now {
                records
                    .index_family(&subject, &grant.family_id, &entry)
                    .await
            } else {
                Ok(None)
            }
        },
    );
    let response = response?;
    if let Err(e) = indexed {
        tracing::warn!(error = %e, "could not record the family's use");
    }
    // The successor is only ever read back within the reuse grace window
    // (`reuse`); without one, the tombstone the swap wrote is all there is.
    if provider.config.tokens.refresh_reuse_grace_secs == 0 {
        return Ok(response);
    }
    let sealed = seal::seal(
        token,
        SEAL_SUCCESSOR,
        &serde_json::to_vec(&response).expect("serializes"),
    );
    let tombstone = RotatedRefresh {
        successor: Some(sealed),
        ..tombstone
    };
    if let Err(e) = records
        .put(
            Namespace::RefreshToken,
            token,
            &RefreshRecord::Rotated(tombstone),
            tombstone_ttl,
        )
        .await
    {
        tracing::warn!(error = %e, "could not record the refresh successor");
    }
    Ok(response)
}

/// A rotated refresh token came back. Within the grace window the client
/// gets the same successor (it lost the response); otherwise it is theft and
/// the whole family is revoked.
async fn reuse(
    provider: &Provider,
    client: &Client,
    token: &str,
    rotated: RotatedRefresh,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    let grace = provider.config.tokens.refresh_reuse_grace_secs as i64;
    let records = &provider.records;
    if grace > 0
        && now() - rotated.rotated_at <= grace
        && records
            .family_alive(&rotated.family_id)
            .await
            .unwrap_or(false)
    {
        let same = rotated
            .successor
            .as_deref()
            .and_then(|s| seal::open(token, SEAL_SUCCESSOR, s))
            .and_then(|bytes| serde_json::from_slice::<TokenResponse>(&bytes).ok());
        if let Some(response) = same
            && retry_fits_binding(provider, client, &response, proof.jkt()).await
        {
            proof.spend(provider).await?;
            tracing::info!(client_id = %rotated.client_id, "refresh token retried within the grace window");
            return Ok(response);
        }
    }
    tracing::warn!(client_id = %rotated.client_id, "rotated refresh token reused: revoking its whole family");
    records
        .revoke_family(&rotated.family_id)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    Err(OAuthError::invalid_grant(
        "the refresh token was already used",
    ))
}

/// RFC 9449 §5: a public client's retry gets its bound answer again only
/// with a proof by the key it is bound to (the rotated token's); any other
/// presentation of the rotated token is a reuse.
async fn retry_fits_binding(
    provider: &Provider,
    client: &Client,
    response: &TokenResponse,
    jkt: Option<&str>,
) -> bool {
    if !client.is_public() || response.token_type != "DPoP" {
        return true;
    }
    match provider
        .records
        .get_access_token(&response.access_token)
        .await
    {
        Ok(Some(access)) => access.jkt.is_some() && access.jkt.as_deref() == jkt,
        _ => false,
    }
}

/// RFC 6749 §6: a refresh may ask for fewer scopes, never more.
fn narrowed_scopes(params: &Params, granted: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = params.get("scope") else {
        return Ok(granted.to_vec());
    };
    let requested: Vec<String> = requested
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if requested.iter().any(|s| !granted.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "a refresh cannot add scopes",
        ));
    }
    if !requested.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must contain openid",
        ));
    }
    Ok(requested)
}

/// What Slack now says about the person, within the directory's budget:
/// their profile through their own Slack token (renewed when Slack's token
/// rotation says so), then the application's policy. Returns the identity
/// to mint with, when Slack's userInfo gave the answer it rests on, and
/// Slack's tokens to keep.
async fn checked_identity(
    provider: &Provider,
    client: &Client,
    grant: &RefreshGrant,
    upstream: Option<UpstreamTokens>,
) -> Result<(SlackIdentity, i64, Option<UpstreamTokens>), Denied> {
    let kept = upstream.clone();
    // Slack's userInfo confirmed this family's identity within the TTL: the
    // per-person answer need not even be read. Standing and groups always
    // are (an event may have changed them).
    let ttl = provider.config.upstream.directory_ttl_secs as i64;
    let (identity, checked_at, renewed) = if now() - grant.checked_at < ttl {
        (grant.identity.clone(), grant.checked_at, None)
    } else {
        provider
            .directory
            .userinfo(&grant.identity, grant.checked_at, upstream)
            .await?
    };
    let identity = policy::admit(provider, client, &identity, &grant.scopes).await?;
    Ok((identity, checked_at, renewed.or(kept)))
}

/// RFC 9449 §5: a refresh token bound to a key (a public client's, issued
/// with a proof) is only good with a proof by that key.
fn check_refresh_binding(grant: &RefreshGrant, jkt: Option<&str>) -> Result<(), OAuthError> {
    match (&grant.jkt, jkt) {
        (Some(bound), Some(presented)) if bound == presented => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "the refresh token is bound to another DPoP key",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant(
            "the refresh token is DPoP-bound: send a proof by its key",
        )),
        (None, _) => Ok(()),
    }
}

/// How often a refresh writes its family's use to the person's index.
const INDEX_EVERY_SECS: i64 = 60;
