//! The face toward applications: one file per endpoint, each a list of small
//! named checks in the order of the specification.

pub mod access_token;
pub mod authorize;
pub mod backchannel;
pub mod callback;
pub mod claims;
pub mod client_auth;
pub mod clients;
pub mod consent;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod grant;
pub mod introspect;
pub mod logout;
pub mod par;
pub mod params;
pub mod policy;
pub mod revoke;
pub mod session;
pub mod signout;
pub mod subject;
pub mod token;
pub mod userinfo;

use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use openidconnect::IssuerUrl;

use crate::config::Config;
use crate::directory::Directory;
use crate::keys::KeyStore;
use crate::limits::Limits;
use crate::observability::metrics::{self, Refusal};
use crate::store::records::{Records, random_secret};
use crate::upstream::SlackClient;
use crate::web::Pages;
use crate::web::cached::CachedJson;
use crate::web::cors;
use crate::web::i18n::Locale;
use crate::web::pages::{BackLink, ErrorPage};
use clients::Clients;
use error::OAuthError;

/// Everything the endpoints share; built once by `crate::build`.
pub struct Provider {
    pub issuer: String,
    /// The issuer's path ("" at the root): every endpoint is under it.
    pub base_path: String,
    pub issuer_url: IssuerUrl,
    pub config: Arc<Config>,
    pub clients: Clients,
    pub records: Records,
    pub keys: Arc<KeyStore>,
    pub slack: Arc<SlackClient>,
    /// What Slack says about people beyond sign-in (bot token, userInfo).
    pub directory: Directory,
    pub pages: Pages,
    pub discovery: CachedJson,
    /// Name of the cookie that binds a pending login to the browser.
    pub browser_cookie: &'static str,
    pub secure_cookies: bool,
    /// For calls to applications (back-channel logout); redirects off.
    pub http: reqwest::Client,
    /// Rate limits of the authorization and token endpoints.
    pub limits: Arc<Limits>,
    /// Rate limits of the device flow's own endpoints (RFC 8628 §5.1).
    pub device_limits: device::DeviceLimits,
    /// The fetched public keys of `private_key_jwt` clients.
    pub client_keys: client_auth::keys::KeyCache,
}

impl Provider {
    pub fn ttl_login(&self) -> Duration {
        Duration::from_secs(self.config.tokens.login_ttl_secs)
    }
    pub fn ttl_code(&self) -> Duration {
        Duration::from_secs(self.config.tokens.code_ttl_secs)
    }
    pub fn ttl_access_token(&self) -> Duration {
        Duration::from_secs(self.config.tokens.access_token_ttl_secs)
    }

    /// An error page for the person in the browser, in English. The
    /// reference also goes to the log, so an operator can find what happened.
    pub fn error_page(
        &self,
        req: &HttpRequest,
        status: StatusCode,
        title: &str,
        error: &OAuthError,
    ) -> HttpResponse {
        self.error_page_in(Locale::for_request(req, None), None, status, title, error)
    }

    /// An error page in the person's language, with a way back to the
    /// application when its client and redirect URI were validated.
    pub fn error_page_in(
        &self,
        locale: Locale,
        back: Option<&BackLink>,
        status: StatusCode,
        title: &str,
        error: &OAuthError,
    ) -> HttpResponse {
        // The request id: also the X-Request-Id answer header and a field
        // of every log line of this request, so an operator can grep it.
        let reference = crate::observability::request::current_request_id();
        tracing::warn!(reference, error = error.code.as_str(), description = %error.description, "{title}");
        let mut page = self.pages.error(
            status,
            locale,
            &ErrorPage {
                title,
                description: &error.description,
                error: error.code.as_str(),
                reference: &reference,
                back,
            },
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            page.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        page
    }

    /// Ends a sign-in without a code, counting why: the error redirect to the
    /// application, except when the store is full, which gets a 503 page
    /// (sending the browser back to an application that may start a new
    /// sign-in at once would only feed the flood; docs/decisions/0007).
    pub fn refuse_sign_in(
        &self,
        req: &HttpRequest,
        reason: Refusal,
        error: OAuthError,
        client_id: &str,
        redirect_uri: &str,
        state: Option<&str>,
    ) -> HttpResponse {
        metrics::sign_in_refused(reason);
        tracing::info!(client_id, reason = reason.as_str(), error = error.code.as_str(), description = %error.description, "sign-in refused");
        if error.is_store_full() {
            return self.error_page(
                req,
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now",
                &error,
            );
        }
        error.redirect(redirect_uri, state, &self.issuer)
    }

    /// The browser's binding cookie value, minting one when absent.
    pub fn browser_id(&self, req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
        if let Some(c) = req.cookie(self.browser_cookie)
            && c.value().len() == 43
        {
            return (c.value().to_string(), None);
        }
        let value = random_secret();
        let cookie = Cookie::build(self.browser_cookie, value.clone())
            .path("/")
            .http_only(true)
            .secure(self.secure_cookies)
            .same_site(SameSite::Lax)
            .finish();
        (value, Some(cookie))
    }
}

/// Every endpoint; mounted by `crate::serve` under the issuer's path. Token,
/// userinfo and revocation answer browser applications' cross-origin calls
/// and preflights (`crate::web::cors`); introspection does not.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery::openid_configuration),
    )
    .route("/jwks", web::get().to(discovery::jwks))
    .route("/authorize", web::get().to(authorize::get))
    .route("/authorize", web::post().to(authorize::post))
    // The endpoints that take DPoP proofs hand out nonces (`dpop::nonces`).
    .service(
        web::resource("/par")
            .wrap(from_fn(dpop::nonces))
            .route(web::post().to(par::push)),
    )
    .route("/callback", web::get().to(callback::callback))
    .service(
        web::resource("/token")
            .wrap(from_fn(dpop::nonces))
            .wrap(from_fn(|req, next| {
                cors::client_bound(req, next, cors::POST)
            }))
            .route(web::post().to(token::token)),
    )
    .service(
        web::resource("/userinfo")
            .wrap(from_fn(dpop::nonces))
            .wrap(from_fn(|req, next| {
                cors::client_bound(req, next, cors::GET_POST)
            }))
            .route(web::get().to(userinfo::userinfo))
            .route(web::post().to(userinfo::userinfo)),
    )
    .route("/consent", web::post().to(consent::consent))
    .service(
        web::resource("/revoke")
            .wrap(from_fn(|req, next| {
                cors::client_bound(req, next, cors::POST)
            }))
            .route(web::post().to(revoke::revoke)),
    )
    .route("/introspect", web::post().to(introspect::introspect))
    .route("/logout", web::get().to(logout::get))
    .route("/logout", web::post().to(logout::post))
    .route("/logout/confirm", web::post().to(logout::confirmed))
    .configure(device::routes);
}
