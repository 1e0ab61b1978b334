//! The coordinator's side of cluster mode: the [`ClusterActor`], which listens for worker nodes,
//! keeps their [`Registry`], carries the JobManager's dispatches to them and their reports back,
//! and fetches finished renders; and the [`CoordinatorEndpoint`], the one actor of this node that
//! workers address (its messages are the wire's [`CoordinatorMsg`]).
//!
//! The ClusterActor is spawned by the JobManager, linked to it: if it dies, the JobManager starts
//! it again, and the workers, whose links closed with it, come back through their reconnect loop.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{
    IncomingEncryptionMode, NodeEventSubscription, NodeId, NodeServer, NodeServerMessage,
    RactorMessage,
};
use tracing::{debug, error, info, warn};
use vidbuilder_domain::ports::RenderRequest;
use vidbuilder_domain::ports::{RenderFailure, RenderFailureKind, RenderPhase, RenderProgress};

use super::registry::{ClusterViews, Registry, Transition};
use super::{transfer, Timings, COORDINATOR, SCOPE, WORKERS};
use crate::manager::JobManagerMsg;
use crate::ports::Transfer;
use crate::wire::{
    AttemptFinished, AttemptId, AttemptProgress, CoordinatorMsg, Receipt, RenderAssignment,
    RenderedAttempt, StatusRequest, UploadTarget, WorkerMsg, WorkerStatus,
};

/// How the coordinator runs its side of the cluster.
#[derive(Clone)]
pub struct ClusterSettings {
    /// This node's name.
    pub node_name: String,
    /// Where worker links are accepted.
    pub listen: SocketAddr,
    /// The shared secret every node must present.
    pub cookie: String,
    /// Heartbeats and deadlines.
    pub timings: Timings,
    /// The coordinator's catalog version: workers must have the same one.
    pub catalog_version: String,
    /// Where fetched renders are stored (the videos directory).
    pub out_dir: PathBuf,
    /// Writes fetched files.
    pub files: Arc<dyn Transfer>,
    /// The worker nodes as `GET /api/cluster` reads them.
    pub views: ClusterViews,
    /// TLS for incoming links, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What the ClusterActor is spawned with.
pub struct ClusterArgs {
    /// Its settings.
    pub settings: ClusterSettings,
    /// The JobManager it reports to.
    pub manager: ActorRef<JobManagerMsg>,
}

/// A link event, as the node server reports it.
#[derive(Debug)]
pub enum LinkEvent {
    /// A link passed the cookie check.
    Authenticated {
        /// The link's session id.
        session: NodeId,
        /// The peer's node name.
        name: String,
        /// The peer's address.
        address: String,
    },
    /// A link closed.
    Closed {
        /// The link's session id.
        session: NodeId,
        /// The peer's node name, if it said it.
        name: Option<String>,
        /// The peer's address.
        address: String,
    },
}

/// The ClusterActor's messages (local).
#[derive(RactorMessage)]
pub enum ClusterMsg {
    /// Send this attempt to `node` (from the JobManager).
    Dispatch {
        /// The worker.
        node: String,
        /// The attempt.
        request: RenderRequest,
        /// Where the worker uploads the result (object storage configured).
        upload: Option<UploadTarget>,
    },
    /// Stop this attempt on `node` (from the JobManager).
    Cancel {
        /// The worker.
        node: String,
        /// The attempt.
        attempt: AttemptId,
    },
    /// Fetch a finished render from `node` (from the JobManager: the attempt is current).
    Fetch {
        /// The worker.
        node: String,
        /// The attempt.
        attempt: AttemptId,
        /// What it made.
        rendered: RenderedAttempt,
    },
    /// From the endpoint: a worker's heartbeat.
    Heartbeat(WorkerStatus),
    /// From the endpoint: progress of a remote attempt.
    Progress(AttemptProgress),
    /// From the endpoint: a remote attempt ended (already receipted).
    Finished(AttemptFinished),
    /// A new member of the workers' group answered its status.
    Attached {
        /// The link it came by.
        session: NodeId,
        /// Its status.
        status: WorkerStatus,
        /// Its endpoint.
        worker: ActorRef<WorkerMsg>,
    },
    /// A link event.
    Link(LinkEvent),
    /// Periodic: heartbeat timeouts.
    Tick,
}

/// The coordinator's cluster actor (see the module docs).
pub struct ClusterActor;

/// The ClusterActor's state.
pub struct ClusterState {
    settings: ClusterSettings,
    manager: ActorRef<JobManagerMsg>,
    registry: Registry,
    /// Attached workers' endpoints, with the link they came by. A worker declared down for
    /// silence stays here (its link is open; it may thaw); a closed link removes it.
    workers: HashMap<String, (NodeId, ActorRef<WorkerMsg>)>,
    authenticated: HashSet<NodeId>,
    node_server: ActorRef<NodeServerMessage>,
    endpoint: ActorRef<CoordinatorMsg>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    seq: u64,
}

struct Subscriber(ActorRef<ClusterMsg>);

impl NodeEventSubscription for Subscriber {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        debug!(peer = %ses.peer_addr, "cluster link opened");
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(ClusterMsg::Link(LinkEvent::Closed {
            session: ses.node_id,
            name: ses.peer_name.map(|n| n.name),
            address: ses.peer_addr,
        }));
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(ClusterMsg::Link(LinkEvent::Authenticated {
            session: ses.node_id,
            name: ses.peer_name.map(|n| n.name).unwrap_or_default(),
            address: ses.peer_addr,
        }));
    }
}

