//! What the `keys` subcommands do and say. Each command changes the file
//! under the writers' lock; running servers pick the change up within
//! `reload_interval_secs`, or at once on SIGHUP.

use anyhow::bail;
use serde_json::json;

use super::file::{KeyFile, KeyState, now};
use super::lifecycle::{NextStep, Policy, Rotation, Wait};
use super::signer::Algorithm;

fn utc(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 600 => format!("{s} s"),
        s if s < 7200 => format!("{} min", (s + 59) / 60),
        s if s < 172_800 => format!("{} h", (s + 3599) / 3600),
        s => format!("{} days", (s + 86_399) / 86_400),
    }
}

fn follow_note(policy: &Policy) -> String {
    format!(
        "running servers follow within {} s (at once on SIGHUP)",
        policy.reload_interval_secs
    )
}

/// `keys list`: a table for people, `--json` for scripts.
pub fn list(policy: &Policy, as_json: bool) -> anyhow::Result<String> {
    let path = KeyFile::path_in(&policy.dir);
    if !path.exists() {
        bail!(
            "there is no key set at {} yet: the server creates it on first start",
            path.display()
        );
    }
    let file = KeyFile::load(&path)?;
    let t = now();
    if as_json {
        let rows: Vec<_> = file
            .keys
            .iter()
            .map(|k| {
                let (step, at) = match policy.next_step(k) {
                    NextStep::MaySign { from } => (Some("may_sign"), Some(from)),
                    NextStep::Retires { at } => (Some("retires"), at),
                    NextStep::Removable { from } => (Some("removable"), Some(from)),
                    NextStep::Nothing => (None, None),
                };
                json!({
                    "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
                    "created_at": k.created_at, "activated_at": k.activated_at,
                    "retired_at": k.retired_at, "revoked_at": k.revoked_at,
                    "next_step": step, "next_step_at": at,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let mut out = format!(
        "{:<43}  {:<5}  {:<7}  {:<23}  {}\n",
        "KID", "ALG", "STATE", "CREATED", "NEXT"
    );
    for k in &file.keys {
        let next = match policy.next_step(k) {
            NextStep::MaySign { from } if from <= t => "may sign (`keys rotate`)".to_string(),
            NextStep::MaySign { from } => {
                format!("may sign from {} (in {})", utc(from), span(from - t))
            }
            NextStep::Retires { at: Some(at) } => format!("rotates out {}", utc(at)),
            NextStep::Retires { at: None } => "signs until `keys rotate`".to_string(),
            NextStep::Removable { from } if from <= t => "removable (`keys prune`)".to_string(),
            NextStep::Removable { from } => format!("removable from {}", utc(from)),
            NextStep::Nothing => format!("revoked {}", utc(k.revoked_at.unwrap_or(0))),
        };
        out.push_str(&format!(
            "{:<43}  {:<5}  {:<7}  {:<23}  {}\n",
            k.kid,
            k.alg.as_str(),
            k.state.as_str(),
            utc(k.created_at),
            next
        ));
    }
    Ok(out.trim_end().to_string())
}

/// `keys rotate [--now] [--alg ALG]`.
pub fn rotate(policy: &Policy, force: bool, only: Option<Algorithm>) -> anyhow::Result<String> {
    let algorithms = match only {
        Some(alg) if !policy.algorithms.contains(&alg) => {
            bail!("{alg} is not in keys.algorithms, so it has no key to rotate")
        }
        Some(alg) => vec![alg],
        None => policy.algorithms.clone(),
    };
    let t = now();
    let done = KeyFile::update(&policy.dir, &policy.algorithms, |f| {
        f.rotate(policy, &algorithms, only.is_none(), force, t)
    })?;
    match done.value {
        Rotation::Refused { waits } => bail!(refusal(policy, &waits, t)),
        Rotation::Done {
            activated,
            retired,
            published,
        } => {
            let mut out = String::from("rotated:\n");
            for (alg, kid) in &activated {
                let record = done.file.keys.iter().find(|k| &k.kid == kid);
                let published_at = record.map(|k| k.created_at).unwrap_or(t);
                out.push_str(&format!(
                    "  {alg} signs with {kid} (published {} ago)\n",
                    span(t - published_at)
                ));
                if t - published_at < policy.publish_delay() {
                    out.push_str(
                        "    --now: applications that cached the JWKS before it was published \
                         must refetch it to verify its tokens\n",
                    );
                }
            }
            for kid in &retired {
                out.push_str(&format!(
                    "  {kid} retired: published for {} more, then `keys prune` removes it\n",
                    span(policy.retention())
                ));
            }
            for kid in &published {
                out.push_str(&format!("  {kid} published as next\n"));
            }
            out.push_str(&follow_note(policy));
            Ok(out)
        }
    }
}

fn refusal(policy: &Policy, waits: &[Wait], t: i64) -> String {
    let mut out = String::from("rotation refused; nothing signs with a new key yet:\n");
    for w in waits {
        if w.published_now {
            out.push_str(&format!(
                "  there was no next {} key: {} has just been published.\n",
                w.alg, w.kid
            ));
        } else {
            out.push_str(&format!(
                "  the next {} key {} was published {} ago,\n",
                w.alg,
                w.kid,
                span(t - w.published_at)
            ));
        }
    }
    let ready = waits.iter().map(|w| w.ready_at).max().unwrap_or(t);
    out.push_str(&format!(
        "A key may sign once it has been published for {} (keys.jwks_cache_secs = {} plus \
         keys.reload_interval_secs = {}), so that applications caching the JWKS know it.\n\
         Rotate again after {} (in {}), or pass --now to accept that risk.",
        span(policy.publish_delay()),
        policy.jwks_cache_secs,
        policy.reload_interval_secs,
        utc(ready),
        span(ready - t)
    ));
    out
}

/// `keys revoke KID`.
pub fn revoke(policy: &Policy, kid: &str) -> anyhow::Result<String> {
    let t = now();
    let done = KeyFile::update(&policy.dir, &policy.algorithms, |f| {
        f.revoke(policy, kid, t)
    })?;
    let r = done.value;
    let mut out = format!(
        "revoked {} ({}, was {}): it leaves the JWKS and its private key is erased; {}.\n\
         ID tokens it signed no longer verify against the JWKS.\n",
        r.kid,
        r.alg,
        r.was.as_str(),
        follow_note(policy)
    );
    if let Some((new, published_at)) = r.replacement {
        out.push_str(&format!(
            "{} now signs with {new} (published {} ago).\n",
            r.alg,
            span(t - published_at)
        ));
        if t - published_at < policy.publish_delay() {
            out.push_str(
                "Applications that cached the JWKS before it was published must refetch it \
                 to verify its tokens.\n",
            );
        }
    }
    out.push_str(
        "Access tokens issued together with its ID tokens stay valid until they expire: the \
         token store does not record the signing key yet.",
    );
    Ok(out)
}

/// `keys prune`.
pub fn prune(policy: &Policy) -> anyhow::Result<String> {
    let t = now();
    let done = KeyFile::update(&policy.dir, &policy.algorithms, |f| {
        Ok::<_, String>(f.prune(policy, t))
    })?;
    let mut out = match done.value.len() {
        0 => "no retired key has outlived its tokens yet".to_string(),
        n => {
            let kids: Vec<&str> = done.value.iter().map(|k| k.kid.as_str()).collect();
            format!("removed {n} retired key(s): {}", kids.join(", "))
        }
    };
    for k in done
        .file
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Retired)
    {
        if let NextStep::Removable { from } = policy.next_step(k) {
            out.push_str(&format!("\n{} stays published until {}", k.kid, utc(from)));
        }
    }
    Ok(out)
}
