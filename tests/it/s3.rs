//! The S3 uploader against a real S3-compatible server that verifies signatures (`s3s-fs`, see
//! `tests/it/common/s3.rs`): uploads, presigned URLs fetched with a plain HTTP client, multipart,
//! credentials, and an outage.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use vidbuilder::config::S3Config;
use vidbuilder::s3::{object_key, ObjectKind, S3Uploader};
use vidbuilder::Config;
use vidbuilder_actors::ports::{UploadFile, UploadProgressSink, Uploader};
use vidbuilder_domain::job::JobId;

use crate::common::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

const BUCKET: &str = "videos";

fn s3_config(server: &S3Server, extra: &[(&str, &str)]) -> S3Config {
    let mut env: Vec<(String, String)> = server.env();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    Config::load_with_env(None, env).unwrap().s3
}

async fn uploader(server: &S3Server, extra: &[(&str, &str)]) -> S3Uploader {
    S3Uploader::new(&s3_config(server, extra)).await.unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so a file does not compress or repeat.
fn write_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).unwrap();
    data
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn no_progress() -> UploadProgressSink {
    Arc::new(|_, _| {})
}

/// A progress sink that records every report.
type Reports = Arc<Mutex<Vec<(u64, u64)>>>;

fn recording() -> (UploadProgressSink, Reports) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (
        Arc::new(move |done, total| s.lock().unwrap().push((done, total))),
        seen,
    )
}

fn mp4(dir: &Path, name: &str, job: &JobId, len: usize, seed: u64) -> (UploadFile, Vec<u8>) {
    let path = dir.join(name);
    let data = write_file(&path, len, seed);
    let key = object_key(
        "",
        &vidbuilder_domain::job::timestamp(chrono::Utc::now()),
        ObjectKind::Standard,
        job,
    );
    let file = UploadFile {
        path,
        key,
        content_type: "video/mp4".into(),
    };
    (file, data)
}

async fn get(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    (status, ct, res.bytes().await.unwrap().to_vec())
}

