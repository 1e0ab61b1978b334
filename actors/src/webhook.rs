//! The WebhookActor: delivers each job's webhook events in order, retrying on a schedule.
//!
//! Rules:
//! - Success is any 2xx. Anything else — 3xx, 4xx, 5xx, timeout, connection error — is retried
//!   after each delay of the schedule (default 30 s, 2 min, 5 min: four attempts in all), then the
//!   delivery is marked exhausted. A 410 Gone or a permanent transport error stops at once.
//!   `Retry-After` on the answer is honoured, clamped to [`WebhookSettings::max_retry_after`].
//! - The body is serialised once, when the event is enqueued; every attempt sends the same bytes
//!   with the same `webhook-id` and a fresh `webhook-timestamp`.
//! - Events of one job are delivered in order: `completed` waits until `started` was delivered or
//!   given up on. Different jobs never wait for each other: each attempt runs in its own task, under
//!   a global concurrency limit, and reports back with a message.
//! - Retry timers are `send_after` handles kept in the state, so they can be cancelled.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;

use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tracing::{error, info, info_span, warn, Instrument};

use crate::ports::{AttemptOutcome, WebhookRequest, WebhookTransport};
use vidbuilder_domain::events::{EventKind, WebhookEvent};
use vidbuilder_domain::job::{timestamp, JobId};
use vidbuilder_domain::store::{
    AttemptRecord, AttemptResult, AttemptToRecord, DeliveryState, JobStore, OutboxRow,
};

mod redeliver;
pub use redeliver::{may_redeliver, Manual, Redelivery, RedeliveryRefused};

/// One event to deliver to one URL.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The job the event is about.
    pub job_id: JobId,
    /// Which event it carries.
    pub event: EventKind,
    /// The receiver's URL (the job's `webhookUrl`).
    pub url: String,
    /// The `webhook-id` header: one per job and event, the same on every attempt.
    pub webhook_id: String,
    /// The serialised event: the exact bytes every attempt sends.
    pub body: Bytes,
    /// The API key that created the job: whose secret signs the attempts.
    pub owner: Option<String>,
}

/// Wall-clock unix milliseconds (outbox due times survive restarts, so they are not `Instant`s).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Delivery {
    /// A delivery loaded back from its outbox row (at start, or for a redelivery).
    pub fn from_row(row: OutboxRow) -> Delivery {
        Delivery {
            job_id: row.job_id,
            event: row.event,
            url: row.url,
            webhook_id: row.webhook_id,
            body: Bytes::from(row.body),
            owner: row.owner,
        }
    }

    /// The outbox row that makes this delivery durable, due now.
    pub fn to_row(&self) -> OutboxRow {
        OutboxRow {
            webhook_id: self.webhook_id.clone(),
            job_id: self.job_id.clone(),
            event: self.event,
            url: self.url.clone(),
            body: self.body.to_vec(),
            attempts: 0,
            next_attempt_ms: now_ms(),
            state: DeliveryState::Pending,
            seq: 0,
            owner: self.owner.clone(),
        }
    }

    /// The delivery of `event` to `url`; its body is serialised here, once.
    pub fn new(url: &str, event: &WebhookEvent, owner: Option<String>) -> Delivery {
        Delivery {
            job_id: event.job_id.clone(),
            event: event.status,
            url: url.to_string(),
            webhook_id: event.webhook_id(),
            body: Bytes::from(serde_json::to_vec(event).expect("webhook events serialise")),
            owner,
        }
    }
}

/// How the WebhookActor retries, limits and signs its deliveries.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Delays before the 2nd, 3rd, … attempt.
    pub retry_schedule: Vec<Duration>,
    /// Most attempts in flight at once across all receivers.
    pub max_in_flight: usize,
    /// Most attempts in flight at once to one host, so one slow receiver cannot take every slot.
    pub max_per_host: usize,
    /// Upper bound for a receiver's `Retry-After`.
    pub max_retry_after: Duration,
    /// Least time between two manual redeliveries of one job (`429` with `Retry-After` sooner).
    pub redelivery_cooldown: Duration,
    /// Sign every attempt (`webhook-signature`, `x-webhook-signature`) with the job owner's
    /// secret; see [`crate::signing`].
    pub secrets: crate::signing::SigningKeys,
}

