//! The S3 [`Uploader`]: `aws-sdk-s3` against AWS or any S3-compatible server (MinIO, R2, Ceph,
//! s3s…).
//!
//! - With a custom endpoint: path-style addressing, and checksums only when an operation requires
//!   them (most non-AWS servers reject the SDK's default trailing checksums).
//! - Credentials: `s3.access_key_id`/`s3.secret_access_key` when both are set, else the standard
//!   AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and `~/.aws`, web
//!   identity, ECS/EC2 roles).
//! - Files above `multipart_threshold_mb` go up in `part_size_mb` parts, at most
//!   `max_concurrent_parts` at once, streamed from disk; a failed multipart upload is aborted so no
//!   orphaned parts are billed.
//! - Errors are classified: network, timeouts, 5xx and throttling are `transient` (retrying may
//!   help; the UploadActor retries those), 4xx such as bad credentials or a missing bucket are not.
//!
//! The SDK itself retries each request a little (3 attempts, short backoff), so one dropped
//! connection does not restart a whole multipart upload; longer outages are the UploadActor's
//! business.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::task::JoinSet;
use tracing::{debug, warn};
use vidbuilder_actors::ports::{UploadError, UploadFile, UploadProgressSink, Uploader};
use vidbuilder_domain::job::JobId;

use crate::config::S3Config;
use crate::error::Error;

/// The longest a presigned URL may live: 7 days (S3 and the SDK refuse more).
pub const MAX_PRESIGN: Duration = Duration::from_secs(S3Config::MAX_PRESIGN_SECS);
/// S3 allows at most this many parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;
const MB: u64 = 1024 * 1024;

pub use vidbuilder_domain::job::{object_key, ObjectKind};

/// What one upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadStats {
    /// Size of the file, in bytes.
    pub bytes: u64,
    /// Parts sent: 1 for a single PUT.
    pub parts: u32,
    /// True when a multipart upload was used.
    pub multipart: bool,
}

/// What `HEAD` says about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size of the object, in bytes.
    pub content_length: u64,
    /// Its `Content-Type`, when it has one.
    pub content_type: Option<String>,
    /// The `job-id` metadata.
    pub job_id: Option<String>,
}

/// Uploads to one S3 bucket. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3Uploader {
    client: aws_sdk_s3::Client,
    bucket: String,
    endpoint: String,
    multipart_threshold: u64,
    part_size: u64,
    max_concurrent_parts: usize,
}

