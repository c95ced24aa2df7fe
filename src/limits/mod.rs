//! Rate limits of the authorization and token endpoints, per client address
//! and per client (`[limits]` in the config), with governor's GCRA: a bucket
//! of `burst` requests refilled at `per_minute`. Over a limit the answer is
//! 429 with `Retry-After`: a page at `/authorize`, the JSON error at `/token`.
//!
//! Memory stays bounded: only registered client ids are ever keys, addresses
//! are keyed by IPv4 address or IPv6 /64 (one host usually owns a whole
//! /64), and [`Limits::sweep`] (every minute) forgets addresses whose bucket
//! has refilled.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{LimitsConfig, RateLimit};
use crate::observability::metrics;
use crate::provider::Provider;
use crate::provider::error::{ErrorCode, OAuthError};

/// How often forgotten addresses are dropped.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Authorize,
    Token,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
        }
    }
}

/// A request over a limit: when to come back.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    pub retry_after_secs: u64,
}

impl Limited {
    fn description(&self) -> String {
        format!(
            "too many requests; try again in {} s",
            self.retry_after_secs
        )
    }

    fn retry_after(&self) -> HeaderValue {
        HeaderValue::from(self.retry_after_secs)
    }

    /// The token endpoint's answer: 429, `Retry-After`, and the RFC 6749
    /// §5.2 JSON shape with `temporarily_unavailable`.
    pub fn json(&self) -> HttpResponse {
        let mut response =
            OAuthError::new(ErrorCode::TemporarilyUnavailable, self.description()).json();
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, self.retry_after());
        response
    }

    /// The authorization endpoint's answer: a 429 page (no redirect: the
    /// application would only send the person straight back).
    pub fn page(&self, provider: &Provider, req: &HttpRequest) -> HttpResponse {
        let description = self.description();
        let error = OAuthError::new(ErrorCode::TemporarilyUnavailable, &description);
        let locale = crate::web::i18n::Locale::for_request(req, None);
        let mut response = provider.error_page_in(
            locale,
            None,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts",
            &error,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, self.retry_after());
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, self.retry_after());
        response
    }
}

type AddressLimiter = DefaultKeyedRateLimiter<IpAddr>;
type ClientLimiter = DefaultKeyedRateLimiter<String>;

pub struct Limits {
    trust_forwarded_for: bool,
    authorize_per_address: Option<AddressLimiter>,
    authorize_per_client: Option<ClientLimiter>,
    token_per_address: Option<AddressLimiter>,
    token_per_client: Option<ClientLimiter>,
    clock: DefaultClock,
    /// Set once `X-Forwarded-For` was seen while not trusted (warned once).
    warned_forwarded: AtomicBool,
}

fn quota(limit: RateLimit) -> Option<Quota> {
    let per_minute = NonZeroU32::new(limit.per_minute)?;
    let burst = limit.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
    Some(Quota::per_minute(per_minute).allow_burst(burst))
}

impl Limits {
    pub fn from_config(config: &LimitsConfig) -> Limits {
        Limits {
            trust_forwarded_for: config.trust_forwarded_for,
            authorize_per_address: quota(config.authorize_per_address).map(RateLimiter::keyed),
            authorize_per_client: quota(config.authorize_per_client).map(RateLimiter::keyed),
            token_per_address: quota(config.token_per_address).map(RateLimiter::keyed),
            token_per_client: quota(config.token_per_client).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            warned_forwarded: AtomicBool::new(false),
        }
    }

    /// Counts this request against its client address's limit.
    pub fn check_address(&self, endpoint: Endpoint, req: &HttpRequest) -> Result<(), Limited> {
        let limiter = match endpoint {
            Endpoint::Authorize => &self.authorize_per_address,
            Endpoint::Token => &self.token_per_address,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let Some(address) = self.client_address(req) else {
            return Ok(());
        };
        self.check(limiter, &address_key(address), endpoint, "address")
    }

    /// Counts this request against a registered client's limit (never call
    /// it with an unverified client id: every id becomes a key).
    pub fn check_client(&self, endpoint: Endpoint, client_id: &str) -> Result<(), Limited> {
        let limiter = match endpoint {
            Endpoint::Authorize => &self.authorize_per_client,
            Endpoint::Token => &self.token_per_client,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        self.check(limiter, &client_id.to_string(), endpoint, "client")
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
        endpoint: Endpoint,
        limit: &'static str,
    ) -> Result<(), Limited> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3).
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            metrics::rate_limited(endpoint.as_str(), limit);
            tracing::info!(
                endpoint = endpoint.as_str(),
                limit,
                retry_after_secs,
                "rate limited"
            );
            Limited {
                retry_after_secs: retry_after_secs.max(1),
            }
        })
    }

    /// The peer address, or with `trust_forwarded_for` the last
    /// `X-Forwarded-For` entry (the one our reverse proxy appended; entries
    /// before it are whatever the client claimed).
    pub fn client_address(&self, req: &HttpRequest) -> Option<IpAddr> {
        let forwarded = req.headers().get("x-forwarded-for");
        if self.trust_forwarded_for {
            if let Some(ip) = forwarded.and_then(last_forwarded_for) {
                return Some(ip);
            }
        } else if forwarded.is_some() && !self.warned_forwarded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "requests carry X-Forwarded-For but limits.trust_forwarded_for is off: \
                 per-address limits count the proxy's address"
            );
        }
        req.peer_addr().map(|a| a.ip())
    }

    /// Forgets addresses and clients whose bucket is full again.
    pub fn sweep(&self) {
        for limiter in [&self.authorize_per_address, &self.token_per_address]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [&self.authorize_per_client, &self.token_per_client]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
        }
    }

    /// Addresses currently remembered (for tests and debugging).
    pub fn tracked_addresses(&self) -> usize {
        [&self.authorize_per_address, &self.token_per_address]
            .into_iter()
            .flatten()
            .map(|l| l.len())
            .sum()
    }
}

