//! Webhooks people can trust and an API no one can abuse: signatures checked by an independent
//! verifier, delivery rules (redirects, 410, 429 + Retry-After, huge answers), the SSRF guard at
//! submission and at delivery, the delivery log and redelivery, API keys.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidbuilder::ssrf::SsrfGuard;
use vidbuilder::webhook_client::HttpWebhookTransport;
use vidbuilder_actors::ports::{WebhookRequest, WebhookTransport};
use vidbuilder_actors::webhook::{AttemptRecord, WebhookMsg};
use vidbuilder_actors::JobId;

const LONG: Duration = Duration::from_secs(240);

/// The delivery log of a job, straight from the WebhookActor.
async fn log_of(t: &TestServer, job_id: &str) -> Vec<AttemptRecord> {
    let job_id = JobId::parse(job_id).unwrap();
    ractor::call!(t.server.webhooks, |reply| WebhookMsg::Log { job_id, reply }).unwrap()
}

/// Waits until the job's log has `n` settled attempts matching `f`.
async fn wait_log(
    t: &TestServer,
    job_id: &str,
    what: &str,
    f: impl Fn(&[AttemptRecord]) -> bool,
) -> Vec<AttemptRecord> {
    poll(LONG, what, || async {
        let log = log_of(t, job_id).await;
        f(&log).then_some(log)
    })
    .await
}

