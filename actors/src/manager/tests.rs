//! The JobManager's decisions, driven without actors: events in, effects and snapshots out.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vidbuilder_domain::events::EventKind;
use vidbuilder_domain::job::{JobId, JobPhase, JobStatus, S3Object};
use vidbuilder_domain::ports::{
    RenderFailure, RenderFailureKind, RenderOutput, RenderPhase, RenderProgress,
};
use vidbuilder_domain::spec::{validate_spec, ValidationContext, VideoSpec};
use vidbuilder_domain::store::JobRecord;

use super::core::{Core, Now};
use super::effects::Effect;
use super::{ManagerSettings, SubmitError};
use crate::ports::Links;

struct TestLinks;

impl Links for TestLinks {
    fn video(&self, job: &JobId) -> String {
        format!("/dl/{job}")
    }
    fn reel(&self, job: &JobId) -> String {
        format!("/dl/{job}/reel")
    }
    fn poster(&self, job: &JobId) -> String {
        format!("/dl/{job}/poster")
    }
    fn output(&self, job: &JobId, ratio: vidbuilder_domain::spec::AspectRatio) -> String {
        format!("/dl/{job}/outputs/{}", ratio.slug())
    }
    fn output_poster(&self, job: &JobId, ratio: vidbuilder_domain::spec::AspectRatio) -> String {
        format!("/dl/{job}/outputs/{}/poster", ratio.slug())
    }
}

fn settings() -> ManagerSettings {
    ManagerSettings {
        max_concurrent: 1,
        max_queued: 3,
        max_queued_per_key: 0,
        out_dir: PathBuf::from("/videos"),
        max_restarts: 2,
        max_interrupted: 3,
        restart_window: Duration::from_secs(600),
        restart_backoff: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(10),
        retention: None,
        tick: Duration::from_secs(1),
        s3_prefix: "pre".into(),
        delete_local_after_upload: false,
        node_name: "local".into(),
        cluster: false,
    }
}

fn spec() -> VideoSpec {
    let mut ctx = ValidationContext::default();
    ctx.themes.insert("corporate".into());
    ctx.default_theme = "corporate".into();
    let body = serde_json::json!({"quality": "draft", "scenes": [
        {"type": "hero-title", "duration": 2, "content": {"title": "Hi"}},
        {"type": "text", "duration": 1, "content": {"body": "there"}}
    ]});
    validate_spec(&body, &ctx).expect("a valid spec")
}

fn core(uploads: bool, s: ManagerSettings) -> Core {
    Core::new(s, Arc::new(TestLinks), uploads)
}

/// Admits a job (the store's part: a seq) and returns its id.
fn admit(c: &mut Core, seq: i64, now: Now) -> JobId {
    c.admission(&None).expect("admitted");
    let mut record = Core::new_record(spec(), Some("https://hook.example/x".into()), None, now);
    record.seq = seq;
    let id = record.id.clone();
    assert!(c.admit(record, now).is_empty());
    id
}

fn later(now: Now, secs: u64) -> Now {
    Now {
        at: now.at + Duration::from_secs(secs),
        wall: now.wall + chrono::Duration::seconds(secs as i64),
    }
}

fn output(id: &JobId, reel: bool) -> RenderOutput {
    RenderOutput {
        video: PathBuf::from(format!("/videos/{id}.mp4")),
        reel: reel.then(|| PathBuf::from(format!("/videos/{id}-reel.mp4"))),
        duration_secs: 3.0,
        width: 640,
        height: 360,
        frames: 90,
        poster: Some(PathBuf::from(format!("/videos/{id}.jpg"))),
        reel_poster: None,
        extras: Vec::new(),
    }
}

fn spawned(effects: &[Effect]) -> Vec<(JobId, u32)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SpawnRender(r) => Some((r.job_id.clone(), r.attempt)),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<EventKind> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist {
                event: Some(ev), ..
            } => Some(ev.status),
            _ => None,
        })
        .collect()
}

fn failure(detail: &str) -> RenderFailure {
    RenderFailure::new(RenderFailureKind::Encoder, detail)
}

#[test]
fn admission_refuses_a_full_queue_and_a_drain() {
    let now = Now::system();
    let mut c = core(false, settings());
    let ids: Vec<_> = (1..=3).map(|seq| admit(&mut c, seq, now)).collect();
    assert_eq!(
        c.admission(&None),
        Err(SubmitError::QueueFull {
            queued: 3,
            retry_after_secs: 20
        })
    );
    assert_eq!(c.take_dirty().len(), 3);
    let positions: Vec<_> = ids
        .iter()
        .map(|id| c.snapshot(id).unwrap().queue_position)
        .collect();
    assert_eq!(positions, vec![Some(1), Some(2), Some(3)]);
    let mut c = core(false, settings());
    let effects = c.drain(Duration::from_secs(5), now);
    assert!(
        matches!(effects.as_slice(), [Effect::DrainDone(r)] if r.finished == 0 && r.interrupted == 0)
    );
    assert_eq!(c.admission(&None), Err(SubmitError::ShuttingDown));
}

/// Admits a job of `owner` and returns its id.
fn admit_for(c: &mut Core, owner: &str, seq: i64, now: Now) -> Result<JobId, SubmitError> {
    let owner = Some(owner.to_string());
    c.admission(&owner)?;
    let mut record = Core::new_record(spec(), Some("https://hook.example/x".into()), owner, now);
    record.seq = seq;
    let id = record.id.clone();
    assert!(c.admit(record, now).is_empty());
    Ok(id)
}

