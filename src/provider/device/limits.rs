//! Rate limits of the device flow's own endpoints, per client address (an
//! IPv4 address, an IPv6 /64), kept in memory like `crate::limits` (nothing
//! an anonymous request does is written to the store):
//!
//! - device authorizations: each one stores a device code and a user code
//!   for up to `tokens.device_code_ttl_secs`, so one address may not start
//!   more than [`AUTHORIZATIONS_PER_MINUTE`] (the token endpoint's limits,
//!   per address and per client, apply as well);
//! - wrong user codes on the verification page (RFC 8628 §5.1): an address
//!   gets [`WRONG_CODES_PER_MINUTE`], then every code it enters, right or
//!   wrong, waits until its bucket refills.
//!
//! Each limit is a GCRA bucket (the algorithm of `governor`, which
//! `crate::limits` uses) written out here because the verification page
//! must ask "is this address over?" without counting the request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

use crate::limits::{Limited, address_key};
use crate::observability::metrics;

/// Device authorizations an address may start a minute (and at once).
pub const AUTHORIZATIONS_PER_MINUTE: u32 = 60;
const AUTHORIZATIONS_BURST: u32 = 20;
/// Wrong user codes an address may enter a minute (and at once).
pub const WRONG_CODES_PER_MINUTE: u32 = 5;
const WRONG_CODES_BURST: u32 = 5;
/// How often buckets that have refilled are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub struct DeviceLimits {
    authorizations: Bucket,
    wrong_codes: Bucket,
}

impl Default for DeviceLimits {
    fn default() -> Self {
        DeviceLimits {
            authorizations: Bucket::new(AUTHORIZATIONS_PER_MINUTE, AUTHORIZATIONS_BURST),
            wrong_codes: Bucket::new(WRONG_CODES_PER_MINUTE, WRONG_CODES_BURST),
        }
    }
}

impl DeviceLimits {
    /// Counts a device authorization request from `address`.
    pub fn authorization(&self, address: Option<IpAddr>) -> Result<(), Limited> {
        let Some(address) = address else {
            return Ok(());
        };
        self.authorizations
            .count(address_key(address), Instant::now())
            .map_err(|wait| limited("device_authorization", wait))
    }

    /// Whether `address` must wait before entering another user code.
    pub fn code_entry(&self, address: Option<IpAddr>) -> Result<(), Limited> {
        let Some(address) = address else {
            return Ok(());
        };
        match self.wrong_codes.over(address_key(address), Instant::now()) {
            Some(wait) => Err(limited("device_verification", wait)),
            None => Ok(()),
        }
    }

    /// Counts a wrong user code entered from `address`.
    pub fn wrong_code(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            // Over already: the next entry waits, whatever this one counts.
            let _ = self.wrong_codes.count(address_key(address), Instant::now());
        }
    }
}

/// The address a request counts against (see `crate::limits`).
pub fn address(provider: &super::super::Provider, req: &HttpRequest) -> Option<IpAddr> {
    provider.limits.client_address(req)
}

fn limited(endpoint: &'static str, wait: Duration) -> Limited {
    metrics::rate_limited(endpoint, "address");
    let retry_after_secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    tracing::info!(endpoint, retry_after_secs, "rate limited");
    Limited { retry_after_secs }
}

/// A keyed GCRA bucket: `burst` events at once, refilled at `per_minute`.
struct Bucket {
    /// Time one event costs.
    emission: Duration,
    /// How far ahead of now the theoretical arrival time may run.
    tolerance: Duration,
    state: Mutex<State>,
}

struct State {
    /// Theoretical arrival time of the next event, per key.
    tats: HashMap<IpAddr, Instant>,
    swept: Option<Instant>,
}

impl Bucket {
    fn new(per_minute: u32, burst: u32) -> Bucket {
        let emission = Duration::from_secs(60) / per_minute.max(1);
        Bucket {
            emission,
            tolerance: emission * burst.max(1).saturating_sub(1),
            state: Mutex::new(State {
                tats: HashMap::new(),
                swept: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is one map call: a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `key` must wait before its next event; None: it need not.
    fn over(&self, key: IpAddr, now: Instant) -> Option<Duration> {
        let state = self.lock();
        let tat = state.tats.get(&key).copied()?;
        let ahead = tat.checked_duration_since(now)?;
        ahead.checked_sub(self.tolerance).filter(|w| !w.is_zero())
    }

    /// Counts an event of `key` now, or says how long it must wait.
    fn count(&self, key: IpAddr, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.over(key, now) {
            return Err(wait);
        }
        let mut state = self.lock();
        let tat = state.tats.get(&key).copied().unwrap_or(now).max(now);
        state.tats.insert(key, tat + self.emission);
        if state
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY)
        {
            // Buckets that have refilled are the same as no bucket.
            state.tats.retain(|_, tat| *tat > now);
            state.swept = Some(now);
        }
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().tats.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_wrong_codes_pass_then_the_address_waits_twelve_seconds_per_code() {
        let bucket = Bucket::new(WRONG_CODES_PER_MINUTE, WRONG_CODES_BURST);
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(bucket.over(a, t0), None, "code {i}");
            bucket.count(a, t0).unwrap();
        }
        let wait = bucket.over(a, t0).expect("the sixth waits");
        assert_eq!(wait, Duration::from_secs(12));
        assert_eq!(bucket.count(a, t0), Err(wait), "and is not counted");
        assert_eq!(
            bucket.over(a, t0 + Duration::from_secs(11)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(bucket.over(a, t0 + Duration::from_secs(12)), None);
        bucket.count(a, t0 + Duration::from_secs(12)).unwrap();
        assert!(bucket.over(a, t0 + Duration::from_secs(12)).is_some());
        // Another address is not concerned.
        assert_eq!(bucket.over(ip("192.0.2.2"), t0), None);
    }

    #[test]
    fn asking_whether_an_address_is_over_counts_nothing() {
        let bucket = Bucket::new(WRONG_CODES_PER_MINUTE, WRONG_CODES_BURST);
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(bucket.over(a, t0), None);
        }
        assert_eq!(bucket.tracked(), 0);
    }

    #[test]
    fn a_full_bucket_is_forgotten_at_the_next_sweep() {
        let bucket = Bucket::new(AUTHORIZATIONS_PER_MINUTE, AUTHORIZATIONS_BURST);
        let t0 = Instant::now();
        for i in 0..50u8 {
            bucket.count(IpAddr::from([192, 0, 2, i]), t0).unwrap();
        }
        assert_eq!(bucket.tracked(), 50);
        let later = t0 + SWEEP_EVERY;
        bucket.count(ip("198.51.100.1"), later).unwrap();
        assert_eq!(bucket.tracked(), 1);
    }

    #[test]
    fn device_authorizations_allow_a_burst_of_twenty_per_address() {
        let limits = DeviceLimits::default();
        let a = Some(ip("2001:db8:1:2::1"));
        for _ in 0..AUTHORIZATIONS_BURST {
            limits.authorization(a).unwrap();
        }
        // The same /64.
        let limited = limits
            .authorization(Some(ip("2001:db8:1:2::ffff")))
            .unwrap_err();
        assert!((1..=1).contains(&limited.retry_after_secs), "{limited:?}");
        limits.authorization(Some(ip("2001:db8:1:3::1"))).unwrap();
        limits.authorization(None).unwrap();
    }
}
