//! Who Slack says the person is, after verification: shared by the face
//! toward Slack (which builds it), the store (which keeps it) and the
//! endpoints (which turn it into claims).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackIdentity {
    pub user_id: String,
    pub team_id: String,
    #[serde(default)]
    pub enterprise_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub team_name: Option<String>,
    #[serde(default)]
    pub team_domain: Option<String>,
    /// Handles of the person's enabled Slack user groups, sorted, as the
    /// directory told them when the token was minted (scope `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

pub const TEAM_ID: &str = "https://slack.com/team_id";
pub const USER_ID: &str = "https://slack.com/user_id";
pub const ENTERPRISE_ID: &str = "https://slack.com/enterprise_id";
pub const TEAM_NAME: &str = "https://slack.com/team_name";
pub const TEAM_DOMAIN: &str = "https://slack.com/team_domain";

impl SlackIdentity {
    /// Our `sub`: Slack's user id alone does not name the workspace, so it is
    /// qualified by the enterprise (Grid) or team id. Stable per Slack user,
    /// distinct across workspaces.
    pub fn subject(&self) -> String {
        format!(
            "{}:{}",
            self.enterprise_id.as_deref().unwrap_or(&self.team_id),
            self.user_id
        )
    }

    /// Builds the identity from a verified ID token's claims, then fills in
    /// what Slack's userInfo adds (userInfo wins where both have a value).
    pub fn from_claims(
        id_token: &Map<String, Value>,
        userinfo: Option<&Map<String, Value>>,
    ) -> Option<Self> {
        // A blank value is no value: it does not hide the other source's.
        fn text<'a>(claims: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
            claims
                .and_then(|c| c.get(key))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        }
        let get = |key: &str| -> Option<String> {
            text(userinfo, key)
                .or_else(|| text(Some(id_token), key))
                .map(str::to_string)
        };
        let email_verified = userinfo
            .and_then(|u| u.get("email_verified"))
            .and_then(Value::as_bool)
            .or_else(|| id_token.get("email_verified").and_then(Value::as_bool));
        Some(SlackIdentity {
            user_id: get(USER_ID).or_else(|| get("sub"))?,
            team_id: get(TEAM_ID)?,
            enterprise_id: get(ENTERPRISE_ID),
            email: get("email"),
            email_verified,
            name: get("name"),
            given_name: get("given_name"),
            family_name: get("family_name"),
            picture: get("picture"),
            locale: get("locale"),
            team_name: get(TEAM_NAME),
            team_domain: get(TEAM_DOMAIN),
            groups: None,
        })
    }

    /// The identity as Slack's own claims, to be refreshed with a newer
    /// userInfo answer through [`SlackIdentity::from_claims`].
    pub fn to_claims(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                map.insert(k.to_string(), Value::String(v.clone()));
            }
        };
        put("sub", &Some(self.user_id.clone()));
        put(USER_ID, &Some(self.user_id.clone()));
        put(TEAM_ID, &Some(self.team_id.clone()));
        put(ENTERPRISE_ID, &self.enterprise_id);
        put("email", &self.email);
        put("name", &self.name);
        put("given_name", &self.given_name);
        put("family_name", &self.family_name);
        put("picture", &self.picture);
        put("locale", &self.locale);
        put(TEAM_NAME, &self.team_name);
        put(TEAM_DOMAIN, &self.team_domain);
        if let Some(v) = self.email_verified {
            map.insert("email_verified".into(), Value::Bool(v));
        }
        map
    }

    /// Allowed when the list is empty or names the team or the enterprise.
    pub fn is_in(&self, allowed: &[String]) -> bool {
        allowed.is_empty()
            || allowed
                .iter()
                .any(|t| *t == self.team_id || Some(t.as_str()) == self.enterprise_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ident(team: &str, enterprise: Option<&str>, user: &str) -> SlackIdentity {
        let mut claims = json!({"sub": user, USER_ID: user, TEAM_ID: team});
        if let Some(e) = enterprise {
            claims[ENTERPRISE_ID] = json!(e);
        }
        SlackIdentity::from_claims(claims.as_object().unwrap(), None).unwrap()
    }

    #[test]
    fn the_same_user_id_in_two_workspaces_gets_two_subjects() {
        assert_ne!(
            ident("T1", None, "U1").subject(),
            ident("T2", None, "U1").subject()
        );
        assert_eq!(ident("T1", None, "U1").subject(), "T1:U1");
    }

    #[test]
    fn a_grid_user_is_keyed_by_the_enterprise() {
        assert_eq!(ident("T3", Some("E1"), "W9").subject(), "E1:W9");
    }

    #[test]
    fn empty_strings_from_slack_become_absent_claims() {
        let claims = json!({"sub": "U1", TEAM_ID: "T1", "family_name": "", "name": "Ada"});
        let id = SlackIdentity::from_claims(claims.as_object().unwrap(), None).unwrap();
        assert_eq!(id.family_name, None);
        assert_eq!(id.name.as_deref(), Some("Ada"));
    }

    #[test]
    fn userinfo_values_fill_in_the_id_token() {
        let claims = json!({"sub": "U1", TEAM_ID: "T1"});
        let info = json!({"sub": "U1", "email": "a@example.com", "email_verified": true, TEAM_NAME: "Acme"});
        let id = SlackIdentity::from_claims(claims.as_object().unwrap(), info.as_object()).unwrap();
        assert_eq!(id.email.as_deref(), Some("a@example.com"));
        assert_eq!(id.email_verified, Some(true));
        assert_eq!(id.team_name.as_deref(), Some("Acme"));
    }

    #[test]
    fn an_identity_round_trips_through_its_claims() {
        let claims = json!({"sub": "U1", TEAM_ID: "T1", ENTERPRISE_ID: "E1", "email": "a@b.c", "email_verified": true, TEAM_NAME: "Acme"});
        let id = SlackIdentity::from_claims(claims.as_object().unwrap(), None).unwrap();
        assert_eq!(
            SlackIdentity::from_claims(&id.to_claims(), None).unwrap(),
            id
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::upstream::arbitrary;

        fn text(map: Option<&Map<String, Value>>, key: &str) -> bool {
            map.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty())
        }

        proptest! {
            #[test]
            fn any_claims_give_an_identity_exactly_when_user_and_team_are_text(
                id_token in arbitrary::object(),
                userinfo in proptest::option::of(arbitrary::object()),
            ) {
                let identity = SlackIdentity::from_claims(&id_token, userinfo.as_ref());
                let has = |k: &str| text(Some(&id_token), k) || text(userinfo.as_ref(), k);
                prop_assert_eq!(
                    identity.is_some(),
                    (has(USER_ID) || has("sub")) && has(TEAM_ID)
                );
                if let Some(id) = identity {
                    prop_assert_eq!(SlackIdentity::from_claims(&id.to_claims(), None), Some(id.clone()));
                    let suffix = format!(":{}", id.user_id);
                    prop_assert!(id.subject().ends_with(&suffix));
                }
            }
        }
    }

    #[test]
    fn the_workspace_gate_accepts_team_or_enterprise() {
        let grid = ident("T3", Some("E1"), "W9");
        assert!(grid.is_in(&[]));
        assert!(grid.is_in(&["E1".into()]));
        assert!(grid.is_in(&["T3".into()]));
        assert!(!grid.is_in(&["T1".into()]));
    }
}
