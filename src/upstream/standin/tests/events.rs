//! Signed events: the signature, the sender's headers, the envelopes, and
//! the `/admin` page that announces its changes as events.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::upstream::standin::events::{
    self, APP_BOT_USER_ID, STALE_SECS, VERIFICATION_TOKEN, signed_headers,
    subteam_members_changed_event, subteam_updated_event, tokens_revoked_event, url_verification,
    user_change_event, with_event_id,
};
use crate::upstream::standin::{
    GuestKind, Signature, StandinEvents, StandinGroup, send_event, slack_signature,
};

/// One request the capture server received.
#[derive(Debug)]
struct Captured {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP server on 127.0.0.1 that answers 200 and hands over each request.
async fn capture_server() -> (
    String,
    mpsc::UnboundedReceiver<Captured>,
    actix_web::dev::ServerHandle,
) {
    let (tx, rx) = mpsc::unbounded_channel::<Captured>();
    let tx = web::Data::new(tx);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new().app_data(tx.clone()).default_service(web::to(
            |req: HttpRequest,
             body: web::Bytes,
             tx: web::Data<mpsc::UnboundedSender<Captured>>| async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
                    .collect();
                let _ = tx.send(Captured {
                    headers,
                    body: body.to_vec(),
                });
                HttpResponse::Ok().body("ok")
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}/slack/events"), rx, handle)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Captured>) -> Captured {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event arrives")
        .expect("the capture server runs")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn slack_signature_matches_fixed_vectors() {
    // Expected values computed with `openssl dgst -sha256 -hmac`.
    assert_eq!(
        slack_signature(
            "8f742231b10e8888abcd99yyyzzz85a5",
            1_531_420_618,
            b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J",
        ),
        "v0=bca5eef5dd737ed259b428b18cd24f679baa18c3fc5f1cb2a6ac9f03e717969a"
    );
    assert_eq!(
        slack_signature(
            "stand-in-signing-secret",
            1_700_000_000,
            br#"{"type":"url_verification","challenge":"abc"}"#,
        ),
        "v0=4125bc46407ea5d34326afed032dfbb6c285f41a4ded1a061aeb5a58d24b281f"
    );
}

#[test]
fn signed_headers_sign_good_bad_and_stale_requests_as_named() {
    let body = br#"{"type":"event_callback"}"#;
    let get = |h: &[(&str, String)], name: &str| {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    };

    let good = signed_headers("secret", body, Signature::Good, None, 1_700_000_000);
    assert_eq!(
        get(&good, "X-Slack-Request-Timestamp").as_deref(),
        Some("1700000000")
    );
    assert_eq!(
        get(&good, "X-Slack-Signature"),
        Some(slack_signature("secret", 1_700_000_000, body))
    );
    assert_eq!(get(&good, "X-Slack-Retry-Num"), None);
    assert_eq!(get(&good, "X-Slack-Retry-Reason"), None);

    let bad = signed_headers("secret", body, Signature::Bad, None, 1_700_000_000);
    assert_eq!(
        get(&bad, "X-Slack-Request-Timestamp").as_deref(),
        Some("1700000000")
    );
    let bad_sig = get(&bad, "X-Slack-Signature").unwrap();
    assert!(bad_sig.starts_with("v0=") && bad_sig.len() == 67);
    assert_ne!(bad_sig, slack_signature("secret", 1_700_000_000, body));

    let stale = signed_headers("secret", body, Signature::Stale, Some(2), 1_700_000_000);
    let ts = 1_700_000_000 - STALE_SECS;
    assert_eq!(
        get(&stale, "X-Slack-Request-Timestamp"),
        Some(ts.to_string())
    );
    assert_eq!(
        get(&stale, "X-Slack-Signature"),
        Some(slack_signature("secret", ts, body))
    );
    assert_eq!(get(&stale, "X-Slack-Retry-Num").as_deref(), Some("2"));
    assert_eq!(
        get(&stale, "X-Slack-Retry-Reason").as_deref(),
        Some("http_timeout")
    );
}

#[tokio::test]
async fn send_event_posts_the_json_signed_over_the_exact_bytes_sent() {
    let (url, mut rx, server) = capture_server().await;
    let body = url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    let resp = send_event(&url, "s3cret", &body, Signature::Good, None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");

    let got = next(&mut rx).await;
    assert_eq!(got.headers["content-type"], "application/json");
    let ts: i64 = got.headers["x-slack-request-timestamp"].parse().unwrap();
    assert!((ts - now()).abs() <= 5, "timestamped now");
    assert_eq!(
        got.headers["x-slack-signature"],
        slack_signature("s3cret", ts, &got.body)
    );
    assert!(!got.headers.contains_key("x-slack-retry-num"));
    assert_eq!(serde_json::from_slice::<Value>(&got.body).unwrap(), body);
    server.stop(false).await;
}

#[tokio::test]
async fn send_event_bad_stale_and_retry_requests_carry_the_matching_headers() {
    let (url, mut rx, server) = capture_server().await;
    let body = tokens_revoked_event("T0000000001", &["U0000000001"]);

    send_event(&url, "s3cret", &body, Signature::Bad, None)
        .await
        .unwrap();
    let got = next(&mut rx).await;
    let ts: i64 = got.headers["x-slack-request-timestamp"].parse().unwrap();
    assert!((ts - now()).abs() <= 5);
    assert_ne!(
        got.headers["x-slack-signature"],
        slack_signature("s3cret", ts, &got.body)
    );

    send_event(&url, "s3cret", &body, Signature::Stale, Some(1))
        .await
        .unwrap();
    let got = next(&mut rx).await;
    let ts: i64 = got.headers["x-slack-request-timestamp"].parse().unwrap();
    assert!((now() - STALE_SECS - ts).abs() <= 5, "ten minutes old");
    assert_eq!(
        got.headers["x-slack-signature"],
        slack_signature("s3cret", ts, &got.body),
        "only the age is wrong"
    );
    assert_eq!(got.headers["x-slack-retry-num"], "1");
    assert_eq!(got.headers["x-slack-retry-reason"], "http_timeout");

    events::send_event_bytes(&url, "s3cret", b"not json".to_vec(), Signature::Good, None)
        .await
        .unwrap();
    let got = next(&mut rx).await;
    assert_eq!(got.body, b"not json");
    server.stop(false).await;
}

fn assert_envelope(v: &Value, team_id: &str, event_type: &str) {
    assert_eq!(v["token"], VERIFICATION_TOKEN);
    assert_eq!(v["team_id"], team_id);
    assert_eq!(v["api_app_id"], "A0000000001");
    assert_eq!(v["type"], "event_callback");
    assert!(v["event_id"].as_str().unwrap().starts_with("Ev"));
    assert!((v["event_time"].as_i64().unwrap() - now()).abs() <= 5);
    assert_eq!(v["event"]["type"], event_type);
    assert!(v["event"]["event_ts"].as_str().unwrap().contains('.'));
    assert_eq!(v["authorizations"][0]["team_id"], team_id);
    assert_eq!(v["authorizations"][0]["user_id"], APP_BOT_USER_ID);
}

#[tokio::test]
async fn user_change_event_carries_the_users_info_user_with_current_flags() {
    let h = spawn().await;
    let c = client();
    let users = StandinUser::fixtures();
    let ada = &users[0];
    h.control.set_user_deleted("U0000000001", true);
    h.control
        .set_user_guest("U0000000001", GuestKind::SingleChannel);
    let v = user_change_event(&h.control, ada);
    assert_envelope(&v, "T0000000001", "user_change");
    assert!(v.get("enterprise_id").is_none());
    let info: Value = c
        .get(format!("{}/api/users.info?user=U0000000001", h.base_url))
        .bearer_auth(DEV_BOT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["event"]["user"], info["user"]);
    assert_eq!(v["event"]["user"]["deleted"], true);
    assert_eq!(v["event"]["user"]["is_ultra_restricted"], true);

    let katherine = users.iter().find(|u| u.user_id == "W0000000003").unwrap();
    let v = user_change_event(&h.control, katherine);
    assert_eq!(v["enterprise_id"], "E0000000001");
    assert_eq!(v["authorizations"][0]["enterprise_id"], "E0000000001");
    assert_eq!(
        v["event"]["user"]["enterprise_user"]["enterprise_id"],
        "E0000000001"
    );
    h.stop().await;
}

#[test]
fn tokens_revoked_event_lists_the_users_under_oauth() {
    let v = tokens_revoked_event("T0000000001", &["U0000000001", "U0000000004"]);
    assert_envelope(&v, "T0000000001", "tokens_revoked");
    assert_eq!(
        v["event"]["tokens"],
        json!({"oauth": ["U0000000001", "U0000000004"], "bot": []})
    );
}

#[test]
fn subteam_events_carry_the_change_and_the_group() {
    let v = subteam_members_changed_event(
        "T0000000001",
        "S0000000001",
        &["U0000000004"],
        &["U0000000005"],
    );
    assert_envelope(&v, "T0000000001", "subteam_members_changed");
    let e = &v["event"];
    assert_eq!(e["subteam_id"], "S0000000001");
    assert_eq!(e["team_id"], "T0000000001");
    assert_eq!(e["added_users"], json!(["U0000000004"]));
    assert_eq!(e["added_users_count"], "1");
    assert_eq!(e["removed_users"], json!(["U0000000005"]));
    assert_eq!(e["removed_users_count"], "1");

    let group = StandinGroup::fixtures().remove(0);
    let v = subteam_updated_event(&group);
    assert_envelope(&v, "T0000000001", "subteam_updated");
    let s = &v["event"]["subteam"];
    assert_eq!(s["id"], "S0000000001");
    assert_eq!(s["handle"], "engineering");
    assert_eq!(s["users"], json!(["U0000000001", "U0000000005"]));
    assert_eq!(s["user_count"], 2);
    assert_eq!(s["date_delete"], 0);
}

#[test]
fn url_verification_and_event_ids() {
    assert_eq!(
        url_verification("ch4ll"),
        json!({"token": VERIFICATION_TOKEN, "challenge": "ch4ll", "type": "url_verification"})
    );
    let a = tokens_revoked_event("T0000000001", &[]);
    let b = tokens_revoked_event("T0000000001", &[]);
    assert_ne!(a["event_id"], b["event_id"], "random by default");
    let fixed = with_event_id(a, "Ev0000000001");
    assert_eq!(fixed["event_id"], "Ev0000000001");
    assert_eq!(fixed["type"], "event_callback");
}

/// A stand-in whose admin page announces to a capture server.
async fn spawn_announcing() -> (
    StandinHandle,
    mpsc::UnboundedReceiver<Captured>,
    actix_web::dev::ServerHandle,
) {
    let (url, rx, server) = capture_server().await;
    let h = start(StandinOptions {
        events: Some(StandinEvents {
            url,
            signing_secret: "admin-secret".into(),
        }),
        ..options(false)
    })
    .await
    .unwrap();
    (h, rx, server)
}

fn verified_json(got: &Captured) -> Value {
    let ts: i64 = got.headers["x-slack-request-timestamp"].parse().unwrap();
    assert_eq!(
        got.headers["x-slack-signature"],
        slack_signature("admin-secret", ts, &got.body)
    );
    serde_json::from_slice(&got.body).unwrap()
}

async fn admin_post(
    h: &StandinHandle,
    c: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    c.post(format!("{}{path}", h.base_url))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_page_lists_every_user_with_their_status_and_actions() {
    let h = spawn().await;
    let c = client();
    h.control.set_user_deleted("U0000000004", true);
    let resp = c.get(format!("{}/admin", h.base_url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    for user in StandinUser::fixtures() {
        assert!(html.contains(&format!("id=\"{}\"", user.user_id)));
    }
    assert!(html.contains("No event endpoint is configured"));
    let row = |id: &str| {
        let start = html.find(&format!("<tr id=\"{id}\"")).unwrap();
        let end = html[start..].find("</tr>").unwrap();
        html[start..start + end].to_owned()
    };
    assert!(row("U0000000004").contains("deactivated"));
    assert!(row("U0000000004").contains("value=\"reactivate\""));
    assert!(row("U0000000001").contains("value=\"deactivate\""));
    assert!(row("U0000000005").contains("value=\"member\""));
    assert!(row("U0000000001").contains("value=\"guest\""));
    assert!(row("U0000000001").contains("value=\"revoke\""));
    // Toggles for the enabled groups of the user's own workspace only.
    assert!(row("U0000000001").contains("@engineering ✓"));
    assert!(row("U0000000004").contains("@engineering +"));
    assert!(!row("U0000000001").contains("@old-team"));
    assert!(!row("U0000000001").contains("@grid-eng"));
    assert!(row("W0000000003").contains("@grid-eng ✓"));
    h.stop().await;
}

#[tokio::test]
async fn admin_user_actions_change_the_directory_and_send_signed_events() {
    let (h, mut rx, server) = spawn_announcing().await;
    let c = client();

    let resp = admin_post(
        &h,
        &c,
        "/admin/user",
        &[("user", "U0000000001"), ("action", "deactivate")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/admin");
    assert!(h.control.user_flags("U0000000001").unwrap().deleted);
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["type"], "user_change");
    assert_eq!(v["event"]["user"]["id"], "U0000000001");
    assert_eq!(v["event"]["user"]["deleted"], true);

    admin_post(
        &h,
        &c,
        "/admin/user",
        &[("user", "U0000000001"), ("action", "reactivate")],
    )
    .await;
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["user"]["deleted"], false);

    admin_post(
        &h,
        &c,
        "/admin/user",
        &[("user", "U0000000001"), ("action", "guest")],
    )
    .await;
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["user"]["is_restricted"], true);
    admin_post(
        &h,
        &c,
        "/admin/user",
        &[("user", "U0000000001"), ("action", "member")],
    )
    .await;
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["user"]["is_restricted"], false);

    let access = sign_in(&h, &c, "U0000000001").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    admin_post(
        &h,
        &c,
        "/admin/user",
        &[("user", "U0000000001"), ("action", "revoke")],
    )
    .await;
    assert_eq!(userinfo(&h, &c, &access).await["error"], "token_revoked");
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["type"], "tokens_revoked");
    assert_eq!(v["event"]["tokens"]["oauth"], json!(["U0000000001"]));

    let resp = admin_post(
        &h,
        &c,
        "/admin/user",
        &[("user", "U0000000099"), ("action", "deactivate")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    h.stop().await;
    server.stop(false).await;
}

#[tokio::test]
async fn admin_group_toggles_change_membership_and_send_subteam_events() {
    let (h, mut rx, server) = spawn_announcing().await;
    let c = client();
    let resp = admin_post(
        &h,
        &c,
        "/admin/group",
        &[
            ("group", "design"),
            ("user", "U0000000001"),
            ("action", "add"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        h.control.group("design").unwrap().users,
        ["U0000000004", "U0000000001"]
    );
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["type"], "subteam_members_changed");
    assert_eq!(v["event"]["subteam_id"], "S0000000003");
    assert_eq!(v["event"]["added_users"], json!(["U0000000001"]));
    assert_eq!(v["event"]["removed_users"], json!([]));
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["type"], "subteam_updated");
    assert_eq!(
        v["event"]["subteam"]["users"],
        json!(["U0000000004", "U0000000001"])
    );

    admin_post(
        &h,
        &c,
        "/admin/group",
        &[
            ("group", "design"),
            ("user", "U0000000004"),
            ("action", "remove"),
        ],
    )
    .await;
    assert_eq!(h.control.group("design").unwrap().users, ["U0000000001"]);
    let v = verified_json(&next(&mut rx).await);
    assert_eq!(v["event"]["removed_users"], json!(["U0000000004"]));
    h.stop().await;
    server.stop(false).await;
}

#[tokio::test]
async fn admin_refuses_cross_site_posts() {
    let h = spawn().await;
    let c = client();
    let resp = c
        .post(format!("{}/admin/user", h.base_url))
        .header("Origin", "https://evil.example")
        .form(&[("user", "U0000000001"), ("action", "deactivate")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(!h.control.user_flags("U0000000001").unwrap().deleted);

    // The page's own origin may post.
    let resp = c
        .post(format!("{}/admin/user", h.base_url))
        .header("Origin", h.base_url.as_str())
        .form(&[("user", "U0000000001"), ("action", "deactivate")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(h.control.user_flags("U0000000001").unwrap().deleted);
    h.stop().await;
}
