//! Issue 13's hardening, tried from outside over real sockets: slow and greedy clients, the
//! blocking endpoint's own limits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::*;

/// A connection to `server` from the loopback address `from` (127.0.0.x: distinct clients).
async fn connect_from(from: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("binding a loopback source address");
    socket.connect(server).await.expect("connecting")
}

/// Reads until the server closes the connection; what it sent, or `None` if it was still open
/// after `limit`.
async fn read_until_closed(mut s: TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn health(t: &TestServer) -> Value {
    let (code, v) = t.get_json("/api/health").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_greedy_clients_are_cut_off_and_everyone_else_is_served() {
    let t = start_server(&[
        ("VIDBUILDER_HTTP_HEADER_TIMEOUT_SECS", "2"),
        ("VIDBUILDER_HTTP_BODY_TIMEOUT_SECS", "2"),
        ("VIDBUILDER_HTTP_MAX_CONNECTIONS", "600"),
        ("VIDBUILDER_HTTP_MAX_CONNECTIONS_PER_IP", "200"),
    ])
    .await;
    let addr = t.server.addr;

    // 300 connections from one client that never finish their headers: 200 are held (the
    // per-client cap), 100 are answered 503 and closed at once.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = connect_from([127, 0, 0, 2], addr).await;
        let _ = s
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(tokio::spawn(read_until_closed(s, Duration::from_secs(20))));
    }
    // A trickler: one more header byte every 300 ms, for far longer than the timeout.
    let trickler = tokio::spawn(async move {
        let mut s = connect_from([127, 0, 0, 7], addr).await;
        let opened = Instant::now();
        for b in
            b"GET /api/health HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".iter()
        {
            if s.write_all(&[*b]).await.is_err() {
                return Some(opened.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        None
    });

    // Meanwhile everyone else is served.
    let v = health(&t).await;
    assert_eq!(v["status"], "ok");
    let http = &v["http"];
    assert!(http["open"].as_u64().unwrap() <= 210, "{v}");

    let mut refused = 0;
    let mut timed_out = 0;
    for h in held {
        let answer = h
            .await
            .unwrap()
            .expect("every slow connection is closed well within 20 s");
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("Too many connections."), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            refused += 1;
        } else {
            timed_out += 1;
        }
    }
    assert_eq!((refused, timed_out), (100, 200));
    let trickled = trickler.await.unwrap();
    assert!(
        trickled.is_some(),
        "a connection trickling its headers was kept for the whole 21 s"
    );

    // A kept-alive connection that goes quiet after one answer is closed too.
    let mut s = connect_from([127, 0, 0, 3], addr).await;
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(s, Duration::from_secs(10))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A body that stops halfway: 408 with the JSON error, nothing created.
    let mut s = connect_from([127, 0, 0, 4], addr).await;
    s.write_all(
        b"POST /api/generate-video-async HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"theme\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(s, Duration::from_secs(10))
        .await
        .expect("a stalled body is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"error\":\"Request body too slow.\""),
        "{answer}"
    );
    assert!(answer.contains("\"field\":\"body\""), "{answer}");

    // The global cap: 600 open from three clients; the 601st (from a fourth) is refused, and
    // the server answers again as soon as they go.
    let mut greedy = Vec::new();
    for client in [[127, 0, 0, 8], [127, 0, 0, 9], [127, 0, 0, 10]] {
        for _ in 0..200 {
            greedy.push(connect_from(client, addr).await);
        }
    }
    // The server accepts in its own time: wait until it counts all 600.
    poll(Duration::from_secs(10), "600 connections open", || async {
        let s = connect_from([127, 0, 0, 11], addr).await;
        let answer = read_until_closed(s, Duration::from_millis(500)).await;
        answer.filter(|a| a.contains("as many connections open as it accepts"))
    })
    .await;
    drop(greedy);
    let v = poll(
        Duration::from_secs(10),
        "the server to answer again",
        || async {
            let res = t
                .http
                .get(format!("{}/api/health", t.base))
                .send()
                .await
                .ok()?;
            (res.status() == 200).then_some(())?;
            res.json::<Value>().await.ok()
        },
    )
    .await;
    assert!(v["http"]["refused"].as_u64().unwrap() >= 101, "{v}");
    assert_eq!(v["jobs"]["total"], 0, "nothing was created: {v}");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_endpoint_has_its_own_limits() {
    let t = start_server(&[
        ("VIDBUILDER_HTTP_MAX_BLOCKING_REQUESTS", "1"),
        ("VIDBUILDER_HTTP_BLOCKING_TIMEOUT_SECS", "1.5"),
    ])
    .await;
    // Long enough to be still rendering after 1.5 s on any machine.
    let mut spec = quick_spec(None, 40.0);
    spec["quality"] = serde_json::json!("720p");
    let first = {
        let (http, url, spec) = (t.http.clone(), t.base.clone(), spec.clone());
        tokio::spawn(async move {
            let res = http
                .post(format!("{url}/api/generate-flexible-video"))
                .json(&spec)
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        })
    };
    poll(
        Duration::from_secs(10),
        "the first job to exist",
        || async { (health(&t).await["jobs"]["total"] == 1).then_some(()) },
    )
    .await;
    // A second blocking request while the first waits: refused, nothing created.
    let (status, headers, body) = t.post("/api/generate-flexible-video", &spec).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "Too many waiting requests.");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(health(&t).await["jobs"]["total"], 1);
    // The async endpoint is not limited by it.
    let receiver = Receiver::start().await;
    let (status, _, body) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("h")), 0.5),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // The first waited its 1.5 s: 202 with the job to poll; the job goes on to completion.
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(
        body["status"] == "processing" || body["status"] == "queued",
        "{body}"
    );
    let job = body["jobId"].as_str().unwrap().to_string();
    assert_eq!(body["statusUrl"], format!("/api/job-status/{job}"));
    poll(Duration::from_secs(300), "the job to complete", || async {
        let (_, v) = t.get_json(&format!("/api/job-status/{job}")).await;
        (v["status"] == "completed").then_some(())
    })
    .await;
    // Its place was given back: a short blocking request is answered in full.
    let (status, _, body) = t
        .post("/api/generate-flexible-video", &quick_spec(None, 0.5))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed");
    t.server.stop().await;
}

/// A spec of `n` image scenes, each its own source `name(i)`.
fn image_spec(n: usize, quality: &str, name: impl Fn(usize) -> String, hook: &str) -> Value {
    let scenes: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "type": "image",
                "duration": 0.5,
                "content": {"src": name(i), "fit": "cover", "kenBurns": true}
            })
        })
        .collect();
    serde_json::json!({"theme": "modern", "quality": quality, "scenes": scenes, "webhookUrl": hook})
}

