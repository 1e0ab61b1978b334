//! The RenderActor: one per running attempt, spawned linked to its supervisor (the JobManager on
//! the node that owns the job, or a worker's node actor in cluster mode).
//!
//! It runs its attempt's render once and reports [`RenderReport::Progress`] and then
//! [`RenderReport::Done`] through the callback it was given, and its supervisor stops it. It holds no state the job needs afterwards: the JobManager is the source of
//! truth, so a crash here loses nothing but the attempt. A panic in the renderer becomes a
//! supervision event at the JobManager. If the actor is killed mid-render the render future is
//! dropped, and the drop guard cancels the renderer's token so the encoder process dies too.
//!
//! Progress is throttled at the source ([`ProgressThrottle`]): a renderer may report every frame,
//! but the JobManager hears at most one report per `progress_interval`, every phase change, and
//! the last report before `RenderDone`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};

use crate::ports::{
    ProgressSink, RenderFailure, RenderOutput, RenderPhase, RenderProgress, RenderRequest, Renderer,
};

/// What a RenderActor reports about its attempt.
#[derive(Debug, Clone)]
pub enum RenderReport {
    /// Throttled progress.
    Progress(RenderProgress),
    /// The render returned (the last report).
    Done(Result<RenderOutput, RenderFailure>),
}

/// Where a RenderActor's reports go (the supervisor turns them into its own messages).
pub type RenderReports = Arc<dyn Fn(RenderReport) + Send + Sync>;

/// Which progress reports go out: the first, each phase change, and otherwise at most one per
/// `interval`; the newest report held back is released by [`ProgressThrottle::flush`]. Pure:
/// the caller supplies the clock.
#[derive(Debug)]
pub struct ProgressThrottle {
    interval: Duration,
    last_sent: Option<(Instant, RenderPhase)>,
    held: Option<RenderProgress>,
}

impl ProgressThrottle {
    /// A throttle letting through at most one report per `interval`, besides phase changes.
    pub fn new(interval: Duration) -> Self {
        ProgressThrottle {
            interval,
            last_sent: None,
            held: None,
        }
    }

    /// `Some(report)` when `p`, offered at `now`, should be sent now; otherwise it is held.
    pub fn offer(&mut self, p: RenderProgress, now: Instant) -> Option<RenderProgress> {
        let due = match self.last_sent {
            None => true,
            Some((at, phase)) => phase != p.phase || now.duration_since(at) >= self.interval,
        };
        if due {
            self.last_sent = Some((now, p.phase));
            self.held = None;
            Some(p)
        } else {
            self.held = Some(p);
            None
        }
    }

    /// The newest report that was held back, if any: sent before the render's result.
    pub fn flush(&mut self) -> Option<RenderProgress> {
        self.held.take()
    }
}

/// The RenderActor's messages.
#[derive(RactorMessage)]
pub enum RenderMsg {
    /// Start rendering (sent to itself once started).
    Run,
}

/// Renders one attempt of one job (see the module docs); spawned linked to the JobManager.
pub struct RenderActor;

/// What a RenderActor is spawned with.
pub struct RenderArgs {
    /// The attempt to render.
    pub request: RenderRequest,
    /// At most one progress report per this interval reaches the manager.
    pub progress_interval: Duration,
    /// Makes the files.
    pub renderer: Arc<dyn Renderer>,
    /// Gets the progress reports and then the result.
    pub reports: RenderReports,
}

/// A RenderActor's state: its arguments and the token that cancels the render when it stops.
pub struct RenderState {
    args: RenderArgs,
    cancel: CancellationToken,
}

impl Actor for RenderActor {
    type Msg = RenderMsg;
    type State = RenderState;
    type Arguments = RenderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RenderMsg>,
        args: RenderArgs,
    ) -> Result<RenderState, ActorProcessingErr> {
        myself.cast(RenderMsg::Run)?;
        Ok(RenderState {
            args,
            cancel: CancellationToken::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RenderMsg>,
        state: &mut RenderState,
    ) -> Result<(), ActorProcessingErr> {
        state.cancel.cancel();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RenderMsg>,
        msg: RenderMsg,
        state: &mut RenderState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RenderMsg::Run => {
                let req = state.args.request.clone();
                let span = info_span!("render", job_id = %req.job_id, attempt = req.attempt);
                let reports = state.args.reports.clone();
                let throttle = Arc::new(Mutex::new(ProgressThrottle::new(
                    state.args.progress_interval,
                )));
                let send = {
                    let reports = reports.clone();
                    move |progress| reports(RenderReport::Progress(progress))
                };
                let sink: ProgressSink = {
                    let (throttle, send) = (throttle.clone(), send.clone());
                    Arc::new(move |progress| {
                        let due = throttle
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .offer(progress, Instant::now());
                        if let Some(p) = due {
                            send(p);
                        }
                    })
                };
                // Cancels the renderer if this future is dropped (actor killed mid-render).
                let _guard = state.cancel.clone().drop_guard();
                let result = state
                    .args
                    .renderer
                    .render(req, sink, state.cancel.clone())
                    .instrument(span)
                    .await;
                let last = throttle.lock().unwrap_or_else(|e| e.into_inner()).flush();
                if let Some(p) = last {
                    send(p);
                }
                reports(RenderReport::Done(result));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(phase: RenderPhase, frames_done: u64) -> RenderProgress {
        RenderProgress {
            phase,
            frames_done,
            frames_total: 100,
        }
    }

    #[test]
    fn throttle_sends_the_first_each_phase_change_and_one_per_interval() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = ProgressThrottle::new(Duration::from_millis(250));
        let r = RenderPhase::Rendering;
        assert_eq!(t.offer(at(r, 0), ms(0)), Some(at(r, 0)));
        assert_eq!(t.offer(at(r, 1), ms(10)), None);
        assert_eq!(t.offer(at(r, 2), ms(249)), None);
        assert_eq!(t.offer(at(r, 3), ms(250)), Some(at(r, 3)));
        assert_eq!(t.flush(), None, "nothing held after a send");
        assert_eq!(t.offer(at(r, 4), ms(300)), None);
        // A phase change goes out at once.
        let e = RenderPhase::Encoding;
        assert_eq!(t.offer(at(e, 100), ms(301)), Some(at(e, 100)));
        assert_eq!(t.offer(at(e, 100), ms(302)), None);
        assert_eq!(t.flush(), Some(at(e, 100)), "the last report is never lost");
        assert_eq!(t.flush(), None);
    }

    #[test]
    fn every_frame_of_a_long_render_becomes_a_few_reports_a_second() {
        // 10 minutes at 60 fps with a reel, reported every frame, drawn at 120 frames/s.
        let t0 = Instant::now();
        let mut t = ProgressThrottle::new(Duration::from_millis(250));
        let frames = 10 * 60 * 60 * 2u64;
        let mut sent = 0u64;
        for f in 0..frames {
            let now = t0 + Duration::from_micros(f * 1_000_000 / 120);
            if t.offer(at(RenderPhase::Rendering, f), now).is_some() {
                sent += 1;
            }
        }
        sent += u64::from(t.flush().is_some());
        let secs = frames / 120;
        assert!(sent <= secs * 4 + 2, "{sent} reports in {secs} s");
        assert!(
            sent >= secs * 3,
            "{sent} reports in {secs} s: too few to show progress"
        );
    }
}
