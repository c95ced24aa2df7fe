//! Runs the real `slack-oidc-bridge` binary on a free loopback port against a
//! Slack stand-in running in the test process, and stops both at the end.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slack_oidc_bridge::upstream::standin::{
    self, DEV_BOT_TOKEN, StandinApp, StandinGroup, StandinHandle, StandinOptions, StandinUser,
};

pub const UPSTREAM_CLIENT_ID: &str = "4242424242.1313131313";
pub const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";

/// A confidential client using `client_secret_basic`.
pub const BASIC: (&str, &str) = ("app-basic", "basic-secret-0123456789abcdef0123456789");
/// A confidential client using `client_secret_post`.
pub const POST: (&str, &str) = ("app-post", "post-secret-0123456789abcdef0123456789ab");
/// A public client (`none`, PKCE required).
pub const PUBLIC: &str = "app-public";
/// Confidential clients registered for refresh tokens (`offline_access`); the
/// first also for back-channel logout when `Setup::backchannel_uri` is set.
pub const REFRESH: (&str, &str) = ("app-refresh", "refresh-secret-0123456789abcdef0123456789");
pub const REFRESH2: (&str, &str) = ("app-refresh-2", "refresh2-secret-0123456789abcdef012345678");
/// A client registered with `require_consent = true`.
pub const CONSENT: (&str, &str) = ("app-consent", "consent-secret-0123456789abcdef012345678");
pub const POST_LOGOUT_URI: &str = "http://127.0.0.1:9/bye";
/// Redirect URIs point at a port nobody listens on: tests read the Location
/// header and never follow it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

/// The signing secret of the Slack app when `Setup::events` is on.
pub const SIGNING_SECRET: &str = "test-signing-secret-0123456789";

/// A Slack stand-in on a free loopback port that knows the bridge at `base`.
pub async fn start_standin(base: &str) -> StandinHandle {
    start_standin_with(base, false).await
}

/// The same with Slack's token rotation on or off for the bridge's app.
pub async fn start_standin_with(base: &str, rotation: bool) -> StandinHandle {
    standin::start(StandinOptions {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        apps: vec![StandinApp {
            client_id: UPSTREAM_CLIENT_ID.into(),
            client_secret: UPSTREAM_SECRET.into(),
            redirect_urls: vec![format!("{base}/callback")],
            distributed: true,
            rotation,
        }],
        users: StandinUser::fixtures(),
        exact_slack_mode: false,
        groups: StandinGroup::fixtures(),
        bot_token: Some(DEV_BOT_TOKEN.into()),
        events: None,
    })
    .await
    .expect("stand-in starts")
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone, Default)]
pub struct Setup {
    /// `None`: the memory store; `Some(url)`: Redis at that URL.
    pub redis_url: Option<String>,
    pub allowed_team_ids: Vec<String>,
    pub upstream_pkce: bool,
    /// Extra `BRIDGE_` environment overrides.
    pub env: Vec<(String, String)>,
    /// `tokens.refresh_reuse_grace_secs`.
    pub refresh_grace_secs: u64,
    /// Back-channel logout URI of the `REFRESH` client.
    pub backchannel_uri: Option<String>,
    /// TOML appended to the config file: more `[[clients]]`, or tables the
    /// file does not have yet (`[pages]`).
    pub extra_toml: String,
    /// Seed nodes of a Redis Cluster (`store.redis_cluster`); when set it is
    /// the store, and `redis_url` is not used.
    pub redis_cluster: Option<Vec<String>>,
    /// Slack's directory: `upstream.bot_token` (the stand-in's
    /// `DEV_BOT_TOKEN`), so guests, bots, deactivation and groups apply.
    pub directory: bool,
    /// Slack's Events API: `upstream.signing_secret` = [`SIGNING_SECRET`].
    pub events: bool,
    /// Slack's token rotation on the bridge's Slack app.
    pub upstream_rotation: bool,
}

pub struct Bridge {
    pub base: String,
    pub standin: StandinHandle,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    child: Child,
}