/// One solid 6000×6000 PNG (small on disk) reached through `n` names: `n` distinct sources.
fn huge_images(assets: &std::path::Path, n: usize) {
    std::fs::create_dir_all(assets).unwrap();
    let img = image::RgbaImage::from_pixel(6000, 6000, image::Rgba([30, 120, 200, 255]));
    img.save(assets.join("huge.png")).unwrap();
    for i in 0..n {
        std::os::unix::fs::symlink(
            assets.join("huge.png"),
            assets.join(format!("huge-{i}.png")),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_huge_images_renders_within_a_bounded_memory() {
    // Measured before: 16 such scenes took the server to 3.5 GB RSS (every image decoded at
    // full size at once and held for the whole render).
    let data = tempfile::tempdir().unwrap();
    huge_images(&data.path().join("assets"), 16);
    let receiver = Receiver::start().await;
    let p = crate::durability::Proc::start(data.path(), 0, &[]).await;
    let http = reqwest::Client::new();
    let spec = image_spec(16, "draft", |i| format!("huge-{i}.png"), &receiver.url("h"));
    let (code, _, v) = crate::durability::post(&http, &p.base, &spec).await;
    assert_eq!(code, 202, "{v}");
    let id = v["jobId"].as_str().unwrap().to_string();
    let done = poll(Duration::from_secs(300), "the job to finish", || async {
        let v = crate::durability::status(&http, &p.base, &id).await;
        matches!(v["status"].as_str(), Some("completed" | "failed")).then_some(v)
    })
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    let peak_mib = p.peak_rss_kib() / 1024;
    eprintln!("peak RSS with 16 images of 6000×6000: {peak_mib} MiB");
    // Two decodes at once (images.max_concurrent_decodes) of 144 MB each, everything kept at
    // draw size: far below the 3.5 GB of before.
    assert!(peak_mib < 1024, "peak RSS {peak_mib} MiB");
    p.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_images_and_work_are_bounded_as_a_whole() {
    let receiver = Receiver::start().await;
    let t = start_server(&[("VIDBUILDER_IMAGES_MAX_PIXELS_PER_JOB", "5000000")]).await;
    huge_images(&t.data.path().join("assets"), 3);
    // At 1080p each image is kept at 2112×2112 (4.5 MP): the second crosses the 5 MP budget.
    let spec = image_spec(3, "1080p", |i| format!("huge-{i}.png"), &receiver.url("h"));
    let (status, _, v) = t.post("/api/generate-video-async", &spec).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let id = v["jobId"].as_str().unwrap().to_string();
    let done = poll(Duration::from_secs(120), "the job to fail", || async {
        let (_, v) = t.get_json(&format!("/api/job-status/{id}")).await;
        (v["status"] == "failed").then_some(v)
    })
    .await;
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("images.max_pixels_per_job"), "{error}");
    assert!(error.contains("scenes["), "names the image: {error}");
    let hooks = receiver.wait_for("h", 2, Duration::from_secs(60)).await;
    assert_eq!(hooks[1].body["status"], "failed");

    // Work known at submission: 600 s of 4k30 is refused with a 400 naming the field.
    let mut spec = quick_spec(Some(&receiver.url("h")), 60.0);
    spec["quality"] = "4k".into();
    let scene = spec["scenes"][0].clone();
    spec["scenes"] = Value::Array(vec![scene; 10]);
    let (status, _, v) = t.post("/api/generate-video-async", &spec).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "quality", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("megapixel-frames"),
        "{v}"
    );
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_cannot_fill_the_queue_and_keys_take_turns() {
    let receiver = Receiver::start().await;
    let t = start_server(&[
        ("VIDBUILDER_AUTH_API_KEYS", "alice-key,bob-key"),
        ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1"),
        ("VIDBUILDER_AUTH_MAX_QUEUED_PER_KEY", "2"),
    ])
    .await;
    let submit = |spec: Value, key: &'static str| {
        let t = &t;
        async move {
            t.call(
                reqwest::Method::POST,
                "/api/generate-video-async",
                Some(&spec),
                Some(key),
            )
            .await
        }
    };
    let hook = receiver.url("h");
    let status_of = |id: String, key: &'static str| {
        let t = &t;
        async move {
            t.call(
                reqwest::Method::GET,
                &format!("/api/job-status/{id}"),
                None,
                Some(key),
            )
            .await
            .2
        }
    };
    // Alice's first job renders long enough for the rest to queue behind it.
    let mut long = quick_spec(Some(&hook), 30.0);
    long["quality"] = "720p".into();
    let (status, _, v) = submit(long, "alice-key").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let first = v["jobId"].as_str().unwrap().to_string();
    poll(Duration::from_secs(60), "the first job to run", || async {
        (status_of(first.clone(), "alice-key").await["status"] == "processing").then_some(())
    })
    .await;
    let short = quick_spec(Some(&hook), 0.5);
    let mut alice = Vec::new();
    for _ in 0..2 {
        let (status, _, v) = submit(short.clone(), "alice-key").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        alice.push(v["jobId"].as_str().unwrap().to_string());
    }
    // Her quota is full: refused with Retry-After, nothing created.
    let (status, headers, v) = submit(short.clone(), "alice-key").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"], "Too many queued jobs for this key.");
    assert!(headers.contains_key("retry-after"));
    // Bob is not refused, and he is second in line, not third.
    let (status, _, v) = submit(short.clone(), "bob-key").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["queuePosition"], 2, "{v}");
    let bob = v["jobId"].as_str().unwrap().to_string();
    assert_eq!(
        status_of(alice[1].clone(), "alice-key").await["queuePosition"],
        3
    );
    // They start in that order: alice's, bob's, alice's.
    let mut started = Vec::new();
    for (id, key) in [
        (&alice[0], "alice-key"),
        (&bob, "bob-key"),
        (&alice[1], "alice-key"),
    ] {
        let v = poll(Duration::from_secs(300), "the job to finish", || async {
            let v = status_of(id.clone(), key).await;
            (v["status"] == "completed").then_some(v)
        })
        .await;
        started.push(v["startedAt"].as_str().unwrap().to_string());
    }
    assert!(
        started[0] <= started[1] && started[1] <= started[2],
        "{started:?}"
    );
    t.server.stop().await;
}

