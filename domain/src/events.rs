//! The webhook events of the contract: `started`, then `completed` or `failed`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{timestamp, JobId, JobResult};

/// Which event a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The job's first render attempt started (sent once per job).
    Started,
    /// The job completed; the event carries the result fields.
    Completed,
    /// The job failed; the event carries `error`.
    Failed,
}

impl EventKind {
    /// The name the contract uses (the event's `status`, and the end of its webhook id).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
        }
    }
}

/// The body of a webhook POST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// `jobId`: the job the event is about.
    pub job_id: JobId,
    /// `status`: which event this is.
    pub status: EventKind,
    /// `progress`: 100 on `completed`; absent on the other events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// `message`: the contract's fixed human text for this event.
    pub message: String,
    /// The result fields (`videoUrl`, …), flattened into the body; on `completed` only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// `error`: the job's error text, on `failed` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `cancelled`: true on the `failed` event of a job the client cancelled; absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// `metadata`: the client's own object from the spec, echoed unchanged; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// `timestamp`: when the event happened (contract timestamp), the same on every attempt.
    pub timestamp: String,
}

impl WebhookEvent {
    /// The `started` event of a job, dated `at`.
    pub fn started(job_id: &JobId, at: DateTime<Utc>) -> Self {
        WebhookEvent {
            job_id: job_id.clone(),
            status: EventKind::Started,
            progress: None,
            message: "Video generation started".into(),
            result: None,
            error: None,
            cancelled: false,
            metadata: None,
            timestamp: timestamp(at),
        }
    }

    /// The `completed` event of a job with its result, dated `at`.
    pub fn completed(job_id: &JobId, result: JobResult, at: DateTime<Utc>) -> Self {
        WebhookEvent {
            job_id: job_id.clone(),
            status: EventKind::Completed,
            progress: Some(100),
            message: "Video generated successfully".into(),
            result: Some(result),
            error: None,
            cancelled: false,
            metadata: None,
            timestamp: timestamp(at),
        }
    }

    /// The `failed` event of a job with its error text, dated `at`.
    pub fn failed(job_id: &JobId, error: &str, at: DateTime<Utc>) -> Self {
        WebhookEvent {
            job_id: job_id.clone(),
            status: EventKind::Failed,
            progress: None,
            message: "Video generation failed".into(),
            result: None,
            error: Some(error.to_string()),
            cancelled: false,
            metadata: None,
            timestamp: timestamp(at),
        }
    }

    /// The event with the client's `metadata` (from the job's spec), echoed unchanged.
    pub fn with_metadata(mut self, metadata: Option<serde_json::Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// The `failed` event marked as the client's cancellation (`cancelled: true`).
    pub fn as_cancelled(mut self, cancelled: bool) -> Self {
        self.cancelled = cancelled;
        self
    }

    /// The stable id receivers dedupe on: one per job and event, the same on every attempt.
    pub fn webhook_id(&self) -> String {
        webhook_id(&self.job_id, self.status)
    }
}

/// The `webhook-id` of one event of a job: `msg_<jobId>_<event>`.
pub fn webhook_id(job_id: &JobId, kind: EventKind) -> String {
    format!("msg_{}_{}", job_id, kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::S3Upload;

    #[test]
    fn completed_event_has_the_contract_fields() {
        let id = JobId::parse("abc123def456").unwrap();
        let result = JobResult {
            video_url: "/api/download/abc123def456".into(),
            reels_url: None,
            duration: 13.0,
            scenes: 3,
            reels_generated: false,
            s3_upload: S3Upload {
                enabled: false,
                standard: None,
                reels: None,
            },
            render_time: "180s".into(),
            poster_url: None,
            outputs: Default::default(),
        };
        let at = DateTime::parse_from_rfc3339("2025-11-12T18:33:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let v = serde_json::to_value(WebhookEvent::completed(&id, result, at)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "jobId": "abc123def456", "status": "completed", "progress": 100,
                "message": "Video generated successfully", "videoUrl": "/api/download/abc123def456",
                "duration": 13.0, "scenes": 3, "reelsGenerated": false, "s3Upload": {"enabled": false},
                "renderTime": "180s", "timestamp": "2025-11-12T18:33:00.000Z"
            })
        );
        let f = serde_json::to_value(WebhookEvent::failed(
            &id,
            "Failed to render video: boom",
            at,
        ))
        .unwrap();
        assert_eq!(f["status"], "failed");
        assert_eq!(f["error"], "Failed to render video: boom");
        assert!(f.get("videoUrl").is_none());
        let s = serde_json::to_value(WebhookEvent::started(&id, at)).unwrap();
        assert_eq!(
            s,
            serde_json::json!({"jobId": "abc123def456", "status": "started",
                "message": "Video generation started", "timestamp": "2025-11-12T18:33:00.000Z"})
        );
    }
}
