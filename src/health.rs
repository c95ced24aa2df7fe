//! Liveness and readiness for orchestrators.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::provider::Provider;
use crate::web::pages::STYLESHEET;

/// Least time between two discovery attempts started by `/readyz`.
const WARM_UP_COOLDOWN: Duration = Duration::from_secs(2);
/// How long `/readyz` waits for an attempt it started (which goes on in the
/// background when it takes longer).
const WARM_UP_WAIT: Duration = Duration::from_secs(1);

/// What `/readyz` remembers between probes.
#[derive(Default)]
pub struct Readiness {
    last_warm_up: Mutex<Option<Instant>>,
}

impl Readiness {
    /// Starts loading Slack's discovery document unless an attempt started
    /// within the cooldown; waits briefly for it. True once discovered.
    async fn warm_up(&self, provider: &web::Data<Provider>) -> bool {
        {
            let mut last = self.last_warm_up.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < WARM_UP_COOLDOWN) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let provider = provider.clone();
        let attempt = tokio::spawn(async move {
            if let Err(e) = provider.slack.warm_up().await {
                tracing::warn!(error = %e, "Slack's discovery could not be loaded");
            }
            provider.slack.is_discovered().await
        });
        matches!(
            tokio::time::timeout(WARM_UP_WAIT, attempt).await,
            Ok(Ok(true))
        )
    }
}

/// 200 as soon as the server listens.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 only while the store answers (within its timeout) and Slack's
/// discovery document is loaded (a probe may start loading it).
async fn readyz(provider: web::Data<Provider>, readiness: web::Data<Readiness>) -> HttpResponse {
    let timeout = provider.config.store.timeout() + Duration::from_millis(100);
    let store = provider.records.store().clone();
    let store_problem = match tokio::time::timeout(timeout, store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("timed out".to_string()),
    };
    let discovered = provider.slack.is_discovered().await || readiness.warm_up(&provider).await;
    let mut body = Map::new();
    if let Some(problem) = &store_problem {
        body.insert("store".into(), Value::from(problem.as_str()));
    }
    if !discovered {
        body.insert(
            "upstream".into(),
            Value::from("Slack's discovery document is not loaded yet"),
        );
    }
    if body.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        body.insert("status".into(), Value::from("unavailable"));
        HttpResponse::ServiceUnavailable().json(Value::Object(body))
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
