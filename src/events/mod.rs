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
use crate::provider::policy::allows_guests;
use crate::provider::signout::{sign_out_everywhere, sign_out_of};
use crate::store::records::secret_hash;
use crate::store::{Namespace, StoreError};

/// Slack retries a delivery for about 5 minutes; an event id is remembered
/// well past that.
const SEEN_TTL: Duration = Duration::from_secs(3600);
/// Slack waits 3 seconds for the answer; the work gets most of that before
/// the answer goes out anyway.
const ANSWER_WITHIN: Duration = Duration::from_millis(2500);
/// Pauses between the tries of work that failed after Slack had its answer.
const AFTER_ANSWER_RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

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
    // The first attempt's outcome decides the answer when it comes within
    // Slack's time; after the answer has gone out the work retries on its
    // own, since Slack will not deliver the event again.
    let (first, outcome) = tokio::sync::oneshot::channel();
    {
        let provider = provider.clone();
        let event_id = event_id.clone();
        // The work keeps the request's span (its request id) in its log lines.
        tokio::spawn(
            async move {
                let mut result = handle(&provider, &envelope).await;
                // Undelivered: the answer has gone out without this outcome.
                let answered = first
                    .send(result.as_ref().map(|_| ()).map_err(ToString::to_string))
                    .is_err();
                if !answered {
                    return;
                }
                for pause in AFTER_ANSWER_RETRIES {
                    let Err(e) = &result else { return };
                    tracing::warn!(event_id, error = %e, "Slack event not handled yet; retrying");
                    tokio::time::sleep(pause).await;
                    result = handle(&provider, &envelope).await;
                }
                if let Err(e) = result {
                    metrics::slack_event("failed");
                    tracing::error!(event_id, error = %e, "Slack event given up after its answer");
                }
            }
            .instrument(tracing::Span::current()),
        );
    }
    match tokio::time::timeout(ANSWER_WITHIN, outcome).await {
        Ok(Ok(Ok(()))) => HttpResponse::Ok().finish(),
        Ok(Ok(Err(e))) => {
            // Not handled: let Slack deliver it again.
            metrics::slack_event("failed");
            tracing::error!(event_id, error = %e, "Slack event not handled; Slack will retry");
            let _ = records.store().delete(Namespace::Event, &seen_key).await;
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .json(json!({"error": "the event could not be handled now"}))
        }
        Ok(Err(_)) => {
            metrics::slack_event("failed");
            tracing::error!(event_id, "Slack event handler stopped");
            let _ = records.store().delete(Namespace::Event, &seen_key).await;
            HttpResponse::ServiceUnavailable().finish()
        }
        // Still working: Slack has its answer, the work goes on (and
        // retries by itself should it fail).
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
            let enterprise = enterprise_of(envelope);
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

/// The Enterprise Grid organization an event came from: the envelope's
/// `enterprise_id`, else its first authorization's.
fn enterprise_of(envelope: &Map<String, Value>) -> Option<&str> {
    envelope
        .get("enterprise_id")
        .and_then(Value::as_str)
        .or_else(|| {
            envelope
                .get("authorizations")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|a| a.get("enterprise_id"))
                .and_then(Value::as_str)
        })
        .filter(|e| !e.is_empty())
}

/// A person's new standing: kept for the next checks. A deactivation signs
/// them out everywhere; a change to guest signs them out of the
/// applications that do not admit guests (everywhere when none does).
async fn user_change(provider: &Provider, event: &Map<String, Value>) -> Result<(), StoreError> {
    let Some(member) = event
        .get("user")
        .and_then(Value::as_object)
        .and_then(Member::from_user_object)
    else {
        return Ok(());
    };
    provider.directory.remember_member(&member).await;
    let subjects = subjects(
        &member.team_id,
        member.enterprise_id.as_deref(),
        &member.user_id,
    );
    if member.deleted || member.is_bot {
        tracing::info!(user_id = %member.user_id, team_id = %member.team_id, "Slack says a person is out: deactivated");
        for subject in &subjects {
            sign_out_everywhere(provider, subject, "event").await?;
        }
    } else if member.is_guest() {
        let refuses = |client_id: &str| {
            provider
                .clients
                .get(client_id)
                .is_none_or(|c| !allows_guests(provider, &c))
        };
        let any_admits = provider.clients.iter().any(|c| allows_guests(provider, c));
        tracing::info!(user_id = %member.user_id, team_id = %member.team_id, "Slack says a person is now a guest");
        for subject in &subjects {
            if any_admits {
                sign_out_of(provider, subject, refuses, "event").await?;
            } else {
                sign_out_everywhere(provider, subject, "event").await?;
            }
        }
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