/// Changes one character of the `X-Amz-Signature` query value.
fn tamper(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").expect("a presigned URL") + "X-Amz-Signature=".len();
    let mut bytes = url.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_small_file_uploads_and_its_presigned_url_serves_the_same_bytes() {
    let server = S3Server::start(BUCKET);
    let up = uploader(&server, &[("VIDBUILDER_S3_PREFIX", "prod/")]).await;
    up.check_bucket().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let (mut file, data) = mp4(tmp.path(), "v.mp4", &job, 300_000, 1);
    file.key = object_key(
        "prod/",
        &vidbuilder_domain::job::timestamp(chrono::Utc::now()),
        ObjectKind::Standard,
        &job,
    );
    assert!(file.key.starts_with("prod/videos/"), "{}", file.key);

    let (progress, seen) = recording();
    let stats = up.upload_with_stats(&file, &job, progress).await.unwrap();
    assert_eq!(
        (stats.bytes, stats.parts, stats.multipart),
        (300_000, 1, false)
    );
    assert_eq!(seen.lock().unwrap().last(), Some(&(300_000, 300_000)));

    // The object is where the key says, with its content type and the job id.
    let info = up.head(&file.key).await.unwrap();
    assert_eq!(info.content_length, 300_000);
    assert_eq!(info.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(info.job_id.as_deref(), Some(job.as_str()));

    // A plain HTTP client gets the same bytes through the presigned URL, good for 7 days.
    let url = up
        .presign_get(&file.key, Duration::from_secs(604_800))
        .await
        .unwrap();
    assert!(
        url.starts_with(&format!("{}/{BUCKET}/prod/videos/", server.endpoint)),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=604800"), "{url}");
    let (status, ct, body) = get(&url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct.as_deref(), Some("video/mp4"));
    assert_eq!(sha256(&body), sha256(&data));

    // One changed character of the signature: refused.
    let (status, _, body) = get(&tamper(&url)).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Longer than 7 days is clamped, not refused.
    let url = up
        .presign_get(&file.key, Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert!(url.contains("X-Amz-Expires=604800"), "{url}");

    // Uploading the same key again replaces the object.
    let data2 = write_file(&file.path, 1000, 2);
    up.upload(&file, &job, no_progress()).await.unwrap();
    let (status, _, body) = get(&up
        .presign_get(&file.key, Duration::from_secs(60))
        .await
        .unwrap())
    .await;
    assert_eq!((status, sha256(&body)), (200, sha256(&data2)));
}

#[tokio::test]
async fn an_expired_presigned_url_is_refused() {
    let server = S3Server::start(BUCKET);
    let up = uploader(&server, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let (file, _) = mp4(tmp.path(), "v.mp4", &job, 1000, 3);
    up.upload(&file, &job, no_progress()).await.unwrap();
    let url = up
        .presign_get(&file.key, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = get(&url).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn a_large_file_goes_up_in_concurrent_parts_and_round_trips() {
    let server = S3Server::start(BUCKET);
    // The defaults: multipart above 16 MB, 8 MB parts, 4 at once.
    let up = uploader(&server, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let len = 40 * 1024 * 1024 + 12_345;
    let (file, data) = mp4(tmp.path(), "big.mp4", &job, len, 4);

    let (progress, seen) = recording();
    let stats = up.upload_with_stats(&file, &job, progress).await.unwrap();
    assert!(stats.multipart);
    assert_eq!((stats.bytes, stats.parts), (len as u64, 6));

    // Progress: starts at 0, one report per part, never goes back, ends at the total.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first(), Some(&(0, len as u64)));
    assert_eq!(seen.last(), Some(&(len as u64, len as u64)));
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert!(seen.iter().all(|(_, total)| *total == len as u64));
    assert!(seen.len() >= 7, "{seen:?}");

    let info = up.head(&file.key).await.unwrap();
    assert_eq!(info.content_length, len as u64);
    assert_eq!(info.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(info.job_id.as_deref(), Some(job.as_str()));

    let url = up
        .presign_get(&file.key, Duration::from_secs(600))
        .await
        .unwrap();
    let (status, _, body) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), len);
    assert_eq!(sha256(&body), sha256(&data));
}

#[tokio::test]
async fn wrong_credentials_and_a_missing_bucket_are_permanent_with_clear_messages() {
    let server = S3Server::start(BUCKET);
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let (file, _) = mp4(tmp.path(), "v.mp4", &job, 1000, 5);

    let up = uploader(
        &server,
        &[("VIDBUILDER_S3_SECRET_ACCESS_KEY", "not-the-secret")],
    )
    .await;
    let e = up.upload(&file, &job, no_progress()).await.unwrap_err();
    assert!(!e.transient, "{e:?}");
    assert!(
        e.message
            .starts_with("S3 refused the credentials (SignatureDoesNotMatch)"),
        "{e:?}"
    );

    let up = uploader(&server, &[("VIDBUILDER_S3_ACCESS_KEY_ID", "nobody")]).await;
    let e = up.upload(&file, &job, no_progress()).await.unwrap_err();
    assert!(!e.transient, "{e:?}");
    assert!(
        e.message.starts_with("S3 refused the credentials ("),
        "{e:?}"
    );

    // Multipart with bad credentials fails at the start, as clearly.
    let (big, _) = mp4(tmp.path(), "big.mp4", &job, 17 * 1024 * 1024, 6);
    let e = up.upload(&big, &job, no_progress()).await.unwrap_err();
    assert!(!e.transient, "{e:?}");
    assert!(
        e.message.starts_with("S3 refused the credentials ("),
        "{e:?}"
    );

    // A missing bucket: the start-up check says so. (s3s-fs, unlike S3, creates a bucket's
    // directory on PUT, so the NoSuchBucket of a PUT is covered by the unit tests of src/s3.rs.)
    let up = uploader(&server, &[("VIDBUILDER_S3_BUCKET", "no-such-bucket")]).await;
    let e = up.check_bucket().await.unwrap_err();
    assert!(!e.transient, "{e:?}");
    assert!(
        e.message
            .starts_with("S3 bucket 'no-such-bucket' does not exist ("),
        "{e:?}"
    );
    // Wrong credentials fail the start-up check too.
    let up = uploader(
        &server,
        &[("VIDBUILDER_S3_SECRET_ACCESS_KEY", "not-the-secret")],
    )
    .await;
    let e = up.check_bucket().await.unwrap_err();
    assert!(!e.transient, "{e:?}");
    assert!(e.message.starts_with("S3 refused the "), "{e:?}");
}

#[tokio::test]
async fn a_stopped_server_is_a_transient_error_and_a_restarted_one_works() {
    let mut server = S3Server::start(BUCKET);
    let up = uploader(&server, &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let (file, data) = mp4(tmp.path(), "v.mp4", &job, 200_000, 7);
    up.upload(&file, &job, no_progress()).await.unwrap();

    server.stop();
    let started = std::time::Instant::now();
    let e = up.upload(&file, &job, no_progress()).await.unwrap_err();
    assert!(e.transient, "{e:?}");
    assert!(e.message.contains("could not reach"), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let (big, _) = mp4(tmp.path(), "big.mp4", &job, 17 * 1024 * 1024, 8);
    let e = up.upload(&big, &job, no_progress()).await.unwrap_err();
    assert!(e.transient, "{e:?}");

    server.start_again();
    let data2 = write_file(&file.path, 150_000, 9);
    up.upload(&file, &job, no_progress()).await.unwrap();
    let url = up
        .presign_get(&file.key, Duration::from_secs(60))
        .await
        .unwrap();
    let (status, _, body) = get(&url).await;
    assert_eq!(status, 200);
    assert_ne!(sha256(&body), sha256(&data));
    assert_eq!(sha256(&body), sha256(&data2));
}

/// Runs the test named `name` of this module in a child process with `env` (the AWS credential
/// chain reads the process environment, which tests must not change under each other).
fn run_child(name: &str, env: &[(&str, &str)]) {
    // The test's full name in this binary: this module's path without the crate's name.
    let full = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &full, "--nocapture", "--test-threads=1"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("VIDBUILDER_S3_TEST_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run:\n{text}");
}

#[test]
fn credentials_come_from_the_standard_aws_environment_when_the_config_has_none() {
    let server = S3Server::start(BUCKET);
    let endpoint = server.endpoint.clone();
    run_child(
        "child_env_credentials",
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("VIDBUILDER_S3_TEST_ENDPOINT", endpoint.as_str()),
        ],
    );
    run_child(
        "child_no_credentials",
        &[("VIDBUILDER_S3_TEST_ENDPOINT", endpoint.as_str())],
    );
}

fn child_config() -> Option<S3Config> {
    std::env::var_os("VIDBUILDER_S3_TEST_CHILD")?;
    let endpoint = std::env::var("VIDBUILDER_S3_TEST_ENDPOINT").unwrap();
    let c = Config::load_with_env(
        None,
        vec![
            ("VIDBUILDER_S3_BUCKET".to_string(), BUCKET.to_string()),
            ("VIDBUILDER_S3_ENDPOINT".to_string(), endpoint),
        ],
    )
    .unwrap();
    assert!(c.s3.access_key_id.is_empty() && c.s3.secret_access_key.is_empty());
    Some(c.s3)
}

#[tokio::test]
async fn child_env_credentials() {
    let Some(cfg) = child_config() else { return };
    let up = S3Uploader::new(&cfg).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let (file, data) = mp4(tmp.path(), "v.mp4", &job, 5000, 10);
    up.upload(&file, &job, no_progress()).await.unwrap();
    let (status, _, body) = get(&up
        .presign_get(&file.key, Duration::from_secs(60))
        .await
        .unwrap())
    .await;
    assert_eq!((status, sha256(&body)), (200, sha256(&data)));
}

#[tokio::test]
async fn child_no_credentials() {
    let Some(cfg) = child_config() else { return };
    let up = S3Uploader::new(&cfg).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let job = JobId::new();
    let (file, _) = mp4(tmp.path(), "v.mp4", &job, 5000, 11);
    let e = up.upload(&file, &job, no_progress()).await.unwrap_err();
    assert!(!e.transient, "{e:?}");
    assert!(e.message.starts_with("no S3 credentials"), "{e:?}");
}
