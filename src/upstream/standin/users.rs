//! Test users and the Slack claims they produce.

use super::http::Obj;

/// A Slack user that can "sign in" at the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandinUser {
    pub team_id: String,
    /// `U…`, or `W…` on Enterprise Grid.
    pub user_id: String,
    /// `E…` for Enterprise Grid users.
    pub enterprise_id: Option<String>,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    /// None models a user whose email Slack does not hand out.
    pub email: Option<String>,
    pub email_verified: bool,
    pub locale: String,
    pub picture: String,
    pub team_name: String,
    pub team_domain: String,
    pub enterprise_name: Option<String>,
    pub enterprise_domain: Option<String>,
    /// Deactivated. Only a starting value: `Control::set_user_deleted`
    /// changes it while the stand-in runs.
    pub deleted: bool,
    /// A bot user (`users.info` says `is_bot`).
    pub is_bot: bool,
    /// A multi-channel guest. Starting value, see `Control::set_user_guest`.
    pub is_restricted: bool,
    /// A single-channel guest. Starting value, see `Control::set_user_guest`.
    pub is_ultra_restricted: bool,
}

/// `date_email_verified` for every verified fixture address [inf].
const DATE_EMAIL_VERIFIED: i64 = 1_626_075_692;
const AVATARS: &str = "https://avatars.slack-edge.example";
const USER_IMAGE_SIZES: [u32; 7] = [24, 32, 48, 72, 192, 512, 1024];
const TEAM_IMAGE_SIZES: [u32; 7] = [34, 44, 68, 88, 102, 132, 230];
/// The first workspace: most fixture users and groups live here.
const EXAMPLE_WORKSPACE: (&str, &str, &str) =
    ("T0000000001", "Example Workspace", "example-workspace");

impl StandinUser {
    /// The built-in users: two workspaces, a Grid user and a user without
    /// email, then the directory cases a bridge must refuse: a multi-channel
    /// guest, a single-channel guest and a bot. All of them can sign in at the
    /// stand-in, as on Slack.
    pub fn fixtures() -> Vec<StandinUser> {
        vec![
            workspace_user(
                ("U0000000001", "Ada", "Lovelace", Some("ada@example.com")),
                EXAMPLE_WORKSPACE,
            ),
            workspace_user(
                (
                    "U0000000002",
                    "Grace",
                    "Hopper",
                    Some("grace@other.example"),
                ),
                ("T0000000002", "Other Workspace", "other-workspace"),
            ),
            StandinUser {
                enterprise_id: Some("E0000000001".into()),
                enterprise_name: Some("Example Org".into()),
                enterprise_domain: Some("example-org".into()),
                ..workspace_user(
                    (
                        "W0000000003",
                        "Katherine",
                        "Johnson",
                        Some("katherine@example.org"),
                    ),
                    ("T0000000003", "Example Org Engineering", "example-org-eng"),
                )
            },
            workspace_user(("U0000000004", "Alan", "Turing", None), EXAMPLE_WORKSPACE),
            StandinUser {
                is_restricted: true,
                ..workspace_user(
                    (
                        "U0000000005",
                        "Mallory",
                        "Guest",
                        Some("mallory@partner.example"),
                    ),
                    EXAMPLE_WORKSPACE,
                )
            },
            StandinUser {
                is_ultra_restricted: true,
                ..workspace_user(
                    ("U0000000006", "Sam", "Single", Some("sam@partner.example")),
                    EXAMPLE_WORKSPACE,
                )
            },
            StandinUser {
                is_bot: true,
                ..workspace_user(("U0000000007", "Deploy", "Bot", None), EXAMPLE_WORKSPACE)
            },
        ]
    }

    /// Slack's `name` (the old username): `ada.lovelace`.
    pub fn username(&self) -> String {
        self.name.to_lowercase().replace(' ', ".")
    }

    /// The team, user and (Grid) enterprise ids every token and answer carry.
    pub fn id_claims(&self, obj: &mut Obj) {
        obj.set("https://slack.com/team_id", self.team_id.as_str())
            .set("https://slack.com/user_id", self.user_id.as_str());
        if let Some(e) = &self.enterprise_id {
            obj.set("https://slack.com/enterprise_id", e.as_str());
        }
    }

    /// Claims granted by the `email` and `profile` scopes. `userinfo` adds the
    /// fields only the userInfo method returns (images, enterprise names).
    pub fn scope_claims(&self, scopes: &[String], userinfo: bool) -> Obj {
        let mut obj = Obj::new();
        if scopes.iter().any(|s| s == "email") {
            // A user without an address gets no email claims at all [inf].
            if let Some(email) = &self.email {
                obj.set("email", email.as_str())
                    .set("email_verified", self.email_verified);
                if self.email_verified {
                    obj.set("date_email_verified", DATE_EMAIL_VERIFIED);
                }
            }
        }
        if scopes.iter().any(|s| s == "profile") {
            obj.set("name", self.name.as_str())
                .set("picture", self.picture.as_str())
                .set("given_name", self.given_name.as_str())
                .set("family_name", self.family_name.as_str())
                .set("locale", self.locale.as_str())
                .set("https://slack.com/team_name", self.team_name.as_str())
                .set("https://slack.com/team_domain", self.team_domain.as_str());
            if userinfo {
                self.userinfo_profile_extras(&mut obj);
            }
        }
        obj
    }

    fn userinfo_profile_extras(&self, obj: &mut Obj) {
        if let Some(name) = &self.enterprise_name {
            obj.set("https://slack.com/enterprise_name", name.as_str());
        }
        if let Some(domain) = &self.enterprise_domain {
            obj.set("https://slack.com/enterprise_domain", domain.as_str());
        }
        for size in USER_IMAGE_SIZES {
            let url = if self.picture.contains("_512") {
                self.picture.replace("_512", &format!("_{size}"))
            } else {
                self.picture.clone()
            };
            obj.set(&format!("https://slack.com/user_image_{size}"), url);
        }
        for size in TEAM_IMAGE_SIZES {
            obj.set(
                &format!("https://slack.com/team_image_{size}"),
                format!("{AVATARS}/{}_{size}.png", self.team_id),
            );
        }
        obj.set("https://slack.com/team_image_default", false);
    }
}

fn workspace_user(
    (user_id, given, family, email): (&str, &str, &str, Option<&str>),
    (team_id, team_name, team_domain): (&str, &str, &str),
) -> StandinUser {
    StandinUser {
        team_id: team_id.into(),
        user_id: user_id.into(),
        enterprise_id: None,
        name: format!("{given} {family}"),
        given_name: given.into(),
        family_name: family.into(),
        email: email.map(Into::into),
        email_verified: email.is_some(),
        locale: "en-US".into(),
        picture: format!("{AVATARS}/{user_id}_512.png"),
        team_name: team_name.into(),
        team_domain: team_domain.into(),
        enterprise_name: None,
        enterprise_domain: None,
        deleted: false,
        is_bot: false,
        is_restricted: false,
        is_ultra_restricted: false,
    }
}
