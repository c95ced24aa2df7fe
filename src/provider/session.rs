//! The single sign-on session: an opaque cookie naming a session record that
//! holds who signed in at Slack and when, with an idle and an absolute
//! lifetime. While it lives, applications sign the person in without a trip
//! to Slack.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use super::Provider;
use crate::store::records::{Session, random_secret, secret_hash};
use crate::store::{Namespace, StoreResult};
use crate::upstream::SlackIdentity;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Provider {
    pub fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-bridge_session"
        } else {
            "bridge_session"
        }
    }

    /// The session named by the browser's cookie, if it is still alive.
    pub async fn current_session(
        &self,
        req: &HttpRequest,
    ) -> StoreResult<Option<(String, Session)>> {
        let Some(cookie) = req.cookie(self.session_cookie_name()) else {
            return Ok(None);
        };
        let value = cookie.value().to_string();
        if value.len() != 43 {
            return Ok(None);
        }
        let session: Option<Session> = self.records.get(Namespace::Session, &value).await?;
        Ok(session
            .filter(|s| now() < s.created_at + self.config.sessions.absolute_secs as i64)
            .map(|s| (value, s)))
    }

    /// Opens a new session after a Slack login, ending the browser's previous
    /// one. Returns the cookie value.
    pub async fn open_session(
        &self,
        req: &HttpRequest,
        identity: SlackIdentity,
        auth_time: i64,
    ) -> StoreResult<(String, Session)> {
        if let Some(old) = req.cookie(self.session_cookie_name()) {
            let _ = self.records.delete(Namespace::Session, old.value()).await;
        }
        let value = random_secret();
        let session = Session {
            sid: random_secret(),
            identity,
            auth_time,
            created_at: now(),
            clients: Vec::new(),
        };
        self.save_session(&value, &session).await?;
        Ok((value, session))
    }

    /// Writes the session back, extending its idle lifetime (never past the
    /// absolute one).
    pub async fn save_session(&self, value: &str, session: &Session) -> StoreResult<()> {
        let config = &self.config.sessions;
        let absolute_left =
            (session.created_at + config.absolute_secs as i64 - now()).max(1) as u64;
        let ttl = Duration::from_secs(config.idle_secs.min(absolute_left));
        self.records
            .put(Namespace::Session, value, session, ttl)
            .await
    }

    pub async fn end_session(&self, value: &str) -> StoreResult<bool> {
        self.records.delete(Namespace::Session, value).await
    }

    pub fn session_cookie(&self, value: &str) -> Cookie<'static> {
        Cookie::build(self.session_cookie_name(), value.to_string())
            .path("/")
            .http_only(true)
            .secure(self.secure_cookies)
            .same_site(SameSite::Lax)
            .finish()
    }

    pub fn session_cookie_removal(&self) -> Cookie<'static> {
        let mut c = self.session_cookie("");
        c.make_removal();
        c
    }

    /// Hash of this browser's binding cookie, if it has one.
    pub fn browser_hash(&self, req: &HttpRequest) -> Option<String> {
        req.cookie(self.browser_cookie)
            .map(|c| secret_hash(c.value()))
    }
}