impl ClusterState {
    fn publish(&self) {
        let views = &self.settings.views;
        for v in self.registry.views() {
            views.insert(v.name.clone(), v.clone());
        }
    }

    fn tell_manager(&mut self, transitions: Vec<Transition>) {
        for t in transitions {
            let msg = match t {
                Transition::Up { name, capacity } => {
                    info!(node = %name, capacity, "worker up");
                    JobManagerMsg::NodeUp {
                        node: name,
                        capacity,
                    }
                }
                Transition::Down { name, why } => {
                    warn!(node = %name, "worker down: {why}");
                    JobManagerMsg::NodeDown { node: name, why }
                }
            };
            if let Err(e) = self.manager.cast(msg) {
                error!("the JobManager is gone: {e}");
            }
        }
        self.publish();
    }

    /// A link closed (or its endpoint left): its worker is down and its endpoint forgotten.
    fn detach(&mut self, session: NodeId, why: &str) {
        self.workers.retain(|_, (s, _)| *s != session);
        let t = self.registry.detached(session, why);
        self.tell_manager(t);
    }

    fn fail_attempt(&self, attempt: &AttemptId, why: String) {
        let _ = self.manager.cast(JobManagerMsg::RenderDone {
            job_id: attempt.job_id.clone(),
            attempt: attempt.attempt,
            result: Err(RenderFailure::new(RenderFailureKind::Crashed, why)),
        });
    }

    fn dispatch(&self, node: String, request: RenderRequest, upload: Option<UploadTarget>) {
        let attempt = AttemptId {
            job_id: request.job_id.clone(),
            attempt: request.attempt,
        };
        let Some((_, worker)) = self.workers.get(&node).cloned() else {
            self.fail_attempt(&attempt, format!("node {node} is not connected"));
            return;
        };
        let assignment = RenderAssignment {
            attempt: attempt.clone(),
            spec: request.spec,
            catalog_version: self.settings.catalog_version.clone(),
            upload: upload.map(Box::new),
        };
        let manager = self.manager.clone();
        let timeout = self.settings.timings.rpc_timeout;
        tokio::spawn(async move {
            let why = match worker
                .call(|r| WorkerMsg::Render(assignment, r), Some(timeout))
                .await
            {
                Ok(CallResult::Success(ack)) => match ack.refused {
                    None => {
                        info!(job_id = %attempt.job_id, attempt = attempt.attempt, node = %node, "attempt dispatched");
                        return;
                    }
                    Some(why) => format!("node {node} refused the attempt: {why}"),
                },
                Ok(CallResult::Timeout) => format!(
                    "node {node} did not take the attempt within {}s",
                    timeout.as_secs_f64()
                ),
                Ok(CallResult::SenderError) => format!("node {node} dropped the attempt"),
                Err(e) => format!("node {node} is unreachable: {e}"),
            };
            warn!(job_id = %attempt.job_id, attempt = attempt.attempt, "{why}");
            let _ = manager.cast(JobManagerMsg::RenderDone {
                job_id: attempt.job_id,
                attempt: attempt.attempt,
                result: Err(RenderFailure::new(RenderFailureKind::Crashed, why)),
            });
        });
    }

