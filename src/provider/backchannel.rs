//! OpenID Connect Back-Channel Logout 1.0: when a session ends, every client
//! it signed into that registered a `backchannel_logout_uri` receives a signed
//! logout token. Sent in the background with a bounded timeout and a few
//! retries, so the person's page never waits for an application.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tokio::task::JoinHandle;

use super::Provider;
use super::session::now;
use crate::keys::SigningKey;
use crate::store::records::{Session, random_secret};

pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token (§2.4): no `nonce`, the event claim, `sub` and, when
/// known, `sid`.
pub fn logout_token(
    key: &SigningKey,
    issuer: &str,
    client_id: &str,
    sub: &str,
    sid: Option<&str>,
) -> Result<String, String> {
    let header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "logout+jwt"});
    let iat = now();
    let mut claims = json!({
        "iss": issuer,
        "aud": client_id,
        "iat": iat,
        "exp": iat + 120,
        "jti": random_secret(),
        "sub": sub,
        "events": {EVENT: {}},
    });
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(|e| e.to_string())?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(|e| e.to_string())?)
    );
    let signature = key.sign_bytes(input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Notifies every client of the ended session, in the background. The
/// handles say whether each delivery succeeded (the CLI waits for them).
pub fn notify(provider: &Provider, session: &Session) -> Vec<JoinHandle<bool>> {
    let sub = session.identity.subject();
    session
        .clients
        .iter()
        .filter_map(|client_id| notify_client(provider, client_id, &sub, Some(&session.sid)))
        .collect()
}

/// Sends one logout token to one client, if it registered a
/// `backchannel_logout_uri`, in the background with bounded retries. `sub`
/// is the person's public subject; the token carries the client's own.
pub fn notify_client(
    provider: &Provider,
    client_id: &str,
    sub: &str,
    sid: Option<&str>,
) -> Option<JoinHandle<bool>> {
    let client = provider.clients.get(client_id)?;
    let uri = client.backchannel_logout_uri.clone()?;
    let keys = provider.keys.current();
    // Signed like the client's ID tokens (Back-Channel Logout §2.6).
    let Some(key) = keys.signer_for(provider.config.id_token_alg(client_id)) else {
        tracing::error!(client_id, "no signing key for the client's algorithm");
        return None;
    };
    let sub = client.subject_of(sub);
    let token = match logout_token(key, &provider.issuer, client_id, &sub, sid) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "logout token signing failed");
            return None;
        }
    };
    let timeout = Duration::from_millis(provider.config.logout.backchannel_timeout_ms);
    let retries = provider.config.logout.backchannel_retries;
    let http = provider.http.clone();
    let client_id = client_id.to_string();
    Some(tokio::spawn(async move {
        for attempt in 0..=retries {
            let sent = http
                .post(&uri)
                .timeout(timeout)
                .form(&[("logout_token", token.as_str())])
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(client_id, "back-channel logout delivered");
                    return true;
                }
                Ok(r) => tracing::warn!(
                    client_id,
                    status = r.status().as_u16(),
                    attempt,
                    "back-channel logout refused"
                ),
                Err(e) => {
                    tracing::warn!(client_id, error = %e.without_url(), attempt, "back-channel logout failed")
                }
            }
            if attempt < retries {
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
            }
        }
        tracing::error!(client_id, "back-channel logout gave up");
        false
    }))
}
