//! A real browser: headless Chromium, driven through chromedriver (WebDriver),
//! clicks through the demo application → the bridge's sign-in page → the
//! Slack stand-in → the consent page → back at the demo application, which
//! shows the verified claims; then checks the French error page and signs
//! out. A second test signs in through the demo's single-page mode, whose
//! script redeems the code and calls userinfo from the browser, across
//! origins (CORS). Screenshots of every page go to `target/screenshots/`
//! (their paths are printed).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them):
//! without them the test fails and says so. Everything listens on 127.0.0.1
//! and the browser runs with its background networking off.

use crate::common;

#[path = "../../examples/demo_app.rs"]
#[allow(dead_code)]
mod demo_app;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bridge::{Bridge, Setup, free_port};
use thirtyfour::prelude::*;

const DEMO_SECRET: &str = "demo-secret-for-the-browser-test-0123456789";

const INSTALL: &str = "the browser test needs Chromium and its WebDriver: \
    install Debian's packages with `apt-get install -y chromium chromium-driver` \
    (.ci/run does this when they are missing)";

/// An executable on PATH.
fn program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free loopback port, killed on drop.
struct ChromeDriver {
    url: String,
    child: Child,
}

impl ChromeDriver {
    async fn start(binary: &Path, log: &Path) -> ChromeDriver {
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start ({e}); {INSTALL}", binary.display()));
        let driver = ChromeDriver {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/status", driver.url)).await
                && let Ok(status) = r.json::<serde_json::Value>().await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/screenshots`, next to the test binary's profile directory.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/browser-… → target/screenshots
    let target = exe.ancestors().nth(3).expect("the test runs from target/");
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Shots {
    dir: PathBuf,
    taken: Vec<PathBuf>,
}

impl Shots {
    async fn take(&mut self, driver: &WebDriver, name: &str) {
        let path = self.dir.join(format!("{name}.png"));
        driver.screenshot(&path).await.unwrap();
        println!("screenshot: {}", path.display());
        self.taken.push(path);
    }

    /// The same page at a phone's size.
    async fn take_phone(&mut self, driver: &WebDriver, name: &str) {
        driver.set_window_rect(0, 0, 390, 844).await.unwrap();
        self.take(driver, name).await;
        driver.set_window_rect(0, 0, 1280, 900).await.unwrap();
    }
}

/// The page's heading, if there is one right now (during a navigation the
/// element may vanish between finding it and reading it).
async fn heading(driver: &WebDriver) -> Option<String> {
    let h1 = driver.find(By::Tag("h1")).await.ok()?;
    h1.text().await.ok()
}

/// Waits until the page's heading is `expected` (navigation after a click
/// may go through several redirects).
async fn wait_for_heading(driver: &WebDriver, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = heading(driver).await;
        if now.as_deref() == Some(expected) {
            return;
        }
        if Instant::now() > deadline {
            let url = driver.current_url().await.unwrap();
            let source = driver.source().await.unwrap_or_default();
            panic!("expected the heading {expected:?} but {url} shows {now:?}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(driver: &WebDriver, css: &str) -> String {
    driver
        .query(By::Css(css))
        .first()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_to_the_demo_application_in_chromium() {
    let chromium = program(&["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("chromium is not installed: {INSTALL}"));
    let chromedriver = program(&["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver is not installed: {INSTALL}"));

    // The bridge, with the demo application registered (consent required, to
    // show that page too) and the sign-in page on.
    let demo_port = free_port();
    let demo_origin = format!("http://127.0.0.1:{demo_port}");
    let bridge = Bridge::start(Setup {
        extra_toml: format!(
            r#"
[[clients]]
client_id = "demo"
client_name = "Demo application"
client_secret = "{DEMO_SECRET}"
redirect_uris = ["{demo_origin}/cb"]
post_logout_redirect_uris = ["{demo_origin}/bye"]
require_consent = true

[pages]
login_page = true
"#
        ),
        ..Setup::default()
    })
    .await;

    let (_, demo) = demo_app::start(demo_app::Options {
        issuer: bridge.base.clone(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, demo_port)),
        client_id: "demo".into(),
        client_secret: DEMO_SECRET.into(),
        spa_client_id: "demo-spa".into(),
    })
    .expect("the demo application starts");
    let demo_handle = demo.handle();
    tokio::spawn(demo);

    let profile = tempfile::tempdir().unwrap();
    let (webdriver, driver) = start_chromium(&chromium, &chromedriver, profile.path()).await;
    let shots = Shots {
        dir: screenshot_dir(),
        taken: Vec::new(),
    };

    let flow = tokio::spawn(click_through(
        driver.clone(),
        bridge.base.clone(),
        demo_origin,
        shots,
    ));
    let result = flow.await;
    let _ = driver.quit().await;
    demo_handle.stop(false).await;
    drop(webdriver);
    let shots = match result {
        Ok(Ok(shots)) => shots,
        Ok(Err(e)) => panic!("WebDriver: {e}\nthe bridge's log:\n{}", bridge.log()),
        Err(panic) => {
            eprintln!("the bridge's log:\n{}", bridge.log());
            std::panic::resume_unwind(panic.into_panic());
        }
    };
    for shot in &shots.taken {
        let bytes = std::fs::read(shot).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", shot.display());
    }
}

/// chromedriver, and headless Chromium under it with a profile in `profile`.
async fn start_chromium(
    chromium: &Path,
    chromedriver: &Path,
    profile: &Path,
) -> (ChromeDriver, WebDriver) {
    let webdriver = ChromeDriver::start(chromedriver, &profile.join("chromedriver.log")).await;
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(chromium.to_str().unwrap()).unwrap();
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-US",
        "--accept-lang=en-US",
        &format!("--user-data-dir={}", profile.join("chromium").display()),
    ] {
        caps.add_arg(arg).unwrap();
    }
    let driver = WebDriver::new(webdriver.url.as_str(), caps)
        .await
        .unwrap_or_else(|e| panic!("chromium does not start under chromedriver: {e}; {INSTALL}"));
    (webdriver, driver)
}

/// The person's part, run as its own task so that a failed assertion still
/// lets the test close the browser.
async fn click_through(
    driver: WebDriver,
    bridge: String,
    demo_origin: String,
    mut shots: Shots,
) -> WebDriverResult<Shots> {
    // The demo application's home page.
    driver.goto(format!("{demo_origin}/")).await?;
    wait_for_heading(&driver, "Demo application").await;
    shots.take(&driver, "01-demo-home").await;

    // → the bridge's sign-in page.
    driver.find(By::LinkText("Sign in")).await?.click().await?;
    wait_for_heading(&driver, "Sign in to Demo application").await;
    let button = driver.find(By::LinkText("Sign in with Slack")).await?;
    // The inline stylesheet applied (its hash is in the CSP).
    let colour = button.css_value("background-color").await?;
    assert!(colour.contains("74, 21, 75"), "the button is {colour}");
    shots.take(&driver, "02-bridge-sign-in").await;
    shots.take_phone(&driver, "02-bridge-sign-in-phone").await;

    // → the Slack stand-in: pick Ada.
    button.click().await?;
    wait_for_heading(&driver, "Sign in with Slack").await;
    shots.take(&driver, "03-standin-picker").await;
    driver
        .find(By::Css("button[value='U0000000001']"))
        .await?
        .click()
        .await?;

    // → the consent page.
    wait_for_heading(&driver, "Allow Demo application?").await;
    shots.take(&driver, "04-consent").await;
    shots.take_phone(&driver, "04-consent-phone").await;
    // Allow posts a form whose answer redirects to the demo application:
    // the CSP's form-action must let the browser follow it.
    driver
        .find(By::Css("button[value='allow']"))
        .await?
        .click()
        .await?;

    // → back at the demo application, signed in.
    wait_for_heading(&driver, "Signed in").await;
    assert_eq!(text_of(&driver, "#claim-name").await, "Ada Lovelace");
    assert_eq!(text_of(&driver, "#claim-email").await, "ada@example.com");
    assert_eq!(
        text_of(&driver, "#claim-team").await,
        "Example Workspace (T0000000001)"
    );
    assert!(!text_of(&driver, "#claim-sub").await.is_empty());
    shots.take(&driver, "05-demo-signed-in").await;

    // A bad sign-in link asking for French: the French error page.
    let mut bad = url::Url::parse(&format!("{bridge}/authorize")).unwrap();
    bad.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "no-such-app")
        .append_pair("redirect_uri", &format!("{demo_origin}/cb"))
        .append_pair("scope", "openid")
        .append_pair("ui_locales", "fr");
    driver.goto(bad.as_str()).await?;
    wait_for_heading(&driver, "Ce lien de connexion n’est pas valide").await;
    let html = driver.find(By::Tag("html")).await?;
    assert_eq!(html.attr("lang").await?.as_deref(), Some("fr"));
    let page = driver.find(By::Tag("main")).await?.text().await?;
    assert!(page.contains("Code d’erreur"), "{page}");
    assert!(page.contains("invalid_client"), "{page}");
    assert!(page.contains("Référence"), "{page}");
    assert!(
        driver.find_all(By::Tag("a")).await?.is_empty(),
        "no way back when the application is unknown"
    );
    shots.take(&driver, "06-error-fr").await;
    shots.take_phone(&driver, "06-error-fr-phone").await;

    // Sign out: the demo application ends the bridge's session too and
    // comes back (registered post_logout_redirect_uri, no question).
    driver.goto(format!("{demo_origin}/")).await?;
    wait_for_heading(&driver, "Signed in").await;
    driver.find(By::LinkText("Sign out")).await?.click().await?;
    wait_for_heading(&driver, "Signed out").await;
    shots.take(&driver, "07-demo-signed-out").await;

    // Signing in again needs Slack again: the bridge's session is gone.
    driver
        .goto(format!("{demo_origin}/login?ui_locales=fr"))
        .await?;
    wait_for_heading(&driver, "Connexion à Demo application").await;
    shots.take(&driver, "08-bridge-sign-in-fr").await;

    // The bridge's signed-out page, in French.
    driver
        .goto(format!("{bridge}/logout?ui_locales=fr"))
        .await?;
    wait_for_heading(&driver, "Votre session est terminée").await;
    shots.take(&driver, "09-signed-out-fr").await;
    Ok(shots)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_to_the_single_page_demo_whose_script_calls_the_bridge_across_origins() {
    let chromium = program(&["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("chromium is not installed: {INSTALL}"));
    let chromedriver = program(&["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver is not installed: {INSTALL}"));

    // The bridge with the single-page demo registered as in config/dev.toml:
    // a public client whose only CORS origin comes from its redirect URI.
    let demo_port = free_port();
    let demo_origin = format!("http://127.0.0.1:{demo_port}");
    let bridge = Bridge::start(Setup {
        extra_toml: format!(
            r#"
[[clients]]
client_id = "demo-spa"
client_name = "Demo single-page application"
redirect_uris = ["{demo_origin}/spa/cb"]
post_logout_redirect_uris = ["{demo_origin}/spa/bye"]
token_endpoint_auth_method = "none"

[pages]
login_page = true
"#
        ),
        ..Setup::default()
    })
    .await;

    let (_, demo) = demo_app::start(demo_app::Options {
        issuer: bridge.base.clone(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, demo_port)),
        client_id: "demo".into(),
        client_secret: DEMO_SECRET.into(),
        spa_client_id: "demo-spa".into(),
    })
    .expect("the demo application starts");
    let demo_handle = demo.handle();
    tokio::spawn(demo);

    let profile = tempfile::tempdir().unwrap();
    let (webdriver, driver) = start_chromium(&chromium, &chromedriver, profile.path()).await;
    let shots = Shots {
        dir: screenshot_dir(),
        taken: Vec::new(),
    };
    let flow = tokio::spawn(click_through_the_single_page_demo(
        driver.clone(),
        demo_origin,
        shots,
    ));
    let result = flow.await;
    let _ = driver.quit().await;
    demo_handle.stop(false).await;
    drop(webdriver);
    let shots = match result {
        Ok(Ok(shots)) => shots,
        Ok(Err(e)) => panic!("WebDriver: {e}\nthe bridge's log:\n{}", bridge.log()),
        Err(panic) => {
            eprintln!("the bridge's log:\n{}", bridge.log());
            std::panic::resume_unwind(panic.into_panic());
        }
    };
    for shot in &shots.taken {
        let bytes = std::fs::read(shot).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", shot.display());
    }
    // The browser itself called the bridge: the code was redeemed, and the
    // userinfo call (with its Authorization header) came after a preflight.
    let metrics = reqwest::get(bridge.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = |route: &str, method: &str, status: &str| {
        common::metric(
            &metrics,
            "bridge_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("/token", "POST", "200"), 1.0, "{metrics}");
    assert_eq!(requests("/userinfo", "OPTIONS", "204"), 1.0, "{metrics}");
    assert_eq!(requests("/userinfo", "GET", "200"), 1.0, "{metrics}");
}

/// Sign-in through the single-page mode: every call after the redirect back
/// is the page's own fetch to the bridge (token, JWKS, userinfo).
async fn click_through_the_single_page_demo(
    driver: WebDriver,
    demo_origin: String,
    mut shots: Shots,
) -> WebDriverResult<Shots> {
    driver.goto(format!("{demo_origin}/spa")).await?;
    wait_for_heading(&driver, "Single-page demo").await;
    shots.take(&driver, "10-spa-home").await;

    // The script builds the authorize URL (state, nonce, S256 challenge).
    driver.find(By::Id("sign-in")).await?.click().await?;
    wait_for_heading(&driver, "Sign in to Demo single-page application").await;
    driver
        .find(By::LinkText("Sign in with Slack"))
        .await?
        .click()
        .await?;
    wait_for_heading(&driver, "Sign in with Slack").await;
    driver
        .find(By::Css("button[value='U0000000001']"))
        .await?
        .click()
        .await?;

    // Back at /spa/cb: the script checks state and iss, POSTs the code and
    // verifier to the token endpoint, verifies the ID token with WebCrypto,
    // calls userinfo with the access token and shows what it says.
    wait_for_heading(&driver, "Signed in").await;
    assert_eq!(text_of(&driver, "#claim-name").await, "Ada Lovelace");
    assert_eq!(text_of(&driver, "#claim-email").await, "ada@example.com");
    assert_eq!(
        text_of(&driver, "#claim-team").await,
        "Example Workspace (T0000000001)"
    );
    assert!(!text_of(&driver, "#claim-sub").await.is_empty());
    // The code left the address bar at once.
    let url = driver.current_url().await?;
    assert_eq!(url.path(), "/spa", "{url}");
    assert_eq!(url.query(), None, "{url}");
    shots.take(&driver, "11-spa-signed-in").await;
    shots.take_phone(&driver, "11-spa-signed-in-phone").await;

    // Sign out: RP-initiated logout with the ID token as hint, back to the
    // registered /spa/bye.
    driver.find(By::Id("sign-out")).await?.click().await?;
    wait_for_heading(&driver, "Signed out").await;
    assert_eq!(driver.current_url().await?.path(), "/spa/bye");
    shots.take(&driver, "12-spa-signed-out").await;
    Ok(shots)
}
