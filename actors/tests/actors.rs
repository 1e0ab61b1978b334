//! The actor tree driven with a fake renderer and a fake webhook transport: queue order,
//! concurrency limit, supervision of panicking renders, webhook retries on a schedule.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use ractor::{Actor, ActorRef};
use vidbuilder_actors::manager::{
    JobManager, JobManagerArgs, JobManagerMsg, JobViews, ManagerSettings, SubmitError,
    SubmitRequest,
};
use vidbuilder_actors::ports::*;
use vidbuilder_actors::upload::UploadSettings;
use vidbuilder_actors::webhook::{WebhookActor, WebhookArgs, WebhookMsg, WebhookSettings};
use vidbuilder_domain::events::EventKind;
use vidbuilder_domain::job::{JobId, JobPhase, JobSnapshot as JobView, JobStatus};
use vidbuilder_domain::spec::{Quality, Scene, SceneContent, VideoSpec};
use vidbuilder_domain::store::{
    AttemptRecord, DeliveryState, JobRecord, JobStore, MemoryStore, OutboxRow,
};

/// Behaviour is chosen by the first scene's title: `panic`, `fail`, `hang`, else render for
/// `duration` seconds of (tokio) time.
#[derive(Default)]
struct FakeRenderer {
    started: Mutex<Vec<String>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    cancelled: Arc<AtomicUsize>,
}

impl FakeRenderer {
    /// Never progresses. The actor may drop this future (kill), so a separate task watches the
    /// token, like the real renderer's blocking thread does.
    async fn hang(&self, cancel: CancellationToken) -> Result<RenderOutput, RenderFailure> {
        let counter = self.cancelled.clone();
        let token = cancel.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            counter.fetch_add(1, Ordering::SeqCst);
        });
        cancel.cancelled().await;
        Err(RenderFailure::new(
            RenderFailureKind::Cancelled,
            "cancelled",
        ))
    }
}

#[async_trait]
impl Renderer for FakeRenderer {
    async fn render(
        &self,
        req: RenderRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderOutput, RenderFailure> {
        let SceneContent::HeroTitle { title, .. } = &req.spec.scenes[0].content else {
            panic!("these tests only submit hero-title scenes");
        };
        self.started.lock().unwrap().push(title.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        struct Dec<'a>(&'a AtomicUsize);
        impl Drop for Dec<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _dec = Dec(&self.running);
        match title.as_str() {
            "panic" => panic!("renderer exploded"),
            "fail" => {
                return Err(RenderFailure::new(
                    RenderFailureKind::Encoder,
                    "encoder said no",
                ))
            }
            "hang" => return self.hang(cancel).await,
            "hang-once" if req.attempt == 1 => return self.hang(cancel).await,
            "flaky" if req.attempt == 1 => {
                return Err(RenderFailure::new(RenderFailureKind::Encoder, "transient"))
            }
            _ => {}
        }
        let total = req.spec.frame_count();
        for f in (0..=total).step_by(10) {
            progress(RenderProgress {
                phase: RenderPhase::Rendering,
                frames_done: f,
                frames_total: total,
            });
            tokio::time::sleep(Duration::from_millis(10 * 1000 / req.spec.fps as u64)).await;
        }
        progress(RenderProgress {
            phase: RenderPhase::Encoding,
            frames_done: total,
            frames_total: total,
        });
        Ok(RenderOutput {
            video: req.out_dir.join(format!("{}.mp4", req.job_id)),
            reel: None,
            duration_secs: req.spec.duration(),
            width: 640,
            height: 360,
            frames: total,
            poster: None,
            reel_poster: None,
            extras: Vec::new(),
        })
    }
}

/// (when, url, body, headers) of one POST.
type Seen = (
    tokio::time::Instant,
    String,
    serde_json::Value,
    Vec<(String, String)>,
);

#[derive(Default)]
struct FakeTransport {
    /// Status codes to answer, in order; 200 once they run out.
    script: Mutex<Vec<u16>>,
    seen: Mutex<Vec<Seen>>,
    /// Requests to `http://held/…` wait for this.
    gate: tokio::sync::Notify,
    held: AtomicUsize,
}

#[async_trait]
impl WebhookTransport for FakeTransport {
    async fn post(&self, req: WebhookRequest) -> AttemptOutcome {
        if req.url.starts_with("http://held/") {
            self.held.fetch_add(1, Ordering::SeqCst);
            self.gate.notified().await;
        }
        let status = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                200
            } else {
                s.remove(0)
            }
        };
        self.seen.lock().unwrap().push((
            tokio::time::Instant::now(),
            req.url.clone(),
            serde_json::from_slice(&req.body).unwrap(),
            req.headers.clone(),
        ));
        AttemptOutcome {
            status: Some(status),
            error: None,
            retry_after: None,
            permanent: false,
            latency_ms: 1,
        }
    }
}

