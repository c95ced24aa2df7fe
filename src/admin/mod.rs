//! `sessions list` and `sessions revoke`: an admin's view of one Slack
//! person's sessions and token families, and signing them out everywhere.
//! Only with a shared store (Redis): the memory store's sessions live inside
//! the server process, out of this command's reach.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::DateTime;

use crate::config::{Config, StoreBackend};
use crate::keys::{self, KeyStore};
use crate::provider::signout::{self, Holding};

/// How long `sessions revoke` waits for the applications' back-channel
/// logouts before it reports.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);

/// Why a command could not run; `main` prints it and exits 2.
fn needs_shared_store(config: &Config) -> anyhow::Result<()> {
    if config.store.backend == StoreBackend::Memory {
        bail!(
            "store.backend is \"memory\": sessions live inside the running server, out of this command's reach; use a Redis store to manage them from the command line"
        );
    }
    Ok(())
}

/// A subject as issued: `T…:U…` (or `E…:W…` on Enterprise Grid).
fn check_subject(sub: &str) -> anyhow::Result<()> {
    let ok = sub.split_once(':').is_some_and(|(team, user)| {
        let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        word(team) && word(user)
    });
    if !ok {
        bail!(
            "--user must be a subject as the bridge issues it, like T0123ABCD:U0456EFGH (got \"{sub}\")"
        );
    }
    Ok(())
}

async fn provider(config: Config) -> anyhow::Result<crate::provider::Provider> {
    let config = Arc::new(config);
    let store = crate::build_store(&config)?;
    let keys = Arc::new(KeyStore::open(keys::Policy::from_config(&config)).context("keys")?);
    crate::build_provider(config, store, keys)
}

fn when(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// `sessions list --user SUB [--json]`.
pub async fn list(config: Config, sub: &str, json: bool) -> anyhow::Result<String> {
    needs_shared_store(&config)?;
    check_subject(sub)?;
    let provider = provider(config).await?;
    let held = signout::list(&provider, sub).await?;
    if json {
        return Ok(serde_json::to_string_pretty(&held)?);
    }
    if held.is_empty() {
        return Ok(format!("{sub}: no live session or token family"));
    }
    let mut out = format!(
        "{:<13} {:<21} {:<21} {:<21} APPLICATIONS\n",
        "KIND", "CREATED", "LAST USED", "ENDS BY"
    );
    for Holding {
        kind,
        applications,
        created_at,
        last_used_at,
        expires_at,
    } in &held
    {
        out.push_str(&format!(
            "{kind:<13} {:<21} {:<21} {:<21} {}\n",
            when(*created_at),
            when(*last_used_at),
            when(*expires_at),
            if applications.is_empty() {
                "-".to_string()
            } else {
                applications.join(", ")
            }
        ));
    }
    Ok(out.trim_end().to_string())
}

/// `sessions revoke --user SUB`: signs the person out everywhere and waits
/// (bounded) for the applications' back-channel logouts.
pub async fn revoke(config: Config, sub: &str) -> anyhow::Result<String> {
    needs_shared_store(&config)?;
    check_subject(sub)?;
    let provider = provider(config).await?;
    let mut ended = signout::sign_out_everywhere(&provider, sub, "admin").await?;
    let deliveries = std::mem::take(&mut ended.deliveries);
    let total = deliveries.len();
    let delivered = tokio::time::timeout(DELIVERY_WAIT, async {
        let mut ok = 0;
        for d in deliveries {
            if d.await.unwrap_or(false) {
                ok += 1;
            }
        }
        ok
    })
    .await
    .unwrap_or(0);
    let mut out = format!(
        "{sub}: ended {} session{} and {} token famil{}",
        ended.sessions,
        if ended.sessions == 1 { "" } else { "s" },
        ended.families,
        if ended.families == 1 { "y" } else { "ies" },
    );
    if total > 0 {
        out.push_str(&format!(
            "; back-channel logout delivered to {delivered} of {total} ({})",
            ended.notified.join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_team_and_user_ids() {
        assert!(check_subject("T0000000001:U0000000001").is_ok());
        assert!(check_subject("E0000000001:W0000000003").is_ok());
        for bad in ["U0000000001", ":U1", "T1:", "T1:U1:x", "T1 :U1", ""] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
