//! The coordinator's book of worker nodes: who is up, suspect or down, and why. Plain code: the
//! ClusterActor feeds it events with the clock and carries out the transitions it returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ractor_cluster::NodeId;
use serde::Serialize;

use crate::wire::{WorkerStatus, WIRE_VERSION};

/// A node's health, as `GET /api/cluster` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Heartbeating: takes attempts.
    Up,
    /// Silent for more than half the heartbeat timeout: still counted, watched.
    Suspect,
    /// Gone (disconnected, left, silent past the timeout, or unfit): takes nothing.
    Down,
}

/// One node as `GET /api/cluster` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The node's name.
    pub name: String,
    /// Where its link comes from (`host:port`).
    pub address: String,
    /// `up`, `suspect` or `down`.
    pub status: NodeStatus,
    /// Renders it runs at once.
    pub capacity: u32,
    /// Renders it reported running in its last heartbeat.
    pub running: u32,
    /// When its last heartbeat arrived (RFC 3339), if one did.
    pub last_heartbeat: Option<String>,
    /// Why it is down, or what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The worker nodes as the HTTP layer reads them (written by the ClusterActor).
pub type ClusterViews = Arc<DashMap<String, NodeView>>;

/// What the JobManager must be told after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The node takes attempts, with this many slots.
    Up {
        /// The node.
        name: String,
        /// Its render slots.
        capacity: usize,
    },
    /// The node is lost: its attempts fail over.
    Down {
        /// The node.
        name: String,
        /// Why, in words.
        why: String,
    },
}

/// Health by silence: up below half the timeout, suspect below the timeout, down past it.
pub fn liveness(silent_for: Duration, timeout: Duration) -> NodeStatus {
    if silent_for >= timeout {
        NodeStatus::Down
    } else if silent_for >= timeout / 2 {
        NodeStatus::Suspect
    } else {
        NodeStatus::Up
    }
}

/// Why a worker may not take attempts, if it may not.
pub fn unfit(status: &WorkerStatus, catalog_version: &str) -> Option<String> {
    if status.wire_version != WIRE_VERSION {
        return Some(format!(
            "it speaks wire version {}, this coordinator {WIRE_VERSION}",
            status.wire_version
        ));
    }
    if status.catalog_version != catalog_version {
        return Some(format!(
            "its catalog (themes, music, fonts) is {}, the coordinator's {catalog_version}: it would render differently",
            status.catalog_version
        ));
    }
    if status.capacity == 0 {
        return Some("it has no render slots".into());
    }
    None
}

#[derive(Debug, Clone)]
struct Entry {
    view: NodeView,
    /// The session it is attached by, while attached.
    session: Option<NodeId>,
    last_heard: Instant,
    /// Counted by the JobManager (it was told `Up` and not `Down` since).
    counted: bool,
    unfit: bool,
}

/// The book of worker nodes.
#[derive(Debug)]
pub struct Registry {
    catalog_version: String,
    timeout: Duration,
    nodes: BTreeMap<String, Entry>,
}

impl Registry {
    /// An empty book; workers must have `catalog_version` and be heard from within `timeout`.
    pub fn new(catalog_version: String, timeout: Duration) -> Registry {
        Registry {
            catalog_version,
            timeout,
            nodes: BTreeMap::new(),
        }
    }

    /// Every node's view.
    pub fn views(&self) -> impl Iterator<Item = &NodeView> {
        self.nodes.values().map(|e| &e.view)
    }