impl S3Uploader {
    /// Builds the client (no network I/O: credentials are resolved at the first request).
    pub async fn new(cfg: &S3Config) -> Result<S3Uploader, Error> {
        cfg.check()?;
        if !cfg.enabled() {
            return Err(Error::Config("s3.bucket: empty, S3 is off".into()));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(cfg.region.trim().to_string()));
        let (key, secret) = (cfg.access_key_id.trim(), cfg.secret_access_key.trim());
        if !key.is_empty() && !secret.is_empty() {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret,
                None,
                None,
                "vidbuilder-config",
            ));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(2)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(120))
                    .build(),
            );
        let endpoint = cfg.endpoint.trim().trim_end_matches('/').to_string();
        if !endpoint.is_empty() {
            builder = builder
                .endpoint_url(&endpoint)
                .force_path_style(true)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Ok(S3Uploader {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: cfg.bucket.trim().to_string(),
            endpoint,
            multipart_threshold: cfg.multipart_threshold_mb.max(1) * MB,
            part_size: cfg.part_size_mb.max(S3Config::MIN_PART_MB) * MB,
            max_concurrent_parts: cfg.max_concurrent_parts.max(1),
        })
    }

    /// `HEAD` on the bucket: a cheap start-up check of endpoint, credentials and bucket.
    pub async fn check_bucket(&self) -> Result<(), UploadError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify("bucket check", e))
    }

    /// `HEAD` on an object.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, UploadError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.classify("HEAD", e))?;
        Ok(ObjectInfo {
            content_length: out.content_length().unwrap_or(0).max(0) as u64,
            content_type: out.content_type().map(str::to_string),
            job_id: out.metadata().and_then(|m| m.get("job-id")).cloned(),
        })
    }

    /// Deletes an object (no error when it is already gone).
    pub async fn delete(&self, key: &str) -> Result<(), UploadError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify("delete", e))
    }

    /// [`Uploader::upload`], telling how it went (single PUT or multipart, how many parts).
    pub async fn upload_with_stats(
        &self,
        file: &UploadFile,
        job_id: &JobId,
        progress: UploadProgressSink,
    ) -> Result<UploadStats, UploadError> {
        let size = tokio::fs::metadata(&file.path)
            .await
            .map_err(|e| UploadError {
                message: format!("cannot read {}: {e}", file.path.display()),
                transient: false,
            })?
            .len();
        progress(0, size);
        let stats = if size > self.multipart_threshold {
            self.upload_multipart(file, job_id, size, &progress).await?
        } else {
            self.upload_single(file, job_id, size).await?
        };
        progress(size, size);
        debug!(key = %file.key, bytes = size, parts = stats.parts, "uploaded to S3");
        Ok(stats)
    }

    async fn upload_single(
        &self,
        file: &UploadFile,
        job_id: &JobId,
        size: u64,
    ) -> Result<UploadStats, UploadError> {
        let body = ByteStream::from_path(&file.path)
            .await
            .map_err(|e| UploadError {
                message: format!("cannot read {}: {e}", file.path.display()),
                transient: false,
            })?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&file.key)
            .content_type(&file.content_type)
            .content_length(size as i64)
            .metadata("job-id", job_id.as_str())
            .body(body)
            .send()
            .await
            .map_err(|e| self.classify("upload", e))?;
        Ok(UploadStats {
            bytes: size,
            parts: 1,
            multipart: false,
        })
    }

    async fn upload_multipart(
        &self,
        file: &UploadFile,
        job_id: &JobId,
        size: u64,
        progress: &UploadProgressSink,
    ) -> Result<UploadStats, UploadError> {
        // Parts grow beyond part_size only when the file would need more than 10 000 of them.
        let part_size = self.part_size.max(size.div_ceil(MAX_PARTS));
        let parts = size.div_ceil(part_size);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&file.key)
            .content_type(&file.content_type)
            .metadata("job-id", job_id.as_str())
            .send()
            .await
            .map_err(|e| self.classify("multipart upload start", e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        if upload_id.is_empty() {
            return Err(UploadError {
                message: "S3 started a multipart upload without an upload id".into(),
                transient: true,
            });
        }
        // Aborts the multipart upload if this future ends early: on error, or when dropped.
        let mut guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: file.key.clone(),
            upload_id: upload_id.clone(),
            armed: true,
        };

        // Bytes of finished parts; the callback runs under the lock so reports never go back.
        let done = Arc::new(Mutex::new(0u64));
        let mut tasks: JoinSet<Result<CompletedPart, UploadError>> = JoinSet::new();
        let mut completed: Vec<CompletedPart> = Vec::with_capacity(parts as usize);
        let mut next = 0u64;
        let result: Result<(), UploadError> = async {
            while next < parts || !tasks.is_empty() {
                while next < parts && tasks.len() < self.max_concurrent_parts {
                    let offset = next * part_size;
                    let len = part_size.min(size - offset);
                    let number = (next + 1) as i32;
                    next += 1;
                    let this = self.clone();
                    let (path, key, upload_id) =
                        (file.path.clone(), file.key.clone(), upload_id.clone());
                    let (done, progress) = (done.clone(), progress.clone());
                    tasks.spawn(async move {
                        let body = ByteStream::read_from()
                            .path(&path)
                            .offset(offset)
                            .length(Length::Exact(len))
                            .build()
                            .await
                            .map_err(|e| UploadError {
                                message: format!("cannot read {}: {e}", path.display()),
                                transient: false,
                            })?;
                        let out = this
                            .client
                            .upload_part()
                            .bucket(&this.bucket)
                            .key(&key)
                            .upload_id(&upload_id)
                            .part_number(number)
                            .content_length(len as i64)
                            .body(body)
                            .send()
                            .await
                            .map_err(|e| this.classify(&format!("upload of part {number}"), e))?;
                        if let Ok(mut done) = done.lock() {
                            *done += len;
                            progress(*done, size);
                        }
                        Ok(CompletedPart::builder()
                            .part_number(number)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .build())
                    });
                }
                match tasks.join_next().await {
                    Some(Ok(Ok(part))) => completed.push(part),
                    Some(Ok(Err(e))) => return Err(e),
                    Some(Err(join)) => {
                        return Err(UploadError {
                            message: format!("S3 part upload task failed: {join}"),
                            transient: true,
                        })
                    }
                    None => {}
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tasks.abort_all();
            guard.armed = false;
            guard.abort_now().await;
            return Err(e);
        }
        completed.sort_by_key(|p| p.part_number());
        let complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&file.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await;
        guard.armed = false;
        if let Err(e) = complete {
            let err = self.classify("multipart upload completion", e);
            guard.abort_now().await;
            return Err(err);
        }
        Ok(UploadStats {
            bytes: size,
            parts: parts as u32,
            multipart: true,
        })
    }

    /// Turns an SDK error into an [`UploadError`] with a message a person can act on.
    fn classify<E>(&self, what: &str, err: SdkError<E>) -> UploadError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(what, &self.bucket, &self.endpoint, err)
    }
}

