//! Request parameters, parsed the way RFC 6749 §3.1 and §3.2 want: a repeated
//! parameter is an error, an empty one counts as absent, and values are
//! bounded in length.

use std::collections::HashMap;

use super::error::OAuthError;

pub const MAX_VALUE_LEN: usize = 4096;
const MAX_PARAMS: usize = 64;

#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Strict parsing: the first problem is the error.
    pub fn parse(encoded: &str) -> Result<Params, OAuthError> {
        let parsed = Self::parse_lenient(encoded);
        match parsed.problem {
            Some(problem) => Err(problem),
            None => Ok(parsed.params),
        }
    }

    /// Parses everything it can and reports the first problem separately, so
    /// the authorization endpoint can still find the client and redirect URI
    /// it needs to report the problem to.
    pub fn parse_lenient(encoded: &str) -> Lenient {
        let mut values = HashMap::new();
        let mut problem = None;
        let mut repeated = Vec::new();
        let mut note = |e: OAuthError| {
            if problem.is_none() {
                problem = Some(e);
            }
        };
        for (i, part) in encoded.split('&').filter(|p| !p.is_empty()).enumerate() {
            if i >= MAX_PARAMS {
                note(OAuthError::invalid_request("too many parameters"));
                break;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (Ok(k), Ok(v)) = (decode(k), decode(v)) else {
                note(OAuthError::invalid_request(
                    "a parameter is not valid UTF-8",
                ));
                continue;
            };
            if v.len() > MAX_VALUE_LEN {
                note(OAuthError::invalid_request(format!(
                    "parameter {} is too long",
                    printable(&k)
                )));
                continue;
            }
            if values.contains_key(&k) {
                note(OAuthError::invalid_request(format!(
                    "parameter {} is repeated",
                    printable(&k)
                )));
                repeated.push(k);
                continue;
            }
            values.insert(k, v);
        }
        values.retain(|_, v: &mut String| !v.is_empty());
        Lenient {
            params: Params { values },
            problem,
            repeated,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn require(&self, key: &str) -> Result<&str, OAuthError> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("{key} is required")))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }
}

/// Whether the request body is declared `application/x-www-form-urlencoded`
/// (parameters of the media type, such as `charset`, are allowed).
pub fn is_form(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

pub struct Lenient {
    pub params: Params,
    pub problem: Option<OAuthError>,
    /// Names that appeared more than once (only the first value is kept).
    pub repeated: Vec<String>,
}

/// Decodes one `application/x-www-form-urlencoded` component, refusing
/// invalid UTF-8 instead of replacing it.
fn decode(s: &str) -> Result<String, OAuthError> {
    let spaced = s.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes)
        .map_err(|_| OAuthError::invalid_request("a parameter is not valid UTF-8"))
}

/// A parameter name as it may appear in an error description.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_parameter_is_refused() {
        let e = Params::parse("scope=openid&client_id=a&scope=email").unwrap_err();
        assert!(e.description.contains("scope is repeated"));
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse("state=&nonce=n").unwrap();
        assert!(p.get("state").is_none());
        assert_eq!(p.get("nonce"), Some("n"));
    }

    #[test]
    fn percent_and_plus_decode() {
        let p =
            Params::parse("redirect_uri=http%3A%2F%2Fa%2Fcb&scope=openid+email&x=%zz%4").unwrap();
        assert_eq!(p.get("redirect_uri"), Some("http://a/cb"));
        assert_eq!(p.get("scope"), Some("openid email"));
        assert_eq!(p.get("x"), Some("%zz%4"));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(Params::parse("state=%FF%FE").is_err());
    }

    mod properties {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        fn encode(pairs: &[(String, String)]) -> String {
            serde_urlencoded::to_string(pairs).unwrap()
        }

        proptest! {
            #[test]
            fn any_text_parses_or_fails_with_invalid_request(raw in ".{0,300}") {
                let parsed = Params::parse_lenient(&raw);
                if let Some(problem) = parsed.problem {
                    prop_assert_eq!(problem.code, crate::provider::error::ErrorCode::InvalidRequest);
                    prop_assert!(!problem.description.is_empty());
                }
                prop_assert!(parsed.params.values.values().all(|v| !v.is_empty()));
            }

            #[test]
            fn distinct_parameters_round_trip(
                map in prop::collection::btree_map("[a-z_]{1,12}", ".{1,60}", 0..12)
            ) {
                let pairs: Vec<(String, String)> = map.clone().into_iter().collect();
                let parsed = Params::parse(&encode(&pairs)).unwrap();
                let back: BTreeMap<String, String> = parsed.values.into_iter().collect();
                prop_assert_eq!(back, map);
            }

            #[test]
            fn a_repeated_name_is_refused_wherever_it_appears(
                map in prop::collection::btree_map("[a-z_]{1,12}", "[ -~]{1,20}", 1..8),
                pick in any::<prop::sample::Index>(),
                again in "[ -~]{1,20}",
            ) {
                let mut pairs: Vec<(String, String)> = map.into_iter().collect();
                let name = pairs[pick.index(pairs.len())].0.clone();
                pairs.push((name.clone(), again));
                let e = Params::parse(&encode(&pairs)).unwrap_err();
                prop_assert!(e.description.contains("repeated"), "{}", e.description);
            }

            #[test]
            fn invalid_utf8_anywhere_is_refused(
                prefix in "[a-z]{1,8}",
                bad in prop::sample::select(vec!["%FF", "%C3%28", "%E2%82", "%ED%A0%80", "%F8%88%80%80%80"]),
            ) {
                let in_value = format!("{prefix}={bad}");
                let in_name = format!("{prefix}{bad}=v");
                prop_assert!(Params::parse(&in_value).is_err());
                prop_assert!(Params::parse(&in_name).is_err());
            }
        }
    }

    #[test]
    fn over_long_values_are_refused() {
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        assert!(Params::parse(&format!("state={long}")).is_err());
    }
}