/// The WebhookActor's messages.
#[derive(RactorMessage)]
pub enum WebhookMsg {
    /// Queue an event for delivery (from the JobManager).
    Enqueue(Delivery),
    /// Time to try the head delivery of this job (first attempt or a retry timer firing).
    Attempt(JobId),
    /// An attempt's task finished.
    AttemptDone {
        /// The job whose head delivery was attempted.
        job_id: JobId,
        /// How the attempt went.
        outcome: AttemptOutcome,
    },
    /// The delivery log of one job.
    Log {
        /// The job whose log is wanted.
        job_id: JobId,
        /// Gets its attempts, oldest first (none when the store fails).
        reply: RpcReplyPort<Vec<AttemptRecord>>,
    },
    /// How many deliveries are not settled yet (in flight, waiting for a retry, or finished but
    /// not yet recorded in the outbox).
    Pending(RpcReplyPort<usize>),
    /// Write the attempts finished since the last flush to the outbox in one transaction (sent
    /// by the actor to itself when the first of them is queued: a group commit).
    Flush,
    /// Send the job's last event again now, outside the retry schedule, with the same
    /// `webhook-id` and body (see [`Redelivery`]). `Ok(None)`: the job has no event.
    Redeliver {
        /// The job whose last event is sent again.
        job_id: JobId,
        /// Gets what was set going, or why nothing was.
        reply: RpcReplyPort<Result<Option<Redelivery>, RedeliveryRefused>>,
    },
    /// A manual redelivery's task finished.
    RedeliveryDone {
        /// The outbox row that was sent again.
        row: OutboxRow,
        /// The attempt's number: the row's attempts plus one.
        attempt: u32,
        /// How the attempt went.
        outcome: AttemptOutcome,
    },
}

/// Delivers webhook events (see the module docs).
pub struct WebhookActor;

/// What the WebhookActor is spawned with (kept by its supervisor to start it again).
#[derive(Clone)]
pub struct WebhookArgs {
    /// Sends the POSTs.
    pub transport: Arc<dyn WebhookTransport>,
    /// How it retries, limits and signs.
    pub settings: WebhookSettings,
    /// The outbox: pending deliveries are loaded from it at start, and every attempt is logged
    /// in it, so retries survive a restart.
    pub store: Arc<dyn JobStore>,
}

struct Pending {
    delivery: Delivery,
    attempts: u32,
    in_flight: bool,
}

/// The WebhookActor's state: per-job delivery queues, retry timers and concurrency limits.
pub struct WebhookState {
    transport: Arc<dyn WebhookTransport>,
    settings: WebhookSettings,
    limit: Arc<Semaphore>,
    per_host: HashMap<String, Arc<Semaphore>>,
    queues: HashMap<JobId, VecDeque<Pending>>,
    timers: HashMap<JobId, AbortHandle>,
    /// Manual redeliveries by job: the one in flight and when the last began (the throttle).
    manual: HashMap<JobId, Manual>,
    store: Arc<dyn JobStore>,
    /// Attempts finished but not yet in the outbox; [`WebhookMsg::Flush`] writes them.
    unrecorded: Vec<AttemptToRecord>,
}

impl WebhookState {
    /// Queues a finished attempt for the outbox. The first one queued sends the actor a
    /// [`WebhookMsg::Flush`], which comes after every message already in the mailbox: the
    /// attempts that finish meanwhile share its transaction (one disk flush), and an idle actor
    /// still records each attempt at once.
    fn record_later(&mut self, myself: &ActorRef<WebhookMsg>, attempt: AttemptToRecord) {
        if self.unrecorded.is_empty() {
            let _ = myself.cast(WebhookMsg::Flush);
        }
        self.unrecorded.push(attempt);
    }

