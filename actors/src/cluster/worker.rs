//! A worker node's side of cluster mode: the [`WorkerNode`], which links to the coordinator (and
//! links again, with backoff, whenever the link drops), supervises one RenderActor per attempt it
//! was given, heartbeats, and delivers each attempt's result until the coordinator receipts it;
//! and the [`WorkerEndpoint`], the one actor of this node the coordinator addresses (its messages
//! are the wire's [`WorkerMsg`]).
//!
//! A RenderActor that crashes is reported to the coordinator as a failed attempt: the restart is
//! the coordinator's decision (restart intensity is counted there, per job, across nodes), and it
//! may place the new attempt on this node again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, RactorMessage};
use tracing::{debug, info, info_span, warn, Instrument};
use vidbuilder_domain::ports::{RenderFailure, RenderFailureKind, RenderOutput, RenderRequest};
use vidbuilder_domain::spec::Format;

use super::{Timings, COORDINATOR, SCOPE, WORKERS};
use crate::ports::{Renderer, Transfer, UploadFile, UploadProgressSink, Uploader};
use crate::render::{RenderActor, RenderArgs, RenderReport};
use crate::retry;
use crate::upload::UploadSettings;
use crate::wire::{
    Artifact, ArtifactKind, ArtifactLocation, AttemptFinished, AttemptId, AttemptProgress, Chunk,
    ChunkRequest, CoordinatorMsg, RenderAck, RenderedAttempt, UploadTarget, WorkerMsg,
    WorkerStatus, MAX_CHUNK_BYTES, WIRE_VERSION,
};

/// A worker's health, for `vidbuilder health --worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerHealth {
    /// The node's name.
    pub node: String,
    /// Linked to a coordinator that answers.
    pub connected: bool,
    /// Attempts rendering now.
    pub running: usize,
}

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerSettings {
    /// This node's name (unique in the cluster).
    pub name: String,
    /// Renders it runs at once.
    pub capacity: u32,
    /// The coordinator's cluster address (`host:port`).
    pub join: String,
    /// The shared secret.
    pub cookie: String,
    /// Heartbeats and deadlines.
    pub timings: Timings,
    /// This node's catalog version (themes, tracks, fonts): it renders only attempts that name it.
    pub catalog_version: String,
    /// Where attempts render (one directory each); emptied at start.
    pub work_dir: PathBuf,
    /// TLS for the link to the coordinator: the connector and the name its certificate must bear.
    pub tls: Option<(
        tokio_rustls::TlsConnector,
        tokio_rustls::rustls::pki_types::ServerName<'static>,
    )>,
    /// Finished attempts the coordinator neither fetched nor released are removed after this.
    pub keep_finished: Duration,
}

/// What a WorkerNode is spawned with.
pub struct WorkerArgs {
    /// Its settings.
    pub settings: WorkerSettings,
    /// Makes the videos.
    pub renderer: Arc<dyn Renderer>,
    /// Reads, hashes and removes finished files.
    pub files: Arc<dyn Transfer>,
    /// Told the worker's health on every heartbeat.
    pub health: Arc<dyn Fn(&WorkerHealth) + Send + Sync>,
    /// Object storage: when the coordinator names keys, finished videos are uploaded from here.
    pub uploader: Option<(Arc<dyn Uploader>, UploadSettings)>,
}

/// The WorkerNode's messages (local).
#[derive(RactorMessage)]
pub enum WorkerNodeMsg {
    /// From the endpoint: a message of the coordinator.
    Wire(WorkerMsg),
    /// From a RenderActor.
    Report(AttemptId, RenderReport),
    /// A finished render's files were hashed.
    Digested(AttemptId, Result<RenderedAttempt, RenderFailure>),
    /// A finished render's videos were uploaded to the keys the coordinator named (or not).
    Uploaded(AttemptId, Result<RenderedAttempt, RenderFailure>),
    /// Deliver (again) the result of an attempt.
    SendResult(AttemptId),
    /// The coordinator receipted an attempt's result.
    Receipted(AttemptId),
    /// Link to the coordinator now (after a backoff).
    Connect,
    /// A link closed or authenticated.
    Link {
        /// True when it became usable, false when it closed.
        up: bool,
    },
    /// Periodic: heartbeat, health, expiry of unclaimed results.
    Heartbeat,
}

