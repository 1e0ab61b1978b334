//! The HTTP server's accept loop: hyper (HTTP/1.1 and HTTP/2, auto-detected) under the limits that
//! `axum::serve` does not have — a connection that does not finish a request's headers within
//! `http.header_timeout_secs` of opening (or of its previous answer) is closed, a request body must
//! arrive within `http.body_timeout_secs`, and connections are capped in all and per client
//! address (a refused one gets a `503` and is closed). Everyone within the limits keeps being
//! served. Long requests (the blocking endpoint) are never cut by these timeouts: a connection with
//! a request in flight is not idle.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The limits of [`serve`] (`[http]` in the configuration).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A connection without a request in flight is closed after this long (also hyper's HTTP/1
    /// header-read timeout).
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this long of its headers.
    pub body_timeout: Duration,
    /// Open connections at once.
    pub max_connections: usize,
    /// Open connections from one client address (one /64 for IPv6).
    pub max_connections_per_ip: usize,
}

/// The server's connection counters (shown to key holders by `/api/health`).
#[derive(Debug, Default)]
pub struct ConnStats {
    open: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    idle_closed: AtomicU64,
    max_connections: AtomicUsize,
    max_per_ip: AtomicUsize,
}

/// A copy of [`ConnStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnSnapshot {
    /// Connections open now.
    pub open: usize,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections refused (over a cap) since start.
    pub refused: u64,
    /// Connections closed for sending no complete request in time, since start.
    pub idle_closed: u64,
    /// `http.max_connections`.
    pub max_connections: usize,
    /// `http.max_connections_per_ip`.
    pub max_connections_per_ip: usize,
}

impl ConnStats {
    /// The counters now.
    pub fn snapshot(&self) -> ConnSnapshot {
        ConnSnapshot {
            open: self.open.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            idle_closed: self.idle_closed.load(Ordering::Relaxed),
            max_connections: self.max_connections.load(Ordering::Relaxed),
            max_connections_per_ip: self.max_per_ip.load(Ordering::Relaxed),
        }
    }
}

/// Whose connections are counted together: an IPv4 address, or an IPv6 /64 (one subscriber's
/// usual allocation). IPv4-mapped IPv6 addresses count as their IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match vidbuilder_net::canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `http.max_connections` are open.
    Full,
    /// `http.max_connections_per_ip` are open from this client.
    PerClient,
}

/// The open connections, in all and per client.
#[derive(Debug)]
pub struct ConnTable {
    per_client: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<ConnStats>,
    max: usize,
    max_per_client: usize,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnSlot {
    table: Arc<ConnTable>,
    key: IpAddr,
}

impl ConnTable {
    /// A table with these caps, counting into `stats`.
    pub fn new(max: usize, max_per_client: usize, stats: Arc<ConnStats>) -> Arc<ConnTable> {
        stats.max_connections.store(max, Ordering::Relaxed);
        stats.max_per_ip.store(max_per_client, Ordering::Relaxed);
        Arc::new(ConnTable {
            per_client: Mutex::new(HashMap::new()),
            stats,
            max,
            max_per_client,
        })
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refusal> {
        let key = client_key(ip);
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if self.stats.open.load(Ordering::Relaxed) >= self.max {
            return Err(Refusal::Full);
        }
        let n = map.entry(key).or_insert(0);
        if *n >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Ok(ConnSlot {
            table: self.clone(),
            key,
        })
    }

    /// Connections open from `ip`'s client now.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut map = self
            .table
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
        self.table.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one connection is doing: requests in flight, and since when it has had none.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let limit = timeout.as_millis() as u64;
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(timeout).await;
                continue;
            }
            let idle = self
                .now_ms()
                .saturating_sub(self.idle_since_ms.load(Ordering::Acquire));
            if idle >= limit {
                // Checked again: a request may have begun since.
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                continue;
            }
            tokio::time::sleep(Duration::from_millis(limit - idle)).await;
        }
    }
}

/// A request in flight on a connection; its drop (when the response body is finished or the
/// request is abandoned) makes the connection idle again if it was the last.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is finished or dropped.
struct Tracked {
    inner: Body,
    _flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The marker in the error of a request body that did not arrive in time (the handlers answer
/// `408` when they see it).
pub const BODY_TIMEOUT_MARKER: &str = "the request body did not arrive within";

#[derive(Debug)]
struct BodyTimedOut(Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{BODY_TIMEOUT_MARKER} {} s", self.0.as_secs_f64())
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body with a deadline for the whole of it.
struct Deadline {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Logs refusals at most every 10 s (an attack must not flood the log).
fn log_refusal(stats: &ConnStats, why: Refusal, peer: SocketAddr) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 10
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let s = stats.snapshot();
        tracing::warn!(
            ?why,
            %peer,
            open = s.open,
            refused_total = s.refused,
            "connection refused: over the connection limit (http.max_connections / http.max_connections_per_ip)"
        );
    }
}

/// Answers a refused connection with a `503` (if its socket takes it without waiting) and
/// closes it.
fn refuse(stream: TcpStream, why: Refusal) {
    let message = match why {
        Refusal::Full => "The server has as many connections open as it accepts; retry shortly.",
        Refusal::PerClient => {
            "Your address has as many connections open as this server accepts from one client; close some or retry shortly."
        }
    };
    let body =
        serde_json::json!({"error": "Too many connections.", "message": message}).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves; then stops accepting and
/// waits for open connections to finish their requests (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let table = ConnTable::new(
        limits.max_connections,
        limits.max_connections_per_ip,
        stats.clone(),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let slot = match table.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                log_refusal(&stats, why, peer);
                refuse(stream, why);
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = {
            let activity = activity.clone();
            let app = app.clone();
            let body_timeout = limits.body_timeout;
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let flight = InFlight::begin(&activity);
                let app = app.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    parts.extensions.insert(ConnectInfo(peer));
                    let body = Deadline {
                        inner: body,
                        sleep: Box::pin(tokio::time::sleep(body_timeout)),
                        limit: body_timeout,
                    };
                    let req = Request::from_parts(parts, Body::new(body));
                    let res = match app.oneshot(req).await {
                        Ok(res) => res,
                        Err(never) => match never {},
                    };
                    Ok::<_, Infallible>(res.map(|inner| {
                        Body::new(Tracked {
                            inner,
                            _flight: flight,
                        })
                    }))
                }
            })
        };
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let header_timeout = limits.header_timeout;
        let stats = stats.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                done = conn => {
                    if let Err(e) = done {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                }
                _ = activity.idle_for(header_timeout) => {
                    stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "connection closed: no complete request within http.header_timeout_secs");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_table_caps_in_all_and_per_client_and_frees_on_drop() {
        let stats = Arc::new(ConnStats::default());
        let t = ConnTable::new(3, 2, stats.clone());
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        let z: IpAddr = "10.0.0.3".parse().unwrap();
        let a = t.admit(x).unwrap();
        let _b = t.admit(x).unwrap();
        assert_eq!(t.admit(x).unwrap_err(), Refusal::PerClient);
        let _c = t.admit(y).unwrap();
        assert_eq!(t.admit(z).unwrap_err(), Refusal::Full);
        assert_eq!(stats.snapshot().open, 3);
        drop(a);
        assert_eq!(t.open_from(x), 1);
        let _d = t.admit(z).unwrap();
        assert_eq!(t.open_from(z), 1);
        assert_eq!(stats.snapshot().open, 3);
    }
}
