//! Shared helpers of the integration tests: a real server on an ephemeral port with a temporary
//! data dir, a real webhook receiver (axum on loopback), polling with deadlines, ffprobe.

pub(crate) mod s3;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use vidbuilder::{Config, Server};

pub(crate) struct TestServer {
    pub server: Server,
    pub base: String,
    pub data: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// Starts a server with the embedded defaults, a temp data dir and the given env-style overrides.
pub(crate) async fn start_server(overrides: &[(&str, &str)]) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("VIDBUILDER_BIND".into(), "127.0.0.1:0".into()),
        (
            "VIDBUILDER_DATA_DIR".into(),
            data.path().display().to_string(),
        ),
        ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE".into(), "1,2,3".into()),
        (
            "VIDBUILDER_WEBHOOK_ALLOW_CIDRS".into(),
            "127.0.0.0/8".into(),
        ),
        ("VIDBUILDER_WEBHOOK_TIMEOUT_SECS".into(), "5".into()),
    ];
    for (k, v) in overrides {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    let config = Config::load_with_env(None, env).unwrap();
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    TestServer {
        server,
        base,
        data,
        http: reqwest::Client::new(),
    }
}

impl TestServer {
    pub(crate) async fn post(&self, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, headers, json)
    }

    /// Downloads `path` (200 expected) into the data dir as `name` and probes it with ffprobe.
    pub(crate) async fn download_probe(&self, path: &str, name: &str) -> Probe {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "GET {path}");
        let file = self.data.path().join(name);
        std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
        ffprobe(&file)
    }

    pub(crate) async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }

    /// Any request, with an optional JSON body and an optional API key (`Authorization: Bearer`);
    /// the answer's status and JSON body (`Value::Null` if it is not JSON).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let res = req.send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Polls job-status until the job is completed or failed.
    pub(crate) async fn wait_terminal(&self, job_id: &str, limit: Duration) -> Value {
        let path = format!("/api/job-status/{job_id}");
        poll(limit, &format!("job {job_id} to finish"), || async {
            let (_, v) = self.get_json(&path).await;
            matches!(v["status"].as_str(), Some("completed" | "failed")).then_some(v)
        })
        .await
    }
}

/// Calls `f` every 50 ms until it returns `Some`, panicking after `limit`.
pub(crate) async fn poll<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub raw: Bytes,
    pub at: Instant,
    pub answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    /// Per path: status codes to answer in order, then 200.
    script: Mutex<HashMap<String, Vec<u16>>>,
    /// Paths whose requests hang until released.
    held: Mutex<Vec<String>>,
    release: tokio::sync::Notify,
}

/// A real HTTP webhook receiver on loopback.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, state }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Answer these statuses, in order, to requests on `path`; 200 afterwards.
    pub(crate) fn script(&self, path: &str, statuses: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .insert(format!("/{path}"), statuses.to_vec());
    }

    /// Requests on `path` hang until [`Receiver::release`].
    pub(crate) fn hold(&self, path: &str) {
        self.state.held.lock().unwrap().push(format!("/{path}"));
    }

    pub(crate) fn release(&self) {
        self.state.held.lock().unwrap().clear();
        self.state.release.notify_waiters();
    }

    pub(crate) fn got(&self, path: &str) -> Vec<Received> {
        let p = format!("/{path}");
        self.state
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == p)
            .cloned()
            .collect()
    }

    /// Waits until `path` has received `n` requests.
    pub(crate) async fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Received> {
        poll(limit, &format!("{n} webhook(s) on /{path}"), || async {
            let got = self.got(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = format!("/{path}");
    let held = state.held.lock().unwrap().contains(&path);
    if held {
        let notified = state.release.notified();
        if state.held.lock().unwrap().contains(&path) {
            notified.await;
        }
    }
    let status = {
        let mut script = state.script.lock().unwrap();
        match script.get_mut(&path) {
            Some(s) if !s.is_empty() => s.remove(0),
            _ => 200,
        }
    };
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    state.got.lock().unwrap().push(Received {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
        at: Instant::now(),
        answered: status,
    });
    StatusCode::from_u16(status).unwrap()
}

/// `ffprobe` facts about a video file.
#[derive(Debug)]
pub(crate) struct Probe {
    pub width: u32,
    pub height: u32,
    pub duration: f64,
    pub video_codec: String,
    pub pix_fmt: String,
    pub audio_codec: Option<String>,
    pub fps: f64,
}

pub(crate) fn ffprobe(path: &Path) -> Probe {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height,pix_fmt,avg_frame_rate",
            "-show_entries",
            "format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    let rate = video["avg_frame_rate"].as_str().unwrap_or("0/1");
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    Probe {
        width: video["width"].as_u64().unwrap() as u32,
        height: video["height"].as_u64().unwrap() as u32,
        duration: v["format"]["duration"].as_str().unwrap().parse().unwrap(),
        video_codec: video["codec_name"].as_str().unwrap().to_string(),
        pix_fmt: video["pix_fmt"].as_str().unwrap_or("").to_string(),
        audio_codec: audio.map(|a| a["codec_name"].as_str().unwrap().to_string()),
        fps: n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap().max(1.0),
    }
}

/// The contract's example request, pointed at `webhook`.
pub(crate) fn contract_example(webhook: &str) -> Value {
    serde_json::json!({
        "webhookUrl": webhook,
        "theme": "corporate",
        "music": {"trackId": "corp-1", "volume": 0.3},
        "quality": "4k",
        "generateReels": false,
        "scenes": [{
            "type": "hero-title",
            "duration": 4,
            "content": {"title": "Welcome to **VidBuilder**", "subtitle": "Create stunning videos"}
        }]
    })
}

/// A small, fast spec: one draft scene of `secs` seconds.
pub(crate) fn quick_spec(webhook: Option<&str>, secs: f64) -> Value {
    let mut v = serde_json::json!({
        "theme": "modern",
        "quality": "draft",
        "scenes": [{"type": "hero-title", "duration": secs, "content": {"title": "Quick **test**", "subtitle": "draft"}}]
    });
    if let Some(w) = webhook {
        v["webhookUrl"] = Value::String(w.to_string());
    }
    v
}

/// Runs `vidbuilder bench <args> --json` and returns its document (the run must succeed).
pub(crate) fn bench_json(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
