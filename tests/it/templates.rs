//! Templates with merge fields and batches, end to end: a real server, its SQLite store, real
//! renders decoded with ffmpeg, and a real webhook receiver.

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{start_server, Receiver, TestServer};

/// A one-scene draft template: the title and the scene's length are merge fields, and so is a
/// metadata entry (each job's metadata shows the value it was made with).
fn greeting_template() -> Value {
    json!({
        "theme": "modern",
        "quality": "draft",
        "metadata": {"customer": "{{name}}"},
        "scenes": [{"type": "hero-title", "duration": "{{secs}}",
                    "content": {"title": "Hello **{{name}}**", "subtitle": "Order {{order}}"}}]
    })
}

/// The spec the template makes for these values, written out by hand.
fn greeting_literal(name: &str, order: u32) -> Value {
    json!({
        "theme": "modern",
        "quality": "draft",
        "scenes": [{"type": "hero-title", "duration": 1.0,
                    "content": {"title": format!("Hello **{name}**"), "subtitle": format!("Order {order}")}}]
    })
}

/// The grey picture at `t` seconds of a draft (640×360) video, decoded by ffmpeg.
fn grey_frame(video: &Path, t: f64) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &t.to_string(), "-i"])
        .arg(video)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 640 * 360);
    out.stdout
}

/// Pixels that differ by more than 24 grey levels.
fn differing(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.abs_diff(**y) > 24)
        .count()
}

