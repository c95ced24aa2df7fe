//! Generators of what Slack might answer, for the property tests: JSON shaped
//! like Slack's answers (its own keys, wrong types, nesting) and raw bytes.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::identity::{ENTERPRISE_ID, TEAM_DOMAIN, TEAM_ID, TEAM_NAME, USER_ID};

/// Keys Slack uses, so that generated objects hit the parsers' branches.
const KEYS: &[&str] = &[
    "ok",
    "error",
    "access_token",
    "id_token",
    "refresh_token",
    "expires_in",
    "sub",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "picture",
    "locale",
    USER_ID,
    TEAM_ID,
    ENTERPRISE_ID,
    TEAM_NAME,
    TEAM_DOMAIN,
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[ \t]{0,3}".prop_map(Value::String),
    ]
}

pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), value(), 0..12).prop_map(|m| m.into_iter().collect())
}

/// A body as it may arrive: JSON objects, other JSON, truncated JSON, bytes.
pub fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => object().prop_map(|m| serde_json::to_vec(&m).unwrap()),
        1 => value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => (object(), any::<prop::sample::Index>()).prop_map(|(m, cut)| {
            let mut bytes = serde_json::to_vec(&m).unwrap();
            bytes.truncate(cut.index(bytes.len() + 1));
            bytes
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}
