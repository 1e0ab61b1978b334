//! Webhooks people can trust and an API no one can abuse: signatures checked by an independent
//! verifier, delivery rules (redirects, 410, 429 + Retry-After, huge answers), the SSRF guard at
//! submission and at delivery, the delivery log and redelivery, API keys.

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
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidbuilder::webhook_client::HttpWebhookTransport;
use vidbuilder_actors::ports::{WebhookRequest, WebhookTransport};
use vidbuilder_actors::signing::WebhookSecret;
use vidbuilder_actors::webhook::WebhookMsg;
use vidbuilder_domain::store::AttemptRecord;
use vidbuilder_domain::JobId;
use vidbuilder_net::SsrfGuard;

use crate::common::*;

const LONG: Duration = Duration::from_secs(240);

/// The delivery log of a job, straight from the WebhookActor.
async fn log_of(t: &TestServer, job_id: &str) -> Vec<AttemptRecord> {
    let job_id = JobId::parse(job_id).unwrap();
    ractor::call!(t.server.webhooks, |reply| WebhookMsg::Log { job_id, reply }).unwrap()
}

/// `POST /api/jobs/:job/webhooks/redeliver` without a key.
async fn redeliver(t: &TestServer, job: &str) -> (StatusCode, HeaderMap, Value) {
    let path = format!("/api/jobs/{job}/webhooks/redeliver");
    t.call(reqwest::Method::POST, &path, None, None).await
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
    // An open server does not hand its secret out over HTTP.
    let (status, _, v) = t
        .call(reqwest::Method::GET, "/api/webhooks/secret", None, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(v.get("secret").is_none());
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
        l.iter()
            .filter(|a| a.result.as_str() == "exhausted")
            .count()
            == 2
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
        l.iter().filter(|a| a.result.as_str() == "gave-up").count() == 2
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
        l.iter()
            .filter(|a| a.result.as_str() == "delivered")
            .count()
            == 2
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
        l.iter().filter(|a| a.result.as_str() == "gave-up").count() == 2
    })
    .await;
    assert_eq!(log.len(), 2, "{log:#?}");
    for a in &log {
        let err = a.error.as_deref().unwrap_or("");
        assert!(err.starts_with("refused by SSRF guard: "), "{a:?}");
        assert!(err.contains(&host), "{err}");
        // The log is read by clients: the address the name resolved to stays in the server log.
        for leak in [
            "127.", "10.", "172.", "192.168", "::1", "loopback", "private",
        ] {
            assert!(!err.contains(leak), "{leak} leaked: {err}");
        }
    }
    assert!(receiver.got("hook").is_empty());
    t.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Delivery log and redelivery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_lists_attempts_and_redelivery_resends_the_last_event() {
    let r = Scripted::start().await;
    r.script("hook", vec![reply(500, &[])]);
    let t = start_server(&[
        ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1"),
        ("VIDBUILDER_WEBHOOK_REDELIVERY_COOLDOWN_SECS", "2"),
    ])
    .await;
    let secret = std::fs::read_to_string(t.data.path().join("webhook-secret"))
        .unwrap()
        .trim()
        .to_string();
    let job = submit(&t, &r.url("hook")).await;
    let got = r.wait_for("hook", 3).await;
    let completed = got
        .iter()
        .find(|g| g.body["status"] == "completed")
        .unwrap()
        .clone();

    // The log over HTTP: every attempt, oldest first, with its outcome.
    let log_path = format!("/api/jobs/{job}/webhooks");
    let log = poll(LONG, "3 logged attempts", || async {
        let (status, _, v) = t.call(reqwest::Method::GET, &log_path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        (v["attempts"].as_array().map_or(0, |a| a.len()) == 3).then_some(v)
    })
    .await;
    assert_eq!(log["jobId"], job.as_str());
    let a = log["attempts"].as_array().unwrap();
    let summary: Vec<_> = a
        .iter()
        .map(|x| {
            (
                x["event"].as_str().unwrap().to_string(),
                x["attempt"].as_u64().unwrap(),
                x["statusCode"].as_u64().unwrap(),
                x["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("started".to_string(), 1, 500, "retrying".to_string()),
            ("started".to_string(), 2, 200, "delivered".to_string()),
            ("completed".to_string(), 1, 200, "delivered".to_string()),
        ]
    );
    for x in a {
        assert!(x["at"].as_str().unwrap().ends_with('Z'));
        assert!(x["latencyMs"].is_u64());
        assert!(x["webhookId"].as_str().unwrap().starts_with("msg_"));
    }

    // Redeliver: the last event again, same id and bytes, fresh timestamp and signature. Twenty
    // requests at once set one going; the others are throttled (429 + Retry-After).
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, url) = (
            t.http.clone(),
            format!("{}/api/jobs/{job}/webhooks/redeliver", t.base),
        );
        tasks.spawn(async move {
            let res = http.post(url).send().await.unwrap();
            let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
            let headers = res.headers().clone();
            (status, headers, res.json::<Value>().await.unwrap())
        });
    }
    let answers = tasks.join_all().await;
    let accepted: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    for (status, headers, v) in answers
        .iter()
        .filter(|(s, _, _)| *s != StatusCode::ACCEPTED)
    {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{v}");
        assert_eq!(v["error"], "Redelivery throttled.");
        let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&after), "{after}");
    }
    let v = &accepted[0].2;
    assert_eq!(v["event"], "completed");
    assert_eq!(v["webhookId"], completed.headers["webhook-id"].as_str());
    let got = r.wait_for("hook", 4).await;
    let again = &got[3];
    assert_eq!(again.raw, completed.raw, "the same body bytes");
    assert_eq!(again.headers["webhook-id"], completed.headers["webhook-id"]);
    if let Some(res) = python_verify(&secret, again) {
        res.unwrap();
    }
    let log = poll(LONG, "the redelivery in the log", || async {
        let (_, _, v) = t.call(reqwest::Method::GET, &log_path, None, None).await;
        (v["attempts"].as_array().map_or(0, |a| a.len()) == 4).then_some(v)
    })
    .await;
    let last = &log["attempts"][3];
    assert_eq!(last["result"], "redelivered", "{log}");
    assert_eq!(last["event"], "completed");
    assert_eq!(last["attempt"], 2);

    assert_eq!(
        r.got("hook").len(),
        4,
        "one redelivery was sent, not twenty"
    );

    // A failing redelivery (once the cooldown is over) is logged and not retried.
    r.script("hook", vec![reply(503, &[])]);
    poll(LONG, "the cooldown to end", || async {
        let (status, _, _) = redeliver(&t, &job).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    let log = poll(LONG, "the failed redelivery in the log", || async {
        let (_, _, v) = t.call(reqwest::Method::GET, &log_path, None, None).await;
        (v["attempts"].as_array().map_or(0, |a| a.len()) == 5).then_some(v)
    })
    .await;
    assert_eq!(log["attempts"][4]["result"], "redelivery-failed");
    assert_eq!(log["attempts"][4]["statusCode"], 503);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(r.got("hook").len(), 5, "a manual redelivery is not retried");

    // Unknown job: 404; a job with no webhook event: 409.
    let (status, _, v) = t
        .call(
            reqwest::Method::POST,
            "/api/jobs/00000000deadbeef/webhooks/redeliver",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, _, v) = t
        .call(
            reqwest::Method::GET,
            "/api/jobs/00000000deadbeef/webhooks",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, _, v) = t
        .post("/api/generate-flexible-video", &quick_spec(None, 1.0))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let blocking = v["jobId"].as_str().unwrap();
    let (status, _, v) = redeliver(&t, blocking).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "Nothing to redeliver.");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_delivery_can_be_redelivered_once_the_receiver_is_back() {
    let r = Scripted::start().await;
    r.always("down", reply(500, &[]));
    let t = start_server(&[("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1")]).await;
    let job = submit(&t, &r.url("down")).await;
    wait_log(&t, &job, "both events exhausted", |l| {
        l.iter()
            .filter(|a| a.result.as_str() == "exhausted")
            .count()
            == 2
    })
    .await;
    r.always("down", reply(200, &[]));
    let (status, _, v) = redeliver(&t, &job).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["event"], "completed");
    assert_eq!(v["attempt"], 3);
    let log = wait_log(&t, &job, "the redelivery", |l| l.len() == 5).await;
    assert_eq!(log[4].result.as_str(), "redelivered");
    assert_eq!(log[4].status_code, Some(200));
    let got = r.got("down");
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].raw, got[3].raw);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answered_410_is_not_sent_redeliveries() {
    let r = Scripted::start().await;
    r.always("gone", reply(410, &[]));
    let t = start_server(&[("VIDBUILDER_WEBHOOK_REDELIVERY_COOLDOWN_SECS", "0")]).await;
    let job = submit(&t, &r.url("gone")).await;
    wait_log(&t, &job, "both events given up", |l| {
        l.iter().filter(|a| a.result.as_str() == "gave-up").count() == 2
    })
    .await;
    let sent = r.got("gone").len();
    assert_eq!(sent, 2, "a 410 is not retried");
    let (status, _, v) = redeliver(&t, &job).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "Receiver gone.");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.got("gone").len(), sent, "nothing was sent");
    let log = wait_log(&t, &job, "the log", |_| true).await;
    assert_eq!(log.len(), 2, "no new log row: {log:?}");
    t.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// API keys

