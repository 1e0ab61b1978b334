//! The JobManager's decisions as plain code: every job's state machine, the admission queue, the
//! concurrency limit, restart intensity, liveness, uploads, drain and recovery.
//!
//! [`Core`] owns no actor, no timer and no file. Each method takes the facts of one event (and the
//! clock, as [`Now`]) and returns the [`Effect`]s the actor must carry out, in order: store writes
//! with their webhook rows, spawning and killing renders, timers, uploads, file removal. Jobs whose
//! snapshot changed are collected in a dirty set the actor publishes after every event. This is
//! what the unit tests in `tests.rs` drive, without actors.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, warn};
use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::job::{
    poster_of, timestamp, JobFailure, JobFiles, JobId, JobPhase, JobResult, JobSnapshot, JobStatus,
    S3Object, S3Upload,
};
use vidbuilder_domain::ports::{
    RenderFailure, RenderFailureKind, RenderOutput, RenderPhase, RenderProgress, RenderRequest,
    UploadFile,
};
use vidbuilder_domain::store::JobRecord;

use super::effects::Effect;
use super::{DrainReport, ManagerSettings, ManagerStats, SubmitError};
use crate::ports::{object_key, Links, ObjectKind};
use crate::retry;

/// The clock of one event: a monotonic instant for deadlines, wall time for timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic time, for deadlines, backoffs and liveness.
    pub at: Instant,
    /// Wall-clock time, for the job's timestamps and retention.
    pub wall: DateTime<Utc>,
}

impl Now {
    /// The system's clocks, read now.
    pub fn system() -> Now {
        Now {
            at: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// One job as the manager tracks it.
struct Job {
    record: JobRecord,
    phase: JobPhase,
    queue_position: Option<usize>,
    /// When the current attempt started (for `renderTime`).
    started: Option<Instant>,
    last_progress: Instant,
    /// A render actor runs this job's current attempt.
    running: bool,
    /// Why the running render was killed, when the manager killed it.
    killed_for: Option<RenderFailure>,
    /// When recent restarts happened (restart intensity).
    restarts: Vec<Instant>,
    /// A finished render waiting for (or in) its upload.
    rendered: Option<RenderOutput>,
    /// Where its files went in object storage.
    stored: Option<Vec<S3Object>>,
}

impl Job {
    fn new(record: JobRecord, now: Instant) -> Job {
        let phase = match record.status {
            JobStatus::Queued => JobPhase::Queued,
            JobStatus::Processing => JobPhase::Resuming,
            JobStatus::Completed => JobPhase::Completed,
            JobStatus::Failed => JobPhase::Failed,
        };
        Job {
            record,
            phase,
            queue_position: None,
            started: None,
            last_progress: now,
            running: false,
            killed_for: None,
            restarts: Vec::new(),
            rendered: None,
            stored: None,
        }
    }

    fn is_terminal(&self) -> bool {
        self.record.status.is_terminal()
    }

    fn snapshot(&self) -> JobSnapshot {
        let r = &self.record;
        // An interrupted job waits in the queue again: `processing` only in the store.
        let status = match r.status {
            JobStatus::Processing if !self.running && self.queue_position.is_some() => {
                JobStatus::Queued
            }
            s => s,
        };
        JobSnapshot {
            job_id: r.id.clone(),
            status,
            phase: self.phase.clone(),
            created_at: r.created_at.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            queue_position: self.queue_position,
            attempt: (r.attempt > 0).then_some(r.attempt),
            result: r.result.clone(),
            error: r.error.clone(),
            owner: r.owner.clone(),
            expired: r.expired,
            files: JobFiles {
                video: r.video.clone(),
                reel: r.reel.clone(),
            },
        }
    }
}

/// An ongoing drain.
struct Draining {
    deadline: Instant,
    /// The drain was answered: nothing more finishes in this process.
    answered: bool,
    running_at_start: usize,
}

/// The JobManager's state and decisions.
pub struct Core {
    settings: ManagerSettings,
    links: std::sync::Arc<dyn Links>,
    /// Object storage is configured: finished renders are uploaded before they complete.
    uploads: bool,
    jobs: HashMap<JobId, Job>,
    queue: VecDeque<JobId>,
    running: HashSet<JobId>,
    draining: Option<Draining>,
    dirty: BTreeSet<JobId>,
}

impl Core {
    /// A core with no jobs; `uploads` says whether object storage is configured.
    pub fn new(settings: ManagerSettings, links: std::sync::Arc<dyn Links>, uploads: bool) -> Core {
        Core {
            settings: ManagerSettings {
                max_concurrent: settings.max_concurrent.max(1),
                ..settings
            },
            links,
            uploads,
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            running: HashSet::new(),
            draining: None,
            dirty: BTreeSet::new(),
        }
    }

    /// The settings in force (`max_concurrent` at least 1).
    pub fn settings(&self) -> &ManagerSettings {
        &self.settings
    }

    /// The jobs whose snapshot changed since the last call, with their snapshots.
    pub fn take_dirty(&mut self) -> Vec<JobSnapshot> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|id| self.jobs.get(&id).map(Job::snapshot))
            .collect()
    }

    /// The job's snapshot now; `None` for an unknown job.
    pub fn snapshot(&self, id: &JobId) -> Option<JobSnapshot> {
        self.jobs.get(id).map(Job::snapshot)
    }

    /// The stored record of a job (what a `Persist` effect writes).
    pub fn record(&self, id: &JobId) -> Option<&JobRecord> {
        self.jobs.get(id).map(|j| &j.record)
    }

    /// Whether the job is completed or failed; `None` for an unknown job.
    pub fn is_terminal(&self, id: &JobId) -> Option<bool> {
        self.jobs.get(id).map(Job::is_terminal)
    }

    /// True once a drain began: no job starts and new ones are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.is_some()
    }

