//! Manual redelivery: `POST /api/jobs/:jobId/webhooks/redeliver`.
//!
//! - While a delivery of the job is still unsettled (waiting for a retry), its retry timer is
//!   cancelled and the next attempt starts now; it then follows the normal rules (ordering, log,
//!   schedule for what remains).
//! - Once every event is settled (delivered, exhausted or given up), the job's last event (from
//!   the outbox) is sent once more in its own task, under the global limit, with the same
//!   `webhook-id` and body and a fresh timestamp and signature. It is logged as `redelivered` or
//!   `redelivery-failed`, is never retried, and a success marks the delivery delivered.

use chrono::Utc;
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use tracing::{error, info, info_span, warn};

use super::{AttemptRecord, Delivery, WebhookMsg, WebhookState};
use crate::ports::AttemptOutcome;
use vidbuilder_domain::events::EventKind;
use vidbuilder_domain::job::{timestamp, JobId};
use vidbuilder_domain::store::{AttemptResult, DeliveryState, OutboxRow};

/// What a redelivery request set going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redelivery {
    /// The `webhook-id` of the delivery being sent.
    pub webhook_id: String,
    /// Which event it carries.
    pub event: EventKind,
    /// 1-based number of the attempt being made.
    pub attempt: u32,
    /// True when an unsettled delivery was moved forward instead (it keeps its retry schedule).
    pub was_pending: bool,
}

impl WebhookState {
    pub(super) fn redeliver(
        &mut self,
        myself: &ActorRef<WebhookMsg>,
        job_id: &JobId,
    ) -> Result<Option<Redelivery>, String> {
        if let Some(head) = self.queues.get(job_id).and_then(|q| q.front()) {
            let answer = Redelivery {
                webhook_id: head.delivery.webhook_id.clone(),
                event: head.delivery.event,
                attempt: head.attempts + u32::from(!head.in_flight),
                was_pending: true,
            };
            if !head.in_flight {
                if let Some(timer) = self.timers.remove(job_id) {
                    timer.abort();
                }
                self.start_attempt(myself, job_id);
            }
            return Ok(Some(answer));
        }
        let Some(row) = self
            .store
            .last_delivery(job_id)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let attempt = row.attempts + 1;
        let answer = Redelivery {
            webhook_id: row.webhook_id.clone(),
            event: row.event,
            attempt,
            was_pending: false,
        };
        let d = Delivery::from_row(row.clone());
        let span = info_span!("webhook", job_id = %job_id, event = d.event.as_str(), attempt, manual = true);
        self.send_in_task(
            d,
            span,
            move |outcome| WebhookMsg::RedeliveryDone {
                row,
                attempt,
                outcome,
            },
            myself,
        );
        Ok(Some(answer))
    }

    pub(super) fn finish_redelivery(
        &mut self,
        row: OutboxRow,
        attempt: u32,
        outcome: AttemptOutcome,
    ) {
        let ok = outcome.is_success();
        let record = AttemptRecord {
            webhook_id: row.webhook_id.clone(),
            event: row.event,
            attempt,
            at: timestamp(Utc::now()),
            status_code: outcome.status,
            error: outcome.error.clone(),
            latency_ms: outcome.latency_ms,
            result: if ok {
                AttemptResult::Redelivered
            } else {
                AttemptResult::RedeliveryFailed
            },
        };
        let _span = info_span!("webhook", job_id = %row.job_id, event = row.event.as_str(), attempt, manual = true).entered();
        if ok {
            info!(status = ?outcome.status, latency_ms = outcome.latency_ms, "webhook redelivered");
        } else {
            warn!(status = ?outcome.status, error = ?outcome.error, latency_ms = outcome.latency_ms, "webhook redelivery failed");
        }
        let state = if ok {
            DeliveryState::Delivered
        } else {
            row.state
        };
        if let Err(e) = self
            .store
            .record_attempt(&record, &row.job_id, state, row.next_attempt_ms)
        {
            error!("could not record the redelivery in the outbox: {e}");
        }
    }
}
