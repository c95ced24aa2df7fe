//! Subject identifiers (OIDC Core §8). A public `sub` is the Slack person's
//! own `team:user`, the same for every application. A pairwise one is an
//! HMAC-SHA256, keyed with the secret `pairwise_salt`, of the application's
//! sector and that public `sub`: stable for one sector, unrelated across
//! sectors, and not computable by whoever knows the Slack ids.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::client_auth::keys::{FETCH_TIMEOUT, MAX_BYTES};
use crate::config::{Config, SubjectType};
use crate::identity::SlackIdentity;
use crate::outbound;

/// A pairwise client's sector and the key its subjects are derived with.
pub struct Pairwise {
    sector: String,
    key: hmac::Key,
}

impl Pairwise {
    pub fn new(sector: &str, salt: &str) -> Pairwise {
        Pairwise {
            sector: sector.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, salt.as_bytes()),
        }
    }

    pub fn sector(&self) -> &str {
        &self.sector
    }

    /// The sector's `sub` for a person.
    pub fn subject(&self, identity: &SlackIdentity) -> String {
        self.subject_of(&identity.subject())
    }

    /// The sector's `sub` for the person whose public subject is `public`.
    /// A newline cannot occur in a host name, so sector and person cannot
    /// run into each other.
    pub fn subject_of(&self, public: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(self.sector.as_bytes());
        ctx.update(b"\n");
        ctx.update(public.as_bytes());
        URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
    }
}

/// OIDC Core §8.1: a pairwise client's `sector_identifier_uri` holds a
/// JSON array of URLs that must include every redirect URI the client
/// registered. Fetched once when the bridge starts (and by `check-config`):
/// a client whose sector does not vouch for it is a configuration error.
pub async fn check_sectors(config: &Config, http: &reqwest::Client) -> anyhow::Result<()> {
    for (i, c) in config.clients.iter().enumerate() {
        let Some(uri) = c
            .sector_identifier_uri
            .as_deref()
            .filter(|_| c.subject_type == SubjectType::Pairwise)
        else {
            continue;
        };
        let at = format!("clients[{i}].sector_identifier_uri");
        let url = crate::config::check_fetchable(uri).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let listed = outbound::fetch_json(http, &url, FETCH_TIMEOUT, MAX_BYTES)
            .await
            .map_err(|e| anyhow::anyhow!("{at}: {uri} could not be read: {e}"))?;
        let listed: Vec<&str> = listed
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("{at}: {uri} is not a JSON array of URLs"))?
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        if let Some(missing) = c
            .redirect_uris
            .iter()
            .find(|r| !listed.contains(&r.as_str()))
        {
            anyhow::bail!("{at}: {uri} does not list the redirect URI {missing}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(team: &str, user: &str) -> SlackIdentity {
        serde_json::from_value(serde_json::json!({
            "team_id": team,
            "user_id": user,
        }))
        .unwrap()
    }

    const SALT: &str = "a-salt-of-at-least-thirty-two-characters";

    #[test]
    fn a_pairwise_subject_is_stable_within_a_sector_and_differs_across_sectors() {
        let ada = person("T1", "U1");
        let a = Pairwise::new("app.example", SALT);
        assert_eq!(
            a.subject(&ada),
            Pairwise::new("app.example", SALT).subject(&ada)
        );
        assert_ne!(
            a.subject(&ada),
            Pairwise::new("other.example", SALT).subject(&ada)
        );
        assert_ne!(a.subject(&ada), a.subject(&person("T1", "U2")));
        assert_ne!(a.subject(&ada), ada.subject());
        assert_eq!(a.subject(&ada).len(), 43, "a base64url SHA-256");
    }

    #[test]
    fn the_salt_changes_every_pairwise_subject() {
        let ada = person("T1", "U1");
        let other = Pairwise::new("app.example", "another-salt-of-thirty-two-characters!");
        assert_ne!(
            Pairwise::new("app.example", SALT).subject(&ada),
            other.subject(&ada)
        );
    }
}
