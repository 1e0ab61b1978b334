//! # vidbuilder
//!
//! The server and command-line side of vidbuilder: configuration, the HTTP API, the SQLite job store,
//! S3, the webhook HTTP client and the CLI, wired with the renderer of [`vidbuilder_render`] into
//! the actor tree of [`vidbuilder_actors`]. See `ARCHITECTURE.md` for the map.
#![forbid(unsafe_code)]

pub mod app;
pub mod artifacts;
pub mod bench;
pub mod bench_cluster;
pub mod bench_webhooks;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod render_port;
pub mod s3;
pub mod store;
pub mod telemetry;
pub mod webhook_client;

pub use app::Server;
pub use config::Config;
pub use error::Error;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
