//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 9449
//! §10): the code is taken once, then checked against the client, the
//! redirect URI, the PKCE verifier and the DPoP key it may be bound to.

use subtle::ConstantTimeEq;

use super::TokenResponse;
use super::family::{Redeemed, issue_first, start_family};
use crate::provider::Provider;
use crate::provider::clients::Client;
use crate::provider::dpop;
use crate::provider::error::OAuthError;
use crate::provider::grant::SEAL_UPSTREAM;
use crate::provider::params::Params;
use crate::store::records::{CodeGrant, UsedCode, random_secret};
use crate::store::seal;
use crate::upstream::s256;

pub(super) async fn authorization_code(
    provider: &Provider,
    client: &Client,
    params: &Params,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    let code = params.require("code")?;
    let grant = consume_code(provider, code).await?;
    check_code_belongs_to_client(&grant, client)?;
    check_redirect_uri_matches(&grant, params)?;
    check_pkce_verifier(&grant, params)?;
    check_code_binding(&grant, proof.jkt())?;
    proof.spend(provider).await?;

    let redeemed = Redeemed {
        scopes: &grant.scopes,
        identity: &grant.identity,
        auth_time: grant.auth_time,
        nonce: grant.nonce.as_deref(),
        sid: grant.sid.as_deref(),
        issued_at_ms: grant.issued_at_ms,
    };
    let family_id = random_secret();
    let family = start_family(provider, client, &family_id, &redeemed).await?;
    // Remembered while the family's access tokens can live, so a replay can revoke it.
    let used = UsedCode {
        client_id: client.id.clone(),
        family_id: family_id.clone(),
    };
    if let Err(e) = provider
        .records
        .put_used_code(code, &used, provider.ttl_access_token())
        .await
    {
        tracing::warn!(error = %e, "could not record the redeemed code");
    }
    let upstream_token = grant
        .upstream_token
        .as_deref()
        .and_then(|sealed| seal::open(code, SEAL_UPSTREAM, sealed))
        .and_then(|t| String::from_utf8(t).ok());
    issue_first(
        provider,
        client,
        &family_id,
        &redeemed,
        &family,
        upstream_token.as_deref(),
        proof.jkt(),
    )
    .await
}

/// The code is taken atomically: of two concurrent redemptions exactly one
/// succeeds. A replayed code revokes the family of its first redemption.
async fn consume_code(provider: &Provider, code: &str) -> Result<CodeGrant, OAuthError> {
    let records = &provider.records;
    if let Some(grant) = records
        .take_code(code)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    {
        return Ok(grant);
    }
    if let Some(used) = records
        .take_used_code(code)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    {
        tracing::warn!(client_id = %used.client_id, "authorization code replayed; revoking its tokens");
        let _ = records.revoke_family(&used.family_id).await;
        return Err(OAuthError::invalid_grant("the code was already used"));
    }
    Err(OAuthError::invalid_grant("the code is invalid or expired"))
}

fn check_code_belongs_to_client(grant: &CodeGrant, client: &Client) -> Result<(), OAuthError> {
    if grant.client_id == client.id {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ))
    }
}

/// RFC 6749 §4.1.3: the redirect URI presented at the authorization endpoint,
/// as the same exact string. For a native application's loopback redirect
/// URI (RFC 8252 §7.3) that includes the port it chose then: any port matches
/// the registration, but not another port than the one the code was sent to.
fn check_redirect_uri_matches(grant: &CodeGrant, params: &Params) -> Result<(), OAuthError> {
    match params.get("redirect_uri") {
        Some(uri) if uri == grant.redirect_uri => Ok(()),
        Some(_) => Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        )),
        None => Err(OAuthError::invalid_request("redirect_uri is required")),
    }
}

/// RFC 7636 §4.6, plus: a verifier with no challenge on the code is refused.
fn check_pkce_verifier(grant: &CodeGrant, params: &Params) -> Result<(), OAuthError> {
    match (&grant.code_challenge, params.get("code_verifier")) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if well_formed && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
    }
}

/// RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof
/// by that key.
fn check_code_binding(grant: &CodeGrant, jkt: Option<&str>) -> Result<(), OAuthError> {
    match (&grant.dpop_jkt, jkt) {
        (Some(bound), presented) if presented != Some(bound.as_str()) => Err(
            OAuthError::invalid_grant("the code is bound to another DPoP key (dpop_jkt)"),
        ),
        _ => Ok(()),
    }
}