async fn submit(t: &TestServer, hook: &str) -> String {
    let (status, _, body) = t
        .post("/api/generate-video-async", &quick_spec(Some(hook), 1.0))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["jobId"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// A receiver whose answers (status, headers, body) are scripted per path.

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
}

fn reply(status: u16, headers: &[(&'static str, &str)]) -> Reply {
    Reply {
        status,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    }
}

#[derive(Default)]
struct ScriptState {
    got: Mutex<Vec<Received>>,
    script: Mutex<HashMap<String, Vec<Reply>>>,
    /// Answer for a path once its script is used up (default 200).
    then: Mutex<HashMap<String, Reply>>,
}

#[derive(Clone)]
struct Scripted {
    addr: SocketAddr,
    state: Arc<ScriptState>,
}

impl Scripted {
    async fn start() -> Scripted {
        let state = Arc::new(ScriptState::default());
        let app = Router::new()
            .route("/{*path}", post(scripted))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Scripted { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .script
            .lock()
            .unwrap()
            .insert(format!("/{path}"), replies);
    }

    fn always(&self, path: &str, r: Reply) {
        self.state
            .then
            .lock()
            .unwrap()
            .insert(format!("/{path}"), r);
    }

    fn got(&self, path: &str) -> Vec<Received> {
        let p = format!("/{path}");
        let got = self.state.got.lock().unwrap();
        got.iter().filter(|r| r.path == p).cloned().collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        poll(LONG, &format!("{n} request(s) on /{path}"), || async {
            let got = self.got(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn scripted(
    State(state): State<Arc<ScriptState>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{path}");
    let r = {
        let mut script = state.script.lock().unwrap();
        match script.get_mut(&path) {
            Some(s) if !s.is_empty() => s.remove(0),
            _ => state
                .then
                .lock()
                .unwrap()
                .get(&path)
                .cloned()
                .unwrap_or_else(|| reply(200, &[])),
        }
    };
    state.got.lock().unwrap().push(Received {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
        at: Instant::now(),
        answered: r.status,
    });
    let mut res = StatusCode::from_u16(r.status).unwrap().into_response();
    for (k, v) in r.headers {
        res.headers_mut().insert(k, v.parse().unwrap());
    }
    res
}

// ---------------------------------------------------------------------------------------------
// Signatures

/// Verifies `webhook-signature` with the `standardwebhooks` package from PyPI and
/// `x-webhook-signature` with Python's own hmac. `None` when python3 is missing.
fn python_verify(secret: &str, r: &Received) -> Option<Result<(), String>> {
    const SCRIPT: &str = r#"
import hashlib, hmac, json, sys
from standardwebhooks.webhooks import Webhook
d = json.load(sys.stdin)
body = d["body"].encode()
Webhook(d["secret"]).verify(body, d["headers"])
hexsig = hmac.new(d["secret"].encode(), body, hashlib.sha256).hexdigest()
assert hmac.compare_digest(hexsig, d["headers"]["x-webhook-signature"]), "x-webhook-signature"
print("verified")
"#;
    let input = json!({
        "secret": secret,
        "body": String::from_utf8(r.raw.to_vec()).unwrap(),
        "headers": r.headers,
    });
    let child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("python3: {e}"),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    Some(if out.status.success() && stdout.contains("verified") {
        Ok(())
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_and_an_independent_verifier_accepts_them() {
    let receiver = Receiver::start().await;
    receiver.script("signed", &[500]);
    let t = start_server(&[("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1")]).await;
    // No secret configured: one was generated into the data dir, private.
    let secret_file = t.data.path().join("webhook-secret");
    let secret = std::fs::read_to_string(&secret_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    submit(&t, &receiver.url("signed")).await;
    let got = receiver.wait_for("signed", 3, LONG).await;
    let started: Vec<_> = got
        .iter()
        .filter(|r| r.body["status"] == "started")
        .collect();
    assert_eq!(started.len(), 2, "a 500 then the retry");
    assert_eq!(started[0].raw, started[1].raw, "the same bytes");
    assert_eq!(
        started[0].headers["webhook-id"],
        started[1].headers["webhook-id"]
    );
    for r in &got {
        assert!(r.headers["webhook-signature"].starts_with("v1,"));
        assert_eq!(r.headers["x-webhook-signature"].len(), 64);
        match python_verify(&secret, r) {
            None => {
                eprintln!("SKIPPED the independent check: python3 is not installed");
                break;
            }
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("the standardwebhooks verifier refused a delivery: {e}"),
        }
        // And a wrong secret does not verify.
        let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        assert!(matches!(python_verify(other, r), Some(Err(_))));
    }
    t.server.stop().await;

    // A configured secret is used as given.
    let receiver = Receiver::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let t = start_server(&[("VIDBUILDER_WEBHOOK_SECRET", secret)]).await;
    assert!(!t.data.path().join("webhook-secret").exists());
    submit(&t, &receiver.url("configured")).await;
    let got = receiver.wait_for("configured", 2, LONG).await;
    for r in &got {
        if let Some(res) = python_verify(secret, r) {
            res.unwrap();
        }
    }
    t.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Delivery rules

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let r = Scripted::start().await;
    r.always("redirect", reply(302, &[("location", &r.url("target"))]));
    let t = start_server(&[("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1")]).await;
    let job = submit(&t, &r.url("redirect")).await;
    let log = wait_log(&t, &job, "both events settled", |l| {
        l.iter().filter(|a| a.result == "exhausted").count() == 2
    })
    .await;
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(log.iter().all(|a| a.status_code == Some(302)), "{log:#?}");
    assert_eq!(r.got("redirect").len(), 4);
    assert!(
        r.got("target").is_empty(),
        "the redirect target saw a request"
    );
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_stops_and_retry_after_is_honoured_within_the_clamp() {
    let r = Scripted::start().await;
    r.always("gone", reply(410, &[]));
    r.script("busy", vec![reply(429, &[("retry-after", "3")])]);
    r.script("clamped", vec![reply(503, &[("retry-after", "3600")])]);
    let t = start_server(&[
        ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1,1,1"),
        ("VIDBUILDER_WEBHOOK_MAX_RETRY_AFTER_SECS", "5"),
    ])
    .await;
    let gone = submit(&t, &r.url("gone")).await;
    submit(&t, &r.url("busy")).await;
    submit(&t, &r.url("clamped")).await;

    let busy = r.wait_for("busy", 3).await;
    let gap = busy[1].at - busy[0].at;
    assert!(
        gap >= Duration::from_millis(2900) && gap < Duration::from_secs(5),
        "429 Retry-After: 3 → the retry came after {gap:?}"
    );
    assert_eq!(busy[0].raw, busy[1].raw);
    let clamped = r.wait_for("clamped", 3).await;
    let gap = clamped[1].at - clamped[0].at;
    assert!(
        gap >= Duration::from_millis(4900) && gap < Duration::from_secs(8),
        "Retry-After: 3600 clamped to 5 s → the retry came after {gap:?}"
    );

    // 410: one attempt per event, then given up.
    let log = wait_log(&t, &gone, "both events given up", |l| {
        l.iter().filter(|a| a.result == "gave-up").count() == 2
    })
    .await;
    assert_eq!(log.len(), 2, "{log:#?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.got("gone").len(), 2, "no retry after 410");
    t.server.stop().await;
}

/// A raw TCP receiver that answers 200 with an endless body and counts what it sent.
async fn firehose() -> (SocketAddr, Arc<Mutex<(usize, usize)>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Mutex::new((0usize, 0usize))); // (requests, bytes sent)
    let s = stats.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head and the body (Content-Length).
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                s.lock().unwrap().0 += 1;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 10000000000\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let junk = vec![b'x'; 64 * 1024];
                while sock.write_all(&junk).await.is_ok() {
                    s.lock().unwrap().1 += junk.len();
                }
            });
        }
    });
    (addr, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_not_read_to_the_end() {
    let (addr, stats) = firehose().await;
    let t = start_server(&[("VIDBUILDER_WEBHOOK_TIMEOUT_SECS", "20")]).await;
    let job = submit(&t, &format!("http://{addr}/hook")).await;
    let log = wait_log(&t, &job, "both events delivered", |l| {
        l.iter().filter(|a| a.result == "delivered").count() == 2
    })
    .await;
    assert_eq!(log.len(), 2, "{log:#?}");
    for a in &log {
        assert_eq!(a.status_code, Some(200));
        assert!(a.latency_ms < 10_000, "read too long: {a:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (requests, sent) = *stats.lock().unwrap();
    assert_eq!(requests, 2);
    assert!(
        sent < 64 * 1024 * 1024,
        "the client kept reading ({sent} bytes) of a 10 GB answer"
    );
    t.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// SSRF

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_webhook_targets_are_refused_at_submission() {
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    // No allowlist: the guard as deployed.
    let t = start_server(&[("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "")]).await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://LOCALHOST.:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[::ffff:a9fe:a9fe]/".into(),
        "http://0.0.0.0/".into(),
        "http://10.0.0.1/".into(),
        "http://192.168.1.1/".into(),
        "http://100.64.0.1/".into(),
        "http://[fd00::1]/".into(),
        "http://[64:ff9b::7f00:1]/".into(),
    ] {
        for endpoint in ["/api/generate-video-async", "/api/generate-flexible-video"] {
            let (status, _, body) = t.post(endpoint, &quick_spec(Some(&url), 1.0)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
            assert_eq!(body["error"], "Invalid webhook URL format.", "{url}");
            assert_eq!(body["field"], "webhookUrl", "{url}");
            assert_eq!(body["receivedUrl"], url.as_str());
            let msg = body["message"].as_str().unwrap();
            assert!(msg.contains("internal addresses"), "{url}: {msg}");
        }
    }
    let (_, health) = t.get_json("/api/health").await;
    assert_eq!(health["jobs"]["total"], 0, "nothing was created: {health}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.got("hook").is_empty());
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_refuses_internal_targets_without_connecting() {
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let strict = HttpWebhookTransport::new(
        Duration::from_secs(5),
        Duration::from_secs(2),
        Arc::new(SsrfGuard::default()),
    )
    .unwrap();
    let req = |url: String| WebhookRequest {
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from_static(b"{}"),
    };
    for url in [
        // A name: resolved by the guarded resolver (localhost → /etc/hosts → loopback).
        format!("http://localhost:{port}/hook"),
        // IP literals: reqwest skips the resolver, the transport checks them first.
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
    ] {
        let out = strict.post(req(url.clone())).await;
        assert!(out.permanent, "{url}: {out:?}");
        assert_eq!(out.status, None, "{url}");
        let err = out.error.unwrap();
        assert!(err.starts_with("refused by SSRF guard: "), "{url}: {err}");
    }
    assert!(
        receiver.got("hook").is_empty(),
        "a refused target was connected to"
    );

    // The same guard with the loopback allowlisted connects through the same resolver.
    let open = HttpWebhookTransport::new(
        Duration::from_secs(5),
        Duration::from_secs(2),
        Arc::new(SsrfGuard::new(&["127.0.0.0/8"]).unwrap()),
    )
    .unwrap();
    let out = open
        .post(req(format!("http://localhost:{port}/hook")))
        .await;
    assert_eq!(out.status, Some(200), "{out:?}");
    assert_eq!(receiver.got("hook").len(), 1);
}

/// This machine's host name, if it resolves only to addresses the guard refuses (in containers
/// it is usually loopback or a private address).
async fn internal_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/etc/hostname")
        .ok()?
        .trim()
        .to_string();
    if name.is_empty() || name.contains("localhost") {
        return None;
    }
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .ok()?
        .collect();
    let guard = SsrfGuard::default();
    (!addrs.is_empty() && addrs.iter().all(|a| guard.check_ip(a.ip()).is_err())).then_some(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_an_internal_address_fails_delivery_permanently() {
    let Some(host) = internal_hostname().await else {
        eprintln!("SKIPPED: this machine's host name does not resolve to an internal address");
        return;
    };
    let receiver = Receiver::start().await;
    let t = start_server(&[("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "")]).await;
    // A name is not resolved at submission, so the job is accepted…
    let url = format!("http://{host}:{}/hook", receiver.addr.port());
    let job = submit(&t, &url).await;
    // …and each delivery gives up at its first attempt with the reason logged.
    let log = wait_log(&t, &job, "both events given up", |l| {
        l.iter().filter(|a| a.result == "gave-up").count() == 2
    })
    .await;
    assert_eq!(log.len(), 2, "{log:#?}");
    for a in &log {
        let err = a.error.as_deref().unwrap_or("");
        assert!(err.starts_with("refused by SSRF guard: "), "{a:?}");
        assert!(err.contains(&host), "{err}");
    }
    assert!(receiver.got("hook").is_empty());
    t.server.stop().await;
}