fn spec(title: &str, secs: f64) -> VideoSpec {
    VideoSpec {
        theme: "corporate".into(),
        music: None,
        quality: Quality::Draft,
        fps: 30,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes: vec![Scene::new(
            secs,
            SceneContent::HeroTitle {
                title: title.into(),
                subtitle: None,
            },
        )],
        font: None,
    }
}

/// The settings these tests start from (the server builds the real ones from
/// `config/default.toml`).
fn manager_settings() -> ManagerSettings {
    ManagerSettings {
        max_concurrent: 1,
        max_queued: 1000,
        max_queued_per_key: 0,
        out_dir: "videos".into(),
        max_restarts: 2,
        max_interrupted: 3,
        restart_window: Duration::from_secs(600),
        restart_backoff: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(120),
        retention: Some(Duration::from_secs(7 * 24 * 3600)),
        tick: Duration::from_secs(1),
        s3_prefix: String::new(),
        delete_local_after_upload: false,
        node_name: "local".into(),
        cluster: false,
    }
}

fn webhook_settings() -> WebhookSettings {
    WebhookSettings {
        retry_schedule: [30, 120, 300].map(Duration::from_secs).to_vec(),
        max_in_flight: 64,
        max_per_host: 8,
        max_retry_after: Duration::from_secs(3600),
        redelivery_cooldown: Duration::ZERO,
        secrets: Default::default(),
    }
}

struct TestLinks;

impl Links for TestLinks {
    fn video(&self, job: &JobId) -> String {
        format!("/api/download/{job}")
    }
    fn reel(&self, job: &JobId) -> String {
        format!("/api/download/{job}/reel")
    }
    fn poster(&self, job: &JobId) -> String {
        format!("/api/download/{job}/poster")
    }
    fn output(&self, job: &JobId, ratio: vidbuilder_domain::spec::AspectRatio) -> String {
        format!("/api/download/{job}/outputs/{}", ratio.slug())
    }
    fn output_poster(&self, job: &JobId, ratio: vidbuilder_domain::spec::AspectRatio) -> String {
        format!("/api/download/{job}/outputs/{}/poster", ratio.slug())
    }
}

/// The files the fake renderer "wrote": real files when a test gives a real directory.
struct TestArtifacts;

impl Artifacts for TestArtifacts {
    fn size(&self, path: &std::path::Path) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.len())
    }
    fn remove(&self, files: &[std::path::PathBuf]) -> Vec<(std::path::PathBuf, String)> {
        for f in files {
            let _ = std::fs::remove_file(f);
        }
        Vec::new()
    }
    fn discard_partials(&self) {}
}

/// How far a job has come: never goes back within an attempt.
fn rank(phase: &JobPhase) -> (u8, u64) {
    match phase {
        JobPhase::Queued | JobPhase::Resuming => (0, 0),
        JobPhase::Starting => (1, 0),
        JobPhase::Rendering { frames_done, .. } => (2, *frames_done),
        JobPhase::Encoding => (3, 0),
        JobPhase::Finalising => (4, 0),
        JobPhase::Uploading { bytes_done, .. } => (5, *bytes_done),
        JobPhase::Retrying { .. } => (6, 0),
        JobPhase::Completed | JobPhase::Failed => (7, 0),
    }
}

struct Tree {
    manager: ActorRef<JobManagerMsg>,
    stats: tokio::sync::watch::Receiver<vidbuilder_actors::manager::ManagerStats>,
    webhooks: ActorRef<WebhookMsg>,
    views: JobViews,
    renderer: Arc<FakeRenderer>,
    transport: Arc<FakeTransport>,
}

async fn tree(max_concurrent: usize, max_queued: usize, schedule: &[u64]) -> Tree {
    let settings = ManagerSettings {
        max_concurrent,
        max_queued,
        out_dir: "/tmp/none".into(),
        ..manager_settings()
    };
    tree_with(settings, schedule, Arc::new(MemoryStore::default())).await
}

async fn tree_with(
    manager_settings: ManagerSettings,
    schedule: &[u64],
    store: Arc<dyn JobStore>,
) -> Tree {
    tree_full(manager_settings, schedule_of(schedule), store, None).await
}

fn schedule_of(schedule: &[u64]) -> WebhookSettings {
    WebhookSettings {
        retry_schedule: schedule.iter().map(|s| Duration::from_secs(*s)).collect(),
        ..webhook_settings()
    }
}