    fn fetch(&self, node: String, attempt: AttemptId, rendered: RenderedAttempt) {
        let Some((_, worker)) = self.workers.get(&node).cloned() else {
            self.fail_attempt(
                &attempt,
                format!("node {node} left before its files were fetched"),
            );
            return;
        };
        let manager = self.manager.clone();
        let (dir, files) = (self.settings.out_dir.clone(), self.settings.files.clone());
        let timeout = self.settings.timings.rpc_timeout;
        tokio::spawn(async move {
            let started = Instant::now();
            let last = std::sync::Mutex::new(Instant::now());
            let (m, a) = (manager.clone(), attempt.clone());
            let report = Arc::new(move |done: u64, total: u64| {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if last.elapsed() >= Duration::from_millis(250) {
                    *last = Instant::now();
                    let _ = m.cast(JobManagerMsg::Progress {
                        job_id: a.job_id.clone(),
                        attempt: a.attempt,
                        progress: RenderProgress {
                            phase: RenderPhase::Finalising,
                            frames_done: done,
                            frames_total: total,
                        },
                    });
                }
            });
            let result =
                transfer::fetch_render(&worker, &attempt, &rendered, &dir, &files, timeout, report)
                    .await;
            let msg = match result {
                Ok((output, keys)) => {
                    let bytes: u64 = rendered.artifacts.iter().map(|a| a.bytes).sum();
                    info!(job_id = %attempt.job_id, attempt = attempt.attempt, node = %node, bytes, stored = keys.len(), secs = started.elapsed().as_secs_f64(), "render fetched and checked");
                    if keys.is_empty() {
                        JobManagerMsg::RenderDone {
                            job_id: attempt.job_id.clone(),
                            attempt: attempt.attempt,
                            result: Ok(output),
                        }
                    } else {
                        JobManagerMsg::RemoteStored {
                            job_id: attempt.job_id.clone(),
                            attempt: attempt.attempt,
                            output,
                            keys,
                        }
                    }
                }
                Err(e) => {
                    warn!(job_id = %attempt.job_id, attempt = attempt.attempt, node = %node, "fetch failed: {e}");
                    JobManagerMsg::RenderDone {
                        job_id: attempt.job_id.clone(),
                        attempt: attempt.attempt,
                        result: Err(RenderFailure::new(
                            RenderFailureKind::Io,
                            format!("fetching the render from node {node}: {e}"),
                        )),
                    }
                }
            };
            let _ = manager.cast(msg);
            // The files are here (or given up on): the worker may delete its copy.
            let _ = worker.cast(WorkerMsg::Release(attempt));
        });
    }

    fn ask_status(&mut self, myself: &ActorRef<ClusterMsg>, cell: ActorCell) {
        self.seq += 1;
        let seq = self.seq;
        let session = cell.get_id().node();
        let worker: ActorRef<WorkerMsg> = cell.into();
        let me = myself.clone();
        let timeout = self.settings.timings.rpc_timeout;
        tokio::spawn(async move {
            match worker
                .call(
                    |r| WorkerMsg::Status(StatusRequest { seq }, r),
                    Some(timeout),
                )
                .await
            {
                Ok(CallResult::Success(status)) if status.seq == seq => {
                    let _ = me.cast(ClusterMsg::Attached {
                        session,
                        status,
                        worker,
                    });
                }
                other => warn!(
                    session,
                    "a new member of the workers' group did not answer its status: {:?}",
                    other.map(|r| matches!(r, CallResult::Timeout))
                ),
            }
        });
    }
}