    /// The node attached by `session`, if any.
    pub fn by_session(&self, session: NodeId) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, e)| e.session == Some(session))
            .map(|(n, _)| n.as_str())
    }

    /// Whether `name` takes attempts now.
    pub fn is_counted(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|e| e.counted)
    }

    /// A worker's endpoint joined and answered its status: it is attached by `session`.
    pub fn attached(
        &mut self,
        status: &WorkerStatus,
        session: NodeId,
        address: String,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<Transition> {
        let unfit = unfit(status, &self.catalog_version);
        let mut out = Vec::new();
        if let Some(old) = self.nodes.get(&status.node) {
            if old.session.is_some() && old.session != Some(session) && old.counted {
                // The same name on a new link: the old link's attempts are lost.
                out.push(Transition::Down {
                    name: status.node.clone(),
                    why: "it reconnected on a new link".into(),
                });
            }
        }
        let counted = unfit.is_none();
        if counted {
            out.push(Transition::Up {
                name: status.node.clone(),
                capacity: status.capacity as usize,
            });
        }
        self.nodes.insert(
            status.node.clone(),
            Entry {
                view: NodeView {
                    name: status.node.clone(),
                    address,
                    status: if counted {
                        NodeStatus::Up
                    } else {
                        NodeStatus::Down
                    },
                    capacity: status.capacity,
                    running: status.running.len() as u32,
                    last_heartbeat: Some(crate::cluster::registry::rfc3339(wall)),
                    reason: unfit.clone(),
                },
                session: Some(session),
                last_heard: now,
                counted,
                unfit: !counted,
            },
        );
        out
    }

    /// A heartbeat arrived. A node that was declared down for silence but is still attached comes
    /// back up. Heartbeats of unknown or detached nodes change nothing (they attach through their
    /// group).
    pub fn heartbeat(
        &mut self,
        status: &WorkerStatus,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<Transition> {
        let Some(e) = self.nodes.get_mut(&status.node) else {
            return Vec::new();
        };
        if e.session.is_none() || e.unfit {
            return Vec::new();
        }
        e.last_heard = now;
        e.view.last_heartbeat = Some(rfc3339(wall));
        e.view.running = status.running.len() as u32;
        e.view.status = NodeStatus::Up;
        let capacity_changed = e.view.capacity != status.capacity;
        e.view.capacity = status.capacity;
        if !e.counted || capacity_changed {
            e.counted = true;
            e.view.reason = None;
            return vec![Transition::Up {
                name: status.node.clone(),
                capacity: status.capacity as usize,
            }];
        }
        Vec::new()
    }

    /// The clock moved: nodes silent past half the timeout are suspect, past it down.
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        let timeout = self.timeout;
        let mut out = Vec::new();
        for (name, e) in &mut self.nodes {
            if !e.counted {
                continue;
            }
            let silent = now.saturating_duration_since(e.last_heard);
            match liveness(silent, timeout) {
                NodeStatus::Down => {
                    e.counted = false;
                    e.view.status = NodeStatus::Down;
                    let why = format!("no heartbeat for {:.1}s", silent.as_secs_f64());
                    e.view.reason = Some(why.clone());
                    out.push(Transition::Down {
                        name: name.clone(),
                        why,
                    });
                }
                s => e.view.status = s,
            }
        }
        out
    }

    /// A node's link closed (or its endpoint left the group): it is down and detached.
    pub fn detached(&mut self, session: NodeId, why: &str) -> Vec<Transition> {
        let mut out = Vec::new();
        for (name, e) in &mut self.nodes {
            if e.session != Some(session) {
                continue;
            }
            e.session = None;
            e.view.status = NodeStatus::Down;
            e.view.reason = Some(why.to_string());
            if std::mem::take(&mut e.counted) {
                out.push(Transition::Down {
                    name: name.clone(),
                    why: why.to_string(),
                });
            }
        }
        out
    }
}

