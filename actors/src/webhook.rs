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
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tracing::{info, info_span, warn, Instrument};

use crate::events::{EventKind, WebhookEvent};
use crate::job::{timestamp, JobId};
use crate::ports::{AttemptOutcome, WebhookRequest, WebhookTransport};

/// One event to deliver to one URL.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub job_id: JobId,
    pub event: EventKind,
    pub url: String,
    pub webhook_id: String,
    /// The serialised event: the exact bytes every attempt sends.
    pub body: Bytes,
}

impl Delivery {
    pub fn new(url: &str, event: &WebhookEvent) -> Delivery {
        Delivery {
            job_id: event.job_id.clone(),
            event: event.status,
            url: url.to_string(),
            webhook_id: event.webhook_id(),
            body: Bytes::from(serde_json::to_vec(event).expect("webhook events serialise")),
        }
    }
}

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
    /// `delivered`, `retrying`, `exhausted` or `gave-up` (410 / permanent error).
    pub result: String,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Delays before the 2nd, 3rd, … attempt.
    pub retry_schedule: Vec<Duration>,
    /// Most attempts in flight at once across all receivers.
    pub max_in_flight: usize,
    /// Upper bound for a receiver's `Retry-After`.
    pub max_retry_after: Duration,
    /// Kept attempts per job in the delivery log.
    pub log_per_job: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            retry_schedule: vec![
                Duration::from_secs(30),
                Duration::from_secs(120),
                Duration::from_secs(300),
            ],
            max_in_flight: 64,
            max_retry_after: Duration::from_secs(3600),
            log_per_job: 32,
        }
    }
}

#[derive(RactorMessage)]
pub enum WebhookMsg {
    /// Queue an event for delivery (from the JobManager).
    Enqueue(Delivery),
    /// Time to try the head delivery of this job (first attempt or a retry timer firing).
    Attempt(JobId),
    /// An attempt's task finished.
    AttemptDone {
        job_id: JobId,
        outcome: AttemptOutcome,
    },
    /// The delivery log of one job.
    Log {
        job_id: JobId,
        reply: RpcReplyPort<Vec<AttemptRecord>>,
    },
    /// How many deliveries are not settled yet (in flight or waiting for a retry).
    Pending(RpcReplyPort<usize>),
}

pub struct WebhookActor;

pub struct WebhookArgs {
    pub transport: Arc<dyn WebhookTransport>,
    pub settings: WebhookSettings,
}

struct Pending {
    delivery: Delivery,
    attempts: u32,
    in_flight: bool,
}

pub struct WebhookState {
    transport: Arc<dyn WebhookTransport>,
    settings: WebhookSettings,
    limit: Arc<Semaphore>,
    queues: HashMap<JobId, VecDeque<Pending>>,
    timers: HashMap<JobId, AbortHandle>,
    log: HashMap<JobId, Vec<AttemptRecord>>,
}

impl WebhookState {
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
        let d = &head.delivery;
        let req = WebhookRequest {
            url: d.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), d.webhook_id.clone()),
                (
                    "webhook-timestamp".into(),
                    Utc::now().timestamp().to_string(),
                ),
            ],
            body: d.body.clone(),
        };
        let transport = self.transport.clone();
        let limit = self.limit.clone();
        let me = myself.clone();
        let job = job_id.clone();
        let span = info_span!("webhook", job_id = %job_id, event = d.event.as_str(), attempt = head.attempts);
        tokio::spawn(
            async move {
                let _permit = limit.acquire_owned().await;
                let started = Instant::now();
                let mut outcome = transport.post(req).await;
                if outcome.latency_ms == 0 {
                    outcome.latency_ms = started.elapsed().as_millis() as u64;
                }
                let _ = me.cast(WebhookMsg::AttemptDone {
                    job_id: job,
                    outcome,
                });
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
        let gone = outcome.status == Some(410) || outcome.permanent;
        let result = if outcome.is_success() {
            "delivered"
        } else if gone {
            "gave-up"
        } else if attempt >= max_attempts {
            "exhausted"
        } else {
            "retrying"
        };
        let record = AttemptRecord {
            webhook_id: head.delivery.webhook_id.clone(),
            event: head.delivery.event,
            attempt,
            at: timestamp(Utc::now()),
            status_code: outcome.status,
            error: outcome.error.clone(),
            latency_ms: outcome.latency_ms,
            result: result.to_string(),
        };
        let _span =
            info_span!("webhook", job_id = %job_id, event = head.delivery.event.as_str(), attempt)
                .entered();
        if result == "delivered" {
            info!(status = ?outcome.status, latency_ms = outcome.latency_ms, "webhook delivered");
        } else {
            warn!(status = ?outcome.status, error = ?outcome.error, latency_ms = outcome.latency_ms, result, "webhook attempt failed");
        }
        let log = self.log.entry(job_id.clone()).or_default();
        log.push(record);
        if log.len() > self.settings.log_per_job {
            log.remove(0);
        }

        if result == "retrying" {
            let mut delay = self.settings.retry_schedule[(attempt - 1) as usize];
            if let Some(asked) = outcome.retry_after {
                delay = delay.max(asked.min(self.settings.max_retry_after));
            }
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
        _myself: ActorRef<WebhookMsg>,
        args: WebhookArgs,
    ) -> Result<WebhookState, ActorProcessingErr> {
        Ok(WebhookState {
            limit: Arc::new(Semaphore::new(args.settings.max_in_flight.max(1))),
            transport: args.transport,
            settings: args.settings,
            queues: HashMap::new(),
            timers: HashMap::new(),
            log: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WebhookMsg>,
        state: &mut WebhookState,
    ) -> Result<(), ActorProcessingErr> {
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
                let _ = reply.send(state.log.get(&job_id).cloned().unwrap_or_default());
            }
            WebhookMsg::Pending(reply) => {
                let _ = reply.send(state.queues.values().map(|q| q.len()).sum());
            }
        }
        Ok(())
    }
}
