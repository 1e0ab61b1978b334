//! Manual redelivery: `POST /api/jobs/:jobId/webhooks/redeliver`.
//!
//! - While a delivery of the job is still unsettled (waiting for a retry), its retry timer is
//!   cancelled and the next attempt starts now; it then follows the normal rules (ordering, log,
//!   schedule for what remains).
//! - Once every event is settled (delivered, exhausted or given up), the job's last event (from
//!   the outbox) is sent once more in its own task, under the global limit, with the same
//!   `webhook-id` and body and a fresh timestamp and signature. It is logged as `redelivered` or
//!   `redelivery-failed`, is never retried, and a success marks the delivery delivered.
//! - It cannot be used as a weapon: one manual redelivery per job at a time, none sooner than
//!   [`super::WebhookSettings::redelivery_cooldown`] after the previous one (both refused with a
//!   `Retry-After`), and none to a receiver that answered `410 Gone` (it asked to be left alone).

use std::time::{Duration, Instant};

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

/// Why a manual redelivery was not set going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RedeliveryRefused {
    /// A delivery of this job is in flight now.
    #[error("a delivery of this job is in flight; retry in {retry_after_secs} s")]
    Busy {
        /// When to ask again.
        retry_after_secs: u64,
    },
    /// The previous manual redelivery of this job began less than the cooldown ago.
    #[error("this job's webhook was redelivered moments ago; retry in {retry_after_secs} s")]
    Cooling {
        /// When to ask again.
        retry_after_secs: u64,
    },
    /// The receiver answered `410 Gone`: it asked not to be sent this job's events again.
    #[error("the receiver answered 410 Gone for this job's webhook; it is not sent there again")]
    Gone,
    /// The store could not be read.
    #[error("could not read the job's deliveries: {0}")]
    Store(String),
}

/// A job's manual redeliveries, as the throttle sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manual {
    /// A manual redelivery's task is running.
    pub in_flight: bool,
    /// When the last one began.
    pub last: Instant,
}

/// The throttle, as a plain decision: may a manual redelivery of a job begin `now`? `manual` is
/// its last one (if any), `head_in_flight` whether a scheduled attempt is in flight.
pub fn may_redeliver(
    manual: Option<&Manual>,
    head_in_flight: bool,
    now: Instant,
    cooldown: Duration,
) -> Result<(), RedeliveryRefused> {
    let secs = |d: Duration| d.as_secs_f64().ceil().max(1.0) as u64;
    if head_in_flight || manual.is_some_and(|m| m.in_flight) {
        return Err(RedeliveryRefused::Busy {
            retry_after_secs: secs(cooldown),
        });
    }
    if let Some(m) = manual {
        let since = now.saturating_duration_since(m.last);
        if since < cooldown {
            return Err(RedeliveryRefused::Cooling {
                retry_after_secs: secs(cooldown - since),
            });
        }
    }
    Ok(())
}

impl WebhookState {
    pub(super) fn redeliver(
        &mut self,
        myself: &ActorRef<WebhookMsg>,
        job_id: &JobId,
    ) -> Result<Option<Redelivery>, RedeliveryRefused> {
        let now = Instant::now();
        let cooldown = self.settings.redelivery_cooldown;
        let head_in_flight = self
            .queues
            .get(job_id)
            .and_then(|q| q.front())
            .is_some_and(|h| h.in_flight);
        may_redeliver(self.manual.get(job_id), head_in_flight, now, cooldown)?;
        let gone = self
            .store
            .attempts(job_id)
            .map_err(|e| RedeliveryRefused::Store(e.to_string()))?
            .iter()
            .any(|a| a.status_code == Some(410));
        if gone {
            return Err(RedeliveryRefused::Gone);
        }
        if self.manual.len() > 1024 {
            self.manual
                .retain(|_, m| m.in_flight || now.saturating_duration_since(m.last) < cooldown);
        }
        if let Some(head) = self.queues.get(job_id).and_then(|q| q.front()) {
            let answer = Redelivery {
                webhook_id: head.delivery.webhook_id.clone(),
                event: head.delivery.event,
                attempt: head.attempts + 1,
                was_pending: true,
            };
            if let Some(timer) = self.timers.remove(job_id) {
                timer.abort();
            }
            self.start_attempt(myself, job_id);
            self.manual.insert(
                job_id.clone(),
                Manual {
                    in_flight: false,
                    last: now,
                },
            );
            return Ok(Some(answer));
        }
        let Some(row) = self
            .store
            .last_delivery(job_id)
            .map_err(|e| RedeliveryRefused::Store(e.to_string()))?
        else {
            return Ok(None);
        };
        self.manual.insert(
            job_id.clone(),
            Manual {
                in_flight: true,
                last: now,
            },
        );
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
        if let Some(m) = self.manual.get_mut(&row.job_id) {
            m.in_flight = false;
        }
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
        crate::observe::webhook_attempt(&record);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_allows_one_at_a_time_and_one_per_cooldown() {
        let t0 = Instant::now();
        let cool = Duration::from_secs(10);
        assert_eq!(may_redeliver(None, false, t0, cool), Ok(()));
        // A scheduled attempt in flight, or a manual one: busy.
        assert_eq!(
            may_redeliver(None, true, t0, cool),
            Err(RedeliveryRefused::Busy {
                retry_after_secs: 10
            })
        );
        let running = Manual {
            in_flight: true,
            last: t0,
        };
        assert!(matches!(
            may_redeliver(Some(&running), false, t0 + Duration::from_secs(60), cool),
            Err(RedeliveryRefused::Busy { .. })
        ));
        // Done, but within the cooldown: the rest of it, rounded up.
        let done = Manual {
            in_flight: false,
            last: t0,
        };
        assert_eq!(
            may_redeliver(Some(&done), false, t0 + Duration::from_millis(2500), cool),
            Err(RedeliveryRefused::Cooling {
                retry_after_secs: 8
            })
        );
        assert_eq!(
            may_redeliver(Some(&done), false, t0 + Duration::from_millis(9990), cool),
            Err(RedeliveryRefused::Cooling {
                retry_after_secs: 1
            })
        );
        assert_eq!(may_redeliver(Some(&done), false, t0 + cool, cool), Ok(()));
        // No cooldown configured: only one at a time.
        assert_eq!(
            may_redeliver(Some(&done), false, t0, Duration::ZERO),
            Ok(())
        );
    }
}
