//! `POST {issuer}/slack/events`: Slack's Events API, so that what Slack
//! decides reaches the applications within seconds. Served only when
//! `upstream.signing_secret` is set (404 otherwise).
//!
//! Checks, in order: the request signature over the raw body (constant
//! time, timestamp within 5 minutes), the JSON, then the envelope type.
//! `url_verification` gets its challenge back; an `event_callback` is
//! handled once per `event_id` (Slack retries) and answered within Slack's
//! 3 seconds, the work going on after the answer if it takes longer.

mod signature;

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::directory::Member;
use crate::observability::metrics;
use crate::provider::Provider;
use crate::provider::signout::sign_out_everywhere;
use crate::store::records::secret_hash;
use crate::store::{Namespace, StoreError};

/// Slack retries a delivery for about 5 minutes; an event id is remembered
/// well past that.
const SEEN_TTL: Duration = Duration::from_secs(3600);
/// Slack waits 3 seconds for the answer; the work gets most of that before
/// the answer goes out anyway.
const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/slack/events", web::post().to(slack_events));
}

pub async fn slack_events(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    let Some(secret) = provider.config.upstream.signing_secret.as_deref() else {
        return HttpResponse::NotFound().finish();
    };
    if let Err(why) =
        signature::verify(secret, req.headers(), &body, chrono::Utc::now().timestamp())
    {
        metrics::slack_event("bad_signature");
        tracing::warn!(reason = why, "Slack event refused: bad signature");
        return HttpResponse::Unauthorized().json(json!({"error": why}));
    }
    let Ok(Value::Object(envelope)) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "the body is not a JSON object"}));
    };
    match envelope.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = envelope
                .get("challenge")
                .and_then(Value::as_str)
                .unwrap_or_default();
            HttpResponse::Ok().json(json!({ "challenge": challenge }))
        }
        Some("event_callback") => event_callback(&req, provider, envelope).await,
        _ => {
            metrics::slack_event("ignored");
            HttpResponse::Ok().finish()
        }
    }
}

async fn event_callback(
    req: &HttpRequest,
    provider: web::Data<Provider>,
    envelope: Map<String, Value>,
) -> HttpResponse {
    let Some(event_id) = envelope
        .get("event_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_string)
    else {
        return HttpResponse::BadRequest().json(json!({"error": "event_id is missing"}));
    };
    let retry = req
        .headers()
        .get("x-slack-retry-num")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0");
    let records = &provider.records;
    let seen_key = secret_hash(&event_id);
    // Marked before the work: a retry arriving meanwhile is not handled twice.
    let first = match records
        .store()
        .put_new(Namespace::Event, &seen_key, b"1", SEEN_TTL)
        .await
    {
        Ok(first) => first,
        Err(e) => return unavailable(&e),
    };
    if !first {
        metrics::slack_event("duplicate");
        tracing::info!(event_id, retry, "Slack event already handled");
        return HttpResponse::Ok().finish();
    }
    let work = {
        let provider = provider.clone();
        // The work keeps the request's span (its request id) in its log lines.
        tokio::spawn(
            async move { handle(&provider, &envelope).await }.instrument(tracing::Span::current()),
        )
    };
    match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(Ok(()))) => HttpResponse::Ok().finish(),
        Ok(Ok(Err(e))) => {
            // Not handled: let Slack deliver it again.
            metrics::slack_event("failed");
            tracing::error!(event_id, error = %e, "Slack event not handled; Slack will retry");
            let _ = records.store().delete(Namespace::Event, &seen_key).await;
            unavailable(&e)
        }
        Ok(Err(join)) => {
            metrics::slack_event("failed");
            tracing::error!(event_id, error = %join, "Slack event handler failed");
            HttpResponse::InternalServerError().finish()
        }
        // Still working: Slack has its answer, the work goes on.
        Err(_) => HttpResponse::Ok().finish(),
    }
}

fn unavailable(e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "store call failed");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .json(json!({"error": "the session store is unavailable"}))
}

/// Acts on one event.
async fn handle(provider: &Provider, envelope: &Map<String, Value>) -> Result<(), StoreError> {
    let event = envelope
        .get("event")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let team_id = event
        .get("team_id")
        .or_else(|| envelope.get("team_id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match kind {
        "user_change" => user_change(provider, &event).await?,
        "tokens_revoked" => {
            let users = event
                .get("tokens")
                .and_then(|t| t.get("oauth"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let enterprise = envelope.get("enterprise_id").and_then(Value::as_str);
            for user in users.iter().filter_map(Value::as_str) {
                for subject in subjects(&team_id, enterprise, user) {
                    sign_out_everywhere(provider, &subject, "event").await?;
                }
            }
        }
        "subteam_created" | "subteam_updated" | "subteam_members_changed" => {
            let team = event
                .get("subteam")
                .and_then(|s| s.get("team_id"))
                .and_then(Value::as_str)
                .unwrap_or(&team_id);
            provider.directory.forget_groups(team).await?;
            tracing::info!(
                kind,
                team_id = team,
                "Slack user groups changed; cached groups dropped"
            );
        }
        other => {
            metrics::slack_event("ignored");
            tracing::debug!(kind = other, "Slack event ignored");
            return Ok(());
        }
    }
    metrics::slack_event("handled");
    Ok(())
}

/// A person's new standing: kept for the next checks, and a deactivation
/// (or a change to guest where guests are not admitted) signs them out.
async fn user_change(provider: &Provider, event: &Map<String, Value>) -> Result<(), StoreError> {
    let Some(member) = event
        .get("user")
        .and_then(Value::as_object)
        .and_then(Member::from_user_object)
    else {
        return Ok(());
    };
    provider.directory.remember_member(&member).await;
    let why = if member.deleted {
        "deactivated"
    } else if member.is_guest() && !provider.config.upstream.allow_guests {
        "now a guest"
    } else {
        return Ok(());
    };
    tracing::info!(user_id = %member.user_id, team_id = %member.team_id, why, "Slack says a person is out");
    for subject in subjects(
        &member.team_id,
        member.enterprise_id.as_deref(),
        &member.user_id,
    ) {
        sign_out_everywhere(provider, &subject, "event").await?;
    }
    Ok(())
}

/// The subjects a Slack user may have been issued: by enterprise on
/// Enterprise Grid, else by workspace (see `SlackIdentity::subject`).
fn subjects(team_id: &str, enterprise_id: Option<&str>, user_id: &str) -> Vec<String> {
    let mut out: Vec<String> = enterprise_id
        .filter(|e| !e.is_empty())
        .map(|e| format!("{e}:{user_id}"))
        .into_iter()
        .collect();
    if !team_id.is_empty() {
        out.push(format!("{team_id}:{user_id}"));
    }
    out
}
