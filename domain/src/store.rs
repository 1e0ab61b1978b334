//! The durable job store, as the actors see it: jobs with their spec and state, the webhook
//! outbox, and the log of delivery attempts.
//!
//! Writes that move a job and queue its webhook happen in one call (one transaction in the SQLite
//! implementation): an event is never committed without its delivery row, nor a delivery without
//! its event. The root crate implements this with SQLite (`SqliteStore`, `src/store/mod.rs`),
//! which is the reference behaviour; [`MemoryStore`] serves the actor tests and behaves the same
//! way. The `conformance` feature adds the `conformance` module: the checks both stores pass.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::events::EventKind;
use crate::job::{output_path, JobId, JobResult, JobStatus};
use crate::spec::{AspectRatio, OutputRole, VideoSpec};
use crate::template::{TemplateId, TemplateRecord};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

/// A job store failure, with the underlying error as text.
#[derive(Debug, thiserror::Error)]
#[error("job store: {0}")]
pub struct StoreError(
    /// The underlying error, as text.
    pub String,
);

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptResult {
    /// A 2xx answer.
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed, and that was the last attempt of the schedule.
    Exhausted,
    /// `410 Gone`, or an error retrying cannot help (a target the SSRF guard refuses): no more
    /// attempts.
    GaveUp,
    /// A manual redelivery of a settled event got a 2xx.
    Redelivered,
    /// A manual redelivery of a settled event failed (it is never retried).
    RedeliveryFailed,
}

impl AttemptResult {
    /// The scheduled attempt number `attempt` (1-based) of `max_attempts` got `outcome`.
    pub fn of(outcome: &crate::ports::AttemptOutcome, attempt: u32, max_attempts: u32) -> Self {
        if outcome.is_success() {
            AttemptResult::Delivered
        } else if outcome.status == Some(410) || outcome.permanent {
            AttemptResult::GaveUp
        } else if attempt >= max_attempts {
            AttemptResult::Exhausted
        } else {
            AttemptResult::Retrying
        }
    }

    /// Where the delivery stands after a scheduled attempt with this result.
    pub fn state(self) -> DeliveryState {
        match self {
            AttemptResult::Delivered | AttemptResult::Redelivered => DeliveryState::Delivered,
            AttemptResult::GaveUp => DeliveryState::GaveUp,
            AttemptResult::Exhausted => DeliveryState::Exhausted,
            AttemptResult::Retrying | AttemptResult::RedeliveryFailed => DeliveryState::Pending,
        }
    }

    /// The name the delivery log shows.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Retrying => "retrying",
            AttemptResult::Exhausted => "exhausted",
            AttemptResult::GaveUp => "gave-up",
            AttemptResult::Redelivered => "redelivered",
            AttemptResult::RedeliveryFailed => "redelivery-failed",
        }
    }
}

/// How one attempt ended, for the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// The delivery's `webhook-id` (`msg_<jobId>_<event>`).
    pub webhook_id: String,
    /// Which event was sent.
    pub event: EventKind,
    /// 1-based attempt number; a manual redelivery counts on from the scheduled attempts.
    pub attempt: u32,
    /// When the attempt ended (contract timestamp).
    pub at: String,
    /// The HTTP status of the receiver's answer; `None` when no answer came.
    pub status_code: Option<u16>,
    /// The transport error (timeout, refused, reset, refused by policy…), if any.
    pub error: Option<String>,
    /// Milliseconds from sending the POST to its answer or error.
    pub latency_ms: u64,
    /// How the attempt ended.
    pub result: AttemptResult,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// Admission order (FIFO); assigned by the store on insert.
    pub seq: i64,
    /// The validated spec the job renders; `None` once retention dropped it, or when the stored
    /// spec could not be read back (the row was quarantined and the job fails).
    pub spec: Option<VideoSpec>,
    /// The contract's `webhookUrl`; `None` when the client gave none, and after retention.
    pub webhook_url: Option<String>,
    /// The API key (its id, never the key) that created the job.
    pub owner: Option<String>,
    /// The stored status (a job interrupted by a restart stays `processing` here).
    pub status: JobStatus,
    /// Render attempts started so far; 0 until the first one starts.
    pub attempt: u32,
    /// When the job was admitted (contract timestamp).
    pub created_at: String,
    /// When its first render attempt started; `None` until then.
    pub started_at: Option<String>,
    /// When it completed or failed; `None` until then.
    pub finished_at: Option<String>,
    /// The contract's result fields, once completed; dropped by retention.
    pub result: Option<JobResult>,
    /// The local landscape video, once rendered; `None` once removed (after upload or retention).
    pub video: Option<PathBuf>,
    /// The local reel, when one was rendered and is still on disk.
    pub reel: Option<PathBuf>,
    /// The contract's `error` text, once failed.
    pub error: Option<String>,
    /// Unix ms when the job finished (for retention).
    pub finished_ms: Option<i64>,
    /// Removed by retention: result, files and webhook url are gone; the tombstone answers 410.
    pub expired: bool,
    /// The node that runs (or ran) the current attempt; `None` before the first one starts.
    pub node: Option<String>,
    /// Attempts that a crash of the server interrupted (counted at the next start): after
    /// `render.max_interrupted_attempts` the job fails instead of running again.
    pub interrupted: u32,
    /// The last attempt was stopped by a graceful drain, which does not count as an interruption.
    pub drained: bool,
    /// The client cancelled the job.
    #[serde(default)]
    pub cancelled: bool,
    /// The `Idempotency-Key` the job was submitted with, saved with the job at insert (not read
    /// back: the store answers keys with [`JobStore::idempotent_job`]).
    #[serde(skip)]
    pub idempotency: Option<Idempotency>,
}

