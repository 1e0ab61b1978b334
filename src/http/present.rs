//! The HTTP shape of jobs: the job-status body (contract field names, the `message` texts, the
//! `progress` percentage) built from the JobManager's snapshots, and the download URLs the
//! contract's result fields carry.

use serde::Serialize;
use vidbuilder_actors::ports::{AspectRatio, Links};
use vidbuilder_domain::job::{JobFailure, JobId, JobPhase, JobResult, JobSnapshot, JobStatus};

/// The prefix of the download routes (`http/download.rs`).
pub const DOWNLOAD_PREFIX: &str = "/api/download/";

/// The download URLs of `http/download.rs`, for the JobManager.
pub struct DownloadLinks;

impl Links for DownloadLinks {
    fn video(&self, job: &JobId) -> String {
        format!("{DOWNLOAD_PREFIX}{job}")
    }
    fn reel(&self, job: &JobId) -> String {
        format!("{DOWNLOAD_PREFIX}{job}/reel")
    }
    fn poster(&self, job: &JobId) -> String {
        format!("{DOWNLOAD_PREFIX}{job}/poster")
    }
    fn output(&self, job: &JobId, ratio: AspectRatio) -> String {
        format!("{DOWNLOAD_PREFIX}{job}/outputs/{}", ratio.slug())
    }
    fn output_poster(&self, job: &JobId, ratio: AspectRatio) -> String {
        format!("{DOWNLOAD_PREFIX}{job}/outputs/{}/poster", ratio.slug())
    }
}

/// `GET /api/job-status/:jobId`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusBody {
    /// The job's id.
    #[schema(value_type = String)]
    pub job_id: JobId,
    /// `queued`, `processing`, `completed` or `failed`.
    pub status: JobStatus,
    /// Percent done, 0–100 (see [`progress_and_message`]).
    pub progress: u8,
    /// A human-readable line on what the job is doing.
    pub message: String,
    /// When the job was submitted (RFC 3339, UTC).
    pub created_at: String,
    /// When its first render started; `None` before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it completed or failed; `None` before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// 1-based position in the admission queue while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// The current (or last) render attempt, 1-based; `None` before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The node that renders (or rendered) the current attempt: this server's node name, or a
    /// worker's in cluster mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The result fields (download URLs and the like), flattened in once completed.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = result_fields)]
    pub result: Option<JobResult>,
    /// The error text, once failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when the client cancelled the job (then `failed` with `error: "Cancelled"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
    /// The client's `metadata` object from the spec, unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// The schema of the flattened result: [`JobResult`]'s fields, none required (they are there once
/// the job completed, absent before).
fn result_fields() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::{RefOr, Schema};
    let mut schema = <JobResult as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::Object(o)) = &mut schema {
        o.required.clear();
    }
    schema
}

impl From<&JobSnapshot> for JobStatusBody {
    fn from(s: &JobSnapshot) -> Self {
        let (progress, message) = progress_and_message(s);
        JobStatusBody {
            job_id: s.job_id.clone(),
            status: s.status,
            progress,
            message,
            created_at: s.created_at.clone(),
            started_at: s.started_at.clone(),
            finished_at: s.finished_at.clone(),
            queue_position: s.queue_position,
            attempt: s.attempt,
            node: s.node.clone(),
            result: s.result.clone(),
            error: s.error.clone(),
            cancelled: s.cancelled,
            metadata: s.metadata.clone(),
        }
    }
}