    /// The counts health checks report.
    pub fn stats(&self) -> ManagerStats {
        ManagerStats {
            total: self.jobs.len(),
            queued: self.queue.len(),
            running: self.running.len(),
            max_concurrent: self.settings.max_concurrent,
            max_queued: self.settings.max_queued,
            draining: self.draining.is_some(),
        }
    }

    /// The object key of a completed job's stored video (`reel` for the vertical one).
    pub fn stored_key(&self, id: &JobId, reel: bool) -> Option<String> {
        let s3 = &self.jobs.get(id)?.record.result.as_ref()?.s3_upload;
        let obj = if reel { &s3.reels } else { &s3.standard };
        obj.as_ref().map(|o| o.s3_key.clone())
    }

    // ---- admission and recovery ----

    /// Recovery on start: finished jobs are served again; queued and interrupted ones run again
    /// in admission order (the store gives them in that order).
    pub fn recover(&mut self, records: Vec<JobRecord>, now: Now) -> Vec<Effect> {
        let (mut resumed, mut requeued) = (0, 0);
        for record in records {
            let id = record.id.clone();
            match record.status {
                JobStatus::Processing => resumed += 1,
                JobStatus::Queued => requeued += 1,
                _ => {}
            }
            if !record.status.is_terminal() {
                self.queue.push_back(id.clone());
            }
            self.dirty.insert(id.clone());
            self.jobs.insert(id, Job::new(record, now.at));
        }
        if resumed + requeued > 0 {
            info!(
                resumed,
                requeued, "recovered unfinished jobs from the store"
            );
        }
        self.number_queue();
        vec![Effect::DiscardPartials]
    }

    /// Whether a new job may be admitted now.
    pub fn admission(&self) -> Result<(), SubmitError> {
        if self.draining.is_some() {
            return Err(SubmitError::ShuttingDown);
        }
        let queued = self.queue.len();
        if queued >= self.settings.max_queued {
            let retry = 5 + 5 * (queued / self.settings.max_concurrent) as u64;
            return Err(SubmitError::QueueFull {
                queued,
                retry_after_secs: retry.min(300),
            });
        }
        Ok(())
    }

    /// A new job's record, before the store gives it its `seq`.
    pub fn new_record(
        spec: vidbuilder_domain::spec::VideoSpec,
        webhook_url: Option<String>,
        owner: Option<String>,
        now: Now,
    ) -> JobRecord {
        JobRecord {
            id: JobId::new(),
            seq: 0,
            spec,
            webhook_url,
            owner,
            status: JobStatus::Queued,
            attempt: 0,
            created_at: timestamp(now.wall),
            started_at: None,
            finished_at: None,
            result: None,
            video: None,
            reel: None,
            error: None,
            finished_ms: None,
            expired: false,
        }
    }

