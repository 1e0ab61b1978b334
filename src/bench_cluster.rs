//! `vidbuilder bench --cluster`: what cluster mode costs and how it scales.
//!
//! For each worker count N (1, 2, 4, 8 by default) it starts a pure coordinator in this process
//! (`local_renders = 0`, HTTP on loopback) and N `vidbuilder worker` processes of one slot each
//! whose renders are a stand-in that only sleeps (`--stand-in-sleep-ms`; two cores cannot show
//! real render scaling), submits `N × jobs_per_worker` jobs at once through the HTTP API, and
//! waits until all are completed. It reports:
//! - jobs/second, and the scaling efficiency: the ideal time (`jobs_per_worker × sleep`) over the
//!   measured time from the first submission to the last completion;
//! - the overhead per job: a job's `finishedAt − startedAt` minus the sleep, i.e. the dispatch
//!   request, the worker's actor and files, the result's receipt, the checked fetch of its files
//!   and the completion (mean and p95).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::{Config, Error, Server};

/// What `vidbuilder bench --cluster` was asked for.
#[derive(Debug, Clone)]
pub struct ClusterBenchOptions {
    /// Worker counts to measure.
    pub workers: Vec<usize>,
    /// Jobs per worker in each run.
    pub jobs_per_worker: usize,
    /// How long each stand-in render sleeps.
    pub sleep: Duration,
    /// One JSON document instead of a table.
    pub json: bool,
}

/// One worker count's figures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRun {
    /// Worker processes (one render slot each).
    pub workers: usize,
    /// Jobs submitted.
    pub jobs: usize,
    /// First submission to last completion, in seconds.
    pub secs: f64,
    /// Completed jobs per second.
    pub jobs_per_sec: f64,
    /// Ideal time over measured time (1.0: no cost at all).
    pub efficiency: f64,
    /// Mean of `finishedAt − startedAt − sleep`, in milliseconds.
    pub overhead_ms_mean: f64,
    /// 95th percentile of the same.
    pub overhead_ms_p95: f64,
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::io("finding a port"))?;
    Ok(l.local_addr().map_err(Error::io("finding a port"))?.port())
}

