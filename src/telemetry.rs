//! Prometheus metrics (`GET /metrics`): the process-wide recorder of the `metrics` facade, with
//! real histogram buckets, and its upkeep. The actors record job, webhook and S3 metrics through
//! the facade; the HTTP layer records requests by route and status, and sets the gauges of the
//! JobManager's published counts when scraped.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets, by metric name.
const BUCKETS: [(&str, &[f64]); 4] = [
    (
        "vidbuilder_render_seconds",
        &[
            0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
        ],
    ),
    (
        "vidbuilder_render_fps",
        &[
            5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 360.0, 480.0,
        ],
    ),
    (
        "vidbuilder_webhook_latency_seconds",
        &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ],
    ),
    (
        "vidbuilder_http_request_duration_seconds",
        &[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
        ],
    ),
];

/// The process's recorder, installed on first use (servers started in one process, as in the
/// tests, share it); a thread runs its upkeep every 5 s.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in BUCKETS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
                    .expect("non-empty buckets");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed: /metrics shows nothing");
            }
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .expect("a thread starts");
            handle
        })
        .clone()
}
