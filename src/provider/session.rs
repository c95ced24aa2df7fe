//! The single sign-on session: an opaque cookie naming a session record that
//! holds who signed in at Slack and when, with an idle and an absolute
//! lifetime. While it lives, applications sign the person in without a trip
//! to Slack.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use super::Provider;
use crate::store::person::{Held, PersonEntry};
use crate::store::records::{Session, random_secret, secret_hash};
use crate::store::{Namespace, StoreResult, seal};
use crate::upstream::SlackIdentity;

/// The purpose Slack's tokens are sealed for in a session record.
const SEAL_SESSION: &str = "session-upstream-token";

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
    /// one, and records it in the person's index (so Slack or an admin can
    /// end it). `upstream_token`: Slack's tokens, sealed under the cookie.
    /// Returns the cookie value.
    pub async fn open_session(
        &self,
        req: &HttpRequest,
        identity: SlackIdentity,
        auth_time: i64,
        upstream_token: Option<&str>,
    ) -> StoreResult<(String, Session)> {
        if let Some(old) = req.cookie(self.session_cookie_name()) {
            let _ = self.records.delete(Namespace::Session, old.value()).await;
        }
        let value = random_secret();
        let created_at = now();
        let session = Session {
            sid: random_secret(),
            identity,
            auth_time,
            created_at,
            clients: Vec::new(),
            last_used_at: created_at,
            upstream_token: upstream_token.map(|t| seal::seal(&value, SEAL_SESSION, t.as_bytes())),
        };
        let subject = session.identity.subject();
        let entry = PersonEntry {
            held: Held::Session,
            client_id: None,
            sid: Some(session.sid.clone()),
            created_at,
            last_used_at: created_at,
            expires_at: created_at + self.config.sessions.absolute_secs as i64,
        };
        // The index first: a session it does not name could not be ended
        // from Slack.
        self.records.index_session(&subject, &value, &entry).await?;
        self.records
            .put(
                Namespace::Session,
                &value,
                &session,
                self.session_ttl(&session),
            )
            .await?;
        Ok((value, session))
    }

    /// Slack's tokens kept in the session, for codes issued from it.
    pub fn session_upstream_token(&self, cookie: &str, session: &Session) -> Option<String> {
        let sealed = session.upstream_token.as_deref()?;
        String::from_utf8(seal::open(cookie, SEAL_SESSION, sealed)?).ok()
    }

    /// Records that `client_id` signed in through the session and extends
    /// its idle lifetime. Writes only over the live session, so a logout in
    /// another tab is never undone, and keeps the clients that concurrent
    /// sign-ins added meanwhile (back-channel logout must reach them all).
    /// `Ok(None)`: the session has ended.
    pub async fn join_session(
        &self,
        value: &str,
        mut session: Session,
        client_id: &str,
    ) -> StoreResult<Option<Session>> {
        if !session.clients.iter().any(|c| c == client_id) {
            session.clients.push(client_id.to_string());
        }
        session.last_used_at = now();
        // Each round adds at least one client, and clients are finitely many.
        loop {
            let ttl = self.session_ttl(&session);
            let Some(previous) = self
                .records
                .replace(Namespace::Session, value, &session, ttl)
                .await?
            else {
                return Ok(None);
            };
            let missing: Vec<String> = previous
                .clients
                .into_iter()
                .filter(|c| !session.clients.contains(c))
                .collect();
            if missing.is_empty() {
                return Ok(Some(session));
            }
            session.clients.extend(missing);
        }
    }

    /// The idle lifetime, never past the absolute one.
    fn session_ttl(&self, session: &Session) -> Duration {
        let config = &self.config.sessions;
        let absolute_left =
            (session.created_at + config.absolute_secs as i64 - now()).max(1) as u64;
        Duration::from_secs(config.idle_secs.min(absolute_left))
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

    /// The request's session cookie when it is the one a page was bound to
    /// (`bound_hash`, its hash), compared in constant time: the answer to a
    /// consent or logout page must come from the browser that was shown it.
    pub fn session_cookie_bound_to(&self, req: &HttpRequest, bound_hash: &str) -> Option<String> {
        let cookie = req.cookie(self.session_cookie_name())?;
        let hash = secret_hash(cookie.value());
        bool::from(hash.as_bytes().ct_eq(bound_hash.as_bytes())).then(|| cookie.value().to_string())
    }

    /// Hash of this browser's binding cookie, if it has one.
    pub fn browser_hash(&self, req: &HttpRequest) -> Option<String> {
        req.cookie(self.browser_cookie)
            .map(|c| secret_hash(c.value()))
    }
}
