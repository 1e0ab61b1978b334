//! `GET /api/cluster`: every node of the cluster, this one first.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidbuilder_actors::cluster::registry::{rfc3339, NodeStatus, NodeView};
use vidbuilder_actors::manager::JobManagerMsg;

use super::error::ApiError;
use super::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster))
}

/// This node's entry and the workers' (as the ClusterActor last saw them; a worker's `running`
/// is what the JobManager placed on it).
#[utoipa::path(get, path = "/api/cluster", tag = "server",
    responses((status = 200, description = "The nodes: name, address, status, capacity, running, lastHeartbeat, reason.", body = serde_json::Value)))]
async fn cluster(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let slots = ractor::call_t!(
        s.manager,
        JobManagerMsg::Nodes,
        super::ACTOR_CALL_TIMEOUT.as_millis() as u64
    )
    .map_err(super::manager_unavailable)?;
    let mut nodes = Vec::new();
    if let Some(me) = slots.iter().find(|n| n.local) {
        nodes.push(NodeView {
            name: me.name.clone(),
            address: s.cluster.listen.map(|a| a.to_string()).unwrap_or_default(),
            status: NodeStatus::Up,
            capacity: me.capacity as u32,
            running: me.running as u32,
            last_heartbeat: Some(rfc3339(chrono::Utc::now())),
            reason: None,
        });
    }
    let mut workers: Vec<NodeView> = s.cluster.views.iter().map(|v| v.clone()).collect();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    for mut w in workers {
        if let Some(placed) = slots.iter().find(|n| !n.local && n.name == w.name) {
            w.running = placed.running as u32;
        }
        nodes.push(w);
    }
    Ok(Json(json!({ "nodes": nodes })))
}