enum Phase {
    Rendering {
        cell: ActorCell,
    },
    Hashing {
        output: RenderOutput,
    },
    Uploading {
        files: HashMap<ArtifactKind, PathBuf>,
    },
    Done {
        result: AttemptFinished,
        files: HashMap<ArtifactKind, PathBuf>,
        receipted: bool,
        since: Instant,
    },
}

struct Attempt {
    dir: PathBuf,
    phase: Phase,
    /// Where its videos go in object storage, when the coordinator said.
    upload: Option<UploadTarget>,
}

/// The worker node's actor (see the module docs).
pub struct WorkerNode;

/// The WorkerNode's state.
pub struct WorkerState {
    settings: WorkerSettings,
    renderer: Arc<dyn Renderer>,
    files: Arc<dyn Transfer>,
    health: Arc<dyn Fn(&WorkerHealth) + Send + Sync>,
    uploader: Option<(Arc<dyn Uploader>, UploadSettings)>,
    attempts: HashMap<AttemptId, Attempt>,
    renders: HashMap<ActorId, AttemptId>,
    node_server: ActorRef<NodeServerMessage>,
    endpoint: ActorRef<WorkerMsg>,
    linked: bool,
    failures: u32,
    /// A `Connect` is scheduled: at most one reconnect runs at a time.
    connect_pending: bool,
    /// When the last connection was opened, while it has not authenticated yet.
    handshake_since: Option<Instant>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

struct Subscriber(ActorRef<WorkerNodeMsg>);

impl NodeEventSubscription for Subscriber {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        debug!(peer = %ses.peer_addr, "link to the coordinator opened");
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        warn!(peer = %ses.peer_addr, "link to the coordinator closed");
        let _ = self.0.cast(WorkerNodeMsg::Link { up: false });
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        info!(peer = %ses.peer_addr, "linked to the coordinator");
        let _ = self.0.cast(WorkerNodeMsg::Link { up: true });
    }
}

/// The coordinator's endpoint, once the link is ready and groups are synchronised.
fn coordinator() -> Option<ActorRef<CoordinatorMsg>> {
    ractor::pg::get_scoped_members(&SCOPE.into(), &COORDINATOR.into())
        .into_iter()
        .find(|c| !c.get_id().is_local())
        .map(ActorRef::from)
}

