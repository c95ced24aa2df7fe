//! The ID token, shaped like a real Slack one (reference §5), with optional
//! planted defects for testing a client's validation.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::http::{Obj, random_alnum};
use super::{Config, Control, IdTokenFault, StandinUser};

/// Slack's ID tokens live five minutes.
const LIFETIME_SECS: i64 = 300;

/// What goes into one ID token besides the user.
pub struct IdTokenInput<'a> {
    pub client_id: &'a str,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub access_token: &'a str,
}

/// `at_hash`: base64url of the left half of SHA-256 over the access token.
pub fn at_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Builds and signs the ID token, applying the current `IdTokenFault`.
pub fn issue(
    config: &Config,
    control: &Control,
    user: &StandinUser,
    input: &IdTokenInput<'_>,
) -> String {
    let fault = control.id_token_fault();
    let is = |f: IdTokenFault| fault.as_ref() == Some(&f);

    let iat = if is(IdTokenFault::Expired) {
        now_secs() - 3600
    } else {
        now_secs()
    };
    let iss = if is(IdTokenFault::WrongIssuer) {
        "https://not-slack.example".to_owned()
    } else {
        config.issuer.clone()
    };
    let aud = if is(IdTokenFault::WrongAudience) {
        format!("{}0", input.client_id)
    } else {
        input.client_id.to_owned()
    };
    // Slack says "" when no nonce was sent (reference §6.1).
    let nonce = match (is(IdTokenFault::WrongNonce), input.nonce) {
        (false, sent) => sent.unwrap_or_default().to_owned(),
        (true, _) => random_alnum(27),
    };

    let mut claims = Obj::new();
    claims
        .set("iss", iss)
        .set("sub", user.user_id.as_str())
        .set("aud", aud)
        .set("exp", iat + LIFETIME_SECS)
        .set("iat", iat)
        .set("auth_time", iat)
        .set("nonce", nonce);
    if !is(IdTokenFault::MissingAtHash) {
        claims.set("at_hash", at_hash(input.access_token));
    }
    user.id_claims(&mut claims);
    claims.extend(user.scope_claims(input.scopes, false));
    control.sign_id_token(&claims, fault.as_ref())
}

#[cfg(test)]
mod at_hash_tests {
    #[test]
    fn at_hash_is_left_half_of_sha256_base64url() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223 b00361a3…
        assert_eq!(super::at_hash("abc"), "ungWv48Bz-pBQUDeXa4iIw");
    }
}