/// Aborts a multipart upload that did not complete, so its parts do not linger (and cost).
struct AbortGuard {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl AbortGuard {
    async fn abort_now(&self) {
        abort_multipart(&self.client, &self.bucket, &self.key, &self.upload_id).await;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, bucket, key, id) = (
                self.client.clone(),
                self.bucket.clone(),
                self.key.clone(),
                self.upload_id.clone(),
            );
            rt.spawn(async move { abort_multipart(&client, &bucket, &key, &id).await });
        }
    }
}

async fn abort_multipart(client: &aws_sdk_s3::Client, bucket: &str, key: &str, upload_id: &str) {
    if let Err(e) = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        warn!(key, upload_id, error = %DisplayErrorContext(&e), "could not abort a failed multipart upload (a bucket lifecycle rule for incomplete uploads cleans these up)");
    }
}

#[async_trait]
impl Uploader for S3Uploader {
    async fn upload(
        &self,
        file: &UploadFile,
        job_id: &JobId,
        progress: UploadProgressSink,
    ) -> Result<(), UploadError> {
        self.upload_with_stats(file, job_id, progress)
            .await
            .map(|_| ())
    }

    /// Signs a GET of `key`; `expires` is clamped to 1 s..=7 days.
    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String, UploadError> {
        let expires = expires.clamp(Duration::from_secs(1), MAX_PRESIGN);
        let presigning = PresigningConfig::expires_in(expires).map_err(|e| UploadError {
            message: format!("S3 presign: {e}"),
            transient: false,
        })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| self.classify("presign", e))?;
        Ok(req.uri().to_string())
    }
}

fn transient(message: String) -> UploadError {
    UploadError {
        message,
        transient: true,
    }
}

fn permanent(message: String) -> UploadError {
    UploadError {
        message,
        transient: false,
    }
}