#[test]
fn keys_have_a_queue_quota_and_take_turns() {
    let now = Now::system();
    let mut c = core(
        false,
        ManagerSettings {
            max_queued: 100,
            max_queued_per_key: 3,
            ..settings()
        },
    );
    // Alice fills her quota (one runs, three wait); a fourth waiting job is refused.
    let running = admit_for(&mut c, "alice", 1, now).unwrap();
    assert_eq!(spawned(&c.pump(now)), vec![(running.clone(), 1)]);
    let alice: Vec<_> = (2..=4)
        .map(|seq| admit_for(&mut c, "alice", seq, now).unwrap())
        .collect();
    assert_eq!(
        admit_for(&mut c, "alice", 5, now),
        Err(SubmitError::KeyQueueFull {
            queued: 3,
            limit: 3,
            retry_after_secs: 20
        })
    );
    // Bob, arriving last, is second in line, not fourth.
    let bob = admit_for(&mut c, "bob", 6, now).unwrap();
    let pos = |c: &Core, id: &JobId| c.snapshot(id).unwrap().queue_position;
    assert_eq!(pos(&c, &bob), Some(2));
    assert_eq!(
        alice.iter().map(|id| pos(&c, id)).collect::<Vec<_>>(),
        vec![Some(1), Some(3), Some(4)]
    );
    // And jobs start in that order.
    let mut started = Vec::new();
    let mut current = running;
    for i in 0..4 {
        let effects = c.render_done(&current, 1, Ok(output(&current, false)), later(now, i + 1));
        let next = spawned(&effects);
        assert_eq!(next.len(), 1, "{effects:?}");
        current = next[0].0.clone();
        started.push(current.clone());
    }
    assert_eq!(
        started,
        vec![alice[0].clone(), bob, alice[1].clone(), alice[2].clone()]
    );
}

#[test]
fn fifo_within_the_concurrency_limit_and_started_once() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    let b = admit(&mut c, 2, now);
    let effects = c.pump(now);
    assert_eq!(spawned(&effects), vec![(a.clone(), 1)]);
    assert_eq!(events(&effects), vec![EventKind::Started]);
    assert_eq!(c.pump(now), vec![], "one slot: nothing more starts");
    let snap = c.snapshot(&b).unwrap();
    assert_eq!(
        (snap.status, snap.queue_position),
        (JobStatus::Queued, Some(1))
    );
    let snap = c.snapshot(&a).unwrap();
    assert_eq!(
        (snap.status, snap.phase, snap.attempt),
        (JobStatus::Processing, JobPhase::Starting, Some(1))
    );

    // Done: completed with its webhook, waiters answered, the next job starts.
    let effects = c.render_done(&a, 1, Ok(output(&a, false)), later(now, 7));
    assert_eq!(
        events(&effects),
        vec![EventKind::Completed, EventKind::Started]
    );
    assert!(effects.contains(&Effect::Finished(a.clone())));
    assert!(effects.contains(&Effect::StopRender(a.clone())));
    assert_eq!(spawned(&effects), vec![(b.clone(), 1)]);
    let done = c.snapshot(&a).unwrap();
    let result = done.result.expect("a result");
    assert_eq!(result.video_url, format!("/dl/{a}"));
    assert_eq!(result.poster_url, Some(format!("/dl/{a}/poster")));
    assert_eq!(result.render_time, "7s");
    assert_eq!(result.scenes, 2);
    assert!(!result.s3_upload.enabled);
    assert_eq!(
        done.files.video,
        Some(PathBuf::from(format!("/videos/{a}.mp4")))
    );
    // A second result for the same attempt changes nothing.
    assert_eq!(c.render_done(&a, 1, Err(failure("late")), now), vec![]);
}

#[test]
fn stale_progress_is_ignored_and_phases_are_facts() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    c.pump(now);
    let p = |phase, frames_done| RenderProgress {
        phase,
        frames_done,
        frames_total: 90,
    };
    c.progress(&a, 2, p(RenderPhase::Rendering, 50), now);
    assert_eq!(c.snapshot(&a).unwrap().phase, JobPhase::Starting);
    c.progress(&a, 1, p(RenderPhase::Rendering, 45), now);
    assert_eq!(
        c.snapshot(&a).unwrap().phase,
        JobPhase::Rendering {
            frames_done: 45,
            frames_total: 90
        }
    );
    c.progress(&a, 1, p(RenderPhase::Encoding, 90), now);
    assert_eq!(c.snapshot(&a).unwrap().phase, JobPhase::Encoding);
}

