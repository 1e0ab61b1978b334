//! The end of a job: uploads, the terminal state with its webhook, retention, drain.

use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;
use tracing::{info, warn};
use vidbuilder_domain::events::WebhookEvent;

use vidbuilder_domain::job::{
    poster_of, timestamp, JobFailure, JobId, JobPhase, JobResult, JobStatus, OutputLinks, S3Object,
    S3Upload,
};
use vidbuilder_domain::ports::{ExtraOutput, RenderOutput, UploadFile};
use vidbuilder_domain::spec::{AspectRatio, Format, OutputRole, VideoSpec};

use super::{CancelError, Core, Draining, Job, Now};
use crate::manager::effects::Effect;
use crate::manager::DrainReport;
use crate::ports::{object_key_as, Links, ObjectKind};
use vidbuilder_domain::store::JobRecord;

impl Core {
    // ---- uploads ----

    /// A restarted job had rendered before: upload its files (those still there) instead of
    /// rendering again; otherwise render. `posters` are the landscape and reel posters that are
    /// still there: the finished job announces them as a fresh render's would.
    pub fn resume_upload(
        &mut self,
        id: &JobId,
        video: Option<PathBuf>,
        reel: Option<PathBuf>,
        posters: [Option<PathBuf>; 2],
        extras: Vec<ExtraOutput>,
        now: Now,
    ) -> Vec<Effect> {
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        let Some(video) = video else {
            // The files are gone: render again, first in line, on whichever node has a slot.
            info!(job_id = %id, "the rendered files are gone: rendering again");
            job.record.video = None;
            job.record.reel = None;
            let owner = job.record.owner.clone();
            self.queue.push_front(owner, id.clone());
            self.number_queue();
            return self.pump(now);
        };
        let Some(spec) = &job.record.spec else {
            return self.finish(
                id,
                Err(JobFailure::NotStarted(
                    "the job's stored spec could not be read back".into(),
                )),
                now,
            );
        };
        let (width, height) = spec.quality.dimensions();
        let out = RenderOutput {
            video,
            reel,
            duration_secs: spec.frame_count() as f64 / spec.fps as f64,
            width,
            height,
            frames: spec.frame_count(),
            poster: posters[0].clone(),
            reel_poster: posters[1].clone(),
            extras,
        };
        info!(job_id = %id, "the video was rendered before the restart: uploading it");
        self.begin_upload(id, out)
    }

    /// The uploads in flight again (their UploadActor died with them): every job that is
    /// uploading starts its upload over.
    pub fn redo_uploads(&mut self) -> Vec<Effect> {
        let uploading: Vec<(JobId, RenderOutput)> = self
            .jobs
            .iter()
            .filter(|(_, j)| !j.is_terminal() && matches!(j.phase, JobPhase::Uploading { .. }))
            .filter_map(|(id, j)| j.rendered.clone().map(|out| (id.clone(), out)))
            .collect();
        let mut effects = Vec::new();
        for (id, out) in uploading {
            info!(job_id = %id, "its upload was lost with the upload worker: uploading again");
            effects.extend(self.begin_upload(&id, out));
        }
        effects
    }

    /// A render is done and object storage is configured: store the files, then finish.
    pub(super) fn begin_upload(&mut self, id: &JobId, out: RenderOutput) -> Vec<Effect> {
        let prefix = self.settings.s3_prefix.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        let format = job.record.spec.as_ref().map_or(Format::Mp4, |s| s.format());
        let files = upload_files(&out, |kind| UploadFile {
            path: PathBuf::new(),
            key: object_key_as(&prefix, &job.record.created_at, kind, id, format),
            content_type: format.mime().into(),
        });
        // Remember the render in the store: a restart uploads it instead of rendering again.
        job.record.video = Some(out.video.clone());
        job.record.reel = out.reel.clone();
        job.rendered = Some(out);
        job.phase = JobPhase::Uploading {
            bytes_done: 0,
            bytes_total: 0,
        };
        self.dirty.insert(id.clone());
        vec![
            Effect::Persist {
                job: id.clone(),
                event: None,
            },
            Effect::Upload {
                job: id.clone(),
                attempt: job.record.attempt,
                files,
            },
        ]
    }

    /// The job, if it is unfinished and on `attempt` (messages of older attempts are stale).
    fn live_job(&mut self, id: &JobId, attempt: u32) -> Option<&mut Job> {
        self.jobs
            .get_mut(id)
            .filter(|j| j.record.attempt == attempt && !j.is_terminal())
    }

