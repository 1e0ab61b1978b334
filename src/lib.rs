//! # vidbuilder
//!
//! The server and command-line side of vidbuilder: configuration, the HTTP API, the real renderer
//! (frames drawn in Rust, encoded by an ffmpeg child process) and the webhook HTTP client, wired
//! into the actor tree of [`vidbuilder_actors`]. See `ARCHITECTURE.md` for the map.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod error;
pub mod http;
pub mod render;
pub mod s3;
pub mod ssrf;
pub mod store;
pub mod webhook_client;

pub use app::Server;
pub use config::Config;
pub use error::Error;