/// An `Idempotency-Key` with the hash of the body it came with: the same key (of the same API
/// key) with the same body within [`IDEMPOTENCY_WINDOW_MS`] answers the job it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The client's key, as sent.
    pub key: String,
    /// A digest of the request body (hex), compared on reuse.
    pub body_hash: String,
}

/// How long an `Idempotency-Key` names its job: 24 hours.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// A job an `Idempotency-Key` named before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentJob {
    /// The job the key created.
    pub job_id: JobId,
    /// The digest of the body it came with.
    pub body_hash: String,
}

impl JobRecord {
    /// A job as admitted: queued, no attempt yet, nothing started or finished. `seq` is assigned
    /// by the store on insert.
    pub fn queued(
        id: JobId,
        spec: VideoSpec,
        webhook_url: Option<String>,
        owner: Option<String>,
        created_at: String,
    ) -> JobRecord {
        JobRecord::admitted(id, Some(spec), webhook_url, owner, created_at)
    }

    fn admitted(
        id: JobId,
        spec: Option<VideoSpec>,
        webhook_url: Option<String>,
        owner: Option<String>,
        created_at: String,
    ) -> JobRecord {
        JobRecord {
            id,
            seq: 0,
            spec,
            webhook_url,
            owner,
            status: JobStatus::Queued,
            attempt: 0,
            created_at,
            started_at: None,
            finished_at: None,
            result: None,
            video: None,
            reel: None,
            error: None,
            finished_ms: None,
            expired: false,
            node: None,
            interrupted: 0,
            drained: false,
            cancelled: false,
            idempotency: None,
        }
    }

    /// The local videos of the spec's other aspect ratios (not the main video or the reel):
    /// beside `video`, named as the renderer names them; none once `video` is gone.
    pub fn extra_files(&self) -> Vec<(AspectRatio, PathBuf)> {
        let (Some(video), Some(spec)) = (&self.video, &self.spec) else {
            return Vec::new();
        };
        spec.shapes()
            .iter()
            .filter(|s| s.role == OutputRole::Extra)
            .map(|s| (s.ratio, output_path(video, &self.id, s)))
            .collect()
    }

    /// Every local video of the job: the main one, the reel and the other aspect ratios.
    pub fn local_videos(&self) -> Vec<PathBuf> {
        let extras = self.extra_files().into_iter().map(|(_, p)| p);
        self.video
            .iter()
            .chain(self.reel.iter())
            .cloned()
            .chain(extras)
            .collect()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    /// Not settled: an attempt is due, in flight, or waiting for its retry.
    Pending,
    /// A 2xx answer came back (to a scheduled attempt or a manual redelivery).
    Delivered,
    /// Every attempt of the retry schedule failed.
    Exhausted,
    /// Stopped early: `410 Gone`, or an error retrying cannot help.
    GaveUp,
}

impl DeliveryState {
    /// The name the store and the delivery log use (`"gave-up"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Exhausted => "exhausted",
            DeliveryState::GaveUp => "gave-up",
        }
    }

    /// Reads a stored name; an unknown one reads as `Pending`.
    pub fn parse(s: &str) -> DeliveryState {
        match s {
            "delivered" => DeliveryState::Delivered,
            "exhausted" => DeliveryState::Exhausted,
            "gave-up" => DeliveryState::GaveUp,
            _ => DeliveryState::Pending,
        }
    }
}

