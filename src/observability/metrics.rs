//! Every metric the bridge exports, in one place: the names (with what they
//! count and their labels), the helpers the endpoints call, and the
//! Prometheus recorder that `/metrics` renders.
//!
//! Labels only ever take values from a closed set (route patterns, reasons,
//! registered client ids, HTTP status codes), never from raw request data,
//! so an attacker cannot grow the number of series.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::StoreError;
use crate::upstream::UpstreamError;

/// Counter. HTTP requests answered, by `route` (the route pattern such as
/// `/authorize`, or `unmatched`; never the raw path), `method` and `status`.
pub const HTTP_REQUESTS: &str = "bridge_http_requests_total";
/// Histogram, seconds. Time from request head to response, with the labels
/// of [`HTTP_REQUESTS`].
pub const HTTP_REQUEST_DURATION: &str = "bridge_http_request_duration_seconds";
/// Counter. Sign-ins that ended with a code for the application, by
/// `client_id` (registered clients only).
pub const SIGN_INS_COMPLETED: &str = "bridge_sign_ins_completed_total";
/// Counter. Sign-ins that ended without a code, by `reason` (see
/// [`Refusal`]).
pub const SIGN_INS_REFUSED: &str = "bridge_sign_ins_refused_total";
/// Counter. Successful token responses, by `grant_type`
/// (`authorization_code`, `refresh_token`, `device_code`).
pub const TOKENS_ISSUED: &str = "bridge_tokens_issued_total";
/// Histogram, seconds. Calls to Slack, by `call` (`discovery`, `jwks`,
/// `token`, `userinfo`, `users_info`, `usergroups_list`) and `outcome`
/// (`ok`, `error`).
pub const UPSTREAM_DURATION: &str = "bridge_upstream_request_duration_seconds";
/// Counter. Failed calls to Slack, by `call` and `kind` (`timeout`,
/// `unreachable`, `rate_limited`, `http`, `not_json`, `slack_error`,
/// `missing_field`, `discovery`, `id_token`).
pub const UPSTREAM_ERRORS: &str = "bridge_upstream_errors_total";
/// Counter. Store calls that failed, by `op` (`put`, `put_new`, `get`, `swap`,
/// `replace`, `take`, `delete`, `ping`, `index_set`, `index_read`,
/// `index_remove`, `decode`) and `kind` (`unavailable`, `full`, `corrupt`).
pub const STORE_ERRORS: &str = "bridge_store_errors_total";
/// Counter. Calls the bridge made to its store, by `op` (as
/// [`STORE_ERRORS`]): one round trip each on Redis.
pub const STORE_CALLS: &str = "bridge_store_calls_total";
/// Counter. Requests answered 429 by a rate limit, by `endpoint`
/// (`authorize`, `token`, `device_authorization`, `device_verification`)
/// and `limit` (`address`, `client`).
pub const RATE_LIMITED: &str = "bridge_rate_limited_total";

/// Counter. Answers about people and workspaces the directory gave, by
/// `source` (`users_info`, `usergroups_list`, `userinfo`) and `answer`
/// (`cached`: reused within its TTL; `slack`: fresh from Slack; `stale`:
/// Slack did not answer and the last answer stood in; `unavailable`: no
/// answer recent enough; `refused`: Slack said no).
pub const DIRECTORY_ANSWERS: &str = "bridge_directory_answers_total";
/// Counter. Slack calls not made because Slack's `Retry-After` had not
/// passed (shared by every instance through the store), by `source`.
pub const SLACK_BACKOFF: &str = "bridge_slack_backoff_skips_total";
/// Counter. People signed out everywhere, by `trigger` (`event`, `admin`).
pub const SIGNED_OUT_EVERYWHERE: &str = "bridge_signed_out_everywhere_total";
/// Counter. Slack events received, by `outcome` (`handled`, `duplicate`,
/// `ignored`, `bad_signature`, `failed`).
pub const SLACK_EVENTS: &str = "bridge_slack_events_total";
/// Counter. Fetches of a client's `jwks_uri` (private_key_jwt), by
/// `client_id` and `outcome` (`ok`, `failed`: the cached keys, if any
/// younger than their bound, stood in; `refused`: none could).
pub const CLIENT_KEY_FETCHES: &str = "bridge_client_key_fetches_total";
/// Counter. DPoP proofs checked (RFC 9449), by `outcome` (`ok`, `invalid`,
/// `replayed`, `nonce`: a nonce was asked for, `missing`: a bound token or a
/// client registered for DPoP came without one, `unavailable`: the store
/// could not record the `jti`).
pub const DPOP_PROOFS: &str = "bridge_dpop_proofs_total";

