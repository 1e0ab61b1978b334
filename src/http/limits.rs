//! Abuse limits of the HTTP layer: a per-key request rate (429 + `Retry-After`), the JSON nesting
//! limit checked before a body is parsed, and CORS (off unless origins are configured).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::Caller;
use super::error::ApiError;

/// Who a request's rate is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Key(String),
    Ip(IpAddr),
    /// An open server reached without a known peer address (not through `serve`).
    Anonymous,
}

/// Requests per minute per API key (per client IP on an open server).
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<Bucket>,
    per_minute: u32,
}

impl RateLimits {
    /// `None` when `per_minute` is 0 (no limit). `burst` 0 means `per_minute`.
    pub fn new(per_minute: u32, burst: u32) -> Option<Arc<RateLimits>> {
        let rate = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Arc::new(RateLimits {
            limiter: RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
            per_minute,
        }))
    }

    /// `Err(seconds to wait)` when the bucket is empty.
    fn check(&self, bucket: &Bucket) -> Result<(), u64> {
        self.limiter.check_key(bucket).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })?;
        // Forget idle buckets now and then so one-off clients do not pile up.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

/// The middleware (inside the API-key check, which sets [`Caller`]): `/api/` routes but
/// `/api/health` count against the caller's bucket.
pub async fn rate_limit(
    State(limits): State<Arc<RateLimits>>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/") || path == "/api/health" || req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let key = req
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.key_id.clone());
    let bucket = match key {
        Some(k) => Bucket::Key(k),
        None => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => Bucket::Ip(peer.ip()),
            None => Bucket::Anonymous,
        },
    };
    match limits.check(&bucket) {
        Ok(()) => next.run(req).await,
        Err(wait) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded.",
            format!(
                "At most {} requests per minute are allowed; retry in {} s.",
                limits.per_minute,
                wait.max(1)
            ),
        )
        .retry_after(wait.max(1))
        .into_response(),
    }
}

/// Whether `body` nests arrays/objects deeper than `max`. A byte scan that skips strings, so it
/// costs one pass and no allocation, and runs before any parser could recurse.
pub fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// CORS for `origins` (`*`: any); `None` when none are configured, so no CORS headers are sent.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE])
            .expose_headers([
                header::RETRY_AFTER,
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
                header::LOCATION,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!nesting_exceeds(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(nesting_exceeds(br#"{"a": [1, {"b": [2]}]}"#, 3));
        // Brackets inside strings, and escaped quotes, do not count.
        assert!(!nesting_exceeds(br#"{"a": "[[[[[[\"[[[[", "b": 1}"#, 1));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(nesting_exceeds(deep.as_bytes(), 32));
        assert!(!nesting_exceeds(b"", 0));
    }

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_how_long_to_wait() {
        let limits = RateLimits::new(60, 2).unwrap();
        let alice = Bucket::Key("alice".into());
        assert!(limits.check(&alice).is_ok());
        assert!(limits.check(&alice).is_ok());
        let wait = limits.check(&alice).unwrap_err();
        assert!(
            (1..=1).contains(&wait),
            "one request per second refills: {wait}"
        );
        // Another key has its own bucket.
        assert!(limits.check(&Bucket::Key("bob".into())).is_ok());
        assert!(RateLimits::new(0, 5).is_none(), "0 turns the limit off");
    }
}
