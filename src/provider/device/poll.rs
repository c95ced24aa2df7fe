//! The token endpoint's device code grant (RFC 8628 §3.4, §3.5): checks in
//! this order, each answer an RFC 6749 §5.2 error until the person approved:
//! the client's registration, the code (unknown, or another client's:
//! `invalid_grant`), its expiry (`expired_token`), then the answer given to
//! it: none yet (`authorization_pending`, or `slow_down` when polled faster
//! than its interval, which then grows by 5 s), a refusal (`access_denied`),
//! or an approval, redeemed once into the tokens a code redemption gives.

use super::records::{Answer, Approval, DeviceGrant, DeviceRecords, PollRecord};
use super::{INTERVAL_SECS, SEAL_UPSTREAM, SLOW_DOWN_SECS, check_client_allows_device_code};
use crate::provider::Provider;
use crate::provider::clients::Client;
use crate::provider::dpop;
use crate::provider::error::{ErrorCode, OAuthError};
use crate::provider::params::Params;
use crate::provider::session::now;
use crate::provider::token::{Redeemed, TokenResponse, issue_first, start_family};
use crate::store::records::{random_secret, secret_hash};

pub(crate) async fn device_code(
    provider: &Provider,
    client: &Client,
    params: &Params,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    check_client_allows_device_code(provider, client)?;
    let device_code = params.require("device_code")?;
    let key = secret_hash(device_code);
    let records = DeviceRecords(&provider.records);
    let grant = records
        .grant(&key)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
        .ok_or_else(|| OAuthError::invalid_grant("the device code is invalid or expired"))?;
    if grant.client_id != client.id {
        // Nothing of the owner's is touched, not even its polling clock.
        return Err(OAuthError::invalid_grant(
            "the device code was issued to another client",
        ));
    }
    if now() >= grant.expires_at {
        return Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device code has expired; start again",
        ));
    }
    match &grant.answer {
        Answer::Pending => Err(pace(provider, &key, grant.expires_at).await),
        Answer::Denied { reason } => Err(OAuthError::new(ErrorCode::AccessDenied, reason)),
        Answer::Redeemed { family_id } => {
            tracing::warn!(client_id = %client.id, "device code redeemed again; revoking its tokens");
            let _ = provider.records.revoke_family(family_id).await;
            Err(already_used())
        }
        Answer::Approved(_) => redeem(provider, client, &key, grant, proof).await,
    }
}

fn already_used() -> OAuthError {
    OAuthError::invalid_grant("the device code was already used")
}

/// `authorization_pending`, or `slow_down` when this poll came sooner than
/// the code's interval after the previous one.
async fn pace(provider: &Provider, key: &str, expires_at: i64) -> OAuthError {
    let records = DeviceRecords(&provider.records);
    let previous = match records.poll(key).await {
        Ok(previous) => previous,
        Err(e) => return OAuthError::unavailable(&e),
    };
    let (next, code) = next_poll(previous, chrono::Utc::now().timestamp_millis());
    // A lost write only forgets how fast the device polled.
    if let Err(e) = records.put_poll(key, &next, expires_at).await {
        tracing::warn!(error = %e, "could not record the device's poll");
    }
    match code {
        ErrorCode::SlowDown => OAuthError::new(
            code,
            format!(
                "polled too often; wait {} s between requests",
                next.interval
            ),
        ),
        _ => OAuthError::new(code, "the person has not answered yet"),
    }
}

