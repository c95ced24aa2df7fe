//! Liveness and readiness for orchestrators.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::provider::Provider;
use crate::web::pages::STYLESHEET;

/// 200 as soon as the server listens.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 only while the store answers (within its timeout).
async fn readyz(provider: web::Data<Provider>) -> HttpResponse {
    let timeout = provider.config.store.timeout() + Duration::from_millis(100);
    let store = provider.records.store().clone();
    match tokio::time::timeout(timeout, store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "store": e.to_string()})),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "store": "timed out"})),
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(STYLESHEET)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/assets/bridge.css", web::get().to(stylesheet));
}
