//! Nothing lost: the real binary as a child process, killed with SIGKILL mid-render and
//! mid-retry-schedule, stopped with SIGTERM, restarted on the same data dir; a burst of jobs and
//! admission control.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const LONG: Duration = Duration::from_secs(300);

/// A `vidbuilder serve` child process.
pub(crate) struct Proc {
    child: Child,
    pub(crate) base: String,
    log: PathBuf,
}

impl Proc {
    /// Starts the binary on an ephemeral port and waits until it listens.
    pub(crate) async fn start(data: &Path, n: usize, env: &[(&str, &str)]) -> Proc {
        let log = data.join(format!("server-{n}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vidbuilder"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "127.0.0.0/8")
            .env("VIDBUILDER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the binary starts");
        let addr = poll(Duration::from_secs(60), "the server to listen", || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().find_map(|l| {
                l.split("addr=")
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap().to_string())
            })
        })
        .await;
        Proc {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    async fn sigterm(mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit after SIGTERM:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    /// The peak resident set size so far (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub(crate) async fn post(
    http: &reqwest::Client,
    base: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let res = http
        .post(format!("{base}/api/generate-video-async"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, res.json().await.unwrap())
}

pub(crate) async fn status(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/api/job-status/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_all_terminal(http: &reqwest::Client, base: &str, ids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        let v = poll(LONG, &format!("job {id} to finish"), || async {
            let v = status(http, base, id).await;
            matches!(v["status"].as_str(), Some("completed" | "failed")).then_some(v)
        })
        .await;
        out.push(v);
    }
    out
}

/// No process is left whose command line mentions `dir` (ffmpeg writes its output there).
async fn no_process_mentions(dir: &Path) {
    let needle = dir.display().to_string();
    poll(
        Duration::from_secs(30),
        "orphaned processes to exit",
        || async {
            let out = Command::new("pgrep")
                .args(["-f", &needle])
                .output()
                .unwrap();
            out.stdout.is_empty().then_some(())
        },
    )
    .await;
}

/// Every job got exactly one `started` and one terminal event by `webhook-id`, and duplicates (if
/// any) carried the same id and body.
fn check_webhooks(got: &[Received], ids: &[String]) {
    let mut by_id: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in got.iter().filter(|r| r.answered == 200) {
        by_id
            .entry(r.headers["webhook-id"].clone())
            .or_default()
            .push(r);
    }
    for id in ids {
        let started = format!("msg_{id}_started");
        let done = format!("msg_{id}_completed");
        assert!(by_id.contains_key(&started), "no started for {id}");
        assert!(by_id.contains_key(&done), "no completed for {id}");
    }
    for (wid, rs) in &by_id {
        assert!(
            rs.iter().all(|r| r.raw == rs[0].raw),
            "different bodies under one webhook-id {wid}"
        );
    }
    assert_eq!(
        by_id.len(),
        ids.len() * 2,
        "{:?}",
        by_id.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_render_then_restart_finishes_every_job() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1"),
        ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1,1,1"),
    ];
    let p = Proc::start(data.path(), 1, &env).await;
    let http = reqwest::Client::new();
    let mut spec = quick_spec(Some(&receiver.url("k")), 6.0);
    spec["quality"] = json!("720p");
    let mut ids = Vec::new();
    for secs in [6.0, 1.0, 1.0] {
        spec["scenes"][0]["duration"] = json!(secs);
        let (code, _, body) = post(&http, &p.base, &spec).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["jobId"].as_str().unwrap().to_string());
    }
    // Kill it while the first job is drawing frames.
    poll(LONG, "the first job to render frames", || async {
        let v = status(&http, &p.base, &ids[0]).await;
        (v["status"] == "processing"
            && v["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("Rendering frames")
            && v["progress"].as_u64() > Some(5))
        .then_some(())
    })
    .await;
    p.sigkill();
    no_process_mentions(data.path()).await;

    let p = Proc::start(data.path(), 2, &env).await;
    let done = wait_all_terminal(&http, &p.base, &ids).await;
    for d in &done {
        assert_eq!(d["status"], "completed", "{d}");
    }
    assert_eq!(
        done[0]["attempt"], 2,
        "the interrupted job ran again: {}",
        done[0]
    );
    assert!(p
        .logs()
        .contains("recovered unfinished jobs from the store"));
    // No partial file survived; the finished files are there.
    let names: Vec<String> = std::fs::read_dir(data.path().join("videos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    let mut want: Vec<String> = ids
        .iter()
        .flat_map(|id| [format!("{id}.mp4"), format!("{id}.jpg")])
        .collect();
    let mut names = names;
    names.sort();
    want.sort();
    assert_eq!(names, want, "each job's video and poster, nothing else");
    let got = receiver.wait_for("k", 6, LONG).await;
    check_webhooks(&got, &ids);
    let f = data.path().join("videos").join(format!("{}.mp4", ids[0]));
    assert!((ffprobe(&f).duration - 6.0).abs() < 0.1);
    p.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_the_retry_schedule_still_delivers_after_restart() {
    let receiver = Receiver::start().await;
    receiver.script("r", &[500, 500]);
    let data = tempfile::tempdir().unwrap();
    let env = [("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "4,4,4")];
    let p = Proc::start(data.path(), 1, &env).await;
    let http = reqwest::Client::new();
    let (code, _, body) = post(&http, &p.base, &quick_spec(Some(&receiver.url("r")), 0.5)).await;
    assert_eq!(code, 202);
    let id = body["jobId"].as_str().unwrap().to_string();
    // The job completes; its `started` failed once and waits for a retry when the server dies.
    let done = wait_all_terminal(&http, &p.base, std::slice::from_ref(&id)).await;
    assert_eq!(done[0]["status"], "completed");
    receiver.wait_for("r", 1, LONG).await;
    p.sigkill();
    assert_eq!(receiver.got("r").len(), 1);

    let p = Proc::start(data.path(), 2, &env).await;
    assert!(
        p.logs()
            .contains("resuming webhook deliveries from the outbox"),
        "{}",
        p.logs()
    );
    let got = receiver.wait_for("r", 4, LONG).await;
    let answered: Vec<(String, u16)> = got
        .iter()
        .map(|r| (r.body["status"].as_str().unwrap().to_string(), r.answered))
        .collect();
    assert_eq!(
        answered,
        vec![
            ("started".into(), 500),
            ("started".into(), 500),
            ("started".into(), 200),
            ("completed".into(), 200)
        ]
    );
    check_webhooks(&got, std::slice::from_ref(&id));
    p.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_renders_finish_or_resume_and_exits_zero() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();

    // A generous grace period: the running render finishes before the process exits.
    let p = Proc::start(data.path(), 1, &[("VIDBUILDER_SHUTDOWN_GRACE_SECS", "120")]).await;
    let (_, _, body) = post(&http, &p.base, &quick_spec(Some(&receiver.url("t")), 2.0)).await;
    let first = body["jobId"].as_str().unwrap().to_string();
    poll(LONG, "the job to start", || async {
        (status(&http, &p.base, &first).await["status"] == "processing").then_some(())
    })
    .await;
    let base = p.base.clone();
    let exit = p.sigterm().await;
    assert!(exit.success(), "{exit:?}");
    let _ = base;

    // A short grace period on a long render: it is stopped and resumes on the next start.
    let p = Proc::start(data.path(), 2, &[("VIDBUILDER_SHUTDOWN_GRACE_SECS", "1")]).await;
    assert_eq!(
        status(&http, &p.base, &first).await["status"],
        "completed",
        "finished within the grace period"
    );
    let mut long = quick_spec(Some(&receiver.url("t")), 20.0);
    long["quality"] = json!("720p");
    let (_, _, body) = post(&http, &p.base, &long).await;
    let second = body["jobId"].as_str().unwrap().to_string();
    poll(LONG, "the long job to render", || async {
        (status(&http, &p.base, &second).await["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Rendering frames"))
        .then_some(())
    })
    .await;
    let exit = p.sigterm().await;
    assert!(exit.success(), "{exit:?}");
    no_process_mentions(data.path()).await;

    let p = Proc::start(data.path(), 3, &[]).await;
    let done = wait_all_terminal(&http, &p.base, std::slice::from_ref(&second)).await;
    assert_eq!(done[0]["status"], "completed", "{}", done[0]);
    assert_eq!(done[0]["attempt"], 2);
    let got = receiver.wait_for("t", 4, LONG).await;
    check_webhooks(&got, &[first, second]);
    p.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_100_jobs_all_complete_and_the_overflow_gets_429() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let p = Proc::start(
        data.path(),
        1,
        &[
            ("VIDBUILDER_MAX_QUEUED_JOBS", "100"),
            ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1"),
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let rss_before = p.rss_kib();

    let mut spec = quick_spec(Some(&receiver.url("burst")), 0.3);
    spec["quality"] = json!("draft");
    spec["fps"] = json!(24);
    let spec = Arc::new(spec);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (http, base, spec) = (http.clone(), p.base.clone(), spec.clone());
        tasks.push(tokio::spawn(async move { post(&http, &base, &spec).await }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (code, _, body) = t.await.unwrap();
        assert_eq!(code, 202, "{body}");
        ids.push(body["jobId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 100);

    // 1,000 more while the queue is full: refused with 429 + Retry-After, nothing breaks.
    let accepted_extra = Arc::new(AtomicUsize::new(0));
    let mut extra_ids = Vec::new();
    let mut refused = 0;
    for chunk in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (http, base, spec) = (http.clone(), p.base.clone(), spec.clone());
            tasks.push(tokio::spawn(async move { post(&http, &base, &spec).await }));
        }
        for t in tasks {
            let (code, retry, body) = t.await.unwrap();
            match code {
                429 => {
                    refused += 1;
                    assert!(retry.unwrap().parse::<u64>().unwrap() > 0);
                    assert_eq!(body["error"], "Too many queued jobs.");
                }
                202 => {
                    accepted_extra.fetch_add(1, Ordering::SeqCst);
                    extra_ids.push(body["jobId"].as_str().unwrap().to_string());
                }
                other => panic!("chunk {chunk}: unexpected {other}: {body}"),
            }
        }
    }
    assert_eq!(refused + extra_ids.len(), 1000);
    assert!(
        refused >= 900,
        "only {refused} of 1000 refused while the queue was full"
    );

    ids.extend(extra_ids);
    let done = wait_all_terminal(&http, &p.base, &ids).await;
    assert!(
        done.iter().all(|d| d["status"] == "completed"),
        "{:?}",
        done.iter().find(|d| d["status"] != "completed")
    );
    let got = receiver.wait_for("burst", ids.len() * 2, LONG).await;
    check_webhooks(&got, &ids);
    let rss_after = p.rss_kib();
    eprintln!(
        "burst: {} jobs, RSS {rss_before} KiB -> {rss_after} KiB",
        ids.len()
    );
    assert!(
        rss_after < rss_before + 512 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    p.sigkill();
}

/// Waits until the job renders (past its first frames) in this process.
async fn wait_rendering(http: &reqwest::Client, base: &str, id: &str) -> Value {
    poll(LONG, &format!("job {id} to render"), || async {
        let v = status(http, base, id).await;
        (v["status"] == "processing" && v["progress"].as_u64().unwrap_or(0) >= 8).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_at_every_crash_fails_after_max_interrupted_attempts_but_sigterm_does_not_count(
) {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1"),
        ("VIDBUILDER_RENDER_MAX_INTERRUPTED_ATTEMPTS", "2"),
        ("VIDBUILDER_SHUTDOWN_GRACE_SECS", "0"),
        ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1,1,1"),
    ];
    let http = reqwest::Client::new();
    let mut spec = quick_spec(Some(&receiver.url("poison")), 30.0);
    spec["quality"] = json!("720p");
    let p = Proc::start(data.path(), 1, &env).await;
    let (code, _, body) = post(&http, &p.base, &spec).await;
    assert_eq!(code, 202, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    wait_rendering(&http, &p.base, &id).await;
    // A graceful stop mid-render: not an interruption.
    assert!(p.sigterm().await.success());
    let p = Proc::start(data.path(), 2, &env).await;
    let v = wait_rendering(&http, &p.base, &id).await;
    assert_eq!(v["attempt"], 2, "{v}");
    p.sigkill();
    // One crash: it runs again.
    let p = Proc::start(data.path(), 3, &env).await;
    let v = wait_rendering(&http, &p.base, &id).await;
    assert_eq!(v["attempt"], 3, "{v}");
    p.sigkill();
    // The second crash while it ran: it fails instead of running again, with its webhook.
    let p = Proc::start(data.path(), 4, &env).await;
    let v = wait_all_terminal(&http, &p.base, std::slice::from_ref(&id)).await;
    assert_eq!(v[0]["status"], "failed", "{}", v[0]);
    let error = v[0]["error"].as_str().unwrap();
    assert!(error.contains("interrupted 2 times"), "{error}");
    let got = receiver.wait_for("poison", 2, LONG).await;
    let failed: Vec<_> = got
        .iter()
        .filter(|r| r.body["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{got:?}");
    assert_eq!(failed[0].body["error"].as_str(), Some(error));
    p.sigkill();
    // No encoder of the killed servers is left behind.
    no_process_mentions(data.path()).await;
}

/// A row that no longer reads back (a corrupt spec, an unusable id) does not stop the server
/// from starting: it is copied to the quarantine table, its job fails with its webhook (or, with
/// no usable id, is removed), and every other job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_quarantined_their_jobs_fail_and_the_server_starts() {
    let receiver = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "1"),
        ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1,1,1"),
    ];
    let http = reqwest::Client::new();
    let p = Proc::start(data.path(), 1, &env).await;
    let mut ids = Vec::new();
    for (name, secs) in [("bad-spec", 30.0), ("bad-id", 1.0), ("fine", 1.0)] {
        let (code, _, body) =
            post(&http, &p.base, &quick_spec(Some(&receiver.url(name)), secs)).await;
        assert_eq!(code, 202, "{body}");
        ids.push(body["jobId"].as_str().unwrap().to_string());
    }
    wait_rendering(&http, &p.base, &ids[0]).await;
    p.sigkill();
    {
        let db = rusqlite::Connection::open(data.path().join("vidbuilder.db")).unwrap();
        let n = db
            .execute(
                "UPDATE jobs SET spec = '{\"theme\": ' WHERE id = ?1",
                [&ids[0]],
            )
            .unwrap();
        assert_eq!(n, 1);
        let n = db
            .execute("UPDATE jobs SET id = 'NOT AN ID' WHERE id = ?1", [&ids[1]])
            .unwrap();
        assert_eq!(n, 1);
    }
    let p = Proc::start(data.path(), 2, &env).await;
    let v = wait_all_terminal(&http, &p.base, &[ids[0].clone(), ids[2].clone()]).await;
    assert_eq!(v[0]["status"], "failed", "{}", v[0]);
    let error = v[0]["error"].as_str().unwrap();
    assert!(error.contains("could not be read back"), "{error}");
    assert_eq!(v[1]["status"], "completed", "{}", v[1]);
    // The job with no usable id is gone: not turned into some other job.
    let res = http
        .get(format!("{}/api/job-status/{}", p.base, ids[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let got = receiver.wait_for("bad-spec", 2, LONG).await;
    let failed: Vec<_> = got
        .iter()
        .filter(|r| r.body["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{got:?}");
    assert_eq!(failed[0].body["jobId"].as_str(), Some(ids[0].as_str()));
    receiver.wait_for("fine", 2, LONG).await;
    let logs = p.logs();
    assert!(logs.contains("quarantine"), "{logs}");
    p.sigkill();
    let db = rusqlite::Connection::open(data.path().join("vidbuilder.db")).unwrap();
    let quarantined: Vec<(String, String)> = db
        .prepare("SELECT job_id, spec FROM quarantine ORDER BY job_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert_eq!(quarantined[0], (ids[0].clone(), "{\"theme\": ".to_string()));
    assert_eq!(quarantined[1].0, "NOT AN ID");
    // A third start reads the repaired rows without quarantining them again.
    let p = Proc::start(data.path(), 3, &env).await;
    assert_eq!(status(&http, &p.base, &ids[0]).await["status"], "failed");
    p.sigkill();
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}
