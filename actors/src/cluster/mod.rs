//! Cluster mode: render workers on other nodes, reached over `ractor_cluster`.
//!
//! ```text
//! coordinator process                                   worker process (one per node)
//! ┌──────────────────────────────────────────┐          ┌───────────────────────────────────┐
//! │ JobManager ─Dispatch/Cancel/Fetch─► ClusterActor ◄─┐│ WorkerNode ─spawn_linked─► RenderActor│
//! │     ▲   NodeUp/NodeDown/Progress/RenderDone │   │  ││    ▲  │ heartbeats, Finished (rpc,  │
//! │     └────────────────────────────────────────┘   │  ││    │  ▼ re-sent until receipted)   │
//! │ CoordinatorEndpoint (pg "coordinator") ◄─────────┼──┼┼─ CoordinatorMsg                   │
//! │                                   WorkerMsg ─────┼──┼┼► WorkerEndpoint (pg "workers")     │
//! └──────────────────────────────────────────┘      │  │└───────────────────────────────────┘
//! ```
//!
//! Only the two endpoints' message types ([`crate::wire`]) cross the wire; everything else is
//! local. Workers announce themselves by joining the `workers` group of the `vidbuilder` scope
//! (`ractor::pg`, synchronised by ractor_cluster when a session is ready); the coordinator asks
//! each new member its [`crate::wire::WorkerStatus`] and registers it under its node name.
//!
//! What ractor_cluster does not do, this module does: a node is declared lost when its session
//! closes, when it leaves its group, or when its heartbeats stop for `heartbeat_timeout` (a
//! frozen process keeps its socket open; ractor_cluster sends pings but never times out on a
//! missing pong); workers reconnect with backoff; every result is acknowledged and re-sent until
//! it is; files travel in checked chunks far below the 16 MiB frame cap.

pub mod coordinator;
pub mod registry;
pub mod transfer;
pub mod worker;

use std::time::Duration;

/// The `ractor::pg` scope of vidbuilder's groups.
pub const SCOPE: &str = "vidbuilder";
/// The group the workers' endpoints join.
pub const WORKERS: &str = "workers";
/// The group the coordinator's endpoint joins.
pub const COORDINATOR: &str = "coordinator";

/// Timings of the cluster protocol, shared by both roles.
#[derive(Debug, Clone)]
pub struct Timings {
    /// How often a worker sends its heartbeat.
    pub heartbeat_interval: Duration,
    /// A worker silent this long is lost (suspect from half of it).
    pub heartbeat_timeout: Duration,
    /// Deadline of one request across the wire (dispatch, status, one chunk, a result's receipt).
    pub rpc_timeout: Duration,
}