/// One attempt to log with [`JobStore::record_attempts`]: the arguments of one
/// [`JobStore::record_attempt`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptToRecord {
    /// How the attempt ended.
    pub record: AttemptRecord,
    /// The job whose delivery was attempted.
    pub job_id: JobId,
    /// The delivery's state after it.
    pub state: DeliveryState,
    /// When the delivery is next due (unix ms; 0 when settled).
    pub next_attempt_ms: i64,
}

/// One row of the webhook outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    /// The delivery's `webhook-id`: one per job and event, the same on every attempt.
    pub webhook_id: String,
    /// The job the event is about.
    pub job_id: JobId,
    /// Which event it carries.
    pub event: EventKind,
    /// The receiver's URL (the job's `webhookUrl`).
    pub url: String,
    /// The serialised event: the exact bytes every attempt sends.
    pub body: Vec<u8>,
    /// Attempts made so far (the highest attempt number recorded).
    pub attempts: u32,
    /// Unix ms of the next attempt (when pending).
    pub next_attempt_ms: i64,
    /// Where the delivery stands.
    pub state: DeliveryState,
    /// Insertion order, assigned by the store: a job's events are delivered in this order.
    pub seq: i64,
    /// The API key that created the job (its secret signs the deliveries); `None` when open.
    /// Read from the job when the row is loaded: the value written is not stored.
    pub owner: Option<String>,
}

/// What the actors need from durable storage.
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new job; fills in `seq` (increasing). Only the admission fields are stored (id,
    /// spec, webhook url, owner, status, attempt, created_at, and its `Idempotency-Key`, which
    /// then names this job in place of any older one of the same owner); an id already stored
    /// is refused. Keys older than [`IDEMPOTENCY_WINDOW_MS`] may be forgotten here.
    /// Called before the client gets its 202.
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), StoreError>;
    /// Stores several new jobs as [`JobStore::insert_job`] does, all or none: on an error none of
    /// them is stored (a batch is admitted whole or refused whole). `seq`s increase in order.
    fn insert_jobs(&self, jobs: &mut [JobRecord]) -> Result<(), StoreError>;
    /// The job `owner`'s `Idempotency-Key` `key` named at or after `since_ms` (Unix ms), if any.
    fn idempotent_job(
        &self,
        owner: Option<&str>,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<IdempotentJob>, StoreError>;
    /// Saves the job's progress (status, attempt, start/finish times, finished_ms, result, files,
    /// error; nothing else) and, in the same transaction, queues `outbox` if given. The store
    /// assigns the row's `seq`; a row whose `webhook_id` is already queued is left as it was.
    fn update_job(&self, job: &JobRecord, outbox: Option<&OutboxRow>) -> Result<(), StoreError>;
    /// Every job that is not expired, in admission order (tombstones stay in the store, read one
    /// at a time with [`JobStore::tombstone`]).
    fn load_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// Deliveries not settled yet, in insertion order; each row's `owner` is its job's.
    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, StoreError>;
    /// The last delivery queued for a job, whatever its state (for redelivery).
    fn last_delivery(&self, job_id: &JobId) -> Result<Option<OutboxRow>, StoreError>;
    /// Logs an attempt and moves the delivery on: `state`, `next_attempt_ms`, and `attempts` to
    /// the highest attempt number seen. The attempt is logged even without an outbox row.
    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError>;
    /// Several [`JobStore::record_attempt`]s, in order, with the same effect as making them one
    /// by one; a store that can writes them in one transaction (one disk flush for the lot: the
    /// WebhookActor's group commit). On an error nothing or only part may be recorded.
    fn record_attempts(&self, batch: &[AttemptToRecord]) -> Result<(), StoreError> {
        for a in batch {
            self.record_attempt(&a.record, &a.job_id, a.state, a.next_attempt_ms)?;
        }
        Ok(())
    }
    /// The attempt log of one job, oldest first.
    fn attempts(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Jobs with `finished_ms < before_ms` that are not expired yet, in admission order.
    fn finished_before(&self, before_ms: i64) -> Result<Vec<JobRecord>, StoreError>;
    /// Drops a job's spec, result, file paths and webhook url, its deliveries and its attempt
    /// log, keeping a tombstone (`expired`: its id, owner and times) so status can answer 410.
    fn expire(&self, job_id: &JobId) -> Result<(), StoreError>;
    /// The tombstone of an expired job: `Some(owner)` (who may be told it is gone), `None` if
    /// no expired job has this id.
    fn tombstone(&self, job_id: &JobId) -> Result<Option<Option<String>>, StoreError>;
    /// Stores a new template; an id already stored is refused.
    fn insert_template(&self, template: &TemplateRecord) -> Result<(), StoreError>;
    /// A template by id, whoever owns it (callers check the owner).
    fn template(&self, id: &TemplateId) -> Result<Option<TemplateRecord>, StoreError>;
    /// Deletes a template; `false` when there was none with this id.
    fn delete_template(&self, id: &TemplateId) -> Result<bool, StoreError>;
    /// The templates whose owner is `owner` (`None`: those made without an API key), newest
    /// first, at most `limit` of them, with how many that owner has in all.
    fn templates(
        &self,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TemplateRecord>, usize), StoreError>;
}

/// The most attempts one job's delivery log keeps; older ones are dropped as new ones come.
pub const MAX_ATTEMPTS_LOGGED: usize = 100;

/// An in-memory [`JobStore`] for tests, with the SQLite store's behaviour. Not durable.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    /// Last `seq` given to a job and to an outbox row (two sequences, like SQLite's tables).
    job_seq: i64,
    outbox_seq: i64,
    /// In admission order (`seq` never changes once assigned).
    jobs: Vec<JobRecord>,
    /// In insertion order. `owner` is not kept here: rows report their job's owner.
    outbox: Vec<OutboxRow>,
    attempts: HashMap<JobId, Vec<AttemptRecord>>,
    /// Templates, oldest first.
    templates: Vec<TemplateRecord>,
    /// `Idempotency-Key`s by (owner, key), with the Unix ms they were saved at.
    idempotency: HashMap<(Option<String>, String), (IdempotentJob, i64)>,
}