#[test]
fn failed_attempts_back_off_exponentially_then_fail_the_job() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    c.pump(now);
    let effects = c.render_done(&a, 1, Err(failure("first")), now);
    assert!(effects.contains(&Effect::ScheduleRestart {
        job: a.clone(),
        after: Duration::from_secs(2)
    }));
    assert!(
        matches!(c.snapshot(&a).unwrap().phase, JobPhase::Retrying { after, .. } if after == Duration::from_secs(2))
    );
    // The restart is attempt 2, without a second `started`.
    let effects = c.restart_due(&a, later(now, 2));
    assert_eq!(spawned(&effects), vec![(a.clone(), 2)]);
    assert_eq!(events(&effects), vec![]);
    let effects = c.render_done(&a, 2, Err(failure("second")), later(now, 3));
    assert!(effects.contains(&Effect::ScheduleRestart {
        job: a.clone(),
        after: Duration::from_secs(4)
    }));
    // A job admitted meanwhile waits behind the restart, which jumps the queue.
    let b = admit(&mut c, 2, now);
    let effects = c.restart_due(&a, later(now, 7));
    assert_eq!(spawned(&effects), vec![(a.clone(), 3)]);
    let effects = c.render_done(&a, 3, Err(failure("third")), later(now, 8));
    assert_eq!(
        events(&effects),
        vec![EventKind::Failed, EventKind::Started]
    );
    assert_eq!(spawned(&effects), vec![(b, 1)]);
    let snap = c.snapshot(&a).unwrap();
    assert_eq!(snap.status, JobStatus::Failed);
    assert_eq!(snap.error.as_deref(), Some("Failed to render video: third"));
    // Restarts outside the window do not count.
    let mut c = core(
        false,
        ManagerSettings {
            restart_window: Duration::from_secs(5),
            ..settings()
        },
    );
    let a = admit(&mut c, 1, now);
    c.pump(now);
    for (n, t) in [(1, 0), (2, 10), (3, 20), (4, 30)] {
        let effects = c.render_done(&a, n, Err(failure("again")), later(now, t));
        assert!(
            matches!(effects.as_slice(), [Effect::StopRender(_), Effect::ScheduleRestart { after, .. }] if *after == Duration::from_secs(2)),
            "attempt {n}: {effects:?}"
        );
        c.restart_due(&a, later(now, t + 2));
    }
}

#[test]
fn input_that_cannot_be_rendered_fails_at_once_without_restarts() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    c.pump(now);
    let missing = RenderFailure::new(
        RenderFailureKind::InvalidInput,
        "scenes[0].content.src: image demo/gone.jpg could not be read: not found",
    );
    let effects = c.render_done(&a, 1, Err(missing), now);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::ScheduleRestart { .. })),
        "{effects:?}"
    );
    assert_eq!(events(&effects), vec![EventKind::Failed]);
    let snap = c.snapshot(&a).unwrap();
    assert_eq!(snap.status, JobStatus::Failed);
    assert_eq!(
        snap.error.as_deref(),
        Some("Failed to render video: scenes[0].content.src: image demo/gone.jpg could not be read: not found")
    );
    // every other kind is retried
    for kind in [
        RenderFailureKind::Crashed,
        RenderFailureKind::Stalled,
        RenderFailureKind::Encoder,
        RenderFailureKind::Io,
    ] {
        assert!(super::core::retried(kind), "{kind:?}");
    }
    assert!(!super::core::retried(RenderFailureKind::InvalidInput));
}

#[test]
fn a_stalled_render_is_killed_and_fails_as_stalled() {
    let now = Now::system();
    let mut c = core(
        false,
        ManagerSettings {
            max_restarts: 0,
            ..settings()
        },
    );
    let a = admit(&mut c, 1, now);
    c.pump(now);
    assert_eq!(c.check_liveness(later(now, 10)), vec![]);
    assert_eq!(
        c.check_liveness(later(now, 11)),
        vec![Effect::KillRender(a.clone())]
    );
    assert_eq!(c.check_liveness(later(now, 12)), vec![], "killed once");
    let crash = RenderFailure::new(RenderFailureKind::Crashed, "render worker stopped (killed)");
    let effects = c.render_exited(&a, crash, later(now, 12));
    assert_eq!(events(&effects), vec![EventKind::Failed]);
    assert_eq!(
        c.snapshot(&a).unwrap().error.as_deref(),
        Some("Failed to render video: render stalled (no progress for 10s)")
    );
}

#[test]
fn drain_waits_for_renders_then_stops_them_at_the_deadline() {
    let now = Now::system();
    let mut c = core(
        false,
        ManagerSettings {
            max_concurrent: 2,
            ..settings()
        },
    );
    let a = admit(&mut c, 1, now);
    let b = admit(&mut c, 2, now);
    let q = admit(&mut c, 3, now);
    c.pump(now);
    assert_eq!(c.drain(Duration::from_secs(30), now), vec![]);
    // One finishes during the grace period; nothing new starts.
    let effects = c.render_done(&a, 1, Ok(output(&a, false)), later(now, 5));
    assert!(spawned(&effects).is_empty());
    assert_eq!(c.check_drain(later(now, 29)), vec![]);
    let effects = c.check_drain(later(now, 30));
    assert_eq!(effects[0], Effect::KillRender(b.clone()));
    // Marked as stopped on purpose (not an interruption the next start would count).
    assert_eq!(
        effects[1],
        Effect::Persist {
            job: b.clone(),
            event: None
        }
    );
    assert!(c.record(&b).unwrap().drained);
    assert!(matches!(effects[2], Effect::DrainDone(r) if r.finished == 1 && r.interrupted == 1));
    // The killed render's exit is not a failure: it stays `processing` to resume.
    let exit = RenderFailure::new(RenderFailureKind::Crashed, "killed");
    assert_eq!(c.render_exited(&b, exit, later(now, 31)), vec![]);
    assert_eq!(c.record(&b).unwrap().status, JobStatus::Processing);
    assert_eq!(c.record(&q).unwrap().status, JobStatus::Queued);
}

