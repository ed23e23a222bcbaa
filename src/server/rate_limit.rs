//! Per-caller budgets of query cost (governor's GCRA, one bucket per caller): a token's
//! bucket is keyed by the token, an anonymous caller's by its address. The answer carries
//! `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers), and a refusal
//! `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Caller;
use crate::config::RateLimits;

type Limiter = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

/// What the caller's bucket said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Within budget: the headers to send.
    Allowed(Budget),
    /// Over budget: try again in `retry_after` seconds.
    Limited { budget: Budget, retry_after: u64 },
}

/// The figures for the `RateLimit-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds over which `per_minute` is granted.
    pub window: u64,
}

impl Budget {
    pub fn write(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set("ratelimit-limit", self.limit.to_string());
        set("ratelimit-remaining", self.remaining.to_string());
        set("ratelimit-reset", self.reset.to_string());
        set(
            "ratelimit-policy",
            format!("{};w={}", self.limit, self.window),
        );
    }
}

pub struct RateLimiter {
    anonymous: (Limiter, Quota),
    tokens: (Limiter, Quota),
    trusted_proxies: Vec<IpAddr>,
    checks: AtomicU64,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

/// Ceiling of a duration in whole seconds (a client told 0 would retry at once).
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimiter {
    /// `None` when rate limits are switched off.
    pub fn new(settings: &RateLimits) -> Option<Self> {
        let bucket = |per_minute, burst| {
            let q = quota(per_minute, burst);
            (
                governor::RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>(),
                q,
            )
        };
        settings.enabled.then(|| Self {
            anonymous: bucket(settings.anonymous_per_minute, settings.anonymous_burst),
            tokens: bucket(settings.token_per_minute, settings.token_burst),
            trusted_proxies: settings.trusted_proxies.clone(),
            checks: AtomicU64::new(0),
        })
    }

    /// Charges `cost` to the caller's bucket.
    pub fn charge(&self, caller: &Caller, req: &HttpRequest, cost: usize) -> Decision {
        let ((limiter, quota), key) = match caller.principal() {
            Some(p) => (
                &self.tokens,
                match &p.token_id {
                    Some(jti) => format!("jti:{jti}"),
                    None => format!("sub:{}:{}", p.issuer, p.subject),
                },
            ),
            None => (&self.anonymous, format!("ip:{}", self.client_key(req))),
        };
        // Idle buckets are full buckets: forget them now and then so the map stays small.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.anonymous.0.retain_recent();
            self.tokens.0.retain_recent();
        }
        let n = u32::try_from(cost.max(1))
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MAX);
        let window = seconds(quota.burst_size_replenished_in()).max(1);
        let limit = quota.burst_size().get();
        let now = limiter.clock().now();
        match limiter.check_key_n(&key, n) {
            Ok(Ok(snapshot)) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = limit.saturating_sub(remaining);
                Decision::Allowed(Budget {
                    limit,
                    remaining,
                    reset: seconds(quota.replenish_interval() * missing),
                    window,
                })
            }
            Ok(Err(not_until)) => {
                let wait = seconds(not_until.wait_time_from(now)).max(1);
                Decision::Limited {
                    budget: Budget {
                        limit,
                        remaining: 0,
                        reset: wait,
                        window,
                    },
                    retry_after: wait,
                }
            }
            // More than a full bucket: configuration keeps bursts above the complexity limit,
            // so this is a cost nothing admits; say when the bucket is full.
            Err(_) => Decision::Limited {
                budget: Budget {
                    limit,
                    remaining: 0,
                    reset: window,
                    window,
                },
                retry_after: window,
            },
        }
    }

    /// The client's address: the connection's, or, when the connection comes from a trusted
    /// proxy, the last address in `X-Forwarded-For` that is not one of the trusted proxies.
    /// IPv6 clients are keyed by their /64, which one subscriber usually holds whole.
    fn client_key(&self, req: &HttpRequest) -> String {
        let peer = req.peer_addr().map(|a| a.ip());
        let client = match peer {
            Some(ip) if self.trusted_proxies.contains(&ip) => {
                forwarded_client(req, &self.trusted_proxies).unwrap_or(ip)
            }
            Some(ip) => ip,
            None => return "unknown".into(),
        };
        match client {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

/// The right-most `X-Forwarded-For` address that is not a trusted proxy: each proxy appends
/// the address it saw, so the ones left of it are the client's word, not the proxy's.
fn forwarded_client(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let mut all: Vec<Option<IpAddr>> = vec![];
    for value in req.headers().get_all("x-forwarded-for") {
        let v = value.to_str().ok()?;
        all.extend(v.split(',').map(|p| p.trim().parse::<IpAddr>().ok()));
    }
    for hop in all.into_iter().rev() {
        match hop {
            Some(ip) if trusted.contains(&ip) => continue,
            Some(ip) => return Some(ip),
            // A hop that is not an address ends the chain we can believe.
            None => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(burst: u32) -> RateLimits {
        RateLimits {
            anonymous_per_minute: 60,
            anonymous_burst: burst,
            ..RateLimits::default()
        }
    }

    fn from(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(x) = xff {
            r = r.insert_header(("x-forwarded-for", x));
        }
        r.to_http_request()
    }

    #[test]
    fn anonymous_callers_share_a_bucket_per_address() {
        let l = RateLimiter::new(&settings(100)).unwrap();
        let a = from("192.0.2.1:1000", None);
        let b = from("192.0.2.2:1000", None);
        assert!(matches!(
            l.charge(&Caller::Anonymous, &a, 60),
            Decision::Allowed(Budget { remaining: 40, .. })
        ));
        match l.charge(&Caller::Anonymous, &a, 60) {
            Decision::Limited { retry_after, .. } => assert!(retry_after >= 1),
            d => panic!("{d:?}"),
        }
        // Another address has its own bucket.
        assert!(matches!(
            l.charge(&Caller::Anonymous, &b, 60),
            Decision::Allowed(_)
        ));
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let mut s = settings(100);
        s.trusted_proxies = vec!["10.0.0.1".parse().unwrap()];
        let l = RateLimiter::new(&s).unwrap();
        let via_proxy = from("10.0.0.1:1", Some("203.0.113.9, 198.51.100.7"));
        assert_eq!(l.client_key(&via_proxy), "198.51.100.7");
        let spoofed = from("192.0.2.1:1", Some("198.51.100.7"));
        assert_eq!(l.client_key(&spoofed), "192.0.2.1");
        // A chain through two trusted proxies.
        let mut s = settings(100);
        s.trusted_proxies = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let l = RateLimiter::new(&s).unwrap();
        let two = from("10.0.0.1:1", Some("198.51.100.7, 10.0.0.2"));
        assert_eq!(l.client_key(&two), "198.51.100.7");
        let v6 = from("[2001:db8:1:2:3:4:5:6]:1", None);
        assert_eq!(l.client_key(&v6), "2001:db8:1:2::/64");
    }

    #[test]
    fn off_is_none() {
        let s = RateLimits {
            enabled: false,
            ..RateLimits::default()
        };
        assert!(RateLimiter::new(&s).is_none());
    }
}
