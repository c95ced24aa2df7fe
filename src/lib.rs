//! slack-oidc-bridge: an OpenID Provider that signs people in with Slack.
//!
//! This file is the one place that wires the parts together: config, store,
//! keys, the Slack client and the endpoints.

pub mod admin;
pub mod config;
pub mod directory;
pub mod events;
pub mod health;
pub mod identity;
pub mod jose;
pub mod keys;
pub mod limits;
pub mod observability;
pub mod outbound;
pub mod provider;
pub mod store;
pub mod upstream;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer};
use anyhow::Context;
use openidconnect::IssuerUrl;

use config::{Config, StoreBackend};
use directory::Directory;
use keys::KeyStore;
use limits::Limits;
use provider::Provider;
use provider::clients::Clients;
use store::DynStore;
use store::memory::MemoryStore;
use store::records::Records;
use upstream::SlackClient;
use upstream::standin::{self, StandinApp, StandinHandle, StandinOptions, StandinUser};

/// Limits on what a request may carry (bodies of the form endpoints; larger
/// gets 413). The request head is limited in `observability::request`.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A client must send its whole request head within this (slow clients
/// otherwise hold connections open); actix-web answers 408.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_ALIVE: Duration = Duration::from_secs(30);

pub fn build_store(config: &Config) -> anyhow::Result<DynStore> {
    Ok(match config.store.backend {
        StoreBackend::Memory => {
            let memory = Arc::new(MemoryStore::new(config.store.memory_max_entries));
            let sweeper = Arc::downgrade(&memory);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    match sweeper.upgrade() {
                        Some(m) => {
                            m.sweep();
                        }
                        None => break,
                    }
                }
            });
            memory
        }
        StoreBackend::Redis => Arc::new(
            store::redis::RedisStore::from_config(&config.store).context("store.redis_url")?,
        ),
    })
}

pub fn build_provider(
    config: Arc<Config>,
    store: DynStore,
    keys: Arc<KeyStore>,
) -> anyhow::Result<Provider> {
    let issuer = config.issuer.clone();
    let issuer_url = IssuerUrl::new(issuer.clone()).context("issuer")?;
    let secure_cookies = issuer.starts_with("https://");
    let slack = Arc::new(SlackClient::new(
        config.upstream.clone(),
        format!("{issuer}/callback"),
    )?);
    // Every store error is counted, whoever made the call.
    let records = Records::new(observability::MeteredStore::wrap(store));
    let directory = Directory::new(slack.clone(), records.clone(), &config.upstream);
    let http = outbound::client().context("HTTP client")?;
    let base_path = url::Url::parse(&issuer)
        .context("issuer")?
        .path()
        .trim_end_matches('/')
        .to_string();
    Ok(Provider {
        base_path,
        discovery: provider::discovery::metadata(
            &issuer,
            &config.keys.algorithms,
            directory.is_enabled(),
            config.require_pushed_authorization_requests,
        ),
        issuer,
        issuer_url,
        clients: Clients::from_config(&config.clients, config.pairwise_salt.as_deref()),
        records,
        directory,
        limits: Arc::new(Limits::from_config(&config.limits)),
        device_limits: provider::device::DeviceLimits::default(),
        keys,
        slack,
        pages: web::Pages::new().context("templates")?,
        // `__Host-` pins the cookie to this host, path / and https.
        browser_cookie: if secure_cookies {
            "__Host-bridge_browser"
        } else {
            "bridge_browser"
        },
        secure_cookies,
        client_keys: provider::client_auth::keys::KeyCache::new(http.clone()),
        http,
        config,
    })
}

/// Starts the built-in Slack stand-in when the config asks for it.
pub async fn start_standin(config: &Config) -> anyhow::Result<Option<StandinHandle>> {
    if !config.standin.enabled {
        return Ok(None);
    }
    let listen = config.standin.listen.context("standin.listen")?;
    let handle = standin::start(StandinOptions {
        listen,
        apps: vec![StandinApp {
            client_id: config.upstream.client_id.clone(),
            client_secret: config.upstream.client_secret.clone(),
            redirect_urls: vec![format!("{}/callback", config.issuer)],
            distributed: true,
            rotation: false,
        }],
        users: StandinUser::fixtures(),
        exact_slack_mode: false,
        groups: standin::StandinGroup::fixtures(),
        // The stand-in's directory answers the bot token the bridge uses,
        // and its admin page signs events with the bridge's secret.
        bot_token: config.upstream.bot_token.clone(),
        events: config
            .upstream
            .signing_secret
            .clone()
            .map(|signing_secret| standin::StandinEvents {
                url: format!("{}/slack/events", config.issuer),
                signing_secret,
            }),
    })
    .await
    .context("starting the Slack stand-in")?;
    tracing::warn!(url = %handle.base_url, "the built-in Slack stand-in is running: for development only");
    Ok(Some(handle))
}

/// Runs the bridge until it is stopped (SIGINT or SIGTERM).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let _standin = start_standin(&config).await?;
    provider::subject::check_sectors(&config, &outbound::client()?).await?;
    let store = build_store(&config)?;
    let keys = Arc::new(KeyStore::open(keys::Policy::from_config(&config))?);
    // Follow rotations by the CLI or another instance: poll, SIGHUP, and the
    // automatic rotation when configured.
    keys::follow::start(keys.clone(), keys::RedisLock::from_config(&config)?)
        .context("installing the SIGHUP handler")?;
    let metrics = observability::metrics::install();
    observability::metrics::start_upkeep(metrics);
    let provider = actix_web::web::Data::new(build_provider(config.clone(), store, keys)?);
    let sweeper = Arc::downgrade(&provider.limits);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(limits::SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            match sweeper.upgrade() {
                Some(limits) => limits.sweep(),
                None => break,
            }
        }
    });

    let warm = provider.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.slack.warm_up().await {
            tracing::warn!(error = %e, "Slack's discovery could not be loaded yet; retrying at the first sign-in");
        }
    });

    let readiness = actix_web::web::Data::new(health::Readiness::default());
    let server = HttpServer::new(move || app(provider.clone(), readiness.clone()))
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .keep_alive(KEEP_ALIVE)
        .bind(config.listen)
        .with_context(|| format!("listen: cannot bind {}", config.listen))?
        .run();
    tracing::info!(issuer = %config.issuer, listen = %config.listen, store = ?config.store.backend, "slack-oidc-bridge ready");
    server.await?;
    Ok(())
}

/// The bridge's routes behind its middleware, exactly as `serve` runs them;
/// tests build the same app in process.
pub fn app(
    provider: actix_web::web::Data<Provider>,
    readiness: actix_web::web::Data<health::Readiness>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let https = provider.secure_cookies;
    let base_path = provider.base_path.clone();
    // The origins CORS allows before an endpoint knows the client.
    let any_cors_origin = actix_web::web::Data::from(provider.clients.any_cors_origin());
    App::new()
        .app_data(provider)
        .app_data(any_cors_origin)
        .app_data(readiness)
        .app_data(actix_web::web::PayloadConfig::new(MAX_BODY_BYTES))
        .wrap(web::headers::security_headers(https))
        // Outermost: request id, span, head limits, log line, metrics.
        .wrap(from_fn(observability::request::middleware))
        .service(
            actix_web::web::scope(&base_path)
                .configure(health::routes)
                .configure(observability::routes)
                .configure(provider::routes)
                .configure(events::routes),
        )
}