fn classify<E>(what: &str, bucket: &str, endpoint: &str, err: SdkError<E>) -> UploadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let server = if endpoint.is_empty() {
        "S3".to_string()
    } else {
        format!("S3 at {endpoint}")
    };
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ConstructionFailure(_) => {
            permanent(format!("S3 {what}: could not build the request: {detail}"))
        }
        SdkError::TimeoutError(_) => transient(format!("S3 {what} timed out ({server})")),
        SdkError::DispatchFailure(d) => {
            let lower = detail.to_ascii_lowercase();
            if d.is_io() || d.is_timeout() {
                transient(format!("could not reach {server} ({what}): {detail}"))
            } else if lower.contains("credential") {
                permanent(format!(
                    "no S3 credentials: set s3.access_key_id and s3.secret_access_key, or \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile or role \
                     ({what}: {detail})"
                ))
            } else if d.is_user() {
                permanent(format!("S3 {what}: invalid request: {detail}"))
            } else {
                transient(format!("S3 {what} failed ({server}): {detail}"))
            }
        }
        _ => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().unwrap_or_default().to_string();
            let message = err.message().unwrap_or_default().to_string();
            let said = match (code.is_empty(), message.is_empty()) {
                (false, false) => format!("({code}): {message}"),
                (false, true) => format!("({code})"),
                (true, _) => match status {
                    Some(s) => format!("(HTTP {s})"),
                    None => format!(": {detail}"),
                },
            };
            const TRANSIENT_CODES: [&str; 10] = [
                "SlowDown",
                "Throttling",
                "ThrottlingException",
                "RequestLimitExceeded",
                "TooManyRequests",
                "RequestTimeout",
                "InternalError",
                "ServiceUnavailable",
                "OperationAborted",
                "RequestTimeTooSkewed",
            ];
            let is_transient = TRANSIENT_CODES.contains(&code.as_str())
                || matches!(status, Some(s) if s >= 500 || s == 429 || s == 408)
                || status.is_none();
            let message = match code.as_str() {
                "InvalidAccessKeyId"
                | "NotSignedUp"
                | "InvalidClientTokenId"
                | "InvalidToken"
                | "ExpiredToken"
                | "TokenRefreshRequired" => {
                    format!("S3 refused the credentials {said}")
                }
                "SignatureDoesNotMatch" => {
                    format!("S3 refused the credentials {said} (is the secret access key right?)")
                }
                "NoSuchBucket" => format!("S3 bucket '{bucket}' does not exist {said}"),
                "AccessDenied" | "AllAccessDisabled" => {
                    format!("S3 denied access to bucket '{bucket}' {said}")
                }
                _ if code.is_empty() && status == Some(403) => format!(
                    "S3 refused the request {said}: check the credentials and their rights on \
                     bucket '{bucket}'"
                ),
                _ if status == Some(404) && what == "bucket check" => {
                    format!("S3 bucket '{bucket}' does not exist {said}")
                }
                _ => format!("S3 {what} failed {said}"),
            };
            UploadError {
                message,
                transient: is_transient,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_env(pairs: &[(&str, &str)]) -> Result<crate::Config, Error> {
        crate::Config::load_with_env(
            None,
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn s3_config_defaults_and_env() {
        let c = s3_env(&[]).unwrap();
        assert!(!c.s3.enabled());
        assert_eq!(c.s3.region, "us-east-1");
        assert_eq!(c.s3.presign_expiry_secs, 604_800);
        assert_eq!(
            (
                c.s3.multipart_threshold_mb,
                c.s3.part_size_mb,
                c.s3.max_concurrent_parts
            ),
            (16, 8, 4)
        );
        assert_eq!((c.s3.max_retries, c.s3.retry_base_ms), (4, 500));
        assert!(!c.s3.delete_local_after_upload);
        let c = s3_env(&[
            ("VIDBUILDER_S3_BUCKET", "videos"),
            ("VIDBUILDER_S3_REGION", "eu-west-3"),
            ("VIDBUILDER_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("VIDBUILDER_S3_PREFIX", "prod"),
        ])
        .unwrap();
        assert!(c.s3.enabled());
        assert_eq!(
            (
                c.s3.bucket.as_str(),
                c.s3.region.as_str(),
                c.s3.endpoint.as_str(),
                c.s3.prefix.as_str()
            ),
            ("videos", "eu-west-3", "http://127.0.0.1:9000", "prod")
        );
    }

    #[test]
    fn s3_config_is_validated() {
        for (var, value, names) in [
            (
                "VIDBUILDER_S3_PRESIGN_EXPIRY_SECS",
                "604801",
                "presign_expiry_secs",
            ),
            (
                "VIDBUILDER_S3_PRESIGN_EXPIRY_SECS",
                "0",
                "presign_expiry_secs",
            ),
            ("VIDBUILDER_S3_PART_SIZE_MB", "4", "part_size_mb"),
            (
                "VIDBUILDER_S3_MAX_CONCURRENT_PARTS",
                "0",
                "max_concurrent_parts",
            ),
            ("VIDBUILDER_S3_ENDPOINT", "not a url", "endpoint"),
            (
                "VIDBUILDER_S3_ACCESS_KEY_ID",
                "only-the-key",
                "secret_access_key",
            ),
        ] {
            let e = s3_env(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(names), "{var}={value}: {e}");
        }
        assert!(s3_env(&[("VIDBUILDER_S3_PRESIGN_EXPIRY_SECS", "1")]).is_ok());
        assert!(s3_env(&[("VIDBUILDER_S3_PART_SIZE_MB", "5")]).is_ok());
    }

    fn service_error(status: u16, code: &str) -> UploadError {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::ErrorMetadata;
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_sdk_s3::primitives::SdkBody;
        let err = PutObjectError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("the server's words")
                .build(),
        );
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        classify(
            "upload",
            "vids",
            "http://s3",
            SdkError::service_error(err, raw),
        )
    }

    #[test]
    fn service_errors_are_classified_with_clear_messages() {
        for (status, code, transient, message) in [
            (
                403,
                "InvalidAccessKeyId",
                false,
                "S3 refused the credentials (InvalidAccessKeyId): the server's words",
            ),
            (
                403,
                "SignatureDoesNotMatch",
                false,
                "S3 refused the credentials (SignatureDoesNotMatch): the server's words (is the \
                 secret access key right?)",
            ),
            (
                404,
                "NoSuchBucket",
                false,
                "S3 bucket 'vids' does not exist (NoSuchBucket): the server's words",
            ),
            (
                403,
                "AccessDenied",
                false,
                "S3 denied access to bucket 'vids' (AccessDenied): the server's words",
            ),
            (
                400,
                "InvalidArgument",
                false,
                "S3 upload failed (InvalidArgument): the server's words",
            ),
            (
                503,
                "SlowDown",
                true,
                "S3 upload failed (SlowDown): the server's words",
            ),
            (
                500,
                "InternalError",
                true,
                "S3 upload failed (InternalError): the server's words",
            ),
            (
                400,
                "RequestTimeout",
                true,
                "S3 upload failed (RequestTimeout): the server's words",
            ),
            (
                429,
                "TooManyRequests",
                true,
                "S3 upload failed (TooManyRequests): the server's words",
            ),
        ] {
            let e = service_error(status, code);
            assert_eq!((e.transient, e.message.as_str()), (transient, message));
        }
    }

    #[tokio::test]
    async fn new_refuses_a_disabled_config() {
        let c = s3_env(&[]).unwrap();
        assert!(S3Uploader::new(&c.s3).await.is_err());
    }
}
