//! The admission queue, fair between tenants: each API key (owner) has its own FIFO lane, and
//! jobs are taken from the lanes in turn (round-robin across the keys that have jobs waiting),
//! so one key that fills the queue delays its own jobs, not everyone's. Jobs that must go first
//! (a restarted attempt, a job taken back from a lost worker) wait in an urgent lane ahead of all.

use std::collections::{HashMap, VecDeque};

use vidbuilder_domain::JobId;

/// Whose job it is: the API key's id, or `None` on an open server.
pub type Owner = Option<String>;

/// See the module docs.
#[derive(Debug, Default)]
pub struct FairQueue {
    urgent: VecDeque<(Owner, JobId)>,
    lanes: HashMap<Owner, VecDeque<JobId>>,
    /// Owners with a non-empty lane, in the order they are served next.
    turn: VecDeque<Owner>,
    len: usize,
}

impl FairQueue {
    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no job waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Jobs of `owner` waiting (urgent ones included).
    pub fn queued_for(&self, owner: &Owner) -> usize {
        self.lanes.get(owner).map_or(0, VecDeque::len)
            + self.urgent.iter().filter(|(o, _)| o == owner).count()
    }

    /// `id` waits at the end of its owner's lane.
    pub fn push_back(&mut self, owner: Owner, id: JobId) {
        let lane = self.lanes.entry(owner.clone()).or_default();
        if lane.is_empty() {
            self.turn.push_back(owner);
        }
        lane.push_back(id);
        self.len += 1;
    }

    /// `id` goes ahead of every lane (behind other urgent jobs).
    pub fn push_front(&mut self, owner: Owner, id: JobId) {
        self.urgent.push_back((owner, id));
        self.len += 1;
    }

    /// The next job to start: an urgent one, else the head of the lane whose turn it is (that
    /// lane then goes to the back of the turn).
    pub fn pop_front(&mut self) -> Option<JobId> {
        if let Some((_, id)) = self.urgent.pop_front() {
            self.len -= 1;
            return Some(id);
        }
        let owner = self.turn.pop_front()?;
        let lane = self.lanes.get_mut(&owner)?;
        let id = lane.pop_front()?;
        if lane.is_empty() {
            self.lanes.remove(&owner);
        } else {
            self.turn.push_back(owner);
        }
        self.len -= 1;
        Some(id)
    }

    /// Removes `id` wherever it waits; false if it was not queued.
    pub fn remove(&mut self, id: &JobId) -> bool {
        if let Some(i) = self.urgent.iter().position(|(_, j)| j == id) {
            self.urgent.remove(i);
            self.len -= 1;
            return true;
        }
        let Some(owner) = self
            .lanes
            .iter()
            .find(|(_, lane)| lane.contains(id))
            .map(|(o, _)| o.clone())
        else {
            return false;
        };
        let lane = self.lanes.get_mut(&owner).expect("found above");
        lane.retain(|j| j != id);
        if lane.is_empty() {
            self.lanes.remove(&owner);
            self.turn.retain(|o| o != &owner);
        }
        self.len -= 1;
        true
    }

    /// Every waiting job in the order [`FairQueue::pop_front`] would give them (for
    /// `queuePosition`), as long as nothing new arrives.
    pub fn order(&self) -> Vec<JobId> {
        let mut out: Vec<JobId> = self.urgent.iter().map(|(_, id)| id.clone()).collect();
        let lanes: Vec<&VecDeque<JobId>> =
            self.turn.iter().filter_map(|o| self.lanes.get(o)).collect();
        let deepest = lanes.iter().map(|l| l.len()).max().unwrap_or(0);
        for round in 0..deepest {
            for lane in &lanes {
                if let Some(id) = lane.get(round) {
                    out.push(id.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> JobId {
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        JobId::parse(&format!("{hex:0>16}")).unwrap()
    }

    #[test]
    fn keys_take_turns_and_urgent_jobs_go_first() {
        let (a, b, c): (Owner, Owner, Owner) = (Some("a".into()), Some("b".into()), None);
        let mut q = FairQueue::default();
        // Key a fills the queue first; b and the open lane come later.
        for i in 1..=4 {
            q.push_back(a.clone(), id(&format!("a{i}")));
        }
        q.push_back(b.clone(), id("b1"));
        q.push_back(b.clone(), id("b2"));
        q.push_back(c.clone(), id("c1"));
        q.push_front(b.clone(), id("b0"));
        assert_eq!(q.len(), 8);
        assert_eq!(q.queued_for(&a), 4);
        assert_eq!(q.queued_for(&b), 3);
        let expected: Vec<JobId> = ["b0", "a1", "b1", "c1", "a2", "b2", "a3", "a4"]
            .iter()
            .map(|s| id(s))
            .collect();
        assert_eq!(q.order(), expected);
        let mut popped = Vec::new();
        while let Some(j) = q.pop_front() {
            popped.push(j);
        }
        assert_eq!(popped, expected, "pop follows the announced order");
        assert!(q.is_empty() && q.lanes.is_empty() && q.turn.is_empty());
    }

    #[test]
    fn a_late_key_is_served_next_round_not_after_the_backlog() {
        let a: Owner = Some("a".into());
        let mut q = FairQueue::default();
        for i in 1..=100 {
            q.push_back(a.clone(), id(&format!("{i}")));
        }
        q.pop_front();
        q.push_back(Some("late".into()), id("late"));
        let pos = q.order().iter().position(|j| j == &id("late")).unwrap();
        assert!(pos <= 1, "position {pos}");
        assert!(q.remove(&id("late")));
        assert!(!q.remove(&id("late")));
        assert!(q.remove(&id("50")));
        assert_eq!(q.len(), 98);
        assert_eq!(q.order().len(), 98);
    }
}