#[test]
fn recovery_requeues_unfinished_jobs_in_admission_order() {
    let now = Now::system();
    let record = |seq: i64, status| {
        let mut r = Core::new_record(spec(), None, None, now);
        r.seq = seq;
        r.status = status;
        r
    };
    let records = vec![
        record(1, JobStatus::Completed),
        record(2, JobStatus::Processing),
        record(3, JobStatus::Queued),
        record(4, JobStatus::Failed),
    ];
    let ids: Vec<_> = records.iter().map(|r| r.id.clone()).collect();
    let mut c = core(false, settings());
    // The interrupted job's count is saved; then the partial files go.
    assert_eq!(
        c.recover(records, now),
        vec![
            Effect::Persist {
                job: ids[1].clone(),
                event: None
            },
            Effect::DiscardPartials
        ]
    );
    assert_eq!(c.record(&ids[1]).unwrap().interrupted, 1);
    let interrupted = c.snapshot(&ids[1]).unwrap();
    assert_eq!(
        (
            interrupted.status,
            interrupted.phase,
            interrupted.queue_position
        ),
        (JobStatus::Queued, JobPhase::Resuming, Some(1))
    );
    assert_eq!(c.snapshot(&ids[2]).unwrap().queue_position, Some(2));
    assert_eq!(c.snapshot(&ids[0]).unwrap().status, JobStatus::Completed);
    let effects = c.pump(now);
    assert_eq!(spawned(&effects), vec![(ids[1].clone(), 1)]);
    assert_eq!(events(&effects), vec![EventKind::Started]);
}

#[test]
fn uploads_lost_with_their_worker_are_redone() {
    let now = Now::system();
    let mut c = core(true, settings());
    let a = admit(&mut c, 1, now);
    c.pump(now);
    let first = c.render_done(&a, 1, Ok(output(&a, true)), now);
    let uploads = |effects: &[Effect]| {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Upload { job, files, .. } => Some((job.clone(), files.len())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(uploads(&first), vec![(a.clone(), 2)]);
    assert_eq!(uploads(&c.redo_uploads()), vec![(a.clone(), 2)]);
    // A finished job has nothing to redo.
    let b = admit(&mut c, 2, now);
    c.pump(now);
    c.render_done(&b, 1, Err(failure("no")), now);
    assert_eq!(uploads(&c.redo_uploads()), vec![(a, 2)]);
}

#[test]
fn uploads_come_before_completion_with_contract_keys() {
    let now = Now::system();
    let mut c = core(
        true,
        ManagerSettings {
            delete_local_after_upload: true,
            ..settings()
        },
    );
    let a = admit(&mut c, 1, now);
    c.pump(now);
    let effects = c.render_done(&a, 1, Ok(output(&a, true)), now);
    let day = &c.record(&a).unwrap().created_at[..10];
    let Some(Effect::Upload { files, attempt, .. }) =
        effects.iter().find(|e| matches!(e, Effect::Upload { .. }))
    else {
        panic!("no upload: {effects:?}");
    };
    assert_eq!(*attempt, 1);
    let keys: Vec<_> = files.iter().map(|f| f.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            format!("pre/videos/{day}/standard/{a}.mp4"),
            format!("pre/videos/{day}/reels/{a}.mp4")
        ]
    );
    assert_eq!(events(&effects), vec![], "not completed before the upload");
    assert_eq!(
        c.record(&a).unwrap().video,
        Some(PathBuf::from(format!("/videos/{a}.mp4")))
    );
    c.upload_progress(&a, 1, 50, 200);
    assert_eq!(
        c.snapshot(&a).unwrap().phase,
        JobPhase::Uploading {
            bytes_done: 50,
            bytes_total: 200
        }
    );
    let object = |k: &str| S3Object {
        s3_key: k.into(),
        signed_url: format!("https://s3/{k}"),
        expires_in: "7 days".into(),
    };
    let effects = c.upload_done(&a, 1, Ok(vec![object(&keys[0]), object(&keys[1])]), now);
    assert_eq!(events(&effects), vec![EventKind::Completed]);
    let removed = effects.iter().find_map(|e| match e {
        Effect::RemoveFiles { files, .. } => Some(files.len()),
        _ => None,
    });
    assert_eq!(removed, Some(3), "both videos and the poster go");
    let snap = c.snapshot(&a).unwrap();
    let result = snap.result.unwrap();
    assert!(result.s3_upload.enabled);
    assert_eq!(result.s3_upload.reels.unwrap().s3_key, keys[1]);
    assert_eq!(result.poster_url, None, "no local poster to serve");
    assert_eq!(snap.files.video, None);
    assert_eq!(
        c.stored_key(&a, Some(vidbuilder_domain::spec::AspectRatio::Vertical)),
        Some(keys[1].clone())
    );

    // A failed upload fails the job; the render stays downloadable here.
    let b = admit(&mut c, 2, now);
    c.pump(now);
    c.render_done(&b, 1, Ok(output(&b, false)), now);
    let effects = c.upload_done(&b, 1, Err("S3 said no".into()), now);
    assert_eq!(events(&effects), vec![EventKind::Failed]);
    let snap = c.snapshot(&b).unwrap();
    assert_eq!(
        snap.error.as_deref(),
        Some("Failed to upload to S3: S3 said no")
    );
    assert!(snap.files.video.is_some());
}

#[test]
fn a_restart_uploads_what_was_rendered_or_renders_again() {
    let now = Now::system();
    let mut record = Core::new_record(spec(), None, None, now);
    record.status = JobStatus::Processing;
    record.attempt = 1;
    record.started_at = Some("2026-01-01T00:00:00.000Z".into());
    record.video = Some(PathBuf::from("/videos/x.mp4"));
    let id = record.id.clone();
    let mut c = core(true, settings());
    c.recover(vec![record.clone()], now);
    let effects = c.pump(now);
    assert_eq!(
        events(&effects),
        vec![],
        "started was sent before the restart"
    );
    assert!(effects.contains(&Effect::ResumeUpload {
        job: id.clone(),
        video: PathBuf::from("/videos/x.mp4"),
        reel: None,
        extras: Vec::new(),
    }));
    let effects = c.resume_upload(
        &id,
        Some(PathBuf::from("/videos/x.mp4")),
        None,
        [Some(PathBuf::from("/videos/x.jpg")), None],
        Vec::new(),
        now,
    );
    let Some(Effect::Upload { files, .. }) = effects
        .iter()
        .find(|e| matches!(e, Effect::Upload { attempt: 2, .. }))
    else {
        panic!("{effects:?}");
    };
    let key = files[0].key.clone();
    let stored = S3Object {
        s3_key: key.clone(),
        signed_url: format!("https://s3/{key}"),
        expires_in: "7 days".into(),
    };
    c.upload_done(&id, 2, Ok(vec![stored]), now);
    let result = c.record(&id).unwrap().result.clone().unwrap();
    assert_eq!(
        result.poster_url.as_deref(),
        Some(format!("/dl/{id}/poster").as_str()),
        "the poster rendered before the restart is announced"
    );

    let mut c = core(true, settings());
    c.recover(vec![record], now);
    c.pump(now);
    let effects = c.resume_upload(&id, None, None, [None, None], Vec::new(), now);
    // The files are gone: a new attempt renders, first in line.
    assert_eq!(spawned(&effects), vec![(id.clone(), 3)]);
    assert_eq!(c.record(&id).unwrap().video, None);
}

#[test]
fn expiry_removes_files_and_the_job_leaves_memory() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    c.pump(now);
    c.render_done(&a, 1, Ok(output(&a, true)), now);
    let record: JobRecord = c.record(&a).unwrap().clone();
    let effects = c.expire(vec![record]);
    let Effect::RemoveFiles { files, .. } = &effects[0] else {
        panic!("{effects:?}");
    };
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            format!("{a}.mp4"),
            format!("{a}.jpg"),
            format!("{a}-reel.mp4"),
            format!("{a}-reel.jpg")
        ]
    );
    assert_eq!(effects[1], Effect::Expire(a.clone()));
    // Expired, the job leaves memory (the store's tombstone answers 410).
    assert!(c.expired(&a));
    assert!(c.snapshot(&a).is_none());
    assert!(c.take_dirty().iter().all(|s| s.job_id != a));
    assert_eq!(c.stats().total, 0);
}

