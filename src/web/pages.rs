//! HTML pages, rendered with tera from templates compiled into the binary (so
//! the bridge runs from any directory). Every value is escaped by tera.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use tera::{Context, Tera};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("consent.html", include_str!("../../templates/consent.html")),
    (
        "logout_confirm.html",
        include_str!("../../templates/logout_confirm.html"),
    ),
    (
        "logged_out.html",
        include_str!("../../templates/logged_out.html"),
    ),
];

pub const STYLESHEET: &str = include_str!("../../templates/bridge.css");

pub struct Pages {
    tera: Tera,
}

/// What the error page shows: plain words first, then the OAuth code and a
/// reference that also appears in the log.
#[derive(Serialize)]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub error: &'a str,
    pub reference: &'a str,
}

impl Pages {
    pub fn new() -> Result<Pages, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES.iter().copied())?;
        tera.autoescape_on(vec![".html"]);
        Ok(Pages { tera })
    }

    pub fn render<T: Serialize>(
        &self,
        template: &str,
        status: StatusCode,
        data: &T,
    ) -> HttpResponse {
        let body = Context::from_serialize(data).and_then(|ctx| self.tera.render(template, &ctx));
        match body {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .insert_header(("Cache-Control", "no-store"))
                .body(html),
            Err(e) => {
                tracing::error!(template, error = %e, "page rendering failed");
                HttpResponse::build(status)
                    .content_type("text/plain; charset=utf-8")
                    .body("error")
            }
        }
    }

    pub fn error(&self, status: StatusCode, page: &ErrorPage<'_>) -> HttpResponse {
        self.render("error.html", status, page)
    }
}
