//! # vidbuilder-domain
//!
//! The language every other vidbuilder crate speaks, with no runtime and no I/O:
//!
//! - [`spec`]: the video spec and its validation (field-precise [`SpecError`]s);
//! - [`job`]: job ids, the four public states, the result of a finished job;
//! - [`events`]: the webhook events (`started`, `completed`, `failed`);
//! - [`ports`]: the plain data that crosses the actors' ports (render requests and outputs,
//!   webhook attempts, files for object storage);
//! - [`store`]: the job store's contract ([`store::JobStore`]), its records, and
//!   [`store::MemoryStore`];
//! - [`template`]: stored specs with `{{name}}` merge fields, and filling them in.
#![forbid(unsafe_code)]

pub mod events;
pub mod job;
pub mod ports;
pub mod spec;
pub mod store;
pub mod template;

pub use job::{JobId, JobStatus};
pub use spec::{validate_spec, SpecError, ValidationContext, VideoSpec};
