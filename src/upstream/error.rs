//! Everything that can go wrong talking to Slack, in words a person and an
//! operator can act on.

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("Slack could not be reached: {0}")]
    Unreachable(String),
    #[error("Slack did not answer in time")]
    Timeout,
    #[error("Slack is rate limiting us (retry after {retry_after:?} s)")]
    RateLimited { retry_after: Option<u64> },
    #[error("Slack answered HTTP {0}")]
    Http(u16),
    #[error("Slack's answer was not JSON")]
    NotJson,
    /// Slack's `{"ok":false,"error":"…"}`.
    #[error("Slack refused the request: {0}")]
    Slack(String),
    #[error("Slack's answer lacks {0}")]
    Missing(&'static str),
    #[error("Slack's discovery document is unusable: {0}")]
    Discovery(String),
    #[error("Slack's ID token failed verification: {0}")]
    IdToken(String),
}

impl UpstreamError {
    /// Worth telling the application to retry later (`temporarily_unavailable`).
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::Unreachable(_)
            | UpstreamError::Timeout
            | UpstreamError::RateLimited { .. } => true,
            UpstreamError::Http(status) => *status >= 500,
            UpstreamError::Slack(code) => {
                matches!(
                    code.as_str(),
                    "ratelimited"
                        | "internal_error"
                        | "fatal_error"
                        | "service_unavailable"
                        | "request_timeout"
                )
            }
            _ => false,
        }
    }

    pub fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else {
            // Without the URL: it may carry a query string.
            UpstreamError::Unreachable(e.without_url().to_string())
        }
    }
}