/// A webhook receiver that answers 200 to everything.
async fn receiver() -> Result<SocketAddr, Error> {
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(Error::io("binding the webhook receiver"))?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("binding the webhook receiver"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn ms_between(a: &str, b: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_microseconds()? as f64 / 1000.0)
}

async fn one_run(
    base_config: &Config,
    scratch: &Path,
    n: usize,
    opts: &ClusterBenchOptions,
    hook: SocketAddr,
) -> Result<ClusterRun, Error> {
    let dir = scratch.join(format!("n{n}"));
    std::fs::create_dir_all(&dir).map_err(Error::io("creating the bench dir"))?;
    let port = free_port()?;
    let cookie = format!("bench-{}", uuid::Uuid::new_v4());
    let mut config = base_config.clone();
    config.bind = "127.0.0.1:0".parse().expect("address");
    config.data_dir = dir.join("coordinator");
    config.node_name = "coordinator".into();
    config.cluster.listen = format!("127.0.0.1:{port}");
    config.cluster.cookie = cookie.clone();
    config.cluster.local_renders = 0;
    config.cluster.heartbeat_interval_ms = 200;
    config.cluster.heartbeat_timeout_secs = 10;
    config.max_queued_jobs = 100_000;
    config.retention_hours = 0.0;
    config.webhook.allow_cidrs = vec!["127.0.0.0/8".into()];
    config.auth.api_keys.clear();
    config.auth.keys_file.clear();
    config.auth.rate_limit_per_minute = 0;
    config.s3.bucket.clear();
    let server = Server::start(config).await?;
    let base = format!("http://{}", server.addr);
    let exe = std::env::current_exe().map_err(Error::io("finding this executable"))?;
    let mut workers = Workers(Vec::new());
    for i in 0..n {
        let wdir = dir.join(format!("w{i}"));
        std::fs::create_dir_all(&wdir).map_err(Error::io("creating a worker dir"))?;
        let log = std::fs::File::create(wdir.join("worker.log"))
            .map_err(Error::io("creating a worker log"))?;
        let child = Command::new(&exe)
            .args(["worker", "--join", &format!("127.0.0.1:{port}")])
            .args(["--name", &format!("bench-w{i}"), "--capacity", "1"])
            .arg("--data-dir")
            .arg(&wdir)
            .arg("--stand-in-sleep-ms")
            .arg(opts.sleep.as_millis().to_string())
            .env("VIDBUILDER_CLUSTER_COOKIE", &cookie)
            .env("VIDBUILDER_CLUSTER_HEARTBEAT_INTERVAL_MS", "200")
            .env("VIDBUILDER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(Error::io("starting a worker"))?;
        workers.0.push(child);
    }
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = match http.get(format!("{base}/api/cluster")).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["nodes"].as_array().cloned())
                .map(|ns| ns.iter().filter(|n| n["status"] == "up").count())
                .unwrap_or(0),
            Err(_) => 0,
        };
        if up > n {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Actors(format!("only {up} of {n} workers came up")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs = n * opts.jobs_per_worker.max(1);
    let spec = json!({
        "quality": "draft",
        "webhookUrl": format!("http://{hook}/bench"),
        "scenes": [{"type": "hero-title", "duration": 1, "content": {"title": "bench"}}]
    });
    let started = Instant::now();
    let mut ids = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let r = http
            .post(format!("{base}/api/generate-video-async"))
            .json(&spec)
            .send()
            .await
            .map_err(|e| Error::Actors(format!("submitting: {e}")))?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| Error::Actors(format!("submitting: {e}")))?;
        let id = v["jobId"]
            .as_str()
            .ok_or_else(|| Error::Actors(format!("not admitted: {v}")))?;
        ids.push(vidbuilder_domain::JobId::parse(id).expect("a job id"));
    }
    let limit = Duration::from_secs(60) + opts.sleep * (jobs as u32) * 2;
    loop {
        let done = ids
            .iter()
            .filter(|id| {
                server
                    .views
                    .get(*id)
                    .is_some_and(|v| v.status.is_terminal())
            })
            .count();
        if done == jobs {
            break;
        }
        if started.elapsed() > limit {
            return Err(Error::Actors(format!(
                "{done} of {jobs} jobs finished in {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let sleep_ms = opts.sleep.as_secs_f64() * 1000.0;
    let mut overheads = Vec::new();
    for id in &ids {
        let v = server.views.get(id).expect("known").clone();
        if v.status != vidbuilder_domain::JobStatus::Completed {
            return Err(Error::Actors(format!("job {id} failed: {:?}", v.error)));
        }
        if let (Some(a), Some(b)) = (&v.started_at, &v.finished_at) {
            if let Some(ms) = ms_between(a, b) {
                overheads.push(ms - sleep_ms);
            }
        }
    }
    overheads.sort_by(f64::total_cmp);
    let mean = overheads.iter().sum::<f64>() / overheads.len().max(1) as f64;
    let p95 = crate::bench::percentile(&overheads, 0.95).unwrap_or(0.0);
    let ideal = opts.jobs_per_worker.max(1) as f64 * opts.sleep.as_secs_f64();
    drop(workers);
    server.stop().await;
    Ok(ClusterRun {
        workers: n,
        jobs,
        secs,
        jobs_per_sec: jobs as f64 / secs,
        efficiency: ideal / secs,
        overhead_ms_mean: mean,
        overhead_ms_p95: p95,
    })
}

/// Runs the cluster bench and prints its table (or JSON).
pub async fn run(config: Config, opts: ClusterBenchOptions) -> Result<(), Error> {
    let scratch =
        std::env::temp_dir().join(format!("vidbuilder-bench-cluster-{}", std::process::id()));
    let hook = receiver().await?;
    if !opts.json {
        println!(
            "cluster bench: stand-in renders of {} ms, {} jobs per worker, one slot per worker process",
            opts.sleep.as_millis(),
            opts.jobs_per_worker
        );
        println!(
            "{:>7} {:>6} {:>8} {:>9} {:>10} {:>14} {:>13}",
            "workers", "jobs", "secs", "jobs/s", "efficiency", "overhead mean", "overhead p95"
        );
    }
    let mut runs = Vec::new();
    for &n in &opts.workers {
        let r = one_run(&config, &scratch, n.max(1), &opts, hook).await?;
        if !opts.json {
            println!(
                "{:>7} {:>6} {:>8.2} {:>9.2} {:>10.3} {:>11.1} ms {:>10.1} ms",
                r.workers,
                r.jobs,
                r.secs,
                r.jobs_per_sec,
                r.efficiency,
                r.overhead_ms_mean,
                r.overhead_ms_p95
            );
        }
        runs.push(r);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "sleepMs": opts.sleep.as_millis() as u64,
                "jobsPerWorker": opts.jobs_per_worker,
                "runs": runs,
            }))
            .expect("serialisable")
        );
    }
    Ok(())
}
