//! The JobManager: owner of every job's state machine, the FIFO admission queue and the
//! concurrency limit.
//!
//! ```text
//! Submit ─► queued ──(slot free)──► processing ──RenderDone(Ok)──► completed
//!                                     │   ▲
//!        render error / crash / stall │   │ restart with backoff (at most N in a window)
//!                                     ▼   │
//!                                   (retrying) ──limit reached──► failed
//! ```
//! The decisions live in [`core::Core`], plain code that returns [`Effect`]s; this file is the
//! actor that feeds it events and carries the effects out: store writes (a 202 is sent only once
//! the job is durable; a webhook's outbox row is written in the same transaction as the change it
//! reports), RenderActors spawned linked to the manager, restart timers, uploads, and file
//! removal through the [`Artifacts`] port. After every event the changed jobs' snapshots are
//! written to the [`JobViews`] map that the HTTP layer reads and words.
//!
//! The manager overrides `handle_supervisor_evt`, so a child's exit never stops it. A RenderActor
//! that reports no progress for `stall_timeout` is killed (its drop guard cancels the renderer,
//! which kills ffmpeg) and handled like a crash.

pub mod core;
pub mod effects;
mod messages;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::task::AbortHandle;
use tracing::{error, info, warn};
use vidbuilder_domain::job::{poster_of, JobId, JobSnapshot};
use vidbuilder_domain::ports::ExtraOutput;
use vidbuilder_domain::spec::AspectRatio;
use vidbuilder_domain::store::JobStore;

pub use self::core::CancelError;
pub use self::core::{Core, Now};
pub use effects::Effect;
pub use messages::{
    Admitted, DrainReport, JobChanges, JobManagerArgs, JobManagerMsg, JobViews, ManagerSettings,
    ManagerStats, PresignError, StatsView, SubmitError, SubmitRequest, TemplateError, TemplateMsg,
};

use crate::cluster::coordinator::{ClusterActor, ClusterArgs, ClusterMsg, ClusterSettings};
use crate::ports::{Artifacts, RenderFailure, RenderFailureKind, Renderer, Uploader};
use crate::render::{RenderActor, RenderArgs, RenderReport};
use crate::upload::{UploadActor, UploadArgs, UploadMsg, UploadSettings};
use crate::webhook::{Delivery, WebhookMsg};
use crate::wire::AttemptId;

/// The JobManager's state: its [`Core`] and what it needs to carry effects out.
pub struct JobManagerState {
    core: Core,
    renderer: Arc<dyn Renderer>,
    webhooks: ActorRef<WebhookMsg>,
    webhooks_respawn: Option<crate::webhook::WebhookArgs>,
    /// The WebhookActor died and could not be started again yet (retried every tick).
    webhooks_down: bool,
    views: JobViews,
    changes: JobChanges,
    /// The last publication number given to a snapshot (see `JobSnapshot::version`).
    published: u64,
    stats: StatsView,
    store: Arc<dyn JobStore>,
    artifacts: Arc<dyn Artifacts>,
    /// Render actors by actor id, and their cells by job.
    renders: HashMap<ActorId, JobId>,
    cells: HashMap<JobId, ActorCell>,
    restart_timers: HashMap<JobId, AbortHandle>,
    waiters: HashMap<JobId, Vec<RpcReplyPort<JobSnapshot>>>,
    /// Jobs whose latest change the store refused, with the webhook deliveries that change
    /// queues (saved with it, in one transaction, on a later try). Their snapshots are not
    /// published and their waiters not answered until the store holds them.
    unsaved: HashMap<JobId, Vec<Delivery>>,
    /// Jobs that finished while unsaved: their waiters are answered once saved.
    finished_unsaved: std::collections::HashSet<JobId>,
    /// The last write to the store worked and nothing waits to be saved (readiness).
    store_ok: bool,
    drain_reply: Option<RpcReplyPort<DrainReport>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    last_sweep: std::time::Instant,
    uploader: Option<(Arc<dyn Uploader>, UploadSettings)>,
    upload: Option<ActorRef<UploadMsg>>,
    cluster_settings: Option<ClusterSettings>,
    cluster: Option<ActorRef<ClusterMsg>>,
}

/// The JobManager actor (see the module docs); spawned with [`JobManagerArgs`].
pub struct JobManager;