/// A tmpfs of `mib` MiB mounted at `at` for the test's life (unmounted on drop); `None` where
/// this machine does not allow mounting.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, mib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_renders_cleanly_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_fs) = Tmpfs::mount(&data, 48) else {
        eprintln!("SKIPPED: this machine does not allow mounting a tmpfs");
        return;
    };
    let receiver = Receiver::start().await;
    let hook = receiver.url("h");
    let http = reqwest::Client::new();
    // A failed render is final here, so what the full disk did is what the job shows (with
    // restarts, an attempt after space returned would simply succeed).
    let p =
        crate::durability::Proc::start(&data, 0, &[("VIDBUILDER_RENDER_MAX_RESTARTS", "0")]).await;
    let base = p.base.clone();
    let ready = |http: reqwest::Client, base: String| async move {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready(http.clone(), base.clone()).await, 200);

    // A long render is under way when the disk fills up.
    let mut long = quick_spec(Some(&hook), 60.0);
    long["quality"] = "1080p".into();
    let (code, _, v) = crate::durability::post(&http, &base, &long).await;
    assert_eq!(code, 202, "{v}");
    let id = v["jobId"].as_str().unwrap().to_string();
    poll(
        Duration::from_secs(60),
        "the render to be under way",
        || async {
            let v = crate::durability::status(&http, &base, &id).await;
            (v["progress"].as_u64().unwrap_or(0) > 5).then_some(())
        },
    )
    .await;
    let filler = data.join("filler");
    fill(&filler);

    // The render fails; the server keeps answering meanwhile.
    poll(Duration::from_secs(120), "the render to stop", || async {
        let res = http.get(format!("{base}/api/health")).send().await.ok()?;
        assert_eq!(res.status(), 200, "the server answers with a full disk");
        let v = crate::durability::status(&http, &base, &id).await;
        // Either the failure is stored and shown, or the store refuses it and holds it back
        // (the job still reads processing, and the server reports not ready).
        let held = ready(http.clone(), base.clone()).await == 503;
        (v["status"] == "failed" || held).then_some(())
    })
    .await;

    // Space returns: everything held is saved, the job is failed exactly once with a clear
    // error and its failed webhook, the server is ready and renders again.
    std::fs::remove_file(&filler).unwrap();
    let failed = poll(
        Duration::from_secs(60),
        "the failure to be stored",
        || async {
            let v = crate::durability::status(&http, &base, &id).await;
            (v["status"] == "failed").then_some(v)
        },
    )
    .await;
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.to_ascii_lowercase().contains("no space left"),
        "a clear error: {error}"
    );
    poll(
        Duration::from_secs(30),
        "the server to be ready",
        || async { (ready(http.clone(), base.clone()).await == 200).then_some(()) },
    )
    .await;
    let hooks = receiver.wait_for("h", 2, Duration::from_secs(60)).await;
    let statuses: Vec<_> = hooks.iter().map(|h| h.body["status"].clone()).collect();
    assert_eq!(statuses, vec![json!("started"), json!("failed")]);
    let (code, _, v) = crate::durability::post(&http, &base, &quick_spec(Some(&hook), 1.0)).await;
    assert_eq!(code, 202, "{v}");
    let next = v["jobId"].as_str().unwrap().to_string();
    poll(
        Duration::from_secs(120),
        "a new job to complete",
        || async {
            let v = crate::durability::status(&http, &base, &next).await;
            (v["status"] == "completed").then_some(())
        },
    )
    .await;

    // The database is consistent: a restart reads both jobs back as they were, none twice.
    p.sigkill();
    let p =
        crate::durability::Proc::start(&data, 1, &[("VIDBUILDER_RENDER_MAX_RESTARTS", "0")]).await;
    let v = crate::durability::status(&http, &p.base, &id).await;
    assert_eq!(v["status"], "failed", "{v}");
    let v = crate::durability::status(&http, &p.base, &next).await;
    assert_eq!(v["status"], "completed", "{v}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got("h").len(), 4, "no webhook was sent twice");
    p.sigkill();
}