#[test]
fn a_render_that_cannot_start_fails_its_job_and_frees_the_slot() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    let b = admit(&mut c, 2, now);
    assert_eq!(spawned(&c.pump(now)), vec![(a.clone(), 1)]);
    let effects = c.spawn_failed(&a, "no threads".into(), now);
    assert_eq!(
        events(&effects),
        vec![EventKind::Failed, EventKind::Started]
    );
    assert_eq!(spawned(&effects), vec![(b, 1)]);
    assert_eq!(
        c.snapshot(&a).unwrap().error.as_deref(),
        Some("Failed to start render worker: no threads")
    );
}

// ---- cluster mode ----

fn cluster_settings(local: usize) -> ManagerSettings {
    ManagerSettings {
        max_concurrent: local,
        cluster: true,
        node_name: "coord".into(),
        max_queued: 100,
        max_queued_per_key: 0,
        ..settings()
    }
}

/// The dispatches among `effects`: (node, job, attempt).
fn dispatched(effects: &[Effect]) -> Vec<(String, JobId, u32)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Dispatch { node, request, .. } => {
                Some((node.clone(), request.job_id.clone(), request.attempt))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_pure_coordinator_waits_for_workers_then_spreads_attempts_round_robin() {
    let now = Now::system();
    let mut c = core(false, cluster_settings(0));
    let ids: Vec<_> = (1..=5).map(|s| admit(&mut c, s, now)).collect();
    assert!(c.pump(now).is_empty(), "no worker yet: nothing starts");
    let mut got = dispatched(&c.node_up("w1", 2, now));
    got.extend(dispatched(&c.node_up("w2", 2, now)));
    // w1 took two (it alone had free slots), then w2 came with the most free slots.
    let nodes: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(nodes, vec!["w1", "w1", "w2", "w2"]);
    assert_eq!(got[0].1, ids[0]);
    let snap = c.snapshot(&ids[0]).unwrap();
    assert_eq!((snap.node.as_deref(), snap.attempt), (Some("w1"), Some(1)));
    assert_eq!(c.snapshot(&ids[4]).unwrap().queue_position, Some(1));
    let slots = c.nodes();
    assert_eq!(slots[0].name, "coord");
    assert_eq!(slots[0].capacity, 0);
    assert!(slots.iter().filter(|n| !n.local).all(|n| n.running == 2));
}

#[test]
fn ties_go_to_workers_before_the_coordinator_and_alternate_between_them() {
    let now = Now::system();
    let mut c = core(false, cluster_settings(1));
    c.node_up("w1", 1, now);
    c.node_up("w2", 1, now);
    for s in 1..=3 {
        admit(&mut c, s, now);
    }
    let effects = c.pump(now);
    let remote: Vec<String> = dispatched(&effects).into_iter().map(|d| d.0).collect();
    assert_eq!(remote, vec!["w1", "w2"]);
    assert_eq!(spawned(&effects).len(), 1, "the coordinator is last");
}

#[test]
fn a_lost_node_fails_its_attempts_over_with_a_new_attempt_number() {
    let now = Now::system();
    let mut c = core(false, cluster_settings(0));
    let a = admit(&mut c, 1, now);
    c.node_up("w1", 1, now);
    c.node_up("w2", 1, now);
    let b = admit(&mut c, 2, now);
    c.pump(now);
    let on_w1 = c.snapshot(&a).unwrap();
    assert_eq!(on_w1.node.as_deref(), Some("w1"));
    assert_eq!(c.snapshot(&b).unwrap().node.as_deref(), Some("w2"));
    // w1 is lost: its attempt is handled like a crash (a restart with backoff).
    let effects = c.node_down("w1", "no heartbeat for 10.0s", now);
    let Some(Effect::ScheduleRestart { job, .. }) = effects
        .iter()
        .find(|e| matches!(e, Effect::ScheduleRestart { .. }))
    else {
        panic!("{effects:?}");
    };
    assert_eq!(job, &a);
    assert!(matches!(
        c.snapshot(&a).unwrap().phase,
        JobPhase::Retrying { .. }
    ));
    // Its late progress and result are ignored.
    let p = RenderProgress {
        phase: RenderPhase::Rendering,
        frames_done: 5,
        frames_total: 10,
    };
    c.progress(&a, 1, p, now);
    assert!(c.render_done(&a, 1, Ok(output(&a, false)), now).is_empty());
    assert!(!c.is_current(&a, 1, "w1"));
    // w2 finishes b; the restart of a goes first in line, to w2, as attempt 2.
    c.render_done(&b, 1, Ok(output(&b, false)), now);
    let effects = c.restart_due(&a, later(now, 2));
    assert_eq!(dispatched(&effects), vec![("w2".into(), a.clone(), 2)]);
    // The stale attempt 1 that w1 still reports is superseded; attempt 2 on w2 is not.
    let reported = vec![(a.clone(), 1)];
    assert_eq!(c.superseded("w1", &reported), reported);
    assert!(c.superseded("w2", &[(a.clone(), 2)]).is_empty());
    assert_eq!(c.placement(&a), Some(("w2".into(), 2, false)));
}

#[test]
fn losing_nodes_counts_against_restart_intensity() {
    let now = Now::system();
    let mut c = core(false, cluster_settings(0));
    let a = admit(&mut c, 1, now);
    let mut t = now;
    for (round, node) in ["w1", "w2", "w3"].into_iter().enumerate() {
        c.node_up(node, 1, t);
        c.pump(t);
        let effects = c.node_down(node, "gone", t);
        if round < 2 {
            assert!(
                effects
                    .iter()
                    .any(|e| matches!(e, Effect::ScheduleRestart { .. })),
                "round {round}: {effects:?}"
            );
            t = later(t, 10);
            c.restart_due(&a, t);
        } else {
            assert_eq!(events(&effects), vec![EventKind::Failed], "{effects:?}");
        }
    }
    let snap = c.snapshot(&a).unwrap();
    assert_eq!(snap.status, JobStatus::Failed);
    assert!(snap.error.unwrap().contains("node w3 was lost"));
}

#[test]
fn a_remote_result_is_fetched_once_and_a_stalled_remote_render_is_cancelled_there() {
    let now = Now::system();
    let mut c = core(false, cluster_settings(0));
    let a = admit(&mut c, 1, now);
    let b = admit(&mut c, 2, now);
    c.node_up("w1", 2, now);
    c.pump(now);
    assert!(c.remote_rendered(&a, 1, "w1", now));
    assert!(!c.remote_rendered(&a, 1, "w1", now), "a re-sent result");
    assert!(!c.remote_rendered(&a, 1, "w2", now), "another node");
    assert!(!c.remote_rendered(&a, 2, "w1", now), "another attempt");
    assert_eq!(c.snapshot(&a).unwrap().phase, JobPhase::Finalising);
    // b goes silent: it is cancelled on its worker and retried.
    let effects = c.check_liveness(later(now, 11));
    assert!(effects.contains(&Effect::CancelRemote {
        node: "w1".into(),
        job: b.clone(),
        attempt: 1
    }));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::ScheduleRestart { job, .. } if job == &b)));
    assert!(matches!(
        c.snapshot(&b).unwrap().phase,
        JobPhase::Retrying { .. }
    ));
}

