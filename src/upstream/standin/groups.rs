//! Test user groups (Slack's "subteams", `S…`).

use super::http::Obj;

/// A user group as `usergroups.list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandinGroup {
    /// `S…`.
    pub id: String,
    pub team_id: String,
    /// The @mention name, e.g. `engineering`.
    pub handle: String,
    pub name: String,
    /// Member user ids.
    pub users: Vec<String>,
    /// 0 while the group is enabled; when it was disabled otherwise.
    pub date_delete: i64,
}

impl StandinGroup {
    /// The built-in groups: three enabled ones and a disabled one in the first
    /// workspace, and one in the Enterprise Grid workspace.
    pub fn fixtures() -> Vec<StandinGroup> {
        let group =
            |id: &str, team_id: &str, handle: &str, name: &str, users: &[&str]| StandinGroup {
                id: id.into(),
                team_id: team_id.into(),
                handle: handle.into(),
                name: name.into(),
                users: users.iter().map(|u| (*u).to_owned()).collect(),
                date_delete: 0,
            };
        vec![
            group(
                "S0000000001",
                "T0000000001",
                "engineering",
                "Engineering",
                &["U0000000001", "U0000000005"],
            ),
            group(
                "S0000000002",
                "T0000000001",
                "admins",
                "Admins",
                &["U0000000001"],
            ),
            group(
                "S0000000003",
                "T0000000001",
                "design",
                "Design",
                &["U0000000004"],
            ),
            StandinGroup {
                date_delete: 1_700_000_000,
                ..group(
                    "S0000000004",
                    "T0000000001",
                    "old-team",
                    "Old Team",
                    &["U0000000001"],
                )
            },
            group(
                "S0000000005",
                "T0000000003",
                "grid-eng",
                "Grid Engineering",
                &["W0000000003"],
            ),
        ]
    }

    /// The usergroup object of `usergroups.list` and of `subteam_*` events.
    pub(crate) fn to_obj(&self, date_create: i64, date_update: i64, include_users: bool) -> Obj {
        let mut obj = Obj::new();
        obj.set("id", self.id.as_str())
            .set("team_id", self.team_id.as_str())
            .set("is_usergroup", true)
            .set("name", self.name.as_str())
            .set("description", "")
            .set("handle", self.handle.as_str())
            .set("is_external", false)
            .set("date_create", date_create)
            .set("date_update", date_update)
            .set("date_delete", self.date_delete);
        if include_users {
            obj.set("users", self.users.clone());
        }
        obj.set("user_count", self.users.len());
        obj
    }
}
