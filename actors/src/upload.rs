//! The UploadActor: puts finished videos in object storage through an [`Uploader`] and signs
//! URLs to them.
//!
//! Each job's upload runs in its own task, so a large upload never delays a presign or another
//! job. Transient failures are retried with exponential backoff (`base · 2ⁿ`, at most
//! `max_retries` times); a permanent one (bad credentials, missing bucket) ends the upload at
//! once. The result goes back to the JobManager as `UploadDone`, progress as `UploadProgress`.
//! The JobManager spawns this actor linked to itself and respawns it if it dies; uploads already
//! running are tasks and carry on.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tracing::{info, info_span, warn, Instrument};

use crate::manager::JobManagerMsg;
use crate::ports::{Artifacts, UploadError, UploadFile, Uploader};
use vidbuilder_domain::job::{JobId, S3Object};

/// How the UploadActor retries and how long its signed URLs last.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Retries of a transiently failed upload or presign, after the first try.
    pub max_retries: u32,
    /// Delay before the first retry; doubles with each retry.
    pub retry_base: Duration,
    /// Lifetime of the signed URLs handed to clients (at most 7 days).
    pub presign_expiry: Duration,
}

/// How a presign expiry reads in the contract (`"7 days"`).
pub fn expires_in_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" }),
        s if s % 3_600 == 0 => format!("{} hour{}", s / 3_600, if s == 3_600 { "" } else { "s" }),
        s => format!("{s} seconds"),
    }
}

/// The UploadActor's messages, from the JobManager.
#[derive(RactorMessage)]
pub enum UploadMsg {
    /// Upload these files of a job (standard first, then reels), then presign them.
    Upload {
        /// The job whose files these are.
        job_id: JobId,
        /// The attempt they belong to, carried back in `UploadProgress` and `UploadDone`.
        attempt: u32,
        /// The files to upload, the landscape video first.
        files: Vec<UploadFile>,
        /// Where `UploadProgress` and `UploadDone` go.
        manager: ActorRef<JobManagerMsg>,
    },
    /// Sign URLs for objects a worker uploaded (cluster mode); the result goes back to the
    /// JobManager as `UploadDone`, like an upload's.
    PresignObjects {
        /// The job whose objects these are.
        job_id: JobId,
        /// The attempt they belong to.
        attempt: u32,
        /// The object keys, the landscape video first.
        keys: Vec<String>,
        /// Where `UploadDone` goes.
        manager: ActorRef<JobManagerMsg>,
    },
    /// A fresh signed URL for a stored object.
    Presign {
        /// The object key to sign.
        key: String,
        /// Gets the signed URL (valid for `presign_expiry`), or why there is none.
        reply: RpcReplyPort<Result<String, UploadError>>,
    },
}

/// Puts finished videos in object storage (see the module docs).
pub struct UploadActor;

/// What the UploadActor is spawned with.
pub struct UploadArgs {
    /// Object storage.
    pub uploader: Arc<dyn Uploader>,
    /// How it retries and signs.
    pub settings: UploadSettings,
    /// The files to upload, as this node has them.
    pub artifacts: Arc<dyn Artifacts>,
}

/// The UploadActor's state: its arguments.
pub struct UploadState {
    uploader: Arc<dyn Uploader>,
    settings: UploadSettings,
    artifacts: Arc<dyn Artifacts>,
}

