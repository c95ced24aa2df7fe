//! The pages people see, over HTTP against the real binary: the language
//! (`ui_locales`, then Accept-Language, carried through the trip to Slack),
//! the sign-in page, a way back only when it is safe, escaping of hostile
//! values, and the security headers of every page.

use crate::common;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::bridge::{Bridge, CONSENT, Setup};
use common::browser::{Browser, auth_params, location, param};
use url::Url;

const LOGIN_PAGE_ON: &str = "[pages]\nlogin_page = true\n";

/// A client whose registered name is hostile markup.
const HOSTILE_CLIENT: &str = r#"
[[clients]]
client_id = "app-hostile"
client_name = "<img src=x onerror=alert(1)> & \"Co\""
client_secret = "hostile-secret-0123456789abcdef0123456789"
redirect_uris = ["http://127.0.0.1:9/cb"]
require_consent = true
"#;

fn with(
    params: &[(&'static str, &'static str)],
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut p: Vec<_> = params
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    p.extend_from_slice(extra);
    p
}

async fn get(browser: &Browser, url: &str, accept_language: Option<&str>) -> reqwest::Response {
    let mut req = browser.http.get(url);
    if let Some(al) = accept_language {
        req = req.header("Accept-Language", al);
    }
    req.send().await.unwrap()
}

