//! Slack decides, live: the signed Events API endpoint (`POST
//! {issuer}/slack/events`) and what its events do — a deactivation, revoked
//! Slack tokens or a change to guest sign the person out everywhere (SSO
//! session, token families, back-channel logout), a change of user group
//! members drops the cached groups — and the admin's `sessions list` /
//! `sessions revoke`. Most scenarios run on the memory store and on Redis.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::bridge::{BASIC, Bridge, REDIRECT_URI, REFRESH, SIGNING_SECRET, Setup};
use common::browser::{Browser, ClientAuth, auth_params, id_claims, location, param, redeem};
use common::receiver::Receiver;
use common::redis_server::RedisServer;
use serde_json::{Value, json};
use slack_oidc_bridge::upstream::standin::events::{
    self, signed_headers, subteam_members_changed_event, tokens_revoked_event, url_verification,
    user_change_event, with_event_id,
};
use slack_oidc_bridge::upstream::standin::{GuestKind, Signature, StandinUser, slack_signature};

const BIN: &str = env!("CARGO_BIN_EXE_slack-oidc-bridge");

const ADA: &str = "U0000000001";
const ADA_SUB: &str = "T0000000001:U0000000001";
const GRACE: &str = "U0000000002";
const KATHERINE: &str = "W0000000003";
const KATHERINE_SUB: &str = "E0000000001:W0000000003";
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A client admitting only members of the `engineering` user group.
const ENGINEERING: (&str, &str) = ("app-eng", "eng-secret-0123456789abcdef0123456789abc");

/// How long an event may take to reach every check.
const WITHIN: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Helpers

fn standin_user(user_id: &str) -> StandinUser {
    StandinUser::fixtures()
        .into_iter()
        .find(|u| u.user_id == user_id)
        .unwrap_or_else(|| panic!("no fixture user {user_id}"))
}

fn events_url(base: &str) -> String {
    format!("{base}/slack/events")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An event delivered as Slack does: signed with the signing secret, now.
async fn deliver(base: &str, event: &Value, retry_num: Option<u32>) -> reqwest::Response {
    events::send_event(
        &events_url(base),
        SIGNING_SECRET,
        event,
        Signature::Good,
        retry_num,
    )
    .await
    .expect("the bridge answers")
}

/// Delivers and expects Slack's "got it" (any 2xx; the bridge says 200).
async fn deliver_ok(base: &str, event: &Value) {
    let r = deliver(base, event, None).await;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "the event is acknowledged: {body}");
}