impl Bridge {
    pub async fn start(setup: Setup) -> Bridge {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let standin = start_standin_with(&base, setup.upstream_rotation).await;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("bridge.toml");
        std::fs::write(
            &config_path,
            config_text(&base, port, &standin.base_url, &setup, &dir),
        )
        .unwrap();
        let child = spawn(&config_path, &dir, &setup.env);
        let bridge = Bridge {
            base,
            standin,
            dir,
            config_path,
            child,
        };
        bridge.wait_healthy().await;
        bridge
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the bridge did not become healthy; its log:\n{}",
            self.log()
        );
    }

    /// Everything the bridge wrote to stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("bridge.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The `/metrics` page (read a series with [`super::metric`]).
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A second bridge process sharing a first one's config: the same issuer,
/// store (and key prefix), key directory, clients and Slack stand-in; only
/// the listen port differs. Requests reach it on its own port: routes do not
/// depend on the Host header.
pub struct Sibling {
    pub base: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Bridge {
    /// Starts another instance of this bridge (see [`Sibling`]) with the
    /// same `BRIDGE_` overrides `env`.
    pub async fn start_sibling(&self, env: &[(String, String)]) -> Sibling {
        let own_port = self.base.rsplit(':').next().unwrap();
        let port = free_port();
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let listen = format!("listen = \"127.0.0.1:{own_port}\"");
        assert!(text.contains(&listen), "the config has no {listen}");
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("bridge.toml");
        std::fs::write(
            &config_path,
            text.replace(&listen, &format!("listen = \"127.0.0.1:{port}\"")),
        )
        .unwrap();
        let sibling = Sibling {
            base: format!("http://127.0.0.1:{port}"),
            child: spawn(&config_path, &dir, env),
            dir,
        };
        wait_healthy(&sibling.base, || sibling.log()).await;
        sibling
    }
}

impl Sibling {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything this instance wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bridge.log")).unwrap_or_default()
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_healthy(base: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bridge did not become healthy; its log:\n{}", log());
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    config_path: &std::path::Path,
    dir: &tempfile::TempDir,
    env: &[(String, String)],
) -> Child {
    let log = std::fs::File::create(dir.path().join("bridge.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slack-oidc-bridge"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config_path)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the bridge binary runs")
}

pub fn config_text(
    base: &str,
    port: u16,
    upstream: &str,
    setup: &Setup,
    dir: &tempfile::TempDir,
) -> String {
    let store = match (&setup.redis_cluster, &setup.redis_url) {
        (Some(seeds), _) => format!(
            "backend = \"redis\"\nredis_cluster = true\nredis_url = \"{}\"\nredis_cluster_nodes = [{}]\nkey_prefix = \"t{}:\"\ntimeout_ms = 2000",
            seeds[0],
            seeds[1..]
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", "),
            free_port()
        ),
        (None, None) => "backend = \"memory\"".to_string(),
        (None, Some(url)) => format!(
            "backend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"t{}:\"\ntimeout_ms = 1000",
            free_port()
        ),
    };
    let teams: Vec<String> = setup
        .allowed_team_ids
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect();
    format!(
        r#"
issuer = "{base}"
listen = "127.0.0.1:{port}"
[store]
{store}
[keys]
dir = "{keys}"
[upstream]
issuer = "{upstream}"
client_id = "{UPSTREAM_CLIENT_ID}"
client_secret = "{UPSTREAM_SECRET}"
allowed_team_ids = [{teams}]
pkce = {pkce}
timeout_ms = 3000
jwks_refetch_cooldown_secs = 1
api_url = "{upstream}/api"
{directory}
[tokens]
refresh_reuse_grace_secs = {grace}
[[clients]]
client_id = "{basic_id}"
client_secret = "{basic_secret}"
redirect_uris = ["{REDIRECT_URI}"]
post_logout_redirect_uris = ["{POST_LOGOUT_URI}"]
token_endpoint_auth_method = "client_secret_basic"

[[clients]]
client_id = "{post_id}"
client_secret = "{post_secret}"
redirect_uris = ["{REDIRECT_URI}"]
token_endpoint_auth_method = "client_secret_post"
[[clients]]
client_id = "{PUBLIC}"
redirect_uris = ["{REDIRECT_URI}"]
token_endpoint_auth_method = "none"
[[clients]]
client_id = "{refresh_id}"
client_secret = "{refresh_secret}"
redirect_uris = ["{REDIRECT_URI}"]
post_logout_redirect_uris = ["{POST_LOGOUT_URI}"]
grant_types = ["authorization_code", "refresh_token"]
backchannel_logout_session_required = true
{backchannel}
[[clients]]
client_id = "{refresh2_id}"
client_secret = "{refresh2_secret}"
redirect_uris = ["{REDIRECT_URI}"]
grant_types = ["authorization_code", "refresh_token"]
[[clients]]
client_id = "{consent_id}"
client_name = "Consent-Requiring App"
client_secret = "{consent_secret}"
redirect_uris = ["{REDIRECT_URI}"]
require_consent = true
{extra}
"#,
        keys = dir.path().join("keys").display(),
        teams = teams.join(", "),
        pkce = setup.upstream_pkce,
        basic_id = BASIC.0,
        basic_secret = BASIC.1,
        post_id = POST.0,
        post_secret = POST.1,
        grace = setup.refresh_grace_secs,
        refresh_id = REFRESH.0,
        refresh_secret = REFRESH.1,
        refresh2_id = REFRESH2.0,
        refresh2_secret = REFRESH2.1,
        consent_id = CONSENT.0,
        consent_secret = CONSENT.1,
        backchannel = setup
            .backchannel_uri
            .as_ref()
            .map(|u| format!("backchannel_logout_uri = \"{u}\""))
            .unwrap_or_default(),
        extra = setup.extra_toml,
        directory = [
            setup
                .directory
                .then(|| format!("bot_token = \"{DEV_BOT_TOKEN}\"")),
            setup
                .events
                .then(|| format!("signing_secret = \"{SIGNING_SECRET}\"")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n"),
    )
}
