//! The JobManager's decisions as plain code: every job's state machine, the admission queue, the
//! concurrency limit, restart intensity, liveness, uploads, drain and recovery.
//!
//! [`Core`] owns no actor, no timer and no file. Each method takes the facts of one event (and the
//! clock, as [`Now`]) and returns the [`Effect`]s the actor must carry out, in order: store writes
//! with their webhook rows, spawning and killing renders, timers, uploads, file removal. Jobs whose
//! snapshot changed are collected in a dirty set the actor publishes after every event. This is
//! what the unit tests in `tests.rs` drive, without actors.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tracing::{info, warn};
use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::job::{
    timestamp, JobFailure, JobFiles, JobId, JobPhase, JobSnapshot, JobStatus, S3Object,
};
use vidbuilder_domain::ports::{RenderFailure, RenderFailureKind, RenderOutput, RenderRequest};
use vidbuilder_domain::store::JobRecord;

use super::effects::Effect;
use super::{ManagerSettings, ManagerStats, SubmitError};
use crate::ports::{object_key_as, Links, ObjectKind};
use vidbuilder_domain::spec::{AspectRatio, OutputRole};

mod attempts;
mod fair;
mod finish;
mod nodes;

pub use attempts::retried;
pub use fair::{FairQueue, Owner};

pub use nodes::{pick_node, NodeLoad, NodeSlots};

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
    /// The current attempt's files are being fetched from its worker.
    fetching: bool,
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
            fetching: false,
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
            node: r.node.clone(),
            result: r.result.clone(),
            error: r.error.clone(),
            owner: r.owner.clone(),
            expired: r.expired,
            files: JobFiles {
                video: r.video.clone(),
                reel: r.reel.clone(),
                extras: r.extra_files(),
            },
            cancelled: r.cancelled,
            metadata: r.spec.as_ref().and_then(|s| s.metadata.clone()),
            version: 0,
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
    queue: FairQueue,
    running: HashSet<JobId>,
    /// This node's render slots first, then the workers' (cluster mode).
    nodes: Vec<nodes::Node>,
    /// Round-robin position among tied workers.
    cursor: usize,
    draining: Option<Draining>,
    dirty: BTreeSet<JobId>,
}

impl Core {
    /// A core with no jobs; `uploads` says whether object storage is configured.
    pub fn new(settings: ManagerSettings, links: std::sync::Arc<dyn Links>, uploads: bool) -> Core {
        // A single node renders at least one job at a time; a coordinator may render none itself.
        let max_concurrent = if settings.cluster {
            settings.max_concurrent
        } else {
            settings.max_concurrent.max(1)
        };
        let local = nodes::Node {
            name: settings.node_name.clone(),
            capacity: max_concurrent,
            running: 0,
            local: true,
        };
        Core {
            settings: ManagerSettings {
                max_concurrent,
                ..settings
            },
            links,
            uploads,
            jobs: HashMap::new(),
            queue: FairQueue::default(),
            running: HashSet::new(),
            nodes: vec![local],
            cursor: 0,
            draining: None,
            dirty: BTreeSet::new(),
        }
    }