    /// The upload reported `done` of `total` bytes; reports of another attempt are ignored.
    pub fn upload_progress(&mut self, id: &JobId, attempt: u32, done: u64, total: u64) {
        if let Some(job) = self.live_job(id, attempt) {
            job.phase = JobPhase::Uploading {
                bytes_done: done,
                bytes_total: total,
            };
            self.dirty.insert(id.clone());
        }
    }

    /// The upload ended: the job completes, or fails with its error; stale results are ignored.
    pub fn upload_done(
        &mut self,
        id: &JobId,
        attempt: u32,
        result: Result<Vec<S3Object>, String>,
        now: Now,
    ) -> Vec<Effect> {
        let Some(job) = self.live_job(id, attempt) else {
            return Vec::new();
        };
        match (result, job.rendered.clone()) {
            (Ok(objects), Some(out)) => {
                job.stored = Some(objects);
                self.finish(id, Ok(out), now)
            }
            (Err(e), _) => self.finish(id, Err(JobFailure::Upload(e)), now),
            (Ok(_), None) => self.finish(
                id,
                Err(JobFailure::Upload("the rendered files were lost".into())),
                now,
            ),
        }
    }

    // ---- the end ----

    /// Moves a job to its terminal state with its terminal webhook; wakes its waiters.
    pub(super) fn finish(
        &mut self,
        id: &JobId,
        result: Result<RenderOutput, JobFailure>,
        now: Now,
    ) -> Vec<Effect> {
        let delete_after_upload = self.settings.delete_local_after_upload;
        let links = self.links.clone();
        let Some(job) = self.jobs.get_mut(id) else {
            return Vec::new();
        };
        if job.is_terminal() {
            return Vec::new();
        }
        let mut effects = Vec::new();
        if job.running {
            effects.push(Effect::StopRender(id.clone()));
            self.stop_running(id);
        }
        let Some(job) = self.jobs.get_mut(id) else {
            return effects;
        };
        let elapsed = job
            .started
            .map(|s| now.at.duration_since(s).as_secs_f64())
            .unwrap_or(0.0);
        job.record.finished_at = Some(timestamp(now.wall));
        job.record.finished_ms = Some(now.wall.timestamp_millis());
        job.queue_position = None;
        let stored = job.stored.take();
        let event = match result {
            Ok(out) => {
                let delete_local = delete_after_upload && stored.is_some();
                if delete_local {
                    // Posters go with their videos: they are served only beside a local copy.
                    let extras = out
                        .extras
                        .iter()
                        .flat_map(|e| std::iter::once(&e.video).chain(e.poster.as_ref()));
                    let files = [Some(&out.video), out.reel.as_ref()]
                        .into_iter()
                        .flatten()
                        .chain(out.poster.iter().chain(out.reel_poster.as_ref()))
                        .chain(extras)
                        .cloned()
                        .collect();
                    effects.push(Effect::RemoveFiles {
                        job: id.clone(),
                        files,
                    });
                }
                // The objects come back in the order `upload_files` gave the files.
                let enabled = stored.is_some();
                let mut objects = stored.unwrap_or_default().into_iter();
                let standard = objects.next();
                let reels = out.reel.as_ref().and_then(|_| objects.next());
                let extra_objects: Vec<Option<S3Object>> =
                    out.extras.iter().map(|_| objects.next()).collect();
                let spec = job.record.spec.as_ref();
                let outputs = output_links(
                    links.as_ref(),
                    id,
                    spec,
                    &out,
                    [&standard, &reels],
                    &extra_objects,
                    delete_local,
                );
                let s3_upload = S3Upload {
                    enabled,
                    standard,
                    reels,
                };
                let result = JobResult {
                    video_url: links.video(id),
                    reels_url: out.reel.as_ref().map(|_| links.reel(id)),
                    duration: out.duration_secs,
                    scenes: job.record.spec.as_ref().map_or(0, |s| s.scenes.len()),
                    reels_generated: out.reel.is_some(),
                    s3_upload,
                    render_time: format!("{}s", elapsed.round() as u64),
                    poster_url: out
                        .poster
                        .as_ref()
                        .filter(|_| !delete_local)
                        .map(|_| links.poster(id)),
                    outputs,
                };
                info!(job_id = %id, render_secs = elapsed, "job completed");
                crate::observe::job_completed(elapsed, out.frames);
                job.record.status = JobStatus::Completed;
                job.record.result = Some(result);
                (job.record.video, job.record.reel) = if delete_local {
                    (None, None)
                } else {
                    (Some(out.video), out.reel)
                };
                job.phase = JobPhase::Completed;
                WebhookEvent::completed(id, job.record.result.clone().expect("just set"), now.wall)
            }
            Err(failure) => {
                let e = failure.to_string();
                let cancelled = failure == JobFailure::Cancelled;
                if cancelled {
                    info!(job_id = %id, "job cancelled");
                    crate::observe::job_ended("cancelled");
                } else {
                    warn!(job_id = %id, error = %e, "job failed");
                    crate::observe::job_ended("failed");
                }
                job.record.cancelled = cancelled;
                job.record.status = JobStatus::Failed;
                job.record.error = Some(e.clone());
                // A render that finished but could not be stored stays downloadable from here.
                if let Some(out) = job.rendered.take() {
                    job.record.video = Some(out.video);
                    job.record.reel = out.reel;
                }
                job.phase = JobPhase::Failed;
                WebhookEvent::failed(id, &e, now.wall).as_cancelled(cancelled)
            }
        };
        let event = event.with_metadata(job.record.spec.as_ref().and_then(|s| s.metadata.clone()));
        self.dirty.insert(id.clone());
        effects.push(Effect::Persist {
            job: id.clone(),
            event: Some(Box::new(event)),
        });
        effects.push(Effect::Finished(id.clone()));
        effects
    }

