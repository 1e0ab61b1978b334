//! Observability: Prometheus metrics that move with real jobs, request ids in answers, and
//! readiness that follows ffmpeg and object storage (probed in the background).

use std::time::Duration;

use crate::common::s3::S3Server;
use crate::common::{poll, quick_spec, start_server, Receiver};

/// The value of the Prometheus sample `name{labels}` (labels as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_real_jobs_and_answers_carry_a_request_id() {
    let hooks = Receiver::start().await;
    let t = start_server(&[]).await;
    let metrics = || async {
        let res = t
            .http
            .get(format!("{}/metrics", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        res.text().await.unwrap()
    };
    let before = metrics().await;
    let completed = |text: &str| {
        sample(
            text,
            "vidbuilder_jobs_finished_total{outcome=\"completed\"}",
        )
        .unwrap_or(0.0)
    };
    let (s, _, body) = t
        .post(
            "/api/generate-video-async",
            &quick_spec(Some(&hooks.url("/m")), 1.0),
        )
        .await;
    assert_eq!(s, 202);
    t.wait_terminal(body["jobId"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    hooks.wait_for("/m", 2, Duration::from_secs(60)).await;
    let after = poll(
        Duration::from_secs(30),
        "the metrics to show the job",
        || async {
            let text = metrics().await;
            (completed(&text) >= completed(&before) + 1.0
                && sample(
                    &text,
                    "vidbuilder_webhook_attempts_total{result=\"delivered\"}",
                )
                .is_some_and(|n| n >= 2.0))
            .then_some(text)
        },
    )
    .await;
    // Histograms with real buckets, gauges by status, requests by route pattern.
    for needle in [
        "vidbuilder_render_seconds_bucket{le=\"0.5\"}",
        "vidbuilder_render_fps_bucket{le=\"30\"}",
        "vidbuilder_webhook_latency_seconds_bucket{le=\"0.1\"}",
        "vidbuilder_jobs{status=\"completed\"}",
        "vidbuilder_queue_depth",
        "vidbuilder_renders_running",
        "vidbuilder_jobs_submitted_total",
        "vidbuilder_http_requests_total{route=\"/api/generate-video-async\",method=\"POST\",status=\"202\"}",
        "vidbuilder_http_request_duration_seconds_bucket{route=\"/api/job-status/{job_id}\",method=\"GET\",le=\"0.01\"}",
    ] {
        assert!(after.contains(needle), "{needle} missing from:\n{after}");
    }
    assert!(
        !after.contains("route=\"/api/job-status/")
            || !after.contains(body["jobId"].as_str().unwrap()),
        "ids do not become series"
    );

    // A request id: the client's is kept, else one is made; it comes back in x-request-id.
    let res = t
        .http
        .get(format!("{}/api/themes", t.base))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-42");
    let res = t
        .http
        .get(format!("{}/api/nope", t.base))
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_ffmpeg_and_object_storage() {
    // ffmpeg through a wrapper the test can take away and give back.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("ffmpeg");
    let script = "#!/bin/sh\nexec ffmpeg \"$@\"\n";
    let install = || {
        std::fs::write(&wrapper, script).unwrap();
        let mut perm = std::fs::metadata(&wrapper).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&wrapper, perm).unwrap();
    };
    install();
    let mut s3 = S3Server::start("videos");
    let mut env: Vec<(String, String)> = s3.env();
    env.push((
        "VIDBUILDER_RENDER_FFMPEG".into(),
        wrapper.display().to_string(),
    ));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let t = start_server(&env_ref).await;
    let ready = || async {
        let (s, v) = t.get_json("/readyz").await;
        (s.as_u16(), v)
    };
    assert_eq!(ready().await.0, 200);

    std::fs::remove_file(&wrapper).unwrap();
    let (_, v) = poll(Duration::from_secs(20), "readyz to name ffmpeg", || async {
        let (s, v) = ready().await;
        (s == 503).then_some((s, v))
    })
    .await;
    assert!(v["reasons"][0].as_str().unwrap().contains("ffmpeg"), "{v}");
    install();
    poll(Duration::from_secs(20), "readyz to recover", || async {
        (ready().await.0 == 200).then_some(())
    })
    .await;

    s3.stop();
    let (_, v) = poll(
        Duration::from_secs(30),
        "readyz to name object storage",
        || async {
            let (s, v) = ready().await;
            (s == 503).then_some((s, v))
        },
    )
    .await;
    assert!(
        v["reasons"][0].as_str().unwrap().contains("object storage"),
        "{v}"
    );
    s3.start_again();
    poll(Duration::from_secs(30), "readyz to recover", || async {
        (ready().await.0 == 200).then_some(())
    })
    .await;
    // /healthz never depended on either.
    assert_eq!(t.get_json("/healthz").await.0, 200);
    t.server.stop().await;
}