impl WorkerState {
    fn status(&self, seq: u64) -> WorkerStatus {
        let running = self
            .attempts
            .iter()
            .filter(|(_, a)| !matches!(a.phase, Phase::Done { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        WorkerStatus {
            node: self.settings.name.clone(),
            wire_version: WIRE_VERSION,
            catalog_version: self.settings.catalog_version.clone(),
            capacity: self.settings.capacity,
            running,
            seq,
        }
    }

    fn running(&self) -> usize {
        self.attempts
            .values()
            .filter(|a| !matches!(a.phase, Phase::Done { .. }))
            .count()
    }

    async fn start(
        &mut self,
        myself: &ActorRef<WorkerNodeMsg>,
        assignment: crate::wire::RenderAssignment,
    ) -> RenderAck {
        let attempt = assignment.attempt.clone();
        let upload = assignment.upload.clone().map(|b| *b);
        if upload.is_some() && self.uploader.is_none() {
            warn!(job_id = %attempt.job_id, "the coordinator stores videos in object storage but this worker has no [s3] settings: the coordinator will fetch and upload them");
        }
        if assignment.catalog_version != self.settings.catalog_version {
            return RenderAck {
                refused: Some(format!(
                    "this node's catalog is {}, the attempt needs {}",
                    self.settings.catalog_version, assignment.catalog_version
                )),
            };
        }
        if self.attempts.contains_key(&attempt) {
            // A re-sent assignment: it runs already.
            return RenderAck { refused: None };
        }
        let dir = self
            .settings
            .work_dir
            .join(format!("{}-{}", attempt.job_id, attempt.attempt));
        if let Err(e) = self.files.create_dir(&dir) {
            return RenderAck {
                refused: Some(format!("cannot create {}: {e}", dir.display())),
            };
        }
        let reports = {
            let (me, a) = (myself.clone(), attempt.clone());
            Arc::new(move |r| {
                let _ = me.cast(WorkerNodeMsg::Report(a.clone(), r));
            })
        };
        let args = RenderArgs {
            request: RenderRequest {
                job_id: attempt.job_id.clone(),
                attempt: attempt.attempt,
                spec: assignment.spec,
                out_dir: dir.clone(),
            },
            progress_interval: Duration::from_millis(250),
            renderer: self.renderer.clone(),
            reports,
        };
        match Actor::spawn_linked(None, RenderActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                info!(job_id = %attempt.job_id, attempt = attempt.attempt, node = %self.settings.name, "render started");
                self.renders.insert(actor.get_id(), attempt.clone());
                self.attempts.insert(
                    attempt,
                    Attempt {
                        dir,
                        phase: Phase::Rendering {
                            cell: actor.get_cell(),
                        },
                        upload,
                    },
                );
                RenderAck { refused: None }
            }
            Err(e) => {
                let _ = self.files.remove_dir(&dir);
                RenderAck {
                    refused: Some(format!("the render could not start: {e}")),
                }
            }
        }
    }

    /// Forgets an attempt: stops its render, removes its files.
    fn drop_attempt(&mut self, attempt: &AttemptId, why: &str) {
        let Some(a) = self.attempts.remove(attempt) else {
            return;
        };
        if let Phase::Rendering { cell } = &a.phase {
            self.renders.remove(&cell.get_id());
            // Killing the actor drops its render, whose guard cancels ffmpeg.
            cell.kill();
        }
        info!(job_id = %attempt.job_id, attempt = attempt.attempt, "attempt dropped: {why}");
        let (files, dir) = (self.files.clone(), a.dir);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = files.remove_dir(&dir) {
                warn!(dir = %dir.display(), "could not remove: {e}");
            }
        });
    }

    fn finish(
        &mut self,
        myself: &ActorRef<WorkerNodeMsg>,
        attempt: &AttemptId,
        result: Result<RenderedAttempt, RenderFailure>,
        files: HashMap<ArtifactKind, PathBuf>,
    ) {
        let Some(a) = self.attempts.get_mut(attempt) else {
            return;
        };
        match &result {
            Ok(_) => info!(job_id = %attempt.job_id, attempt = attempt.attempt, "render finished"),
            Err(e) => {
                warn!(job_id = %attempt.job_id, attempt = attempt.attempt, "render failed: {e}")
            }
        }
        a.phase = Phase::Done {
            result: AttemptFinished {
                attempt: attempt.clone(),
                node: self.settings.name.clone(),
                result,
            },
            files,
            receipted: false,
            since: Instant::now(),
        };
        let _ = myself.cast(WorkerNodeMsg::SendResult(attempt.clone()));
    }

    /// Sends a finished attempt's result and asks again after a backoff until it is receipted.
    fn send_result(&mut self, myself: &ActorRef<WorkerNodeMsg>, attempt: &AttemptId, tries: u32) {
        let Some(Attempt {
            phase:
                Phase::Done {
                    result,
                    receipted: false,
                    ..
                },
            ..
        }) = self.attempts.get(attempt)
        else {
            return;
        };
        let result = result.clone();
        let (me, a) = (myself.clone(), attempt.clone());
        let timeout = self.settings.timings.rpc_timeout;
        let retry_after = retry::exponential(Duration::from_millis(500), tries.min(4));
        tokio::spawn(async move {
            if let Some(c) = coordinator() {
                if let Ok(CallResult::Success(r)) = c
                    .call(
                        |reply| CoordinatorMsg::Finished(result, reply),
                        Some(timeout),
                    )
                    .await
                {
                    if r.attempt == a.attempt {
                        let _ = me.cast(WorkerNodeMsg::Receipted(a));
                        return;
                    }
                }
            }
            tokio::time::sleep(retry_after).await;
            let _ = me.cast(WorkerNodeMsg::SendResult(a));
        });
    }

