//! The durable job store, as the actors see it: jobs with their spec and state, the webhook
//! outbox, and the log of delivery attempts.
//!
//! Writes that move a job and queue its webhook happen in one call (one transaction in the SQLite
//! implementation): an event is never committed without its delivery row, nor a delivery without
//! its event. The root crate implements this with SQLite (`src/store.rs`); [`MemoryStore`] serves
//! the actor tests and the `render` command.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::events::EventKind;
use crate::job::{JobId, JobResult, JobStatus};
use crate::spec::VideoSpec;

#[derive(Debug, thiserror::Error)]
#[error("job store: {0}")]
pub struct StoreError(pub String);

/// How one attempt ended, for the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub webhook_id: String,
    pub event: EventKind,
    pub attempt: u32,
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// `delivered`, `retrying`, `exhausted` or `gave-up` (410 / permanent error); for a manual
    /// redelivery of a settled event `redelivered` or `redelivery-failed`.
    pub result: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    /// Admission order (FIFO); assigned by the store on insert.
    pub seq: i64,
    pub spec: VideoSpec,
    pub webhook_url: Option<String>,
    /// The API key (its id, never the key) that created the job.
    pub owner: Option<String>,
    pub status: JobStatus,
    pub attempt: u32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub result: Option<JobResult>,
    pub video: Option<PathBuf>,
    pub reel: Option<PathBuf>,
    pub error: Option<String>,
    /// Unix ms when the job finished (for retention).
    pub finished_ms: Option<i64>,
    /// Removed by retention: only the id is kept, to answer 410.
    pub expired: bool,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Exhausted,
    GaveUp,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Exhausted => "exhausted",
            DeliveryState::GaveUp => "gave-up",
        }
    }

    pub fn parse(s: &str) -> DeliveryState {
        match s {
            "delivered" => DeliveryState::Delivered,
            "exhausted" => DeliveryState::Exhausted,
            "gave-up" => DeliveryState::GaveUp,
            _ => DeliveryState::Pending,
        }
    }
}

/// One row of the webhook outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub webhook_id: String,
    pub job_id: JobId,
    pub event: EventKind,
    pub url: String,
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix ms of the next attempt (when pending).
    pub next_attempt_ms: i64,
    pub state: DeliveryState,
    /// Insertion order: a job's events are delivered in this order.
    pub seq: i64,
    /// The API key that created the job (its secret signs the deliveries); `None` when open.
    pub owner: Option<String>,
}

/// What the actors need from durable storage.
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new queued job; fills in `seq`. Called before the client gets its 202.
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), StoreError>;
    /// Saves the job's state and, in the same transaction, queues `outbox` if given.
    fn update_job(&self, job: &JobRecord, outbox: Option<&OutboxRow>) -> Result<(), StoreError>;
    /// Every job, in admission order.
    fn load_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// Deliveries not settled yet, in insertion order.
    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, StoreError>;
    /// The last delivery queued for a job (for redelivery).
    fn last_delivery(&self, job_id: &JobId) -> Result<Option<OutboxRow>, StoreError>;
    /// Logs an attempt and moves the delivery on (next attempt time or settled state).
    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError>;
    /// The attempt log of one job, oldest first.
    fn attempts(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Jobs finished before `before_ms` that are not expired yet.
    fn finished_before(&self, before_ms: i64) -> Result<Vec<JobRecord>, StoreError>;
    /// Drops a job's data and deliveries, keeping a tombstone so status can answer 410.
    fn expire(&self, job_id: &JobId) -> Result<(), StoreError>;
}

/// An in-memory [`JobStore`] for tests and one-shot use. Not durable.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    seq: i64,
    jobs: Vec<JobRecord>,
    outbox: Vec<OutboxRow>,
    attempts: HashMap<JobId, Vec<AttemptRecord>>,
}

impl JobStore for MemoryStore {
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), StoreError> {
        let mut m = self.inner.lock().expect("store lock");
        m.seq += 1;
        job.seq = m.seq;
        m.jobs.push(job.clone());
        Ok(())
    }

    fn update_job(&self, job: &JobRecord, outbox: Option<&OutboxRow>) -> Result<(), StoreError> {
        let mut m = self.inner.lock().expect("store lock");
        if let Some(j) = m.jobs.iter_mut().find(|j| j.id == job.id) {
            *j = job.clone();
        }
        if let Some(o) = outbox {
            m.seq += 1;
            let mut o = o.clone();
            o.seq = m.seq;
            m.outbox.retain(|x| x.webhook_id != o.webhook_id);
            m.outbox.push(o);
        }
        Ok(())
    }

    fn load_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.inner.lock().expect("store lock").jobs.clone())
    }

    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let m = self.inner.lock().expect("store lock");
        Ok(m.outbox
            .iter()
            .filter(|o| o.state == DeliveryState::Pending)
            .cloned()
            .collect())
    }

    fn last_delivery(&self, job_id: &JobId) -> Result<Option<OutboxRow>, StoreError> {
        let m = self.inner.lock().expect("store lock");
        Ok(m.outbox
            .iter()
            .filter(|o| &o.job_id == job_id)
            .max_by_key(|o| o.seq)
            .cloned())
    }

    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let mut m = self.inner.lock().expect("store lock");
        if let Some(o) = m
            .outbox
            .iter_mut()
            .find(|o| o.webhook_id == record.webhook_id)
        {
            o.attempts = o.attempts.max(record.attempt);
            o.state = state;
            o.next_attempt_ms = next_attempt_ms;
        }
        m.attempts
            .entry(job_id.clone())
            .or_default()
            .push(record.clone());
        Ok(())
    }

    fn attempts(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .expect("store lock")
            .attempts
            .get(job_id)
            .cloned()
            .unwrap_or_default())
    }

    fn finished_before(&self, before_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        let m = self.inner.lock().expect("store lock");
        Ok(m.jobs
            .iter()
            .filter(|j| !j.expired && j.finished_ms.is_some_and(|f| f < before_ms))
            .cloned()
            .collect())
    }

    fn expire(&self, job_id: &JobId) -> Result<(), StoreError> {
        let mut m = self.inner.lock().expect("store lock");
        if let Some(j) = m.jobs.iter_mut().find(|j| &j.id == job_id) {
            j.expired = true;
            j.result = None;
        }
        m.outbox.retain(|o| &o.job_id != job_id);
        m.attempts.remove(job_id);
        Ok(())
    }
}
