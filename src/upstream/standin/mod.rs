//! The built-in Slack stand-in.
//!
//! A local imitation of Slack's "Sign in with Slack" OpenID Connect endpoints,
//! so the bridge can be developed and tested end to end without reaching
//! slack.com. It follows the "Mock Slack spec" of the shared reference: the
//! same paths, the same error shapes (HTTP 200 with `ok:false`), the same
//! claim names, and the same quirks (empty `nonce`, no `id_token` on refresh).
//! It refuses to listen anywhere but on a loopback address, because it hands
//! out tokens for made-up users to whoever asks.
//!
//! It also plays the directory side of Slack (reference §9): `users.info` and
//! `usergroups.list` for the app's bot token, user flags (deactivated, guest,
//! bot) and groups that tests change through `Control`, signed Events API
//! requests (`events`), and an `/admin` page to do the same by hand.

mod admin;
mod authorize;
mod control;
mod directory;
pub mod events;
mod groups;
mod http;
mod id_token;
mod keys;
mod pages;
mod state;
mod token;
mod userinfo;
mod users;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};

pub use control::{
    ClientAuthMethod, Control, DirectoryFault, DirectoryMethod, GuestKind, IdTokenFault,
    TokenFault, TokenRequestRecord, UserinfoFault,
};
pub use events::{Signature, send_event, slack_signature};
pub use groups::StandinGroup;
pub use users::StandinUser;

/// The bot token of the development setup: what `users.info` and
/// `usergroups.list` accept when `StandinOptions::bot_token` is this value.
pub const DEV_BOT_TOKEN: &str = "xoxb-0000000000-stand-in-bot-token";

/// The literal discovery document Slack serves (reference §1). Served as is in
/// exact mode; otherwise `https://slack.com` is replaced by the base URL.
const SLACK_DISCOVERY: &str = r#"{"issuer":"https://slack.com","authorization_endpoint":"https://slack.com/openid/connect/authorize","token_endpoint":"https://slack.com/api/openid.connect.token","userinfo_endpoint":"https://slack.com/api/openid.connect.userInfo","jwks_uri":"https://slack.com/openid/connect/keys","scopes_supported":["openid","profile","email"],"response_types_supported":["code"],"response_modes_supported":["query"],"grant_types_supported":["authorization_code"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["RS256"],"claims_supported":["sub","auth_time","iss"],"claims_parameter_supported":false,"request_parameter_supported":false,"request_uri_parameter_supported":true,"token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]}"#;

/// Slack's real issuer, used for `iss` in exact mode.
const SLACK_ISSUER: &str = "https://slack.com";

/// A Slack app registered with the stand-in.
#[derive(Debug, Clone)]
pub struct StandinApp {
    pub client_id: String,
    pub client_secret: String,
    /// Redirect URLs; a `redirect_uri` must equal one or lie below one.
    pub redirect_urls: Vec<String>,
    /// Distributed apps may be used from any workspace; others only from the
    /// workspace named by `team`, when the authorize request names one.
    pub distributed: bool,
    /// Token rotation: expiring `xoxe.xoxp-` tokens plus refresh tokens.
    pub rotation: bool,
}

/// How to run the stand-in.
#[derive(Debug, Clone)]
pub struct StandinOptions {
    /// Must be a loopback address; port 0 picks a free port.
    pub listen: SocketAddr,
    pub apps: Vec<StandinApp>,
    pub users: Vec<StandinUser>,
    /// Say `https://slack.com` in `iss` and in discovery, like real Slack.
    /// Discovery then points away from the stand-in: only for fixtures.
    pub exact_slack_mode: bool,
    /// User groups, as `usergroups.list` starts out.
    pub groups: Vec<StandinGroup>,
    /// The app's bot token (`xoxb-…`) for the directory methods; None makes
    /// every directory call `invalid_auth`.
    pub bot_token: Option<String>,
    /// Where the `/admin` page sends the events of the changes it makes.
    pub events: Option<StandinEvents>,
}

