//! Where attempts run: this node's own render slots and, in cluster mode, the workers' slots;
//! which node gets the next attempt; what a lost node means for its jobs.

use tracing::{info, warn};
use vidbuilder_domain::job::JobId;
use vidbuilder_domain::ports::{RenderFailure, RenderFailureKind};

use super::{Core, Now};
use crate::manager::effects::Effect;

/// A node that runs renders, as the JobManager counts its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) capacity: usize,
    pub(super) running: usize,
    /// This node (renders run in RenderActors of this process).
    pub(super) local: bool,
}

/// One node's load, as [`pick_node`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLoad {
    /// Free render slots.
    pub free: usize,
    /// True for the coordinator's own slots.
    pub local: bool,
}

/// Which node gets the next attempt: the one with the most free slots; on a tie a worker before
/// the coordinator, and among tied workers the first at or after `cursor` (round-robin; the caller
/// moves `cursor` past the node it used). `None` when no node has a free slot.
pub fn pick_node(loads: &[NodeLoad], cursor: usize) -> Option<usize> {
    let most = loads.iter().map(|l| l.free).max().filter(|&f| f > 0)?;
    let n = loads.len();
    let tied = |i: &usize| loads[*i].free == most;
    let mut from_cursor = (0..n).map(|k| (cursor + k) % n);
    from_cursor
        .clone()
        .filter(tied)
        .find(|&i| !loads[i].local)
        .or_else(|| from_cursor.find(tied))
}

/// A node as the cluster view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlots {
    /// The node's name.
    pub name: String,
    /// Renders it runs at once.
    pub capacity: usize,
    /// Attempts the manager has placed on it now.
    pub running: usize,
    /// True for this process.
    pub local: bool,
}

impl Core {
    /// The render slots of every node, this one first.
    pub fn nodes(&self) -> Vec<NodeSlots> {
        self.nodes
            .iter()
            .map(|n| NodeSlots {
                name: n.name.clone(),
                capacity: n.capacity,
                running: n.running,
                local: n.local,
            })
            .collect()
    }

    /// The node the next attempt goes to, moving the round-robin cursor past it.
    pub(super) fn next_node(&mut self) -> Option<usize> {
        let loads: Vec<NodeLoad> = self
            .nodes
            .iter()
            .map(|n| NodeLoad {
                free: n.capacity.saturating_sub(n.running),
                local: n.local,
            })
            .collect();
        let i = pick_node(&loads, self.cursor)?;
        self.cursor = i + 1;
        Some(i)
    }

    /// Total render slots over all nodes.
    pub(super) fn capacity(&self) -> usize {
        self.nodes.iter().map(|n| n.capacity).sum()
    }

    /// Where the job's current attempt runs: its node, attempt number, and whether it is this
    /// node; `None` when no attempt of it runs.
    pub fn placement(&self, id: &JobId) -> Option<(String, u32, bool)> {
        let job = self.jobs.get(id).filter(|j| j.running)?;
        let node = job.record.node.clone()?;
        let local = self.nodes.iter().any(|n| n.local && n.name == node);
        Some((node, job.record.attempt, local))
    }

    /// Whether `attempt` of `id` is the job's current, running attempt on `node`.
    pub fn is_current(&self, id: &JobId, attempt: u32, node: &str) -> bool {
        self.jobs.get(id).is_some_and(|j| {
            j.running
                && !j.is_terminal()
                && j.record.attempt == attempt
                && j.record.node.as_deref() == Some(node)
        })
    }

    /// A worker holds the finished files of `attempt`: `true` when they should be fetched now
    /// (the attempt is current and no fetch of it runs yet); the job shows it is finalising.
    pub fn remote_rendered(&mut self, id: &JobId, attempt: u32, node: &str, now: Now) -> bool {
        if !self.is_current(id, attempt, node) {
            return false;
        }
        let Some(job) = self.jobs.get_mut(id) else {
            return false;
        };
        if job.fetching {
            return false;
        }
        job.fetching = true;
        job.last_progress = now.at;
        job.phase = vidbuilder_domain::job::JobPhase::Finalising;
        self.dirty.insert(id.clone());
        true
    }