/// Rounds of 50 jobs in the soak below.
const ROUNDS: usize = 6;

/// `GET /api/health` of the server at `base`.
async fn health_of(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The job store's files (database and WAL), in bytes.
fn db_bytes(data: &std::path::Path) -> u64 {
    ["vidbuilder.db", "vidbuilder.db-wal", "vidbuilder.db-shm"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_disk_stay_flat_over_many_jobs_past_retention() {
    let data = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let hook = receiver.url("h");
    let http = reqwest::Client::new();
    let env = [
        // 0.0003 h ≈ 1.1 s.
        ("VIDBUILDER_RETENTION_HOURS", "0.0003"),
        ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "2"),
    ];
    let p = crate::durability::Proc::start(data.path(), 0, &env).await;
    let mut figures = Vec::new();
    let mut an_old_id = String::new();
    for round in 0..ROUNDS {
        let mut ids = Vec::new();
        for _ in 0..50 {
            let (code, _, v) =
                crate::durability::post(&http, &p.base, &quick_spec(Some(&hook), 0.2)).await;
            assert_eq!(code, 202, "{v}");
            ids.push(v["jobId"].as_str().unwrap().to_string());
        }
        for id in &ids {
            poll(Duration::from_secs(300), "the job to expire", || async {
                let v = crate::durability::status(&http, &p.base, id).await;
                (v["error"] == "Job expired.").then_some(())
            })
            .await;
        }
        an_old_id = ids[0].clone();
        // Expired jobs have left memory.
        let health = health_of(&http, &p.base).await;
        assert_eq!(health["jobs"]["total"], 0, "round {round}: {health}");
        let files = std::fs::read_dir(data.path().join("videos"))
            .unwrap()
            .count();
        assert_eq!(files, 0, "round {round}: every file was removed");
        figures.push((p.rss_kib(), db_bytes(data.path())));
    }
    eprintln!("after each round of 50 expired jobs (RSS KiB, database bytes): {figures:?}");
    // The allocator warms up over the first rounds; after that, memory is flat.
    let (rss_warm, db1) = (figures[2].0, figures[0].1);
    let (rss_last, db_last) = figures[ROUNDS - 1];
    assert!(
        rss_last <= rss_warm + rss_warm / 10,
        "RSS grew from {rss_warm} to {rss_last} KiB after warm-up"
    );
    // What stays on disk is a tombstone per job (id, owner, times): under 1 KB each.
    let per_job = db_last.saturating_sub(db1) / (50 * (ROUNDS as u64 - 1));
    assert!(
        per_job < 1024,
        "the database grew {per_job} bytes per expired job"
    );
    // A restart does not read the tombstones back, and still answers 410 from them.
    p.sigkill();
    let p = crate::durability::Proc::start(data.path(), 1, &env).await;
    let health = health_of(&http, &p.base).await;
    assert_eq!(health["jobs"]["total"], 0, "{health}");
    let res = http
        .get(format!("{}/api/job-status/{an_old_id}", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    let res = http
        .get(format!("{}/api/job-status/00000000deadbeef", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    p.sigkill();
}
