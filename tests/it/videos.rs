//! Video clips through the server: a `video` scene from the assets directory and a video
//! background fetched from a loopback HTTP server render into one MP4 with the clip's sound;
//! every kind of bad source is a `400` naming its field at submission (and creates nothing), or
//! fails the job naming the field when only the fetch can tell.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

/// A `secs` long 320×240 clip of ffmpeg's test pattern, with a 440 Hz tone when `sound`.
fn make_clip(path: &std::path::Path, secs: f64, sound: bool) {
    let mut cmd = std::process::Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=320x240:r=25:d={secs}"));
    if sound {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate=48000:d={secs}"))
            .args(["-c:a", "aac", "-shortest"]);
    }
    let out = cmd
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn jobs_total(t: &TestServer) -> usize {
    let (code, body) = t.get_json("/api/jobs?limit=100").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["jobs"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_from_assets_and_urls_render_and_bad_sources_are_named() {
    use axum::routing::get;
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served.webm.mp4");
    make_clip(&served, 2.0, false);
    let clip_bytes = std::fs::read(&served).unwrap();
    let app = axum::Router::new()
        .route(
            "/bg.mp4",
            get(move || {
                let body = clip_bytes.clone();
                async move { ([("content-type", "video/mp4")], body) }
            }),
        )
        .route(
            "/fake.mp4",
            get(|| async { ([("content-type", "video/mp4")], "not a video at all") }),
        )
        .route(
            "/page.mp4",
            get(|| async { ([("content-type", "text/html")], "<html></html>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let t = start_server(&[]).await;
    let assets = t.data.path().join("assets").join("clips");
    std::fs::create_dir_all(&assets).unwrap();
    make_clip(&assets.join("talk.mp4"), 3.0, true);
    std::fs::write(assets.join("notes.mp4"), "just text").unwrap();
    std::fs::write(assets.join("notes.ttf"), "just text").unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:d=1",
            "-c:a",
            "aac",
        ])
        .arg(assets.join("voice.m4a"))
        .output()
        .unwrap();
    assert!(out.status.success());

    let spec = json!({
        "quality": "draft", "fps": 25, "generateReels": true, "font": "Noto Sans",
        "music": {"trackId": "corp-1", "volume": 0.3, "duck": true},
        "scenes": [
            {"type": "video", "duration": 1.5,
             "content": {"src": "clips/talk.mp4", "trim": {"start": 0.5, "end": 2.5},
                         "fit": "contain", "volume": 0.8, "caption": "From the assets"},
             "transition": "fade"},
            {"type": "hero-title", "duration": 1.5, "content": {"title": "Over a **clip**"},
             "background": {"video": format!("http://{addr}/bg.mp4"), "dim": 0.4, "loop": true},
             "audio": {"src": "clips/voice.m4a", "offset": 0.2, "volume": 0.9}}
        ]
    });
    let (status, _, body) = t.post("/api/generate-flexible-video", &spec).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job_id = body["jobId"].as_str().unwrap();
    for (url, size) in [
        (body["videoUrl"].as_str().unwrap(), (640, 360)),
        (body["reelsUrl"].as_str().unwrap(), (1080, 1920)),
    ] {
        let p = t
            .download_probe(url, &format!("{job_id}-{}.mp4", size.1))
            .await;
        assert_eq!((p.width, p.height), size);
        assert!((p.duration - 3.0).abs() < 0.1, "{p:?}");
        assert_eq!(
            p.audio_codec.as_deref(),
            Some("aac"),
            "music and the clip's sound"
        );
    }

    // Refused at submission, naming the field; nothing is created.
    let before = jobs_total(&t).await;
    let scene = |content: Value| json!({"quality": "draft", "scenes": [{"type": "video", "duration": 1, "content": content}]});
    let cases = [
        (
            scene(json!({"src": "clips/missing.mp4"})),
            "scenes[0].content.src",
            "no such file",
        ),
        (
            scene(json!({"src": "clips/notes.mp4"})),
            "scenes[0].content.src",
            "cannot be used",
        ),
        (
            scene(json!({"src": "clips/talk.mp4", "trim": {"start": 9}})),
            "scenes[0].content.trim.start",
            "past the end",
        ),
        (
            scene(json!({"src": "clips/talk.png"})),
            "scenes[0].content.src",
            "video file",
        ),
        (
            scene(json!({"src": "../talk.mp4"})),
            "scenes[0].content.src",
            "relative path",
        ),
        (
            scene(json!({"src": "http://10.1.2.3/a.mp4"})),
            "scenes[0].content.src",
            "internal addresses",
        ),
        (
            scene(json!({"src": "clips/talk.mp4", "speed": 10})),
            "scenes[0].content.speed",
            "from 0.25 to 4",
        ),
        (
            json!({"quality": "draft", "scenes": [{"type": "text", "duration": 1, "content": {"body": "b"},
                   "background": {"video": "clips/notes.mp4"}}]}),
            "scenes[0].background.video",
            "cannot be used",
        ),
        (
            json!({"quality": "draft", "scenes": [{"type": "text", "duration": 1, "content": {"body": "b"},
                   "audio": {"src": "clips/silence.mp3"}}]}),
            "scenes[0].audio.src",
            "no such file",
        ),
        (
            json!({"quality": "draft", "scenes": [{"type": "text", "duration": 1, "content": {"body": "b"},
                   "audio": {"src": "clips/voice.m4a", "offset": 1}}]}),
            "scenes[0].audio.offset",
            "less than the scene's duration",
        ),
        (
            json!({"quality": "draft", "font": "Comic Sans",
                   "scenes": [{"type": "text", "duration": 1, "content": {"body": "b"}}]}),
            "font",
            "unknown font family 'Comic Sans'",
        ),
        (
            json!({"quality": "draft", "font": "Brand", "fonts": [{"family": "Brand", "src": "clips/notes.ttf"}],
                   "scenes": [{"type": "text", "duration": 1, "content": {"body": "b"}}]}),
            "fonts[0].src",
            "not a TrueType or OpenType font",
        ),
        (
            json!({"quality": "draft", "music": {"trackId": "corp-1", "duck": 3},
                   "scenes": [{"type": "text", "duration": 1, "content": {"body": "b"}}]}),
            "music.duck",
            "from 0 to 1",
        ),
    ];
    for (mut spec, field, says) in cases {
        spec["webhookUrl"] = json!("http://127.0.0.1:9/never-called");
        let (status, _, body) = t.post("/api/generate-video-async", &spec).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        assert_eq!(body["field"], field, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    assert_eq!(jobs_total(&t).await, before, "refused specs create nothing");

    // Only the fetch can tell: the job fails, naming the field.
    for (path, says) in [("fake.mp4", "cannot be used"), ("page.mp4", "content type")] {
        let spec = scene(json!({"src": format!("http://{addr}/{path}")}));
        let (status, _, body) = t.post("/api/generate-flexible-video", &spec).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("scenes[0].content.src") && error.contains(says),
            "{error}"
        );
    }
    t.server.stop().await;
}
