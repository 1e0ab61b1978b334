//! A render attempt's life: progress, its result or its crash, restarts with backoff, liveness.

use tracing::warn;
use vidbuilder_domain::job::{JobFailure, JobId, JobPhase};
use vidbuilder_domain::ports::{
    RenderFailure, RenderFailureKind, RenderOutput, RenderPhase, RenderProgress,
};

use super::{Core, Job, Now};
use crate::manager::effects::Effect;
use crate::retry;

impl Core {
    /// The job and its current attempt, if a render of `attempt` is live for it.
    pub(super) fn live_render(&mut self, id: &JobId, attempt: u32) -> Option<&mut Job> {
        self.jobs
            .get_mut(id)
            .filter(|j| j.record.attempt == attempt && j.running && !j.is_terminal())
    }

    /// A render reported progress; reports of another attempt or a stopped render are ignored.
    pub fn progress(&mut self, id: &JobId, attempt: u32, p: RenderProgress, now: Now) {
        let Some(job) = self.live_render(id, attempt) else {
            return;
        };
        job.last_progress = now.at;
        job.phase = match p.phase {
            RenderPhase::Rendering => JobPhase::Rendering {
                frames_done: p.frames_done,
                frames_total: p.frames_total,
            },
            RenderPhase::Encoding => JobPhase::Encoding,
            RenderPhase::Finalising => JobPhase::Finalising,
        };
        self.dirty.insert(id.clone());
    }

    /// A render returned. Stale results (another attempt, or a render already stopped) are
    /// ignored.
    pub fn render_done(
        &mut self,
        id: &JobId,
        attempt: u32,
        result: Result<RenderOutput, RenderFailure>,
        now: Now,
    ) -> Vec<Effect> {
        self.attempt_returned(id, attempt, now, |c| match result {
            Ok(out) if c.uploads => c.begin_upload(id, out),
            Ok(out) => c.finish(id, Ok(out), now),
            Err(e) => c.attempt_failed(id, e, now),
        })
    }

    /// The current attempt of `id` returned (here or on a worker): its render stops and its slot
    /// is free, `next` decides what follows, then a drain may be answered and queued jobs start.
    /// A stale attempt (another number, or a render already stopped) changes nothing.
    pub(super) fn attempt_returned(
        &mut self,
        id: &JobId,
        attempt: u32,
        now: Now,
        next: impl FnOnce(&mut Core) -> Vec<Effect>,
    ) -> Vec<Effect> {
        if self.live_render(id, attempt).is_none() {
            return Vec::new();
        }
        let mut effects = vec![Effect::StopRender(id.clone())];
        self.stop_running(id);
        effects.extend(next(self));
        effects.extend(self.check_drain(now));
        effects.extend(self.pump(now));
        effects
    }

    /// The render actor of `id` ended without a result (crashed, stopped, killed).
    pub fn render_exited(&mut self, id: &JobId, reason: RenderFailure, now: Now) -> Vec<Effect> {
        if !self.running.contains(id) {
            return Vec::new();
        }
        self.stop_running(id);
        let killed_for = self.jobs.get_mut(id).and_then(|j| j.killed_for.take());
        if self.draining.is_some() {
            // Stopped for shutdown: the job stays `processing` in the store and resumes next start.
            return self.check_drain(now);
        }
        let reason = killed_for.unwrap_or(reason);
        warn!(job_id = %id, "{}", JobFailure::Render(reason.clone()));
        let mut effects = self.attempt_failed(id, reason, now);
        effects.extend(self.pump(now));
        effects
    }

    pub(super) fn stop_running(&mut self, id: &JobId) {
        if self.running.remove(id) {
            self.free_slot(id);
        }
        if let Some(job) = self.jobs.get_mut(id) {
            job.running = false;
        }
    }

    /// A render attempt ended without a result: retry within the restart intensity, else fail.
    /// A spec that cannot be rendered as given (an image that is not there, an unknown theme)
    /// fails at once: another attempt would fail the same way.
    pub(super) fn attempt_failed(
        &mut self,
        id: &JobId,
        reason: RenderFailure,
        now: Now,
    ) -> Vec<Effect> {
        let (window, max) = (self.settings.restart_window, self.settings.max_restarts);
        let base = self.settings.restart_backoff;
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        if !retried(reason.kind) {
            warn!(job_id = %id, attempt = job.record.attempt, "not retried: {reason}");
            return self.finish(id, Err(JobFailure::Render(reason)), now);
        }
        job.restarts.retain(|t| now.at.duration_since(*t) < window);
        if job.restarts.len() as u32 >= max {
            warn!(job_id = %id, attempt = job.record.attempt, "giving up after {} restarts: {reason}", job.restarts.len());
            return self.finish(id, Err(JobFailure::Render(reason)), now);
        }
        job.restarts.push(now.at);
        let after = retry::exponential(base, job.restarts.len() as u32 - 1);
        warn!(job_id = %id, attempt = job.record.attempt, backoff_ms = after.as_millis() as u64, "render attempt failed, restarting: {reason}");
        job.phase = JobPhase::Retrying {
            after,
            failure: reason,
        };
        self.dirty.insert(id.clone());
        vec![Effect::ScheduleRestart {
            job: id.clone(),
            after,
        }]
    }

    /// A restart's backoff elapsed: the job goes to the front of the queue (it was admitted
    /// before everything waiting).
    pub fn restart_due(&mut self, id: &JobId, now: Now) -> Vec<Effect> {
        let Some(job) = self.jobs.get(id) else {
            return Vec::new();
        };
        if job.is_terminal() || job.running || self.draining.is_some() {
            // While draining it stays `processing` in the store: it resumes on the next start.
            return Vec::new();
        }
        self.queue.push_front(self.owner_of(id), id.clone());
        self.pump(now)
    }

    /// Liveness: renders silent past the stall timeout are killed (and then handled as a crash;
    /// a local render's exit comes back as a supervision event, a remote one is cancelled on its
    /// worker and handled at once).
    pub fn check_liveness(&mut self, now: Now) -> Vec<Effect> {
        let limit = self.settings.stall_timeout;
        let stalled: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, job)| {
                job.running
                    && job.killed_for.is_none()
                    && now.at.duration_since(job.last_progress) > limit
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in stalled {
            let why = RenderFailure::new(
                RenderFailureKind::Stalled,
                format!("render stalled (no progress for {}s)", limit.as_secs()),
            );
            warn!(job_id = %id, "{why}; killing it");
            let kill = self.kill_effect(&id);
            let remote = matches!(kill, Effect::CancelRemote { .. });
            effects.push(kill);
            if remote {
                effects.extend(self.render_exited(&id, why, now));
            } else if let Some(job) = self.jobs.get_mut(&id) {
                job.killed_for = Some(why);
            }
        }
        effects
    }

    /// How to stop the job's running attempt: kill its RenderActor here, or cancel it on its
    /// worker.
    pub(super) fn kill_effect(&self, id: &JobId) -> Effect {
        match self.placement(id) {
            Some((node, attempt, false)) => Effect::CancelRemote {
                node,
                job: id.clone(),
                attempt,
            },
            _ => Effect::KillRender(id.clone()),
        }
    }
}

/// Whether a render attempt that failed this way is tried again (within the restart intensity).
/// Crashes, stalls, encoder and I/O failures (which include media that could not be fetched for
/// a reason that may pass) are; input that cannot be rendered as given is not; a cancelled render
/// never reaches here.
pub fn retried(kind: RenderFailureKind) -> bool {
    !matches!(kind, RenderFailureKind::InvalidInput)
}