    /// A worker's render is in object storage already (it uploaded it) and its other files are
    /// here: sign URLs for the objects, then finish as an upload would.
    pub fn remote_stored(
        &mut self,
        id: &JobId,
        attempt: u32,
        out: vidbuilder_domain::ports::RenderOutput,
        keys: Vec<String>,
        now: Now,
    ) -> Vec<Effect> {
        self.attempt_returned(id, attempt, now, |c| {
            if let Some(job) = c.jobs.get_mut(id) {
                job.rendered = Some(out);
                job.phase = vidbuilder_domain::job::JobPhase::Uploading {
                    bytes_done: 1,
                    bytes_total: 1,
                };
                c.dirty.insert(id.clone());
            }
            vec![Effect::Presign {
                job: id.clone(),
                attempt,
                keys,
            }]
        })
    }

    /// Of the attempts a worker says it renders, those it should stop (not current there).
    pub fn superseded<'a>(
        &self,
        node: &str,
        attempts: impl IntoIterator<Item = &'a (JobId, u32)>,
    ) -> Vec<(JobId, u32)> {
        attempts
            .into_iter()
            .filter(|(id, a)| !self.is_current(id, *a, node))
            .cloned()
            .collect()
    }

    /// A worker joined (or told its capacity again): its slots take attempts from now on.
    pub fn node_up(&mut self, name: &str, capacity: usize, now: Now) -> Vec<Effect> {
        match self.nodes.iter_mut().find(|n| n.name == name) {
            Some(n) if n.local => {
                warn!(node = name, "a worker took this node's name: ignored");
                return Vec::new();
            }
            Some(n) => {
                if n.capacity == capacity {
                    return Vec::new();
                }
                n.capacity = capacity;
            }
            None => {
                info!(node = name, capacity, "node up");
                self.nodes.push(super::nodes::Node {
                    name: name.to_string(),
                    capacity,
                    running: 0,
                    local: false,
                });
            }
        }
        self.pump(now)
    }

    /// A worker is gone (disconnected, left its group, or silent past the heartbeat timeout): it
    /// gets no more attempts, and each attempt it ran is handled like a crashed render (restart
    /// intensity applies; a restarted attempt goes to the front of the queue).
    pub fn node_down(&mut self, name: &str, why: &str, now: Now) -> Vec<Effect> {
        let Some(i) = self.nodes.iter().position(|n| n.name == name && !n.local) else {
            return Vec::new();
        };
        self.nodes.remove(i);
        let lost: Vec<JobId> = self
            .running
            .iter()
            .filter(|id| {
                self.jobs
                    .get(*id)
                    .is_some_and(|j| j.record.node.as_deref() == Some(name))
            })
            .cloned()
            .collect();
        warn!(node = name, jobs = lost.len(), "node down: {why}");
        let mut effects = Vec::new();
        for id in lost {
            let reason = RenderFailure::new(
                RenderFailureKind::Crashed,
                format!("node {name} was lost ({why})"),
            );
            effects.extend(self.render_exited(&id, reason, now));
        }
        effects.extend(self.pump(now));
        effects
    }

    /// The slot of the job's node is free again.
    pub(super) fn free_slot(&mut self, id: &JobId) {
        let Some(node) = self.jobs.get(id).and_then(|j| j.record.node.clone()) else {
            return;
        };
        if let Some(n) = self.nodes.iter_mut().find(|n| n.name == node) {
            n.running = n.running.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(v: &[(usize, bool)]) -> Vec<NodeLoad> {
        v.iter()
            .map(|&(free, local)| NodeLoad { free, local })
            .collect()
    }

    #[test]
    fn the_most_free_slots_win() {
        let l = loads(&[(1, true), (2, false), (3, false)]);
        assert_eq!(pick_node(&l, 0), Some(2));
        assert_eq!(pick_node(&loads(&[(3, true), (2, false)]), 0), Some(0));
    }

    #[test]
    fn nothing_free_picks_nothing() {
        assert_eq!(pick_node(&loads(&[(0, true), (0, false)]), 0), None);
        assert_eq!(pick_node(&[], 0), None);
    }

    #[test]
    fn ties_go_to_workers_before_the_coordinator_and_round_robin_between_workers() {
        let l = loads(&[(1, true), (1, false), (1, false)]);
        assert_eq!(pick_node(&l, 0), Some(1));
        assert_eq!(pick_node(&l, 2), Some(2));
        assert_eq!(pick_node(&l, 3), Some(1), "the cursor wraps");
        // Only the coordinator is tied at the top: it takes it.
        assert_eq!(pick_node(&loads(&[(2, true), (1, false)]), 1), Some(0));
        // The coordinator alone.
        assert_eq!(pick_node(&loads(&[(1, true)]), 5), Some(0));
    }
}