impl MemoryInner {
    /// The row as the store reports it: with its job's owner (`None` when the job is unknown).
    fn reported(&self, row: &OutboxRow) -> OutboxRow {
        OutboxRow {
            owner: self
                .jobs
                .iter()
                .find(|j| j.id == row.job_id)
                .and_then(|j| j.owner.clone()),
            ..row.clone()
        }
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // Every write below completes before anything can panic: a poisoned lock holds no
        // half-done change (the SQLite store recovers its lock the same way).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl JobStore for MemoryStore {
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), StoreError> {
        let mut m = self.lock();
        if m.jobs.iter().any(|j| j.id == job.id) {
            return Err(StoreError(format!("job {} is already stored", job.id)));
        }
        m.job_seq += 1;
        job.seq = m.job_seq;
        if let Some(idem) = &job.idempotency {
            let now = chrono::Utc::now().timestamp_millis();
            m.idempotency
                .retain(|_, (_, at)| *at >= now - IDEMPOTENCY_WINDOW_MS);
            let named = IdempotentJob {
                job_id: job.id.clone(),
                body_hash: idem.body_hash.clone(),
            };
            m.idempotency
                .insert((job.owner.clone(), idem.key.clone()), (named, now));
        }
        // Only the admission fields are stored, as SqliteStore does.
        m.jobs.push(JobRecord {
            seq: job.seq,
            spec: job.spec.clone(),
            status: job.status,
            attempt: job.attempt,
            ..JobRecord::admitted(
                job.id.clone(),
                None,
                job.webhook_url.clone(),
                job.owner.clone(),
                job.created_at.clone(),
            )
        });
        Ok(())
    }

    fn insert_jobs(&self, jobs: &mut [JobRecord]) -> Result<(), StoreError> {
        {
            let m = self.lock();
            for (i, job) in jobs.iter().enumerate() {
                if m.jobs.iter().any(|j| j.id == job.id) || jobs[..i].iter().any(|j| j.id == job.id)
                {
                    return Err(StoreError(format!("job {} is already stored", job.id)));
                }
            }
        }
        // Nothing below can fail now: all or none.
        for job in jobs.iter_mut() {
            self.insert_job(job)?;
        }
        Ok(())
    }

