//! Signing a Slack person out everywhere, when Slack says so (an event) or
//! an admin does (the CLI): every SSO session of theirs ends (`prompt=none`
//! then answers `login_required`), every token family dies (refresh:
//! `invalid_grant`; userinfo: 401; introspection: inactive), and every
//! application with a `backchannel_logout_uri` they signed into receives a
//! logout token. Everything lives in the store, so every instance sees it at
//! once.

use std::collections::HashSet;

use serde::Serialize;
use tokio::task::JoinHandle;

use super::Provider;
use super::backchannel;
use crate::observability::metrics;
use crate::store::StoreResult;
use crate::store::person::{Held, PersonEntry};
use crate::store::records::Session;

/// What signing a person out ended.
#[derive(Debug, Default, Serialize)]
pub struct SignedOut {
    pub sessions: usize,
    pub families: usize,
    /// Applications sent a logout token.
    pub notified: Vec<String>,
    #[serde(skip)]
    pub deliveries: Vec<JoinHandle<bool>>,
}

/// Ends every session and token family of `subject` (as issued: `T…:U…`).
pub async fn sign_out_everywhere(
    provider: &Provider,
    subject: &str,
    trigger: &'static str,
) -> StoreResult<SignedOut> {
    let ended = provider.records.end_person(subject).await?;
    let mut out = SignedOut {
        sessions: ended.sessions.len(),
        families: ended.families.len(),
        ..SignedOut::default()
    };
    // One logout token per application and session; a family whose session
    // is already gone is told by `sub` (and its `sid`, when it had one).
    let mut told: HashSet<(String, Option<String>)> = HashSet::new();
    for session in &ended.sessions {
        for client_id in &session.clients {
            told.insert((client_id.clone(), Some(session.sid.clone())));
        }
        collect(
            &mut out,
            &session.clients,
            backchannel::notify(provider, session),
        );
    }
    for family in &ended.families {
        let Some(client_id) = &family.client_id else {
            continue;
        };
        if !told.insert((client_id.clone(), family.sid.clone())) {
            continue;
        }
        if let Some(handle) =
            backchannel::notify_client(provider, client_id, subject, family.sid.as_deref())
        {
            out.deliveries.push(handle);
            out.notified.push(client_id.clone());
        }
    }
    out.notified.sort();
    out.notified.dedup();
    if out.sessions + out.families > 0 {
        metrics::signed_out_everywhere(trigger);
    }
    tracing::info!(
        trigger,
        sessions = out.sessions,
        families = out.families,
        notified = out.notified.len(),
        "signed a Slack person out everywhere"
    );
    Ok(out)
}

/// Ends the person's token families for the applications `refuses` names
/// and tells them (logout tokens, also for the sessions that signed into
/// them). Sessions stay: the policy check refuses those applications at the
/// next code issuance, while the others keep the person signed in.
pub async fn sign_out_of(
    provider: &Provider,
    subject: &str,
    refuses: impl Fn(&str) -> bool,
    trigger: &'static str,
) -> StoreResult<SignedOut> {
    let records = &provider.records;
    let mut out = SignedOut::default();
    let mut told: HashSet<(String, Option<String>)> = HashSet::new();
    for (member, entry) in records.person_entries(subject).await? {
        let hash = member.split_once(':').map_or("", |(_, h)| h);
        match entry.held {
            Held::Family => {
                let Some(client_id) = entry.client_id.as_deref().filter(|c| refuses(c)) else {
                    continue;
                };
                if !records.delete_family_by_hash(hash).await? {
                    continue;
                }
                out.families += 1;
                if told.insert((client_id.to_string(), entry.sid.clone())) {
                    notify_one(provider, &mut out, client_id, subject, entry.sid.as_deref());
                }
            }
            Held::Session => {
                let Some(session) = records.session_by_hash(hash).await? else {
                    continue;
                };
                for client_id in session.clients.iter().filter(|c| refuses(c)) {
                    if told.insert((client_id.clone(), Some(session.sid.clone()))) {
                        notify_one(provider, &mut out, client_id, subject, Some(&session.sid));
                    }
                }
            }
        }
    }
    out.notified.sort();
    out.notified.dedup();
    if out.families > 0 {
        metrics::signed_out_everywhere(trigger);
    }
    tracing::info!(
        trigger,
        families = out.families,
        notified = out.notified.len(),
        "signed a Slack person out of the applications that no longer admit them"
    );
    Ok(out)
}

fn notify_one(
    provider: &Provider,
    out: &mut SignedOut,
    client_id: &str,
    subject: &str,
    sid: Option<&str>,
) {
    if let Some(handle) = backchannel::notify_client(provider, client_id, subject, sid) {
        out.deliveries.push(handle);
        out.notified.push(client_id.to_string());
    }
}

fn collect(out: &mut SignedOut, clients: &[String], handles: Vec<JoinHandle<bool>>) {
    if !handles.is_empty() {
        out.notified.extend(clients.iter().cloned());
    }
    out.deliveries.extend(handles);
}

/// One live session or token family, for `sessions list`.
#[derive(Debug, Serialize)]
pub struct Holding {
    pub kind: &'static str,
    /// The applications (a session's clients, a family's client).
    pub applications: Vec<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

/// The person's live sessions and token families, oldest first.
pub async fn list(provider: &Provider, subject: &str) -> StoreResult<Vec<Holding>> {
    let mut out = Vec::new();
    for (member, entry) in provider.records.person_entries(subject).await? {
        let PersonEntry {
            held,
            client_id,
            created_at,
            last_used_at,
            expires_at,
            ..
        } = entry;
        match held {
            Held::Session => {
                let hash = member.split_once(':').map_or("", |(_, h)| h);
                // The index outlives a session that idled out: show only live ones.
                let Some(session): Option<Session> = provider.records.session_by_hash(hash).await?
                else {
                    continue;
                };
                out.push(Holding {
                    kind: "session",
                    applications: session.clients,
                    created_at: session.created_at,
                    last_used_at: session.last_used_at.max(session.created_at),
                    expires_at,
                });
            }
            Held::Family => {
                let hash = member.split_once(':').map_or("", |(_, h)| h);
                if !provider.records.family_alive_by_hash(hash).await? {
                    continue;
                }
                out.push(Holding {
                    kind: "token family",
                    applications: client_id.into_iter().collect(),
                    created_at,
                    last_used_at,
                    expires_at,
                });
            }
        }
    }
    Ok(out)
}