    // ---- cancel ----

    /// The client cancels the job. A queued job leaves the queue; a running render is killed
    /// (here: its RenderActor, whose drop kills the encoder and removes the partial files; on a
    /// worker: cancelled there) and its slot is free at once; an upload or fetch in flight is
    /// abandoned (its result will be stale) and the rendered files are removed. The job fails
    /// with `error: "Cancelled"`, `cancelled: true` and its `failed` webhook; queued jobs start
    /// in the freed slot.
    pub fn cancel(&mut self, id: &JobId, now: Now) -> Result<Vec<Effect>, CancelError> {
        let Some(job) = self.jobs.get(id) else {
            return Err(CancelError::Unknown);
        };
        if job.is_terminal() {
            return Err(CancelError::Finished(job.record.status));
        }
        let running = job.running;
        let mut effects = Vec::new();
        if self.queue.remove(id) {
            self.number_queue();
        }
        if running {
            effects.push(self.kill_effect(id));
            self.stop_running(id);
        }
        let job = self.jobs.get_mut(id).expect("checked above");
        // A finished render (uploading, or fetched from its worker) goes with the job.
        if let Some(out) = job.rendered.take() {
            job.record.video = Some(out.video);
            job.record.reel = out.reel;
        }
        let files = with_posters(&job.record.local_videos());
        (job.record.video, job.record.reel) = (None, None);
        if !files.is_empty() {
            effects.push(Effect::RemoveFiles {
                job: id.clone(),
                files,
            });
        }
        effects.extend(self.finish(id, Err(JobFailure::Cancelled), now));
        if running {
            effects.extend(self.check_drain(now));
        }
        effects.extend(self.pump(now));
        Ok(effects)
    }

    // ---- retention ----

    /// Jobs found past retention by the store: remove their files, expire their rows, keep a
    /// tombstone so status answers 410.
    pub fn expire(&mut self, records: Vec<JobRecord>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for record in records {
            let files = with_posters(&record.local_videos());
            effects.push(Effect::RemoveFiles {
                job: record.id.clone(),
                files,
            });
            effects.push(Effect::Expire(record.id.clone()));
        }
        effects
    }

    /// The store expired a job: it leaves memory (the store keeps its tombstone, which answers
    /// 410). True if it was known.
    pub fn expired(&mut self, id: &JobId) -> bool {
        self.dirty.remove(id);
        self.jobs.remove(id).is_some()
    }

    // ---- drain ----

    /// Stop starting jobs and refuse new ones; the drain is answered when no render runs, or at
    /// `grace`'s end after the renders that remain are stopped.
    pub fn drain(&mut self, grace: Duration, now: Now) -> Vec<Effect> {
        info!(
            running = self.running.len(),
            queued = self.queue.len(),
            grace_secs = grace.as_secs(),
            "draining"
        );
        self.draining = Some(Draining {
            deadline: now.at + grace,
            answered: false,
            running_at_start: self.running.len(),
        });
        self.check_drain(now)
    }

