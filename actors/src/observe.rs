//! The actors' metrics, through the `metrics` facade (the server installs the Prometheus
//! recorder; without one these calls do nothing). Names and labels are listed in the README.

use vidbuilder_domain::store::AttemptRecord;

/// A job completed: counted, with its render time and frames per second.
pub(crate) fn job_completed(render_secs: f64, frames: u64) {
    job_ended("completed");
    metrics::histogram!("vidbuilder_render_seconds").record(render_secs);
    if render_secs > 0.0 {
        metrics::histogram!("vidbuilder_render_fps").record(frames as f64 / render_secs);
    }
}

/// A job ended as `completed`, `failed` or `cancelled`.
pub(crate) fn job_ended(outcome: &'static str) {
    metrics::counter!("vidbuilder_jobs_finished_total", "outcome" => outcome).increment(1);
}

/// A webhook delivery attempt: counted by its result, its latency recorded.
pub(crate) fn webhook_attempt(record: &AttemptRecord) {
    metrics::counter!("vidbuilder_webhook_attempts_total", "result" => record.result.as_str())
        .increment(1);
    metrics::histogram!("vidbuilder_webhook_latency_seconds")
        .record(record.latency_ms as f64 / 1000.0);
}
