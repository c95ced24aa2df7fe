//! Documents that change only when keys or config change (discovery, JWKS) are
//! serialized once and served as bytes with an ETag and Cache-Control.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

#[derive(Clone)]
pub struct CachedJson {
    body: Bytes,
    etag: String,
    cache_control: String,
}

impl CachedJson {
    pub fn new<T: Serialize>(value: &T, max_age_secs: u32) -> CachedJson {
        let body = serde_json::to_vec(value).expect("document serializes");
        let hash = digest::digest(&digest::SHA256, &body);
        CachedJson {
            etag: format!("\"{}\"", &URL_SAFE_NO_PAD.encode(hash.as_ref())[..22]),
            body: Bytes::from(body),
            cache_control: format!("public, max-age={max_age_secs}"),
        }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let not_modified = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|tag| tag.trim().trim_start_matches("W/") == self.etag)
            });
        let mut builder = if not_modified {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        builder
            .insert_header((header::ETAG, self.etag.as_str()))
            .insert_header((header::CACHE_CONTROL, self.cache_control.as_str()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
        if not_modified {
            builder.finish()
        } else {
            builder
                .content_type("application/json")
                .body(self.body.clone())
        }
    }
}