fn sha256_hex(s: &str) -> String {
    vidbuilder_actors::signing::to_hex(&vidbuilder::http::auth::sha256(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_route_and_isolate_jobs() {
    use reqwest::Method;
    let receiver = Receiver::start().await;
    let keys = tempfile::tempdir().unwrap();
    let keys_file = keys.path().join("keys");
    std::fs::write(
        &keys_file,
        format!(
            "# name and hash of each key\n{}  bob\n{}  carol  revoked\n",
            sha256_hex("bob-key"),
            sha256_hex("carol-key")
        ),
    )
    .unwrap();
    let t = start_server(&[
        ("VIDBUILDER_AUTH_API_KEYS", "alice-key"),
        ("VIDBUILDER_AUTH_KEYS_FILE", keys_file.to_str().unwrap()),
    ])
    .await;
    let spec = quick_spec(Some(&receiver.url("hook")), 1.0);

    // Health stays open, but shows only liveness without a key; everything else needs a key.
    let (status, _, v) = t.call(Method::GET, "/api/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        serde_json::json!({"status": "ok"}),
        "details leaked: {v}"
    );
    let (_, _, v) = t
        .call(Method::GET, "/api/health", None, Some("wrong"))
        .await;
    assert_eq!(
        v,
        serde_json::json!({"status": "ok"}),
        "details leaked: {v}"
    );
    let (_, _, v) = t
        .call(Method::GET, "/api/health", None, Some("carol-key"))
        .await;
    assert_eq!(
        v,
        serde_json::json!({"status": "ok"}),
        "a revoked key saw details: {v}"
    );
    let (_, _, v) = t
        .call(Method::GET, "/api/health", None, Some("bob-key"))
        .await;
    assert!(
        v["ffmpeg"].is_string() && v["jobs"]["total"].is_u64(),
        "{v}"
    );
    for (method, path, body) in [
        (Method::POST, "/api/generate-video-async", Some(&spec)),
        (Method::POST, "/api/generate-flexible-video", Some(&spec)),
        (Method::GET, "/api/job-status/0123456789abcdef", None),
        (Method::GET, "/api/download/0123456789abcdef", None),
        (Method::GET, "/api/jobs/0123456789abcdef/webhooks", None),
        (Method::GET, "/api/themes", None),
        (Method::GET, "/api/no-such-route", None),
    ] {
        let (status, headers, v) = t.call(method.clone(), path, body, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
        assert_eq!(v["error"], "Unauthorized.");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let (status, _, v) = t.call(method.clone(), path, body, Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
        let (status, _, v) = t.call(method.clone(), path, body, Some("carol-key")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert_eq!(v["message"], "This API key has been revoked.");
    }
    let (status, _, v) = t
        .call(Method::GET, "/api/themes", None, Some("bob-key"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, _, health) = t
        .call(Method::GET, "/api/health", None, Some("bob-key"))
        .await;
    assert_eq!(
        health["jobs"]["total"], 0,
        "refused requests created nothing"
    );

    // Alice's job is hers alone.
    let (status, _, v) = t
        .call(
            Method::POST,
            "/api/generate-video-async",
            Some(&spec),
            Some("alice-key"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let job = v["jobId"].as_str().unwrap().to_string();
    let status_path = format!("/api/job-status/{job}");
    let done = poll(LONG, "alice's job to finish", || async {
        let (s, _, v) = t
            .call(Method::GET, &status_path, None, Some("alice-key"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (v["status"] == "completed").then_some(v)
    })
    .await;
    assert!(
        done.get("owner").is_none(),
        "the owner is not shown: {done}"
    );
    let delivered = receiver.wait_for("hook", 2, LONG).await;
    // Signed with alice's own secret, which only alice can read; not with the server's.
    let (status, _, v) = t
        .call(Method::GET, "/api/webhooks/secret", None, Some("alice-key"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["keyId"],
        "key-".to_string() + &sha256_hex("alice-key")[..12]
    );
    let alices = WebhookSecret::parse(v["secret"].as_str().unwrap()).unwrap();
    let (_, _, v) = t
        .call(Method::GET, "/api/webhooks/secret", None, Some("bob-key"))
        .await;
    let bobs_secret = WebhookSecret::parse(v["secret"].as_str().unwrap()).unwrap();
    assert_ne!(alices, bobs_secret);
    let master = std::fs::read_to_string(t.data.path().join("webhook-secret")).unwrap();
    let master = WebhookSecret::parse(&master).unwrap();
    for r in &delivered {
        let hex = &r.headers["x-webhook-signature"];
        assert_eq!(
            hex,
            &alices.sign_hex(&r.raw),
            "alice's secret signs her job"
        );
        assert_ne!(hex, &master.sign_hex(&r.raw));
        assert_ne!(hex, &bobs_secret.sign_hex(&r.raw));
        if let Some(res) = python_verify(alices.expose(), r) {
            res.unwrap();
        }
    }
    let video = format!("/api/download/{job}");
    let log = format!("/api/jobs/{job}/webhooks");
    let redeliver_path = format!("/api/jobs/{job}/webhooks/redeliver");
    for (method, path) in [
        (Method::GET, status_path.as_str()),
        (Method::GET, video.as_str()),
        (Method::GET, log.as_str()),
        (Method::POST, redeliver_path.as_str()),
    ] {
        let (status, _, v) = t.call(method.clone(), path, None, Some("bob-key")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "bob: {method} {path}: {v}");
        assert_eq!(v["error"], "Job not found.");
    }
    let res = t
        .http
        .get(format!("{}{video}", t.base))
        .bearer_auth("alice-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "video/mp4");
    let (status, _, v) = t.call(Method::GET, &log, None, Some("alice-key")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 2);
    // Bob's own job is his.
    let (status, _, v) = t
        .call(
            Method::POST,
            "/api/generate-video-async",
            Some(&spec),
            Some("bob-key"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let bobs = format!("/api/job-status/{}", v["jobId"].as_str().unwrap());
    let (status, _, _) = t.call(Method::GET, &bobs, None, Some("bob-key")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = t.call(Method::GET, &bobs, None, Some("alice-key")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_moves_a_waiting_retry_forward() {
    let r = Scripted::start().await;
    r.script("later", vec![reply(500, &[])]);
    // The retry would come after 60 s.
    let t = start_server(&[("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "60")]).await;
    let job = submit(&t, &r.url("later")).await;
    wait_log(&t, &job, "the first attempt", |l| l.len() == 1).await;
    let asked = Instant::now();
    let (status, _, v) = redeliver(&t, &job).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["event"], "started");
    assert_eq!(v["attempt"], 2);
    // The retry goes now, and `completed` follows in order.
    let got = r.wait_for("later", 3).await;
    assert!(asked.elapsed() < Duration::from_secs(30));
    assert_eq!(got[1].raw, got[0].raw);
    assert_eq!(got[2].body["status"], "completed");
    let log = wait_log(&t, &job, "all settled", |l| l.len() == 3).await;
    assert_eq!(
        log.iter().map(|a| a.result.as_str()).collect::<Vec<_>>(),
        vec!["retrying", "delivered", "delivered"]
    );
    t.server.stop().await;
}

#[test]
fn the_webhook_bench_delivers_every_signed_delivery_in_each_phase() {
    // A smoke run (speed is measured by the bench itself, never asserted here).
    let v = bench_json(&[
        "--webhooks",
        "--deliveries",
        "300",
        "--paced",
        "100",
        "--rate",
        "500",
        "--slow-secs",
        "1",
    ]);
    let phases = v["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["burst", "paced", "paced + slow receiver"], "{v}");
    for (p, n) in phases.iter().zip([300, 100, 100]) {
        assert_eq!(p["deliveries"], n, "{p}");
        assert_eq!(p["badSignatures"], 0, "every signature verifies: {p}");
        let (p50, p99) = (p["p50Ms"].as_f64().unwrap(), p["p99Ms"].as_f64().unwrap());
        assert!(p50 > 0.0 && p50 <= p99, "{p}");
        assert!(p["perSec"].as_f64().unwrap() > 0.0, "{p}");
    }
    assert_eq!(phases[2]["slowDeliveries"], 10, "{v}");
}