fn last_forwarded_for(value: &HeaderValue) -> Option<IpAddr> {
    let last = value.to_str().ok()?.rsplit(',').next()?.trim();
    // Some proxies add a port ("1.2.3.4:5678", "[::1]:5678").
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4 as is (IPv4-mapped IPv6 too); IPv6 by its /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn config(per_minute: u32, burst: u32) -> LimitsConfig {
        LimitsConfig {
            trust_forwarded_for: false,
            authorize_per_address: RateLimit::new(per_minute, burst),
            authorize_per_client: RateLimit::new(per_minute, burst),
            token_per_address: RateLimit::new(0, 1),
            token_per_client: RateLimit::new(per_minute, burst),
        }
    }

    fn from(ip: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(format!("{ip}:4000").parse().unwrap())
            .to_http_request()
    }

    #[test]
    fn a_burst_passes_then_the_next_request_waits_and_others_are_unaffected() {
        let limits = Limits::from_config(&config(1, 3));
        let a = from("192.0.2.1");
        for _ in 0..3 {
            limits.check_address(Endpoint::Authorize, &a).unwrap();
        }
        let limited = limits.check_address(Endpoint::Authorize, &a).unwrap_err();
        assert!((1..=60).contains(&limited.retry_after_secs), "{limited:?}");
        limits
            .check_address(Endpoint::Authorize, &from("192.0.2.2"))
            .unwrap();
        // A limit of 0 is off.
        for _ in 0..10 {
            limits.check_address(Endpoint::Token, &a).unwrap();
        }
        for _ in 0..3 {
            limits.check_client(Endpoint::Token, "one").unwrap();
        }
        assert!(limits.check_client(Endpoint::Token, "one").is_err());
        limits.check_client(Endpoint::Token, "two").unwrap();
        limits.check_client(Endpoint::Authorize, "one").unwrap();
    }

    /// The shipped defaults admit an office behind one address: 300 people
    /// signing in evenly over one minute, each sign-in counted as two
    /// authorize requests (a silent `prompt=none` try, then the real one),
    /// on governor's own fake clock.
    #[test]
    fn the_default_limits_admit_an_office_of_300_arriving_within_a_minute() {
        use governor::clock::FakeRelativeClock;
        let defaults = LimitsConfig::default();
        let clock = FakeRelativeClock::default();
        let per_address = RateLimiter::dashmap_with_clock(
            quota(defaults.authorize_per_address).expect("on by default"),
            clock.clone(),
        );
        let per_client = RateLimiter::dashmap_with_clock(
            quota(defaults.authorize_per_client).expect("on by default"),
            clock.clone(),
        );
        let office: IpAddr = "192.0.2.7".parse().unwrap();
        for person in 0..300 {
            for _ in 0..2 {
                assert!(
                    per_address.check_key(&office).is_ok(),
                    "person {person} refused by the per-address limit"
                );
                assert!(per_client.check_key(&"cocoom".to_string()).is_ok());
            }
            clock.advance(Duration::from_millis(200));
        }
        // A flood from that address is still bounded.
        let admitted = (0..10_000)
            .filter(|_| per_address.check_key(&office).is_ok())
            .count();
        assert!(admitted <= defaults.authorize_per_address.burst.unwrap() as usize);
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_then_its_last_entry() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("x-forwarded-for", "203.0.113.9, 198.51.100.4"))
            .to_http_request();
        let untrusted = Limits::from_config(&config(1, 1));
        assert_eq!(
            untrusted.client_address(&req),
            Some("10.0.0.1".parse().unwrap())
        );
        let trusted = Limits::from_config(&LimitsConfig {
            trust_forwarded_for: true,
            ..config(1, 1)
        });
        assert_eq!(
            trusted.client_address(&req),
            Some("198.51.100.4".parse().unwrap())
        );
        let garbage = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("x-forwarded-for", "not an address"))
            .to_http_request();
        assert_eq!(
            trusted.client_address(&garbage),
            Some("10.0.0.1".parse().unwrap()),
            "an unparsable header falls back to the peer"
        );
        let with_port = TestRequest::default()
            .insert_header(("x-forwarded-for", "[2001:db8::1]:443"))
            .to_http_request();
        assert_eq!(
            trusted.client_address(&with_port),
            Some("2001:db8::1".parse().unwrap())
        );
    }

    #[test]
    fn sweeping_forgets_addresses_whose_bucket_refilled() {
        let limits = Limits::from_config(&config(6000, 1000));
        for i in 0..50 {
            limits
                .check_address(Endpoint::Authorize, &from(&format!("192.0.2.{i}")))
                .unwrap();
        }
        assert_eq!(limits.tracked_addresses(), 50);
        std::thread::sleep(Duration::from_millis(20));
        limits.sweep();
        assert_eq!(limits.tracked_addresses(), 0);
    }
}