/// `progress` (0–100, never back within an attempt: the phases only move forward) and `message`.
pub fn progress_and_message(s: &JobSnapshot) -> (u8, String) {
    match &s.phase {
        JobPhase::Queued | JobPhase::Resuming => match s.queue_position {
            Some(n) => (0, format!("Waiting in queue (position {n})")),
            None if s.phase == JobPhase::Resuming => (0, "Resuming after a restart".into()),
            None => (0, "Waiting in queue".into()),
        },
        JobPhase::Starting => match s.attempt {
            Some(n) if n > 1 => (0, format!("Starting render (attempt {n})")),
            _ => (0, "Starting render".into()),
        },
        JobPhase::Rendering {
            frames_done,
            frames_total,
        } => {
            let pct = (frames_done * 90)
                .checked_div(*frames_total)
                .unwrap_or(0)
                .min(90) as u8;
            (
                pct,
                format!("Rendering frames: {frames_done}/{frames_total}"),
            )
        }
        JobPhase::Encoding => (92, "Encoding".into()),
        JobPhase::Finalising => (97, "Finalising".into()),
        JobPhase::Uploading {
            bytes_done,
            bytes_total,
        } => {
            let pct = (bytes_done * 100)
                .checked_div(*bytes_total)
                .unwrap_or(if *bytes_done > 0 { 100 } else { 0 })
                .min(100);
            (
                97 + (pct * 2 / 100) as u8,
                format!("Uploading to S3 ({pct}%)"),
            )
        }
        JobPhase::Retrying { after, failure } => (
            0,
            format!(
                "Render failed, retrying in {}s: {}",
                after.as_secs_f32().ceil(),
                JobFailure::Render(failure.clone())
            ),
        ),
        JobPhase::Completed => (100, "Video generated successfully".into()),
        JobPhase::Failed if s.cancelled => (0, "Cancelled".into()),
        JobPhase::Failed => (0, "Video generation failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vidbuilder_domain::job::JobFiles;
    use vidbuilder_domain::ports::{RenderFailure, RenderFailureKind};

    use super::*;

    fn snap(phase: JobPhase) -> JobSnapshot {
        JobSnapshot {
            job_id: JobId::parse("abc123def4567890").unwrap(),
            status: JobStatus::Processing,
            phase,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            started_at: None,
            finished_at: None,
            queue_position: None,
            attempt: Some(1),
            node: Some("node-a".into()),
            result: None,
            error: None,
            owner: Some("key-1".into()),
            expired: false,
            files: JobFiles::default(),
            cancelled: false,
            metadata: None,
            version: 0,
        }
    }

    #[test]
    fn phases_are_worded_as_the_contract_shows() {
        let pm = |p| progress_and_message(&snap(p));
        assert_eq!(
            pm(JobPhase::Rendering {
                frames_done: 450,
                frames_total: 1000
            }),
            (40, "Rendering frames: 450/1000".into())
        );
        assert_eq!(pm(JobPhase::Encoding), (92, "Encoding".into()));
        assert_eq!(pm(JobPhase::Finalising), (97, "Finalising".into()));
        assert_eq!(
            pm(JobPhase::Uploading {
                bytes_done: 50,
                bytes_total: 100
            }),
            (98, "Uploading to S3 (50%)".into())
        );
        assert_eq!(
            pm(JobPhase::Retrying {
                after: Duration::from_secs(4),
                failure: RenderFailure::new(RenderFailureKind::Encoder, "boom")
            })
            .1,
            "Render failed, retrying in 4s: Failed to render video: boom"
        );
        let mut queued = snap(JobPhase::Queued);
        queued.queue_position = Some(2);
        assert_eq!(
            progress_and_message(&queued).1,
            "Waiting in queue (position 2)"
        );
        let mut second = snap(JobPhase::Starting);
        second.attempt = Some(2);
        assert_eq!(
            progress_and_message(&second).1,
            "Starting render (attempt 2)"
        );
    }

    #[test]
    fn the_body_has_the_contract_fields_and_never_the_owner() {
        let v = serde_json::to_value(JobStatusBody::from(&snap(JobPhase::Encoding))).unwrap();
        assert_eq!(v["jobId"], "abc123def4567890");
        assert_eq!(v["status"], "processing");
        assert_eq!(v["progress"], 92);
        assert!(v.get("owner").is_none() && v.get("files").is_none());
        assert!(v.get("queuePosition").is_none());
        assert_eq!(
            DownloadLinks.poster(&JobId::parse("abc123def4567890").unwrap()),
            "/api/download/abc123def4567890/poster"
        );
    }
}
