//! Every way Slack can fail or misbehave becomes a clear error redirect to the
//! application (never a 500, never a code), and Slack's ID token is verified.

use crate::common;

use std::time::Duration;

use common::bridge::{Bridge, Setup};
use common::browser::{Browser, ClientAuth, auth_params, param, redeem};
use slack_oidc_bridge::upstream::standin::{IdTokenFault, TokenFault, UserinfoFault};
use url::Url;

async fn sign_in(bridge: &Bridge) -> Url {
    Browser::new()
        .sign_in(bridge, &auth_params("app-basic", "st", "n"), "U0000000001")
        .await
}

fn assert_error(back: &Url, error: &str) {
    assert_eq!(param(back, "error").as_deref(), Some(error), "{back}");
    assert!(
        param(back, "code").is_none(),
        "an error carries no code: {back}"
    );
    assert_eq!(param(back, "state").as_deref(), Some("st"));
    assert!(param(back, "iss").is_some());
    assert!(param(back, "error_description").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_token_errors_become_error_redirects() {
    let bridge = Bridge::start(Setup::default()).await;
    let cases = [
        (
            TokenFault::RateLimited {
                retry_after_secs: 30,
            },
            "temporarily_unavailable",
        ),
        (TokenFault::InternalError, "temporarily_unavailable"),
        (TokenFault::NonJson404, "server_error"),
        (TokenFault::ErrorCode("invalid_code".into()), "server_error"),
        (
            TokenFault::ErrorCode("bad_client_secret".into()),
            "server_error",
        ),
        (
            TokenFault::ErrorCode("<script>alert(1)</script>".into()),
            "server_error",
        ),
    ];
    for (fault, expected) in cases {
        bridge.standin.control.set_token_fault(Some(fault.clone()));
        let back = sign_in(&bridge).await;
        assert_error(&back, expected);
        let description = param(&back, "error_description").unwrap();
        assert!(
            !description.contains('<') && !description.contains('"'),
            "{fault:?}: {description}"
        );
    }
    bridge.standin.control.set_token_fault(None);
    assert!(
        param(&sign_in(&bridge).await, "code").is_some(),
        "works again once Slack does"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slack_slower_than_the_upstream_timeout_is_temporarily_unavailable() {
    let bridge = Bridge::start(Setup::default()).await;
    // The test bridge's upstream timeout is 3 s.
    bridge
        .standin
        .control
        .set_token_fault(Some(TokenFault::Slow(Duration::from_secs(5))));
    let back = sign_in(&bridge).await;
    assert_error(&back, "temporarily_unavailable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_slack_id_token_is_refused() {
    let bridge = Bridge::start(Setup::default()).await;
    for fault in [
        IdTokenFault::BadSignature,
        IdTokenFault::WrongAudience,
        IdTokenFault::Expired,
        IdTokenFault::WrongNonce,
        IdTokenFault::WrongIssuer,
    ] {
        bridge
            .standin
            .control
            .set_id_token_fault(Some(fault.clone()));
        let back = sign_in(&bridge).await;
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("server_error"),
            "{fault:?}: {back}"
        );
        assert!(param(&back, "code").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_slack_key_is_fetched_once_on_an_unknown_kid() {
    let bridge = Bridge::start(Setup::default()).await;
    assert!(param(&sign_in(&bridge).await, "code").is_some());
    let fetches = bridge.standin.control.jwks_fetches();
    // The test bridge's refetch cooldown is 1 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    bridge
        .standin
        .control
        .set_id_token_fault(Some(IdTokenFault::UnknownKid));
    let back = sign_in(&bridge).await;
    assert!(
        param(&back, "code").is_some(),
        "verified after one refetch: {back}"
    );
    assert_eq!(bridge.standin.control.jwks_fetches(), fetches + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kid_within_the_cooldown_does_not_refetch() {
    let bridge = Bridge::start(Setup::default()).await;
    bridge
        .standin
        .control
        .set_id_token_fault(Some(IdTokenFault::UnknownKid));
    // The first sign-in refetches (the startup fetch is older than 1 s, or
    // not done); a burst right after must not refetch again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = sign_in(&bridge).await;
    let fetches = bridge.standin.control.jwks_fetches();
    for _ in 0..3 {
        let back = sign_in(&bridge).await;
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("server_error"),
            "{back}"
        );
    }
    assert_eq!(
        bridge.standin.control.jwks_fetches(),
        fetches,
        "no refetch inside the cooldown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_slack_userinfo_falls_back_to_the_id_token_claims() {
    let bridge = Bridge::start(Setup::default()).await;
    for fault in [
        UserinfoFault::NonJson404,
        UserinfoFault::ErrorCode("invalid_auth".into()),
    ] {
        bridge.standin.control.set_userinfo_fault(Some(fault));
        let back = sign_in(&bridge).await;
        let code = param(&back, "code").expect("signed in without userInfo");
        let body: serde_json::Value = redeem(&bridge, ClientAuth::Basic, &code, None)
            .await
            .json()
            .await
            .unwrap();
        let claims = common::browser::jwt_claims(body["id_token"].as_str().unwrap());
        assert_eq!(claims["sub"], "T0000000001:U0000000001");
        assert_eq!(
            claims["email"], "ada@example.com",
            "the ID token's own email claim"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_cancelling_at_slack_is_access_denied() {
    let bridge = Bridge::start(Setup::default()).await;
    let back = Browser::new()
        .sign_in(&bridge, &auth_params("app-basic", "st", "n"), "deny")
        .await;
    assert_error(&back, "access_denied");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_outside_the_allowed_workspaces_is_refused() {
    let bridge = Bridge::start(Setup {
        allowed_team_ids: vec!["T0000000001".into()],
        ..Setup::default()
    })
    .await;
    let browser = Browser::new();
    let slack = browser
        .to_slack(&bridge, &auth_params("app-basic", "st", "n"))
        .await;
    assert_eq!(
        param(&slack, "team").as_deref(),
        Some("T0000000001"),
        "one workspace: team is sent to Slack"
    );
    let outsider = Browser::new()
        .sign_in(&bridge, &auth_params("app-basic", "st", "n"), "U0000000002")
        .await;
    assert_error(&outsider, "access_denied");
    let member = Browser::new()
        .sign_in(&bridge, &auth_params("app-basic", "st", "n"), "U0000000001")
        .await;
    assert!(param(&member, "code").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enterprise_id_admits_its_grid_users() {
    let bridge = Bridge::start(Setup {
        allowed_team_ids: vec!["E0000000001".into()],
        ..Setup::default()
    })
    .await;
    let grid = Browser::new()
        .sign_in(&bridge, &auth_params("app-basic", "st", "n"), "W0000000003")
        .await;
    assert!(param(&grid, "code").is_some(), "{grid}");
    let other = Browser::new()
        .sign_in(&bridge, &auth_params("app-basic", "st", "n"), "U0000000001")
        .await;
    assert_error(&other, "access_denied");
}