    /// Admits a stored job: it joins the queue's end.
    pub fn admit(&mut self, record: JobRecord, now: Now) -> Vec<Effect> {
        let id = record.id.clone();
        info!(job_id = %id, scenes = record.spec.scenes.len(), quality = record.spec.quality.as_str(), "job queued");
        self.jobs.insert(id.clone(), Job::new(record, now.at));
        self.queue.push_back(id.clone());
        self.number_queue();
        self.dirty.insert(id);
        Vec::new()
    }

    /// Starts queued jobs while there are free slots (not while draining).
    pub fn pump(&mut self, now: Now) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.draining.is_some() {
            return effects;
        }
        let mut changed = false;
        while self.running.len() < self.settings.max_concurrent {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            changed = true;
            effects.extend(self.start(&id, now));
        }
        if changed {
            self.number_queue();
        }
        effects
    }

    fn number_queue(&mut self) {
        for (i, id) in self.queue.iter().enumerate() {
            if let Some(job) = self.jobs.get_mut(id) {
                if job.queue_position != Some(i + 1) {
                    job.queue_position = Some(i + 1);
                    self.dirty.insert(id.clone());
                }
            }
        }
    }

    fn start(&mut self, id: &JobId, now: Now) -> Vec<Effect> {
        let uploads = self.uploads;
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        if job.is_terminal() {
            return Vec::new();
        }
        job.record.attempt += 1;
        let first = job.record.started_at.is_none();
        job.record.status = JobStatus::Processing;
        job.record
            .started_at
            .get_or_insert_with(|| timestamp(now.wall));
        job.started = Some(now.at);
        job.last_progress = now.at;
        job.killed_for = None;
        job.queue_position = None;
        job.phase = JobPhase::Starting;
        self.dirty.insert(id.clone());
        // The `started` event goes out once per job, with the move to processing.
        let mut effects = vec![Effect::Persist {
            job: id.clone(),
            event: first.then(|| Box::new(WebhookEvent::started(id, now.wall))),
        }];
        // Rendered before a restart but not stored yet: upload instead of rendering again.
        if uploads {
            if let Some(video) = job.record.video.clone() {
                effects.push(Effect::ResumeUpload {
                    job: id.clone(),
                    video,
                    reel: job.record.reel.clone(),
                });
                return effects;
            }
        }
        job.running = true;
        self.running.insert(id.clone());
        effects.push(Effect::SpawnRender(RenderRequest {
            job_id: id.clone(),
            attempt: job.record.attempt,
            spec: job.record.spec.clone(),
            out_dir: self.settings.out_dir.clone(),
        }));
        effects
    }

    /// The actor could not spawn the render: the job fails.
    pub fn spawn_failed(&mut self, id: &JobId, why: String, now: Now) -> Vec<Effect> {
        self.finish(id, Err(JobFailure::NotStarted(why)), now)
    }

    // ---- a render's life ----

    /// The job and its current attempt, if a render of `attempt` is live for it.
    fn live_render(&mut self, id: &JobId, attempt: u32) -> Option<&mut Job> {
        self.jobs
            .get_mut(id)
            .filter(|j| j.record.attempt == attempt && j.running && !j.is_terminal())
    }

    /// A render reported progress; reports of another attempt or a stopped render are ignored.
    pub fn progress(&mut self, id: &JobId, attempt: u32, p: RenderProgress, now: Now) {
        let Some(job) = self.live_render(id, attempt) else {
            return;
        };
        job.last_progress = now.at;
        job.phase = match p.phase {
            RenderPhase::Rendering => JobPhase::Rendering {
                frames_done: p.frames_done,
                frames_total: p.frames_total,
            },
            RenderPhase::Encoding => JobPhase::Encoding,
            RenderPhase::Finalising => JobPhase::Finalising,
        };
        self.dirty.insert(id.clone());
    }

    /// A render returned. Stale results (another attempt, or a render already stopped) are
    /// ignored.
    pub fn render_done(
        &mut self,
        id: &JobId,
        attempt: u32,
        result: Result<RenderOutput, RenderFailure>,
        now: Now,
    ) -> Vec<Effect> {
        if self.live_render(id, attempt).is_none() {
            return Vec::new();
        }
        let mut effects = vec![Effect::StopRender(id.clone())];
        self.stop_running(id);
        effects.extend(match result {
            Ok(out) if self.uploads => self.begin_upload(id, out),
            Ok(out) => self.finish(id, Ok(out), now),
            Err(e) => self.attempt_failed(id, e, now),
        });
        effects.extend(self.check_drain(now));
        effects.extend(self.pump(now));
        effects
    }

    /// The render actor of `id` ended without a result (crashed, stopped, killed).
    pub fn render_exited(&mut self, id: &JobId, reason: RenderFailure, now: Now) -> Vec<Effect> {
        if !self.running.contains(id) {
            return Vec::new();
        }
        self.stop_running(id);
        let killed_for = self.jobs.get_mut(id).and_then(|j| j.killed_for.take());
        if self.draining.is_some() {
            // Stopped for shutdown: the job stays `processing` in the store and resumes next start.
            return self.check_drain(now);
        }
        let reason = killed_for.unwrap_or(reason);
        warn!(job_id = %id, "{}", JobFailure::Render(reason.clone()));
        let mut effects = self.attempt_failed(id, reason, now);
        effects.extend(self.pump(now));
        effects
    }

    fn stop_running(&mut self, id: &JobId) {
        self.running.remove(id);
        if let Some(job) = self.jobs.get_mut(id) {
            job.running = false;
        }
    }

    /// A render attempt ended without a result: retry within the restart intensity, else fail.
    fn attempt_failed(&mut self, id: &JobId, reason: RenderFailure, now: Now) -> Vec<Effect> {
        let (window, max) = (self.settings.restart_window, self.settings.max_restarts);
        let base = self.settings.restart_backoff;
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        job.restarts.retain(|t| now.at.duration_since(*t) < window);
        if job.restarts.len() as u32 >= max {
            warn!(job_id = %id, attempt = job.record.attempt, "giving up after {} restarts: {reason}", job.restarts.len());
            return self.finish(id, Err(JobFailure::Render(reason)), now);
        }
        job.restarts.push(now.at);
        let after = retry::exponential(base, job.restarts.len() as u32 - 1);
        warn!(job_id = %id, attempt = job.record.attempt, backoff_ms = after.as_millis() as u64, "render attempt failed, restarting: {reason}");
        job.phase = JobPhase::Retrying {
            after,
            failure: reason,
        };
        self.dirty.insert(id.clone());
        vec![Effect::ScheduleRestart {
            job: id.clone(),
            after,
        }]
    }

    /// A restart's backoff elapsed: the job goes to the front of the queue (it was admitted
    /// before everything waiting).
    pub fn restart_due(&mut self, id: &JobId, now: Now) -> Vec<Effect> {
        let Some(job) = self.jobs.get(id) else {
            return Vec::new();
        };
        if job.is_terminal() || job.running || self.draining.is_some() {
            // While draining it stays `processing` in the store: it resumes on the next start.
            return Vec::new();
        }
        self.queue.push_front(id.clone());
        self.pump(now)
    }

    /// Liveness: renders silent past the stall timeout are killed (and then handled as a crash).
    pub fn check_liveness(&mut self, now: Now) -> Vec<Effect> {
        let limit = self.settings.stall_timeout;
        let mut effects = Vec::new();
        for (id, job) in &mut self.jobs {
            if job.running
                && job.killed_for.is_none()
                && now.at.duration_since(job.last_progress) > limit
            {
                let why = RenderFailure::new(
                    RenderFailureKind::Stalled,
                    format!("render stalled (no progress for {}s)", limit.as_secs()),
                );
                warn!(job_id = %id, "{why}; killing it");
                job.killed_for = Some(why);
                effects.push(Effect::KillRender(id.clone()));
            }
        }
        effects
    }

    // ---- uploads ----

    /// A restarted job had rendered before: upload its files (those still there) instead of
    /// rendering again; otherwise render.
    pub fn resume_upload(
        &mut self,
        id: &JobId,
        video: Option<PathBuf>,
        reel: Option<PathBuf>,
    ) -> Vec<Effect> {
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        let Some(video) = video else {
            // The files are gone: render again, in the slot this attempt has.
            job.record.video = None;
            job.record.reel = None;
            job.running = true;
            self.running.insert(id.clone());
            return vec![Effect::SpawnRender(RenderRequest {
                job_id: id.clone(),
                attempt: job.record.attempt,
                spec: job.record.spec.clone(),
                out_dir: self.settings.out_dir.clone(),
            })];
        };
        let spec = &job.record.spec;
        let (width, height) = spec.quality.dimensions();
        let out = RenderOutput {
            video,
            reel,
            duration_secs: spec.frame_count() as f64 / spec.fps as f64,
            width,
            height,
            frames: spec.frame_count(),
            poster: None,
            reel_poster: None,
        };
        info!(job_id = %id, "the video was rendered before the restart: uploading it");
        self.begin_upload(id, out)
    }

    /// A render is done and object storage is configured: store the files, then finish.
    fn begin_upload(&mut self, id: &JobId, out: RenderOutput) -> Vec<Effect> {
        let prefix = self.settings.s3_prefix.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        let day = &job.record.created_at;
        let mut files = vec![UploadFile {
            path: out.video.clone(),
            key: object_key(&prefix, day, ObjectKind::Standard, id),
            content_type: "video/mp4".into(),
        }];
        if let Some(reel) = &out.reel {
            files.push(UploadFile {
                path: reel.clone(),
                key: object_key(&prefix, day, ObjectKind::Reels, id),
                content_type: "video/mp4".into(),
            });
        }
        // Remember the render in the store: a restart uploads it instead of rendering again.
        job.record.video = Some(out.video.clone());
        job.record.reel = out.reel.clone();
        job.rendered = Some(out);
        job.phase = JobPhase::Uploading {
            bytes_done: 0,
            bytes_total: 0,
        };
        self.dirty.insert(id.clone());
        vec![
            Effect::Persist {
                job: id.clone(),
                event: None,
            },
            Effect::Upload {
                job: id.clone(),
                attempt: job.record.attempt,
                files,
            },
        ]
    }

    /// The job, if it is unfinished and on `attempt` (messages of older attempts are stale).
    fn live_job(&mut self, id: &JobId, attempt: u32) -> Option<&mut Job> {
        self.jobs
            .get_mut(id)
            .filter(|j| j.record.attempt == attempt && !j.is_terminal())
    }

    /// The upload reported `done` of `total` bytes; reports of another attempt are ignored.
    pub fn upload_progress(&mut self, id: &JobId, attempt: u32, done: u64, total: u64) {
        if let Some(job) = self.live_job(id, attempt) {
            job.phase = JobPhase::Uploading {
                bytes_done: done,
                bytes_total: total,
            };
            self.dirty.insert(id.clone());
        }
    }

    /// The upload ended: the job completes, or fails with its error; stale results are ignored.
    pub fn upload_done(
        &mut self,
        id: &JobId,
        attempt: u32,
        result: Result<Vec<S3Object>, String>,
        now: Now,
    ) -> Vec<Effect> {
        let Some(job) = self.live_job(id, attempt) else {
            return Vec::new();
        };
        match (result, job.rendered.clone()) {
            (Ok(objects), Some(out)) => {
                job.stored = Some(objects);
                self.finish(id, Ok(out), now)
            }
            (Err(e), _) => self.finish(id, Err(JobFailure::Upload(e)), now),
            (Ok(_), None) => self.finish(
                id,
                Err(JobFailure::Upload("the rendered files were lost".into())),
                now,
            ),
        }
    }

    // ---- the end ----

    /// Moves a job to its terminal state with its terminal webhook; wakes its waiters.
    fn finish(
        &mut self,
        id: &JobId,
        result: Result<RenderOutput, JobFailure>,
        now: Now,
    ) -> Vec<Effect> {
        let delete_after_upload = self.settings.delete_local_after_upload;
        let links = self.links.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        if job.is_terminal() {
            return Vec::new();
        }
        let mut effects = Vec::new();
        if job.running {
            job.running = false;
            self.running.remove(id);
            effects.push(Effect::StopRender(id.clone()));
        }
        let elapsed = job
            .started
            .map(|s| now.at.duration_since(s).as_secs_f64())
            .unwrap_or(0.0);
        job.record.finished_at = Some(timestamp(now.wall));
        job.record.finished_ms = Some(now.wall.timestamp_millis());
        job.queue_position = None;
        let stored = job.stored.take();
        let event = match result {
            Ok(out) => {
                let delete_local = delete_after_upload && stored.is_some();
                if delete_local {
                    // Posters go with their videos: they are served only beside a local copy.
                    let files = [Some(&out.video), out.reel.as_ref()]
                        .into_iter()
                        .flatten()
                        .chain(out.poster.iter().chain(out.reel_poster.as_ref()))
                        .cloned()
                        .collect();
                    effects.push(Effect::RemoveFiles {
                        job: id.clone(),
                        files,
                    });
                }
                let s3_upload = match &stored {
                    None => S3Upload {
                        enabled: false,
                        standard: None,
                        reels: None,
                    },
                    Some(objects) => S3Upload {
                        enabled: true,
                        standard: objects.first().cloned(),
                        reels: objects.get(1).cloned(),
                    },
                };
                let result = JobResult {
                    video_url: links.video(id),
                    reels_url: out.reel.as_ref().map(|_| links.reel(id)),
                    duration: out.duration_secs,
                    scenes: job.record.spec.scenes.len(),
                    reels_generated: out.reel.is_some(),
                    s3_upload,
                    render_time: format!("{}s", elapsed.round() as u64),
                    poster_url: out
                        .poster
                        .as_ref()
                        .filter(|_| !delete_local)
                        .map(|_| links.poster(id)),
                };
                info!(job_id = %id, render_secs = elapsed, "job completed");
                job.record.status = JobStatus::Completed;
                job.record.result = Some(result);
                (job.record.video, job.record.reel) = if delete_local {
                    (None, None)
                } else {
                    (Some(out.video), out.reel)
                };
                job.phase = JobPhase::Completed;
                WebhookEvent::completed(id, job.record.result.clone().expect("just set"), now.wall)
            }
            Err(failure) => {
                let e = failure.to_string();
                warn!(job_id = %id, error = %e, "job failed");
                job.record.status = JobStatus::Failed;
                job.record.error = Some(e.clone());
                // A render that finished but could not be stored stays downloadable from here.
                if let Some(out) = job.rendered.take() {
                    job.record.video = Some(out.video);
                    job.record.reel = out.reel;
                }
                job.phase = JobPhase::Failed;
                WebhookEvent::failed(id, &e, now.wall)
            }
        };
        self.dirty.insert(id.clone());
        effects.push(Effect::Persist {
            job: id.clone(),
            event: Some(Box::new(event)),
        });
        effects.push(Effect::Finished(id.clone()));
        effects
    }

    // ---- retention ----

    /// Jobs found past retention by the store: remove their files, expire their rows, keep a
    /// tombstone so status answers 410.
    pub fn expire(&mut self, records: Vec<JobRecord>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for record in records {
            let files = [&record.video, &record.reel]
                .into_iter()
                .flatten()
                .flat_map(|v| [v.clone(), poster_of(v)])
                .collect();
            effects.push(Effect::RemoveFiles {
                job: record.id.clone(),
                files,
            });
            effects.push(Effect::Expire(record.id.clone()));
        }
        effects
    }

    /// The store expired a job: it keeps only its tombstone.
    pub fn expired(&mut self, id: &JobId) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.record.expired = true;
            job.record.result = None;
            job.record.video = None;
            job.record.reel = None;
            self.dirty.insert(id.clone());
        }
    }

    // ---- drain ----

    /// Stop starting jobs and refuse new ones; the drain is answered when no render runs, or at
    /// `grace`'s end after the renders that remain are stopped.
    pub fn drain(&mut self, grace: Duration, now: Now) -> Vec<Effect> {
        info!(
            running = self.running.len(),
            queued = self.queue.len(),
            grace_secs = grace.as_secs(),
            "draining"
        );
        self.draining = Some(Draining {
            deadline: now.at + grace,
            answered: false,
            running_at_start: self.running.len(),
        });
        self.check_drain(now)
    }

    /// Answers a drain once no render runs, or at its deadline after killing the renders left.
    pub fn check_drain(&mut self, now: Now) -> Vec<Effect> {
        let running = self.running.len();
        let Some(d) = self.draining.as_mut() else {
            return Vec::new();
        };
        if d.answered {
            return Vec::new();
        }
        let mut effects = Vec::new();
        if running == 0 {
            d.answered = true;
            effects.push(Effect::DrainDone(DrainReport {
                finished: d.running_at_start,
                interrupted: 0,
            }));
        } else if now.at >= d.deadline {
            d.answered = true;
            let report = DrainReport {
                finished: d.running_at_start.saturating_sub(running),
                interrupted: running,
            };
            for id in self.running.drain() {
                warn!(job_id = %id, "grace period over: stopping the render; it resumes on the next start");
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.running = false;
                }
                effects.push(Effect::KillRender(id));
            }
            effects.push(Effect::DrainDone(report));
        }
        effects
    }
}