/// An Events API subscription: the Request URL and the app's signing secret.
#[derive(Debug, Clone)]
pub struct StandinEvents {
    pub url: String,
    pub signing_secret: String,
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("the Slack stand-in only listens on a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    #[error("the Slack stand-in could not bind its listen address: {0}")]
    Bind(#[source] std::io::Error),
    #[error("the Slack stand-in could not create its signing key: {0}")]
    Key(String),
}

/// A running stand-in.
pub struct StandinHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    /// Fault switches and observations for tests.
    pub control: Arc<Control>,
    server: actix_web::dev::ServerHandle,
}

impl std::fmt::Debug for StandinHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl StandinHandle {
    /// Stops the server, letting in-flight requests finish briefly.
    pub async fn stop(self) {
        self.server.stop(true).await;
    }
}

/// What every handler needs to know about the configuration.
pub(crate) struct Config {
    pub base_url: String,
    pub issuer: String,
    pub exact_slack_mode: bool,
    pub apps: Vec<StandinApp>,
    pub users: Vec<StandinUser>,
    pub bot_token: Option<String>,
    pub events: Option<StandinEvents>,
}

impl Config {
    pub fn app(&self, client_id: &str) -> Option<&StandinApp> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    pub fn user(&self, user_id: &str) -> Option<&StandinUser> {
        self.users.iter().find(|u| u.user_id == user_id)
    }

    /// A workspace on Enterprise Grid: one whose users have an enterprise.
    pub fn is_grid_team(&self, team_id: &str) -> bool {
        self.users
            .iter()
            .any(|u| u.team_id == team_id && u.enterprise_id.is_some())
    }
}

/// Binds the listen address and serves the stand-in on the current tokio
/// runtime. Returns once the socket is bound, so requests can be sent at once.
pub async fn start(opts: StandinOptions) -> Result<StandinHandle, StandinError> {
    if !opts.listen.ip().is_loopback() {
        return Err(StandinError::NotLoopback(opts.listen));
    }
    let listener = std::net::TcpListener::bind(opts.listen).map_err(StandinError::Bind)?;
    listener.set_nonblocking(true).map_err(StandinError::Bind)?;
    let addr = listener.local_addr().map_err(StandinError::Bind)?;
    let base_url = format!("http://{addr}");

    let control = Arc::new(Control::new(
        keys::SigningKey::generate()?,
        &opts.users,
        opts.groups,
    ));
    let config = Arc::new(Config {
        issuer: if opts.exact_slack_mode {
            SLACK_ISSUER.to_owned()
        } else {
            base_url.clone()
        },
        base_url: base_url.clone(),
        exact_slack_mode: opts.exact_slack_mode,
        apps: opts.apps,
        users: opts.users,
        bot_token: opts.bot_token,
        events: opts.events,
    });

    let data_control = web::Data::from(control.clone());
    let data_config = web::Data::from(config);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data_control.clone())
            .app_data(data_config.clone())
            .configure(routes)
    })
    .workers(1)
    // The host process owns signal handling; the stand-in just stops when told.
    .disable_signals()
    .shutdown_timeout(2)
    .listen(listener)
    .map_err(StandinError::Bind)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    Ok(StandinHandle {
        base_url,
        control,
        server: handle,
    })
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery),
    )
    .route("/openid/connect/keys", web::get().to(jwks))
    .route(
        "/openid/connect/authorize",
        web::get().to(authorize::authorize),
    )
    .route(
        "/openid/connect/authorize/decide",
        web::post().to(authorize::decide),
    )
    .route("/api/openid.connect.token", web::post().to(token::token))
    .route(
        "/api/openid.connect.userInfo",
        web::get().to(userinfo::userinfo),
    )
    .route(
        "/api/openid.connect.userInfo",
        web::post().to(userinfo::userinfo),
    )
    .route("/api/users.info", web::get().to(directory::users_info))
    .route("/api/users.info", web::post().to(directory::users_info))
    .route(
        "/api/usergroups.list",
        web::get().to(directory::usergroups_list),
    )
    .route(
        "/api/usergroups.list",
        web::post().to(directory::usergroups_list),
    )
    .route("/admin", web::get().to(admin::page))
    .route("/admin/user", web::post().to(admin::user_action))
    .route("/admin/group", web::post().to(admin::group_action));
}

/// Slack's discovery document, pointing at the stand-in unless in exact mode.
async fn discovery(config: web::Data<Config>) -> HttpResponse {
    let body = if config.exact_slack_mode {
        SLACK_DISCOVERY.to_owned()
    } else {
        SLACK_DISCOVERY.replace(SLACK_ISSUER, &config.base_url)
    };
    http::raw_json(actix_web::http::StatusCode::OK, body)
}

/// The public keys; counts fetches so tests can check a client's refetch policy.
async fn jwks(control: web::Data<Control>) -> HttpResponse {
    let body = control.serve_jwks();
    http::raw_json(actix_web::http::StatusCode::OK, body)
}
