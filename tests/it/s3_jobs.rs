//! Jobs with S3 on, end to end: real server, real ffmpeg, a real signature-checking S3 server
//! (`s3s-fs`) on loopback, real webhook receivers.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::s3::S3Server;
use crate::common::*;

const LONG: Duration = Duration::from_secs(240);

async fn server_with(s3: &S3Server, extra: &[(&str, &str)]) -> TestServer {
    let env: Vec<(String, String)> = s3.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    start_server(&all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_s3_on_uploads_both_videos_and_signs_urls_that_work() {
    let s3 = S3Server::start("videos");
    let receiver = Receiver::start().await;
    let t = server_with(&s3, &[]).await;
    let mut spec = quick_spec(Some(&receiver.url("s3")), 1.0);
    spec["generateReels"] = json!(true);
    let (code, _, body) = t.post("/api/generate-video-async", &spec).await;
    assert_eq!(code.as_u16(), 202, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    let done = t.wait_terminal(&id, LONG).await;
    assert_eq!(done["status"], "completed", "{done}");
    let day = &done["createdAt"].as_str().unwrap()[..10];
    let s3u = &done["s3Upload"];
    assert_eq!(s3u["enabled"], true);
    assert_eq!(
        s3u["standard"]["s3Key"],
        format!("videos/{day}/standard/{id}.mp4")
    );
    assert_eq!(
        s3u["reels"]["s3Key"],
        format!("videos/{day}/reels/{id}.mp4")
    );
    assert_eq!(s3u["standard"]["expiresIn"], "7 days");

    // The completed webhook carries the same block.
    let hooks = receiver.wait_for("s3", 2, LONG).await;
    assert_eq!(hooks[1].body["s3Upload"], *s3u);

    // The signed URL, fetched with a plain HTTP client, gives the very bytes we serve.
    let local = t
        .http
        .get(format!("{}/api/download/{id}", t.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let signed = s3u["standard"]["signedUrl"].as_str().unwrap();
    assert!(signed.contains("X-Amz-Expires=604800"), "{signed}");
    let res = reqwest::get(signed).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "video/mp4");
    let remote = res.bytes().await.unwrap();
    assert_eq!(Sha256::digest(&remote), Sha256::digest(&local));
    // A tampered signature is refused by the server.
    let at = signed.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &signed[at..at + 1] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &signed[..at], &signed[at + 1..]);
    assert_eq!(
        reqwest::get(&tampered).await.unwrap().status().as_u16(),
        403
    );
    let reel = reqwest::get(s3u["reels"]["signedUrl"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(reel.status().as_u16(), 200);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_local_copy_download_redirects_to_a_fresh_signed_url() {
    let s3 = S3Server::start("videos");
    let t = server_with(
        &s3,
        &[
            ("VIDBUILDER_S3_DELETE_LOCAL_AFTER_UPLOAD", "true"),
            ("VIDBUILDER_S3_PREFIX", "tenant-a"),
        ],
    )
    .await;
    let (code, _, body) = t
        .post("/api/generate-flexible-video", &quick_spec(None, 0.5))
        .await;
    assert_eq!(code.as_u16(), 200, "{body}");
    let id = body["jobId"].as_str().unwrap();
    assert!(body["s3Upload"]["standard"]["s3Key"]
        .as_str()
        .unwrap()
        .starts_with("tenant-a/videos/"));
    assert!(
        !t.data
            .path()
            .join("videos")
            .join(format!("{id}.mp4"))
            .exists(),
        "local copy deleted"
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(format!("{}/api/download/{id}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 307);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let bytes = reqwest::get(&location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let f = t.data.path().join("from-s3.mp4");
    std::fs::write(&f, bytes).unwrap();
    assert!((ffprobe(&f).duration - 0.5).abs() < 0.1);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_the_job_clearly_and_keep_the_local_file() {
    let s3 = S3Server::start("videos");
    let receiver = Receiver::start().await;
    let t = server_with(
        &s3,
        &[("VIDBUILDER_S3_SECRET_ACCESS_KEY", "not-the-secret")],
    )
    .await;
    let (_, _, body) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&receiver.url("bad")), 0.5),
        )
        .await;
    let id = body["jobId"].as_str().unwrap();
    let done = t.wait_terminal(id, LONG).await;
    assert_eq!(done["status"], "failed");
    let error = done["error"].as_str().unwrap();
    assert!(error.starts_with("Failed to upload to S3: "), "{error}");
    let hooks = receiver.wait_for("bad", 2, LONG).await;
    assert_eq!(hooks[1].body["status"], "failed");
    assert_eq!(hooks[1].body["error"], error);
    // Never a completed webhook with a dead link; the local file stays downloadable.
    assert!(receiver
        .got("bad")
        .iter()
        .all(|r| r.body["status"] != "completed"));
    let res = t
        .http
        .get(format!("{}/api/download/{id}", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_within_the_retry_window_still_completes() {
    let mut s3 = S3Server::start("videos");
    let t = server_with(
        &s3,
        &[
            ("VIDBUILDER_S3_MAX_RETRIES", "8"),
            ("VIDBUILDER_S3_RETRY_BASE_MS", "250"),
        ],
    )
    .await;
    s3.stop();
    let (_, _, body) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some("http://127.0.0.1:9/unused"), 0.5),
        )
        .await;
    let id = body["jobId"].as_str().unwrap().to_string();
    poll(LONG, "the upload to be retrying", || async {
        let (_, v) = t.get_json(&format!("/api/job-status/{id}")).await;
        v["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Uploading to S3")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    s3.start_again();
    let done = t.wait_terminal(&id, LONG).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["s3Upload"]["enabled"], true);
    t.server.stop().await;
}
