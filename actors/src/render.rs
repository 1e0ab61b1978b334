//! The RenderActor: one per running job, spawned linked to the JobManager.
//!
//! It runs its job's render once and reports `Progress` and then `RenderDone` to the JobManager,
//! which stops it. It holds no state the job needs afterwards: the JobManager is the source of
//! truth, so a crash here loses nothing but the attempt. A panic in the renderer becomes a
//! supervision event at the JobManager. If the actor is killed mid-render the render future is
//! dropped, and the drop guard cancels the renderer's token so the encoder process dies too.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};

use crate::manager::JobManagerMsg;
use crate::ports::{ProgressSink, RenderRequest, Renderer};

#[derive(RactorMessage)]
pub enum RenderMsg {
    /// Start rendering (sent to itself once started).
    Run,
}

pub struct RenderActor;

pub struct RenderArgs {
    pub request: RenderRequest,
    pub renderer: Arc<dyn Renderer>,
    pub manager: ActorRef<JobManagerMsg>,
}

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
                let (job_id, attempt) = (req.job_id.clone(), req.attempt);
                let span = info_span!("render", job_id = %job_id, attempt);
                let manager = state.args.manager.clone();
                let (job, progress_manager) = (job_id.clone(), manager.clone());
                let sink: ProgressSink = Arc::new(move |progress| {
                    let _ = progress_manager.cast(JobManagerMsg::Progress {
                        job_id: job.clone(),
                        attempt,
                        progress,
                    });
                });
                // Cancels the renderer if this future is dropped (actor killed mid-render).
                let _guard = state.cancel.clone().drop_guard();
                let result = state
                    .args
                    .renderer
                    .render(req, sink, state.cancel.clone())
                    .instrument(span)
                    .await;
                manager.cast(JobManagerMsg::RenderDone {
                    job_id,
                    attempt,
                    result,
                })?;
            }
        }
        Ok(())
    }
}
