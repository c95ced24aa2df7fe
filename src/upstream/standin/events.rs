//! Signed Events API requests, as Slack sends them, for testing a bridge's
//! event endpoint (reference §9): the envelopes of the events an identity
//! bridge cares about, Slack's request signature, and a sender.
//!
//! ```ignore
//! let event = events::user_change_event(&standin.control, &user);
//! let resp = events::send_event(&url, SECRET, &event, Signature::Good, None).await?;
//! ```

use std::time::Duration;

use aws_lc_rs::hmac;
use serde_json::{Value, json};

use super::control::{UserFlags, unix_now};
use super::directory::user_object;
use super::http::random_alnum;
use super::{Control, StandinGroup, StandinUser};

/// The (deprecated) verification token every envelope carries.
pub const VERIFICATION_TOKEN: &str = "stand-in-verification-token";
/// The app the events are for.
pub const API_APP_ID: &str = "A0000000001";
/// The app's bot user, named in `authorizations`.
pub const APP_BOT_USER_ID: &str = "U00000000B0";
/// How old a `Signature::Stale` timestamp is: twice Slack's 5-minute window.
pub const STALE_SECS: i64 = 600;

/// `v0=` + hex(HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`)), the
/// value of `X-Slack-Signature`.
pub fn slack_signature(signing_secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("v0:{timestamp}:").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v0=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// How `send_event` signs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Signed with the signing secret, timestamped now.
    Good,
    /// Timestamped now but signed with a different secret.
    Bad,
    /// Correctly signed, but timestamped `STALE_SECS` ago (a replay).
    Stale,
}

/// The headers Slack sends with an event (besides `Content-Type`), for a
/// request at Unix time `now`.
pub fn signed_headers(
    signing_secret: &str,
    body: &[u8],
    signature: Signature,
    retry_num: Option<u32>,
    now: i64,
) -> Vec<(&'static str, String)> {
    let (timestamp, secret) = match signature {
        Signature::Good => (now, signing_secret.to_owned()),
        Signature::Bad => (now, format!("not-{signing_secret}")),
        Signature::Stale => (now - STALE_SECS, signing_secret.to_owned()),
    };
    let mut headers = vec![
        ("X-Slack-Request-Timestamp", timestamp.to_string()),
        (
            "X-Slack-Signature",
            slack_signature(&secret, timestamp, body),
        ),
    ];
    if let Some(n) = retry_num {
        headers.push(("X-Slack-Retry-Num", n.to_string()));
        headers.push(("X-Slack-Retry-Reason", "http_timeout".to_owned()));
    }
    headers
}

/// POSTs an event (or `url_verification`) as JSON, signed as asked, with the
/// retry headers when `retry_num` is set. Any answer is returned; only a
/// failure to talk to `url` at all is an error.
pub async fn send_event(
    url: &str,
    signing_secret: &str,
    body: &Value,
    signature: Signature,
    retry_num: Option<u32>,
) -> Result<reqwest::Response, reqwest::Error> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    send_event_bytes(url, signing_secret, bytes, signature, retry_num).await
}

/// `send_event` for a body given as bytes, e.g. one that is not JSON.
pub async fn send_event_bytes(
    url: &str,
    signing_secret: &str,
    body: Vec<u8>,
    signature: Signature,
    retry_num: Option<u32>,
) -> Result<reqwest::Response, reqwest::Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in signed_headers(signing_secret, &body, signature, retry_num, unix_now()) {
        req = req.header(name, value);
    }
    req.body(body).send().await
}

/// Slack's first request to a new Request URL; answer with the challenge.
pub fn url_verification(challenge: &str) -> Value {
    json!({
        "token": VERIFICATION_TOKEN,
        "challenge": challenge,
        "type": "url_verification",
    })
}

/// Replaces the envelope's (random) `event_id`, e.g. to send a duplicate.
pub fn with_event_id(mut v: Value, id: &str) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.insert("event_id".into(), Value::String(id.to_owned()));
    }
    v
}

/// `user_change`: `event.user` is the user as `users.info` shows them now,
/// with the directory flags the stand-in's control holds.
pub fn user_change_event(control: &Control, user: &StandinUser) -> Value {
    let now = unix_now();
    let flags = control
        .user_flags(&user.user_id)
        .unwrap_or_else(|| UserFlags::of(user, now));
    envelope(
        &user.team_id,
        user.enterprise_id.as_deref(),
        json!({
            "type": "user_change",
            "user": user_object(user, &flags),
            "cache_ts": now,
            "event_ts": event_ts(),
        }),
    )
}

/// `tokens_revoked`: the user tokens (`oauth`) of these users were revoked.
pub fn tokens_revoked_event(team_id: &str, user_ids: &[&str]) -> Value {
    envelope(
        team_id,
        None,
        json!({
            "type": "tokens_revoked",
            "tokens": {"oauth": user_ids, "bot": []},
            "event_ts": event_ts(),
        }),
    )
}

/// `subteam_members_changed`: users added to and removed from a group.
pub fn subteam_members_changed_event(
    team_id: &str,
    subteam_id: &str,
    added: &[&str],
    removed: &[&str],
) -> Value {
    let now = unix_now();
    envelope(
        team_id,
        None,
        json!({
            "type": "subteam_members_changed",
            "subteam_id": subteam_id,
            "team_id": team_id,
            "date_previous_update": now - 1,
            "date_update": now,
            "added_users": added,
            "added_users_count": added.len().to_string(),
            "removed_users": removed,
            "removed_users_count": removed.len().to_string(),
            "event_ts": event_ts(),
        }),
    )
}

/// `subteam_updated`: `event.subteam` is the group with its members.
pub fn subteam_updated_event(group: &StandinGroup) -> Value {
    let now = unix_now();
    let subteam = serde_json::to_value(group.to_obj(now, now, true)).unwrap_or_default();
    envelope(
        &group.team_id,
        None,
        json!({
            "type": "subteam_updated",
            "subteam": subteam,
            "event_ts": event_ts(),
        }),
    )
}

/// The `event_callback` envelope around `event`.
fn envelope(team_id: &str, enterprise_id: Option<&str>, event: Value) -> Value {
    let mut v = json!({
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": API_APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": format!("Ev{}", random_alnum(10).to_ascii_uppercase()),
        "event_time": unix_now(),
        "authorizations": [{
            "enterprise_id": enterprise_id,
            "team_id": team_id,
            "user_id": APP_BOT_USER_ID,
            "is_bot": true,
            "is_enterprise_install": false,
        }],
        "is_ext_shared_channel": false,
    });
    if let (Some(e), Some(obj)) = (enterprise_id, v.as_object_mut()) {
        obj.insert("enterprise_id".into(), Value::String(e.to_owned()));
    }
    v
}

/// `1700000000.000100`: seconds and microseconds, as Slack writes `event_ts`.
fn event_ts() -> String {
    let now = chrono::Utc::now();
    format!("{}.{:06}", now.timestamp(), now.timestamp_subsec_micros())
}
