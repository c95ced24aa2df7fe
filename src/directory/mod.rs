//! What Slack says about a person beyond the sign-in itself, within a budget
//! of Slack calls: their standing in the directory (`users.info`, bot
//! token), their workspace's user groups (`usergroups.list`), and their
//! profile through their own token (`openid.connect.userInfo`).
//!
//! Every answer is kept in the store with the time it was fetched: within
//! `directory_ttl_secs` it is reused without a call; past it Slack is asked
//! again, and while Slack does not answer (429, 5xx, timeout, not JSON) the
//! last answer stands in up to `max_staleness_secs`. After a 429 no call of
//! that method is made for that workspace until its `Retry-After` has passed.
//! Both the answers and the back-off live in the store, so every instance
//! shares one budget. When Slack says no, the answer is no.

pub mod facts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::UpstreamConfig;
use crate::observability::metrics::{self, UpstreamCall};
use crate::store::records::Records;
use crate::store::{Namespace, StoreError};
use crate::upstream::{SlackClient, SlackIdentity, UpstreamError, UpstreamTokens};
pub use facts::{Group, Member};

/// Back-off after a 429 that names no `Retry-After`.
const DEFAULT_RETRY_AFTER_SECS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Slack says this person may not be let in (deactivated, unknown, token
    /// revoked, ...): fail closed.
    #[error("{0}")]
    Refused(String),
    /// Slack did not answer and no answer recent enough stands in.
    #[error("Slack did not answer ({0}) and no recent answer can stand in")]
    Unavailable(String),
    /// Slack refused the bridge's own bot token: an operator must act.
    #[error("Slack refused the bridge's bot token ({0}): check upstream.bot_token and its scopes")]
    BotToken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An answer and when Slack gave it.
#[derive(Serialize, Deserialize)]
struct Cached<T> {
    value: T,
    fetched_at: i64,
}

/// Why a call gave no answer to use.
enum Failure {
    /// Slack did not answer usefully: the last answer may stand in.
    NoAnswer(String),
    /// 429: back off, then as `NoAnswer`.
    RateLimited(Option<u64>),
    /// A final answer: no stale answer overrides it.
    Final(DirectoryError),
}

/// Which kind of token a call was made with, which decides what Slack's
/// error codes mean.
#[derive(Clone, Copy)]
enum Caller {
    /// The bridge's bot token: an auth error is the operator's to fix.
    Bot,
    /// The person's own token: an auth error is Slack saying no.
    Person,
}

fn classify(caller: Caller, e: UpstreamError) -> Failure {
    match e {
        UpstreamError::RateLimited { retry_after } => Failure::RateLimited(retry_after),
        e if e.is_transient() => Failure::NoAnswer(e.to_string()),
        UpstreamError::Slack(code) => match (caller, code.as_str()) {
            (Caller::Bot, "user_not_found" | "user_not_visible") => {
                Failure::Final(DirectoryError::Refused(format!(
                    "Slack's directory does not know the person ({code})"
                )))
            }
            (Caller::Bot, _) => Failure::Final(DirectoryError::BotToken(code)),
            (Caller::Person, _) => Failure::Final(DirectoryError::Refused(format!(
                "Slack refused the person's token ({code})"
            ))),
        },
        // HTML 404s, bodies that are not JSON, HTTP errors: no answer.
        other => Failure::NoAnswer(other.to_string()),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub struct Directory {
    slack: Arc<SlackClient>,
    records: Records,
    bot_token: Option<String>,
    ttl: i64,
    max_staleness: i64,
}

impl Directory {
    pub fn new(slack: Arc<SlackClient>, records: Records, config: &UpstreamConfig) -> Directory {
        Directory {
            slack,
            records,
            bot_token: config.bot_token.clone(),
            ttl: config.directory_ttl_secs as i64,
            max_staleness: config.max_staleness_secs as i64,
        }
    }

    /// True with a bot token: standing and groups can be read.
    pub fn is_enabled(&self) -> bool {
        self.bot_token.is_some()
    }

    /// The person's standing (`users.info`); `None` without a bot token.
    pub async fn member(&self, who: &SlackIdentity) -> Result<Option<Member>, DirectoryError> {
        let Some(token) = &self.bot_token else {
            return Ok(None);
        };
        let fetch = async {
            let answer = self
                .slack
                .web_api(
                    UpstreamCall::UsersInfo,
                    "users.info",
                    token,
                    &[("user", who.user_id.as_str())],
                )
                .await
                .map_err(|e| classify(Caller::Bot, e))?;
            answer
                .get("user")
                .and_then(Value::as_object)
                .and_then(Member::from_user_object)
                .ok_or_else(|| Failure::NoAnswer("users.info answered without a user".into()))
        };
        let (member, _) = self
            .cached(
                "users_info",
                &member_key(&who.team_id, &who.user_id),
                &backoff_key("users.info", &who.team_id),
                fetch,
                None,
            )
            .await?;
        Ok(Some(member))
    }

    /// The sorted handles of the person's enabled user groups
    /// (`usergroups.list`, one call per workspace per TTL); `None` without a
    /// bot token.
    pub async fn groups_of(
        &self,
        who: &SlackIdentity,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        let Some(token) = &self.bot_token else {
            return Ok(None);
        };
        let fetch = async {
            let mut args = vec![("include_users", "true")];
            // An org-level token on Enterprise Grid must name the workspace.
            if who.enterprise_id.is_some() {
                args.push(("team_id", who.team_id.as_str()));
            }
            let answer = self
                .slack
                .web_api(
                    UpstreamCall::UsergroupsList,
                    "usergroups.list",
                    token,
                    &args,
                )
                .await
                .map_err(|e| classify(Caller::Bot, e))?;
            Ok(facts::groups_from_answer(&answer))
        };
        let (groups, _): (Vec<Group>, i64) = self
            .cached(
                "usergroups_list",
                &groups_key(&who.team_id),
                &backoff_key("usergroups.list", &who.team_id),
                fetch,
                None,
            )
            .await?;
        Ok(Some(facts::handles_of(&groups, &who.user_id)))
    }

    /// The person's profile as Slack's userInfo now tells it, through their
    /// own token: renewed first when Slack's token rotation says it expired.
    /// Returns the refreshed identity, when Slack gave that answer (Unix
    /// seconds) and, when they were renewed, the new tokens to keep. At most
    /// one call per person per TTL. `who` itself is an answer Slack gave at
    /// `known_at`: while Slack does not answer it stands in like any other
    /// last answer, up to `max_staleness_secs`.
    pub async fn userinfo(
        &self,
        who: &SlackIdentity,
        known_at: i64,
        tokens: Option<UpstreamTokens>,
    ) -> Result<(SlackIdentity, i64, Option<UpstreamTokens>), DirectoryError> {
        let Some(tokens) = tokens else {
            // Nothing to ask Slack with (a grant from before tokens were kept).
            return Ok((who.clone(), now(), None));
        };
        let mut renewed: Option<UpstreamTokens> = None;
        let fetch = async {
            let mut current = tokens;
            if current.is_expiring() && current.refresh_token.is_some() {
                current = self.renew(&current).await?;
                renewed = Some(current.clone());
            }
            let info = match self.slack.userinfo(&current.access_token).await {
                Err(UpstreamError::Slack(code))
                    if code == "token_expired"
                        && renewed.is_none()
                        && current.refresh_token.is_some() =>
                {
                    current = self.renew(&current).await?;
                    renewed = Some(current.clone());
                    self.slack.userinfo(&current.access_token).await
                }
                other => other,
            }
            .map_err(|e| classify(Caller::Person, e))?;
            if info.get("sub").and_then(Value::as_str) != Some(who.user_id.as_str()) {
                return Err(Failure::Final(DirectoryError::Refused(
                    "Slack's userInfo names another user".into(),
                )));
            }
            Ok(info)
        };
        let (info, fetched_at): (Map<String, Value>, i64) = self
            .cached(
                "userinfo",
                &userinfo_key(&who.subject()),
                &backoff_key("openid.connect.userInfo", &who.team_id),
                fetch,
                Some(Cached {
                    value: who.to_claims(),
                    fetched_at: known_at,
                }),
            )
            .await?;
        let identity = SlackIdentity::from_claims(&who.to_claims(), Some(&info))
            .unwrap_or_else(|| who.clone());
        Ok((identity, fetched_at, renewed))
    }

    async fn renew(&self, tokens: &UpstreamTokens) -> Result<UpstreamTokens, Failure> {
        let refresh = tokens.refresh_token.as_deref().unwrap_or_default();
        self.slack
            .renew(refresh)
            .await
            .map_err(|e| classify(Caller::Person, e))
    }

    /// Keeps a person's standing as an event told it.
    pub async fn remember_member(&self, member: &Member) {
        self.remember(&member_key(&member.team_id, &member.user_id), member)
            .await;
    }

    /// Drops a workspace's cached groups (they changed).
    pub async fn forget_groups(&self, team_id: &str) -> Result<(), StoreError> {
        self.records
            .delete(Namespace::Directory, &groups_key(team_id))
            .await
            .map(|_| ())
    }

    async fn remember<T: Serialize>(&self, key: &str, value: &T) {
        let entry = Cached {
            value,
            fetched_at: now(),
        };
        if let Err(e) = self
            .records
            .put(Namespace::Directory, key, &entry, self.keep_for())
            .await
        {
            tracing::warn!(error = %e, "could not keep Slack's answer");
        }
    }

    /// Answers are kept as long as they may stand in.
    fn keep_for(&self) -> Duration {
        Duration::from_secs(self.max_staleness.max(1) as u64)
    }

    /// The answer for `key`: fresh from the store, else from Slack (`fetch`,
    /// run only then), else the last one within the staleness bound: the
    /// stored one or `known` (an answer the caller holds), whichever is newer.
    async fn cached<T>(
        &self,
        source: &'static str,
        key: &str,
        backoff: &str,
        fetch: impl Future<Output = Result<T, Failure>>,
        known: Option<Cached<T>>,
    ) -> Result<(T, i64), DirectoryError>
    where
        T: Serialize + DeserializeOwned,
    {
        let age = |c: &Cached<T>| now() - c.fetched_at;
        let kept = match self.records.get(Namespace::Directory, key).await? {
            Some(c) if age(&c) < self.ttl => {
                metrics::directory_answer(source, "cached");
                return Ok((c.value, c.fetched_at));
            }
            other => other,
        };
        let why = match self.backed_off_until(backoff).await? {
            Some(until) => {
                metrics::slack_backoff(source);
                format!("waiting out Slack's rate limit for {}s", until - now())
            }
            None => match fetch.await {
                Ok(value) => {
                    metrics::directory_answer(source, "slack");
                    self.remember(key, &value).await;
                    return Ok((value, now()));
                }
                Err(Failure::Final(e)) => {
                    metrics::directory_answer(source, "refused");
                    return Err(e);
                }
                Err(Failure::RateLimited(retry_after)) => {
                    self.back_off(backoff, retry_after).await;
                    "Slack is rate limiting the bridge".to_string()
                }
                Err(Failure::NoAnswer(why)) => why,
            },
        };
        let last = match (kept, known) {
            (Some(k), Some(c)) => Some(if c.fetched_at > k.fetched_at { c } else { k }),
            (k, c) => k.or(c),
        };
        match last {
            Some(c) if age(&c) <= self.max_staleness => {
                tracing::info!(source, age_secs = age(&c), reason = %why, "Slack did not answer; the last answer stands in");
                metrics::directory_answer(source, "stale");
                Ok((c.value, c.fetched_at))
            }
            _ => {
                metrics::directory_answer(source, "unavailable");
                Err(DirectoryError::Unavailable(why))
            }
        }
    }

    async fn backed_off_until(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let until: Option<i64> = self.records.get(Namespace::Backoff, key).await?;
        Ok(until.filter(|u| *u > now()))
    }

    async fn back_off(&self, key: &str, retry_after: Option<u64>) {
        let secs = retry_after
            .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
            .clamp(1, 3600);
        let until = now() + secs as i64;
        if let Err(e) = self
            .records
            .put(Namespace::Backoff, key, &until, Duration::from_secs(secs))
            .await
        {
            tracing::warn!(error = %e, "could not record Slack's back-off");
        }
    }
}

fn member_key(team_id: &str, user_id: &str) -> String {
    format!("users.info\n{team_id}\n{user_id}")
}

fn groups_key(team_id: &str) -> String {
    format!("usergroups.list\n{team_id}")
}

fn userinfo_key(subject: &str) -> String {
    format!("userInfo\n{subject}")
}

fn backoff_key(method: &str, team_id: &str) -> String {
    format!("{method}\n{team_id}")
}
