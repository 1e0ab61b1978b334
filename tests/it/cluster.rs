//! Cluster mode as it runs: the real binary as separate processes on loopback — a coordinator
//! with `local_renders = 0` and workers, each with its own data dir — a real webhook receiver,
//! workers killed with SIGKILL and frozen with SIGSTOP, the coordinator restarted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::s3::{free_port, S3Server};
use crate::common::*;

const LONG: Duration = Duration::from_secs(240);
const COOKIE: &str = "cluster-test-cookie-5b2f";

/// A `vidbuilder` child process (coordinator or worker) with its own data dir and log.
struct Node {
    child: Child,
    name: String,
    log: PathBuf,
}

/// The settings every node of a test cluster shares: fast heartbeats, short backoffs.
fn cluster_env(cmd: &mut Command) {
    cmd.env("VIDBUILDER_CLUSTER_HEARTBEAT_INTERVAL_MS", "200")
        .env("VIDBUILDER_CLUSTER_HEARTBEAT_TIMEOUT_SECS", "4")
        .env("VIDBUILDER_CLUSTER_RPC_TIMEOUT_SECS", "5")
        .env("VIDBUILDER_RENDER_RESTART_BACKOFF_SECS", "0.3")
        .env("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "127.0.0.0/8")
        .env("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1,1,1")
        .env("VIDBUILDER_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
}

impl Node {
    fn spawn(mut cmd: Command, name: &str, log: PathBuf) -> Node {
        cmd.stderr(std::fs::File::create(&log).unwrap());
        Node {
            child: cmd.spawn().expect("the binary starts"),
            name: name.to_string(),
            log,
        }
    }

    /// A pure coordinator (`local_renders = 0`) on `cluster_port`; returns it and its HTTP base.
    async fn coordinator(
        data: &Path,
        cluster_port: u16,
        run: usize,
        env: &[(&str, &str)],
    ) -> (Node, String) {
        std::fs::create_dir_all(data).unwrap();
        let log = data.join(format!("coordinator-{run}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidbuilder"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("VIDBUILDER_NODE_NAME", "coordinator")
            .env(
                "VIDBUILDER_CLUSTER_LISTEN",
                format!("127.0.0.1:{cluster_port}"),
            )
            .env("VIDBUILDER_CLUSTER_LOCAL_RENDERS", "0")
            .env("VIDBUILDER_CLUSTER_COOKIE", COOKIE);
        cluster_env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let node = Node::spawn(cmd, "coordinator", log);
        let addr = poll(
            Duration::from_secs(60),
            "the coordinator to listen",
            || async {
                let text = node.logs();
                text.lines().find_map(|l| {
                    l.split("addr=")
                        .nth(1)
                        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
                })
            },
        )
        .await;
        (node, format!("http://{addr}"))
    }

    /// A worker named `name` joining `127.0.0.1:cluster_port` with one render slot.
    fn worker(data: &Path, name: &str, cluster_port: u16, cookie: &str) -> Node {
        Node::worker_with(data, name, cluster_port, cookie, &[])
    }

    /// A worker whose renders are the bench's stand-in: they sleep `ms` (no ffmpeg).
    fn stand_in_worker(data: &Path, name: &str, cluster_port: u16, ms: u64) -> Node {
        Node::worker_full(
            data,
            name,
            cluster_port,
            COOKIE,
            &[],
            &["--stand-in-sleep-ms", &ms.to_string()],
        )
    }

    /// [`Node::worker`] with more environment.
    fn worker_with(
        data: &Path,
        name: &str,
        cluster_port: u16,
        cookie: &str,
        env: &[(String, String)],
    ) -> Node {
        Node::worker_full(data, name, cluster_port, cookie, env, &[])
    }

    /// [`Node::worker`] with more environment and arguments.
    fn worker_full(
        data: &Path,
        name: &str,
        cluster_port: u16,
        cookie: &str,
        env: &[(String, String)],
        args: &[&str],
    ) -> Node {
        let dir = data.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let log = data.join(format!("{name}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidbuilder"));
        cmd.args(["worker", "--join"])
            .arg(format!("127.0.0.1:{cluster_port}"))
            .args(["--name", name, "--capacity", "1", "--data-dir"])
            .arg(&dir)
            .args(args)
            .env("VIDBUILDER_CLUSTER_COOKIE", cookie);
        cluster_env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Node::spawn(cmd, name, log)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.name);
    }

    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pure coordinator and plain workers `w1`, `w2`, … (one slot each), all up.
struct Cluster {
    data: tempfile::TempDir,
    port: u16,
    coordinator: Node,
    base: String,
    workers: HashMap<String, Node>,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(workers: usize) -> Cluster {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let (coordinator, base) = Node::coordinator(&data.path().join("c"), port, 1, &[]).await;
        let http = reqwest::Client::new();
        let mut nodes = HashMap::new();
        for i in 1..=workers {
            let name = format!("w{i}");
            nodes.insert(name.clone(), Node::worker(data.path(), &name, port, COOKIE));
        }
        for name in nodes.keys() {
            wait_node(&http, &base, name, "up").await;
        }
        Cluster {
            data,
            port,
            coordinator,
            base,
            workers: nodes,
            http,
        }
    }
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let res = http.get(url).send().await.unwrap();
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

/// `GET /api/cluster` as name → node.
async fn nodes(http: &reqwest::Client, base: &str) -> HashMap<String, Value> {
    let (code, v) = get(http, &format!("{base}/api/cluster")).await;
    assert_eq!(code, 200, "{v}");
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_string(), n.clone()))
        .collect()
}

/// Waits until `/api/cluster` shows `name` with `status`.
async fn wait_node(http: &reqwest::Client, base: &str, name: &str, status: &str) -> Value {
    poll(
        Duration::from_secs(60),
        &format!("node {name} to be {status}"),
        || async {
            nodes(http, base)
                .await
                .remove(name)
                .filter(|n| n["status"] == status)
        },
    )
    .await
}

async fn submit(http: &reqwest::Client, base: &str, spec: &Value) -> String {
    let res = http
        .post(format!("{base}/api/generate-video-async"))
        .json(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let v: Value = res.json().await.unwrap();
    v["jobId"].as_str().unwrap().to_string()
}

async fn job(http: &reqwest::Client, base: &str, id: &str) -> Value {
    get(http, &format!("{base}/api/job-status/{id}")).await.1
}

async fn wait_terminal(http: &reqwest::Client, base: &str, id: &str) -> Value {
    poll(LONG, &format!("job {id} to finish"), || async {
        let v = job(http, base, id).await;
        matches!(v["status"].as_str(), Some("completed" | "failed")).then_some(v)
    })
    .await
}

/// Waits until the job renders on some worker, past its first frames; returns that node's name.
async fn wait_rendering(http: &reqwest::Client, base: &str, id: &str) -> String {
    poll(LONG, &format!("job {id} to render"), || async {
        let v = job(http, base, id).await;
        (v["status"] == "processing" && v["progress"].as_u64().unwrap_or(0) >= 8)
            .then(|| v["node"].as_str().map(String::from))
            .flatten()
    })
    .await
}

/// Exactly one `started` and one `completed` delivery per job, by `webhook-id`, each id always
/// with the same body; no `failed`.
fn one_terminal_webhook_each(got: &[Received], ids: &[String]) {
    let mut bodies: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in got {
        bodies
            .entry(r.headers["webhook-id"].clone())
            .or_default()
            .push(r);
    }
    for (wid, rs) in &bodies {
        assert!(
            rs.iter().all(|r| r.raw == rs[0].raw),
            "two bodies under one webhook-id {wid}"
        );
    }
    for id in ids {
        for event in ["started", "completed"] {
            assert!(
                bodies.contains_key(&format!("msg_{id}_{event}")),
                "no {event} webhook for {id}: {:?}",
                bodies.keys().collect::<Vec<_>>()
            );
        }
        assert!(!bodies.contains_key(&format!("msg_{id}_failed")));
    }
    assert_eq!(bodies.len(), ids.len() * 2, "{:?}", bodies.keys());
    let completed: Vec<&Received> = got
        .iter()
        .filter(|r| r.body["status"] == "completed")
        .collect();
    for id in ids {
        let mut distinct: Vec<&[u8]> = completed
            .iter()
            .filter(|r| r.body["jobId"] == id.as_str())
            .map(|r| r.raw.as_ref())
            .collect();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            1,
            "job {id} sent different completed bodies"
        );
    }
}

fn spec(receiver: &Receiver, hook: &str, quality: &str, secs: f64) -> Value {
    let mut s = quick_spec(Some(&receiver.url(hook)), secs);
    s["quality"] = json!(quality);
    s
}

/// Downloads the job's video from the coordinator and probes it.
async fn download(http: &reqwest::Client, base: &str, id: &str, dir: &Path) -> Probe {
    let res = http
        .get(format!("{base}/api/download/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let file = dir.join(format!("{id}.mp4"));
    std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
    ffprobe(&file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_jobs_spread_over_two_workers_and_download_from_the_coordinator() {
    let receiver = Receiver::start().await;
    let Cluster {
        data,
        port,
        coordinator,
        base,
        workers,
        http,
    } = Cluster::start(2).await;
    for name in workers.keys() {
        let n = wait_node(&http, &base, name, "up").await;
        assert_eq!(n["capacity"], 1);
        assert!(n["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    // `vidbuilder cluster` prints the same nodes.
    let out = Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
        .args(["cluster", "--url", &base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for name in ["coordinator", "w1", "w2"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(name) && l.contains(" up ")),
            "{table}"
        );
    }
    let me = nodes(&http, &base).await.remove("coordinator").unwrap();
    assert_eq!(
        (me["capacity"].as_u64(), me["address"].as_str()),
        (Some(0), Some(format!("127.0.0.1:{port}").as_str()))
    );
    let mut ids = Vec::new();
    for i in 0..6 {
        let secs = 1.0 + (i % 3) as f64 * 0.5;
        let mut s = spec(&receiver, "six", "draft", secs);
        if i == 0 {
            // another format and a second aspect ratio: its file travels too
            s["format"] = json!("webm");
            s["aspectRatios"] = json!(["16:9", "1:1"]);
        }
        ids.push(submit(&http, &base, &s).await);
    }
    let mut by_node: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let v = wait_terminal(&http, &base, id).await;
        assert_eq!(v["status"], "completed", "{v}\n{}", coordinator.logs());
        assert_eq!(v["attempt"], 1, "{v}");
        *by_node
            .entry(v["node"].as_str().unwrap().to_string())
            .or_default() += 1;
        let probe = download(&http, &base, id, data.path()).await;
        assert_eq!((probe.width, probe.height), (640, 360));
        assert!(probe.duration >= 0.9, "{probe:?}");
        // The poster travelled too.
        let (code, _) = get(&http, &format!("{base}/api/download/{id}/poster")).await;
        assert_eq!(code, 200);
        if *id == ids[0] {
            assert_eq!(probe.video_codec, "vp9");
            let square = &v["outputs"]["1:1"];
            assert_eq!(square["format"], "webm", "{v}");
            let url = square["videoUrl"].as_str().unwrap();
            let res = http.get(format!("{base}{url}")).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 200);
            assert_eq!(res.headers()["content-type"], "video/webm");
            let file = data.path().join(format!("{id}-1x1.webm"));
            std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
            let p = ffprobe(&file);
            assert_eq!((p.width, p.height), (360, 360));
            let poster = square["posterUrl"].as_str().unwrap();
            assert_eq!(get(&http, &format!("{base}{poster}")).await.0, 200);
        }
    }
    assert!(
        by_node.get("w1").copied().unwrap_or(0) >= 1
            && by_node.get("w2").copied().unwrap_or(0) >= 1,
        "each worker renders at least one job: {by_node:?}"
    );
    assert!(!by_node.contains_key("coordinator"), "{by_node:?}");
    let got = receiver.wait_for("six", 12, LONG).await;
    one_terminal_webhook_each(&got, &ids);
    // The coordinator holds the files; the workers released theirs.
    for id in &ids {
        assert!(data
            .path()
            .join("c/videos")
            .join(format!(
                "{id}.{}",
                if *id == ids[0] { "webm" } else { "mp4" }
            ))
            .is_file());
    }
    for w in ["w1", "w2"] {
        let attempts = data.path().join(w).join("attempts");
        poll(
            Duration::from_secs(20),
            "workers to release the files",
            || async { (std::fs::read_dir(&attempts).unwrap().count() == 0).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_render_loses_its_job_to_the_other_worker() {
    let receiver = Receiver::start().await;
    let Cluster {
        data,
        coordinator,
        base,
        mut workers,
        http,
        ..
    } = Cluster::start(2).await;
    let id = submit(&http, &base, &spec(&receiver, "kill", "720p", 8.0)).await;
    let first = wait_rendering(&http, &base, &id).await;
    workers.remove(&first).unwrap().sigkill();
    let v = wait_terminal(&http, &base, &id).await;
    assert_eq!(v["status"], "completed", "{v}\n{}", coordinator.logs());
    assert_eq!(v["attempt"], 2, "{v}");
    assert_ne!(v["node"], first.as_str(), "{v}");
    let down = wait_node(&http, &base, &first, "down").await;
    // Whichever ractor_cluster reports first: the closed link, or its endpoint leaving the group.
    let reason = down["reason"].as_str().unwrap();
    assert!(
        reason.contains("link closed") || reason.contains("left the workers' group"),
        "{down}"
    );
    let probe = download(&http, &base, &id, data.path()).await;
    assert!((probe.duration - 8.0).abs() < 0.2, "{probe:?}");
    // One started, one completed: the lost attempt sent nothing terminal.
    let got = receiver.wait_for("kill", 2, LONG).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    one_terminal_webhook_each(&receiver.got("kill"), std::slice::from_ref(&id));
    assert_eq!(got.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_is_declared_down_its_job_moves_and_after_thawing_its_render_stops() {
    let receiver = Receiver::start().await;
    let Cluster {
        data,
        coordinator,
        base,
        workers,
        http,
        ..
    } = Cluster::start(2).await;
    let id = submit(&http, &base, &spec(&receiver, "freeze", "720p", 10.0)).await;
    let frozen = wait_rendering(&http, &base, &id).await;
    let stale = &workers[&frozen];
    stale.signal("STOP");
    // Its socket stays open: only the missing heartbeats tell.
    wait_node(&http, &base, &frozen, "suspect").await;
    let down = wait_node(&http, &base, &frozen, "down").await;
    assert!(
        down["reason"].as_str().unwrap().contains("no heartbeat"),
        "{down}"
    );
    let v = wait_terminal(&http, &base, &id).await;
    assert_eq!(v["status"], "completed", "{v}\n{}", coordinator.logs());
    assert_eq!(v["attempt"], 2);
    assert_ne!(v["node"], frozen.as_str());
    // Thawed: it heartbeats again, is told its attempt is superseded, and stops it.
    stale.signal("CONT");
    wait_node(&http, &base, &frozen, "up").await;
    let attempts = data.path().join(&frozen).join("attempts");
    poll(
        Duration::from_secs(60),
        "the stale attempt to be dropped",
        || async { (std::fs::read_dir(&attempts).unwrap().count() == 0).then_some(()) },
    )
    .await;
    let log = stale.logs();
    assert!(
        log.contains(&format!("job_id={id} attempt=1")) && log.contains("attempt dropped"),
        "{log}"
    );
    // Its result (if it finished) changed nothing: one completed body, from attempt 2.
    tokio::time::sleep(Duration::from_secs(1)).await;
    one_terminal_webhook_each(&receiver.got("freeze"), std::slice::from_ref(&id));
    let after = job(&http, &base, &id).await;
    assert_eq!(after["attempt"], 2);
    assert_eq!(after["finishedAt"], v["finishedAt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_gets_its_workers_back_and_finishes_every_job_once() {
    let receiver = Receiver::start().await;
    let Cluster {
        data,
        port,
        coordinator,
        base,
        workers,
        http,
    } = Cluster::start(2).await;
    let cdir = data.path().join("c");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit(&http, &base, &spec(&receiver, "restart", "720p", 5.0)).await);
    }
    wait_rendering(&http, &base, &ids[0]).await;
    coordinator.sigkill();
    let (coordinator, base) = Node::coordinator(&cdir, port, 2, &[]).await;
    for name in workers.keys() {
        wait_node(&http, &base, name, "up").await;
    }
    for id in &ids {
        let v = wait_terminal(&http, &base, id).await;
        assert_eq!(v["status"], "completed", "{v}\n{}", coordinator.logs());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    one_terminal_webhook_each(&receiver.got("restart"), &ids);
    for w in workers.values() {
        assert!(
            w.logs().matches("linked to the coordinator").count() >= 2,
            "{} relinked:\n{}",
            w.name,
            w.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_wrong_cookie_joins_nothing_and_gets_no_work() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (coordinator, base) = Node::coordinator(&data.path().join("c"), port, 1, &[]).await;
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let intruder = Node::worker(data.path(), "intruder", port, "not-the-cookie");
    let id = submit(&http, &base, &spec(&receiver, "cookie", "draft", 1.0)).await;
    poll(
        Duration::from_secs(60),
        "the refused link to be logged",
        || async {
            coordinator
                .logs()
                .contains("before it authenticated")
                .then_some(())
        },
    )
    .await;
    let v = job(&http, &base, &id).await;
    assert_eq!(v["status"], "queued", "{v}");
    assert!(!nodes(&http, &base).await.contains_key("intruder"));
    // A worker with the cookie takes the job.
    let good = Node::worker(data.path(), "good", port, COOKIE);
    wait_node(&http, &base, "good", "up").await;
    let v = wait_terminal(&http, &base, &id).await;
    assert_eq!(
        (v["status"].as_str(), v["node"].as_str()),
        (Some("completed"), Some("good"))
    );
    assert!(!nodes(&http, &base).await.contains_key("intruder"));
    assert!(!intruder.logs().contains("render started"));
    // The refused worker retries with backoff (200 ms doubling, at most 5 s), one try at a time:
    // 6 tries in the first 6.2 s, then one per 5 s; never a flood. Watched for 10 s.
    let watch = Duration::from_secs(10);
    if let Some(rest) = watch.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let tries = coordinator
        .logs()
        .matches("before it authenticated")
        .count();
    assert!(
        tries as f64 <= 8.0 + secs / 5.0,
        "{tries} refused links in {secs:.1} s"
    );
    drop(good);
}

#[test]
fn cluster_mode_refuses_to_start_without_a_cookie() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("VIDBUILDER_CLUSTER_LISTEN", "127.0.0.1:0")
        .env_remove("VIDBUILDER_CLUSTER_COOKIE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster mode needs a cookie"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
        .args(["worker", "--join", "127.0.0.1:9", "--data-dir"])
        .arg(data.path())
        .env_remove("VIDBUILDER_CLUSTER_COOKIE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cookie"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_object_storage_the_workers_upload_and_the_coordinator_signs() {
    let s3 = S3Server::start("videos");
    let env = s3.env();
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (coordinator, base) = Node::coordinator(&data.path().join("c"), port, 1, &env_refs).await;
    let http = reqwest::Client::new();
    let w1 = Node::worker_with(data.path(), "w1", port, COOKIE, &env);
    let w2 = Node::worker_with(data.path(), "w2", port, COOKIE, &env);
    for w in [&w1, &w2] {
        wait_node(&http, &base, &w.name, "up").await;
    }
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut s = spec(&receiver, "s3", "draft", 1.0);
        if i == 0 {
            s["generateReels"] = json!(true);
        }
        if i == 1 {
            s["aspectRatios"] = json!(["16:9", "4:5"]);
        }
        ids.push(submit(&http, &base, &s).await);
    }
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut nodes_used = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let v = wait_terminal(&http, &base, id).await;
        assert_eq!(v["status"], "completed", "{v}\n{}", coordinator.logs());
        nodes_used.insert(v["node"].as_str().unwrap().to_string());
        let s3u = &v["s3Upload"];
        assert_eq!(s3u["enabled"], true, "{v}");
        let key = s3u["standard"]["s3Key"].as_str().unwrap();
        assert!(key.ends_with(&format!("{id}.mp4")), "{key}");
        assert!(s3u["standard"]["signedUrl"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Signature="));
        assert!(
            s3.root().join("videos").join(key).is_file(),
            "{key} is stored"
        );
        // The worker uploaded it: the coordinator has the poster, not the video.
        let local = data.path().join("c/videos");
        assert!(!local.join(format!("{id}.mp4")).exists());
        assert!(local.join(format!("{id}.jpg")).is_file());
        if i == 0 {
            let reel = s3u["reels"]["s3Key"].as_str().unwrap();
            assert!(s3.root().join("videos").join(reel).is_file(), "{reel}");
        }
        if i == 1 {
            let key = v["outputs"]["4:5"]["s3Key"].as_str().unwrap();
            assert!(key.contains("/4x5/"), "{key}");
            assert!(s3.root().join("videos").join(key).is_file(), "{key}");
        }
        // Download works the same: a redirect to a fresh signed URL.
        let res = no_redirects
            .get(format!("{base}/api/download/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 307);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let bytes = reqwest::get(&location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let f = data.path().join(format!("{id}-from-s3.mp4"));
        std::fs::write(&f, bytes).unwrap();
        assert!((ffprobe(&f).duration - 1.0).abs() < 0.1);
        let (code, _) = get(&http, &format!("{base}/api/download/{id}/poster")).await;
        assert_eq!(code, 200);
    }
    assert_eq!(nodes_used.len(), 2, "{nodes_used:?}");
    let uploads = w1.logs().matches("uploaded job_id=").count()
        + w2.logs().matches("uploaded job_id=").count();
    assert!(
        uploads >= 8,
        "six videos, a reel and a 4:5 uploaded by the workers: {uploads}"
    );
    assert!(
        !coordinator.logs().contains(" uploaded bytes="),
        "the coordinator uploaded nothing"
    );
    let got = receiver.wait_for("s3", 12, LONG).await;
    one_terminal_webhook_each(&got, &ids);
}

/// A test PKI: a CA, and leaf certificates it signs, written as PEM files.
struct Pki {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Pki {
    fn ca(name: &str) -> Pki {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Pki {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// Writes the CA as `<dir>/<name>-ca.pem`.
    fn write_ca(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A leaf for `localhost`/127.0.0.1 (`server`: for serving, else for client auth), written as
    /// `<dir>/<name>.pem` and `<dir>/<name>.key`.
    fn leaf(&self, dir: &Path, name: &str, server: bool) -> (PathBuf, PathBuf) {
        let mut p =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        p.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

fn tls_env(ca: &Path, cert_key: Option<&(PathBuf, PathBuf)>) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "VIDBUILDER_CLUSTER_TLS_CA".to_string(),
            ca.display().to_string(),
        ),
        (
            "VIDBUILDER_CLUSTER_TLS_SERVER_NAME".to_string(),
            "localhost".to_string(),
        ),
    ];
    if let Some((c, k)) = cert_key {
        env.push((
            "VIDBUILDER_CLUSTER_TLS_CERT".into(),
            c.display().to_string(),
        ));
        env.push(("VIDBUILDER_CLUSTER_TLS_KEY".into(), k.display().to_string()));
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_links_work_with_the_cluster_ca_and_refuse_any_other_certificate() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let pki = data.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = Pki::ca("cluster");
    let ca_pem = ca.write_ca(&pki, "cluster");
    let server = ca.leaf(&pki, "coordinator", true);
    let client = ca.leaf(&pki, "worker", false);
    let rogue_ca = Pki::ca("rogue");
    let rogue_pem = rogue_ca.write_ca(&pki, "rogue");
    let rogue_client = rogue_ca.leaf(&pki, "rogue-worker", false);

    // The coordinator serves its certificate and requires client certificates of the cluster CA.
    let port = free_port();
    let coordinator_env = tls_env(&ca_pem, Some(&server));
    let env_refs: Vec<(&str, &str)> = coordinator_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (coordinator, base) = Node::coordinator(&data.path().join("c"), port, 1, &env_refs).await;
    let http = reqwest::Client::new();

    // Refused: a worker that trusts another CA (it refuses the coordinator's certificate), a
    // worker whose certificate another CA signed (the coordinator refuses it), a plain worker.
    let distrustful = Node::worker_with(
        data.path(),
        "distrustful",
        port,
        COOKIE,
        &tls_env(&rogue_pem, Some(&client)),
    );
    let impostor = Node::worker_with(
        data.path(),
        "impostor",
        port,
        COOKIE,
        &tls_env(&ca_pem, Some(&rogue_client)),
    );
    let plain = Node::worker(data.path(), "plain", port, COOKIE);
    let id = submit(&http, &base, &spec(&receiver, "tls", "draft", 1.0)).await;
    poll(
        Duration::from_secs(60),
        "the refused links to be retried",
        || async {
            let refused = [&distrustful, &impostor, &plain].iter().all(|w| {
                w.logs().matches("cannot reach the coordinator").count() >= 1
                    || w.logs().matches("link to the coordinator closed").count() >= 1
            });
            refused.then_some(())
        },
    )
    .await;
    let seen = nodes(&http, &base).await;
    for name in ["distrustful", "impostor", "plain"] {
        assert!(!seen.contains_key(name), "{name} joined: {seen:?}");
    }
    assert_eq!(job(&http, &base, &id).await["status"], "queued");

    // The worker with the cluster's certificate joins over TLS and renders.
    let trusted = Node::worker_with(
        data.path(),
        "trusted",
        port,
        COOKIE,
        &tls_env(&ca_pem, Some(&client)),
    );
    wait_node(&http, &base, "trusted", "up").await;
    let v = wait_terminal(&http, &base, &id).await;
    assert_eq!(
        (v["status"].as_str(), v["node"].as_str()),
        (Some("completed"), Some("trusted")),
        "{v}\n{}",
        coordinator.logs()
    );
    download(&http, &base, &id, data.path()).await;
    assert!(coordinator.logs().contains("tls=true"));
    let seen = nodes(&http, &base).await;
    for name in ["distrustful", "impostor", "plain"] {
        assert!(!seen.contains_key(name), "{name} joined: {seen:?}");
    }
    drop(trusted);
}

#[test]
fn the_cluster_bench_runs_and_reports_every_worker_count() {
    // A smoke run (speed is measured by the bench itself, never asserted here).
    let v = bench_json(&[
        "--cluster",
        "--workers",
        "1,2",
        "--jobs-per-worker",
        "2",
        "--sleep-ms",
        "100",
    ]);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (r, n) in runs.iter().zip([1, 2]) {
        assert_eq!(r["workers"], n);
        assert_eq!(r["jobs"], 2 * n);
        assert!(r["jobsPerSec"].as_f64().unwrap() > 0.0, "{r}");
        let eff = r["efficiency"].as_f64().unwrap();
        assert!(eff > 0.0 && eff <= 1.0, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_crashing_on_a_worker_is_reported_and_restarted_within_the_limit() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (coordinator, base) = Node::coordinator(
        &data.path().join("c"),
        port,
        1,
        &[("VIDBUILDER_RENDER_MAX_RESTARTS", "2")],
    )
    .await;
    let http = reqwest::Client::new();
    let worker = Node::stand_in_worker(data.path(), "w1", port, 300);
    wait_node(&http, &base, "w1", "up").await;
    let mut crash = spec(&receiver, "crash", "draft", 1.0);
    crash["scenes"][0]["content"]["title"] = json!("stand-in: crash");
    let crashing = submit(&http, &base, &crash).await;
    let fine = submit(&http, &base, &spec(&receiver, "crash", "draft", 1.0)).await;
    let v = wait_terminal(&http, &base, &crashing).await;
    assert_eq!(v["status"], "failed", "{v}\n{}", coordinator.logs());
    // The first attempt and two restarts, each a RenderActor that panicked on the worker, whose
    // supervisor reported it; the coordinator counted them against the job's restart limit.
    assert_eq!(v["attempt"], 3, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("crashed"), "{error}");
    assert_eq!(
        worker.logs().matches("render failed").count(),
        3,
        "{}",
        worker.logs()
    );
    // The worker lives on and renders the next job.
    let v = wait_terminal(&http, &base, &fine).await;
    assert_eq!(
        (v["status"].as_str(), v["node"].as_str()),
        (Some("completed"), Some("w1"))
    );
    assert_eq!(wait_node(&http, &base, "w1", "up").await["status"], "up");
    let got = receiver.wait_for("crash", 4, LONG).await;
    let failed: Vec<_> = got
        .iter()
        .filter(|r| r.body["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "one failed webhook");
}