fn authorize_url(bridge: &Bridge, params: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&bridge.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

/// A page: HTML, its language, and the headers every page must carry.
struct Page {
    status: u16,
    csp: String,
    html: String,
}

async fn page(r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let h = r.headers().clone();
    let html = r.text().await.unwrap();
    let header = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("no {name} on a page ({status}): {html}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert!(header("content-type").starts_with("text/html"), "{html}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert_eq!(
        h.get_all("content-security-policy").iter().count(),
        1,
        "one policy"
    );
    // Nothing loads from elsewhere: no external URL in any src or href but
    // the links a page is meant to offer.
    for needle in ["<script", "src=\"http", "<link", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in {html}");
    }
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert_inline_style_allowed(&html, &csp);
    Page { status, csp, html }
}

/// The one inline stylesheet is what the policy's hash allows.
fn assert_inline_style_allowed(html: &str, csp: &str) {
    let start = html.find("<style>").expect("an inline stylesheet") + "<style>".len();
    let end = html[start..].find("</style>").unwrap() + start;
    let hash =
        STANDARD.encode(digest::digest(&digest::SHA256, &html.as_bytes()[start..end]).as_ref());
    assert!(
        csp.contains(&format!("style-src 'sha256-{hash}'")),
        "the stylesheet's hash {hash} is not in {csp}"
    );
}

fn lang(html: &str) -> &str {
    let start = html.find("<html lang=\"").expect("a lang attribute") + 12;
    html[start..].split('"').next().unwrap()
}

fn h1(html: &str) -> String {
    let start = html.find("<h1>").expect("a heading") + 4;
    html[start..].split("</h1>").next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_error_page_speaks_the_language_of_ui_locales_then_accept_language() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    let bad = auth_params("nobody", "st", "n");
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
    let cases: [Case; 6] = [
        (&[], None, "en"),
        (&[("ui_locales", "fr")], None, "fr"),
        (&[("ui_locales", "de fr-CA")], Some("en"), "fr"),
        (&[], Some("de, fr;q=0.8, en;q=0.5"), "fr"),
        (&[("ui_locales", "en")], Some("fr"), "en"),
        (&[("ui_locales", "de")], Some("it, en;q=0.1"), "en"),
    ];
    for (extra, accept, expected) in cases {
        let url = authorize_url(&bridge, &with(&bad, extra));
        let p = page(get(&browser, &url, accept).await).await;
        assert_eq!(p.status, 400);
        assert_eq!(lang(&p.html), expected, "{extra:?} {accept:?}");
        let (title, what, code_label) = match expected {
            "fr" => (
                "Ce lien de connexion n’est pas valide",
                "L’application d’où vous venez n’est pas enregistrée auprès de ce service.",
                "Code d’erreur",
            ),
            _ => (
                "This sign-in link is not valid",
                "The application that sent you here is not registered with this service.",
                "Error code",
            ),
        };
        assert_eq!(h1(&p.html), title);
        assert!(p.html.contains(what), "{}", p.html);
        assert!(p.html.contains(code_label), "{}", p.html);
        assert!(p.html.contains("<code>invalid_client</code>"), "{}", p.html);
        // The client and redirect URI were not validated: no way back.
        assert!(!p.html.contains("<a "), "{}", p.html);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_error_reference_on_the_page_is_in_the_log() {
    let bridge = Bridge::start(Setup::default()).await;
    let url = authorize_url(&bridge, &auth_params("nobody", "st", "n"));
    let p = page(get(&Browser::new(), &url, None).await).await;
    let marker = "<dt>Reference</dt><dd><code>";
    let start = p.html.find(marker).expect("a reference") + marker.len();
    let reference = p.html[start..].split('<').next().unwrap();
    assert!(!reference.is_empty());
    assert!(
        bridge.log().contains(reference),
        "{reference} not in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_page_leads_to_slack_and_the_language_carries_through_to_consent() {
    let bridge = Bridge::start(Setup {
        extra_toml: LOGIN_PAGE_ON.into(),
        ..Setup::default()
    })
    .await;
    let browser = Browser::new();
    let params = with(&auth_params(CONSENT.0, "st", "n"), &[("ui_locales", "fr")]);
    let r = get(&browser, &authorize_url(&bridge, &params), None).await;
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("bridge_browser=")),
        "the page binds the pending login to this browser"
    );
    let login = page(r).await;
    assert_eq!(login.status, 200);
    assert_eq!(lang(&login.html), "fr");
    assert_eq!(h1(&login.html), "Connexion à Consent-Requiring App");
    assert!(
        login.html.contains("Se connecter avec Slack"),
        "{}",
        login.html
    );
    assert!(login.csp.contains("form-action 'self';"), "{}", login.csp);

    // The button is a link to Slack's authorization URL.
    let marker = "<a class=\"button primary wide\" href=\"";
    let start = login.html.find(marker).expect("the Slack button") + marker.len();
    let href = login.html[start..].split('"').next().unwrap();
    let href = href.replace("&#x2F;", "/").replace("&amp;", "&");
    let slack = Url::parse(&href).unwrap();
    assert!(
        slack.as_str().starts_with(&bridge.standin.base_url),
        "{slack}"
    );
    assert!(param(&slack, "state").is_some());

    // Back from Slack without any Accept-Language: the consent page is still
    // French, as the application asked.
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let consent = page(get(&browser, callback.as_str(), None).await).await;
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert_eq!(lang(&consent.html), "fr");
    assert_eq!(h1(&consent.html), "Autoriser Consent-Requiring App\u{a0}?");
    assert!(
        consent.html.contains(">Autoriser</button>"),
        "{}",
        consent.html
    );
    assert!(
        consent.html.contains("Voir votre adresse e-mail"),
        "{}",
        consent.html
    );
    // Allow redirects to the application: its origin is a form destination.
    assert!(
        consent
            .csp
            .contains("form-action 'self' http://127.0.0.1:9;"),
        "{}",
        consent.csp
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_setting_authorize_goes_straight_to_slack() {
    let bridge = Bridge::start(Setup::default()).await;
    let r = Browser::new()
        .authorize(&bridge, &auth_params("app-basic", "st", "n"))
        .await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).as_str().starts_with(&bridge.standin.base_url));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_in_another_browser_offers_a_way_back_to_the_application_only() {
    let bridge = Bridge::start(Setup::default()).await;
    let params = with(
        &auth_params("app-basic", "st", "n"),
        &[("ui_locales", "fr")],
    );
    let slack = Browser::new().to_slack(&bridge, &params).await;
    let callback = Browser::new().slack_decide(&slack, "U0000000001").await;
    // Another browser (no binding cookie) comes back from Slack.
    let p = page(get(&Browser::new(), callback.as_str(), Some("en")).await).await;
    assert_eq!(p.status, 400);
    assert_eq!(lang(&p.html), "fr", "the application's ui_locales win");
    assert_eq!(h1(&p.html), "Cette connexion ne peut pas aboutir");
    assert!(
        p.html.contains("ce navigateur bloque les cookies"),
        "{}",
        p.html
    );
    // The application was validated at authorize: a link to its origin (not
    // to its redirect URI, and nothing from the request).
    assert!(
        p.html.contains(
            "<a class=\"button\" href=\"http:&#x2F;&#x2F;127.0.0.1:9&#x2F;\">Retour à app-basic</a>"
        ),
        "{}",
        p.html
    );

    // A state the bridge never issued: nothing is known, no way back.
    let mut forged = callback.clone();
    forged.set_query(Some("code=x&state=forged"));
    let p = page(get(&Browser::new(), forged.as_str(), Some("fr")).await).await;
    assert_eq!(p.status, 400);
    assert_eq!(lang(&p.html), "fr");
    assert!(!p.html.contains("<a "), "{}", p.html);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_logout_pages_speak_the_language_asked_for() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    browser
        .sign_in(&bridge, &auth_params("app-basic", "st", "n"), "U0000000001")
        .await;
    let confirm = page(get(&browser, &bridge.url("/logout?ui_locales=fr"), None).await).await;
    assert_eq!(confirm.status, 200);
    assert_eq!(lang(&confirm.html), "fr");
    assert_eq!(h1(&confirm.html), "Se déconnecter\u{a0}?");
    assert!(
        confirm.csp.contains("form-action 'self';"),
        "{}",
        confirm.csp
    );
    let marker = "name=\"token\" value=\"";
    let start = confirm.html.find(marker).unwrap() + marker.len();
    let token = confirm.html[start..].split('"').next().unwrap();
    let r = browser
        .http
        .post(bridge.url("/logout/confirm"))
        .form(&[("token", token), ("ui_locales", "fr")])
        .send()
        .await
        .unwrap();
    let done = page(r).await;
    assert_eq!(done.status, 200);
    assert_eq!(lang(&done.html), "fr");
    assert_eq!(h1(&done.html), "Votre session est terminée");

    // Accept-Language alone works too; English stays the default.
    let p = page(get(&browser, &bridge.url("/logout"), Some("fr-BE")).await).await;
    assert_eq!(lang(&p.html), "fr");
    let p = page(get(&browser, &bridge.url("/logout"), None).await).await;
    assert_eq!(lang(&p.html), "en");
    assert_eq!(h1(&p.html), "You are signed out");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stand_in_picker_follows_accept_language_and_shares_the_look() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    let slack = browser
        .to_slack(&bridge, &auth_params("app-basic", "st", "n"))
        .await;
    let p = page(get(&browser, slack.as_str(), Some("fr")).await).await;
    assert_eq!(p.status, 200);
    assert_eq!(lang(&p.html), "fr");
    assert!(
        p.html
            .contains("<legend>Choisissez un utilisateur de test</legend>"),
        "{}",
        p.html
    );
    assert!(p.html.contains("Ce n’est pas Slack."), "{}", p.html);
    // Its answer redirects through the bridge to an application: no
    // form-action could list them.
    assert!(!p.csp.contains("form-action"), "{}", p.csp);
    let english = page(get(&browser, slack.as_str(), None).await).await;
    assert!(english.html.contains("<legend>Pick a test user</legend>"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_are_escaped_on_every_page() {
    let bridge = Bridge::start(Setup {
        extra_toml: format!("{HOSTILE_CLIENT}\n{LOGIN_PAGE_ON}"),
        ..Setup::default()
    })
    .await;
    let browser = Browser::new();
    let evil = "\"><script>alert(1)</script><img src=x onerror=alert(2)>";
    let assert_clean = |what: &str, html: &str| {
        assert!(!html.contains("<script>"), "{what}: {html}");
        assert!(!html.contains("<img"), "{what}: {html}");
        assert!(!html.contains("\"Co\""), "{what}: {html}");
    };

    // The error page: hostile ui_locales, client_id, redirect_uri.
    let url = authorize_url(
        &bridge,
        &[
            ("client_id", evil),
            ("redirect_uri", evil),
            ("ui_locales", evil),
            ("state", evil),
        ],
    );
    let p = page(get(&browser, &url, Some(evil)).await).await;
    assert_eq!(p.status, 400);
    assert_eq!(lang(&p.html), "en");
    assert_clean("error page", &p.html);

    // The sign-in page names the client (registered with markup in its name).
    let params = with(
        &auth_params("app-hostile", evil, evil),
        &[("ui_locales", evil)],
    );
    let login = page(get(&browser, &authorize_url(&bridge, &params), None).await).await;
    assert_eq!(login.status, 200, "{}", login.html);
    assert_clean("sign-in page", &login.html);
    assert!(
        login
            .html
            .contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;Co&quot;"),
        "{}",
        login.html
    );

    // The stand-in's picker echoes Slack's parameters in hidden fields.
    let marker = "<a class=\"button primary wide\" href=\"";
    let start = login.html.find(marker).unwrap() + marker.len();
    let href = login.html[start..].split('"').next().unwrap();
    let slack = Url::parse(&href.replace("&#x2F;", "/").replace("&amp;", "&")).unwrap();
    let mut hostile_slack = slack.clone();
    hostile_slack.query_pairs_mut().append_pair("extra", evil);
    let picker = page(get(&browser, hostile_slack.as_str(), None).await).await;
    assert_clean("picker", &picker.html);
    assert!(
        picker
            .html
            .contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
        "{}",
        picker.html
    );

    // The consent page names the client and the user.
    let callback = browser.slack_decide(&slack, "U0000000001").await;
    let consent = page(get(&browser, callback.as_str(), None).await).await;
    assert_eq!(consent.status, 200, "{}", consent.html);
    assert_clean("consent page", &consent.html);

    // Logout with hostile parameters.
    let mut url = Url::parse(&bridge.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("ui_locales", evil)
        .append_pair("state", evil)
        .append_pair("post_logout_redirect_uri", evil);
    let logout = page(get(&browser, url.as_str(), Some(evil)).await).await;
    assert_clean("logout page", &logout.html);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_page_input_is_a_clear_4xx() {
    let bridge = Bridge::start(Setup::default()).await;
    let browser = Browser::new();
    // Invalid UTF-8, a repeated parameter, an over-long language list.
    // Longer than a parameter may be (4096), shorter than a URI may be (8 KiB).
    let long = "fr ".repeat(1400);
    for url in [
        format!("{}?client_id=%FF&ui_locales=fr", bridge.url("/authorize")),
        format!(
            "{}?client_id=a&client_id=b&ui_locales=fr",
            bridge.url("/authorize")
        ),
        authorize_url(
            &bridge,
            &[("client_id", "nobody"), ("ui_locales", long.as_str())],
        ),
        format!("{}?state=%FF", bridge.url("/logout")),
        format!("{}?state=x&state=y", bridge.url("/callback")),
    ] {
        let p = page(get(&browser, &url, Some(&"fr;q=0.5, ".repeat(500))).await).await;
        assert_eq!(p.status, 400, "{url}: {}", p.html);
    }
    let p = page(
        get(
            &browser,
            &format!(
                "{}?client_id=a&client_id=b&ui_locales=fr",
                bridge.url("/authorize")
            ),
            None,
        )
        .await,
    )
    .await;
    assert!(
        p.html
            .contains("Le paramètre client_id apparaît plusieurs fois."),
        "{}",
        p.html
    );
    // A form posted with the wrong type.
    let r = browser
        .http
        .post(bridge.url("/consent"))
        .header("content-type", "text/plain")
        .header("accept-language", "fr")
        .body("interaction=x")
        .send()
        .await
        .unwrap();
    let p = page(r).await;
    assert_eq!(p.status, 400);
    assert!(
        p.html
            .contains("Votre réponse ne peut pas être enregistrée"),
        "{}",
        p.html
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers_and_https_adds_hsts() {
    let bridge = Bridge::start(Setup::default()).await;
    for path in [
        "/.well-known/openid-configuration",
        "/jwks",
        "/healthz",
        "/nothing-here",
    ] {
        let r = reqwest::get(bridge.url(path)).await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(
            h.get("strict-transport-security").is_none(),
            "http issuer: no HSTS"
        );
    }

    // Behind TLS termination the issuer is https: every answer adds HSTS.
    let tls = Bridge::start(Setup {
        env: vec![("BRIDGE_ISSUER".into(), "https://sso.example.test".into())],
        ..Setup::default()
    })
    .await;
    for path in [
        "/.well-known/openid-configuration",
        "/authorize?client_id=x",
    ] {
        let r = reqwest::get(tls.url(path)).await.unwrap();
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}