    /// Answers a drain once no render runs, or at its deadline after killing the renders left.
    pub fn check_drain(&mut self, now: Now) -> Vec<Effect> {
        let running = self.running.len();
        let Some(d) = self.draining.as_mut() else {
            return Vec::new();
        };
        if d.answered {
            return Vec::new();
        }
        let mut effects = Vec::new();
        if running == 0 {
            d.answered = true;
            let report = DrainReport {
                finished: d.running_at_start,
                interrupted: 0,
            };
            effects.extend(self.mark_drained());
            effects.push(Effect::DrainDone(report));
        } else if now.at >= d.deadline {
            d.answered = true;
            let report = DrainReport {
                finished: d.running_at_start.saturating_sub(running),
                interrupted: running,
            };
            let running: Vec<JobId> = self.running.iter().cloned().collect();
            for id in running {
                warn!(job_id = %id, "grace period over: stopping the render; it resumes on the next start");
                effects.push(self.kill_effect(&id));
                self.stop_running(&id);
            }
            effects.extend(self.mark_drained());
            effects.push(Effect::DrainDone(report));
        }
        effects
    }

    /// Every unfinished job that had started (running, waiting to retry, uploading) was stopped on
    /// purpose: the next start does not count it as interrupted.
    fn mark_drained(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (id, job) in &mut self.jobs {
            if job.record.status == JobStatus::Processing && !job.record.drained {
                job.record.drained = true;
                effects.push(Effect::Persist {
                    job: id.clone(),
                    event: None,
                });
            }
        }
        effects
    }
}

/// A job's video files with their posters (the files a job leaves on disk).
fn with_posters(videos: &[PathBuf]) -> Vec<PathBuf> {
    videos
        .iter()
        .flat_map(|v| [v.clone(), poster_of(v)])
        .collect()
}

/// The files of a render to put in object storage, in the order their objects come back: the
/// main video, the reel, then the other aspect ratios. `file` makes one for an object kind.
fn upload_files(out: &RenderOutput, file: impl Fn(ObjectKind) -> UploadFile) -> Vec<UploadFile> {
    let mut files = vec![UploadFile {
        path: out.video.clone(),
        ..file(ObjectKind::Standard)
    }];
    if let Some(reel) = &out.reel {
        files.push(UploadFile {
            path: reel.clone(),
            ..file(ObjectKind::Reels)
        });
    }
    for e in &out.extras {
        files.push(UploadFile {
            path: e.video.clone(),
            ..file(ObjectKind::Ratio(e.ratio))
        });
    }
    files
}

/// `outputs`: every aspect ratio of a finished render with its links, size and stored object
/// (`objects`: the main video's and the reel's; `extra_objects` in `out.extras`' order).
/// Posters are linked while the local copies stay (`!deleted`).
fn output_links(
    links: &dyn Links,
    id: &JobId,
    spec: Option<&VideoSpec>,
    out: &RenderOutput,
    objects: [&Option<S3Object>; 2],
    extra_objects: &[Option<S3Object>],
    deleted: bool,
) -> BTreeMap<String, OutputLinks> {
    let format = spec.map_or(Format::Mp4, |s| s.format());
    let shapes = spec.map(|s| s.shapes()).unwrap_or_default();
    let size = |role: OutputRole, ratio: Option<AspectRatio>| {
        shapes
            .iter()
            .find(|s| s.role == role && ratio.is_none_or(|r| r == s.ratio))
            .map(|s| (s.ratio, s.width, s.height))
    };
    let entry = |video_url: String,
                 poster_url: Option<String>,
                 obj: Option<&S3Object>,
                 (width, height): (u32, u32)| OutputLinks {
        video_url,
        poster_url: poster_url.filter(|_| !deleted),
        s3_key: obj.map(|o| o.s3_key.clone()),
        signed_url: obj.map(|o| o.signed_url.clone()),
        width,
        height,
        format,
    };
    let mut map = BTreeMap::new();
    let (main, w, h) =
        size(OutputRole::Main, None).unwrap_or((AspectRatio::Landscape, out.width, out.height));
    map.insert(
        main.as_str().to_string(),
        entry(
            links.video(id),
            out.poster.as_ref().map(|_| links.poster(id)),
            objects[0].as_ref(),
            (w, h),
        ),
    );
    if out.reel.is_some() {
        let r = AspectRatio::Vertical;
        let (_, w, h) = size(OutputRole::Reel, None).unwrap_or((r, 1080, 1920));
        map.insert(
            r.as_str().to_string(),
            entry(
                links.reel(id),
                out.reel_poster.as_ref().map(|_| links.output_poster(id, r)),
                objects[1].as_ref(),
                (w, h),
            ),
        );
    }
    for (e, obj) in out.extras.iter().zip(extra_objects) {
        let (_, w, h) = size(OutputRole::Extra, Some(e.ratio)).unwrap_or((e.ratio, 0, 0));
        map.insert(
            e.ratio.as_str().to_string(),
            entry(
                links.output(id, e.ratio),
                e.poster.as_ref().map(|_| links.output_poster(id, e.ratio)),
                obj.as_ref(),
                (w, h),
            ),
        );
    }
    map
}