/// POSTs `body` to the events endpoint with exactly these extra headers.
async fn post_raw(base: &str, body: Vec<u8>, headers: &[(&str, String)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(events_url(base))
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.body(body).send().await.unwrap()
}

/// POST {base}{path} as the client `(id, secret)` (`client_secret_basic`).
async fn client_post(
    base: &str,
    path: &str,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn refresh_at(base: &str, client: (&str, &str), token: &str) -> reqwest::Response {
    client_post(
        base,
        "/token",
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

/// The `error` of a 400 token response.
async fn grant_error(r: reqwest::Response) -> String {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    body["error"].as_str().unwrap_or_default().to_string()
}

async fn userinfo_status(base: &str, access_token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Introspection (RFC 7662) by the client the token was issued to.
async fn introspect(base: &str, client: (&str, &str), token: &str) -> Value {
    let r = client_post(base, "/introspect", client, &[("token", token)]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `prompt=none` for `app-basic` from this browser: `None` when a code came
/// back, else the error.
async fn silent(base: &str, browser: &Browser) -> Option<String> {
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    let mut params = auth_params(BASIC.0, "silent", "n");
    params.push(("prompt", "none"));
    url.query_pairs_mut().extend_pairs(&params);
    let r = browser.get(url.as_str()).await;
    assert_eq!(r.status(), 302, "prompt=none always redirects");
    let back = location(&r);
    assert!(back.as_str().starts_with(REDIRECT_URI), "{back}");
    match param(&back, "error") {
        Some(e) => Some(e),
        None => {
            assert!(param(&back, "code").is_some(), "{back}");
            None
        }
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// A person signed in through one SSO session to two applications:
/// `app-refresh` (refresh tokens, back-channel logout when set up) and
/// `app-basic` (an access token only).
struct Person {
    browser: Browser,
    sub: String,
    sid: Option<String>,
    /// `app-refresh`'s current refresh and access tokens.
    refresh_token: String,
    access_token: String,
    /// `app-basic`'s access token.
    basic_access_token: String,
}

/// Signs `user` in at `bridge` to both applications.
async fn sign_in(bridge: &Bridge, user: &str) -> Person {
    let browser = Browser::new();
    let tokens = common::browser::sign_in_and_redeem(
        bridge,
        &browser,
        ClientAuth::Other(REFRESH.0, REFRESH.1),
        "openid email offline_access",
        user,
    )
    .await;
    let claims = id_claims(&tokens);
    // The second application, through the session (no trip to Slack).
    let r = browser
        .authorize(bridge, &auth_params(BASIC.0, "st", "n"))
        .await;
    let back = location(&r);
    let code = param(&back, "code").unwrap_or_else(|| panic!("signed in through SSO: {back}"));
    let r = redeem(bridge, ClientAuth::Basic, &code, None).await;
    assert_eq!(r.status(), 200);
    let basic: Value = r.json().await.unwrap();
    Person {
        browser,
        sub: s(&claims, "sub"),
        sid: claims["sid"].as_str().map(str::to_string),
        refresh_token: s(&tokens, "refresh_token"),
        access_token: s(&tokens, "access_token"),
        basic_access_token: s(&basic, "access_token"),
    }
}

/// Everything of the person's works at `base`: `prompt=none`, userinfo and
/// introspection of both applications' tokens, and a refresh (whose new
/// tokens the person keeps).
async fn assert_signed_in(base: &str, p: &mut Person, who: &str) {
    assert_eq!(
        silent(base, &p.browser).await,
        None,
        "{who}: prompt=none still signs in"
    );
    for (client, token) in [(REFRESH, &p.access_token), (BASIC, &p.basic_access_token)] {
        assert_eq!(
            userinfo_status(base, token).await,
            200,
            "{who}: {}'s access token still works at userinfo",
            client.0
        );
        assert_eq!(
            introspect(base, client, token).await["active"],
            true,
            "{who}: {}'s access token is still active",
            client.0
        );
    }
    let r = refresh_at(base, REFRESH, &p.refresh_token).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{who}: the refresh token still works: {body}");
    p.refresh_token = s(&body, "refresh_token");
    p.access_token = s(&body, "access_token");
}

/// Nothing of the person's works at `base` any more.
async fn assert_signed_out(base: &str, p: &Person, who: &str) {
    assert_eq!(
        silent(base, &p.browser).await.as_deref(),
        Some("login_required"),
        "{who}: prompt=none after the sign-out"
    );
    for (client, token) in [(REFRESH, &p.access_token), (BASIC, &p.basic_access_token)] {
        assert_eq!(
            userinfo_status(base, token).await,
            401,
            "{who}: {}'s access token at userinfo",
            client.0
        );
        assert_eq!(
            introspect(base, client, token).await,
            json!({"active": false}),
            "{who}: {}'s access token at introspection",
            client.0
        );
    }
    assert_eq!(
        introspect(base, REFRESH, &p.refresh_token).await,
        json!({"active": false}),
        "{who}: the refresh token at introspection"
    );
    assert_eq!(
        grant_error(refresh_at(base, REFRESH, &p.refresh_token).await).await,
        "invalid_grant",
        "{who}: the refresh token"
    );
}

/// Waits (up to `WITHIN`) for the person's tokens to die, then checks that
/// everything of theirs ended.
async fn assert_signed_out_soon(base: &str, p: &Person, who: &str) {
    let deadline = Instant::now() + WITHIN;
    while introspect(base, REFRESH, &p.access_token).await["active"] == true {
        assert!(
            Instant::now() < deadline,
            "{who} is still signed in {WITHIN:?} after the event"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_signed_out(base, p, who).await;
}

/// The `logout_token` of a back-channel logout request body.
fn logout_token(body: &str) -> String {
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no logout_token in {body}"))
}

/// Exactly one logout token arrived, for `app-refresh`, naming the person
/// (and their session); verified against the bridge's keys.
async fn assert_one_logout_token_for(bridge: &Bridge, receiver: &Receiver, p: &Person) {
    let first = receiver.wait_for(1, WITHIN).await;
    assert!(!first.is_empty(), "no back-channel logout arrived");
    // Anything more would have come right behind the first.
    let bodies = receiver.wait_for(2, Duration::from_millis(500)).await;
    assert_eq!(
        bodies.len(),
        1,
        "one logout token, to the one application with a back-channel URI"
    );
    let token = logout_token(&bodies[0]);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = common::browser::verify_id_token(bridge, &token, REFRESH.0).await;
    assert_eq!(claims["sub"], p.sub.as_str());
    assert_eq!(claims["aud"], REFRESH.0);
    assert_eq!(claims["iss"], bridge.base.as_str());
    assert!(claims["events"][BACKCHANNEL_EVENT].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    if let Some(sid) = &p.sid {
        assert_eq!(claims["sid"], sid.as_str(), "the ended session is named");
    }
}

fn with_events(mut setup: Setup) -> Setup {
    setup.events = true;
    setup
}

// ---------------------------------------------------------------------------
// The endpoint

async fn without_a_signing_secret_there_is_no_events_endpoint(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let r = deliver(&bridge.base, &url_verification("challenge-1"), None).await;
    assert_eq!(r.status(), 404, "no signing secret, no endpoint");
    let event = tokens_revoked_event("T0000000001", &[ADA]);
    assert_eq!(deliver(&bridge.base, &event, None).await.status(), 404);
}

async fn slack_gets_its_url_verification_challenge_back(setup: Setup) {
    let bridge = Bridge::start(with_events(setup)).await;
    let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
    let r = deliver(&bridge.base, &url_verification(challenge), None).await;
    assert_eq!(r.status(), 200);
    let mime = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(mime.starts_with("application/json"), "{mime}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["challenge"], challenge);

    // Slack's check is signed like any event: an unsigned one is refused.
    let r = events::send_event(
        &events_url(&bridge.base),
        SIGNING_SECRET,
        &url_verification(challenge),
        Signature::Bad,
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains(challenge));
}

/// Each way a request may fail Slack's signature check is a 401 and does
/// nothing: the person a would-be deactivation names keeps every session
/// and token. The same event, correctly signed, then does sign them out.
async fn requests_not_signed_by_slack_are_refused_and_change_nothing(mut setup: Setup) {
    let receiver = Receiver::start().await;
    setup.backchannel_uri = Some(receiver.url.clone());
    let bridge = Bridge::start(with_events(setup)).await;
    let base = bridge.base.clone();
    let mut ada = sign_in(&bridge, ADA).await;

    let control = &bridge.standin.control;
    let before = user_change_event(control, &standin_user(ADA));
    control.set_user_deleted(ADA, true);
    let deactivation = user_change_event(control, &standin_user(ADA));
    assert_eq!(deactivation["event"]["user"]["deleted"], true);
    let body = serde_json::to_vec(&deactivation).unwrap();

    let refused = |label: &'static str, r: reqwest::Response| async move {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 401, "{label}: {text}");
        assert!(
            !text.contains(SIGNING_SECRET),
            "{label}: the answer names no secret"
        );
    };

    for (label, signature) in [
        ("signed with another secret", Signature::Bad),
        ("timestamped 10 minutes ago", Signature::Stale),
    ] {
        let r = events::send_event(
            &events_url(&base),
            SIGNING_SECRET,
            &deactivation,
            signature,
            None,
        )
        .await
        .unwrap();
        refused(label, r).await;
    }

    let at = now();
    let good_signature = slack_signature(SIGNING_SECRET, at, &body);
    let timestamp = ("X-Slack-Request-Timestamp", at.to_string());
    let signature = ("X-Slack-Signature", good_signature.clone());
    refused("no headers", post_raw(&base, body.clone(), &[]).await).await;
    refused(
        "no signature",
        post_raw(&base, body.clone(), std::slice::from_ref(&timestamp)).await,
    )
    .await;
    refused(
        "no timestamp",
        post_raw(&base, body.clone(), std::slice::from_ref(&signature)).await,
    )
    .await;
    refused(
        "a timestamp that is not a number",
        post_raw(
            &base,
            body.clone(),
            &[
                ("X-Slack-Request-Timestamp", "now".to_string()),
                signature.clone(),
            ],
        )
        .await,
    )
    .await;
    refused(
        "the timestamp changed after signing",
        post_raw(
            &base,
            body.clone(),
            &[
                ("X-Slack-Request-Timestamp", (at - 1).to_string()),
                signature.clone(),
            ],
        )
        .await,
    )
    .await;
    refused(
        "a signature from the future (timestamp 10 minutes ahead)",
        post_raw(
            &base,
            body.clone(),
            &[
                ("X-Slack-Request-Timestamp", (at + 600).to_string()),
                (
                    "X-Slack-Signature",
                    slack_signature(SIGNING_SECRET, at + 600, &body),
                ),
            ],
        )
        .await,
    )
    .await;
    // A harmless event signed, the deactivation sent under its signature.
    let harmless = serde_json::to_vec(&before).unwrap();
    refused(
        "the body changed after signing",
        post_raw(
            &base,
            body.clone(),
            &signed_headers(SIGNING_SECRET, &harmless, Signature::Good, None, now()),
        )
        .await,
    )
    .await;
    // One byte appended to a correctly signed body.
    let mut longer = body.clone();
    longer.push(b' ');
    refused(
        "a byte appended after signing",
        post_raw(
            &base,
            longer,
            &signed_headers(SIGNING_SECRET, &body, Signature::Good, None, now()),
        )
        .await,
    )
    .await;

    assert_signed_in(&base, &mut ada, "Ada after refused events").await;
    assert!(
        receiver
            .wait_for(1, Duration::from_millis(300))
            .await
            .is_empty(),
        "no application was told anything"
    );

    // The control: the same event, signed by Slack, is acted on.
    deliver_ok(&base, &deactivation).await;
    assert_signed_out_soon(&base, &ada, "Ada after the signed deactivation").await;
}

async fn an_oversized_body_is_refused_without_a_server_error(setup: Setup) {
    let bridge = Bridge::start(with_events(setup)).await;
    // Correctly signed and valid JSON, but well over the body limit.
    let huge = url_verification(&"x".repeat(200 * 1024));
    let r = deliver(&bridge.base, &huge, None).await;
    assert_eq!(r.status(), 413, "a body over the limit is refused");
    // Still serving.
    let r = deliver(&bridge.base, &url_verification("after"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["challenge"], "after");
}

async fn unknown_event_types_are_acknowledged_and_ignored(setup: Setup) {
    let bridge = Bridge::start(with_events(setup)).await;
    let mut ada = sign_in(&bridge, ADA).await;
    // An event the bridge does not subscribe to, naming Ada.
    let mut reaction = tokens_revoked_event("T0000000001", &[ADA]);
    reaction["event"] = json!({
        "type": "reaction_added",
        "user": ADA,
        "reaction": "thumbsup",
        "tokens": {"oauth": [ADA]},
        "event_ts": "1700000000.000100",
    });
    deliver_ok(&bridge.base, &reaction).await;
    // An envelope type the bridge does not know (Slack sends this one).
    let rate_limited = json!({
        "token": events::VERIFICATION_TOKEN,
        "type": "app_rate_limited",
        "team_id": "T0000000001",
        "minute_rate_limited": 1_700_000_000,
        "api_app_id": events::API_APP_ID,
    });
    deliver_ok(&bridge.base, &rate_limited).await;
    // Events that matter to nobody here: another app's bot tokens revoked.
    let mut bots = tokens_revoked_event("T0000000001", &[]);
    bots["event"]["tokens"]["bot"] = json!(["U00000000B9"]);
    deliver_ok(&bridge.base, &bots).await;
    assert_signed_in(&bridge.base, &mut ada, "Ada after events for nobody").await;
}

async fn a_signed_body_that_is_not_json_is_a_bad_request(setup: Setup) {
    let bridge = Bridge::start(with_events(setup)).await;
    let url = events_url(&bridge.base);
    for body in [
        b"{\"type\":\"event_callback\",".to_vec(),
        b"type=url_verification&challenge=x".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\"url_verification\"".to_vec(),
        Vec::new(),
    ] {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let r = events::send_event_bytes(&url, SIGNING_SECRET, body, Signature::Good, None)
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{shown:?}");
    }
    // An event callback without its id cannot be handled once.
    let mut event = tokens_revoked_event("T0000000001", &[ADA]);
    event.as_object_mut().unwrap().remove("event_id");
    assert_eq!(deliver(&bridge.base, &event, None).await.status(), 400);
}

// ---------------------------------------------------------------------------
// Deactivation, revoked tokens, guests

async fn a_deactivation_signs_the_person_out_everywhere_and_tells_the_applications(
    mut setup: Setup,
) {
    let receiver = Receiver::start().await;
    setup.backchannel_uri = Some(receiver.url.clone());
    let bridge = Bridge::start(with_events(setup)).await;
    let ada = sign_in(&bridge, ADA).await;
    assert_eq!(ada.sub, ADA_SUB);
    let mut grace = sign_in(&bridge, GRACE).await;

    let control = &bridge.standin.control;
    control.set_user_deleted(ADA, true);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;

    assert_signed_out_soon(&bridge.base, &ada, "Ada, deactivated").await;
    assert_one_logout_token_for(&bridge, &receiver, &ada).await;
    assert_signed_in(&bridge.base, &mut grace, "Grace").await;
}

async fn revoked_slack_tokens_sign_the_person_out_everywhere(mut setup: Setup) {
    let receiver = Receiver::start().await;
    setup.backchannel_uri = Some(receiver.url.clone());
    let bridge = Bridge::start(with_events(setup)).await;
    let ada = sign_in(&bridge, ADA).await;
    let mut grace = sign_in(&bridge, GRACE).await;

    bridge.standin.control.revoke_user_tokens(ADA);
    deliver_ok(&bridge.base, &tokens_revoked_event("T0000000001", &[ADA])).await;

    assert_signed_out_soon(&bridge.base, &ada, "Ada, tokens revoked").await;
    assert_one_logout_token_for(&bridge, &receiver, &ada).await;
    assert_signed_in(&bridge.base, &mut grace, "Grace").await;

    // The same user id in another workspace is another person.
    let mut ada2 = sign_in(&bridge, ADA).await;
    deliver_ok(&bridge.base, &tokens_revoked_event("T0000000002", &[ADA])).await;
    assert_signed_in(&bridge.base, &mut ada2, "Ada after a revocation elsewhere").await;
}

async fn a_change_to_guest_signs_the_person_out_but_a_change_that_does_not_matter_does_not(
    setup: Setup,
) {
    let bridge = Bridge::start(with_events(setup)).await;
    let mut ada = sign_in(&bridge, ADA).await;
    let control = &bridge.standin.control;

    // Still a full member (a profile edit, say): nothing ends.
    let unchanged = user_change_event(control, &standin_user(ADA));
    assert_eq!(unchanged["event"]["user"]["deleted"], false);
    deliver_ok(&bridge.base, &unchanged).await;
    assert_signed_in(&bridge.base, &mut ada, "Ada, still a member").await;

    // Guests are not admitted by default.
    control.set_user_guest(ADA, GuestKind::MultiChannel);
    let guest = user_change_event(control, &standin_user(ADA));
    assert_eq!(guest["event"]["user"]["is_restricted"], true);
    deliver_ok(&bridge.base, &guest).await;
    assert_signed_out_soon(&bridge.base, &ada, "Ada, now a guest").await;

    // A single-channel guest too.
    let mut ada = sign_in(&bridge, ADA).await;
    assert_signed_in(&bridge.base, &mut ada, "Ada, signed in again").await;
    control.set_user_guest(ADA, GuestKind::SingleChannel);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;
    assert_signed_out_soon(&bridge.base, &ada, "Ada, now a single-channel guest").await;
}

async fn where_guests_are_admitted_a_change_to_guest_signs_nobody_out(mut setup: Setup) {
    setup
        .env
        .push(("BRIDGE_UPSTREAM__ALLOW_GUESTS".into(), "true".into()));
    let bridge = Bridge::start(with_events(setup)).await;
    let mut ada = sign_in(&bridge, ADA).await;
    let control = &bridge.standin.control;
    control.set_user_guest(ADA, GuestKind::MultiChannel);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;
    assert_signed_in(&bridge.base, &mut ada, "Ada, a guest where guests may be").await;
    // A deactivation still counts.
    control.set_user_deleted(ADA, true);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;
    assert_signed_out_soon(&bridge.base, &ada, "Ada, deactivated").await;
}

/// One application admits guests: a change to guest ends only the
/// person's tokens for the others, and the session stays for that one.
async fn a_change_to_guest_ends_only_what_the_applications_refusing_guests_hold(mut setup: Setup) {
    setup.directory = true;
    // The harness's fourth client is app-refresh.
    setup
        .env
        .push(("BRIDGE_CLIENTS__3__ALLOW_GUESTS".into(), "true".into()));
    let bridge = Bridge::start(with_events(setup)).await;
    let ada = sign_in(&bridge, ADA).await;
    let control = &bridge.standin.control;
    control.set_user_guest(ADA, GuestKind::MultiChannel);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;
    assert_eq!(
        userinfo_status(&bridge.base, &ada.basic_access_token).await,
        401,
        "app-basic does not admit guests: its tokens end"
    );
    assert_eq!(
        userinfo_status(&bridge.base, &ada.access_token).await,
        200,
        "app-refresh admits guests: its tokens stay"
    );
    let r = refresh_at(&bridge.base, REFRESH, &ada.refresh_token).await;
    assert_eq!(r.status(), 200, "app-refresh's refresh still works");
    // The session stays, but carries her only where guests are admitted.
    let r = ada
        .browser
        .authorize(&bridge, &auth_params(BASIC.0, "st", "n"))
        .await;
    let back = location(&r);
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    let r = ada
        .browser
        .authorize(&bridge, &auth_params(REFRESH.0, "st", "n"))
        .await;
    assert!(param(&location(&r), "code").is_some());
}

/// With the directory on, the person's standing was cached at sign-in for
/// the TTL (300 s); the event replaces it at once, so signing back in is
/// refused straight away.
async fn with_the_directory_a_deactivated_person_cannot_sign_back_in(mut setup: Setup) {
    setup.directory = true;
    let bridge = Bridge::start(with_events(setup)).await;
    let ada = sign_in(&bridge, ADA).await;
    let control = &bridge.standin.control;
    control.set_user_deleted(ADA, true);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;
    assert_signed_out_soon(&bridge.base, &ada, "Ada, deactivated").await;

    let back = Browser::new()
        .sign_in(&bridge, &auth_params(BASIC.0, "again", "n"), ADA)
        .await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    assert!(param(&back, "code").is_none(), "{back}");
}

/// An application holds a code from the person's session, not yet redeemed,
/// when Slack deactivates them: the code must not turn into fresh tokens
/// after the sign-out.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_issued_before_a_deactivation_gives_no_tokens_after_it() {
    let bridge = Bridge::start(with_events(Setup::default())).await;
    let ada = sign_in(&bridge, ADA).await;
    let r = ada
        .browser
        .authorize(&bridge, &auth_params(BASIC.0, "st", "n"))
        .await;
    let code = param(&location(&r), "code").expect("a code through the session");

    let control = &bridge.standin.control;
    control.set_user_deleted(ADA, true);
    deliver_ok(
        &bridge.base,
        &user_change_event(control, &standin_user(ADA)),
    )
    .await;
    assert_signed_out_soon(&bridge.base, &ada, "Ada, deactivated").await;

    let r = redeem(&bridge, ClientAuth::Basic, &code, None).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a code from the ended session must give no tokens: {body}"
    );
}

// ---------------------------------------------------------------------------
// Retries

async fn a_retried_delivery_is_handled_once(setup: Setup) {
    let bridge = Bridge::start(with_events(setup)).await;
    let base = bridge.base.clone();
    let ada = sign_in(&bridge, ADA).await;
    let event = with_event_id(tokens_revoked_event("T0000000001", &[ADA]), "EvRETRIED0001");
    deliver_ok(&base, &event).await;
    assert_signed_out_soon(&base, &ada, "Ada after the first delivery").await;

    // She signs in again; Slack then retries the delivery it thinks failed.
    let mut again = sign_in(&bridge, ADA).await;
    for retry in 1..=3 {
        let r = deliver(&base, &event, Some(retry)).await;
        assert_eq!(
            r.status(),
            200,
            "a retry is acknowledged, or Slack keeps retrying"
        );
        assert_signed_in(&base, &mut again, "Ada's new sign-in after a retry").await;
    }

    // A new event (a new id) is acted on.
    deliver_ok(
        &base,
        &with_event_id(tokens_revoked_event("T0000000001", &[ADA]), "EvRETRIED0002"),
    )
    .await;
    assert_signed_out_soon(&base, &again, "Ada after a new event").await;
}

// ---------------------------------------------------------------------------
// Enterprise Grid

async fn a_grid_person_is_signed_out_under_the_enterprise_subject(setup: Setup) {
    let bridge = Bridge::start(with_events(setup)).await;
    let katherine = sign_in(&bridge, KATHERINE).await;
    assert_eq!(katherine.sub, KATHERINE_SUB);
    let mut ada = sign_in(&bridge, ADA).await;

    let mut event = tokens_revoked_event("T0000000003", &[KATHERINE]);
    event["enterprise_id"] = json!("E0000000001");
    event["authorizations"][0]["enterprise_id"] = json!("E0000000001");
    deliver_ok(&bridge.base, &event).await;
    assert_signed_out_soon(&bridge.base, &katherine, "Katherine, tokens revoked").await;
    assert_signed_in(&bridge.base, &mut ada, "Ada").await;

    // A deactivation names her enterprise in the user object.
    let katherine = sign_in(&bridge, KATHERINE).await;
    let control = &bridge.standin.control;
    control.set_user_deleted(KATHERINE, true);
    let event = user_change_event(control, &standin_user(KATHERINE));
    assert_eq!(
        event["event"]["user"]["enterprise_user"]["enterprise_id"],
        "E0000000001"
    );
    deliver_ok(&bridge.base, &event).await;
    assert_signed_out_soon(&bridge.base, &katherine, "Katherine, deactivated").await;
}

// ---------------------------------------------------------------------------
// User groups

async fn a_change_of_group_members_drops_the_cached_groups_at_once(mut setup: Setup) {
    setup.directory = true;
    setup.extra_toml.push_str(&format!(
        "[[clients]]\nclient_id = \"{}\"\nclient_secret = \"{}\"\nredirect_uris = [\"{REDIRECT_URI}\"]\ngrant_types = [\"authorization_code\", \"refresh_token\"]\nallowed_groups = [\"engineering\"]\n",
        ENGINEERING.0, ENGINEERING.1
    ));
    let bridge = Bridge::start(with_events(setup)).await;
    let control = &bridge.standin.control;
    let tokens = common::browser::sign_in_and_redeem(
        &bridge,
        &Browser::new(),
        ClientAuth::Other(ENGINEERING.0, ENGINEERING.1),
        "openid offline_access",
        ADA,
    )
    .await;
    let r = refresh_at(&bridge.base, ENGINEERING, &s(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), 200, "Ada is in engineering");
    let tokens: Value = r.json().await.unwrap();

    control.set_group_members("engineering", &[]);
    let lists = control.calls("usergroups.list");
    // Without an event, the cached groups stand for the TTL (300 s).
    let r = refresh_at(&bridge.base, ENGINEERING, &s(&tokens, "refresh_token")).await;
    assert_eq!(r.status(), 200, "the cached groups still stand");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(control.calls("usergroups.list"), lists, "served from cache");

    deliver_ok(
        &bridge.base,
        &subteam_members_changed_event("T0000000001", "S0000000001", &[], &[ADA]),
    )
    .await;
    assert_eq!(
        grant_error(refresh_at(&bridge.base, ENGINEERING, &s(&tokens, "refresh_token")).await)
            .await,
        "invalid_grant",
        "no longer in engineering, and Slack was asked again at once"
    );
    assert_eq!(
        control.calls("usergroups.list"),
        lists + 1,
        "the groups were fetched afresh"
    );
}

on_both_stores!(
    without_a_signing_secret_there_is_no_events_endpoint,
    slack_gets_its_url_verification_challenge_back,
    requests_not_signed_by_slack_are_refused_and_change_nothing,
    an_oversized_body_is_refused_without_a_server_error,
    unknown_event_types_are_acknowledged_and_ignored,
    a_signed_body_that_is_not_json_is_a_bad_request,
    a_deactivation_signs_the_person_out_everywhere_and_tells_the_applications,
    revoked_slack_tokens_sign_the_person_out_everywhere,
    a_change_to_guest_signs_the_person_out_but_a_change_that_does_not_matter_does_not,
    where_guests_are_admitted_a_change_to_guest_signs_nobody_out,
    a_change_to_guest_ends_only_what_the_applications_refusing_guests_hold,
    with_the_directory_a_deactivated_person_cannot_sign_back_in,
    a_retried_delivery_is_handled_once,
    a_grid_person_is_signed_out_under_the_enterprise_subject,
    a_change_of_group_members_drops_the_cached_groups_at_once,
);

// ---------------------------------------------------------------------------
// Several instances (Redis only)

#[tokio::test(flavor = "multi_thread")]
async fn an_event_reaching_one_instance_signs_the_person_out_on_every_instance() {
    let redis = RedisServer::start();
    let receiver = Receiver::start().await;
    let a = Bridge::start(Setup {
        redis_url: Some(redis.url.clone()),
        events: true,
        backchannel_uri: Some(receiver.url.clone()),
        ..Default::default()
    })
    .await;
    let b = a.start_sibling(&[]).await;
    let mut ada = sign_in(&a, ADA).await;
    // Cookies are per host, not per port: B sees the session A opened.
    assert_signed_in(&b.base, &mut ada, "Ada on B before the event").await;

    let event = tokens_revoked_event("T0000000001", &[ADA]);
    deliver_ok(&a.base, &event).await;
    // At once on B: the answer went out after the work was done.
    assert_eq!(
        grant_error(refresh_at(&b.base, REFRESH, &ada.refresh_token).await).await,
        "invalid_grant",
        "Ada's refresh on B"
    );
    assert_eq!(userinfo_status(&b.base, &ada.access_token).await, 401);
    assert_eq!(
        silent(&b.base, &ada.browser).await.as_deref(),
        Some("login_required")
    );
    assert_signed_out(&b.base, &ada, "Ada on B").await;
    assert_signed_out(&a.base, &ada, "Ada on A").await;
    assert_one_logout_token_for(&a, &receiver, &ada).await;

    // The delivery is remembered in the store: Slack's retry reaching B
    // does not end her new sign-in.
    let mut again = sign_in(&a, ADA).await;
    let r = deliver(&b.base, &event, Some(1)).await;
    assert_eq!(r.status(), 200);
    assert_signed_in(&b.base, &mut again, "Ada's new sign-in after a retry on B").await;
    drop(b);
    drop(redis);
}

// ---------------------------------------------------------------------------
// The command line

fn sessions(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("sessions")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("BRIDGE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn list(bridge: &Bridge, sub: &str, json: bool) -> Output {
    let config = bridge.config_path.to_str().unwrap();
    let mut args = vec!["list", "--config", config, "--user", sub];
    if json {
        args.push("--json");
    }
    sessions(bridge.dir.path(), &args)
}

fn list_json(bridge: &Bridge, sub: &str) -> Vec<Value> {
    let out = list(bridge, sub, true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sessions list --json is not JSON ({e}): {}",
            text(&out.stdout)
        )
    });
    rows.as_array().expect("a JSON array").clone()
}

fn applications(row: &Value) -> Vec<String> {
    let mut apps: Vec<String> = row["applications"]
        .as_array()
        .unwrap_or_else(|| panic!("no applications in {row}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    apps.sort();
    apps
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_list_shows_and_sessions_revoke_ends_a_persons_sessions() {
    let redis = RedisServer::start();
    let receiver = Receiver::start().await;
    let bridge = Bridge::start(Setup {
        redis_url: Some(redis.url.clone()),
        backchannel_uri: Some(receiver.url.clone()),
        ..Default::default()
    })
    .await;
    let ada = sign_in(&bridge, ADA).await;
    let mut grace = sign_in(&bridge, GRACE).await;
    let grace_sub = grace.sub.clone();

    // The table.
    let out = list(&bridge, ADA_SUB, false);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(rows[0].starts_with("KIND"), "a header: {stdout}");
    let session_rows: Vec<&&str> = rows.iter().filter(|r| r.starts_with("session ")).collect();
    assert_eq!(session_rows.len(), 1, "one session: {stdout}");
    assert!(
        session_rows[0].contains(REFRESH.0) && session_rows[0].contains(BASIC.0),
        "the session names both applications: {stdout}"
    );
    for app in [REFRESH.0, BASIC.0] {
        assert_eq!(
            rows.iter()
                .filter(|r| r.starts_with("token family") && r.trim_end().ends_with(app))
                .count(),
            1,
            "one token family of {app}: {stdout}"
        );
    }
    assert!(
        !stdout.contains(&ada.refresh_token) && !stdout.contains(&ada.access_token),
        "no token is shown"
    );

    // The same as JSON.
    let rows = list_json(&bridge, ADA_SUB);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        let created = row["created_at"]
            .as_i64()
            .unwrap_or_else(|| panic!("{row}"));
        let last_used = row["last_used_at"].as_i64().unwrap();
        assert!(created > 1_600_000_000 && last_used >= created, "{row}");
        assert!(row["kind"].is_string(), "{row}");
    }
    let session = rows.iter().find(|r| r["kind"] == "session").unwrap();
    assert_eq!(applications(session), vec![BASIC.0, REFRESH.0]);
    let mut families: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| r["kind"] == "token family")
        .map(applications)
        .collect();
    families.sort();
    assert_eq!(families, vec![vec![BASIC.0], vec![REFRESH.0]]);

    // Revoke.
    let config = bridge.config_path.to_str().unwrap();
    let out = sessions(
        bridge.dir.path(),
        &["revoke", "--config", config, "--user", ADA_SUB],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(
        stdout.contains("ended 1 session and 2 token families"),
        "{stdout}"
    );
    assert!(
        stdout.contains("back-channel logout delivered to 1 of 1") && stdout.contains(REFRESH.0),
        "{stdout}"
    );
    assert_one_logout_token_for(&bridge, &receiver, &ada).await;
    assert_signed_out(&bridge.base, &ada, "Ada after sessions revoke").await;

    let out = list(&bridge, ADA_SUB, false);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("no live session or token family"),
        "{}",
        text(&out.stdout)
    );
    assert!(list_json(&bridge, ADA_SUB).is_empty());

    // Grace is untouched.
    assert_eq!(list_json(&bridge, &grace_sub).len(), 3);
    assert_signed_in(&bridge.base, &mut grace, "Grace").await;

    // Nothing left: a second revoke ends nothing and tells nobody.
    let out = sessions(
        bridge.dir.path(),
        &["revoke", "--config", config, "--user", ADA_SUB],
    );
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ended 0 sessions and 0 token families"),
        "{stdout}"
    );
    assert!(!stdout.contains("back-channel"), "{stdout}");
    drop(redis);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_commands_refuse_a_malformed_user() {
    let redis = RedisServer::start();
    let bridge = Bridge::start(Setup {
        redis_url: Some(redis.url.clone()),
        ..Default::default()
    })
    .await;
    let ada = sign_in(&bridge, ADA).await;
    let config = bridge.config_path.to_str().unwrap();
    for user in [
        "U0000000001",
        "T0000000001:",
        "T0000000001:U0000000001:x",
        "",
    ] {
        for command in ["list", "revoke"] {
            let out = sessions(
                bridge.dir.path(),
                &[command, "--config", config, "--user", user],
            );
            let stderr = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} --user {user:?}: {stderr}"
            );
            assert!(stderr.contains("--user"), "names --user: {stderr}");
        }
    }
    // Nothing was ended on the way.
    assert_eq!(list_json(&bridge, &ada.sub).len(), 3);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_commands_explain_that_the_memory_store_is_out_of_reach() {
    let bridge = Bridge::start(Setup::default()).await;
    let mut ada = sign_in(&bridge, ADA).await;
    let config = bridge.config_path.to_str().unwrap();
    for args in [
        vec!["list", "--config", config, "--user", ADA_SUB],
        vec!["list", "--config", config, "--user", ADA_SUB, "--json"],
        vec!["revoke", "--config", config, "--user", ADA_SUB],
    ] {
        let out = sessions(bridge.dir.path(), &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("memory") && stderr.contains("inside the running server"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }
    assert_signed_in(&bridge.base, &mut ada, "Ada, out of the command's reach").await;
}