impl Actor for ClusterActor {
    type Msg = ClusterMsg;
    type State = ClusterState;
    type Arguments = ClusterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ClusterMsg>,
        args: ClusterArgs,
    ) -> Result<ClusterState, ActorProcessingErr> {
        let s = args.settings;
        let encryption = s.tls.clone().map(IncomingEncryptionMode::Tls);
        let server = NodeServer::new(
            s.listen.port(),
            s.cookie.clone(),
            s.node_name.clone(),
            s.listen.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(s.listen.ip());
        let (node_server, _) = Actor::spawn_linked(None, server, (), myself.get_cell()).await?;
        node_server.cast(NodeServerMessage::SubscribeToEvents {
            id: "vidbuilder-cluster".into(),
            subscription: Box::new(Subscriber(myself.clone())),
        })?;
        let (endpoint, _) =
            Actor::spawn_linked(None, CoordinatorEndpoint, myself.clone(), myself.get_cell())
                .await?;
        ractor::pg::monitor_scope(SCOPE.into(), myself.get_cell());
        ractor::pg::join_scoped(SCOPE.into(), COORDINATOR.into(), vec![endpoint.get_cell()]);
        let every = (s.timings.heartbeat_interval / 2).max(Duration::from_millis(100));
        let ticker = myself.send_interval(every, || ClusterMsg::Tick);
        info!(listen = %s.listen, tls = s.tls.is_some(), node = %s.node_name, "cluster: accepting workers");
        Ok(ClusterState {
            registry: Registry::new(s.catalog_version.clone(), s.timings.heartbeat_timeout),
            settings: s,
            manager: args.manager,
            workers: HashMap::new(),
            authenticated: HashSet::new(),
            node_server,
            endpoint,
            ticker: Some(ticker),
            seq: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ClusterMsg>,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        // Workers that joined before this actor watched the group.
        let members = ractor::pg::get_scoped_members(&SCOPE.into(), &WORKERS.into());
        for cell in members.into_iter().filter(|c| !c.get_id().is_local()) {
            state.ask_status(&myself, cell);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ClusterMsg>,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        ractor::pg::demonitor_scope(SCOPE.into(), myself.get_id());
        state.endpoint.stop(None);
        state.node_server.stop(None);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ClusterMsg>,
        msg: ClusterMsg,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ClusterMsg::Dispatch {
                node,
                request,
                upload,
            } => state.dispatch(node, request, upload),
            ClusterMsg::Cancel { node, attempt } => {
                if let Some((_, w)) = state.workers.get(&node) {
                    info!(job_id = %attempt.job_id, attempt = attempt.attempt, node = %node, "telling the worker to stop a superseded attempt");
                    let _ = w.cast(WorkerMsg::Cancel(attempt));
                }
            }
            ClusterMsg::Fetch {
                node,
                attempt,
                rendered,
            } => state.fetch(node, attempt, rendered),
            ClusterMsg::Heartbeat(status) => {
                let t = state
                    .registry
                    .heartbeat(&status, Instant::now(), Utc::now());
                state.tell_manager(t);
                if state.registry.is_counted(&status.node) {
                    let _ = state.manager.cast(JobManagerMsg::NodeRunning {
                        node: status.node,
                        attempts: status.running,
                    });
                }
            }
            ClusterMsg::Progress(p) => {
                let _ = state.manager.cast(JobManagerMsg::Progress {
                    job_id: p.attempt.job_id,
                    attempt: p.attempt.attempt,
                    progress: p.progress,
                });
            }
            ClusterMsg::Finished(f) => {
                let msg = match f.result {
                    Ok(rendered) => JobManagerMsg::RemoteRendered {
                        node: f.node,
                        attempt: f.attempt,
                        rendered,
                    },
                    Err(failure) => JobManagerMsg::RenderDone {
                        job_id: f.attempt.job_id,
                        attempt: f.attempt.attempt,
                        result: Err(failure),
                    },
                };
                let _ = state.manager.cast(msg);
            }
            ClusterMsg::Attached {
                session,
                status,
                worker,
            } => {
                if !state.authenticated.contains(&session) {
                    // Its link closed while it answered.
                    return Ok(());
                }
                let address = session_address(&state.node_server, session)
                    .await
                    .unwrap_or_default();
                let name = status.node.clone();
                let t =
                    state
                        .registry
                        .attached(&status, session, address, Instant::now(), Utc::now());
                state.workers.insert(name, (session, worker));
                state.tell_manager(t);
            }
            ClusterMsg::Link(LinkEvent::Authenticated {
                session,
                name,
                address,
            }) => {
                info!(node = %name, %address, "worker link authenticated");
                state.authenticated.insert(session);
            }
            ClusterMsg::Link(LinkEvent::Closed {
                session,
                name,
                address,
            }) => {
                if !state.authenticated.remove(&session) {
                    warn!(%address, node = name.as_deref().unwrap_or("?"), "a node's link closed before it authenticated (a wrong cookie or certificate?): it gets no work");
                }
                state.detach(session, "its link closed");
            }
            ClusterMsg::Tick => {
                let t = state.registry.tick(Instant::now());
                state.tell_manager(t);
                let _ = myself;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ClusterMsg>,
        evt: SupervisionEvent,
        state: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ProcessGroupChanged(change) => {
                use ractor::pg::GroupChangeMessage as G;
                match change {
                    G::Join(scope, group, cells) if scope == SCOPE && group == WORKERS => {
                        for cell in cells.into_iter().filter(|c| !c.get_id().is_local()) {
                            state.ask_status(&myself, cell);
                        }
                    }
                    G::Leave(scope, group, cells) if scope == SCOPE && group == WORKERS => {
                        for cell in cells {
                            state.detach(cell.get_id().node(), "it left the workers' group");
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
            SupervisionEvent::ActorFailed(cell, e) => {
                Err(format!("cluster child {} failed: {e}", cell.get_id()).into())
            }
            SupervisionEvent::ActorTerminated(cell, _, why) => Err(format!(
                "cluster child {} stopped: {}",
                cell.get_id(),
                why.unwrap_or_default()
            )
            .into()),
            _ => Ok(()),
        }
    }
}

/// The address a session's peer connected from.
async fn session_address(server: &ActorRef<NodeServerMessage>, session: NodeId) -> Option<String> {
    let sessions = ractor::call_t!(server, NodeServerMessage::GetSessions, 2000).ok()?;
    sessions
        .values()
        .find(|s| s.node_id == session)
        .map(|s| s.peer_addr.clone())
}

/// The actor workers address on the coordinator: it receipts results and hands everything to the
/// ClusterActor.
pub struct CoordinatorEndpoint;

impl Actor for CoordinatorEndpoint {
    type Msg = CoordinatorMsg;
    type State = ActorRef<ClusterMsg>;
    type Arguments = ActorRef<ClusterMsg>;

    async fn pre_start(
        &self,
        _myself: ActorRef<CoordinatorMsg>,
        cluster: ActorRef<ClusterMsg>,
    ) -> Result<ActorRef<ClusterMsg>, ActorProcessingErr> {
        Ok(cluster)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CoordinatorMsg>,
        msg: CoordinatorMsg,
        cluster: &mut ActorRef<ClusterMsg>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CoordinatorMsg::Progress(p) => cluster.cast(ClusterMsg::Progress(p))?,
            CoordinatorMsg::Finished(f, reply) => {
                let receipt = Receipt {
                    attempt: f.attempt.attempt,
                };
                cluster.cast(ClusterMsg::Finished(f))?;
                let _ = reply.send(receipt);
            }
            CoordinatorMsg::Heartbeat(s) => cluster.cast(ClusterMsg::Heartbeat(s))?,
        }
        Ok(())
    }
}
