//! A running server follows the key file without restart: it rereads the
//! file every `reload_interval_secs` and at once on SIGHUP, serves the new
//! JWKS and signs with the new active keys. With `rotation_period_days` set
//! it also rotates (and prunes) when due; with several instances, the one
//! that takes the Redis lock does it and the others follow the file.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::KeyStore;
use super::file::{KeyFile, KeyRecord, now};
use super::lifecycle::Rotation;
use super::rotation_lock::RedisLock;

/// Starts following the key file. The SIGHUP handler is installed before
/// this returns, so a SIGHUP sent once the server is up never kills it.
pub fn start(keys: Arc<KeyStore>, lock: Option<RedisLock>) -> std::io::Result<()> {
    let hangup = Hangup::install()?;
    tokio::spawn(run(keys, lock, hangup));
    Ok(())
}

async fn run(keys: Arc<KeyStore>, lock: Option<RedisLock>, mut hangup: Hangup) {
    let mut tick = tokio::time::interval(Duration::from_secs(
        keys.policy().reload_interval_secs.max(1),
    ));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = hangup.recv() => tracing::info!("SIGHUP: rereading the key file"),
        }
        reload(&keys, &mut last_error).await;
        if keys.policy().rotation_period_secs.is_some() {
            match rotate_once(&keys, lock.as_ref(), now()).await {
                AutoRotation::Failed(e) => {
                    tracing::warn!(error = %e, "automatic key rotation failed; retrying")
                }
                AutoRotation::LockedElsewhere => {
                    tracing::debug!("another instance is rotating the keys")
                }
                AutoRotation::NotDue | AutoRotation::Done { .. } => {}
            }
        }
    }
}

async fn reload(keys: &Arc<KeyStore>, last_error: &mut Option<String>) {
    let k = keys.clone();
    match tokio::task::spawn_blocking(move || k.reload()).await {
        Ok(Ok(true)) => {
            *last_error = None;
            let current = keys.current();
            let signing: Vec<String> = current
                .records()
                .keys
                .iter()
                .filter(|r| r.state == super::KeyState::Active)
                .map(|r| format!("{} {}", r.alg, r.kid))
                .collect();
            tracing::info!(
                ?signing,
                published = current.published.len(),
                "signing keys reloaded"
            );
        }
        Ok(Ok(false)) => *last_error = None,
        Ok(Err(e)) => {
            let e = e.to_string();
            // Once per distinct problem, not every few seconds.
            if last_error.as_deref() != Some(e.as_str()) {
                tracing::error!(error = %e, "the key file cannot be used; still serving the previous keys");
                *last_error = Some(e);
            }
        }
        Err(e) => tracing::error!(error = %e, "rereading the key file panicked"),
    }
}

/// What one automatic-rotation attempt did.
#[derive(Debug)]
pub enum AutoRotation {
    NotDue,
    /// Another instance holds the Redis lock.
    LockedElsewhere,
    Done {
        rotation: Option<Rotation>,
        pruned: Vec<KeyRecord>,
    },
    Failed(String),
}

/// Rotates and prunes if due at `now`. The check on this server's view is
/// cheap and avoids Redis on every tick; under the locks the freshly read
/// file is checked again, so an instance with a stale view rotates nothing.
pub async fn rotate_once(keys: &Arc<KeyStore>, lock: Option<&RedisLock>, now: i64) -> AutoRotation {
    let policy = keys.policy().clone();
    let view = keys.current();
    if !view.records().rotation_due(&policy, now) && !view.records().prune_due(&policy, now) {
        return AutoRotation::NotDue;
    }
    let guard = match lock {
        None => None,
        Some(lock) => match lock.try_acquire().await {
            Ok(Some(guard)) => Some(guard),
            Ok(None) => return AutoRotation::LockedElsewhere,
            Err(e) => return AutoRotation::Failed(format!("the rotation lock: {e}")),
        },
    };
    let k = keys.clone();
    let result = tokio::task::spawn_blocking(move || {
        let p = k.policy();
        let done = KeyFile::update(&p.dir, &p.algorithms, |f| {
            let rotation = if f.rotation_due(p, now) {
                Some(f.rotate(p, &p.algorithms, true, false, now)?)
            } else {
                None
            };
            Ok::<_, String>((rotation, f.prune(p, now)))
        })
        .map_err(|e| e.to_string())?;
        k.reload().map_err(|e| e.to_string())?;
        Ok::<_, String>(done.value)
    })
    .await;
    if let Some(guard) = guard {
        guard.release().await;
    }
    match result {
        Ok(Ok((rotation, pruned))) => {
            if let Some(Rotation::Done {
                activated, retired, ..
            }) = &rotation
            {
                tracing::info!(
                    ?activated,
                    ?retired,
                    "rotated the signing keys (automatic rotation)"
                );
            }
            if !pruned.is_empty() {
                let kids: Vec<&str> = pruned.iter().map(|k| k.kid.as_str()).collect();
                tracing::info!(?kids, "removed retired keys whose tokens have expired");
            }
            AutoRotation::Done { rotation, pruned }
        }
        Ok(Err(e)) => AutoRotation::Failed(e),
        Err(e) => AutoRotation::Failed(e.to_string()),
    }
}

#[cfg(unix)]
struct Hangup(tokio::signal::unix::Signal);

#[cfg(unix)]
impl Hangup {
    fn install() -> std::io::Result<Hangup> {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup()).map(Hangup)
    }

    async fn recv(&mut self) {
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
struct Hangup;

#[cfg(not(unix))]
impl Hangup {
    fn install() -> std::io::Result<Hangup> {
        Ok(Hangup)
    }

    async fn recv(&mut self) {
        std::future::pending::<()>().await;
    }
}