    fn idempotent_job(
        &self,
        owner: Option<&str>,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<IdempotentJob>, StoreError> {
        let m = self.lock();
        Ok(m.idempotency
            .get(&(owner.map(str::to_string), key.to_string()))
            .filter(|(_, at)| *at >= since_ms)
            .map(|(named, _)| named.clone()))
    }

    fn update_job(&self, job: &JobRecord, outbox: Option<&OutboxRow>) -> Result<(), StoreError> {
        let mut m = self.lock();
        if let Some(j) = m.jobs.iter_mut().find(|j| j.id == job.id) {
            j.status = job.status;
            j.attempt = job.attempt;
            j.started_at.clone_from(&job.started_at);
            j.finished_at.clone_from(&job.finished_at);
            j.finished_ms = job.finished_ms;
            j.result.clone_from(&job.result);
            j.video.clone_from(&job.video);
            j.reel.clone_from(&job.reel);
            j.error.clone_from(&job.error);
            j.node.clone_from(&job.node);
            j.interrupted = job.interrupted;
            j.drained = job.drained;
            j.cancelled = job.cancelled;
        }
        if let Some(o) = outbox {
            if !m.outbox.iter().any(|x| x.webhook_id == o.webhook_id) {
                m.outbox_seq += 1;
                let seq = m.outbox_seq;
                m.outbox.push(OutboxRow {
                    seq,
                    owner: None,
                    ..o.clone()
                });
            }
        }
        Ok(())
    }

    fn load_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self
            .lock()
            .jobs
            .iter()
            .filter(|j| !j.expired)
            .cloned()
            .collect())
    }

    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let m = self.lock();
        Ok(m.outbox
            .iter()
            .filter(|o| o.state == DeliveryState::Pending)
            .map(|o| m.reported(o))
            .collect())
    }

    fn last_delivery(&self, job_id: &JobId) -> Result<Option<OutboxRow>, StoreError> {
        let m = self.lock();
        Ok(m.outbox
            .iter()
            .filter(|o| &o.job_id == job_id)
            .max_by_key(|o| o.seq)
            .map(|o| m.reported(o)))
    }

    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let mut m = self.lock();
        if let Some(o) = m
            .outbox
            .iter_mut()
            .find(|o| o.webhook_id == record.webhook_id)
        {
            o.attempts = o.attempts.max(record.attempt);
            o.state = state;
            o.next_attempt_ms = next_attempt_ms;
        }
        let log = m.attempts.entry(job_id.clone()).or_default();
        log.push(record.clone());
        if log.len() > MAX_ATTEMPTS_LOGGED {
            let extra = log.len() - MAX_ATTEMPTS_LOGGED;
            log.drain(..extra);
        }
        Ok(())
    }

    fn attempts(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self
            .lock()
            .attempts
            .get(job_id)
            .cloned()
            .unwrap_or_default())
    }

    fn finished_before(&self, before_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        let m = self.lock();
        Ok(m.jobs
            .iter()
            .filter(|j| !j.expired && j.finished_ms.is_some_and(|f| f < before_ms))
            .cloned()
            .collect())
    }

    fn expire(&self, job_id: &JobId) -> Result<(), StoreError> {
        let mut m = self.lock();
        if let Some(j) = m.jobs.iter_mut().find(|j| &j.id == job_id) {
            j.expired = true;
            j.spec = None;
            j.result = None;
            j.video = None;
            j.reel = None;
            j.webhook_url = None;
        }
        m.outbox.retain(|o| &o.job_id != job_id);
        m.attempts.remove(job_id);
        Ok(())
    }

    fn tombstone(&self, job_id: &JobId) -> Result<Option<Option<String>>, StoreError> {
        Ok(self
            .lock()
            .jobs
            .iter()
            .find(|j| &j.id == job_id && j.expired)
            .map(|j| j.owner.clone()))
    }

    fn insert_template(&self, template: &TemplateRecord) -> Result<(), StoreError> {
        let mut m = self.lock();
        if m.templates.iter().any(|t| t.id == template.id) {
            return Err(StoreError(format!(
                "template {} is already stored",
                template.id
            )));
        }
        m.templates.push(template.clone());
        Ok(())
    }

    fn template(&self, id: &TemplateId) -> Result<Option<TemplateRecord>, StoreError> {
        Ok(self.lock().templates.iter().find(|t| &t.id == id).cloned())
    }

    fn delete_template(&self, id: &TemplateId) -> Result<bool, StoreError> {
        let mut m = self.lock();
        let before = m.templates.len();
        m.templates.retain(|t| &t.id != id);
        Ok(m.templates.len() != before)
    }

    fn templates(
        &self,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TemplateRecord>, usize), StoreError> {
        let m = self.lock();
        let mine: Vec<&TemplateRecord> = m
            .templates
            .iter()
            .filter(|t| t.owner.as_deref() == owner)
            .collect();
        let total = mine.len();
        Ok((mine.into_iter().rev().take(limit).cloned().collect(), total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        conformance::run_all(|| Box::new(MemoryStore::default()));
    }
}