    fn serve_chunk(&self, ask: ChunkRequest, reply: ractor::RpcReplyPort<Chunk>) {
        let refuse = |why: &str| Chunk {
            offset: ask.offset,
            data: Vec::new(),
            eof: true,
            error: Some(why.to_string()),
        };
        let path = match self.attempts.get(&ask.attempt).map(|a| &a.phase) {
            Some(Phase::Done { files, .. }) => match files.get(&ask.kind) {
                Some(p) => p.clone(),
                None => {
                    let _ = reply.send(refuse("the attempt has no such file"));
                    return;
                }
            },
            _ => {
                let _ = reply.send(refuse("no finished attempt of that number here"));
                return;
            }
        };
        let files = self.files.clone();
        let len = ask.len.min(MAX_CHUNK_BYTES);
        tokio::task::spawn_blocking(move || {
            let chunk = match files.read_chunk(&path, ask.offset, len) {
                Ok(data) => Chunk {
                    offset: ask.offset,
                    eof: (data.len() as u32) < len,
                    data,
                    error: None,
                },
                Err(e) => Chunk {
                    offset: ask.offset,
                    data: Vec::new(),
                    eof: true,
                    error: Some(e.to_string()),
                },
            };
            let _ = reply.send(chunk);
        });
    }

    /// Links again after a backoff (200 ms doubling, at most 5 s), unless a try is already due.
    fn schedule_connect(&mut self, myself: &ActorRef<WorkerNodeMsg>) {
        if self.connect_pending || self.linked {
            return;
        }
        self.connect_pending = true;
        let after = retry::exponential(Duration::from_millis(200), self.failures.min(5))
            .min(Duration::from_secs(5));
        self.failures += 1;
        myself.send_after(after, || WorkerNodeMsg::Connect);
    }
}

/// Uploads a finished render's videos to the keys the coordinator named; the description of the
/// render then says where they are (the posters stay here, for the coordinator to fetch).
async fn upload_videos(
    uploader: &dyn Uploader,
    settings: &UploadSettings,
    attempt: &AttemptId,
    mut rendered: RenderedAttempt,
    files: &HashMap<ArtifactKind, PathBuf>,
    target: &UploadTarget,
) -> Result<RenderedAttempt, RenderFailure> {
    for artifact in &mut rendered.artifacts {
        let key = match artifact.kind {
            ArtifactKind::Video => target.video_key.clone(),
            ArtifactKind::Reel => match &target.reel_key {
                Some(k) => k.clone(),
                None => continue,
            },
            ArtifactKind::Extra(ratio) => {
                match target.extra_keys.iter().find(|(r, _)| *r == ratio) {
                    Some((_, k)) => k.clone(),
                    None => continue,
                }
            }
            _ => continue,
        };
        let Some(path) = files.get(&artifact.kind) else {
            continue;
        };
        let format = Format::of_path(path);
        let file = UploadFile {
            path: path.clone(),
            key: key.clone(),
            content_type: format.mime().into(),
        };
        let sink: UploadProgressSink = Arc::new(|_, _| {});
        crate::upload::with_retries(settings, "upload", || {
            uploader.upload(&file, &attempt.job_id, sink.clone())
        })
        .await
        .map_err(|e| {
            RenderFailure::new(
                RenderFailureKind::Io,
                format!("uploading {key} from the worker: {}", e.message),
            )
        })?;
        info!(job_id = %attempt.job_id, key = %key, bytes = artifact.bytes, "uploaded");
        artifact.location = ArtifactLocation::Object { key };
    }
    Ok(rendered)
}

/// Every file of a finished render, as the kind of artifact it is: the main video, the reel,
/// the other aspect ratios (in the spec's order), then the posters.
fn output_files(out: &RenderOutput) -> Vec<(ArtifactKind, PathBuf)> {
    let videos = [
        (ArtifactKind::Video, Some(&out.video)),
        (ArtifactKind::Reel, out.reel.as_ref()),
    ];
    let posters = [
        (ArtifactKind::Poster, out.poster.as_ref()),
        (ArtifactKind::ReelPoster, out.reel_poster.as_ref()),
    ];
    let extras = out
        .extras
        .iter()
        .map(|e| (ArtifactKind::Extra(e.ratio), Some(&e.video)));
    let extra_posters = out
        .extras
        .iter()
        .map(|e| (ArtifactKind::ExtraPoster(e.ratio), e.poster.as_ref()));
    videos
        .into_iter()
        .chain(extras)
        .chain(posters)
        .chain(extra_posters)
        .filter_map(|(k, p)| p.map(|p| (k, p.clone())))
        .collect()
}

