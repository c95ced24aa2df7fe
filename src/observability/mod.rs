//! What operators see: request ids and spans in the logs, Prometheus
//! metrics at `/metrics`, and store errors counted whatever the backend.
//! Liveness and readiness are in `crate::health`.

pub mod metrics;
pub mod request;
pub mod store;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

pub use request::{RequestId, request_id};
pub use store::MeteredStore;

/// `GET /metrics`: the Prometheus text exposition format, rendered by the
/// exporter.
async fn metrics_endpoint() -> HttpResponse {
    match metrics::handle() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(handle.render()),
        None => HttpResponse::NotFound().finish(),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics_endpoint));
}
