//! The controls every peer has: cancel, client metadata, idempotent submission, the live
//! progress stream, and the list of recent jobs — black-box over real sockets, with real renders
//! and a real webhook receiver.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{poll, quick_spec, start_server, Receiver};
use crate::durability::Proc;

const LONG: Duration = Duration::from_secs(240);

/// A render long enough to be cancelled mid-way: two minutes of 4k (a minute or more here).
fn long_spec(webhook: &str) -> Value {
    let scene = json!({"type": "bullet-list", "duration": 60,
                       "content": {"heading": "Long", "items": ["one", "two", "three"]}});
    json!({
        "webhookUrl": webhook,
        "theme": "corporate",
        "quality": "4k",
        "scenes": [scene, scene]
    })
}

/// ffmpeg processes whose command line mentions `dir` (the server's data dir).
fn encoders_under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("ffmpeg") && cmd.contains(&needle)
        })
        .collect()
}

/// Files of `job` in the videos dir (partial ones included).
fn files_of(data: &Path, job: &str) -> Vec<String> {
    std::fs::read_dir(data.join("videos"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(job))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_queued_job_and_a_running_render() {
    let hooks = Receiver::start().await;
    let t = start_server(&[("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1")]).await;
    let data = t.data.path().to_path_buf();
    let (s, _, running) = t
        .post(
            "/api/generate-video-async",
            &long_spec(&hooks.url("/running")),
        )
        .await;
    assert_eq!(s, 202, "{running}");
    let running = running["jobId"].as_str().unwrap().to_string();
    let (s, _, queued) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&hooks.url("/queued")), 1.0),
        )
        .await;
    assert_eq!(s, 202);
    let queued = queued["jobId"].as_str().unwrap().to_string();

    // Queued: it leaves the queue at once and never starts.
    let (s, _, body) = t
        .call(
            Method::POST,
            &format!("/api/jobs/{queued}/cancel"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(
        (&body["status"], &body["error"], &body["cancelled"]),
        (&json!("failed"), &json!("Cancelled"), &json!(true))
    );
    let hook = hooks.wait_for("/queued", 1, LONG).await;
    assert_eq!(hook[0].body["status"], "failed");
    assert_eq!(hook[0].body["error"], "Cancelled");
    assert_eq!(hook[0].body["cancelled"], true);

    // Running: wait until frames are being drawn (ffmpeg is encoding), then cancel.
    let status = format!("/api/job-status/{running}");
    poll(LONG, "the long render to draw frames", || async {
        let (_, v) = t.get_json(&status).await;
        (v["progress"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    assert!(
        !encoders_under(&data).is_empty(),
        "an encoder runs for the job"
    );
    let asked = Instant::now();
    let (s, _, body) = t
        .call(
            Method::POST,
            &format!("/api/jobs/{running}/cancel"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["cancelled"], true);
    // No encoder and no partial file is left behind.
    poll(
        Duration::from_secs(20),
        "the encoder to be gone",
        || async { encoders_under(&data).is_empty().then_some(()) },
    )
    .await;
    poll(
        Duration::from_secs(20),
        "the partial files to be gone",
        || async { files_of(&data, &running).is_empty().then_some(()) },
    )
    .await;
    println!(
        "cancelled a running render: encoder gone and files removed {:?} after asking",
        asked.elapsed()
    );
    let hooks_running = hooks.wait_for("/running", 2, LONG).await;
    let kinds: Vec<&str> = hooks_running
        .iter()
        .map(|r| r.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["started", "failed"]);
    assert_eq!(hooks_running[1].body["cancelled"], true);
    let (_, v) = t.get_json(&status).await;
    assert_eq!(
        (&v["status"], &v["error"], &v["cancelled"], &v["message"]),
        (
            &json!("failed"),
            &json!("Cancelled"),
            &json!(true),
            &json!("Cancelled")
        )
    );

    // Finished jobs: 409; unknown: 404. Nothing more is sent.
    for id in [&running, &queued] {
        let (s, _, body) = t
            .call(Method::POST, &format!("/api/jobs/{id}/cancel"), None, None)
            .await;
        assert_eq!(s, 409, "{body}");
        assert_eq!(body["field"], "jobId");
    }
    let (s, _, _) = t
        .call(
            Method::POST,
            "/api/jobs/0123456789abcdef/cancel",
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);

    // The slot is free: a new job completes.
    let (s, _, next) = t.post("/api/jobs", &quick_spec(None, 1.0)).await;
    assert_eq!(s, 202, "{next}");
    let done = t.wait_terminal(next["jobId"].as_str().unwrap(), LONG).await;
    assert_eq!(done["status"], "completed", "{done}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        hooks.got("/running").len(),
        2,
        "exactly one terminal webhook"
    );
    assert_eq!(hooks.got("/queued").len(), 1);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_round_trips_through_status_and_both_webhooks() {
    let hooks = Receiver::start().await;
    let t = start_server(&[]).await;
    let metadata =
        json!({"orderId": "A-1001", "customer": {"id": 42, "tags": ["vip", null]}, "ratio": 0.5});
    let mut spec = quick_spec(Some(&hooks.url("/meta")), 1.0);
    spec["metadata"] = metadata.clone();
    let (s, _, body) = t.post("/api/generate-video-async", &spec).await;
    assert_eq!(s, 202, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    let (_, v) = t.get_json(&format!("/api/job-status/{id}")).await;
    assert_eq!(v["metadata"], metadata, "queued status echoes it");
    let got = hooks.wait_for("/meta", 2, LONG).await;
    assert_eq!(got[0].body["status"], "started");
    assert_eq!(got[0].body["metadata"], metadata);
    assert_eq!(got[1].body["status"], "completed");
    assert_eq!(got[1].body["metadata"], metadata);
    let done = t.wait_terminal(&id, LONG).await;
    assert_eq!(done["metadata"], metadata);

    // Without metadata there is no field; bad metadata is a 400 naming it and creates nothing.
    let (_, _, plain) = t.post("/api/jobs", &quick_spec(None, 1.0)).await;
    let (_, v) = t
        .get_json(&format!(
            "/api/job-status/{}",
            plain["jobId"].as_str().unwrap()
        ))
        .await;
    assert!(v.get("metadata").is_none(), "{v}");
    let before = t.get_json("/api/jobs?limit=100").await.1["jobs"]
        .as_array()
        .unwrap()
        .len();
    for bad in [
        json!("A-1"),
        json!([1, 2]),
        json!({"blob": "x".repeat(5000)}),
    ] {
        let mut spec = quick_spec(Some(&hooks.url("/bad")), 1.0);
        spec["metadata"] = bad;
        let (s, _, body) = t.post("/api/generate-video-async", &spec).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["field"], "metadata");
    }
    let after = t.get_json("/api/jobs?limit=100").await.1["jobs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a refused spec creates no job");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_list_shows_recent_jobs_newest_first() {
    let t = start_server(&[("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1")]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, _, body) = t.post("/api/jobs", &quick_spec(None, 1.0)).await;
        assert_eq!(s, 202, "{body}");
        assert_eq!(body["webhookConfigured"], false);
        ids.push(body["jobId"].as_str().unwrap().to_string());
        // Distinct admission times (milliseconds) for a defined order.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (s, v) = t.get_json("/api/jobs?limit=2").await;
    assert_eq!(s, 200);
    let listed: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    for bad in ["0", "101", "x", "-1"] {
        let (s, v) = t.get_json(&format!("/api/jobs?limit={bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["field"], "limit");
    }
    for id in &ids {
        t.wait_terminal(id, LONG).await;
    }
    t.server.stop().await;
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    data: Value,
    id: Option<String>,
}

/// A client of `GET /api/job-events/:jobId`, reading the stream chunk by chunk.
struct SseStream {
    res: reqwest::Response,
    buf: String,
    /// Keep-alive comments seen.
    comments: usize,
}

impl SseStream {
    async fn open(base: &str, path: &str, last_id: Option<&str>) -> (u16, Option<SseStream>) {
        let mut req = reqwest::Client::new().get(format!("{base}{path}"));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        (
            status,
            Some(SseStream {
                res,
                buf: String::new(),
                comments: 0,
            }),
        )
    }

    /// The next event; `None` when the stream ended.
    async fn next(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data, mut id) = (String::from("message"), String::new(), None);
                let mut fields = 0;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    fields += 1;
                    match k {
                        "event" => event = v.to_string(),
                        "data" => data.push_str(v),
                        "id" => id = Some(v.to_string()),
                        _ => {}
                    }
                }
                if fields > 0 {
                    return Some(SseEvent {
                        event,
                        data: serde_json::from_str(&data).unwrap_or(Value::Null),
                        id,
                    });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no event within {limit:?}");
            match tokio::time::timeout(left, self.res.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => panic!("stream broke: {e}"),
                Err(_) => panic!("no event within {limit:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_progress_streams_and_resumes_after_a_disconnect() {
    let t = start_server(&[("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1")]).await;
    let spec = json!({"theme": "modern", "quality": "720p",
        "scenes": [{"type": "hero-title", "duration": 8, "content": {"title": "Live **progress**"}}]});
    let (s, _, body) = t.post("/api/jobs", &spec).await;
    assert_eq!(s, 202, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    assert_eq!(body["eventsUrl"], format!("/api/job-events/{id}"));
    let path = format!("/api/job-events/{id}");

    // The first connection: the whole state first, then changes; dropped part-way.
    let (s, stream) = SseStream::open(&t.base, &path, None).await;
    assert_eq!(s, 200);
    let mut stream = stream.unwrap();
    let first = stream.next(LONG).await.unwrap();
    assert_eq!(first.event, "status");
    assert_eq!(first.data["jobId"], id.as_str());
    let mut last_id = None;
    let mut progress = Vec::new();
    while progress.len() < 2 {
        let e = stream.next(LONG).await.expect("the stream goes on");
        assert_ne!(
            e.event, "result",
            "the render ended before two progress events"
        );
        if e.event == "progress" {
            progress.push(e.data["progress"].as_u64().unwrap());
        }
        if e.id.is_some() {
            last_id = e.id.clone();
        }
    }
    assert!(progress[1] > progress[0], "{progress:?}");
    let last_id = last_id.expect("groups end with an id");
    drop(stream);

    // Resumed with Last-Event-ID: on to the result, progress never going back.
    let (s, stream) = SseStream::open(&t.base, &path, Some(&last_id)).await;
    assert_eq!(s, 200);
    let mut stream = stream.unwrap();
    let mut result = None;
    let mut ids = Vec::new();
    let mut seen = progress.clone();
    while let Some(e) = stream.next(LONG).await {
        if let Some(i) = &e.id {
            ids.push(i.clone());
        }
        match e.event.as_str() {
            "progress" => seen.push(e.data["progress"].as_u64().unwrap()),
            "result" => result = Some(e),
            "status" | "message" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    let result = result.expect("a result event before the end");
    assert_eq!(result.data["status"], "completed", "{:?}", result.data);
    assert_eq!(result.data["videoUrl"], format!("/api/download/{id}"));
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {seen:?}"
    );
    assert_eq!(*seen.last().unwrap(), 100);
    let final_id = result.id.clone().expect("the result carries the final id");
    assert!(
        !ids.contains(&last_id),
        "nothing already seen is sent again"
    );

    // Having seen the end: 204 (an EventSource stops). `?after=` is the same for clients that
    // cannot set headers; another run's id gets the whole state: status, progress, message,
    // result.
    let (s, _) = SseStream::open(&t.base, &path, Some(&final_id)).await;
    assert_eq!(s, 204);
    let (s, _) = SseStream::open(&t.base, &format!("{path}?after={final_id}"), None).await;
    assert_eq!(s, 204);
    let (s, stream) = SseStream::open(&t.base, &path, Some("1-1")).await;
    assert_eq!(s, 200);
    let mut stream = stream.unwrap();
    let mut kinds = Vec::new();
    while let Some(e) = stream.next(LONG).await {
        kinds.push(e.event);
    }
    assert_eq!(kinds, ["status", "progress", "message", "result"]);

    // Unknown jobs are a JSON 404.
    let (s, v) = t.get_json("/api/job-events/0123456789abcdef").await;
    assert_eq!(s, 404);
    assert_eq!(v["field"], "jobId");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_gets_keep_alives_and_ends_when_the_server_stops() {
    // One render slot held by a long job: the second job waits, its stream stays quiet.
    let t = start_server(&[
        ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1"),
        ("VIDBUILDER_SHUTDOWN_GRACE_SECS", "1"),
    ])
    .await;
    let hooks = Receiver::start().await;
    let (s, _, long) = t
        .post("/api/generate-video-async", &long_spec(&hooks.url("/l")))
        .await;
    assert_eq!(s, 202, "{long}");
    let (_, _, waiting) = t.post("/api/jobs", &quick_spec(None, 1.0)).await;

    let path = format!("/api/job-events/{}", waiting["jobId"].as_str().unwrap());
    let (_, stream) = SseStream::open(&t.base, &path, None).await;
    let mut stream = stream.unwrap();
    let first = stream.next(LONG).await.unwrap();
    assert_eq!(first.data["status"], "queued");
    // Drain the opening group, then nothing changes for the waiting job.
    let _ = stream.next(LONG).await;
    let _ = stream.next(LONG).await;
    let stop = tokio::spawn(async move {
        // Long enough for one keep-alive (every 15 s).
        tokio::time::sleep(Duration::from_secs(17)).await;
        t.server.stop().await;
    });
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(e) = stream.next(Duration::from_secs(60)).await {
            assert_ne!(e.event, "result", "the waiting job stays queued: {e:?}");
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends when the server stops");
    assert!(stream.comments >= 1, "a keep-alive comment came");
    stop.await.unwrap();
    let _ = long;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_original_job_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let env = [("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1")];
    let server = Proc::start(data.path(), 1, &env).await;
    let send = |base: String, path: &'static str, key: &'static str, body: Value| {
        let http = http.clone();
        async move {
            let res = http
                .post(format!("{base}{path}"))
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let replayed = res.headers().get("idempotent-replayed").is_some();
            (status, replayed, res.json::<Value>().await.unwrap())
        }
    };
    let spec = quick_spec(None, 1.0);
    let (s, replayed, first) =
        send(server.base.clone(), "/api/jobs", "order-1", spec.clone()).await;
    assert_eq!((s, replayed), (202, false), "{first}");
    let job = first["jobId"].as_str().unwrap().to_string();
    // Same key, same body written with its keys in another order and other spacing: the same
    // job (the raw bytes differ; the JSON is equal).
    let raw = format!(
        "{{ \"scenes\" : {} ,\n  \"quality\": \"draft\", \"theme\":\"modern\" }}",
        spec["scenes"]
    );
    assert_eq!(serde_json::from_str::<Value>(&raw).unwrap(), spec);
    assert_ne!(raw, spec.to_string());
    let res = http
        .post(format!("{}/api/jobs", server.base))
        .header("idempotency-key", "order-1")
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let (s, replayed) = (
        res.status().as_u16(),
        res.headers().get("idempotent-replayed").is_some(),
    );
    let again: Value = res.json().await.unwrap();
    assert_eq!((s, replayed), (202, true), "{again}");
    assert_eq!(again["jobId"], job.as_str());
    // Same key, another body: 422 naming the job; a bad key: 400.
    let (s, _, conflict) = send(
        server.base.clone(),
        "/api/jobs",
        "order-1",
        quick_spec(None, 2.0),
    )
    .await;
    assert_eq!(s, 422, "{conflict}");
    assert_eq!(conflict["field"], "Idempotency-Key");
    assert_eq!(conflict["jobId"], job.as_str());
    let (s, _, bad) = send(server.base.clone(), "/api/jobs", "bad key", spec.clone()).await;
    assert_eq!(s, 400, "{bad}");
    assert_eq!(bad["field"], "Idempotency-Key");

    // After a SIGKILL and a restart the key still names the job, on the blocking endpoint too
    // (which waits for that job instead of rendering another).
    server.sigkill();
    let server = Proc::start(data.path(), 2, &env).await;
    let (s, replayed, after) =
        send(server.base.clone(), "/api/jobs", "order-1", spec.clone()).await;
    assert_eq!((s, replayed), (202, true), "{after}");
    assert_eq!(after["jobId"], job.as_str());
    let (s, _, blocking) = send(
        server.base.clone(),
        "/api/generate-flexible-video",
        "order-1",
        spec.clone(),
    )
    .await;
    assert_eq!(s, 200, "{blocking}");
    assert_eq!(blocking["jobId"], job.as_str());
    let list: Value = http
        .get(format!("{}/api/jobs", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        1,
        "one job in all: {list}"
    );
    server.sigkill();
}

/// `vidbuilder <args>` against `server`: exit code, stdout, stderr.
fn cli(server: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
        .args(args)
        .env("VIDBUILDER_SERVER", server)
        .env_remove("VIDBUILDER_API_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_submits_waits_downloads_and_cancels() {
    let data = tempfile::tempdir().unwrap();
    let server = Proc::start(
        data.path(),
        1,
        &[("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1")],
    )
    .await;
    let base = server.base.clone();
    let quick = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quick.json");
    let video = data.path().join("quick.mp4");
    let run = |args: Vec<String>| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&base, &args)
        })
    };
    let (code, id, err) = run(vec![
        "submit".into(),
        quick.into(),
        "--wait".into(),
        "--download".into(),
        video.display().to_string(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let id = id.lines().next().unwrap().to_string();
    assert_eq!(id.len(), 16, "the job id on stdout: {id}");
    let probe = crate::common::ffprobe(&video);
    assert!(probe.duration > 0.9, "{probe:?}");
    let (code, out, err) = run(vec!["status".into(), id.clone(), "--json".into()])
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["status"], "completed");

    // A long job: cancelled, `wait` reports the failure (1), a second cancel is refused (1).
    let long = data.path().join("long.json");
    std::fs::write(&long, long_spec("https://hooks.example.com/x").to_string()).unwrap();
    let (code, id, err) = run(vec!["submit".into(), long.display().to_string()])
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(vec!["cancel".into(), id.clone()]).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(vec!["wait".into(), id.clone()]).await.unwrap();
    assert_eq!(code, 1, "a cancelled job is a failure: {err}");
    assert!(err.contains("cancel"), "{err}");
    let (code, _, err) = run(vec!["cancel".into(), id.clone()]).await.unwrap();
    assert_eq!(code, 1, "already finished: {err}");
    // Unknown jobs and unreachable servers are errors of their own (2).
    let (code, _, _) = run(vec!["status".into(), "0123456789abcdef".into()])
        .await
        .unwrap();
    assert_eq!(code, 2);
    let (code, _, _) =
        tokio::task::spawn_blocking(|| cli("http://127.0.0.1:9", &["status", "0123456789abcdef"]))
            .await
            .unwrap();
    assert_eq!(code, 2);
    server.sigkill();
}
