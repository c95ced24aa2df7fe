//! What the bridge reads out of Slack's directory answers: a person's
//! standing (`users.info`, or the user object of a `user_change` event) and
//! a workspace's enabled user groups (`usergroups.list`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A person's standing in Slack's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub team_id: String,
    #[serde(default)]
    pub enterprise_id: Option<String>,
    pub deleted: bool,
    pub is_bot: bool,
    /// Multi-channel guest.
    pub is_restricted: bool,
    /// Single-channel guest.
    pub is_ultra_restricted: bool,
}

impl Member {
    pub fn is_guest(&self) -> bool {
        self.is_restricted || self.is_ultra_restricted
    }

    /// Reads Slack's user object (`users.info`'s `user`, a `user_change`
    /// event's `event.user`). `None` without an id or a team.
    pub fn from_user_object(user: &Map<String, Value>) -> Option<Member> {
        let text = |k: &str| {
            user.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let flag = |k: &str| user.get(k).and_then(Value::as_bool).unwrap_or(false);
        Some(Member {
            user_id: text("id")?,
            team_id: text("team_id")?,
            enterprise_id: user
                .get("enterprise_user")
                .and_then(|e| e.get("enterprise_id"))
                .and_then(Value::as_str)
                .map(str::to_string),
            deleted: flag("deleted"),
            // Slack's own bot user is a bot too.
            is_bot: flag("is_bot") || text("id").as_deref() == Some("USLACKBOT"),
            is_restricted: flag("is_restricted"),
            is_ultra_restricted: flag("is_ultra_restricted"),
        })
    }

    /// The plain-words reason this person may not sign in at all, if any.
    pub fn barred(&self) -> Option<&'static str> {
        if self.deleted {
            Some("the Slack account is deactivated")
        } else if self.is_bot {
            Some("the Slack account is a bot")
        } else {
            None
        }
    }
}

/// One enabled user group: its handle and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub handle: String,
    pub users: Vec<String>,
}

/// The enabled groups of a `usergroups.list` answer (disabled ones have
/// `date_delete` > 0); groups without a handle are skipped.
pub fn groups_from_answer(answer: &Map<String, Value>) -> Vec<Group> {
    let Some(list) = answer.get("usergroups").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .filter(|g| g.get("date_delete").and_then(Value::as_i64).unwrap_or(0) == 0)
        .filter_map(|g| {
            let handle = g.get("handle").and_then(Value::as_str)?.trim();
            if handle.is_empty() {
                return None;
            }
            let users = g
                .get("users")
                .and_then(Value::as_array)
                .map(|u| {
                    u.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some(Group {
                handle: handle.to_string(),
                users,
            })
        })
        .collect()
}

/// The sorted, distinct handles of the groups `user_id` is in.
pub fn handles_of(groups: &[Group], user_id: &str) -> Vec<String> {
    let mut handles: Vec<String> = groups
        .iter()
        .filter(|g| g.users.iter().any(|u| u == user_id))
        .map(|g| g.handle.clone())
        .collect();
    handles.sort();
    handles.dedup();
    handles
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_guest_is_either_kind_of_restricted_account() {
        let multi = Member::from_user_object(&obj(
            json!({"id": "U1", "team_id": "T1", "is_restricted": true}),
        ))
        .unwrap();
        let single = Member::from_user_object(&obj(
            json!({"id": "U2", "team_id": "T1", "is_ultra_restricted": true}),
        ))
        .unwrap();
        let member = Member::from_user_object(&obj(json!({"id": "U3", "team_id": "T1"}))).unwrap();
        assert!(multi.is_guest() && single.is_guest() && !member.is_guest());
        assert_eq!(member.barred(), None);
    }

    #[test]
    fn deactivated_accounts_and_bots_are_barred() {
        let gone =
            Member::from_user_object(&obj(json!({"id": "U1", "team_id": "T1", "deleted": true})))
                .unwrap();
        let bot =
            Member::from_user_object(&obj(json!({"id": "U2", "team_id": "T1", "is_bot": true})))
                .unwrap();
        let slackbot =
            Member::from_user_object(&obj(json!({"id": "USLACKBOT", "team_id": "T1"}))).unwrap();
        assert!(gone.barred().unwrap().contains("deactivated"));
        assert!(bot.barred().unwrap().contains("bot"));
        assert!(slackbot.barred().is_some());
    }

    #[test]
    fn a_user_object_without_id_or_team_is_unusable() {
        assert!(Member::from_user_object(&obj(json!({"team_id": "T1"}))).is_none());
        assert!(Member::from_user_object(&obj(json!({"id": "U1", "team_id": ""}))).is_none());
    }

    #[test]
    fn grid_users_carry_their_enterprise() {
        let m = Member::from_user_object(&obj(json!({
            "id": "W1", "team_id": "T1",
            "enterprise_user": {"id": "W1", "enterprise_id": "E1"}
        })))
        .unwrap();
        assert_eq!(m.enterprise_id.as_deref(), Some("E1"));
    }

    #[test]
    fn disabled_groups_are_left_out_and_handles_come_sorted() {
        let answer = obj(json!({"ok": true, "usergroups": [
            {"id": "S1", "handle": "zeta", "date_delete": 0, "users": ["U1", "U2"]},
            {"id": "S2", "handle": "alpha", "date_delete": 0, "users": ["U1"]},
            {"id": "S3", "handle": "gone", "date_delete": 1700000000, "users": ["U1"]},
            {"id": "S4", "handle": "", "users": ["U1"]},
            {"id": "S5", "handle": "empty"},
            "not an object"
        ]}));
        let groups = groups_from_answer(&answer);
        assert_eq!(handles_of(&groups, "U1"), vec!["alpha", "zeta"]);
        assert_eq!(handles_of(&groups, "U2"), vec!["zeta"]);
        assert!(handles_of(&groups, "U9").is_empty());
        assert!(groups_from_answer(&obj(json!({"ok": true}))).is_empty());
    }
}
