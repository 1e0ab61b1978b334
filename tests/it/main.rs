//! The integration tests, as one test binary (as svix-server does): the helpers in `common`
//! are compiled once and every test file is a module of it, so there is one binary to link
//! instead of one per file.

mod common;

mod api;
mod cluster;
mod controls;
mod durability;
mod hardening;
mod observability;
mod outputs;
mod playback;
mod s3;
mod s3_jobs;
mod schema;
mod studio;
mod templates;
mod videos;
mod webhooks;