/// The polling clock after a poll at `now_ms`, and the answer to it. The
/// first poll may come at once; every later one at least the interval after
/// the previous (§3.5: a `slow_down` adds 5 s for this and later polls).
fn next_poll(previous: Option<PollRecord>, now_ms: i64) -> (PollRecord, ErrorCode) {
    match previous {
        Some(p) if now_ms - p.last_ms < p.interval as i64 * 1000 => (
            PollRecord {
                last_ms: now_ms,
                interval: p.interval + SLOW_DOWN_SECS,
            },
            ErrorCode::SlowDown,
        ),
        Some(p) => (
            PollRecord {
                last_ms: now_ms,
                interval: p.interval,
            },
            ErrorCode::AuthorizationPending,
        ),
        None => (
            PollRecord {
                last_ms: now_ms,
                interval: INTERVAL_SECS,
            },
            ErrorCode::AuthorizationPending,
        ),
    }
}

/// The approval is swapped for a tombstone atomically: of two concurrent
/// polls exactly one gets tokens. Then a token family starts as for a code.
async fn redeem(
    provider: &Provider,
    client: &Client,
    key: &str,
    grant: DeviceGrant,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    // Spent only for a code that gives tokens: polls while the person
    // decides write nothing for their proofs.
    proof.spend(provider).await?;
    let records = DeviceRecords(&provider.records);
    let family_id = random_secret();
    let tombstone = DeviceGrant {
        answer: Answer::Redeemed {
            family_id: family_id.clone(),
        },
        ..grant.clone()
    };
    let previous = records
        .swap_grant(key, &tombstone)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    let approval: Box<Approval> = match previous.map(|g| g.answer) {
        Some(Answer::Approved(approval)) => approval,
        Some(raced) => {
            // Another poll redeemed it meanwhile: its tombstone stays.
            let _ = records
                .put_grant(
                    key,
                    &DeviceGrant {
                        answer: raced,
                        ..grant
                    },
                )
                .await;
            return Err(already_used());
        }
        None => {
            return Err(OAuthError::invalid_grant(
                "the device code is invalid or expired",
            ));
        }
    };
    let redeemed = Redeemed {
        scopes: &grant.scopes,
        identity: &approval.identity,
        auth_time: approval.auth_time,
        nonce: None,
        sid: approval.sid.as_deref(),
        issued_at_ms: approval.approved_at_ms,
    };
    let family = start_family(provider, client, &family_id, &redeemed).await?;
    // Sealed under a key that has since been rotated out: the refreshes to
    // come ask Slack's directory without the person's own Slack token.
    let upstream_token = approval
        .upstream_token
        .as_deref()
        .and_then(|sealed| provider.keys.current().open(SEAL_UPSTREAM, sealed).ok())
        .and_then(|t| String::from_utf8(t).ok());
    tracing::info!(client_id = %client.id, "device code redeemed");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_poll_is_pending_whenever_it_comes() {
        let (next, code) = next_poll(None, 1_000);
        assert_eq!(code, ErrorCode::AuthorizationPending);
        assert_eq!((next.last_ms, next.interval), (1_000, INTERVAL_SECS));
    }

    #[test]
    fn a_poll_sooner_than_the_interval_slows_down_and_the_interval_grows_by_five() {
        let first = PollRecord {
            last_ms: 0,
            interval: 5,
        };
        let (next, code) = next_poll(Some(first), 4_999);
        assert_eq!(code, ErrorCode::SlowDown);
        assert_eq!((next.last_ms, next.interval), (4_999, 10));
        // Now 10 s are needed: 6 s later is still too soon.
        let (next, code) = next_poll(Some(next), 4_999 + 6_000);
        assert_eq!(code, ErrorCode::SlowDown);
        assert_eq!(next.interval, 15);
        let (next, code) = next_poll(Some(next), 10_999 + 15_000);
        assert_eq!(code, ErrorCode::AuthorizationPending);
        assert_eq!(next.interval, 15, "the interval never shrinks back");
    }

    #[test]
    fn a_poll_exactly_one_interval_later_is_pending() {
        let last = PollRecord {
            last_ms: 10_000,
            interval: 5,
        };
        let (next, code) = next_poll(Some(last), 15_000);
        assert_eq!(code, ErrorCode::AuthorizationPending);
        assert_eq!(next.interval, 5);
    }
}
