//! HTML pages, rendered with tera from templates compiled into the binary (so
//! the bridge runs from any directory). Every value is escaped by tera; every
//! visible text comes from the message catalog of the page's language.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use tera::{Context, Tera};

use super::headers::{FormAction, PAGE_HEADERS, content_security_policy};
use super::i18n::{self, Locale};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("consent.html", include_str!("../../templates/consent.html")),
    (
        "logout_confirm.html",
        include_str!("../../templates/logout_confirm.html"),
    ),
    (
        "logged_out.html",
        include_str!("../../templates/logged_out.html"),
    ),
    ("device.html", include_str!("../../templates/device.html")),
    (
        "device_confirm.html",
        include_str!("../../templates/device_confirm.html"),
    ),
    (
        "device_done.html",
        include_str!("../../templates/device_done.html"),
    ),
    (
        "standin/pick_user.html",
        include_str!("../../templates/standin/pick_user.html"),
    ),
];

/// Inlined into every page (allowed by its hash in the CSP).
pub const STYLESHEET: &str = include_str!("../../templates/bridge.css");

pub struct Pages {
    tera: Tera,
}

/// How a page is framed: its language and where its forms may go.
#[derive(Debug, Clone)]
pub struct Frame {
    pub locale: Locale,
    pub form_action: FormAction,
}

impl Frame {
    pub fn new(locale: Locale) -> Frame {
        Frame {
            locale,
            form_action: FormAction::SelfOnly,
        }
    }
}

/// A safe way back from an error page: the origin of an application's
/// registered redirect URI, offered only once the client and the URI were
/// validated.
#[derive(Debug, Clone, Serialize)]
pub struct BackLink {
    pub href: String,
    pub app: String,
}

impl BackLink {
    /// `https://app.example/` for a redirect URI `https://app.example/cb`;
    /// None for anything but http and https (a native app's custom scheme is
    /// no page to go back to).
    pub fn to_origin_of(redirect_uri: &str, app: &str) -> Option<BackLink> {
        let url = url::Url::parse(redirect_uri).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let origin = url.origin();
        origin.is_tuple().then(|| BackLink {
            href: format!("{}/", origin.ascii_serialization()),
            app: app.to_string(),
        })
    }
}

/// What the error page shows: plain words first (in the person's language),
/// then the OAuth code and a reference that also appears in the log.
pub struct ErrorPage<'a> {
    /// In English, as the code names it; translated here.
    pub title: &'a str,
    /// The error's description (English, for the log and for developers).
    pub description: &'a str,
    pub error: &'a str,
    pub reference: &'a str,
    pub back: Option<&'a BackLink>,
}

#[derive(Serialize)]
struct ErrorView<'a> {
    title: String,
    what: String,
    advice: &'static str,
    error: &'a str,
    reference: &'a str,
    back: Option<&'a BackLink>,
}

impl ErrorPage<'_> {
    fn view(&self, locale: Locale) -> ErrorView<'_> {
        let title = i18n::translate(locale, self.title).unwrap_or_else(|| match locale {
            Locale::En => self.title.to_string(),
            _ => i18n::fallback_title(locale).to_string(),
        });
        let what = i18n::translate(locale, self.description).unwrap_or_else(|| match locale {
            Locale::En if !self.description.is_empty() => sentence(self.description),
            _ => i18n::explain(locale, self.error).to_string(),
        });
        ErrorView {
            title,
            what,
            advice: i18n::advice(locale, self.error),
            error: self.error,
            reference: self.reference,
            back: self.back,
        }
    }
}

