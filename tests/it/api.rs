//! The contract end to end: a real server, real ffmpeg, real HTTP webhook receivers.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

const LONG: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_example_end_to_end() {
    let receiver = Receiver::start().await;
    let t = start_server(&[]).await;

    let (status, headers, body) = t
        .post(
            "/api/generate-video-async",
            &contract_example(&receiver.url("hook")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job_id = body["jobId"].as_str().unwrap().to_string();
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "queued");
    assert_eq!(
        body["message"],
        "Video generation started. You will receive updates via webhook."
    );
    assert_eq!(body["webhookConfigured"], true);
    assert_eq!(body["statusUrl"], format!("/api/job-status/{job_id}"));
    assert_eq!(body["estimatedTime"], "3-15 minutes");
    assert_eq!(
        headers["location"],
        format!("/api/job-status/{job_id}").as_str()
    );

    // Watch the status over the job's life: processing with frame counts, progress never back.
    let mut saw_rendering = false;
    let mut last = 0;
    let deadline = std::time::Instant::now() + LONG;
    let done = loop {
        let (code, v) = t.get_json(&format!("/api/job-status/{job_id}")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(v["jobId"], job_id.as_str());
        assert!(v["createdAt"].as_str().unwrap().ends_with('Z'));
        let p = v["progress"].as_u64().unwrap();
        assert!(p >= last && p <= 100, "progress {last} -> {p}");
        last = p;
        let msg = v["message"].as_str().unwrap();
        if v["status"] == "processing"
            && msg.starts_with("Rendering frames: ")
            && msg.ends_with("/120")
        {
            saw_rendering = true;
        }
        if matches!(v["status"].as_str(), Some("completed" | "failed")) {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job did not finish: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert!(saw_rendering, "never saw 'Rendering frames: N/120'");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["videoUrl"], format!("/api/download/{job_id}"));
    assert_eq!(done["duration"], 4.0);
    assert!(done["renderTime"].as_str().unwrap().ends_with('s'));

    // Exactly one `started`, then one `completed`, with the contract's fields.
    let hooks = receiver.wait_for("hook", 2, LONG).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks_after = receiver.got("hook");
    assert_eq!(hooks_after.len(), 2, "{hooks_after:?}");
    let started = &hooks[0].body;
    assert_eq!(started["jobId"], job_id.as_str());
    assert_eq!(started["status"], "started");
    assert_eq!(started["message"], "Video generation started");
    assert!(started["timestamp"].as_str().unwrap().ends_with('Z'));
    let completed = &hooks[1].body;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["progress"], 100);
    assert_eq!(completed["message"], "Video generated successfully");
    assert_eq!(completed["videoUrl"], format!("/api/download/{job_id}"));
    assert_eq!(completed["duration"], 4.0);
    assert_eq!(completed["scenes"], 1);
    assert_eq!(completed["reelsGenerated"], false);
    assert_eq!(completed["s3Upload"], json!({"enabled": false}));
    assert!(completed["renderTime"].as_str().unwrap().ends_with('s'));
    assert_eq!(hooks[0].headers["content-type"], "application/json");
    assert_eq!(
        hooks[0].headers["webhook-id"],
        format!("msg_{job_id}_started")
    );
    assert_eq!(
        hooks[1].headers["webhook-id"],
        format!("msg_{job_id}_completed")
    );

    // Download it and look inside.
    let res = t
        .http
        .get(format!("{}/api/download/{job_id}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "video/mp4");
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"{job_id}.mp4\"").as_str()
    );
    let bytes = res.bytes().await.unwrap();
    let file = t.data.path().join("downloaded.mp4");
    std::fs::write(&file, &bytes).unwrap();
    let probe = ffprobe(&file);
    assert_eq!((probe.width, probe.height), (3840, 2160));
    assert_eq!(probe.video_codec, "h264");
    assert_eq!(probe.pix_fmt, "yuv420p");
    assert_eq!(probe.audio_codec.as_deref(), Some("aac"));
    assert!(
        (probe.duration - 4.0).abs() < 0.1,
        "duration {}",
        probe.duration
    );
    assert!((probe.fps - 30.0).abs() < 0.01);

    // HTTP Range.
    let res = t
        .http
        .get(format!("{}/api/download/{job_id}", t.base))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 0-99/{}", bytes.len()).as_str()
    );
    assert_eq!(res.bytes().await.unwrap(), bytes.slice(0..100));
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_endpoint_answers_with_the_completed_fields() {
    let t = start_server(&[]).await;
    let mut spec = quick_spec(None, 1.5);
    spec["quality"] = json!("720p");
    spec["generateReels"] = json!(true);
    let (status, _, body) = t.post("/api/generate-flexible-video", &spec).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["progress"], 100);
    assert_eq!(body["duration"], 1.5);
    assert_eq!(body["scenes"], 1);
    assert_eq!(body["reelsGenerated"], true);
    assert_eq!(body["s3Upload"]["enabled"], false);
    let job_id = body["jobId"].as_str().unwrap();
    for (url, size) in [
        (body["videoUrl"].as_str().unwrap(), (1280, 720)),
        (body["reelsUrl"].as_str().unwrap(), (1080, 1920)),
    ] {
        let p = t
            .download_probe(url, &format!("{job_id}-{}.mp4", size.0))
            .await;
        assert_eq!((p.width, p.height), size);
        assert!((p.duration - 1.5).abs() < 0.1, "{p:?}");
        assert_eq!(p.audio_codec, None, "no music asked, no audio stream");
    }
    // A poster frame of each, as JPEG, at the video's size.
    assert_eq!(body["posterUrl"], format!("/api/download/{job_id}/poster"));
    for (url, size) in [
        (format!("/api/download/{job_id}/poster"), (1280, 720)),
        (format!("/api/download/{job_id}/reel/poster"), (1080, 1920)),
    ] {
        let res = t.http.get(format!("{}{url}", t.base)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{url}");
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        let bytes = res.bytes().await.unwrap();
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((img.width(), img.height()), size, "{url}");
    }
    let (code, status) = t.get_json(&format!("/api/job-status/{job_id}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["posterUrl"], body["posterUrl"]);
    // Health reads the counts the JobManager published, without asking it.
    let (_, health) = t.get_json("/api/health").await;
    assert_eq!(health["jobs"]["total"], 1, "{health}");
    assert_eq!(health["jobs"]["running"], 0, "{health}");
    assert_eq!(health["jobs"]["queued"], 0, "{health}");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_gets_the_third_attempt_on_schedule() {
    let receiver = Receiver::start().await;
    receiver.script("flaky", &[500, 503]);
    let t = start_server(&[("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1,2,3")]).await;
    let (status, _, body) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("flaky")), 1.0),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job_id = body["jobId"].as_str().unwrap();
    let got = receiver.wait_for("flaky", 4, LONG).await;
    let started: Vec<_> = got
        .iter()
        .filter(|r| r.body["status"] == "started")
        .collect();
    assert_eq!(
        started.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![500, 503, 200]
    );
    assert!(started[1].at - started[0].at >= Duration::from_secs(1));
    assert!(started[2].at - started[1].at >= Duration::from_secs(2));
    assert_eq!(
        started[0].raw, started[2].raw,
        "identical body on every attempt"
    );
    assert_eq!(
        started[0].headers["webhook-id"],
        started[2].headers["webhook-id"]
    );
    let completed: Vec<_> = got
        .iter()
        .filter(|r| r.body["status"] == "completed")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].body["jobId"], job_id);
    assert!(
        completed[0].at > started[2].at,
        "completed is sent after started landed"
    );
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_delays_nobody_else() {
    let receiver = Receiver::start().await;
    receiver.hold("slow");
    let t = start_server(&[("VIDBUILDER_WEBHOOK_TIMEOUT_SECS", "60")]).await;
    let (s1, _, _) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("slow")), 0.5),
        )
        .await;
    let (s2, _, fast) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("fast")), 0.5),
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    // The slow receiver is still holding its first request while the other job's two webhooks land.
    let fast_hooks = receiver.wait_for("fast", 2, LONG).await;
    assert_eq!(fast_hooks[1].body["status"], "completed");
    assert_eq!(fast_hooks[1].body["jobId"], fast["jobId"]);
    assert!(
        receiver.got("slow").is_empty(),
        "the slow receiver has answered nothing yet"
    );
    receiver.release();
    let slow_hooks = receiver.wait_for("slow", 2, LONG).await;
    assert_eq!(
        slow_hooks
            .iter()
            .map(|r| r.body["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["started", "completed"]
    );
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_failure_ends_failed_with_its_webhook() {
    // An ffmpeg that passes the start-up check but dies when asked to encode.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("ffmpeg");
    std::fs::write(&fake, "#!/bin/sh\ncase \"$*\" in *-version*|*-encoders*|*-hide_banner*-h*) exec ffmpeg \"$@\";; esac\necho 'simulated encoder crash' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let receiver = Receiver::start().await;
    let t = start_server(&[("VIDBUILDER_RENDER_FFMPEG", fake.to_str().unwrap())]).await;
    let (status, _, body) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("h")), 1.0),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job_id = body["jobId"].as_str().unwrap();
    let done = t.wait_terminal(job_id, LONG).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("Failed to render video"), "{error}");
    let hooks = receiver.wait_for("h", 2, LONG).await;
    assert_eq!(hooks[1].body["status"], "failed");
    assert_eq!(hooks[1].body["error"], error);
    let (code, body) = t.get_json(&format!("/api/download/{job_id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    // The server still works afterwards.
    let (code, health) = t.get_json("/api/health").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_creates_nothing() {
    let t = start_server(&[("VIDBUILDER_MAX_BODY_BYTES", "20000")]).await;
    let hook = "https://example.com/hook";
    let scene = json!({"type": "hero-title", "duration": 2, "content": {"title": "Hi"}});

    // The contract's two webhook errors, exactly.
    let (code, _, body) = t
        .post("/api/generate-video-async", &json!({"scenes": [scene]}))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "Webhook URL is required for async video generation."
    );
    assert_eq!(
        body["message"],
        "Please provide a webhookUrl in your request body to receive status updates."
    );
    assert_eq!(
        body["hint"],
        "Use /api/generate-flexible-video for synchronous generation without webhooks."
    );
    for bad in [
        json!("invalid-url"),
        json!("ftp://example.com/x"),
        json!("http://"),
        json!("javascript:alert(1)"),
        json!(42),
    ] {
        let (code, _, body) = t
            .post(
                "/api/generate-video-async",
                &json!({"webhookUrl": bad, "scenes": [scene]}),
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "Invalid webhook URL format.");
        assert_eq!(body["message"], "Please provide a valid HTTP/HTTPS URL.");
        assert_eq!(body["receivedUrl"], bad);
    }

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "nope", "duration": 2, "content": {"title": "x"}}]}),
            "scenes[0].type",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 2, "content": {"title": ""}}]}),
            "scenes[0].content.title",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 2, "content": {}}]}),
            "scenes[0].content.title",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 0, "content": {"title": "x"}}]}),
            "scenes[0].duration",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 86400, "content": {"title": "x"}}]}),
            "scenes[0].duration",
        ),
        (
            json!({"webhookUrl": hook, "theme": "baroque", "scenes": [scene]}),
            "theme",
        ),
        (
            json!({"webhookUrl": hook, "quality": "16k", "scenes": [scene]}),
            "quality",
        ),
        (
            json!({"webhookUrl": hook, "music": {"trackId": "nope"}, "scenes": [scene]}),
            "music.trackId",
        ),
        (
            json!({"webhookUrl": hook, "music": {"trackId": "corp-1", "volume": 2}, "scenes": [scene]}),
            "music.volume",
        ),
        (
            json!({"webhookUrl": hook, "scenes": vec![scene.clone(); 51]}),
            "scenes",
        ),
        (json!({"webhookUrl": hook, "scenes": []}), "scenes"),
        // Images: never a path outside the assets directory, never an internal address.
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "image", "duration": 2, "content": {"src": "../../etc/passwd.png"}}]}),
            "scenes[0].content.src",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "image", "duration": 2, "content": {"src": "/etc/hosts.png"}}]}),
            "scenes[0].content.src",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [scene, {"type": "split", "duration": 2, "content": {"heading": "x", "image": "http://169.254.169.254/latest/a.png"}}]}),
            "scenes[1].content.image",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "image", "duration": 2, "content": {"src": "http://0xa9fea9fe/a.png"}}]}),
            "scenes[0].content.src",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 2, "content": {"title": "x"}, "background": {"image": "http://[::ffff:10.0.0.1]/bg.jpg"}}]}),
            "scenes[0].background.image",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 2, "content": {"title": "x"}, "transition": "spin"}]}),
            "scenes[0].transition",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "hero-title", "duration": 2, "content": {"title": "x"}, "background": "#12345"}]}),
            "scenes[0].background",
        ),
        (
            json!({"webhookUrl": hook, "scenes": [{"type": "stats", "duration": 2, "content": {"stats": [{"value": "ten", "label": "x"}]}}]}),
            "scenes[0].content.stats[0].value",
        ),
        (
            json!({"webhookUrl": hook, "frameRate": "vfr", "scenes": [scene]}),
            "frameRate",
        ),
        // A watermark's image follows the scene images' rules.
        (
            json!({"webhookUrl": hook, "watermark": {"src": "../secret.png"}, "scenes": [scene]}),
            "watermark.src",
        ),
        (
            json!({"webhookUrl": hook, "watermark": {"src": "http://169.254.169.254/logo.png"}, "scenes": [scene]}),
            "watermark.src",
        ),
        (
            json!({"webhookUrl": hook, "watermark": {"src": "logo.png", "position": "middle"}, "scenes": [scene]}),
            "watermark.position",
        ),
        (
            json!({"webhookUrl": hook, "watermark": {"src": "logo.png", "opacity": 3}, "scenes": [scene]}),
            "watermark.opacity",
        ),
    ];
    for (body, field) in cases {
        for endpoint in ["/api/generate-video-async", "/api/generate-flexible-video"] {
            let (code, _, answer) = t.post(endpoint, &body).await;
            assert_eq!(
                code,
                StatusCode::BAD_REQUEST,
                "{endpoint} {body} -> {answer}"
            );
            assert_eq!(answer["field"], field, "{answer}");
            assert_eq!(answer["error"], "Invalid video spec.");
            assert!(
                answer["message"].as_str().unwrap().contains(field),
                "{answer}"
            );
        }
    }

    // Malformed JSON, wrong content type, a body too large: JSON errors too.
    let raw = |body: &'static str, ct: &'static str| {
        t.http
            .post(format!("{}/api/generate-video-async", t.base))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let res = raw("{\"webhookUrl\": ", "application/json").await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["error"].as_str(), v["field"].as_str()),
        (Some("Malformed JSON."), Some("body"))
    );
    let res = raw("webhookUrl=x", "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "body");
    let huge = json!({"webhookUrl": hook, "scenes": [scene], "padding": "x".repeat(30_000)});
    let (code, _, v) = t.post("/api/generate-video-async", &huge).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"], "Request body too large.");

    // Nesting deeper than the limit is refused before it is parsed.
    let deep = format!(
        "{{\"webhookUrl\": \"{hook}\", \"x\": {}1{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    let res = t
        .http
        .post(format!("{}/api/generate-video-async", t.base))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "Request body nested too deeply.");
    assert_eq!(v["field"], "body");

    // Unknown job ids.
    for id in ["abc123def4567890", "..%2F..%2Fetc%2Fpasswd", "ZZZ"] {
        let (code, v) = t.get_json(&format!("/api/job-status/{id}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(v["error"], "Job not found.");
        let (code, _) = t.get_json(&format!("/api/download/{id}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }

    // None of that created a job.
    let (_, health) = t.get_json("/api/health").await;
    assert_eq!(health["jobs"]["total"], 0, "{health}");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_show_their_position_and_download_waits_for_completion() {
    let receiver = Receiver::start().await;
    let t = start_server(&[("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1")]).await;
    let first = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("a")), 3.0),
        )
        .await
        .2;
    let second = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("b")), 0.5),
        )
        .await
        .2;
    let second_id = second["jobId"].as_str().unwrap();
    assert_eq!(
        second["queuePosition"], 1,
        "the first job is already rendering"
    );
    let (_, v) = t.get_json(&format!("/api/job-status/{second_id}")).await;
    if v["status"] == "queued" {
        assert_eq!(v["queuePosition"], 1, "{v}");
    }
    let (code, body) = t.get_json(&format!("/api/download/{second_id}")).await;
    if body["status"] != "completed" {
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "Video not available.");
    }
    for id in [first["jobId"].as_str().unwrap(), second_id] {
        assert_eq!(t.wait_terminal(id, LONG).await["status"], "completed");
    }
    let res = t
        .http
        .get(format!("{}/api/download/{second_id}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_expire_after_retention_with_410_and_their_files_removed() {
    // 0.0005 h = 1.8 s.
    let t = start_server(&[("VIDBUILDER_RETENTION_HOURS", "0.0005")]).await;
    let (code, _, body) = t
        .post("/api/generate-flexible-video", &quick_spec(None, 0.5))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    let file = t.data.path().join("videos").join(format!("{id}.mp4"));
    assert!(file.exists());
    let gone = poll(Duration::from_secs(60), "the job to expire", || async {
        let (code, v) = t.get_json(&format!("/api/job-status/{id}")).await;
        (code == StatusCode::GONE).then_some(v)
    })
    .await;
    assert_eq!(gone["error"], "Job expired.");
    let (code, _) = t.get_json(&format!("/api/download/{id}")).await;
    assert_eq!(code, StatusCode::GONE);
    assert!(!file.exists(), "the file was removed");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_key_and_cors_only_when_configured() {
    use reqwest::Method;
    let t = start_server(&[
        ("VIDBUILDER_AUTH_API_KEYS", "alice-key,bob-key"),
        ("VIDBUILDER_AUTH_RATE_LIMIT_PER_MINUTE", "60"),
        ("VIDBUILDER_AUTH_RATE_LIMIT_BURST", "3"),
        ("VIDBUILDER_CORS_ORIGINS", "https://studio.example.com"),
    ])
    .await;
    for _ in 0..3 {
        let (status, _, v) = t
            .call(Method::GET, "/api/themes", None, Some("alice-key"))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (status, headers, v) = t
        .call(Method::GET, "/api/themes", None, Some("alice-key"))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"], "Rate limit exceeded.");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Bob has his own allowance; health is never limited.
    let (status, _, _) = t
        .call(Method::GET, "/api/themes", None, Some("bob-key"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = t.call(Method::GET, "/api/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // Alice's bucket refills (one request per second at 60/min): poll until it does.
    poll(
        Duration::from_secs(10),
        "alice's bucket to refill",
        || async {
            let (s, _, _) = t
                .call(Method::GET, "/api/themes", None, Some("alice-key"))
                .await;
            (s == StatusCode::OK).then_some(())
        },
    )
    .await;

    // CORS: the configured origin is allowed (preflight without a key), another is not.
    let preflight = |origin: &'static str| {
        t.http
            .request(
                Method::OPTIONS,
                format!("{}/api/generate-video-async", t.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let res = preflight("https://studio.example.com").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://studio.example.com"
    );
    let res = preflight("https://evil.example.net").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    t.server.stop().await;

    // Off by default: no CORS headers at all, and no limit.
    let t = start_server(&[]).await;
    let res = t
        .http
        .get(format!("{}/api/themes", t.base))
        .header("origin", "https://studio.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    t.server.stop().await;
}

/// A PNG of `w`×`h` in two colours (left and right halves).
fn two_tone_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            image::Rgb([220, 60, 40])
        } else {
            image::Rgb([30, 90, 200])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scene_type_renders_through_the_server_with_images_from_assets_and_urls() {
    use axum::routing::get;
    // An image server on loopback (allowlisted for tests, as webhooks are).
    let png = two_tone_png(400, 300);
    let served = png.clone();
    let app = axum::Router::new().route(
        "/photo.png",
        get(move || {
            let body = served.clone();
            async move { ([("content-type", "image/png")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let img_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let t = start_server(&[]).await;
    let assets = t.data.path().join("assets").join("brand");
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(assets.join("logo.png"), two_tone_png(240, 120)).unwrap();
    let photo = format!("http://{img_addr}/photo.png");
    let scenes = json!([
        {"type": "hero-title", "duration": 0.8, "content": {"title": "All **nine**", "subtitle": "scene types"}, "transition": "fade"},
        {"type": "text", "duration": 0.8, "content": {"heading": "Text", "body": "A paragraph with ==accent== words."}, "background": {"gradient": ["#112233", "#335577"], "angle": 90}, "transition": "slide"},
        {"type": "bullet-list", "duration": 0.8, "content": {"items": ["One", "Two", "Three"]}, "transition": {"type": "wipe", "duration": 0.3, "direction": "up"}},
        {"type": "stats", "duration": 0.8, "content": {"stats": [{"value": 1200, "label": "videos"}, {"value": 99.5, "suffix": "%", "label": "uptime"}]}, "transition": "zoom"},
        {"type": "quote", "duration": 0.8, "content": {"quote": "It just works.", "author": "Someone", "role": "CTO"}, "background": "#202020", "transition": "cut"},
        {"type": "image", "duration": 0.8, "content": {"src": photo, "caption": "From a URL"}},
        {"type": "split", "duration": 0.8, "content": {"heading": "Split", "body": "Text beside an asset", "image": "brand/logo.png", "imageSide": "left"}},
        {"type": "call-to-action", "duration": 0.8, "content": {"headline": "Try it", "button": "Start", "url": "example.com"}, "background": {"image": photo, "dim": 0.5}},
        {"type": "logo-outro", "duration": 0.8, "content": {"logo": "brand/logo.png", "tagline": "Thanks"}}
    ]);
    let spec = json!({
        "webhookUrl": null, "quality": "draft", "fps": 24, "generateReels": true,
        "music": {"trackId": "corp-1", "volume": 0.5}, "scenes": scenes
    });
    let (status, _, body) = t.post("/api/generate-flexible-video", &spec).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scenes"], 9);
    let job_id = body["jobId"].as_str().unwrap();
    for (url, size) in [
        (body["videoUrl"].as_str().unwrap(), (640, 360)),
        (body["reelsUrl"].as_str().unwrap(), (1080, 1920)),
    ] {
        let p = t
            .download_probe(url, &format!("{job_id}-{}.mp4", size.1))
            .await;
        assert_eq!((p.width, p.height), size);
        assert!((p.fps - 24.0).abs() < 0.01, "{p:?}");
        // The length is the sum of the scenes, transitions included.
        assert!((p.duration - 7.2).abs() < 0.1, "{p:?}");
        assert_eq!(p.audio_codec.as_deref(), Some("aac"));
    }

    // An asset path that escapes through a symlink, and an image URL that is not an image: the
    // job fails with a message naming the field, nothing crashes.
    std::os::unix::fs::symlink("/etc/hostname", assets.join("escape.png")).unwrap();
    for (content, field) in [
        (json!({"src": "brand/escape.png"}), "scenes[0].content.src"),
        (
            json!({"src": format!("http://{img_addr}/missing.png")}),
            "scenes[0].content.src",
        ),
    ] {
        let spec = json!({"quality": "draft", "scenes": [{"type": "image", "duration": 0.5, "content": content}]});
        let (status, _, body) = t.post("/api/generate-flexible-video", &spec).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["success"], false);
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(field), "{error}");
    }
    t.server.stop().await;
}

/// `captions` are burned in and served as a WebVTT sidecar at `/api/download/:jobId/captions`,
/// equal to the captions given; a job without captions answers 404 there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_are_served_as_a_webvtt_sidecar() {
    let t = start_server(&[]).await;
    let srt = "1\n00:00:00,200 --> 00:00:00,900\n<i>Hello</i> there\n\n2\n00:00:01,000 --> 00:00:01,400\nSecond line\n";
    let mut spec = quick_spec(None, 1.5);
    spec["captions"] = json!({ "srt": srt });
    let (status, _, body) = t.post("/api/generate-flexible-video", &spec).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job_id = body["jobId"].as_str().unwrap();
    let res = t
        .http
        .get(format!("{}/api/download/{job_id}/captions", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/vtt; charset=utf-8");
    assert_eq!(
        res.text().await.unwrap(),
        "WEBVTT\n\n1\n00:00:00.200 --> 00:00:00.900\nHello there\n\n2\n00:00:01.000 --> 00:00:01.400\nSecond line\n"
    );
    let plain = quick_spec(None, 1.0);
    let (status, _, body) = t.post("/api/generate-flexible-video", &plain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let other = body["jobId"].as_str().unwrap();
    let (code, answer) = t.get_json(&format!("/api/download/{other}/captions")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"], "No captions.");
    let (code, _) = t
        .get_json("/api/download/00000000-0000-4000-8000-000000000000/captions")
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // A cue past the video's end is a 400 naming the field, and nothing is created.
    let mut late = quick_spec(None, 1.0);
    late["captions"] = json!({"cues": [{"start": 2, "end": 3, "text": "too late"}]});
    let (code, _, answer) = t.post("/api/generate-flexible-video", &late).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "captions.cues[0].start");
    t.server.stop().await;
}