#[test]
fn a_single_node_names_itself_and_keeps_one_slot_at_least() {
    let now = Now::system();
    let mut c = core(
        false,
        ManagerSettings {
            max_concurrent: 0,
            node_name: "solo".into(),
            ..settings()
        },
    );
    let a = admit(&mut c, 1, now);
    assert_eq!(spawned(&c.pump(now)), vec![(a.clone(), 1)]);
    assert_eq!(c.snapshot(&a).unwrap().node.as_deref(), Some("solo"));
    assert_eq!(c.record(&a).unwrap().node.as_deref(), Some("solo"));
}

// ---- poison jobs ----

fn interrupted_record(interrupted: u32, drained: bool, now: Now) -> JobRecord {
    let mut r = Core::new_record(spec(), Some("https://hook.example/x".into()), None, now);
    r.status = JobStatus::Processing;
    r.attempt = interrupted + 1;
    r.started_at = Some("2026-01-01T00:00:00.000Z".into());
    r.interrupted = interrupted;
    r.drained = drained;
    r
}

#[test]
fn a_job_interrupted_by_crashes_max_times_fails_instead_of_running_again() {
    let now = Now::system();
    let mut c = core(false, settings());
    let fresh = interrupted_record(0, false, now);
    let poison = interrupted_record(2, false, now);
    let drained = interrupted_record(2, true, now);
    let (f, p, d) = (fresh.id.clone(), poison.id.clone(), drained.id.clone());
    let effects = c.recover(vec![fresh, poison, drained], now);
    // Counted durably: every processing job's record is saved again.
    for id in [&f, &p, &d] {
        assert!(effects.contains(&Effect::Persist {
            job: id.clone(),
            event: None
        }));
    }
    assert_eq!(c.record(&f).unwrap().interrupted, 1);
    assert_eq!(events(&effects), vec![EventKind::Failed], "{effects:?}");
    let snap = c.snapshot(&p).unwrap();
    assert_eq!(snap.status, JobStatus::Failed);
    assert!(
        snap.error
            .as_deref()
            .unwrap()
            .contains("interrupted 3 times"),
        "{snap:?}"
    );
    // The drained one did not count, and runs again; so does the fresh one.
    assert_eq!(c.record(&d).unwrap().interrupted, 2);
    assert!(!c.record(&d).unwrap().drained);
    let started: Vec<JobId> = spawned(&c.pump(now)).into_iter().map(|s| s.0).collect();
    assert_eq!(started, vec![f.clone()], "one slot: the first in line");
    assert_eq!(c.snapshot(&d).unwrap().queue_position, Some(1));
}

