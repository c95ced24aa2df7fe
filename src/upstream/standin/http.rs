//! Response helpers shared by the handlers: Slack-shaped JSON and HTML pages.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

const JSON_TYPE: &str = "application/json; charset=utf-8";
const HTML_TYPE: &str = "text/html; charset=utf-8";

/// A JSON object that keeps its keys in insertion order, so responses read
/// like Slack's (`ok` first) even though serde_json sorts its own maps.
#[derive(Debug, Default, Clone)]
pub struct Obj(Vec<(String, Value)>);

impl Obj {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a key.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
        self
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    pub fn extend(&mut self, other: Obj) -> &mut Self {
        for (k, v) in other.0 {
            self.set(&k, v);
        }
        self
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Slack's Web API is PHP-born and escapes `/` as `\/` in its JSON. A `/`
/// can only occur inside a JSON string, so the replacement is always valid.
fn escape_slashes(json: &str) -> String {
    json.replace('/', "\\/")
}

/// A Web API answer (`ok` true or false), serialized the way Slack does.
pub fn api_json(status: StatusCode, obj: &Obj) -> HttpResponse {
    let body = serde_json::to_string(obj)
        .unwrap_or_else(|_| r#"{"ok":false,"error":"fatal_error"}"#.into());
    raw_json(status, escape_slashes(&body))
}

/// `{"ok":false,"error":code}` with HTTP 200, Slack's usual failure shape.
pub fn api_error(code: &str) -> HttpResponse {
    let mut obj = Obj::new();
    obj.set("ok", false).set("error", code);
    api_json(StatusCode::OK, &obj)
}

/// HTTP 429 with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
pub fn rate_limited(retry_after_secs: u64) -> HttpResponse {
    let mut obj = Obj::new();
    obj.set("ok", false).set("error", "ratelimited");
    let mut resp = api_json(StatusCode::TOO_MANY_REQUESTS, &obj);
    resp.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs),
    );
    resp
}

/// A JSON body sent verbatim.
pub fn raw_json(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE)))
        .body(body)
}

/// An HTML body.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(HTML_TYPE)))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// What a web front end sends when the API is unreachable: an HTML 404,
/// as one deployment saw from userInfo (reference §6.10).
pub fn html_404() -> HttpResponse {
    html(
        StatusCode::NOT_FOUND,
        "<!DOCTYPE html><html><head><title>Slack: 404 Not Found</title></head>\
         <body><h1>There's been a glitch…</h1><p>We're not quite sure what went wrong.</p></body></html>"
            .to_owned(),
    )
}

/// The mime type without parameters, lower-cased (`application/json`).
pub fn mime_essence(req: &actix_web::HttpRequest) -> Option<String> {
    let ct = req.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// `name=value&…` pairs, first occurrence of a name winning.
pub fn form_pairs(input: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(input) {
        if !out.iter().any(|(name, _)| *name == k) {
            out.push((k.into_owned(), v.into_owned()));
        }
    }
    out
}

/// Looks a name up in decoded pairs.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Random bytes; the stand-in has no use for a seeded generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).expect("system random generator failed");
    buf
}

/// `n` random decimal digits, the first one non-zero (like Slack's IDs).
pub fn random_digits(n: usize) -> String {
    let bytes = random_bytes::<32>();
    let mut out = String::with_capacity(n);
    for (i, b) in bytes.iter().cycle().take(n).enumerate() {
        let d = if i == 0 { 1 + b % 9 } else { b % 10 };
        out.push(char::from(b'0' + d));
    }
    out
}

/// `2 * N` lower-case hex digits.
pub fn random_hex<const N: usize>() -> String {
    random_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` random ASCII letters and digits, for token bodies.
pub fn random_alnum(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in random_bytes::<64>() {
            // Rejection sampling keeps the distribution uniform.
            if (b as usize) < CHARS.len() * 4 && out.len() < n {
                out.push(char::from(CHARS[b as usize % CHARS.len()]));
            }
        }
    }
    out
}
