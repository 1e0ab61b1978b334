//! `format` and `aspectRatios` through the server: one job renders every ratio, announces each
//! in `outputs` (job-status and the completed webhook), serves each with its own type and poster,
//! and with S3 on stores each under its own key (and redirects to it once the local copy is
//! gone); bad values are `400`s naming the field.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::s3::S3Server;
use crate::common::*;

const LONG: Duration = Duration::from_secs(240);

fn spec(webhook: Option<&str>, format: &str, ratios: Value) -> Value {
    let mut s = json!({
        "quality": "draft", "fps": 25, "format": format, "aspectRatios": ratios,
        "music": {"trackId": "corp-1", "volume": 0.3},
        "scenes": [
            {"type": "hero-title", "duration": 0.6, "content": {"title": "Every **shape**"}},
            {"type": "bullet-list", "duration": 0.6,
             "content": {"heading": "One spec", "items": ["16:9", "9:16", "1:1", "4:5"]}}
        ]
    });
    if let Some(w) = webhook {
        s["webhookUrl"] = json!(w);
    }
    s
}

/// GETs `url` (relative to the server), checks its content type, and probes what came back.
async fn fetch(t: &TestServer, url: &str, mime: &str, name: &str) -> Probe {
    let res = t.http.get(format!("{}{url}", t.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "GET {url}");
    assert_eq!(res.headers()["content-type"], mime, "GET {url}");
    let file = t.data.path().join(name);
    std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
    ffprobe(&file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ratio_is_rendered_announced_and_served_in_its_format() {
    let receiver = Receiver::start().await;
    let t = start_server(&[]).await;
    let body = spec(
        Some(&receiver.url("hook")),
        "webm",
        json!(["1:1", "16:9", "9:16", "4:5"]),
    );
    let (code, _, accepted) = t.post("/api/generate-video-async", &body).await;
    assert_eq!(code.as_u16(), 202, "{accepted}");
    let id = accepted["jobId"].as_str().unwrap().to_string();
    let done = t.wait_terminal(&id, LONG).await;
    assert_eq!(done["status"], "completed", "{done}");
    let outputs = done["outputs"].as_object().expect("outputs in job-status");
    let mut ratios: Vec<&str> = outputs.keys().map(String::as_str).collect();
    ratios.sort();
    assert_eq!(ratios, ["16:9", "1:1", "4:5", "9:16"]);
    assert_eq!(
        outputs["1:1"]["videoUrl"], done["videoUrl"],
        "the first ratio"
    );
    assert_eq!(
        outputs["9:16"]["videoUrl"], done["reelsUrl"],
        "a later 9:16 is the reel"
    );
    assert_eq!(done["reelsGenerated"], true);
    let hooks = receiver.wait_for("hook", 2, LONG).await;
    assert_eq!(hooks[1].body["status"], "completed");
    assert_eq!(
        hooks[1].body["outputs"], done["outputs"],
        "the webhook says the same"
    );

    for (ratio, size) in [
        ("1:1", (360u32, 360u32)),
        ("16:9", (640, 360)),
        ("9:16", (360, 640)),
        ("4:5", (360, 450)),
    ] {
        let o = &outputs[ratio];
        assert_eq!(
            (o["width"].as_u64(), o["height"].as_u64()),
            (Some(u64::from(size.0)), Some(u64::from(size.1)))
        );
        assert_eq!(o["format"], "webm");
        let slug = ratio.replace(':', "x");
        let p = fetch(
            &t,
            o["videoUrl"].as_str().unwrap(),
            "video/webm",
            &format!("{slug}.webm"),
        )
        .await;
        assert_eq!((p.width, p.height), size, "{ratio}");
        assert_eq!(p.video_codec, "vp9");
        assert_eq!(p.audio_codec.as_deref(), Some("opus"));
        assert!((p.duration - 1.2).abs() < 0.1, "{ratio}: {p:?}");
        // The same video under /outputs/:ratio, by slug and by ratio.
        let by_slug = fetch(
            &t,
            &format!("/api/download/{id}/outputs/{slug}"),
            "video/webm",
            "s.webm",
        )
        .await;
        assert_eq!((by_slug.width, by_slug.height), size);
        let poster = t
            .http
            .get(format!("{}{}", t.base, o["posterUrl"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(poster.status().as_u16(), 200, "{ratio} poster");
        assert_eq!(poster.headers()["content-type"], "image/jpeg");
        let jpeg = image::load_from_memory(&poster.bytes().await.unwrap()).unwrap();
        assert_eq!((jpeg.width(), jpeg.height()), size, "{ratio} poster size");
    }
    let res = t
        .http
        .get(format!("{}/api/download/{id}/outputs/1%3A1", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "1:1 spelled with its colon");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(disposition, format!("attachment; filename=\"{id}.webm\""));
    let (code, err) = t.get_json(&format!("/api/download/{id}/outputs/3x2")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("not an aspect ratio"),
        "{err}"
    );

    // A GIF from the blocking endpoint: silent, palettised, one ratio (16:9 by default).
    let (code, _, gif) = t
        .post(
            "/api/generate-flexible-video",
            &spec(None, "gif", Value::Null),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{gif}");
    let p = fetch(&t, gif["videoUrl"].as_str().unwrap(), "image/gif", "g.gif").await;
    assert_eq!(
        (p.width, p.height, p.video_codec.as_str()),
        (640, 360, "gif")
    );
    assert_eq!(p.audio_codec, None);
    assert_eq!(gif["outputs"].as_object().unwrap().len(), 1);
    let gid = gif["jobId"].as_str().unwrap();
    let (code, err) = t
        .get_json(&format!("/api/download/{gid}/outputs/4x5"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        err["message"].as_str().unwrap().contains("it has: 16:9"),
        "{err}"
    );
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_formats_and_ratios_are_named_and_change_nothing() {
    let t = start_server(&[]).await;
    let (_, before) = t.get_json("/api/jobs?limit=100").await;
    let hook = "http://127.0.0.1:9/hook";
    let long = |format: &str| {
        let mut s = spec(Some(hook), format, Value::Null);
        s["scenes"][0]["duration"] = json!(31);
        s
    };
    let mut variable = spec(Some(hook), "webm", Value::Null);
    variable["frameRate"] = json!("variable");
    let cases = [
        (
            spec(Some(hook), "avi", Value::Null),
            "format",
            "unknown format 'avi'",
        ),
        (
            spec(Some(hook), "mp4", json!([])),
            "aspectRatios",
            "at least one",
        ),
        (
            spec(Some(hook), "mp4", json!("1:1")),
            "aspectRatios",
            "must be an array",
        ),
        (
            spec(Some(hook), "mp4", json!(["1:1", "2:1"])),
            "aspectRatios[1]",
            "unknown aspect ratio '2:1'",
        ),
        (
            spec(Some(hook), "mp4", json!(["1:1", "1x1"])),
            "aspectRatios[1]",
            "listed twice",
        ),
        (long("gif"), "format", "a gif is for short videos"),
        (variable, "frameRate", "made for mp4"),
    ];
    for (body, field, words) in cases {
        let (code, _, err) = t.post("/api/generate-video-async", &body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["field"], field, "{err}");
        assert!(err["message"].as_str().unwrap().contains(words), "{err}");
    }
    // 31 s is fine as mp4.
    let (code, _, ok) = t.post("/api/generate-video-async", &long("mp4")).await;
    assert_eq!(code.as_u16(), 202, "{ok}");
    let (_, after) = t.get_json("/api/jobs?limit=100").await;
    assert_eq!(
        after["jobs"].as_array().unwrap().len(),
        before["jobs"].as_array().unwrap().len() + 1,
        "only the valid spec made a job"
    );
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_s3_each_ratio_has_its_own_key_and_redirect() {
    let s3 = S3Server::start("videos");
    let env: Vec<(String, String)> = s3.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.push(("VIDBUILDER_S3_DELETE_LOCAL_AFTER_UPLOAD", "true"));
    let t = start_server(&all).await;
    let (code, _, done) = t
        .post(
            "/api/generate-flexible-video",
            &spec(None, "mp4", json!(["16:9", "1:1", "9:16"])),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{done}");
    let id = done["jobId"].as_str().unwrap();
    let (_, status) = t.get_json(&format!("/api/job-status/{id}")).await;
    let day = &status["createdAt"].as_str().unwrap()[..10];
    let s3u = &done["s3Upload"];
    let outputs = &done["outputs"];
    assert_eq!(
        s3u["standard"]["s3Key"],
        format!("videos/{day}/standard/{id}.mp4")
    );
    assert_eq!(
        s3u["reels"]["s3Key"],
        format!("videos/{day}/reels/{id}.mp4")
    );
    assert_eq!(outputs["16:9"]["s3Key"], s3u["standard"]["s3Key"]);
    assert_eq!(outputs["9:16"]["s3Key"], s3u["reels"]["s3Key"]);
    assert_eq!(
        outputs["1:1"]["s3Key"],
        format!("videos/{day}/1x1/{id}.mp4")
    );
    assert!(
        outputs["1:1"].get("posterUrl").is_none(),
        "no local copy, no poster"
    );
    // The signed URL of the square video gives a square video.
    let signed = outputs["1:1"]["signedUrl"].as_str().unwrap();
    let res = reqwest::get(signed).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let file = t.data.path().join("square.mp4");
    std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
    let p = ffprobe(&file);
    assert_eq!((p.width, p.height), (360, 360));
    // Downloads redirect to a fresh signed URL of that very object.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (url, key) in [
        (
            outputs["1:1"]["videoUrl"].as_str().unwrap(),
            &outputs["1:1"]["s3Key"],
        ),
        (done["reelsUrl"].as_str().unwrap(), &s3u["reels"]["s3Key"]),
        (
            done["videoUrl"].as_str().unwrap(),
            &s3u["standard"]["s3Key"],
        ),
    ] {
        let res = no_redirects
            .get(format!("{}{url}", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 307, "{url}");
        let location = res.headers()["location"].to_str().unwrap();
        assert!(
            location.contains(key.as_str().unwrap()),
            "{url} → {location}"
        );
    }
    assert!(
        !t.data
            .path()
            .join("videos")
            .join(format!("{id}-1x1.mp4"))
            .exists(),
        "every local copy removed"
    );
    t.server.stop().await;
}
