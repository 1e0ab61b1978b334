//! Soak benchmark (a command, not a test): starts `vidbuilder serve` as a child process on a
//! fresh data dir with a webhook receiver on loopback, submits jobs from many concurrent clients,
//! waits for every job and both of its webhooks, and reports jobs/minute, POST latency
//! percentiles and the server's RSS before and after.
//!
//! ```sh
//! cargo build --release && cargo run --release --example soak -- --jobs 400 --clients 200
//! ```
//! Options: `--jobs N` (400), `--clients N` (200), `--secs S` scene length (0.5), `--quality Q`
//! (draft), `--bin PATH` (target/release/vidbuilder).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use serde_json::json;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let jobs: usize = arg("--jobs", "400").parse().expect("--jobs N");
    let clients: usize = arg("--clients", "200").parse().expect("--clients N");
    let secs: f64 = arg("--secs", "0.5").parse().expect("--secs S");
    let quality = arg("--quality", "draft");
    let bin = arg("--bin", "target/release/vidbuilder");

    // Webhook receiver.
    let hooks = Arc::new(AtomicUsize::new(0));
    let h = hooks.clone();
    let app = Router::new().route(
        "/hook",
        post(move || async move {
            h.fetch_add(1, Ordering::SeqCst);
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Server.
    let data = std::env::temp_dir().join(format!("vidbuilder-soak-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let log = data.join("server.log");
    let mut child = Command::new(&bin)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "127.0.0.0/8")
        .env("VIDBUILDER_MAX_QUEUED_JOBS", (jobs + 10).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin}: {e} (build it with `cargo build --release`)")
        });
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(a) = text.lines().find_map(|l| {
            l.split("addr=")
                .nth(1)
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        }) {
            break a;
        }
        assert!(Instant::now() < deadline, "server did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let base = format!("http://{addr}");
    let pid = child.id();
    let rss_before = rss_kib(pid);

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let spec = Arc::new(json!({
        "webhookUrl": format!("http://{hook_addr}/hook"),
        "theme": "modern", "quality": quality,
        "scenes": [{"type": "hero-title", "duration": secs, "content": {"title": "Soak **test**", "subtitle": "vidbuilder"}}]
    }));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, base, spec, next) = (http.clone(), base.clone(), spec.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::SeqCst) < jobs {
                let t = Instant::now();
                let res = http
                    .post(format!("{base}/api/generate-video-async"))
                    .json(&*spec)
                    .send()
                    .await
                    .unwrap();
                let code = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap();
                out.push((
                    t.elapsed(),
                    code,
                    body["jobId"].as_str().unwrap_or("").to_string(),
                ));
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for t in tasks {
        for (lat, code, id) in t.await.unwrap() {
            assert_eq!(code, 202, "POST answered {code}");
            latencies.push(lat);
            ids.push(id);
        }
    }
    let submitted = started.elapsed();
    latencies.sort();
    let rss_loaded = rss_kib(pid);

    // Wait for every job, then for both webhooks of each.
    for id in &ids {
        loop {
            let v: serde_json::Value = http
                .get(format!("{base}/api/job-status/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match v["status"].as_str() {
                Some("completed") => break,
                Some("failed") => panic!("job {id} failed: {v}"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    while hooks.load(Ordering::SeqCst) < 2 * jobs {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed();
    let rss_after = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);

    println!("soak: {jobs} jobs ({quality}, {secs} s each) from {clients} concurrent clients");
    println!(
        "  POST latency: p50 {:?}  p99 {:?}  max {:?} (all {jobs} submitted in {:.2?})",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        submitted
    );
    println!(
        "  throughput:   {:.1} jobs/minute ({jobs} jobs and {} webhooks in {:.1?})",
        jobs as f64 / total.as_secs_f64() * 60.0,
        2 * jobs,
        total
    );
    println!("  server RSS:   {rss_before} KiB idle, {rss_loaded} KiB with {jobs} jobs queued, {rss_after} KiB after");
}