impl JobManagerState {
    /// Shows `snapshot` to readers with the next publication number and announces the change
    /// (unless it equals the snapshot already shown); returns what readers see.
    fn publish(&mut self, mut snapshot: JobSnapshot) -> JobSnapshot {
        // A snapshot equal to the one shown is not a change: the same version stays, and no live
        // stream is woken (a finished job is published by `Effect::Finished`, then again as dirty).
        if let Some(shown) = self.views.get(&snapshot.job_id) {
            snapshot.version = shown.version;
            if snapshot == *shown {
                return snapshot;
            }
        }
        self.published += 1;
        snapshot.version = self.published;
        let id = snapshot.job_id.clone();
        self.views.insert(id.clone(), snapshot.clone());
        // No receiver (no live stream open) is not an error.
        let _ = self.changes.send(id);
        snapshot
    }

    /// Carries out `effects` in order (an effect may produce more), then publishes every job
    /// whose snapshot changed.
    async fn run(&mut self, myself: &ActorRef<JobManagerMsg>, effects: Vec<Effect>) {
        let mut todo: std::collections::VecDeque<Effect> = effects.into();
        while let Some(effect) = todo.pop_front() {
            let more = self.apply(myself, effect).await;
            for e in more.into_iter().rev() {
                todo.push_front(e);
            }
        }
        for snapshot in self.core.take_dirty() {
            // A change the store does not hold yet is not shown (see `unsaved`).
            if !self.unsaved.contains_key(&snapshot.job_id) {
                self.publish(snapshot);
            }
        }
        let mut now = self.core.stats();
        now.store_ok = self.store_ok && self.unsaved.is_empty();
        self.stats
            .send_if_modified(|s| std::mem::replace(s, now) != now);
    }

