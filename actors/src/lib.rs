//! # vidbuilder-actors
//!
//! The actor tree of vidbuilder. The domain types it speaks (spec, job ids and states, events,
//! the job store's contract) live in `vidbuilder-domain`.
//!
//! - [`manager::JobManager`] owns every job's state machine (`queued → processing → completed |
//!   failed`), the FIFO admission queue and the concurrency limit, and writes each change to the
//!   read view ([`manager::JobViews`]) that the HTTP layer serves.
//! - [`render::RenderActor`], one per running job, spawned linked to the JobManager, drives a
//!   [`ports::Renderer`] and reports progress; its panic (a supervision event) or error fails only
//!   that attempt of its job, which the JobManager restarts within the restart limit.
//! - [`webhook::WebhookActor`] delivers webhook events on a retry schedule with timers; each
//!   attempt runs in its own task, so one slow receiver delays nobody else.
//!
//! The outside world (frames + ffmpeg, HTTP clients) is reached only through the traits in
//! [`ports`], so the actors are tested here with fakes and the adapters in the root crate with the
//! real things. Every message type derives `RactorMessage` so the tree is ready for
//! `ractor_cluster`.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod manager;
mod observe;
pub mod ports;
pub mod render;
pub mod retry;
pub mod signing;
pub mod upload;
pub mod webhook;
pub mod wire;
