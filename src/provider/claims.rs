//! Slack's identity turned into our claims, by granted scope: the same rules
//! for the ID token and for userinfo.

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreGenderClaim, CoreJweContentEncryptionAlgorithm};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, ClientId, EndUserEmail, EndUserFamilyName,
    EndUserGivenName, EndUserName, EndUserPictureUrl, IdToken, IdTokenClaims, IssuerUrl,
    LanguageTag, LocalizedClaim, Nonce, StandardClaims, SubjectIdentifier,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::keys::SigningKey;
use crate::upstream::SlackIdentity;

/// Scopes we understand; others are ignored (OIDC Core §5.4).
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];

/// The person's Slack user groups (claim `groups`); only with a bot token.
pub const GROUPS_SCOPE: &str = "groups";

pub const CLAIMS_SUPPORTED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "picture",
    "locale",
    "https://slack.com/team_id",
    "https://slack.com/user_id",
    "https://slack.com/enterprise_id",
    "https://slack.com/team_name",
    "https://slack.com/team_domain",
];

/// Slack's namespaced claims, passed through, and our `sid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlackNamespaced {
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(rename = "https://slack.com/team_id")]
    team_id: String,
    /// Not for a pairwise client: Slack's id would undo its pairwise `sub`.
    #[serde(
        rename = "https://slack.com/user_id",
        skip_serializing_if = "Option::is_none"
    )]
    user_id: Option<String>,
    #[serde(
        rename = "https://slack.com/enterprise_id",
        skip_serializing_if = "Option::is_none"
    )]
    enterprise_id: Option<String>,
    #[serde(
        rename = "https://slack.com/team_name",
        skip_serializing_if = "Option::is_none"
    )]
    team_name: Option<String>,
    #[serde(
        rename = "https://slack.com/team_domain",
        skip_serializing_if = "Option::is_none"
    )]
    team_domain: Option<String>,
    /// Handles of the person's enabled Slack user groups (scope `groups`).
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<String>>,
}
impl AdditionalClaims for SlackNamespaced {}

fn has(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

fn namespaced(identity: &SlackIdentity, scopes: &[String], pairwise: bool) -> SlackNamespaced {
    let profile = has(scopes, "profile");
    SlackNamespaced {
        sid: None,
        team_id: identity.team_id.clone(),
        user_id: (!pairwise).then(|| identity.user_id.clone()),
        enterprise_id: identity.enterprise_id.clone(),
        team_name: identity.team_name.clone().filter(|_| profile),
        team_domain: identity.team_domain.clone().filter(|_| profile),
        // Asked for and known: an empty list says "in no group".
        groups: identity
            .groups
            .clone()
            .filter(|_| has(scopes, GROUPS_SCOPE)),
    }
}

/// The userinfo response body, for the client that knows the person by
/// `subject`.
pub fn userinfo(
    identity: &SlackIdentity,
    subject: &Subject<'_>,
    scopes: &[String],
) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("sub".into(), json!(subject.sub));
    if has(scopes, "email") {
        insert(&mut map, "email", identity.email.as_deref());
        if identity.email.is_some() {
            map.insert(
                "email_verified".into(),
                json!(identity.email_verified.unwrap_or(false)),
            );
        }
    }
    if has(scopes, "profile") {
        insert(&mut map, "name", identity.name.as_deref());
        insert(&mut map, "given_name", identity.given_name.as_deref());
        insert(&mut map, "family_name", identity.family_name.as_deref());
        insert(&mut map, "picture", identity.picture.as_deref());
        insert(&mut map, "locale", identity.locale.as_deref());
    }
    if let Ok(Value::Object(extra)) =
        serde_json::to_value(namespaced(identity, scopes, subject.pairwise))
    {
        map.extend(extra);
    }
    map
}

fn insert(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.into(), json!(v));
    }
}

/// How an application knows the person (OIDC Core §8): its `sub`, and
/// whether that is pairwise (then Slack's own user id is not shown: it
/// would let applications match people again).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub sub: &'a str,
    pub pairwise: bool,
}

/// Everything an ID token needs besides the identity.
pub struct IdTokenRequest<'a> {
    pub issuer: &'a IssuerUrl,
    pub client_id: &'a str,
    /// How the client knows the person.
    pub subject: Subject<'a>,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub access_token: &'a str,
    pub lifetime_secs: u64,
    /// Session id, for clients that registered `backchannel_logout_session_required`.
    pub sid: Option<&'a str>,
}

pub fn sign_id_token(
    key: &SigningKey,
    identity: &SlackIdentity,
    request: &IdTokenRequest<'_>,
) -> Result<String, String> {
    let now = Utc::now();
    let mut standard = StandardClaims::<CoreGenderClaim>::new(SubjectIdentifier::new(
        request.subject.sub.to_string(),
    ));
    if has(request.scopes, "email") && identity.email.is_some() {
        standard = standard
            .set_email(identity.email.clone().map(EndUserEmail::new))
            .set_email_verified(Some(identity.email_verified.unwrap_or(false)));
    }
    if has(request.scopes, "profile") {
        standard = standard
            .set_name(
                identity
                    .name
                    .clone()
                    .map(|v| LocalizedClaim::from(EndUserName::new(v))),
            )
            .set_given_name(
                identity
                    .given_name
                    .clone()
                    .map(|v| LocalizedClaim::from(EndUserGivenName::new(v))),
            )
            .set_family_name(
                identity
                    .family_name
                    .clone()
                    .map(|v| LocalizedClaim::from(EndUserFamilyName::new(v))),
            )
            .set_picture(
                identity
                    .picture
                    .clone()
                    .map(|v| LocalizedClaim::from(EndUserPictureUrl::new(v))),
            )
            .set_locale(identity.locale.clone().map(LanguageTag::new));
    }
    let claims = IdTokenClaims::new(
        request.issuer.clone(),
        vec![Audience::new(request.client_id.to_string())],
        now + chrono::Duration::seconds(request.lifetime_secs as i64),
        now,
        standard,
        SlackNamespaced {
            sid: request.sid.map(str::to_string),
            ..namespaced(identity, request.scopes, request.subject.pairwise)
        },
    )
    .set_authorized_party(Some(ClientId::new(request.client_id.to_string())))
    .set_auth_time(DateTime::from_timestamp(request.auth_time, 0))
    .set_nonce(request.nonce.map(|n| Nonce::new(n.to_string())));
    let access_token = AccessToken::new(request.access_token.to_string());
    let token = IdToken::<_, _, CoreJweContentEncryptionAlgorithm, _>::new(
        claims,
        key,
        key.alg().jws(),
        Some(&access_token),
        None,
    )
    .map_err(|e| e.to_string())?;
    Ok(token.to_string())
}