    /// Writes the queued attempts to the outbox (before anything that reads it, and at stop).
    pub(crate) fn flush(&mut self) {
        if self.unrecorded.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.unrecorded);
        if let Err(e) = self.store.record_attempts(&batch) {
            error!(
                attempts = batch.len(),
                "could not record the attempts in the outbox: {e}"
            );
        }
    }

    fn start_attempt(&mut self, myself: &ActorRef<WebhookMsg>, job_id: &JobId) {
        self.timers.remove(job_id);
        let Some(head) = self.queues.get_mut(job_id).and_then(|q| q.front_mut()) else {
            return;
        };
        if head.in_flight {
            return;
        }
        head.in_flight = true;
        head.attempts += 1;
        let d = head.delivery.clone();
        let span = info_span!("webhook", job_id = %job_id, event = d.event.as_str(), attempt = head.attempts);
        let job = job_id.clone();
        self.send_in_task(
            d,
            span,
            move |outcome| WebhookMsg::AttemptDone {
                job_id: job,
                outcome,
            },
            myself,
        );
    }

    /// Sends one attempt of `d` in its own task, under the global in-flight limit, and reports the
    /// outcome to the actor as `done(outcome)`. The timestamp and signatures are made once the
    /// permit is held, so a wait for a slot never sends a stale `webhook-timestamp`.
    pub(crate) fn send_in_task(
        &mut self,
        d: Delivery,
        span: tracing::Span,
        done: impl FnOnce(AttemptOutcome) -> WebhookMsg + Send + 'static,
        myself: &ActorRef<WebhookMsg>,
    ) {
        let transport = self.transport.clone();
        let limit = self.limit.clone();
        let host = url::Url::parse(&d.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let per_host_max = self.settings.max_per_host.max(1);
        if self.per_host.len() > 1024 {
            // Forget idle hosts so the map stays small.
            self.per_host
                .retain(|_, s| s.available_permits() < per_host_max);
        }
        let per_host = self
            .per_host
            .entry(host)
            .or_insert_with(|| Arc::new(Semaphore::new(per_host_max)))
            .clone();
        let secret = self.settings.secrets.for_owner(d.owner.as_deref()).cloned();
        let me = myself.clone();
        tokio::spawn(
            async move {
                // The host's slot first: waiting for a busy host must not hold a global slot.
                let _host_permit = per_host.acquire_owned().await;
                let _permit = limit.acquire_owned().await;
                let req = WebhookRequest {
                    url: d.url.clone(),
                    headers: crate::signing::delivery_headers(
                        secret.as_ref(),
                        &d.webhook_id,
                        Utc::now().timestamp(),
                        &d.body,
                    ),
                    body: d.body.clone(),
                };
                let started = Instant::now();
                let mut outcome = transport.post(req).await;
                if outcome.latency_ms == 0 {
                    outcome.latency_ms = started.elapsed().as_millis() as u64;
                }
                let _ = me.cast(done(outcome));
            }
            .instrument(span),
        );
    }

    fn finish_attempt(
        &mut self,
        myself: &ActorRef<WebhookMsg>,
        job_id: JobId,
        outcome: AttemptOutcome,
    ) {
        let Some(queue) = self.queues.get_mut(&job_id) else {
            return;
        };
        let Some(head) = queue.front_mut() else {
            return;
        };
        head.in_flight = false;
        let attempt = head.attempts;
        let max_attempts = 1 + self.settings.retry_schedule.len() as u32;
        let result = AttemptResult::of(&outcome, attempt, max_attempts);
        let record = AttemptRecord {
            webhook_id: head.delivery.webhook_id.clone(),
            event: head.delivery.event,
            attempt,
            at: timestamp(Utc::now()),
            status_code: outcome.status,
            error: outcome.error.clone(),
            latency_ms: outcome.latency_ms,
            result,
        };
        crate::observe::webhook_attempt(&record);
        let _span =
            info_span!("webhook", job_id = %job_id, event = head.delivery.event.as_str(), attempt)
                .entered();
        if result == AttemptResult::Delivered {
            info!(status = ?outcome.status, latency_ms = outcome.latency_ms, "webhook delivered");
        } else {
            warn!(status = ?outcome.status, error = ?outcome.error, latency_ms = outcome.latency_ms, result = result.as_str(), "webhook attempt failed");
        }
        let state = result.state();
        let delay = (result == AttemptResult::Retrying).then(|| {
            let delay = self.settings.retry_schedule[(attempt - 1) as usize];
            match outcome.retry_after {
                Some(asked) => delay.max(asked.min(self.settings.max_retry_after)),
                None => delay,
            }
        });
        let next_ms = now_ms() + delay.map(|d| d.as_millis() as i64).unwrap_or(0);
        self.record_later(
            myself,
            AttemptToRecord {
                record,
                job_id: job_id.clone(),
                state,
                next_attempt_ms: next_ms,
            },
        );
        let Some(queue) = self.queues.get_mut(&job_id) else {
            return;
        };

        if let Some(delay) = delay {
            let job = job_id.clone();
            let timer = myself.send_after(delay, move || WebhookMsg::Attempt(job));
            self.timers.insert(job_id, timer.abort_handle());
            return;
        }
        queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&job_id);
        } else {
            self.start_attempt(myself, &job_id);
        }
    }
}