/// Hashes a finished render's files and describes them for the coordinator.
fn describe(
    files: &dyn Transfer,
    node: &str,
    out: &RenderOutput,
) -> Result<(RenderedAttempt, HashMap<ArtifactKind, PathBuf>), RenderFailure> {
    let mut artifacts = Vec::new();
    let mut paths = HashMap::new();
    for (kind, path) in output_files(out) {
        let path = &path;
        let (bytes, sha256) = files.digest(path).map_err(|e| {
            RenderFailure::new(
                RenderFailureKind::Io,
                format!("reading {}: {e}", path.display()),
            )
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        artifacts.push(Artifact {
            kind,
            name,
            bytes,
            sha256,
            location: ArtifactLocation::Worker {
                node: node.to_string(),
            },
        });
        paths.insert(kind, path.clone());
    }
    Ok((
        RenderedAttempt {
            artifacts,
            duration_secs: out.duration_secs,
            width: out.width,
            height: out.height,
            frames: out.frames,
        },
        paths,
    ))
}

impl Actor for WorkerNode {
    type Msg = WorkerNodeMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerNodeMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        let s = args.settings;
        // Attempts of an earlier process are unknown to the coordinator now: start clean.
        let _ = args.files.remove_dir(&s.work_dir);
        args.files.create_dir(&s.work_dir)?;
        // The worker accepts no links itself: its listener takes any free loopback port.
        let server = NodeServer::new(
            0,
            s.cookie.clone(),
            s.name.clone(),
            s.name.clone(),
            None,
            None,
        )
        .with_listen_addr(std::net::IpAddr::from([127, 0, 0, 1]));
        let (node_server, _) = Actor::spawn_linked(None, server, (), myself.get_cell()).await?;
        node_server.cast(NodeServerMessage::SubscribeToEvents {
            id: "vidbuilder-worker".into(),
            subscription: Box::new(Subscriber(myself.clone())),
        })?;
        let (endpoint, _) =
            Actor::spawn_linked(None, WorkerEndpoint, myself.clone(), myself.get_cell()).await?;
        ractor::pg::join_scoped(SCOPE.into(), WORKERS.into(), vec![endpoint.get_cell()]);
        let ticker =
            myself.send_interval(s.timings.heartbeat_interval, || WorkerNodeMsg::Heartbeat);
        info!(node = %s.name, capacity = s.capacity, join = %s.join, tls = s.tls.is_some(), "worker starting");
        myself.cast(WorkerNodeMsg::Connect)?;
        Ok(WorkerState {
            settings: s,
            renderer: args.renderer,
            files: args.files,
            health: args.health,
            uploader: args.uploader,
            attempts: HashMap::new(),
            renders: HashMap::new(),
            node_server,
            endpoint,
            linked: false,
            failures: 0,
            connect_pending: true,
            handshake_since: None,
            ticker: Some(ticker),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerNodeMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        let ids: Vec<AttemptId> = state.attempts.keys().cloned().collect();
        for id in ids {
            state.drop_attempt(&id, "the worker stops");
        }
        state.endpoint.stop(None);
        state.node_server.stop(None);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerNodeMsg>,
        msg: WorkerNodeMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerNodeMsg::Wire(WorkerMsg::Render(assignment, reply)) => {
                let ack = state.start(&myself, assignment).await;
                let _ = reply.send(ack);
            }
            WorkerNodeMsg::Wire(WorkerMsg::Cancel(attempt)) => {
                state.drop_attempt(&attempt, "the coordinator cancelled it");
            }
            WorkerNodeMsg::Wire(WorkerMsg::Release(attempt)) => {
                state.drop_attempt(&attempt, "the coordinator has its files");
            }
            WorkerNodeMsg::Wire(WorkerMsg::Status(req, reply)) => {
                let _ = reply.send(state.status(req.seq));
            }
            WorkerNodeMsg::Wire(WorkerMsg::FetchChunk(ask, reply)) => state.serve_chunk(ask, reply),
            WorkerNodeMsg::Report(attempt, RenderReport::Progress(progress)) => {
                let rendering = matches!(
                    state.attempts.get(&attempt).map(|a| &a.phase),
                    Some(Phase::Rendering { .. })
                );
                if rendering {
                    if let Some(c) = coordinator() {
                        let _ = c.cast(CoordinatorMsg::Progress(AttemptProgress {
                            attempt,
                            progress,
                        }));
                    }
                }
            }
            WorkerNodeMsg::Report(attempt, RenderReport::Done(result)) => {
                let Some(a) = state.attempts.get_mut(&attempt) else {
                    return Ok(());
                };
                if let Phase::Rendering { cell } = &a.phase {
                    state.renders.remove(&cell.get_id());
                    cell.stop(Some("render finished".into()));
                }
                match result {
                    Ok(output) => {
                        a.phase = Phase::Hashing {
                            output: output.clone(),
                        };
                        let (files, node, me) = (
                            state.files.clone(),
                            state.settings.name.clone(),
                            myself.clone(),
                        );
                        let span = info_span!("hash", job_id = %attempt.job_id);
                        tokio::task::spawn_blocking(move || {
                            let _g = span.enter();
                            let described = describe(files.as_ref(), &node, &output);
                            let _ = me
                                .cast(WorkerNodeMsg::Digested(attempt, described.map(|(r, _)| r)));
                        });
                    }
                    Err(e) => state.finish(&myself, &attempt, Err(e), HashMap::new()),
                }
            }
            WorkerNodeMsg::Digested(attempt, result) => {
                let Some(Attempt {
                    phase: Phase::Hashing { output },
                    ..
                }) = state.attempts.get(&attempt)
                else {
                    return Ok(());
                };
                let files: HashMap<ArtifactKind, PathBuf> =
                    output_files(output).into_iter().collect();
                let upload = state.attempts.get(&attempt).and_then(|a| a.upload.clone());
                match (result, upload, state.uploader.clone()) {
                    (Ok(rendered), Some(target), Some((uploader, settings))) => {
                        if let Some(a) = state.attempts.get_mut(&attempt) {
                            a.phase = Phase::Uploading {
                                files: files.clone(),
                            };
                        }
                        let me = myself.clone();
                        let span = info_span!("upload", job_id = %attempt.job_id);
                        tokio::spawn(
                            async move {
                                let result = upload_videos(
                                    uploader.as_ref(),
                                    &settings,
                                    &attempt,
                                    rendered,
                                    &files,
                                    &target,
                                )
                                .await;
                                let _ = me.cast(WorkerNodeMsg::Uploaded(attempt, result));
                            }
                            .instrument(span),
                        );
                    }
                    (result, _, _) => state.finish(&myself, &attempt, result, files),
                }
            }
            WorkerNodeMsg::Uploaded(attempt, result) => {
                let Some(Attempt {
                    phase: Phase::Uploading { files },
                    ..
                }) = state.attempts.get(&attempt)
                else {
                    return Ok(());
                };
                let files = files.clone();
                state.finish(&myself, &attempt, result, files);
            }
            WorkerNodeMsg::SendResult(attempt) => {
                let tries = match state.attempts.get(&attempt) {
                    Some(Attempt {
                        phase: Phase::Done { since, .. },
                        ..
                    }) => (since.elapsed().as_millis() / 500) as u32,
                    _ => 0,
                };
                state.send_result(&myself, &attempt, tries);
            }
            WorkerNodeMsg::Receipted(attempt) => {
                let failed = match state.attempts.get_mut(&attempt) {
                    Some(Attempt {
                        phase:
                            Phase::Done {
                                receipted, result, ..
                            },
                        ..
                    }) => {
                        *receipted = true;
                        result.result.is_err()
                    }
                    _ => false,
                };
                if failed {
                    // Nothing to fetch: forget it.
                    state.drop_attempt(&attempt, "its failure was reported");
                }
            }
            WorkerNodeMsg::Connect => {
                state.connect_pending = false;
                if state.linked {
                    return Ok(());
                }
                let join = state.settings.join.clone();
                let connected = match &state.settings.tls {
                    None => ractor_cluster::client_connect(&state.node_server, join.as_str())
                        .await
                        .map_err(|e| e.to_string()),
                    Some((connector, name)) => ractor_cluster::client_connect_enc(
                        &state.node_server,
                        join.as_str(),
                        connector.clone(),
                        name.clone(),
                    )
                    .await
                    .map_err(|e| e.to_string()),
                };
                match connected {
                    // Authentication follows; the heartbeat tick tries again if it never comes.
                    Ok(()) => state.handshake_since = Some(Instant::now()),
                    Err(e) => {
                        warn!(join = %join, "cannot reach the coordinator: {e}; trying again");
                        state.schedule_connect(&myself);
                    }
                }
            }
            WorkerNodeMsg::Link { up: true } => {
                state.linked = true;
                state.failures = 0;
                state.handshake_since = None;
                // Results the old link may have lost go out again.
                let pending: Vec<AttemptId> = state
                    .attempts
                    .iter()
                    .filter(|(_, a)| {
                        matches!(
                            a.phase,
                            Phase::Done {
                                receipted: false,
                                ..
                            }
                        )
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                for a in pending {
                    state.send_result(&myself, &a, 0);
                }
            }
            WorkerNodeMsg::Link { up: false } => {
                state.linked = false;
                state.handshake_since = None;
                state.schedule_connect(&myself);
            }
            WorkerNodeMsg::Heartbeat => {
                // A link that opened but never authenticated: try again.
                let patience = state.settings.timings.rpc_timeout;
                if !state.linked
                    && state
                        .handshake_since
                        .is_some_and(|t| t.elapsed() > patience)
                {
                    state.handshake_since = None;
                    state.schedule_connect(&myself);
                }
                let c = coordinator();
                if let Some(c) = &c {
                    let _ = c.cast(CoordinatorMsg::Heartbeat(state.status(0)));
                }
                (state.health)(&WorkerHealth {
                    node: state.settings.name.clone(),
                    connected: state.linked && c.is_some(),
                    running: state.running(),
                });
                // Results nobody came for.
                let keep = state.settings.keep_finished;
                let stale: Vec<AttemptId> = state
                    .attempts
                    .iter()
                    .filter(|(_, a)| matches!(a.phase, Phase::Done { since, .. } if since.elapsed() > keep))
                    .map(|(id, _)| id.clone())
                    .collect();
                for a in stale {
                    state.drop_attempt(&a, "nobody fetched it");
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<WorkerNodeMsg>,
        evt: SupervisionEvent,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match evt {
            SupervisionEvent::ActorFailed(cell, e) => (cell, format!("render worker crashed: {e}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                format!(
                    "render worker stopped ({})",
                    reason.unwrap_or_else(|| "no reason given".into())
                ),
            ),
            _ => return Ok(()),
        };
        if cell.get_id() == state.node_server.get_id() || cell.get_id() == state.endpoint.get_id() {
            return Err(format!("a cluster child stopped: {why}").into());
        }
        let Some(attempt) = state.renders.remove(&cell.get_id()) else {
            return Ok(());
        };
        // The supervisor's report: the coordinator decides the restart.
        let failure = RenderFailure::new(RenderFailureKind::Crashed, why);
        state.finish(&myself, &attempt, Err(failure), HashMap::new());
        Ok(())
    }
}

/// The actor the coordinator addresses on a worker: it hands everything to the WorkerNode.
pub struct WorkerEndpoint;

impl Actor for WorkerEndpoint {
    type Msg = WorkerMsg;
    type State = ActorRef<WorkerNodeMsg>;
    type Arguments = ActorRef<WorkerNodeMsg>;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        node: ActorRef<WorkerNodeMsg>,
    ) -> Result<ActorRef<WorkerNodeMsg>, ActorProcessingErr> {
        Ok(node)
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        node: &mut ActorRef<WorkerNodeMsg>,
    ) -> Result<(), ActorProcessingErr> {
        node.cast(WorkerNodeMsg::Wire(msg))?;
        Ok(())
    }
}