/// Latency buckets (seconds) shared by both histograms: from a cached answer
/// (~1 ms) to a Slack call at its timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process-wide `metrics` recorder
/// (once; later calls return the same handle) and describes every metric.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        handle
    })
}

/// The handle `/metrics` renders, if [`install`] ran.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get()
}

/// Keeps histogram storage bounded between scrapes (the exporter's upkeep).
pub fn start_upkeep(handle: &'static PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route pattern, method and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route pattern, method and status"
    );
    describe_counter!(
        SIGN_INS_COMPLETED,
        "Sign-ins that ended with a code, by client"
    );
    describe_counter!(
        SIGN_INS_REFUSED,
        "Sign-ins that ended without a code, by reason"
    );
    describe_counter!(TOKENS_ISSUED, "Successful token responses, by grant type");
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time of each call to Slack, by call and outcome"
    );
    describe_counter!(UPSTREAM_ERRORS, "Failed calls to Slack, by call and kind");
    describe_counter!(STORE_ERRORS, "Failed store calls, by operation and kind");
    describe_counter!(STORE_CALLS, "Store calls (Redis round trips), by operation");
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a rate limit, by endpoint and limit"
    );
    describe_counter!(
        DIRECTORY_ANSWERS,
        "Answers of Slack's directory and userInfo, by source and how they were had"
    );
    describe_counter!(
        SLACK_BACKOFF,
        "Slack calls skipped while a Retry-After runs, by source"
    );
    describe_counter!(
        SIGNED_OUT_EVERYWHERE,
        "People signed out of every session and token family, by trigger"
    );
    describe_counter!(SLACK_EVENTS, "Slack events received, by outcome");
    describe_counter!(
        CLIENT_KEY_FETCHES,
        "Fetches of clients' jwks_uri, by client and outcome"
    );
    describe_counter!(DPOP_PROOFS, "DPoP proofs checked, by outcome");
    // Known series start at zero, so `rate()` and alerts see them from the
    // first scrape on.
    for reason in Refusal::ALL {
        counter!(SIGN_INS_REFUSED, "reason" => reason.as_str()).increment(0);
    }
    for grant in ["authorization_code", "refresh_token", "device_code"] {
        counter!(TOKENS_ISSUED, "grant_type" => grant).increment(0);
    }
}

/// Why a sign-in ended without a code for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The authorization request was malformed or not allowed (unknown
    /// client, unregistered redirect URI, bad scope, PKCE, ...).
    InvalidRequest,
    /// `prompt=none` could not be answered without the person.
    InteractionRequired,
    /// Slack's callback did not match a pending sign-in of this browser
    /// (missing, expired, replayed or foreign state).
    BadState,
    /// The person cancelled at Slack.
    UserCancelled,
    /// The person declined the consent page.
    ConsentDeclined,
    /// The Slack workspace is not in `upstream.allowed_team_ids`.
    WorkspaceNotAllowed,
    /// Slack's directory or the application's policy refused the person
    /// (deactivated, bot, guest, not in an allowed group or workspace).
    NotAdmitted,
    /// Slack failed or answered something unusable.
    UpstreamError,
    /// The store did not answer.
    StoreUnavailable,
    /// The memory store is at `store.memory_max_entries`.
    StoreFull,
    /// A rate limit answered 429.
    RateLimited,
    /// Anything else (an unexpected error).
    Other,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::InvalidRequest,
        Refusal::InteractionRequired,
        Refusal::BadState,
        Refusal::UserCancelled,
        Refusal::ConsentDeclined,
        Refusal::WorkspaceNotAllowed,
        Refusal::NotAdmitted,
        Refusal::UpstreamError,
        Refusal::StoreUnavailable,
        Refusal::StoreFull,
        Refusal::RateLimited,
        Refusal::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InvalidRequest => "invalid_request",
            Refusal::InteractionRequired => "interaction_required",
            Refusal::BadState => "bad_state",
            Refusal::UserCancelled => "user_cancelled",
            Refusal::ConsentDeclined => "consent_declined",
            Refusal::WorkspaceNotAllowed => "workspace_not_allowed",
            Refusal::NotAdmitted => "not_admitted",
            Refusal::UpstreamError => "upstream_error",
            Refusal::StoreUnavailable => "store_unavailable",
            Refusal::StoreFull => "store_full",
            Refusal::RateLimited => "rate_limited",
            Refusal::Other => "other",
        }
    }

    /// The reason an error stands for when the call site does not know better.
    pub fn of(e: &impl RefusalReason) -> Refusal {
        e.refusal()
    }
}

