//! `GET /api/job-events/:jobId`: a job's live progress as Server-Sent Events.
//!
//! The stream sends `status`, `progress` and `message` events as they change (each group of
//! changes ends with an `id:`), then one `result` event carrying the job-status body, then it
//! ends. It is read from the view the JobManager publishes, woken by the JobManager's change
//! announcements ([`vidbuilder_actors::manager::JobChanges`]); nothing here talks to an actor.
//!
//! Event ids are `<boot>-<version>`: the server's start time and the snapshot's publication
//! number. A client that reconnects with `Last-Event-ID` (or `?after=` when it cannot set
//! headers) gets nothing until the job changes if it had seen the current state, and the whole
//! current state otherwise (after a restart, or if it missed changes); a client that had seen
//! the final state is answered `204`, which tells an `EventSource` to stop reconnecting.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_domain::job::{JobId, JobSnapshot, JobStatus};

use super::auth::Caller;
use super::error::ApiError;
use super::present::JobStatusBody;
use super::AppState;

/// How often a comment line keeps an idle stream (and the proxies on its way) open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_events))
}

/// `?after=`: the last event id seen, for clients that cannot send `Last-Event-ID`.
#[derive(Debug, serde::Deserialize)]
struct EventsQuery {
    after: Option<String>,
}

/// The version in an event id of this server's run (`<boot>-<version>`); `None` for ids of
/// another run or malformed ones (the client then gets the whole current state).
pub fn resumed_version(id: &str, boot: u64) -> Option<u64> {
    let (b, v) = id.trim().split_once('-')?;
    (b.parse::<u64>().ok()? == boot).then_some(())?;
    v.parse().ok()
}

/// A job's live progress as Server-Sent Events.
///
/// `status`, `progress` and `message` events (JSON data with `jobId`) as they change, each group
/// ending with an `id:`; then a `result` event with the job-status body; then the stream ends.
/// Resume with `Last-Event-ID` or `?after=`; `204` when the client had seen the end.
#[utoipa::path(get, path = "/api/job-events/{job_id}", tag = "jobs",
    params(
        ("job_id" = String, Path, description = "The job's id."),
        ("after" = Option<String>, Query, description = "The last event id seen (for clients that cannot send Last-Event-ID)."),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id seen."),
    ),
    responses(
        (status = 200, description = "The event stream.", content_type = "text/event-stream", body = super::openapi::SseEvent),
        (status = 204, description = "The client had seen the job's end already."),
        (status = 400, description = "A malformed query.", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job (or not the caller's).", body = super::openapi::ErrorBody),
        (status = 410, description = "The job finished longer ago than this server keeps jobs.", body = super::openapi::ErrorBody),
    ))]
async fn job_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "Invalid query.", e.body_text()).field("after")
    })?;
    // Subscribed before the first read: no change between the two is missed.
    let changes = state.changes.subscribe();
    let view = state.job_view(&caller, &job_id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.0.after);
    let seen = after.and_then(|a| resumed_version(&a, state.boot));
    if view.status.is_terminal() && seen == Some(view.version) {
        // It saw the end already: 204 stops an EventSource from reconnecting.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let slot = state.event_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many event streams.",
            format!(
                "This server keeps at most {} live progress streams open (http.max_event_streams); poll /api/job-status/{job_id} or retry shortly.",
                state.event_streams_max
            ),
        )
        .retry_after(5)
    })?;
    let follow = Follow {
        state: state.clone(),
        id: view.job_id.clone(),
        changes,
        closing: state.closing.clone(),
        sent: None,
        seen,
        queue: VecDeque::new(),
        done: false,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(follow, Follow::next);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// What a stream last told its client.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    status: JobStatus,
    progress: u8,
    message: String,
}

/// One open stream.
struct Follow {
    state: AppState,
    id: JobId,
    changes: tokio::sync::broadcast::Receiver<JobId>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// What the client was told (`None`: nothing yet in this connection).
    sent: Option<Sent>,
    /// The version the client has seen (sent here, or resumed from).
    seen: Option<u64>,
    queue: VecDeque<Event>,
    done: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Follow {
    /// The next event, waiting for the job to change when nothing is due; `None` ends the
    /// stream (after the result, when the job leaves the view, or when the server stops).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Follow)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.done || *self.closing.borrow() {
                return None;
            }
            let view = self.state.views.get(&self.id).map(|v| v.clone())?;
            if Some(view.version) != self.seen {
                self.emit(&view);
                continue;
            }
            tokio::select! {
                _ = self.closing.changed() => return None,
                change = self.changes.recv() => match change {
                    // Another job's change, ours, or missed ones: the view says what is new.
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// Queues the events `view` brings: what changed since the last events sent, the `result`
    /// once the job is finished; the group's last event carries the id.
    fn emit(&mut self, view: &JobSnapshot) {
        let body = JobStatusBody::from(view);
        let now = Sent {
            status: body.status,
            progress: body.progress,
            message: body.message.clone(),
        };
        let before = self.sent.take();
        let id = self.id.as_str();
        let mut events = Vec::new();
        if before.as_ref().map(|s| s.status) != Some(now.status) {
            events.push(data("status", json!({"jobId": id, "status": now.status})));
        }
        if before.as_ref().map(|s| s.progress) != Some(now.progress) {
            events.push(data(
                "progress",
                json!({"jobId": id, "progress": now.progress}),
            ));
        }
        if before.as_ref().map(|s| &s.message) != Some(&now.message) {
            events.push(data(
                "message",
                json!({"jobId": id, "message": now.message}),
            ));
        }
        if view.status.is_terminal() {
            events.push(data(
                "result",
                serde_json::to_value(&body).expect("serialises"),
            ));
            self.done = true;
        }
        if let Some(last) = events.pop() {
            events.push(last.id(format!("{}-{}", self.state.boot, view.version)));
        }
        self.queue.extend(events);
        self.sent = Some(now);
        self.seen = Some(view.version);
    }
}

fn data(event: &str, value: serde_json::Value) -> Event {
    Event::default().event(event).data(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::resumed_version;

    #[test]
    fn event_ids_resume_within_one_run_only() {
        assert_eq!(resumed_version("1700-42", 1700), Some(42));
        assert_eq!(resumed_version(" 1700-0 ", 1700), Some(0));
        assert_eq!(resumed_version("1699-42", 1700), None, "another run");
        for bad in ["", "42", "1700-", "-42", "1700-x", "x-42", "1700-42-1"] {
            assert_eq!(resumed_version(bad, 1700), None, "{bad:?}");
        }
    }
}