/// A wall-clock time as the API writes it.
pub fn rfc3339(wall: DateTime<Utc>) -> String {
    wall.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str, capacity: u32) -> WorkerStatus {
        WorkerStatus {
            node: node.into(),
            wire_version: WIRE_VERSION,
            catalog_version: "cat-1".into(),
            capacity,
            running: Vec::new(),
            seq: 0,
        }
    }

    fn up(name: &str, capacity: usize) -> Transition {
        Transition::Up {
            name: name.into(),
            capacity,
        }
    }

    #[test]
    fn silence_makes_a_node_suspect_then_down_and_a_heartbeat_brings_it_back() {
        let t0 = Instant::now();
        let wall = Utc::now();
        let mut r = Registry::new("cat-1".into(), Duration::from_secs(10));
        let got = r.attached(&status("w1", 2), 7, "10.0.0.2:5000".into(), t0, wall);
        assert_eq!(got, vec![up("w1", 2)]);
        assert!(r.tick(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(r.views().next().unwrap().status, NodeStatus::Up);
        assert!(r.tick(t0 + Duration::from_secs(6)).is_empty());
        assert_eq!(r.views().next().unwrap().status, NodeStatus::Suspect);
        let down = r.tick(t0 + Duration::from_secs(10));
        assert!(matches!(&down[..], [Transition::Down { name, .. }] if name == "w1"));
        assert_eq!(r.views().next().unwrap().status, NodeStatus::Down);
        assert!(r.tick(t0 + Duration::from_secs(20)).is_empty(), "down once");
        // Thawed: the same link heartbeats again.
        let back = r.heartbeat(&status("w1", 2), t0 + Duration::from_secs(21), wall);
        assert_eq!(back, vec![up("w1", 2)]);
        assert_eq!(r.views().next().unwrap().status, NodeStatus::Up);
        assert!(r
            .heartbeat(&status("w1", 2), t0 + Duration::from_secs(22), wall)
            .is_empty());
    }

    #[test]
    fn a_closed_link_detaches_and_only_a_new_attachment_brings_the_node_back() {
        let t0 = Instant::now();
        let wall = Utc::now();
        let mut r = Registry::new("cat-1".into(), Duration::from_secs(10));
        r.attached(&status("w1", 1), 7, "a".into(), t0, wall);
        let down = r.detached(7, "its link closed");
        assert!(matches!(&down[..], [Transition::Down { why, .. }] if why == "its link closed"));
        assert!(r.detached(7, "again").is_empty());
        assert!(r.heartbeat(&status("w1", 1), t0, wall).is_empty());
        assert_eq!(r.by_session(7), None);
        let back = r.attached(&status("w1", 1), 9, "a".into(), t0, wall);
        assert_eq!(back, vec![up("w1", 1)]);
        assert_eq!(r.by_session(9), Some("w1"));
    }

    #[test]
    fn a_node_with_another_catalog_or_wire_version_never_counts() {
        let t0 = Instant::now();
        let wall = Utc::now();
        let mut r = Registry::new("cat-1".into(), Duration::from_secs(10));
        let mut other = status("w2", 2);
        other.catalog_version = "cat-2".into();
        assert!(r.attached(&other, 3, "b".into(), t0, wall).is_empty());
        assert!(r.heartbeat(&other, t0, wall).is_empty());
        let v = r.views().next().unwrap();
        assert_eq!(v.status, NodeStatus::Down);
        assert!(v.reason.as_deref().unwrap().contains("cat-2"));
        let mut old = status("w3", 2);
        old.wire_version = WIRE_VERSION + 1;
        assert!(unfit(&old, "cat-1").unwrap().contains("wire version"));
        assert!(unfit(&status("w4", 0), "cat-1").is_some());
        assert!(!r.is_counted("w2"));
    }

    #[test]
    fn the_same_name_on_a_new_link_loses_the_old_links_attempts() {
        let t0 = Instant::now();
        let wall = Utc::now();
        let mut r = Registry::new("cat-1".into(), Duration::from_secs(10));
        r.attached(&status("w1", 1), 1, "a".into(), t0, wall);
        let got = r.attached(&status("w1", 1), 2, "a".into(), t0, wall);
        assert!(matches!(got[0], Transition::Down { .. }));
        assert_eq!(got[1], up("w1", 1));
    }

    #[test]
    fn liveness_thresholds() {
        let t = Duration::from_secs(10);
        assert_eq!(liveness(Duration::from_millis(4999), t), NodeStatus::Up);
        assert_eq!(liveness(Duration::from_secs(5), t), NodeStatus::Suspect);
        assert_eq!(liveness(Duration::from_secs(10), t), NodeStatus::Down);
    }
}