#[test]
fn a_drain_marks_what_it_stops_so_the_next_start_does_not_count_it() {
    let now = Now::system();
    let mut c = core(false, settings());
    let a = admit(&mut c, 1, now);
    let b = admit(&mut c, 2, now);
    c.pump(now);
    c.drain(Duration::from_secs(5), now);
    let effects = c.check_drain(later(now, 6));
    assert!(effects.contains(&Effect::KillRender(a.clone())));
    assert!(effects.contains(&Effect::Persist {
        job: a.clone(),
        event: None
    }));
    assert!(c.record(&a).unwrap().drained);
    assert!(!c.record(&b).unwrap().drained, "queued: never started");
    // Restarted on those records: a is not counted.
    let records = vec![c.record(&a).unwrap().clone()];
    let mut next = core(false, settings());
    next.recover(records, now);
    assert_eq!(next.record(&a).unwrap().interrupted, 0);
}

#[test]
fn cancel_stops_what_the_job_is_doing_and_fails_it_once() {
    let now = Now::system();
    let mut c = core(false, settings());
    let running = admit(&mut c, 1, now);
    let queued = admit(&mut c, 2, now);
    let third = admit(&mut c, 3, now);
    assert_eq!(spawned(&c.pump(now)), vec![(running.clone(), 1)]);

    // A queued job leaves the queue at once; the one behind it moves up.
    let fx = c.cancel(&queued, now).expect("cancelled");
    assert_eq!(events(&fx), vec![EventKind::Failed]);
    assert!(spawned(&fx).is_empty(), "the only slot is still taken");
    let snap = c.snapshot(&queued).unwrap();
    assert_eq!(
        (snap.status, snap.error.as_deref(), snap.cancelled),
        (JobStatus::Failed, Some("Cancelled"), true)
    );
    assert_eq!(c.snapshot(&third).unwrap().queue_position, Some(1));
    let failed = fx
        .iter()
        .find_map(|e| match e {
            Effect::Persist {
                event: Some(ev), ..
            } => Some(ev.clone()),
            _ => None,
        })
        .unwrap();
    assert!(failed.cancelled && failed.error.as_deref() == Some("Cancelled"));

    // A running render is killed, its slot is free, and the next job starts in it.
    let fx = c.cancel(&running, now).expect("cancelled");
    assert!(fx.contains(&Effect::KillRender(running.clone())), "{fx:?}");
    // Its failed event, then the next job's started event.
    assert_eq!(events(&fx), vec![EventKind::Failed, EventKind::Started]);
    assert_eq!(spawned(&fx), vec![(third.clone(), 1)]);
    // Its exit, when it comes, changes nothing more.
    let exit = c.render_exited(&running, failure("killed"), now);
    assert!(exit.is_empty(), "{exit:?}");
    assert_eq!(c.stats().running, 1);

    // Finished jobs cannot be cancelled; unknown ones are unknown.
    assert_eq!(
        c.cancel(&running, now),
        Err(super::CancelError::Finished(JobStatus::Failed))
    );
    assert_eq!(
        c.cancel(&JobId::new(), now),
        Err(super::CancelError::Unknown)
    );
    let done = c.render_done(&third, 1, Ok(output(&third, false)), now);
    assert_eq!(events(&done), vec![EventKind::Completed]);
    assert_eq!(
        c.cancel(&third, now),
        Err(super::CancelError::Finished(JobStatus::Completed))
    );
}