impl Actor for WebhookActor {
    type Msg = WebhookMsg;
    type State = WebhookState;
    type Arguments = WebhookArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WebhookMsg>,
        args: WebhookArgs,
    ) -> Result<WebhookState, ActorProcessingErr> {
        let mut state = WebhookState {
            limit: Arc::new(Semaphore::new(args.settings.max_in_flight.max(1))),
            per_host: HashMap::new(),
            transport: args.transport,
            settings: args.settings,
            queues: HashMap::new(),
            timers: HashMap::new(),
            manual: HashMap::new(),
            store: args.store,
            unrecorded: Vec::new(),
        };
        // Resume what a previous run left: each job's head delivery at its due time (at once when
        // overdue), the rest of its events behind it.
        let pending = state.store.pending_deliveries()?;
        if !pending.is_empty() {
            info!(
                deliveries = pending.len(),
                "resuming webhook deliveries from the outbox"
            );
        }
        for row in pending {
            let due_in = Duration::from_millis((row.next_attempt_ms - now_ms()).max(0) as u64);
            let key = row.job_id.clone();
            let queue = state.queues.entry(key.clone()).or_default();
            let first = queue.is_empty();
            queue.push_back(Pending {
                attempts: row.attempts,
                in_flight: false,
                delivery: Delivery::from_row(row),
            });
            if first {
                let job = key.clone();
                let timer = myself.send_after(due_in, move || WebhookMsg::Attempt(job));
                state.timers.insert(key, timer.abort_handle());
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WebhookMsg>,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        state.flush();
        for (_, t) in state.timers.drain() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WebhookMsg>,
        msg: WebhookMsg,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebhookMsg::Enqueue(d) => {
                let job = d.job_id.clone();
                let queue = state.queues.entry(job.clone()).or_default();
                if queue.iter().any(|p| p.delivery.webhook_id == d.webhook_id) {
                    return Ok(()); // already queued (e.g. loaded from the outbox at start)
                }
                queue.push_back(Pending {
                    delivery: d,
                    attempts: 0,
                    in_flight: false,
                });
                if queue.len() == 1 {
                    state.start_attempt(&myself, &job);
                }
            }
            WebhookMsg::Attempt(job) => state.start_attempt(&myself, &job),
            WebhookMsg::AttemptDone { job_id, outcome } => {
                state.finish_attempt(&myself, job_id, outcome)
            }
            WebhookMsg::Log { job_id, reply } => {
                state.flush();
                let _ = reply.send(state.store.attempts(&job_id).unwrap_or_default());
            }
            WebhookMsg::Pending(reply) => {
                // A retrying delivery is still queued; a settled one waits only for its record.
                let queued: usize = state.queues.values().map(|q| q.len()).sum();
                let settling = state
                    .unrecorded
                    .iter()
                    .filter(|a| a.state != DeliveryState::Pending)
                    .count();
                let _ = reply.send(queued + settling);
            }
            WebhookMsg::Redeliver { job_id, reply } => {
                state.flush();
                let _ = reply.send(state.redeliver(&myself, &job_id));
            }
            WebhookMsg::RedeliveryDone {
                row,
                attempt,
                outcome,
            } => {
                state.flush();
                state.finish_redelivery(row, attempt, outcome)
            }
            WebhookMsg::Flush => state.flush(),
        }
        Ok(())
    }
}