/// `the form is incomplete` → `The form is incomplete.`; a first word that
/// names a parameter (`client_id`) keeps its case.
fn sentence(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let first_word = text.split(' ').next().unwrap_or("");
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if !first_word.contains('_') => {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
        _ => out.push_str(text),
    }
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

impl Pages {
    pub fn new() -> Result<Pages, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES.iter().copied())?;
        tera.autoescape_on(vec![".html"]);
        Ok(Pages { tera })
    }

    /// Renders `template` with `data`, plus what every page has: `lang`, the
    /// catalog `t` and the stylesheet. Sets the page's own security headers
    /// (the CSP depends on its forms) and `Cache-Control: no-store`.
    pub fn render<T: Serialize>(
        &self,
        template: &str,
        status: StatusCode,
        frame: &Frame,
        data: &T,
    ) -> HttpResponse {
        let body = Context::from_serialize(data).and_then(|mut ctx| {
            ctx.insert("lang", frame.locale.tag());
            ctx.insert("t", frame.locale.messages());
            ctx.insert("stylesheet", STYLESHEET);
            self.tera.render(template, &ctx)
        });
        match body {
            Ok(html) => {
                let mut response = HttpResponse::build(status);
                response
                    .content_type("text/html; charset=utf-8")
                    .insert_header(("Cache-Control", "no-store"))
                    .insert_header((
                        "Content-Security-Policy",
                        content_security_policy(&frame.form_action),
                    ));
                for header in PAGE_HEADERS {
                    response.insert_header(header);
                }
                response.body(html)
            }
            Err(e) => {
                tracing::error!(template, error = ?e, "page rendering failed");
                HttpResponse::build(StatusCode::INTERNAL_SERVER_ERROR)
                    .content_type("text/plain; charset=utf-8")
                    .body("error")
            }
        }
    }

    pub fn error(&self, status: StatusCode, locale: Locale, page: &ErrorPage<'_>) -> HttpResponse {
        self.render(
            "error.html",
            status,
            &Frame::new(locale),
            &page.view(locale),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: HttpResponse) -> String {
        let bytes = actix_web::body::to_bytes(r.into_body());
        let bytes = futures_executor(bytes).expect("a body");
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The body of a rendered page is already complete: poll it once.
    fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a rendered body is ready at once"),
        }
    }

    fn error_page(
        locale: Locale,
        title: &str,
        description: &str,
        back: Option<&BackLink>,
    ) -> String {
        let pages = Pages::new().unwrap();
        body(pages.error(
            StatusCode::BAD_REQUEST,
            locale,
            &ErrorPage {
                title,
                description,
                error: "invalid_request",
                reference: "0a1b2c",
                back,
            },
        ))
    }

    #[test]
    fn every_template_renders_in_both_languages() {
        let pages = Pages::new().unwrap();
        let data = serde_json::json!({
            "app": "App", "user": "Ada", "scopes": ["Know who you are on Slack"],
            "interaction": "i", "action": "/consent", "token": "t", "ui_locales": "en", "slack_url": "http://127.0.0.1:1/a",
            "params": [{"name": "state", "value": "s"}],
            "users": [{"id": "U1", "name": "Ada", "email": null, "team": "T"}],
            "title": "T", "what": "W", "advice": "A", "error": "invalid_request", "reference": "r",
            "user_code": "BCDF-GHJK", "message": "M", "code": "BCDF-GHJK",
            "switch_action": "/device", "heading": "H", "body": "B",
        });
        for (name, _) in TEMPLATES.iter().filter(|(n, _)| *n != "base.html") {
            for locale in [Locale::En, Locale::Fr] {
                let r = pages.render(name, StatusCode::OK, &Frame::new(locale), &data);
                let html = body(r);
                assert!(
                    html.contains(&format!("<html lang=\"{}\">", locale.tag())),
                    "{name}: {html}"
                );
                assert!(
                    !html.contains("{app}") && !html.contains("{user}"),
                    "{name}: {html}"
                );
            }
        }
    }

    #[test]
    fn an_error_page_in_french_shows_no_english() {
        let html = error_page(
            Locale::Fr,
            "This sign-in link is not valid",
            "client_id is missing",
            None,
        );
        assert!(
            html.contains("Ce lien de connexion n’est pas valide"),
            "{html}"
        );
        assert!(html.contains("client_id absent"), "{html}");
        assert!(html.contains("<code>invalid_request</code>"), "{html}");
        assert!(html.contains("0a1b2c"), "{html}");
        // Texts the catalog does not know fall back to French by error code.
        let html = error_page(Locale::Fr, "A brand new title", "a brand new problem", None);
        assert!(!html.contains("brand new"), "{html}");
        assert!(html.contains("Un problème est survenu"), "{html}");
        assert!(
            html.contains("La demande reçue ne peut pas être acceptée."),
            "{html}"
        );
    }

    #[test]
    fn an_english_error_page_keeps_an_unknown_description_as_a_sentence() {
        let html = error_page(Locale::En, "A new title", "something odd happened", None);
        assert!(html.contains("<h1>A new title</h1>"), "{html}");
        assert!(html.contains("Something odd happened."), "{html}");
        assert_eq!(sentence("client_id is odd"), "client_id is odd.");
    }

    #[test]
    fn a_way_back_is_the_origin_of_the_redirect_uri_and_only_for_web_apps() {
        let back = BackLink::to_origin_of("https://app.example:8443/auth/cb?x=1", "App").unwrap();
        assert_eq!(back.href, "https://app.example:8443/");
        assert!(BackLink::to_origin_of("com.example.app:/cb", "App").is_none());
        let html = error_page(Locale::En, "T", "d", Some(&back));
        assert!(
            html.contains("href=\"https:&#x2F;&#x2F;app.example:8443&#x2F;\""),
            "{html}"
        );
        assert!(html.contains("Back to App"), "{html}");
        assert!(!error_page(Locale::En, "T", "d", None).contains("<a "));
    }

    #[test]
    fn the_inline_stylesheet_matches_the_hash_in_the_policy() {
        let html = error_page(Locale::En, "T", "d", None);
        let start = html.find("<style>").unwrap() + "<style>".len();
        let end = html.find("</style>").unwrap();
        assert_eq!(&html[start..end], STYLESHEET, "inlined byte for byte");
    }
}
