//! RP-Initiated Logout 1.0 (every variant the conformance suite tries) and
//! Back-Channel Logout 1.0. Every scenario runs on the memory store and on
//! Redis.

use crate::common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::bridge::{Bridge, CONSENT, POST_LOGOUT_URI, REDIRECT_URI, REFRESH, Setup};
use common::browser::{
    Browser, ClientAuth, auth_params, id_claims, location, param, sign_in_and_redeem,
};
use common::receiver::Receiver;

const ADA: &str = "U0000000001";

async fn signed_in(bridge: &Bridge) -> (Browser, String) {
    let browser = Browser::new();
    let tokens = sign_in_and_redeem(bridge, &browser, ClientAuth::Basic, "openid", ADA).await;
    (browser, tokens["id_token"].as_str().unwrap().to_string())
}

async fn logout(bridge: &Bridge, browser: &Browser, params: &[(&str, &str)]) -> reqwest::Response {
    let mut url = url::Url::parse(&bridge.url("/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    browser.get(url.as_str()).await
}

/// prompt=none answers silently (true) or with an error (false).
async fn still_signed_in(bridge: &Bridge, browser: &Browser) -> bool {
    let mut params = auth_params("app-basic", "st", "n");
    params.push(("prompt", "none"));
    let back = location(&browser.authorize(bridge, &params).await);
    match param(&back, "error") {
        None => true,
        Some(e) => {
            assert_eq!(e, "login_required");
            false
        }
    }
}

fn hidden_token(html: &str) -> String {
    let marker = "name=\"token\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no confirmation form in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

async fn confirm(bridge: &Bridge, browser: &Browser, html: &str) -> reqwest::Response {
    let token = hidden_token(html);
    browser
        .http
        .post(bridge.url("/logout/confirm"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap()
}

/// No redirect: the confirmation page; the session lives until confirmed.
async fn assert_confirmation_then_signed_out(
    bridge: &Bridge,
    browser: &Browser,
    r: reqwest::Response,
) {
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none(), "must not redirect");
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign out?"), "{html}");
    assert!(
        still_signed_in(bridge, browser).await,
        "nothing ends before the person confirms"
    );
    let done = confirm(bridge, browser, &html).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("signed out"));
    assert!(
        !still_signed_in(bridge, browser).await,
        "prompt=none fails after logout"
    );
}

async fn a_valid_hint_and_registered_uri_redirect_with_state_and_end_the_session(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, hint) = signed_in(&bridge).await;
    let state = "s".repeat(128);
    let r = logout(
        &bridge,
        &browser,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ("state", &state),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert!(back.as_str().starts_with(POST_LOGOUT_URI));
    assert_eq!(param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(
        back.query_pairs().count(),
        1,
        "no unexpected parameters: {back}"
    );
    assert!(!still_signed_in(&bridge, &browser).await);
}

async fn without_state_the_redirect_carries_none(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, hint) = signed_in(&bridge).await;
    let r = logout(
        &bridge,
        &browser,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    let back = location(&r);
    assert_eq!(back.as_str(), POST_LOGOUT_URI);
}

async fn an_unregistered_or_altered_uri_gets_the_confirmation_page(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    for uri in [
        "http://127.0.0.1:9/elsewhere",
        "http://127.0.0.1:9/bye?foo=bar",
        "http://127.0.0.1:9/bye/",
    ] {
        let (browser, hint) = signed_in(&bridge).await;
        let r = logout(
            &bridge,
            &browser,
            &[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", uri),
                ("state", "x"),
            ],
        )
        .await;
        assert_confirmation_then_signed_out(&bridge, &browser, r).await;
    }
}

async fn a_modified_or_foreign_hint_gets_the_confirmation_page(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, hint) = signed_in(&bridge).await;
    // alg changed to none, signature dropped.
    let payload = hint.split('.').nth(1).unwrap();
    let unsigned = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
    let r = logout(
        &bridge,
        &browser,
        &[
            ("id_token_hint", &unsigned),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    assert_confirmation_then_signed_out(&bridge, &browser, r).await;

    // Same claims and kid, signed by a key that is not ours.
    let (browser, hint) = signed_in(&bridge).await;
    let header = jsonwebtoken::decode_header(&hint).unwrap();
    let claims = common::browser::jwt_claims(&hint);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    forged_header.kid = header.kid;
    let forged = jsonwebtoken::encode(
        &forged_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .unwrap();
    let r = logout(
        &bridge,
        &browser,
        &[
            ("id_token_hint", &forged),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    assert_confirmation_then_signed_out(&bridge, &browser, r).await;
}

async fn a_uri_without_a_hint_gets_the_confirmation_page(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, _) = signed_in(&bridge).await;
    let r = logout(
        &bridge,
        &browser,
        &[
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ("state", "x"),
        ],
    )
    .await;
    assert_confirmation_then_signed_out(&bridge, &browser, r).await;
}

async fn no_parameters_or_only_state_sign_out_after_confirmation(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, _) = signed_in(&bridge).await;
    let r = logout(&bridge, &browser, &[]).await;
    assert_confirmation_then_signed_out(&bridge, &browser, r).await;
    let (browser, _) = signed_in(&bridge).await;
    let r = logout(&bridge, &browser, &[("state", "only")]).await;
    assert_confirmation_then_signed_out(&bridge, &browser, r).await;
    // Without a session there is nothing to confirm.
    let r = logout(&bridge, &Browser::new(), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("signed out"));
}

async fn a_valid_hint_without_a_uri_signs_out_at_once(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, hint) = signed_in(&bridge).await;
    let r = logout(&bridge, &browser, &[("id_token_hint", &hint)]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("signed out"));
    assert!(!still_signed_in(&bridge, &browser).await);
}

async fn a_confirmation_from_another_browser_is_refused(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let (browser, _) = signed_in(&bridge).await;
    let html = logout(&bridge, &browser, &[]).await.text().await.unwrap();
    let r = confirm(&bridge, &Browser::new(), &html).await;
    assert_eq!(r.status(), 400);
    assert!(still_signed_in(&bridge, &browser).await);
}

async fn clients_with_a_backchannel_uri_receive_a_signed_logout_token(mut setup: Setup) {
    let receiver = Receiver::start().await;
    setup.backchannel_uri = Some(receiver.url.clone());
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let auth = ClientAuth::Other(REFRESH.0, REFRESH.1);
    let tokens = sign_in_and_redeem(&bridge, &browser, auth, "openid", ADA).await;
    let id = id_claims(&tokens);
    let sid = id["sid"]
        .as_str()
        .expect("sid in the ID token of a client that asked for it")
        .to_string();
    // A second client without a back-channel URI, in the same session.
    let second = browser
        .authorize(&bridge, &auth_params("app-basic", "st", "n"))
        .await;
    assert!(
        param(&location(&second), "code").is_some(),
        "signed in through the session"
    );

    let hint = tokens["id_token"].as_str().unwrap();
    let r = logout(
        &bridge,
        &browser,
        &[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", POST_LOGOUT_URI),
        ],
    )
    .await;
    assert_eq!(
        r.status(),
        302,
        "the page does not wait for the back channel"
    );

    let bodies = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        bodies.len(),
        1,
        "one logout token, to the one client that registered a URI"
    );
    let token = url::form_urlencoded::parse(bodies[0].as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("a logout_token field");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let claims = common::browser::verify_id_token(&bridge, &token, REFRESH.0).await;
    assert_eq!(claims["sub"], id["sub"]);
    assert_eq!(claims["sid"], sid.as_str());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["iat"].as_i64().is_some());
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
}

/// Sign-ins to several applications at once through one session each add
/// their client to it; none is lost, so the logout reaches every one.
async fn concurrent_sign_ins_through_one_session_all_get_the_back_channel_logout(mut setup: Setup) {
    const APPS: usize = 6;
    let receiver = Receiver::start().await;
    setup.backchannel_uri = Some(receiver.url.clone());
    for i in 0..APPS {
        setup.extra_toml.push_str(&format!(
            "[[clients]]\nclient_id = \"app-bc-{i}\"\nclient_secret = \"bc-{i}-secret-0123456789abcdef0123456789\"\nredirect_uris = [\"{REDIRECT_URI}\"]\nbackchannel_logout_uri = \"{}\"\n",
            receiver.url
        ));
    }
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let auth = ClientAuth::Other(REFRESH.0, REFRESH.1);
    let tokens = sign_in_and_redeem(&bridge, &browser, auth, "openid", ADA).await;
    let clients: Vec<String> = (0..APPS).map(|i| format!("app-bc-{i}")).collect();
    // One browser (one cookie jar), several tabs at once.
    let tabs: Vec<_> = clients
        .iter()
        .map(|client| {
            let mut url = url::Url::parse(&bridge.url("/authorize")).unwrap();
            url.query_pairs_mut()
                .extend_pairs(auth_params(client, "st", "n"));
            let http = browser.http.clone();
            tokio::spawn(async move { http.get(url).send().await.unwrap() })
        })
        .collect();
    for tab in tabs {
        let r = tab.await.unwrap();
        assert!(
            param(&location(&r), "code").is_some(),
            "signed in through the session"
        );
    }

    let hint = tokens["id_token"].as_str().unwrap();
    let r = logout(&bridge, &browser, &[("id_token_hint", hint)]).await;
    assert_eq!(r.status(), 200);
    let bodies = receiver.wait_for(APPS + 1, Duration::from_secs(10)).await;
    let mut audiences: Vec<String> = bodies
        .iter()
        .map(|body| {
            let token = url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .expect("a logout_token field");
            common::browser::jwt_claims(&token)["aud"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    audiences.sort();
    let mut expected: Vec<String> = clients.clone();
    expected.push(REFRESH.0.to_string());
    expected.sort();
    assert_eq!(
        audiences, expected,
        "one logout token per client of the session"
    );
}

/// The consent page was open when the person signed out in another tab:
/// the session cookie is gone, so "Allow" is refused and the session stays
/// ended.
async fn a_logout_while_the_consent_page_is_open_is_not_undone_by_allow(setup: Setup) {
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let consent_page = consent_page(&bridge, &browser).await;

    let html = logout(&bridge, &browser, &[]).await.text().await.unwrap();
    assert_eq!(confirm(&bridge, &browser, &html).await.status(), 200);

    let r = answer_consent(&bridge, &browser, &consent_page).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "no code");
    assert!(
        !still_signed_in(&bridge, &browser).await,
        "the session stays ended"
    );
}

/// The session ended (here: idle) while the consent page was open, the
/// cookie still in the browser: "Allow" gets access_denied, not a code for
/// a session that no longer exists, and no session comes back.
async fn an_allow_after_the_session_ended_gets_access_denied(mut setup: Setup) {
    setup
        .env
        .push(("BRIDGE_SESSIONS__IDLE_SECS".into(), "2".into()));
    let bridge = Bridge::start(setup).await;
    let browser = Browser::new();
    let consent_page = consent_page(&bridge, &browser).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;

    let r = answer_consent(&bridge, &browser, &consent_page).await;
    let back = location(&r);
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some("st"));
    assert!(param(&back, "code").is_none());
    assert!(
        !still_signed_in(&bridge, &browser).await,
        "no session came back"
    );
}

async fn consent_page(bridge: &Bridge, browser: &Browser) -> String {
    let slack = browser
        .to_slack(bridge, &auth_params(CONSENT.0, "st", "n"))
        .await;
    let callback = browser.slack_decide(&slack, ADA).await;
    let page = browser.get(callback.as_str()).await;
    assert_eq!(page.status(), 200, "the consent page");
    page.text().await.unwrap()
}

async fn answer_consent(bridge: &Bridge, browser: &Browser, page: &str) -> reqwest::Response {
    let interaction = crate::sessions::hidden_value(page, "interaction");
    browser
        .http
        .post(bridge.url("/consent"))
        .form(&[("interaction", interaction.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap()
}

on_both_stores!(
    concurrent_sign_ins_through_one_session_all_get_the_back_channel_logout,
    a_logout_while_the_consent_page_is_open_is_not_undone_by_allow,
    an_allow_after_the_session_ended_gets_access_denied,
    a_valid_hint_and_registered_uri_redirect_with_state_and_end_the_session,
    without_state_the_redirect_carries_none,
    an_unregistered_or_altered_uri_gets_the_confirmation_page,
    a_modified_or_foreign_hint_gets_the_confirmation_page,
    a_uri_without_a_hint_gets_the_confirmation_page,
    no_parameters_or_only_state_sign_out_after_confirmation,
    a_valid_hint_without_a_uri_signs_out_at_once,
    a_confirmation_from_another_browser_is_refused,
    clients_with_a_backchannel_uri_receive_a_signed_logout_token,
);