async fn tree_full(
    manager_settings: ManagerSettings,
    settings: WebhookSettings,
    store: Arc<dyn JobStore>,
    uploader: Option<Arc<FakeUploader>>,
) -> Tree {
    let renderer = Arc::new(FakeRenderer::default());
    let transport = Arc::new(FakeTransport::default());
    let webhook_args = WebhookArgs {
        transport: transport.clone(),
        settings,
        store: store.clone(),
    };
    let (webhooks, _) = Actor::spawn(None, WebhookActor, webhook_args.clone())
        .await
        .unwrap();
    let views: JobViews = Arc::new(DashMap::new());
    let (stats_tx, stats) = tokio::sync::watch::channel(Default::default());
    let args = JobManagerArgs {
        renderer: renderer.clone(),
        webhooks: webhooks.clone(),
        webhooks_respawn: Some(webhook_args),
        views: views.clone(),
        changes: tokio::sync::broadcast::channel(64).0,
        stats: stats_tx,
        store,
        settings: manager_settings,
        links: Arc::new(TestLinks),
        artifacts: Arc::new(TestArtifacts),
        uploader: uploader.map(|u| {
            (
                u as Arc<dyn Uploader>,
                UploadSettings {
                    max_retries: 4,
                    retry_base: Duration::from_millis(100),
                    presign_expiry: Duration::from_secs(604_800),
                },
            )
        }),
        cluster: None,
    };
    let (manager, _) = Actor::spawn(None, JobManager, args).await.unwrap();
    Tree {
        manager,
        stats,
        webhooks,
        views,
        renderer,
        transport,
    }
}

async fn submit(
    t: &Tree,
    title: &str,
    secs: f64,
    hook: Option<&str>,
) -> Result<JobView, SubmitError> {
    let request = SubmitRequest {
        spec: spec(title, secs),
        webhook_url: hook.map(String::from),
        owner: None,
        idempotency: None,
    };
    ractor::call!(t.manager, |reply| JobManagerMsg::Submit { request, reply })
        .unwrap()
        .map(|a| a.snapshot)
}

async fn wait(t: &Tree, v: &JobView) -> JobView {
    let job_id = v.job_id.clone();
    ractor::call!(t.manager, |reply| JobManagerMsg::WaitFinished {
        job_id,
        reply
    })
    .unwrap()
}