    /// The settings in force (`max_concurrent`, this node's own render slots, at least 1 unless
    /// in cluster mode).
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
            max_concurrent: self.capacity(),
            max_queued: self.settings.max_queued,
            draining: self.draining.is_some(),
            store_ok: true,
        }
    }

    /// The object key of a completed job's stored video: the main one (`None`), or the one of
    /// an aspect ratio (`outputs`; a reel stored by an earlier version is only in `s3Upload`).
    pub fn stored_key(&self, id: &JobId, ratio: Option<AspectRatio>) -> Option<String> {
        let result = self.jobs.get(id)?.record.result.as_ref()?;
        let s3 = &result.s3_upload;
        match ratio {
            None => s3.standard.as_ref().map(|o| o.s3_key.clone()),
            Some(r) => result
                .outputs
                .get(r.as_str())
                .and_then(|o| o.s3_key.clone())
                .or_else(|| {
                    (r == AspectRatio::Vertical)
                        .then(|| s3.reels.as_ref().map(|o| o.s3_key.clone()))
                        .flatten()
                }),
        }
    }

    // ---- admission and recovery ----

    /// Recovery on start: finished jobs are served again; queued and interrupted ones run again
    /// in admission order (the store gives them in that order).
    ///
    /// A job that was `processing` when the process died was interrupted: that is counted in the
    /// store, and a job interrupted `max_interrupted` times fails instead of running again (it
    /// may be what takes the server down). A job a graceful drain stopped is not counted.
    pub fn recover(&mut self, records: Vec<JobRecord>, now: Now) -> Vec<Effect> {
        let (mut resumed, mut requeued) = (0, 0);
        let mut effects = Vec::new();
        let mut poisoned = Vec::new();
        let mut unreadable_jobs = Vec::new();
        for mut record in records {
            let id = record.id.clone();
            if record.spec.is_none() && !record.status.is_terminal() {
                // Its stored spec did not read back (the store quarantined the row): it fails.
                unreadable_jobs.push(id.clone());
                self.jobs.insert(id, Job::new(record, now.at));
                continue;
            }
            match record.status {
                JobStatus::Processing => {
                    if std::mem::take(&mut record.drained) {
                        resumed += 1;
                    } else {
                        record.interrupted += 1;
                        if record.interrupted >= self.settings.max_interrupted {
                            poisoned.push(id.clone());
                        } else {
                            resumed += 1;
                        }
                    }
                    effects.push(Effect::Persist {
                        job: id.clone(),
                        event: None,
                    });
                }
                JobStatus::Queued => requeued += 1,
                _ => {}
            }
            if !record.status.is_terminal() && !poisoned.contains(&id) {
                if record.status == JobStatus::Processing {
                    // It was running: it goes again ahead of the jobs that were waiting.
                    self.queue.push_front(record.owner.clone(), id.clone());
                } else {
                    self.queue.push_back(record.owner.clone(), id.clone());
                }
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
        effects.push(Effect::DiscardPartials);
        for id in unreadable_jobs {
            warn!(job_id = %id, "the job's stored spec could not be read back: failing it");
            effects.extend(self.finish(&id, Err(unreadable()), now));
        }
        for id in poisoned {
            let n = self.jobs.get(&id).map_or(0, |j| j.record.interrupted);
            warn!(job_id = %id, interrupted = n, "the server stopped while this job ran {n} times: failing it instead of running it again");
            let why = RenderFailure::new(
                RenderFailureKind::Crashed,
                format!("the job was interrupted {n} times (the server stopped while it ran each time); it is not run again"),
            );
            effects.extend(self.finish(&id, Err(JobFailure::Render(why)), now));
        }
        effects
    }

    /// Whether a new job of `owner` may be admitted now: not while draining, not past
    /// `max_queued` jobs waiting, nor past `max_queued_per_key` of one key's.
    pub fn admission(&self, owner: &Option<String>) -> Result<(), SubmitError> {
        self.admission_for(owner, 1)
    }

    /// Whether `n` new jobs of `owner` may be admitted now, all of them (a batch): as
    /// [`Core::admission`], with room for the lot.
    pub fn admission_for(&self, owner: &Option<String>, n: usize) -> Result<(), SubmitError> {
        if self.draining.is_some() {
            return Err(SubmitError::ShuttingDown);
        }
        let queued = self.queue.len();
        let retry = |waiting: usize| (5 + 5 * (waiting / self.capacity().max(1)) as u64).min(300);
        if queued + n > self.settings.max_queued {
            return Err(SubmitError::QueueFull {
                queued,
                retry_after_secs: retry(queued),
            });
        }
        let quota = self.settings.max_queued_per_key;
        if quota > 0 && owner.is_some() {
            let mine = self.queue.queued_for(owner);
            if mine + n > quota {
                return Err(SubmitError::KeyQueueFull {
                    queued: mine,
                    limit: quota,
                    retry_after_secs: retry(mine),
                });
            }
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
        JobRecord::queued(JobId::new(), spec, webhook_url, owner, timestamp(now.wall))
    }

    /// Admits a stored job: it joins the queue's end.
    pub fn admit(&mut self, record: JobRecord, now: Now) -> Vec<Effect> {
        let id = record.id.clone();
        if let Some(spec) = &record.spec {
            info!(job_id = %id, scenes = spec.scenes.len(), quality = spec.quality.as_str(), "job queued");
        }
        let owner = record.owner.clone();
        self.jobs.insert(id.clone(), Job::new(record, now.at));
        self.queue.push_back(owner, id.clone());
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
        while !self.queue.is_empty() {
            let Some(node) = self.next_node() else {
                break;
            };
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            changed = true;
            effects.extend(self.start(&id, node, now));
        }
        if changed {
            self.number_queue();
        }
        effects
    }

    /// The owner of a job (for its queue lane).
    fn owner_of(&self, id: &JobId) -> Option<String> {
        self.jobs.get(id).and_then(|j| j.record.owner.clone())
    }

    fn number_queue(&mut self) {
        for (i, id) in self.queue.order().iter().enumerate() {
            if let Some(job) = self.jobs.get_mut(id) {
                if job.queue_position != Some(i + 1) {
                    job.queue_position = Some(i + 1);
                    self.dirty.insert(id.clone());
                }
            }
        }
    }

    /// Starts the job's next attempt on `self.nodes[node]`.
    fn start(&mut self, id: &JobId, node: usize, now: Now) -> Vec<Effect> {
        let uploads = self.uploads;
        let (node_name, local) = (self.nodes[node].name.clone(), self.nodes[node].local);
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        if job.is_terminal() {
            return Vec::new();
        }
        // Rendered here before a restart but not stored yet: the upload resumes on this node.
        let resumes_upload = uploads && job.record.video.is_some();
        job.record.attempt += 1;
        job.record.node = Some(if resumes_upload {
            self.settings.node_name.clone()
        } else {
            node_name
        });
        let first = job.record.started_at.is_none();
        job.record.status = JobStatus::Processing;
        job.record
            .started_at
            .get_or_insert_with(|| timestamp(now.wall));
        job.started = Some(now.at);
        job.last_progress = now.at;
        job.killed_for = None;
        job.fetching = false;
        job.queue_position = None;
        job.phase = JobPhase::Starting;
        self.dirty.insert(id.clone());
        // The `started` event goes out once per job, with the move to processing.
        let metadata = job.record.spec.as_ref().and_then(|s| s.metadata.clone());
        let mut effects = vec![Effect::Persist {
            job: id.clone(),
            event: first
                .then(|| Box::new(WebhookEvent::started(id, now.wall).with_metadata(metadata))),
        }];
        // Rendered before a restart but not stored yet: upload instead of rendering again.
        if uploads {
            if let Some(video) = job.record.video.clone() {
                effects.push(Effect::ResumeUpload {
                    job: id.clone(),
                    video,
                    reel: job.record.reel.clone(),
                    extras: job.record.extra_files(),
                });
                return effects;
            }
        }
        job.running = true;
        self.running.insert(id.clone());
        self.nodes[node].running += 1;
        let Some(spec) = job.record.spec.clone() else {
            // Recovery fails jobs whose spec did not read back; nothing else drops a live spec.
            effects.extend(self.finish(id, Err(unreadable()), now));
            return effects;
        };
        let upload = uploads.then(|| {
            let (prefix, day) = (&self.settings.s3_prefix, &job.record.created_at);
            let key = |kind| object_key_as(prefix, day, kind, id, spec.format());
            let shapes = spec.shapes();
            let key_of = |role| {
                shapes
                    .iter()
                    .find(|s| s.role == role)
                    .map(|s| key(ObjectKind::of(s)))
            };
            crate::wire::UploadTarget {
                video_key: key(ObjectKind::Standard),
                reel_key: key_of(OutputRole::Reel),
                extra_keys: shapes
                    .iter()
                    .filter(|s| s.role == OutputRole::Extra)
                    .map(|s| (s.ratio, key(ObjectKind::of(s))))
                    .collect(),
            }
        });
        let request = RenderRequest {
            job_id: id.clone(),
            attempt: job.record.attempt,
            spec,
            out_dir: self.settings.out_dir.clone(),
        };
        effects.push(if local {
            Effect::SpawnRender(request)
        } else {
            Effect::Dispatch {
                node: self.nodes[node].name.clone(),
                request,
                upload,
            }
        });
        effects
    }

    /// The actor could not spawn the render: the job fails.
    pub fn spawn_failed(&mut self, id: &JobId, why: String, now: Now) -> Vec<Effect> {
        let mut effects = self.finish(id, Err(JobFailure::NotStarted(why)), now);
        // Its slot is free again.
        effects.extend(self.pump(now));
        effects
    }
}

/// Why a job could not be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// No such job here.
    #[error("no such job")]
    Unknown,
    /// The job already completed or failed.
    #[error("the job has already {}", .0.as_str())]
    Finished(JobStatus),
}

/// Why a job whose stored spec did not read back fails.
fn unreadable() -> JobFailure {
    JobFailure::NotStarted(
        "the job's stored spec could not be read back (the row was quarantined)".into(),
    )
}