pub(crate) async fn with_retries<T, F, Fut>(
    settings: &UploadSettings,
    what: &str,
    mut f: F,
) -> Result<T, UploadError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, UploadError>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient && tries < settings.max_retries => {
                let delay = crate::retry::exponential(settings.retry_base, tries);
                tries += 1;
                warn!(error = %e.message, retry = tries, delay_ms = delay.as_millis() as u64, "{what} failed, retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A stored object with a signed URL to it (retried like an upload).
async fn presign_object(
    uploader: &dyn Uploader,
    settings: &UploadSettings,
    key: &str,
) -> Result<S3Object, UploadError> {
    let signed_url = with_retries(settings, "presign", || {
        uploader.presign_get(key, settings.presign_expiry)
    })
    .await?;
    Ok(S3Object {
        s3_key: key.to_string(),
        signed_url,
        expires_in: expires_in_text(settings.presign_expiry),
    })
}

async fn upload_job(
    uploader: Arc<dyn Uploader>,
    settings: UploadSettings,
    artifacts: Arc<dyn Artifacts>,
    job_id: JobId,
    attempt: u32,
    files: Vec<UploadFile>,
    manager: ActorRef<JobManagerMsg>,
) {
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| artifacts.size(&f.path).unwrap_or(0))
        .collect();
    let total: u64 = sizes.iter().sum();
    let mut before = 0u64;
    let mut objects = Vec::new();
    for (file, size) in files.iter().zip(sizes) {
        let (m, job, base) = (manager.clone(), job_id.clone(), before);
        let sink: crate::ports::UploadProgressSink = Arc::new(move |done, _| {
            let _ = m.cast(JobManagerMsg::UploadProgress {
                job_id: job.clone(),
                attempt,
                done: base + done,
                total,
            });
        });
        let result = with_retries(&settings, "upload", || {
            uploader.upload(file, &job_id, sink.clone())
        })
        .await;
        if let Err(e) = result {
            metrics::counter!("vidbuilder_s3_errors_total", "op" => "upload").increment(1);
            let _ = manager.cast(JobManagerMsg::UploadDone {
                job_id,
                attempt,
                result: Err(e),
            });
            return;
        }
        before += size;
        metrics::counter!("vidbuilder_s3_uploaded_bytes_total").increment(size);
        match presign_object(uploader.as_ref(), &settings, &file.key).await {
            Ok(object) => objects.push(object),
            Err(e) => {
                metrics::counter!("vidbuilder_s3_errors_total", "op" => "presign").increment(1);
                let _ = manager.cast(JobManagerMsg::UploadDone {
                    job_id,
                    attempt,
                    result: Err(e),
                });
                return;
            }
        }
    }
    info!(bytes = total, objects = objects.len(), "uploaded");
    let _ = manager.cast(JobManagerMsg::UploadDone {
        job_id,
        attempt,
        result: Ok(objects),
    });
}

impl Actor for UploadActor {
    type Msg = UploadMsg;
    type State = UploadState;
    type Arguments = UploadArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<UploadMsg>,
        args: UploadArgs,
    ) -> Result<UploadState, ActorProcessingErr> {
        Ok(UploadState {
            uploader: args.uploader,
            settings: args.settings,
            artifacts: args.artifacts,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<UploadMsg>,
        msg: UploadMsg,
        state: &mut UploadState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            UploadMsg::Upload {
                job_id,
                attempt,
                files,
                manager,
            } => {
                let span = info_span!("upload", job_id = %job_id, attempt);
                tokio::spawn(
                    upload_job(
                        state.uploader.clone(),
                        state.settings.clone(),
                        state.artifacts.clone(),
                        job_id,
                        attempt,
                        files,
                        manager,
                    )
                    .instrument(span),
                );
            }
            UploadMsg::PresignObjects {
                job_id,
                attempt,
                keys,
                manager,
            } => {
                let (uploader, settings) = (state.uploader.clone(), state.settings.clone());
                tokio::spawn(async move {
                    let (mut objects, mut failed) = (Vec::new(), None);
                    for key in keys {
                        match presign_object(uploader.as_ref(), &settings, &key).await {
                            Ok(object) => objects.push(object),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    let result = match failed {
                        Some(e) => Err(e),
                        None => Ok(objects),
                    };
                    let _ = manager.cast(JobManagerMsg::UploadDone {
                        job_id,
                        attempt,
                        result,
                    });
                });
            }
            UploadMsg::Presign { key, reply } => {
                let (uploader, settings) = (state.uploader.clone(), state.settings.clone());
                tokio::spawn(async move {
                    let url = with_retries(&settings, "presign", || {
                        uploader.presign_get(&key, settings.presign_expiry)
                    })
                    .await;
                    let _ = reply.send(url);
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_like_the_contract() {
        assert_eq!(expires_in_text(Duration::from_secs(604_800)), "7 days");
        assert_eq!(expires_in_text(Duration::from_secs(86_400)), "1 day");
        assert_eq!(expires_in_text(Duration::from_secs(7_200)), "2 hours");
        assert_eq!(expires_in_text(Duration::from_secs(90)), "90 seconds");
    }
}