/// Polls `f` until it returns true or the (tokio) deadline passes.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_run_in_fifo_order_within_the_concurrency_limit() {
    let t = tree(2, 100, &[30, 120, 300]).await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        jobs.push(submit(&t, &format!("job{i}"), 2.0, None).await.unwrap());
    }
    assert_eq!(jobs[0].status, JobStatus::Queued);
    // The view shows queue positions for the ones still waiting.
    let v5 = t.views.get(&jobs[5].job_id).unwrap().clone();
    assert_eq!(v5.status, JobStatus::Queued);
    assert_eq!(v5.queue_position, Some(4));
    for j in &jobs {
        let done = wait(&t, j).await;
        assert_eq!(done.status, JobStatus::Completed, "{done:?}");
        // What a waiter is told is already in the view the HTTP layer reads.
        assert_eq!(t.views.get(&j.job_id).unwrap().status, JobStatus::Completed);
        assert_eq!(done.phase, JobPhase::Completed);
        assert_eq!(
            done.result.as_ref().unwrap().video_url,
            format!("/api/download/{}", j.job_id)
        );
    }
    let order = t.renderer.started.lock().unwrap().clone();
    assert_eq!(order, (0..6).map(|i| format!("job{i}")).collect::<Vec<_>>());
    assert_eq!(t.renderer.max_running.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn progress_is_visible_and_never_goes_backwards() {
    let t = tree(1, 10, &[30]).await;
    let job = submit(&t, "slow", 10.0, None).await.unwrap();
    let mut last = (0u8, 0u64);
    let mut saw_frames = false;
    loop {
        let v = t.views.get(&job.job_id).unwrap().clone();
        let now = rank(&v.phase);
        assert!(now >= last, "progress went back from {last:?} to {now:?}");
        last = now;
        saw_frames |= matches!(
            v.phase,
            JobPhase::Rendering {
                frames_total: 300,
                ..
            }
        );
        if v.status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(97)).await;
    }
    assert!(saw_frames);
    assert_eq!(last, rank(&JobPhase::Completed));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_or_failing_render_fails_only_its_job() {
    let t = tree(1, 10, &[1]).await;
    let a = submit(&t, "ok-before", 1.0, Some("http://hooks/a"))
        .await
        .unwrap();
    let p = submit(&t, "panic", 1.0, Some("http://hooks/p"))
        .await
        .unwrap();
    let f = submit(&t, "fail", 1.0, Some("http://hooks/f"))
        .await
        .unwrap();
    let b = submit(&t, "ok-after", 1.0, Some("http://hooks/b"))
        .await
        .unwrap();
    assert_eq!(wait(&t, &a).await.status, JobStatus::Completed);
    let pv = wait(&t, &p).await;
    assert_eq!(pv.status, JobStatus::Failed);
    assert!(
        pv.error.as_ref().unwrap().contains("renderer exploded"),
        "{pv:?}"
    );
    let fv = wait(&t, &f).await;
    assert_eq!(
        fv.error.as_deref(),
        Some("Failed to render video: encoder said no")
    );
    assert_eq!(wait(&t, &b).await.status, JobStatus::Completed);
    // The manager survived and still admits work.
    let c = submit(&t, "ok-later", 1.0, None).await.unwrap();
    assert_eq!(wait(&t, &c).await.status, JobStatus::Completed);
    // Each job got exactly `started` then its terminal event.
    eventually("8 webhooks", || t.transport.seen.lock().unwrap().len() == 8).await;
    let seen = t.transport.seen.lock().unwrap().clone();
    for (url, terminal) in [
        ("http://hooks/a", "completed"),
        ("http://hooks/p", "failed"),
        ("http://hooks/f", "failed"),
        ("http://hooks/b", "completed"),
    ] {
        let events: Vec<String> = seen
            .iter()
            .filter(|s| s.1 == url)
            .map(|s| s.2["status"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            events,
            vec!["started".to_string(), terminal.to_string()],
            "{url}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_and_stores_nothing() {
    let t = tree(1, 2, &[30]).await;
    let _running = submit(&t, "hang", 1.0, None).await.unwrap();
    submit(&t, "q1", 1.0, None).await.unwrap();
    submit(&t, "q2", 1.0, None).await.unwrap();
    let before = t.views.len();
    let err = submit(&t, "q3", 1.0, None).await.unwrap_err();
    assert!(
        matches!(err, SubmitError::QueueFull { queued: 2, .. }),
        "{err:?}"
    );
    assert_eq!(t.views.len(), before);
}

#[tokio::test(start_paused = true)]
async fn failed_deliveries_are_retried_on_schedule_with_the_same_body_and_id() {
    let t = tree(1, 10, &[30, 120, 300]).await;
    // started: 500, 503, then 200 on the third attempt; completed: 200.
    *t.transport.script.lock().unwrap() = vec![500, 503];
    let job = submit(&t, "quick", 1.0, Some("http://hooks/x"))
        .await
        .unwrap();
    wait(&t, &job).await;
    eventually("4 attempts", || t.transport.seen.lock().unwrap().len() == 4).await;
    let seen = t.transport.seen.lock().unwrap().clone();
    let started: Vec<_> = seen.iter().filter(|s| s.2["status"] == "started").collect();
    assert_eq!(started.len(), 3);
    let gap1 = started[1].0 - started[0].0;
    let gap2 = started[2].0 - started[1].0;
    assert!(
        gap1 >= Duration::from_secs(30) && gap1 < Duration::from_secs(31),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_secs(120) && gap2 < Duration::from_secs(121),
        "{gap2:?}"
    );
    assert_eq!(started[0].2, started[2].2, "same body on every attempt");
    let id =
        |h: &Vec<(String, String)>| h.iter().find(|(k, _)| k == "webhook-id").unwrap().1.clone();
    assert_eq!(id(&started[0].3), id(&started[2].3));
    // `completed` waited for `started` to be delivered: it comes last.
    assert_eq!(seen[3].2["status"], "completed");
    let log = ractor::call!(t.webhooks, |reply| WebhookMsg::Log {
        job_id: job.job_id.clone(),
        reply
    })
    .unwrap();
    let results: Vec<_> = log
        .iter()
        .map(|r| (r.event, r.attempt, r.status_code, r.result.as_str()))
        .collect();
    assert_eq!(
        results,
        vec![
            (EventKind::Started, 1, Some(500), "retrying"),
            (EventKind::Started, 2, Some(503), "retrying"),
            (EventKind::Started, 3, Some(200), "delivered"),
            (EventKind::Completed, 1, Some(200), "delivered"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_receiver_gets_four_attempts_then_gives_up_and_410_stops_at_once() {
    let t = tree(1, 10, &[30, 120, 300]).await;
    *t.transport.script.lock().unwrap() = vec![500; 4];
    let job = submit(&t, "quick", 1.0, Some("http://hooks/dead"))
        .await
        .unwrap();
    wait(&t, &job).await;
    eventually("exhausted + completed", || {
        t.transport.seen.lock().unwrap().len() == 5
    })
    .await;
    let log = ractor::call!(t.webhooks, |reply| WebhookMsg::Log {
        job_id: job.job_id.clone(),
        reply
    })
    .unwrap();
    assert_eq!(
        log.iter().filter(|r| r.event == EventKind::Started).count(),
        4
    );
    assert_eq!(log[3].result.as_str(), "exhausted");
    assert_eq!(log[4].result.as_str(), "delivered");

    *t.transport.script.lock().unwrap() = vec![410];
    let job = submit(&t, "quick", 1.0, Some("http://hooks/gone"))
        .await
        .unwrap();
    wait(&t, &job).await;
    eventually("gone + completed", || {
        t.transport.seen.lock().unwrap().len() == 7
    })
    .await;
    let log = ractor::call!(t.webhooks, |reply| WebhookMsg::Log {
        job_id: job.job_id.clone(),
        reply
    })
    .unwrap();
    assert_eq!(log[0].result.as_str(), "gave-up");
    assert_eq!(log.len(), 2);
    let pending = ractor::call!(t.webhooks, WebhookMsg::Pending).unwrap();
    assert_eq!(pending, 0);
}

fn count(r: &FakeRenderer, title: &str) -> usize {
    r.started
        .lock()
        .unwrap()
        .iter()
        .filter(|t| *t == title)
        .count()
}

#[tokio::test(start_paused = true)]
async fn crashes_are_restarted_with_backoff_then_the_job_fails() {
    let t = tree(1, 10, &[1]).await;
    let flaky = submit(&t, "flaky", 1.0, None).await.unwrap();
    let done = wait(&t, &flaky).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempt, Some(2));
    let started = tokio::time::Instant::now();
    let p = submit(&t, "panic", 1.0, Some("http://hooks/p"))
        .await
        .unwrap();
    let done = wait(&t, &p).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(count(&t.renderer, "panic"), 3, "first try + 2 restarts");
    // Backoff 2 s then 4 s between the attempts.
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    eventually("started + failed", || {
        t.transport
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.1 == "http://hooks/p")
            .count()
            == 2
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_render_is_killed_and_its_renderer_cancelled() {
    let settings = ManagerSettings {
        stall_timeout: Duration::from_secs(5),
        max_restarts: 1,
        ..manager_settings()
    };
    let t = tree_with(settings, &[1], Arc::new(MemoryStore::default())).await;
    let h = submit(&t, "hang", 1.0, None).await.unwrap();
    let after = submit(&t, "after", 1.0, None).await.unwrap();
    let done = wait(&t, &h).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert!(
        done.error.as_deref().unwrap().contains("render stalled"),
        "{done:?}"
    );
    assert_eq!(count(&t.renderer, "hang"), 2);
    eventually("both renders cancelled", || {
        t.renderer.cancelled.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(
        wait(&t, &after).await.status,
        JobStatus::Completed,
        "the slot was freed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_tree_resumes_jobs_and_pending_deliveries_from_the_store() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::default());
    let settings = ManagerSettings {
        max_concurrent: 1,
        ..manager_settings()
    };
    let t1 = tree_with(settings.clone(), &[30, 120], store.clone()).await;
    *t1.transport.script.lock().unwrap() = vec![500];
    let a = submit(&t1, "hang-once", 1.0, Some("http://hooks/a"))
        .await
        .unwrap();
    let b = submit(&t1, "queued-b", 1.0, Some("http://hooks/b"))
        .await
        .unwrap();
    eventually("a's first webhook attempt", || {
        t1.transport.seen.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(
        t1.views.get(&a.job_id).unwrap().status,
        JobStatus::Processing
    );
    // "Crash": the whole tree goes away with a render running, a job queued, a retry pending.
    t1.manager.kill();
    t1.webhooks.kill();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let t2 = tree_with(settings, &[30, 120], store.clone()).await;
    let va = t2.views.get(&a.job_id).unwrap().clone();
    assert_eq!(
        va.status,
        JobStatus::Queued,
        "the interrupted job is queued again: {va:?}"
    );
    let done_a = wait(&t2, &a).await;
    assert_eq!(done_a.status, JobStatus::Completed);
    assert_eq!(done_a.attempt, Some(2));
    assert_eq!(wait(&t2, &b).await.status, JobStatus::Completed);
    assert_eq!(count(&t2.renderer, "queued-b"), 1);
    // a's `started` retry fired from the outbox on the new tree, then its `completed`; b got both.
    eventually("4 deliveries on the new tree", || {
        t2.transport.seen.lock().unwrap().len() == 4
    })
    .await;
    let seen = t2.transport.seen.lock().unwrap().clone();
    let a_events: Vec<_> = seen
        .iter()
        .filter(|s| s.1 == "http://hooks/a")
        .map(|s| s.2["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(a_events, vec!["started", "completed"]);
    let log = ractor::call!(t2.webhooks, |reply| WebhookMsg::Log {
        job_id: a.job_id.clone(),
        reply
    })
    .unwrap();
    assert_eq!(
        log.iter()
            .map(|r| (r.attempt, r.result.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "retrying"), (2, "delivered"), (1, "delivered")]
    );
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_running_renders_and_refuses_new_jobs() {
    let t = tree(1, 10, &[1]).await;
    let a = submit(&t, "long", 5.0, None).await.unwrap();
    let queued = submit(&t, "waits", 1.0, None).await.unwrap();
    let report = ractor::call!(t.manager, |reply| {
        vidbuilder_actors::manager::JobManagerMsg::Drain {
            grace: Duration::from_secs(60),
            reply,
        }
    })
    .unwrap();
    assert_eq!((report.finished, report.interrupted), (1, 0));
    assert_eq!(t.views.get(&a.job_id).unwrap().status, JobStatus::Completed);
    assert_eq!(
        t.views.get(&queued.job_id).unwrap().status,
        JobStatus::Queued,
        "queued jobs wait for the next start"
    );
    assert_eq!(
        submit(&t, "late", 1.0, None).await.unwrap_err(),
        SubmitError::ShuttingDown
    );

    let t = tree(1, 10, &[1]).await;
    let h = submit(&t, "hang", 1.0, None).await.unwrap();
    let report = ractor::call!(t.manager, |reply| {
        vidbuilder_actors::manager::JobManagerMsg::Drain {
            grace: Duration::from_secs(3),
            reply,
        }
    })
    .unwrap();
    assert_eq!((report.finished, report.interrupted), (0, 1));
    eventually("the hung render cancelled", || {
        t.renderer.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        t.views.get(&h.job_id).unwrap().status,
        JobStatus::Processing,
        "left to resume on the next start"
    );
}

/// Object storage in memory: fails as scripted, then keeps the files' bytes.
#[derive(Default)]
struct FakeUploader {
    /// Errors to return before succeeding: (message, transient).
    script: Mutex<Vec<(String, bool)>>,
    objects: Mutex<Vec<(String, String, usize)>>,
    calls: AtomicUsize,
}

#[async_trait]
impl Uploader for FakeUploader {
    async fn upload(
        &self,
        file: &UploadFile,
        job_id: &vidbuilder_domain::JobId,
        progress: UploadProgressSink,
    ) -> Result<(), UploadError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                None
            } else {
                Some(s.remove(0))
            }
        };
        if let Some((message, transient)) = next {
            return Err(UploadError { message, transient });
        }
        let len = std::fs::read(&file.path).map(|b| b.len()).unwrap_or(0);
        progress(len as u64, len as u64);
        self.objects
            .lock()
            .unwrap()
            .push((file.key.clone(), job_id.to_string(), len));
        Ok(())
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, UploadError> {
        Ok(format!(
            "https://s3.test/{key}?X-Amz-Expires={}",
            expires.as_secs()
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn finished_renders_are_uploaded_and_presigned_with_retries() {
    let dir = std::env::temp_dir().join(format!("vb-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uploader = Arc::new(FakeUploader::default());
    *uploader.script.lock().unwrap() =
        vec![("timeout".into(), true), ("503 slow down".into(), true)];
    let settings = ManagerSettings {
        out_dir: dir.clone(),
        s3_prefix: "tenant-a/".into(),
        ..manager_settings()
    };
    let t = tree_full(
        settings,
        schedule_of(&[1]),
        Arc::new(MemoryStore::default()),
        Some(uploader.clone()),
    )
    .await;
    let job = submit(&t, "stored", 1.0, Some("http://hooks/s3"))
        .await
        .unwrap();
    let done = wait(&t, &job).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    let s3 = &done.result.as_ref().unwrap().s3_upload;
    assert!(s3.enabled);
    let standard = s3.standard.as_ref().unwrap();
    let day = &done.created_at[..10];
    assert_eq!(
        standard.s3_key,
        format!("tenant-a/videos/{day}/standard/{}.mp4", job.job_id)
    );
    assert!(standard.signed_url.ends_with("X-Amz-Expires=604800"));
    assert_eq!(standard.expires_in, "7 days");
    assert_eq!(
        uploader.calls.load(Ordering::SeqCst),
        3,
        "two transient failures, then success"
    );
    eventually("completed webhook", || {
        t.transport
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.2["status"] == "completed")
    })
    .await;
    let seen = t.transport.seen.lock().unwrap().clone();
    let completed = seen.iter().find(|s| s.2["status"] == "completed").unwrap();
    assert_eq!(
        completed.2["s3Upload"]["standard"]["s3Key"],
        standard.s3_key.as_str()
    );
    // A fresh presigned URL on demand (the download endpoint's redirect).
    let job_id = job.job_id.clone();
    let url = ractor::call!(t.manager, |reply| JobManagerMsg::PresignDownload {
        job_id,
        ratio: None,
        reply
    })
    .unwrap()
    .unwrap();
    assert!(url.contains(&standard.s3_key));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_upload_failure_fails_the_job_and_keeps_the_local_file() {
    let uploader = Arc::new(FakeUploader::default());
    *uploader.script.lock().unwrap() = vec![(
        "S3 refused the credentials (InvalidAccessKeyId)".into(),
        false,
    )];
    let t = tree_full(
        manager_settings(),
        schedule_of(&[1]),
        Arc::new(MemoryStore::default()),
        Some(uploader.clone()),
    )
    .await;
    let job = submit(&t, "unstored", 1.0, None).await.unwrap();
    let done = wait(&t, &job).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(
        done.error.as_deref(),
        Some("Failed to upload to S3: S3 refused the credentials (InvalidAccessKeyId)")
    );
    assert_eq!(uploader.calls.load(Ordering::SeqCst), 1, "not retried");
    assert!(
        done.files.video.is_some(),
        "the local file stays downloadable"
    );
}

#[tokio::test(start_paused = true)]
async fn one_slow_host_gets_at_most_its_share_of_delivery_slots() {
    let settings = WebhookSettings {
        max_per_host: 1,
        max_in_flight: 2,
        ..webhook_settings()
    };
    let manager_settings = ManagerSettings {
        max_concurrent: 4,
        ..manager_settings()
    };
    let t = tree_full(
        manager_settings,
        settings,
        Arc::new(MemoryStore::default()),
        None,
    )
    .await;
    let transport = t.transport.clone();
    for i in 0..3 {
        submit(
            &t,
            &format!("held{i}"),
            1.0,
            Some(&format!("http://held/{i}")),
        )
        .await
        .unwrap();
    }
    let fast = submit(&t, "fast", 1.0, Some("http://fast/x"))
        .await
        .unwrap();
    wait(&t, &fast).await;
    // Two global slots: the held host may use one, so the other host's webhooks still flow.
    eventually("both webhooks of the fast job", || {
        t.transport
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.1 == "http://fast/x")
            .count()
            == 2
    })
    .await;
    assert_eq!(
        transport.held.load(Ordering::SeqCst),
        1,
        "only one request at a time to the held host"
    );
    for n in 2..=6 {
        transport.gate.notify_one();
        eventually("the next held request", || {
            transport.held.load(Ordering::SeqCst) >= n.min(6)
        })
        .await;
    }
}

/// True once a `completed` webhook was posted.
fn completed_sent(t: &Tree) -> bool {
    t.transport
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(_, _, body, _)| body["status"] == "completed")
}

/// A store whose writes can be made to fail, as a full disk or a failing device would.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), vidbuilder_domain::store::StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(vidbuilder_domain::store::StoreError(
                "database or disk is full".into(),
            ));
        }
        Ok(())
    }
}

impl JobStore for FlakyStore {
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner.insert_job(job)
    }
    fn idempotent_job(
        &self,
        owner: Option<&str>,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<vidbuilder_domain::store::IdempotentJob>, vidbuilder_domain::store::StoreError>
    {
        self.inner.idempotent_job(owner, key, since_ms)
    }
    fn update_job(
        &self,
        job: &JobRecord,
        outbox: Option<&OutboxRow>,
    ) -> Result<(), vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner.update_job(job, outbox)
    }
    fn load_jobs(&self) -> Result<Vec<JobRecord>, vidbuilder_domain::store::StoreError> {
        self.inner.load_jobs()
    }
    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, vidbuilder_domain::store::StoreError> {
        self.inner.pending_deliveries()
    }
    fn last_delivery(
        &self,
        job_id: &JobId,
    ) -> Result<Option<OutboxRow>, vidbuilder_domain::store::StoreError> {
        self.inner.last_delivery(job_id)
    }
    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner
            .record_attempt(record, job_id, state, next_attempt_ms)
    }
    fn attempts(
        &self,
        job_id: &JobId,
    ) -> Result<Vec<AttemptRecord>, vidbuilder_domain::store::StoreError> {
        self.inner.attempts(job_id)
    }
    fn finished_before(
        &self,
        before_ms: i64,
    ) -> Result<Vec<JobRecord>, vidbuilder_domain::store::StoreError> {
        self.inner.finished_before(before_ms)
    }
    fn expire(&self, job_id: &JobId) -> Result<(), vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner.expire(job_id)
    }
    fn tombstone(
        &self,
        job_id: &JobId,
    ) -> Result<Option<Option<String>>, vidbuilder_domain::store::StoreError> {
        self.inner.tombstone(job_id)
    }
    fn insert_jobs(
        &self,
        jobs: &mut [JobRecord],
    ) -> Result<(), vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner.insert_jobs(jobs)
    }
    fn insert_template(
        &self,
        t: &vidbuilder_domain::template::TemplateRecord,
    ) -> Result<(), vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner.insert_template(t)
    }
    fn template(
        &self,
        id: &vidbuilder_domain::template::TemplateId,
    ) -> Result<
        Option<vidbuilder_domain::template::TemplateRecord>,
        vidbuilder_domain::store::StoreError,
    > {
        self.inner.template(id)
    }
    fn delete_template(
        &self,
        id: &vidbuilder_domain::template::TemplateId,
    ) -> Result<bool, vidbuilder_domain::store::StoreError> {
        self.check()?;
        self.inner.delete_template(id)
    }
    fn templates(
        &self,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<
        (Vec<vidbuilder_domain::template::TemplateRecord>, usize),
        vidbuilder_domain::store::StoreError,
    > {
        self.inner.templates(owner, limit)
    }
}

#[tokio::test(start_paused = true)]
async fn a_result_the_store_refused_is_held_back_until_it_is_saved() {
    let store = Arc::new(FlakyStore::default());
    let t = tree_with(manager_settings(), &[30], store.clone()).await;
    let job = submit(&t, "held", 2.0, Some("http://hook/x"))
        .await
        .unwrap();
    eventually("the job to run", || {
        t.views.get(&job.job_id).unwrap().status == JobStatus::Processing
    })
    .await;
    // The disk fills while it renders.
    store.failing.store(true, Ordering::SeqCst);
    let waiter = {
        let m = t.manager.clone();
        let job_id = job.job_id.clone();
        tokio::spawn(async move {
            ractor::call!(m, |reply| JobManagerMsg::WaitFinished { job_id, reply }).unwrap()
        })
    };
    eventually("the store failure to show", || !t.stats.borrow().store_ok).await;
    // Long after the render ended: nobody sees a result the store does not hold.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let view = t.views.get(&job.job_id).unwrap().clone();
    assert_eq!(view.status, JobStatus::Processing, "{view:?}");
    assert!(!waiter.is_finished(), "the blocking caller waits");
    assert!(
        !completed_sent(&t),
        "no completed webhook for an unsaved result"
    );
    let stored = store.inner.load_jobs().unwrap();
    assert_eq!(stored[0].status, JobStatus::Processing);
    // Space returns: saved within a tick, then shown, answered and announced.
    store.failing.store(false, Ordering::SeqCst);
    let done = waiter.await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(
        store.inner.load_jobs().unwrap()[0].status,
        JobStatus::Completed
    );
    assert_eq!(
        t.views.get(&job.job_id).unwrap().status,
        JobStatus::Completed
    );
    eventually("the store to be ready again", || t.stats.borrow().store_ok).await;
    eventually("the completed webhook", || completed_sent(&t)).await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_webhook_deliverer_is_restarted_and_keeps_every_delivery() {
    let t = tree(1, 10, &[30]).await;
    // The first attempt of the first job's `started` fails: its retry waits 30 s in the outbox.
    t.transport.script.lock().unwrap().push(500);
    let a = submit(&t, "a", 1.0, Some("http://hook/a")).await.unwrap();
    wait(&t, &a).await;
    eventually("the first attempt", || {
        !t.transport.seen.lock().unwrap().is_empty()
    })
    .await;
    // The deliverer dies with that retry pending (and a's completed behind it).
    t.webhooks.kill();
    // The manager restarts it; a new job's webhooks go out through the new one…
    let b = submit(&t, "b", 1.0, Some("http://hook/b")).await.unwrap();
    wait(&t, &b).await;
    let sent = |url: &str, status: &str| {
        t.transport
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u, body, _)| u == url && body["status"] == status)
            .count()
    };
    eventually("b's webhooks", || {
        sent("http://hook/b", "started") == 1 && sent("http://hook/b", "completed") == 1
    })
    .await;
    // …and a's pending ones were reloaded from the store and delivered in order.
    eventually("a's retried webhooks", || {
        sent("http://hook/a", "started") == 2 && sent("http://hook/a", "completed") == 1
    })
    .await;
}