    async fn apply(&mut self, myself: &ActorRef<JobManagerMsg>, effect: Effect) -> Vec<Effect> {
        let now = Now::system();
        match effect {
            Effect::Persist { job, event } => self.persist(&job, event),
            Effect::SpawnRender(request) => {
                let id = request.job_id.clone();
                let attempt = request.attempt;
                let manager = myself.clone();
                let job_id = id.clone();
                let args = RenderArgs {
                    request,
                    // A few reports a second, and always several within the stall timeout.
                    progress_interval: (self.core.settings().stall_timeout / 4)
                        .min(Duration::from_millis(250)),
                    renderer: self.renderer.clone(),
                    reports: Arc::new(move |report| {
                        let job_id = job_id.clone();
                        let _ = manager.cast(match report {
                            RenderReport::Progress(progress) => JobManagerMsg::Progress {
                                job_id,
                                attempt,
                                progress,
                            },
                            RenderReport::Done(result) => JobManagerMsg::RenderDone {
                                job_id,
                                attempt,
                                result,
                            },
                        });
                    }),
                };
                match Actor::spawn_linked(None, RenderActor, args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        tracing::info!(job_id = %id, attempt, "render started");
                        self.renders.insert(actor.get_id(), id.clone());
                        self.cells.insert(id, actor.get_cell());
                    }
                    Err(e) => return self.core.spawn_failed(&id, e.to_string(), now),
                }
            }
            Effect::Dispatch {
                node,
                request,
                upload,
            } => {
                let (id, attempt) = (request.job_id.clone(), request.attempt);
                let sent = match &self.cluster {
                    Some(c) => c
                        .cast(ClusterMsg::Dispatch {
                            node,
                            request,
                            upload,
                        })
                        .map_err(|e| e.to_string()),
                    None => Err("cluster mode is not running".into()),
                };
                if let Err(e) = sent {
                    let why = RenderFailure::new(RenderFailureKind::Crashed, e);
                    return self.core.render_done(&id, attempt, Err(why), now);
                }
            }
            Effect::Presign { job, attempt, keys } => {
                let msg = UploadMsg::PresignObjects {
                    job_id: job.clone(),
                    attempt,
                    keys,
                    manager: myself.clone(),
                };
                if let Err(e) = self.to_upload(msg) {
                    let why = format!("the upload worker is unavailable ({e})");
                    return self.core.upload_done(&job, attempt, Err(why), now);
                }
            }
            Effect::CancelRemote { node, job, attempt } => {
                if let Some(c) = &self.cluster {
                    let attempt = AttemptId {
                        job_id: job,
                        attempt,
                    };
                    let _ = c.cast(ClusterMsg::Cancel { node, attempt });
                }
            }
            Effect::StopRender(id) => {
                if let Some(cell) = self.cells.remove(&id) {
                    self.renders.remove(&cell.get_id());
                    cell.stop(Some("render finished".into()));
                }
            }
            Effect::KillRender(id) => {
                if let Some(cell) = self.cells.get(&id) {
                    cell.kill();
                }
            }
            Effect::ScheduleRestart { job, after } => {
                let job_id = job.clone();
                let timer = myself.send_after(after, move || JobManagerMsg::Restart { job_id });
                if let Some(old) = self.restart_timers.insert(job, timer.abort_handle()) {
                    old.abort();
                }
            }
            Effect::ResumeUpload {
                job,
                video,
                reel,
                extras,
            } => {
                let there = |p: PathBuf| self.artifacts.size(&p).map(|_| p);
                let (mut video, reel) = (there(video), reel.and_then(there));
                let posters = [
                    video.as_deref().map(poster_of).and_then(there),
                    reel.as_deref().map(poster_of).and_then(there),
                ];
                let extras: Option<Vec<ExtraOutput>> = extras
                    .into_iter()
                    .map(|(ratio, path)| {
                        let poster = there(poster_of(&path));
                        there(path).map(|video| ExtraOutput {
                            ratio,
                            video,
                            poster,
                        })
                    })
                    .collect();
                // One ratio gone: render them all again.
                if extras.is_none() {
                    video = None;
                }
                let extras = extras.unwrap_or_default();
                return self
                    .core
                    .resume_upload(&job, video, reel, posters, extras, now);
            }
            Effect::Upload {
                job,
                attempt,
                files,
            } => {
                let msg = UploadMsg::Upload {
                    job_id: job.clone(),
                    attempt,
                    files,
                    manager: myself.clone(),
                };
                if let Err(e) = self.to_upload(msg) {
                    let why = format!("the upload worker is unavailable ({e})");
                    return self.core.upload_done(&job, attempt, Err(why), now);
                }
            }
            Effect::RemoveFiles { job, files } => {
                for (file, why) in self.artifacts.remove(&files) {
                    warn!(job_id = %job, file = %file.display(), "could not remove: {why}");
                }
            }
            Effect::Expire(id) => match self.store.expire(&id) {
                Ok(()) => {
                    tracing::info!(job_id = %id, "retention: job expired");
                    self.core.expired(&id);
                    self.views.remove(&id);
                    // Live streams of the job end.
                    let _ = self.changes.send(id);
                }
                Err(e) => error!(job_id = %id, "retention: {e}"),
            },
            Effect::DiscardPartials => self.artifacts.discard_partials(),
            Effect::Finished(id) => {
                if self.unsaved.contains_key(&id) {
                    // Answered once the store holds the result.
                    self.finished_unsaved.insert(id);
                } else if let Some(snapshot) = self.core.snapshot(&id) {
                    // Published before anyone is told: a blocking caller that goes on to
                    // download (or ask job-status) finds what it was answered.
                    let snapshot = self.publish(snapshot);
                    for w in self.waiters.remove(&id).unwrap_or_default() {
                        let _ = w.send(snapshot.clone());
                    }
                }
            }
            Effect::DrainDone(report) => {
                if let Some(reply) = self.drain_reply.take() {
                    let _ = reply.send(report);
                }
                // Nothing more finishes in this process: release blocking callers.
                self.waiters.clear();
            }
        }
        Vec::new()
    }

    /// Saves the job and, atomically with it, the webhook `event`'s outbox row; then hands the
    /// delivery to the WebhookActor. When the store refuses the write (disk full, I/O error) the
    /// change is kept in `unsaved` and tried again every tick: until it is saved, clients do not
    /// see it (no snapshot, no answer to blocking callers, no webhook) and the server is not
    /// ready. Nothing is shown that the store does not hold.
    fn persist(&mut self, id: &JobId, event: Option<Box<vidbuilder_domain::events::WebhookEvent>>) {
        let Some(record) = self.core.record(id) else {
            return;
        };
        let delivery = event.and_then(|ev| {
            record
                .webhook_url
                .as_ref()
                .map(|url| Delivery::new(url, &ev, record.owner.clone()))
        });
        let held = self.unsaved.contains_key(id);
        let mut pending = self.unsaved.remove(id).unwrap_or_default();
        pending.extend(delivery);
        self.save(id, pending, held);
    }

    /// Writes the job's record with its pending deliveries (each in the same transaction as a
    /// write of the record); on success hands them to the WebhookActor, publishes the snapshot
    /// and answers the job's waiters if it finished meanwhile. `held`: an earlier change of the
    /// job was refused (its snapshot was held back and is published now).
    fn save(&mut self, id: &JobId, pending: Vec<Delivery>, held: bool) {
        let Some(record) = self.core.record(id) else {
            return;
        };
        let written = if pending.is_empty() {
            self.store.update_job(record, None)
        } else {
            pending
                .iter()
                .try_for_each(|d| self.store.update_job(record, Some(&d.to_row())))
        };
        if let Err(e) = written {
            if self.store_ok {
                error!(job_id = %id, "could not save the job (kept, tried again every second; the server reports not ready): {e}");
            }
            self.store_ok = false;
            self.unsaved.insert(id.clone(), pending);
            return;
        }
        self.store_ok = true;
        for d in pending {
            if let Err(e) = self.webhooks.cast(WebhookMsg::Enqueue(d)) {
                error!(job_id = %id, "webhook actor unavailable (the outbox keeps the delivery): {e}");
            }
        }
        if held {
            if let Some(snapshot) = self.core.snapshot(id) {
                self.publish(snapshot);
            }
        }
        if self.finished_unsaved.remove(id) {
            if let Some(snapshot) = self.core.snapshot(id) {
                for w in self.waiters.remove(id).unwrap_or_default() {
                    let _ = w.send(snapshot.clone());
                }
            }
        }
    }

    /// Tries again to save what the store refused.
    fn retry_unsaved(&mut self) {
        if self.unsaved.is_empty() {
            return;
        }
        let ids: Vec<JobId> = self.unsaved.keys().cloned().collect();
        for id in ids {
            let pending = self.unsaved.remove(&id).unwrap_or_default();
            self.save(&id, pending, true);
            if self.unsaved.contains_key(&id) {
                // Still refused: the rest waits for the next tick.
                break;
            }
        }
        if self.unsaved.is_empty() {
            info!("the store accepts writes again: every held change is saved");
        }
    }

    /// Hands a message to the UploadActor; why not, when it is not running.
    fn to_upload(&self, msg: UploadMsg) -> Result<(), String> {
        match &self.upload {
            Some(upload) => upload.cast(msg).map_err(|e| e.to_string()),
            None => Err("it is not running".into()),
        }
    }

    /// (Re)starts the UploadActor, linked to the manager.
    async fn spawn_upload_actor(&mut self, myself: &ActorRef<JobManagerMsg>) {
        let Some((uploader, settings)) = self.uploader.clone() else {
            return;
        };
        let args = UploadArgs {
            uploader,
            settings,
            artifacts: self.artifacts.clone(),
        };
        match Actor::spawn_linked(None, UploadActor, args, myself.get_cell()).await {
            Ok((actor, _)) => self.upload = Some(actor),
            Err(e) => {
                error!("could not start the upload worker: {e}");
                self.upload = None;
            }
        }
    }

    /// Starts the WebhookActor again after it died (it reloads what is pending from the store).
    async fn respawn_webhooks(&mut self, myself: &ActorRef<JobManagerMsg>) {
        let Some(args) = self.webhooks_respawn.clone() else {
            return;
        };
        match Actor::spawn_linked(None, crate::webhook::WebhookActor, args, myself.get_cell()).await
        {
            Ok((actor, _)) => {
                info!("the webhook deliverer is running again; pending deliveries reloaded from the store");
                self.webhooks = actor;
                self.webhooks_down = false;
            }
            Err(e) => {
                error!("could not restart the webhook deliverer: {e}; retrying every second");
                self.webhooks_down = true;
            }
        }
    }

    /// Redoes the uploads that were in flight in an UploadActor that died.
    async fn redo_uploads(&mut self, myself: &ActorRef<JobManagerMsg>) {
        let effects = self.core.redo_uploads();
        self.run(myself, effects).await;
    }

    /// (Re)starts the ClusterActor (cluster mode), linked to the manager.
    async fn spawn_cluster_actor(&mut self, myself: &ActorRef<JobManagerMsg>) {
        let Some(settings) = self.cluster_settings.clone() else {
            return;
        };
        let args = ClusterArgs {
            settings,
            manager: myself.clone(),
        };
        match Actor::spawn_linked(None, ClusterActor, args, myself.get_cell()).await {
            Ok((actor, _)) => self.cluster = Some(actor),
            Err(e) => {
                error!("could not start the cluster listener: {e}; retrying in 2 s");
                self.cluster = None;
                // The next tick tries again.
            }
        }
    }

    /// Cluster messages about nodes and remote attempts.
    fn remote(&mut self, msg: JobManagerMsg, now: Now) -> Vec<Effect> {
        match msg {
            JobManagerMsg::NodeUp { node, capacity } => self.core.node_up(&node, capacity, now),
            JobManagerMsg::NodeDown { node, why } => self.core.node_down(&node, &why, now),
            JobManagerMsg::NodeRunning { node, attempts } => {
                let attempts: Vec<(JobId, u32)> = attempts
                    .into_iter()
                    .map(|a| (a.job_id, a.attempt))
                    .collect();
                self.core
                    .superseded(&node, &attempts)
                    .into_iter()
                    .map(|(job, attempt)| Effect::CancelRemote {
                        node: node.clone(),
                        job,
                        attempt,
                    })
                    .collect()
            }
            JobManagerMsg::RemoteStored {
                job_id,
                attempt,
                output,
                keys,
            } => self.core.remote_stored(&job_id, attempt, output, keys, now),
            JobManagerMsg::RemoteRendered {
                node,
                attempt,
                rendered,
            } => {
                let (id, n) = (attempt.job_id.clone(), attempt.attempt);
                if self.core.remote_rendered(&id, n, &node, now) {
                    if let Some(c) = &self.cluster {
                        let _ = c.cast(ClusterMsg::Fetch {
                            node,
                            attempt,
                            rendered,
                        });
                    }
                    Vec::new()
                } else if !self.core.is_current(&id, n, &node) {
                    // A superseded attempt's files: the worker may drop them.
                    vec![Effect::CancelRemote {
                        node,
                        job: id,
                        attempt: n,
                    }]
                } else {
                    // Already being fetched (a re-sent result).
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    /// Admits a job, or answers the job its `Idempotency-Key` created (within 24 h, while the
    /// job is known here); the same key with another body is refused. Submissions are handled
    /// one at a time, so two requests with one key never both create a job.
    fn submit(&mut self, request: SubmitRequest) -> Result<Admitted, SubmitError> {
        let now = Now::system();
        if let Some(replayed) = self.replay(&request, now)? {
            return Ok(replayed);
        }
        self.core.admission(&request.owner)?;
        let mut record = Core::new_record(request.spec, request.webhook_url, request.owner, now);
        record.idempotency = request.idempotency;
        if let Err(e) = self.store.insert_job(&mut record) {
            error!("could not store a new job: {e}");
            return Err(SubmitError::Store(e.to_string()));
        }
        let id = record.id.clone();
        metrics::counter!("vidbuilder_jobs_submitted_total").increment(1);
        let effects = self.core.admit(record, now);
        debug_assert!(effects.is_empty());
        Ok(Admitted {
            snapshot: self.core.snapshot(&id).expect("just admitted"),
            replayed: false,
        })
    }

    /// Admits a batch of one owner's jobs: all of them in one store transaction, or none. The
    /// requests whose `Idempotency-Key` names a known job answer that job instead.
    fn submit_batch(&mut self, requests: Vec<SubmitRequest>) -> Result<Vec<Admitted>, SubmitError> {
        let now = Now::system();
        let owner = requests.first().and_then(|r| r.owner.clone());
        let mut answers: Vec<Option<Admitted>> = Vec::with_capacity(requests.len());
        let mut fresh = Vec::new();
        for request in requests {
            debug_assert_eq!(request.owner, owner, "a batch has one owner");
            match self.replay(&request, now)? {
                Some(replayed) => answers.push(Some(replayed)),
                None => {
                    answers.push(None);
                    let mut record =
                        Core::new_record(request.spec, request.webhook_url, request.owner, now);
                    record.idempotency = request.idempotency;
                    fresh.push(record);
                }
            }
        }
        if !fresh.is_empty() {
            self.core.admission_for(&owner, fresh.len())?;
            if let Err(e) = self.store.insert_jobs(&mut fresh) {
                error!(jobs = fresh.len(), "could not store a batch: {e}");
                return Err(SubmitError::Store(e.to_string()));
            }
        }
        metrics::counter!("vidbuilder_jobs_submitted_total").increment(fresh.len() as u64);
        info!(jobs = answers.len(), new = fresh.len(), "batch admitted");
        let mut fresh = fresh.into_iter();
        answers
            .into_iter()
            .map(|answer| match answer {
                Some(replayed) => Ok(replayed),
                None => {
                    let record = fresh.next().expect("one record per new job");
                    let id = record.id.clone();
                    let effects = self.core.admit(record, now);
                    debug_assert!(effects.is_empty());
                    Ok(Admitted {
                        snapshot: self.core.snapshot(&id).expect("just admitted"),
                        replayed: false,
                    })
                }
            })
            .collect()
    }

    /// The job a request's `Idempotency-Key` created (within 24 h, while it is known here), or
    /// `None` to admit a new one; the same key with another body is refused.
    fn replay(&self, request: &SubmitRequest, now: Now) -> Result<Option<Admitted>, SubmitError> {
        if let Some(idem) = &request.idempotency {
            let since =
                now.wall.timestamp_millis() - vidbuilder_domain::store::IDEMPOTENCY_WINDOW_MS;
            let named = self
                .store
                .idempotent_job(request.owner.as_deref(), &idem.key, since)
                .map_err(|e| SubmitError::Store(e.to_string()))?;
            if let Some(named) = named {
                if named.body_hash != idem.body_hash {
                    return Err(SubmitError::IdempotencyConflict {
                        job_id: named.job_id,
                    });
                }
                if let Some(snapshot) = self.core.snapshot(&named.job_id) {
                    info!(job_id = %named.job_id, "idempotent replay: answering the job this key created");
                    return Ok(Some(Admitted {
                        snapshot,
                        replayed: true,
                    }));
                }
                // The job it named expired: the key names the new job from now on.
            }
        }
        Ok(None)
    }

    /// Carries a template request out on the store.
    fn template(&self, msg: TemplateMsg) {
        let store = |e: vidbuilder_domain::store::StoreError| {
            error!("template store: {e}");
            TemplateError::Store(e.to_string())
        };
        match msg {
            TemplateMsg::Create {
                template,
                max_per_owner,
                reply,
            } => {
                let answer = self
                    .store
                    .templates(template.owner.as_deref(), 0)
                    .map_err(store)
                    .and_then(|(_, count)| {
                        if count >= max_per_owner {
                            return Err(TemplateError::TooMany {
                                count,
                                limit: max_per_owner,
                            });
                        }
                        self.store.insert_template(&template).map_err(store)
                    });
                if answer.is_ok() {
                    info!(template_id = %template.id, fields = template.fields.len(), "template stored");
                }
                let _ = reply.send(answer);
            }
            TemplateMsg::Get { id, reply } => {
                let _ = reply.send(self.store.template(&id).map_err(store));
            }
            TemplateMsg::Delete { id, reply } => {
                let answer = self.store.delete_template(&id).map_err(store);
                if answer == Ok(true) {
                    info!(template_id = %id, "template deleted");
                }
                let _ = reply.send(answer);
            }
            TemplateMsg::List {
                owner,
                limit,
                reply,
            } => {
                let _ = reply.send(self.store.templates(owner.as_deref(), limit).map_err(store));
            }
        }
    }

    fn presign(
        &self,
        job_id: JobId,
        ratio: Option<AspectRatio>,
        reply: RpcReplyPort<Result<String, PresignError>>,
    ) {
        let Some(key) = self.core.stored_key(&job_id, ratio) else {
            let _ = reply.send(Err(PresignError::NoObject));
            return;
        };
        let Some(upload) = self.upload.clone() else {
            let _ = reply.send(Err(PresignError::Unavailable(
                "object storage is not configured".into(),
            )));
            return;
        };
        tokio::spawn(async move {
            let url = ractor::call!(upload, |r| UploadMsg::Presign { key, reply: r });
            let _ = reply.send(match url {
                Ok(Ok(url)) => Ok(url),
                Ok(Err(e)) => Err(PresignError::Storage(e)),
                Err(e) => Err(PresignError::Unavailable(e.to_string())),
            });
        });
    }

    /// Liveness, drain deadline, and the retention sweep when it is due.
    fn tick(&mut self, now: Now) -> Vec<Effect> {
        let mut effects = self.core.check_liveness(now);
        effects.extend(self.core.check_drain(now));
        let retention = self.core.settings().retention;
        let every = Duration::from_secs(60).min(retention.unwrap_or(Duration::MAX) / 4);
        if let Some(retention) = retention.filter(|_| self.last_sweep.elapsed() >= every) {
            self.last_sweep = std::time::Instant::now();
            let before = now.wall.timestamp_millis() - retention.as_millis() as i64;
            match self.store.finished_before(before) {
                Ok(records) => effects.extend(self.core.expire(records)),
                Err(e) => error!("retention sweep: {e}"),
            }
        }
        effects
    }
}

impl Actor for JobManager {
    type Msg = JobManagerMsg;
    type State = JobManagerState;
    type Arguments = JobManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<JobManagerMsg>,
        args: JobManagerArgs,
    ) -> Result<JobManagerState, ActorProcessingErr> {
        let uploads = args.uploader.is_some();
        let tick = args.settings.tick;
        let mut state = JobManagerState {
            core: Core::new(args.settings, args.links, uploads),
            renderer: args.renderer,
            webhooks: args.webhooks,
            webhooks_respawn: args.webhooks_respawn,
            webhooks_down: false,
            views: args.views,
            changes: args.changes,
            published: 0,
            stats: args.stats,
            store: args.store,
            artifacts: args.artifacts,
            renders: HashMap::new(),
            cells: HashMap::new(),
            restart_timers: HashMap::new(),
            waiters: HashMap::new(),
            unsaved: HashMap::new(),
            finished_unsaved: std::collections::HashSet::new(),
            store_ok: true,
            drain_reply: None,
            ticker: None,
            last_sweep: std::time::Instant::now(),
            uploader: args.uploader,
            upload: None,
            cluster_settings: args.cluster,
            cluster: None,
        };
        // Supervise the WebhookActor: its death comes here as a supervision event.
        state.webhooks.get_cell().link(myself.get_cell());
        // Recover: finished jobs are served again; queued and interrupted ones run again, in
        // admission order; partial files of interrupted renders are discarded.
        let records = state.store.load_jobs()?;
        let effects = state.core.recover(records, Now::system());
        state.run(&myself, effects).await;
        state.ticker = Some(myself.send_interval(tick, || JobManagerMsg::Tick));
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<JobManagerMsg>,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        state.spawn_upload_actor(&myself).await;
        state.spawn_cluster_actor(&myself).await;
        let effects = state.core.pump(Now::system());
        state.run(&myself, effects).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<JobManagerMsg>,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        if state.webhooks_respawn.is_some() {
            // The manager owns the deliverer it may have restarted: it goes with the manager.
            state.webhooks.stop(Some("the job manager stopped".into()));
        }
        for (_, t) in state.restart_timers.drain() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<JobManagerMsg>,
        msg: JobManagerMsg,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Now::system();
        let effects = match msg {
            JobManagerMsg::Submit { request, reply } => {
                let admitted = state.submit(request);
                let ok = admitted.as_ref().is_ok_and(|a| !a.replayed);
                // The snapshot is published before the caller can ask for it.
                state.run(&myself, Vec::new()).await;
                let _ = reply.send(admitted);
                if ok {
                    state.core.pump(now)
                } else {
                    Vec::new()
                }
            }
            JobManagerMsg::SubmitBatch { requests, reply } => {
                let admitted = state.submit_batch(requests);
                let ok = admitted
                    .as_ref()
                    .is_ok_and(|a| a.iter().any(|a| !a.replayed));
                state.run(&myself, Vec::new()).await;
                let _ = reply.send(admitted);
                if ok {
                    state.core.pump(now)
                } else {
                    Vec::new()
                }
            }
            JobManagerMsg::Template(msg) => {
                state.template(msg);
                Vec::new()
            }
            JobManagerMsg::Cancel { job_id, reply } => match state.core.cancel(&job_id, now) {
                Ok(effects) => {
                    // Carried out (saved, published) before the caller is answered.
                    state.run(&myself, effects).await;
                    let snapshot = state
                        .views
                        .get(&job_id)
                        .map(|v| v.clone())
                        .or_else(|| state.core.snapshot(&job_id))
                        .ok_or(CancelError::Unknown);
                    let _ = reply.send(snapshot);
                    Vec::new()
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Vec::new()
                }
            },
            JobManagerMsg::WaitFinished { job_id, reply } => {
                match state.core.is_terminal(&job_id) {
                    Some(true) => {
                        let _ = reply.send(state.core.snapshot(&job_id).expect("known"));
                    }
                    Some(false) => state.waiters.entry(job_id).or_default().push(reply),
                    None => drop(reply),
                }
                Vec::new()
            }
            JobManagerMsg::Progress {
                job_id,
                attempt,
                progress,
            } => {
                state.core.progress(&job_id, attempt, progress, now);
                Vec::new()
            }
            JobManagerMsg::RenderDone {
                job_id,
                attempt,
                result,
            } => state.core.render_done(&job_id, attempt, result, now),
            JobManagerMsg::Restart { job_id } => {
                state.restart_timers.remove(&job_id);
                state.core.restart_due(&job_id, now)
            }
            JobManagerMsg::Tick => {
                state.retry_unsaved();
                if state.webhooks_down {
                    state.respawn_webhooks(&myself).await;
                }
                if state.cluster.is_none() && state.cluster_settings.is_some() {
                    state.spawn_cluster_actor(&myself).await;
                }
                state.tick(now)
            }
            msg @ (JobManagerMsg::NodeUp { .. }
            | JobManagerMsg::NodeDown { .. }
            | JobManagerMsg::NodeRunning { .. }
            | JobManagerMsg::RemoteStored { .. }
            | JobManagerMsg::RemoteRendered { .. }) => state.remote(msg, now),
            JobManagerMsg::Nodes(reply) => {
                let _ = reply.send(state.core.nodes());
                Vec::new()
            }
            JobManagerMsg::Drain { grace, reply } => {
                state.drain_reply = Some(reply);
                state.core.drain(grace, now)
            }
            JobManagerMsg::UploadProgress {
                job_id,
                attempt,
                done,
                total,
            } => {
                state.core.upload_progress(&job_id, attempt, done, total);
                Vec::new()
            }
            JobManagerMsg::UploadDone {
                job_id,
                attempt,
                result,
            } => {
                let result = result.map_err(|e| e.message);
                state.core.upload_done(&job_id, attempt, result, now)
            }
            JobManagerMsg::PresignDownload {
                job_id,
                ratio,
                reply,
            } => {
                state.presign(job_id, ratio, reply);
                Vec::new()
            }
            JobManagerMsg::Captions { job_id, reply } => {
                let vtt = state
                    .core
                    .record(&job_id)
                    .and_then(|r| r.spec.as_ref())
                    .and_then(|s| s.captions.as_ref())
                    .map(|c| c.to_vtt());
                let _ = reply.send(vtt);
                Vec::new()
            }
            JobManagerMsg::ToWebhooks(msg) => {
                if let Err(e) = state.webhooks.cast(msg) {
                    error!("webhook actor unavailable: {e}");
                }
                Vec::new()
            }
            JobManagerMsg::Tombstone { job_id, reply } => {
                let found = state.store.tombstone(&job_id);
                if let Err(e) = &found {
                    error!(job_id = %job_id, "could not read the tombstone: {e}");
                }
                let _ = reply.send(found.ok().flatten());
                Vec::new()
            }
            JobManagerMsg::Stats(reply) => {
                let _ = reply.send(state.core.stats());
                Vec::new()
            }
        };
        state.run(&myself, effects).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<JobManagerMsg>,
        evt: SupervisionEvent,
        state: &mut JobManagerState,
    ) -> Result<(), ActorProcessingErr> {
        // Never stop the manager because a child ended: decide per job instead.
        let (cell, reason): (ActorCell, RenderFailure) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (
                cell,
                RenderFailure::new(
                    RenderFailureKind::Crashed,
                    format!("render worker crashed: {err}"),
                ),
            ),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                RenderFailure::new(
                    RenderFailureKind::Crashed,
                    format!(
                        "render worker stopped ({})",
                        reason.unwrap_or_else(|| "no reason given".into())
                    ),
                ),
            ),
            _ => return Ok(()),
        };
        if state
            .upload
            .as_ref()
            .is_some_and(|u| u.get_id() == cell.get_id())
        {
            error!("the upload worker stopped ({reason}); restarting it and redoing its uploads");
            state.spawn_upload_actor(&myself).await;
            state.redo_uploads(&myself).await;
            return Ok(());
        }
        if state.webhooks.get_id() == cell.get_id() {
            // Stopped on purpose at shutdown (after the drain): it stays stopped.
            if state.webhooks_respawn.is_some() && !state.core.is_draining() {
                error!("the webhook deliverer stopped ({reason}); restarting it");
                state.respawn_webhooks(&myself).await;
            }
            return Ok(());
        }
        if state
            .cluster
            .as_ref()
            .is_some_and(|c| c.get_id() == cell.get_id())
        {
            // Its links closed with it: every worker is lost until it links again.
            error!("the cluster listener stopped ({reason}); restarting it");
            state.cluster = None;
            let now = Now::system();
            let mut effects = Vec::new();
            for n in state.core.nodes().into_iter().filter(|n| !n.local) {
                effects.extend(state.core.node_down(
                    &n.name,
                    "the cluster listener restarted",
                    now,
                ));
            }
            state.run(&myself, effects).await;
            state.spawn_cluster_actor(&myself).await;
            return Ok(());
        }
        let Some(job_id) = state.renders.remove(&cell.get_id()) else {
            return Ok(());
        };
        state.cells.remove(&job_id);
        let effects = state.core.render_exited(&job_id, reason, Now::system());
        state.run(&myself, effects).await;
        Ok(())
    }
}