async fn download(t: &TestServer, job_id: &str) -> std::path::PathBuf {
    let bytes = t
        .http
        .get(format!("{}/api/download/{job_id}", t.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = t.data.path().join(format!("got-{job_id}.mp4"));
    std::fs::write(&file, &bytes).unwrap();
    file
}

/// A template is stored and checked, filled in at submission (a missing value is a 400 naming
/// it), listed, read and deleted, and seen only by the key that stored it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_checked_merged_and_owned_by_their_key() {
    let t = start_server(&[("VIDBUILDER_AUTH_API_KEYS", "alice-key,bob-key")]).await;
    let alice = Some("alice-key");
    let bob = Some("bob-key");
    let (code, headers, made) = t
        .call(
            Method::POST,
            "/api/templates",
            Some(&json!({"name": "greeting", "spec": greeting_template()})),
            alice,
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let id = made["templateId"].as_str().unwrap().to_string();
    assert!(id.starts_with("tpl_"), "{id}");
    assert_eq!(headers["location"], format!("/api/templates/{id}").as_str());
    assert_eq!(made["fields"], json!(["name", "order", "secs"]));

    // Read back whole by its owner; another key gets 404, as for a template that does not exist.
    let (code, _, got) = t
        .call(Method::GET, &format!("/api/templates/{id}"), None, alice)
        .await;
    assert_eq!(code, StatusCode::OK, "{got}");
    assert_eq!(got["spec"], greeting_template());
    assert_eq!(got["name"], "greeting");
    let (code, _, _) = t
        .call(Method::GET, &format!("/api/templates/{id}"), None, bob)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, _, listed) = t.call(Method::GET, "/api/templates", None, alice).await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["templates"][0]["templateId"], id.as_str());
    assert!(listed["templates"][0].get("spec").is_none());
    let (_, _, listed) = t.call(Method::GET, "/api/templates", None, bob).await;
    assert_eq!(listed["total"], 0, "{listed}");

    // Bob cannot render Alice's template.
    let submit = |values: Value| json!({"templateId": id, "mergeFields": values});
    let (code, _, answer) = t
        .call(
            Method::POST,
            "/api/jobs",
            Some(&submit(json!({"name": "Ada", "secs": 1, "order": 1}))),
            bob,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["field"], "templateId");

    // A missing value, a value that makes the spec invalid, a field that is not one: each a 400
    // naming it, and no job is created.
    for (values, field) in [
        (json!({"name": "Ada", "secs": 1}), "mergeFields.order"),
        (
            json!({"name": {"x": 1}, "secs": 1, "order": 1}),
            "mergeFields.name",
        ),
        (
            json!({"name": "Ada", "secs": "long", "order": 1}),
            "scenes[0].duration",
        ),
        (
            json!({"name": "Ada", "secs": 0.5, "order": 1, "unused": true}),
            "",
        ),
    ] {
        let (code, _, answer) = t
            .call(
                Method::POST,
                "/api/jobs",
                Some(&submit(values.clone())),
                alice,
            )
            .await;
        if field.is_empty() {
            // Values the template does not use are ignored.
            assert_eq!(code, StatusCode::ACCEPTED, "{answer}");
            continue;
        }
        assert_eq!(code, StatusCode::BAD_REQUEST, "{values}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (code, _, answer) = t
        .call(
            Method::POST,
            "/api/jobs",
            Some(&json!({"templateId": id, "scenes": []})),
            alice,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "scenes");
    let (_, _, jobs) = t.call(Method::GET, "/api/jobs", None, alice).await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");

    // Filled in on the blocking endpoint too: the metadata shows the value.
    let (code, _, done) = t
        .call(
            Method::POST,
            "/api/generate-flexible-video",
            Some(&submit(json!({"name": "Grace", "secs": 0.5, "order": 7}))),
            alice,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{done}");
    assert_eq!(done["metadata"], json!({"customer": "Grace"}));

    // Deleted by its owner only; then it is gone.
    let (code, _, _) = t
        .call(Method::DELETE, &format!("/api/templates/{id}"), None, bob)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, _) = t
        .call(Method::DELETE, &format!("/api/templates/{id}"), None, alice)
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _, _) = t
        .call(Method::GET, &format!("/api/templates/{id}"), None, alice)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // A template is checked where no merge field reaches: a bad scene type, a bad merge field.
    for (spec, field) in [
        (
            json!({"scenes": [{"type": "nope", "duration": "{{d}}", "content": {}}]}),
            "spec.scenes[0].type",
        ),
        (
            json!({"scenes": [{"type": "hero-title", "duration": 1, "content": {"title": "{{ 9x }}"}}]}),
            "spec.scenes[0].content.title",
        ),
        (
            json!({"webhookUrl": "https://x.test/h", "scenes": [{"type": "hero-title", "duration": 1, "content": {"title": "a"}}]}),
            "spec.webhookUrl",
        ),
    ] {
        let (code, _, answer) = t
            .call(
                Method::POST,
                "/api/templates",
                Some(&json!({ "spec": spec })),
                alice,
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (_, _, listed) = t.call(Method::GET, "/api/templates", None, alice).await;
    assert_eq!(
        listed["total"], 0,
        "refused templates are not stored: {listed}"
    );
    t.server.stop().await;
}

/// One batch request with 20 sets of values makes 20 jobs that all complete, each with its own
/// webhooks and metadata; two of them decode to the same pictures as the specs written out by
/// hand, and differ from each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_twenty_renders_twenty_videos_with_their_own_texts() {
    let t = start_server(&[]).await;
    let hooks = Receiver::start().await;
    let (code, _, made) = t
        .post("/api/templates", &json!({"spec": greeting_template()}))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let id = made["templateId"].as_str().unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("Customer {i}")).collect();
    let sets: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "secs": 1.0, "order": 100 + i}))
        .collect();
    let (code, _, batch) = t
        .post(
            "/api/batch",
            &json!({"templateId": id, "webhookUrl": hooks.url("batch"), "mergeFields": sets}),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{batch}");
    let jobs = batch["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 20);
    let batch_id = batch["batchId"].as_str().unwrap();
    let mut ids: Vec<&str> = jobs.iter().map(|j| j["jobId"].as_str().unwrap()).collect();
    for (i, job) in jobs.iter().enumerate() {
        let done = t
            .wait_terminal(job["jobId"].as_str().unwrap(), Duration::from_secs(180))
            .await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(
            done["metadata"],
            json!({"customer": names[i], "batchId": batch_id, "batchIndex": i})
        );
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each set has its own job");

    // Every job's own started and completed webhooks.
    let got = hooks.wait_for("batch", 40, Duration::from_secs(60)).await;
    for job in jobs {
        let id = job["jobId"].as_str().unwrap();
        let mine: Vec<&str> = got
            .iter()
            .filter(|r| r.body["jobId"] == id)
            .map(|r| r.body["status"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(mine, ["started", "completed"], "webhooks of {id}");
    }

    // Two of them, frame by frame against the same specs written out by hand.
    let frames =
        |file: std::path::PathBuf| async move { [0.5, 0.8].map(|at| grey_frame(&file, at)) };
    let mut batch_frames = Vec::new();
    for (i, order) in [(3usize, 103u32), (17, 117)] {
        let (code, _, direct) = t
            .post(
                "/api/generate-flexible-video",
                &greeting_literal(&names[i], order),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{direct}");
        let want = frames(download(&t, direct["jobId"].as_str().unwrap()).await).await;
        let got = frames(download(&t, jobs[i]["jobId"].as_str().unwrap()).await).await;
        for (g, w) in got.iter().zip(&want) {
            let d = differing(g, w);
            assert!(
                d <= 50,
                "batch job {i} differs from its spec written out: {d} pixels"
            );
        }
        batch_frames.push(got);
    }
    let d = differing(&batch_frames[0][0], &batch_frames[1][0]);
    assert!(
        d > 200,
        "two customers' videos look the same ({d} pixels differ)"
    );
    t.server.stop().await;
}

/// A batch is checked whole before anything is created: a bad set is a 400 naming it, a batch
/// larger than the queue's room is refused whole (429), and a replayed Idempotency-Key answers
/// the same jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_admitted_whole_or_not_at_all() {
    let t = start_server(&[
        ("VIDBUILDER_MAX_QUEUED_JOBS", "4"),
        ("VIDBUILDER_LIMITS_MAX_BATCH_JOBS", "6"),
    ])
    .await;
    let spec = greeting_template();
    let set = |i: u32| json!({"name": format!("N{i}"), "secs": 0.5, "order": i});
    let count = || async {
        let (_, v) = t.get_json("/api/jobs?limit=100").await;
        v["jobs"].as_array().unwrap().len()
    };
    for (body, field) in [
        (
            json!({"spec": spec, "mergeFields": [set(1), {"name": "x", "secs": 0.5}]}),
            "mergeFields[1].order",
        ),
        (
            json!({"spec": spec, "mergeFields": [set(1), set(2), {"name": "x", "secs": -1, "order": 3}]}),
            "mergeFields[2]",
        ),
        (
            json!({"spec": spec, "mergeFields": [set(1), 5]}),
            "mergeFields[1]",
        ),
        (json!({"spec": spec, "mergeFields": []}), "mergeFields"),
        (
            json!({"spec": spec, "mergeFields": (0..7).map(set).collect::<Vec<_>>()}),
            "mergeFields",
        ),
        (json!({"mergeFields": [set(1)]}), "templateId"),
        (
            json!({"spec": spec, "templateId": "tpl_0123456789abcdef01234567", "mergeFields": [set(1)]}),
            "templateId",
        ),
        (
            json!({"spec": spec, "mergeFields": [set(1)], "extra": 1}),
            "extra",
        ),
    ] {
        let (code, _, answer) = t.post("/api/batch", &body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (code, _, answer) = t
        .post(
            "/api/batch",
            &json!({"templateId": "tpl_0123456789abcdef01234567", "mergeFields": [set(1)]}),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(count().await, 0, "refused batches create nothing");

    // Room for 4 waiting jobs: a batch of 5 is refused whole.
    let five: Vec<Value> = (0..5).map(set).collect();
    let (code, headers, answer) = t
        .post("/api/batch", &json!({"spec": spec, "mergeFields": five}))
        .await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        count().await,
        0,
        "a batch that does not fit creates nothing"
    );

    // The same Idempotency-Key and body answer the same jobs.
    let body = json!({"spec": spec, "mergeFields": [set(1), set(2)]});
    let send = || async {
        let res = t
            .http
            .post(format!("{}/api/batch", t.base))
            .header("Idempotency-Key", "batch-7")
            .json(&body)
            .send()
            .await
            .unwrap();
        let replayed = res.headers().contains_key("idempotent-replayed");
        (
            res.status().as_u16(),
            replayed,
            res.json::<Value>().await.unwrap(),
        )
    };
    let (code, replayed, first) = send().await;
    assert_eq!((code, replayed), (202, false), "{first}");
    let (code, replayed, again) = send().await;
    assert_eq!((code, replayed), (202, true), "{again}");
    assert_eq!(first["jobs"][0]["jobId"], again["jobs"][0]["jobId"]);
    assert_eq!(first["jobs"][1]["jobId"], again["jobs"][1]["jobId"]);
    assert_eq!(first["batchId"], again["batchId"]);
    assert_eq!(count().await, 2);
    t.server.stop().await;
}