#[test]
fn cancel_during_an_upload_removes_the_rendered_files() {
    let now = Now::system();
    let mut c = core(true, settings());
    let id = admit(&mut c, 1, now);
    c.pump(now);
    let fx = c.render_done(&id, 1, Ok(output(&id, true)), now);
    assert!(fx.iter().any(|e| matches!(e, Effect::Upload { .. })));
    let fx = c.cancel(&id, now).expect("cancelled");
    let removed: Vec<PathBuf> = fx
        .iter()
        .flat_map(|e| match e {
            Effect::RemoveFiles { files, .. } => files.clone(),
            _ => Vec::new(),
        })
        .collect();
    for f in [
        format!("/videos/{id}.mp4"),
        format!("/videos/{id}-reel.mp4"),
        format!("/videos/{id}.jpg"),
    ] {
        assert!(removed.contains(&PathBuf::from(&f)), "{f} in {removed:?}");
    }
    let snap = c.snapshot(&id).unwrap();
    assert!(snap.cancelled && snap.files.video.is_none());
    // The upload's late result is stale.
    assert!(c.upload_done(&id, 1, Ok(Vec::new()), now).is_empty());
}

#[test]
fn every_aspect_ratio_is_uploaded_announced_resumed_and_removed() {
    use vidbuilder_domain::ports::ExtraOutput;
    use vidbuilder_domain::spec::AspectRatio;
    let now = Now::system();
    let mut c = core(true, settings());
    c.admission(&None).expect("admitted");
    let mut ctx = ValidationContext::default();
    ctx.themes.insert("corporate".into());
    ctx.default_theme = "corporate".into();
    let body = serde_json::json!({"quality": "draft", "format": "webm",
        "aspectRatios": ["1:1", "4:5", "9:16"],
        "scenes": [{"type": "hero-title", "duration": 2, "content": {"title": "Hi"}}]});
    let spec = validate_spec(&body, &ctx).unwrap();
    let mut record = Core::new_record(spec, None, None, now);
    record.seq = 1;
    let a = record.id.clone();
    c.admit(record, now);
    c.pump(now);
    let out = RenderOutput {
        video: PathBuf::from(format!("/videos/{a}.webm")),
        reel: Some(PathBuf::from(format!("/videos/{a}-reel.webm"))),
        reel_poster: Some(PathBuf::from(format!("/videos/{a}-reel.jpg"))),
        extras: vec![ExtraOutput {
            ratio: AspectRatio::Portrait,
            video: PathBuf::from(format!("/videos/{a}-4x5.webm")),
            poster: Some(PathBuf::from(format!("/videos/{a}-4x5.jpg"))),
        }],
        width: 360,
        height: 360,
        ..output(&a, false)
    };
    let effects = c.render_done(&a, 1, Ok(out), now);
    let Some(Effect::Upload { files, .. }) =
        effects.iter().find(|e| matches!(e, Effect::Upload { .. }))
    else {
        panic!("no upload: {effects:?}");
    };
    let day = &c.record(&a).unwrap().created_at[..10];
    let got: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.key.clone(), f.content_type.clone()))
        .collect();
    let webm = |k: String| (k, "video/webm".to_string());
    assert_eq!(
        got,
        vec![
            webm(format!("pre/videos/{day}/standard/{a}.webm")),
            webm(format!("pre/videos/{day}/reels/{a}.webm")),
            webm(format!("pre/videos/{day}/4x5/{a}.webm")),
        ],
        "main, reel, then the other ratios, each under its own key"
    );
    // The derived local paths are the renderer's names.
    let record = c.record(&a).unwrap().clone();
    assert_eq!(
        record.extra_files(),
        vec![(
            AspectRatio::Portrait,
            PathBuf::from(format!("/videos/{a}-4x5.webm"))
        )]
    );
    let objects = files
        .iter()
        .map(|f| S3Object {
            s3_key: f.key.clone(),
            signed_url: format!("https://s3/{}", f.key),
            expires_in: "7 days".into(),
        })
        .collect();
    c.upload_done(&a, 1, Ok(objects), now);
    let result = c.record(&a).unwrap().result.clone().unwrap();
    let o = &result.outputs;
    assert_eq!(o.len(), 3);
    assert_eq!(o["1:1"].video_url, result.video_url);
    assert_eq!((o["1:1"].width, o["1:1"].height), (360, 360));
    assert_eq!(o["1:1"].s3_key.as_ref(), Some(&got[0].0));
    assert_eq!(Some(&o["9:16"].video_url), result.reels_url.as_ref());
    assert_eq!(o["9:16"].s3_key.as_ref(), Some(&got[1].0));
    assert_eq!((o["9:16"].width, o["9:16"].height), (360, 640));
    assert_eq!(o["4:5"].video_url, format!("/dl/{a}/outputs/4x5"));
    assert_eq!(
        o["4:5"].poster_url.as_deref(),
        Some(format!("/dl/{a}/outputs/4x5/poster").as_str())
    );
    assert_eq!(o["4:5"].s3_key.as_ref(), Some(&got[2].0));
    assert_eq!((o["4:5"].width, o["4:5"].height), (360, 450));
    assert_eq!(result.s3_upload.reels.as_ref().unwrap().s3_key, got[1].0);
    assert_eq!(
        c.stored_key(&a, Some(AspectRatio::Portrait)),
        Some(got[2].0.clone())
    );
    assert_eq!(
        c.snapshot(&a).unwrap().files.extras,
        record.extra_files(),
        "downloads find the local copy"
    );
    // Expiry removes every ratio's video and poster.
    let record = c.record(&a).unwrap().clone();
    let effects = c.expire(vec![record]);
    let Effect::RemoveFiles { files, .. } = &effects[0] else {
        panic!("{effects:?}");
    };
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(files.contains(&PathBuf::from(format!("/videos/{a}-4x5.jpg"))));
}