/// An error that stands for a reason a sign-in was refused: the endpoints'
/// error type says which (this module knows nothing of it).
pub trait RefusalReason {
    fn refusal(&self) -> Refusal;
}

pub fn sign_in_refused(reason: Refusal) {
    counter!(SIGN_INS_REFUSED, "reason" => reason.as_str()).increment(1);
}

pub fn sign_in_completed(client_id: &str) {
    counter!(SIGN_INS_COMPLETED, "client_id" => client_id.to_string()).increment(1);
}

pub fn token_issued(grant_type: &'static str) {
    counter!(TOKENS_ISSUED, "grant_type" => grant_type).increment(1);
}

pub fn directory_answer(source: &'static str, answer: &'static str) {
    counter!(DIRECTORY_ANSWERS, "source" => source, "answer" => answer).increment(1);
}

pub fn slack_backoff(source: &'static str) {
    counter!(SLACK_BACKOFF, "source" => source).increment(1);
}

pub fn signed_out_everywhere(trigger: &'static str) {
    counter!(SIGNED_OUT_EVERYWHERE, "trigger" => trigger).increment(1);
}

pub fn slack_event(outcome: &'static str) {
    counter!(SLACK_EVENTS, "outcome" => outcome).increment(1);
}

pub fn client_key_fetch(client_id: &str, outcome: &'static str) {
    counter!(CLIENT_KEY_FETCHES, "client_id" => client_id.to_string(), "outcome" => outcome)
        .increment(1);
}

pub fn dpop_proof(outcome: &'static str) {
    counter!(DPOP_PROOFS, "outcome" => outcome).increment(1);
}

pub fn rate_limited(endpoint: &'static str, limit: &'static str) {
    counter!(RATE_LIMITED, "endpoint" => endpoint, "limit" => limit).increment(1);
}

pub fn store_call(op: &'static str) {
    counter!(STORE_CALLS, "op" => op).increment(1);
}

pub fn store_error(op: &'static str, e: &StoreError) {
    let kind = match e {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Full => "full",
        StoreError::Corrupt(_) => "corrupt",
    };
    counter!(STORE_ERRORS, "op" => op, "kind" => kind).increment(1);
}

/// One answered HTTP request.
pub fn http_request(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// A call to Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamCall {
    Discovery,
    Jwks,
    Token,
    Userinfo,
    UsersInfo,
    UsergroupsList,
}

impl UpstreamCall {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamCall::Discovery => "discovery",
            UpstreamCall::Jwks => "jwks",
            UpstreamCall::Token => "token",
            UpstreamCall::Userinfo => "userinfo",
            UpstreamCall::UsersInfo => "users_info",
            UpstreamCall::UsergroupsList => "usergroups_list",
        }
    }
}

fn upstream_error_kind(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Unreachable(_) => "unreachable",
        UpstreamError::Timeout => "timeout",
        UpstreamError::RateLimited { .. } => "rate_limited",
        UpstreamError::Http(_) => "http",
        UpstreamError::NotJson => "not_json",
        UpstreamError::Slack(_) => "slack_error",
        UpstreamError::Missing(_) => "missing_field",
        UpstreamError::Discovery(_) => "discovery",
        UpstreamError::IdToken(_) => "id_token",
    }
}

/// Runs one call to Slack, recording its duration and any error.
pub async fn upstream<T>(
    call: UpstreamCall,
    fut: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    let started = Instant::now();
    let result = fut.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    histogram!(UPSTREAM_DURATION, "call" => call.as_str(), "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        counter!(UPSTREAM_ERRORS, "call" => call.as_str(), "kind" => upstream_error_kind(e))
            .increment(1);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reason_has_a_distinct_label() {
        let mut names: Vec<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Refusal::ALL.len());
    }

    #[test]
    fn the_recorder_renders_prometheus_text_with_histogram_buckets() {
        let handle = install();
        http_request("/test-route", "GET", 200, Duration::from_millis(3));
        let text = handle.render();
        assert!(
            text.contains(
                "bridge_http_requests_total{route=\"/test-route\",method=\"GET\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("bridge_http_request_duration_seconds_bucket{route=\"/test-route\""),
            "histograms have buckets: {text}"
        );
        assert!(
            text.contains("# HELP bridge_sign_ins_refused_total"),
            "{text}"
        );
        assert!(
            text.contains("bridge_sign_ins_refused_total{reason=\"workspace_not_allowed\"} 0"),
            "{text}"
        );
    }
}
