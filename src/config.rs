//! The one configuration struct, loaded from the embedded `config/default.toml`, an optional
//! file, the environment (`VIDBUILDER_*`, one variable per key, derived from the defaults so no
//! key is forgotten) and command-line flags, in that order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vidbuilder_net::parse_cidr;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::error::Error;

/// The shipped defaults, embedded so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The whole server configuration, one field per key of `config/default.toml` (see [`Config::load`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `bind` (`VIDBUILDER_BIND`): address the HTTP API listens on.
    pub bind: SocketAddr,
    /// `data_dir` (`VIDBUILDER_DATA_DIR`): where jobs' files and the job store live; created if missing.
    pub data_dir: PathBuf,
    /// `config_dir`: extra or overriding themes (`themes/*.toml`) and music (`music/catalog.toml`);
    /// empty: only the embedded ones (see [`Config::config_dir`]).
    pub config_dir: String,
    /// `max_concurrent_renders`: renders running at once; 0: one per two CPU cores (see [`Config::concurrency`]).
    pub max_concurrent_renders: usize,
    /// `max_queued_jobs`: jobs waiting beyond the running ones; more are refused with 429.
    pub max_queued_jobs: usize,
    /// `max_body_bytes`: largest accepted request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// `cors_origins`: origins browsers may call the API from (`*` for any); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// `log_format`: `"text"` or `"json"`.
    pub log_format: String,
    /// `retention_hours`: finished jobs (rows and files) are removed this many hours after they
    /// finish (fractions allowed); 0 keeps them forever.
    pub retention_hours: f64,
    /// `shutdown_grace_secs`: seconds running renders get to finish on SIGTERM/SIGINT before
    /// they are stopped and left to resume on the next start.
    pub shutdown_grace_secs: u64,
    /// `node_name` (`VIDBUILDER_NODE_NAME`): this node's name; empty: the host name (see
    /// [`Config::node_name`]).
    pub node_name: String,
    /// `[http]`: connection limits and timeouts of the HTTP server.
    pub http: HttpConfig,
    /// `[render]`: ffmpeg, encoding and render supervision.
    pub render: RenderConfig,
    /// `[images]`: scene image sources and size limits.
    pub images: ImagesConfig,
    /// `[webhook]`: webhook delivery, retries, SSRF allowances and signing.
    pub webhook: WebhookConfig,
    /// `[limits]`: limits on a job's spec.
    pub limits: LimitsConfig,
    /// `[auth]`: API keys and rate limits.
    pub auth: AuthConfig,
    /// `[s3]`: upload of finished videos to object storage.
    pub s3: S3Config,
    /// `[cluster]`: cluster mode (coordinator and workers).
    pub cluster: ClusterConfig,
}

/// `[http]`: how the HTTP server protects itself from slow and greedy clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `http.header_timeout_secs`: a connection must send a request's complete headers within
    /// this many seconds of opening (or of its previous answer, when kept alive), else it is closed.
    pub header_timeout_secs: f64,
    /// `http.body_timeout_secs`: a request's whole body must arrive within this many seconds of
    /// its headers (408 beyond).
    pub body_timeout_secs: f64,
    /// `http.max_connections`: open connections at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// `http.max_connections_per_ip`: open connections from one client address (one /64 for
    /// IPv6); more are answered 503 and closed.
    pub max_connections_per_ip: usize,
    /// `http.max_blocking_requests`: blocking requests (`POST /api/generate-flexible-video`)
    /// waiting at once; more are refused with 503 and Retry-After before anything is created.
    pub max_blocking_requests: usize,
    /// `http.blocking_timeout_secs`: the longest a blocking request waits for its video; then it
    /// is answered 202 with the job's id and status URL (the job goes on).
    pub blocking_timeout_secs: f64,
    /// `http.max_event_streams`: live progress streams (`GET /api/job-events/:jobId`) open at
    /// once; more are refused with 503 and Retry-After.
    pub max_event_streams: usize,
}

impl HttpConfig {
    fn check(&self) -> Result<(), Error> {
        for (key, v) in [
            ("http.header_timeout_secs", self.header_timeout_secs),
            ("http.body_timeout_secs", self.body_timeout_secs),
            ("http.blocking_timeout_secs", self.blocking_timeout_secs),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(Error::Config(format!(
                    "{key}: must be more than 0 and at most 86400 seconds"
                )));
            }
        }
        for (key, v) in [
            ("http.max_connections", self.max_connections),
            ("http.max_connections_per_ip", self.max_connections_per_ip),
            ("http.max_blocking_requests", self.max_blocking_requests),
            ("http.max_event_streams", self.max_event_streams),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("{key}: at least 1")));
            }
        }
        Ok(())
    }
}

/// `[cluster]`: render workers on other nodes. Off while `listen` (coordinator) and `join`
/// (worker) are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `cluster.listen` (`VIDBUILDER_CLUSTER_LISTEN`): where a coordinator accepts worker links.
    pub listen: String,
    /// `cluster.join` (`VIDBUILDER_CLUSTER_JOIN`): a worker's coordinator address.
    pub join: String,
    /// `cluster.cookie` (`VIDBUILDER_CLUSTER_COOKIE`): the shared secret.
    pub cookie: String,
    /// `cluster.cookie_file`: a file holding the shared secret (trailing whitespace ignored).
    pub cookie_file: String,
    /// `cluster.local_renders` (`VIDBUILDER_CLUSTER_LOCAL_RENDERS`): renders the coordinator
    /// runs itself; 0: none.
    pub local_renders: usize,
    /// `cluster.capacity`: a worker's renders at once; 0: one per two cores.
    pub capacity: u32,
    /// `cluster.heartbeat_interval_ms`: how often workers heartbeat.
    pub heartbeat_interval_ms: u64,
    /// `cluster.heartbeat_timeout_secs` (`VIDBUILDER_CLUSTER_HEARTBEAT_TIMEOUT_SECS`): a worker
    /// silent this long is lost.
    pub heartbeat_timeout_secs: u64,
    /// `cluster.rpc_timeout_secs`: deadline of one request between nodes.
    pub rpc_timeout_secs: u64,
    /// `cluster.keep_finished_secs`: a worker's unclaimed finished renders are deleted after this.
    pub keep_finished_secs: u64,
    /// `cluster.tls_cert`: this node's certificate chain (PEM).
    pub tls_cert: String,
    /// `cluster.tls_key`: this node's private key (PEM).
    pub tls_key: String,
    /// `cluster.tls_ca`: the CA that signs the other side's certificate (PEM).
    pub tls_ca: String,
    /// `cluster.tls_server_name`: the name a worker expects on the coordinator's certificate.
    pub tls_server_name: String,
}

impl ClusterConfig {
    /// The coordinator's listen address, when cluster mode is on for `serve`.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, Error> {
        match self.listen.trim() {
            "" => Ok(None),
            s => s.parse().map(Some).map_err(|e| {
                Error::Config(format!(
                    "cluster.listen: '{s}' is not an address like 0.0.0.0:4697: {e}"
                ))
            }),
        }
    }

    /// The shared secret: `cookie`, else the contents of `cookie_file`. An error when neither
    /// gives one (cluster mode refuses to start without it).
    pub fn cookie(&self) -> Result<String, Error> {
        if !self.cookie.trim().is_empty() {
            return Ok(self.cookie.trim().to_string());
        }
        if self.cookie_file.trim().is_empty() {
            return Err(Error::Config(
                "cluster mode needs a cookie: set cluster.cookie (VIDBUILDER_CLUSTER_COOKIE) or cluster.cookie_file".into(),
            ));
        }
        let text = std::fs::read_to_string(self.cookie_file.trim()).map_err(|e| {
            Error::Config(format!("cluster.cookie_file '{}': {e}", self.cookie_file))
        })?;
        let cookie = text.trim().to_string();
        if cookie.is_empty() {
            return Err(Error::Config(format!(
                "cluster.cookie_file '{}' is empty",
                self.cookie_file
            )));
        }
        Ok(cookie)
    }

    /// Whether TLS is configured for node links.
    pub fn tls(&self) -> bool {
        ![&self.tls_cert, &self.tls_key, &self.tls_ca]
            .iter()
            .all(|s| s.trim().is_empty())
    }

    fn check(&self) -> Result<(), Error> {
        self.listen_addr()?;
        if self.tls_cert.trim().is_empty() != self.tls_key.trim().is_empty() {
            return Err(Error::Config(
                "cluster.tls_cert and cluster.tls_key: give both or neither".into(),
            ));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_timeout_secs == 0 {
            return Err(Error::Config(
                "cluster.heartbeat_interval_ms and cluster.heartbeat_timeout_secs: at least 1"
                    .into(),
            ));
        }
        if self.heartbeat_interval_ms >= self.heartbeat_timeout_secs * 1000 / 2 {
            return Err(Error::Config(format!(
                "cluster.heartbeat_interval_ms ({}) must be under half of heartbeat_timeout_secs ({} s)",
                self.heartbeat_interval_ms, self.heartbeat_timeout_secs
            )));
        }
        if self.rpc_timeout_secs == 0 {
            return Err(Error::Config("cluster.rpc_timeout_secs: at least 1".into()));
        }
        Ok(())
    }
}

/// `[images]`: where scene images come from and how big they may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    /// Empty: `<data_dir>/assets`.
    pub assets_dir: String,
    /// `images.max_bytes`: largest image file or download, in bytes.
    pub max_bytes: u64,
    /// `images.max_video_bytes`: largest video clip file or download, in bytes.
    pub max_video_bytes: u64,
    /// `images.timeout_secs`: an image URL fetch (connect, answer and body) must finish within this many seconds.
    pub timeout_secs: u64,
    /// `images.connect_timeout_secs`: connect timeout of an image URL fetch, in seconds.
    pub connect_timeout_secs: u64,
    /// `images.max_redirects`: redirects followed for an image URL (each target SSRF-checked); 0 refuses them.
    pub max_redirects: usize,
    /// `images.max_pixels`: largest decoded image, in pixels in all (decompression-bomb guard).
    pub max_pixels: u64,
    /// `images.max_side`: largest decoded image width or height, in pixels.
    pub max_side: u32,
    /// `images.max_pixels_per_job`: decoded pixels one job's images may hold in all, once scaled
    /// to their drawn size.
    pub max_pixels_per_job: u64,
    /// `images.max_concurrent_per_job`: images of one job fetched or decoded at once.
    pub max_concurrent_per_job: usize,
    /// `images.max_fetches_per_host`: image fetches in flight to one host, across all jobs.
    pub max_fetches_per_host: usize,
    /// `images.max_concurrent_decodes`: image decodes at once across all jobs.
    pub max_concurrent_decodes: usize,
}

/// `[auth]`: API keys (none configured: the API is open) and per-key rate limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Plain API keys (`VIDBUILDER_AUTH_API_KEYS=k1,k2`).
    pub api_keys: Vec<String>,
    /// A file of `<sha256 hex of a key>  <name>  [revoked] [secret=whsec_…]` lines; empty: none.
    pub keys_file: String,
    /// Requests per minute per key (per client IP when open); 0: unlimited.
    pub rate_limit_per_minute: u32,
    /// Burst allowance; 0: the per-minute number.
    pub rate_limit_burst: u32,
    /// `auth.max_queued_per_key`: jobs one API key may have waiting; 0: no per-key limit.
    pub max_queued_per_key: usize,
}

/// Object storage (S3 and compatibles). Off while `bucket` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Empty: S3 is off.
    pub bucket: String,
    /// `s3.region`: the bucket's region; required when a bucket is set.
    pub region: String,
    /// Empty: AWS itself; else an S3-compatible server (path-style addressing is then used).
    pub endpoint: String,
    /// Prepended to every key, joined with one `/`.
    pub prefix: String,
    /// Both empty: the standard AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile, role).
    pub access_key_id: String,
    /// `s3.secret_access_key`: the static secret going with `access_key_id`; give both or neither.
    pub secret_access_key: String,
    /// `s3.presign_expiry_secs`: lifetime of presigned URLs, in seconds (1 to 604800).
    pub presign_expiry_secs: u64,
    /// `s3.multipart_threshold_mb`: files larger than this many MB (MiB) are uploaded in parts.
    pub multipart_threshold_mb: u64,
    /// `s3.part_size_mb`: size of one multipart part, in MB (MiB), 5 to 5120.
    pub part_size_mb: u64,
    /// `s3.max_concurrent_parts`: parts of one multipart upload in flight at once.
    pub max_concurrent_parts: usize,
    /// `s3.max_retries`: retries of a failed upload.
    pub max_retries: u32,
    /// `s3.retry_base_ms`: wait before the first upload retry, in milliseconds, doubled each time.
    pub retry_base_ms: u64,
    /// `s3.delete_local_after_upload`: remove the local file once it is in S3 (downloads then
    /// redirect to a presigned URL).
    pub delete_local_after_upload: bool,
}

impl S3Config {
    /// The longest a presigned URL may live (7 days; the SDK refuses more).
    pub const MAX_PRESIGN_SECS: u64 = 604_800;
    /// S3's smallest part of a multipart upload (all but the last), in MB.
    pub const MIN_PART_MB: u64 = 5;

    /// True when a bucket is configured.
    pub fn enabled(&self) -> bool {
        !self.bucket.trim().is_empty()
    }

    /// `presign_expiry_secs` as a [`Duration`].
    pub fn presign_expiry(&self) -> Duration {
        Duration::from_secs(self.presign_expiry_secs)
    }

    /// Refuses out-of-range values (expiry, part size, threshold, concurrency), half-given
    /// credentials, a non-http(s) endpoint and a bucket without a region, with [`Error::Config`].
    pub fn check(&self) -> Result<(), Error> {
        if !(1..=Self::MAX_PRESIGN_SECS).contains(&self.presign_expiry_secs) {
            return Err(Error::Config(format!(
                "s3.presign_expiry_secs: must be 1..={} (7 days)",
                Self::MAX_PRESIGN_SECS
            )));
        }
        if self.part_size_mb < Self::MIN_PART_MB {
            return Err(Error::Config(format!(
                "s3.part_size_mb: at least {} (S3's smallest part)",
                Self::MIN_PART_MB
            )));
        }
        if self.part_size_mb > 5 * 1024 {
            return Err(Error::Config("s3.part_size_mb: at most 5120 (5 GB)".into()));
        }
        if self.multipart_threshold_mb == 0 {
            return Err(Error::Config(
                "s3.multipart_threshold_mb: at least 1".into(),
            ));
        }
        if self.max_concurrent_parts == 0 {
            return Err(Error::Config("s3.max_concurrent_parts: at least 1".into()));
        }
        if self.access_key_id.trim().is_empty() != self.secret_access_key.trim().is_empty() {
            return Err(Error::Config(
                "s3.access_key_id and s3.secret_access_key: give both or neither".into(),
            ));
        }
        if !self.endpoint.trim().is_empty() {
            let url = url::Url::parse(self.endpoint.trim()).map_err(|e| {
                Error::Config(format!(
                    "s3.endpoint: '{}' is not a URL: {e}",
                    self.endpoint
                ))
            })?;
            if !["http", "https"].contains(&url.scheme()) {
                return Err(Error::Config(
                    "s3.endpoint: http:// or https:// only".into(),
                ));
            }
        }
        if self.enabled() && self.region.trim().is_empty() {
            return Err(Error::Config(
                "s3.region: required when s3.bucket is set".into(),
            ));
        }
        Ok(())
    }
}

/// `[render]`: the ffmpeg encoder and how failed or stalled renders are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    /// `render.ffmpeg`: the ffmpeg executable (a name looked up in `PATH`, or a path).
    pub ffmpeg: PathBuf,
    /// `render.preset`: x264 preset, `ultrafast` … `veryslow`.
    pub preset: String,
    /// `render.crf`: x264 constant rate factor, 0..=51 (lower: better quality, bigger files).
    pub crf: u8,
    /// `render.stall_timeout_secs`: a render reporting no progress this many seconds is killed and retried.
    pub stall_timeout_secs: u64,
    /// `render.max_restarts`: retries of a failed, crashed or stalled render within `restart_window_secs`.
    pub max_restarts: u32,
    /// `render.max_interrupted_attempts`: a job whose attempts this many crashes of the server
    /// interrupted fails instead of running again (a graceful drain does not count); at least 1.
    pub max_interrupted_attempts: u32,
    /// `render.restart_window_secs`: the window, in seconds, that `max_restarts` counts in.
    pub restart_window_secs: u64,
    /// `render.restart_backoff_secs`: wait before the first retry, in seconds, doubled each time.
    pub restart_backoff_secs: f64,
}

/// `[webhook]`: webhook delivery, retries, the SSRF guard's allowances and signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `webhook.retry_schedule`: seconds to wait before each retry of a failed delivery (at most 20).
    pub retry_schedule: Vec<u64>,
    /// `webhook.timeout_secs`: whole-request timeout of one delivery attempt, in seconds.
    pub timeout_secs: u64,
    /// `webhook.connect_timeout_secs`: connect timeout of one delivery attempt, in seconds.
    pub connect_timeout_secs: u64,
    /// `webhook.max_in_flight`: most deliveries in flight at once.
    pub max_in_flight: usize,
    /// `webhook.max_per_host`: most deliveries in flight at once to one host.
    pub max_per_host: usize,
    /// `webhook.max_retry_after_secs`: longest Retry-After a receiver may ask for, in seconds; longer asks are clamped.
    pub max_retry_after_secs: u64,
    /// `webhook.redelivery_cooldown_secs`: least time between two manual redeliveries of one
    /// job; sooner is `429` with `Retry-After`.
    pub redelivery_cooldown_secs: f64,
    /// `webhook.allow_cidrs`: CIDRs webhook and image fetch targets may use even when private or loopback.
    pub allow_cidrs: Vec<String>,
    /// `whsec_…` signing secret; empty: generated once into `<data_dir>/webhook-secret`.
    pub secret: String,
}

/// `[limits]`: limits on what a job's spec may ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// `limits.max_scenes`: most scenes in one video.
    pub max_scenes: usize,
    /// `limits.max_scene_seconds`: longest scene, in seconds.
    pub max_scene_seconds: f64,
    /// `limits.max_total_seconds`: longest video, in seconds.
    pub max_total_seconds: f64,
    /// `limits.max_text_chars`: most characters per text field.
    pub max_text_chars: usize,
    /// Longest URL a spec may carry (webhook, image sources), in bytes.
    pub max_url_chars: usize,
    /// `limits.max_work_megapixels`: most work one job may ask for, in megapixel-frames (frames
    /// × pixels, the reel's counted too).
    pub max_work_megapixels: u64,
    /// Deepest array/object nesting of a request body (400 beyond; at least 4).
    pub max_json_depth: usize,
    /// `limits.max_batch_jobs`: most jobs one `POST /api/batch` may create (at least 1).
    pub max_batch_jobs: usize,
    /// `limits.max_templates_per_key`: most templates one API key may keep.
    pub max_templates_per_key: usize,
}

impl Config {
    /// The SSRF guard of `webhook.allow_cidrs` (webhook deliveries and image fetches).
    pub fn ssrf_guard(&self) -> Result<vidbuilder_net::SsrfGuard, Error> {
        vidbuilder_net::SsrfGuard::new(&self.webhook.allow_cidrs)
            .map_err(|e| Error::Config(format!("webhook.allow_cidrs: {e}")))
    }

    /// The directory scenes' image files are read from.
    pub fn assets_dir(&self) -> PathBuf {
        match self.images.assets_dir.trim() {
            "" => self.data_dir.join("assets"),
            dir => PathBuf::from(dir),
        }
    }

    /// The HTTP-facing settings' checks (part of [`Config::check`]).
    fn check_http(&self) -> Result<(), Error> {
        for origin in &self.cors_origins {
            let o = origin.trim();
            let ok = o == "*"
                || url::Url::parse(o).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.path() == "/"
                        && !o.ends_with('/')
                        && u.query().is_none()
                });
            if !ok {
                return Err(Error::Config(format!(
                    "cors_origins: '{o}' is not an origin like https://app.example.com (or \"*\")"
                )));
            }
        }
        if self.limits.max_json_depth < 4 {
            return Err(Error::Config(
                "limits.max_json_depth must be at least 4 (a spec nests 4 deep)".into(),
            ));
        }
        if !(1..=10_000).contains(&self.limits.max_batch_jobs) {
            return Err(Error::Config(
                "limits.max_batch_jobs must be 1 to 10000".into(),
            ));
        }
        Ok(())
    }

    /// Defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Error> {
        Config::load_with_env(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Error> {
        let defaults: Table = DEFAULT_TOML
            .parse()
            .map_err(|e| Error::Config(format!("embedded defaults: {e}")))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
            let table: Table = text
                .parse()
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            merge(&mut merged, table);
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("VIDBUILDER_"))
            .collect();
        // Short names documented for simple setups; the derived name wins when both are set.
        for (alias, canonical) in ENV_ALIASES {
            let aliased = env.iter().find(|(k, _)| k == alias).map(|(_, v)| v.clone());
            if let Some(v) = aliased.filter(|_| !env.iter().any(|(k, _)| k == canonical)) {
                env.push((canonical.to_string(), v));
            }
        }
        let known: Vec<String> = leaves(&defaults).iter().map(|(p, _)| env_name(p)).collect();
        if let Some((bad, _)) = env.iter().find(|(k, _)| {
            !known.contains(k)
                && !OTHER_ENV.contains(&k.as_str())
                && !ENV_ALIASES.iter().any(|(a, _)| a == k)
        }) {
            return Err(Error::Config(unknown_var(bad, &known)));
        }
        for (path, default) in leaves(&defaults) {
            let var = env_name(&path);
            if let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) {
                let value = parse_env(raw, &default)
                    .map_err(|e| Error::Config(format!("{var}={raw:?}: {e}")))?;
                set(&mut merged, &path, value);
            }
        }
        let config: Config = Value::Table(merged)
            .try_into()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Every environment variable the config reads, with its key path (`webhook.retry_schedule`).
    pub fn env_vars() -> Vec<(String, String)> {
        let defaults: Table = DEFAULT_TOML.parse().expect("embedded defaults parse");
        leaves(&defaults)
            .into_iter()
            .map(|(p, _)| (env_name(&p), p.join(".")))
            .collect()
    }

    fn check(&self) -> Result<(), Error> {
        self.check_http()?;
        self.http.check()?;
        if self.webhook.retry_schedule.len() > 20 {
            return Err(Error::Config(
                "webhook.retry_schedule: at most 20 retries".into(),
            ));
        }
        let c = self.webhook.redelivery_cooldown_secs;
        if !(c.is_finite() && (0.0..=86_400.0).contains(&c)) {
            return Err(Error::Config(
                "webhook.redelivery_cooldown_secs: 0 to 86400 seconds".into(),
            ));
        }
        if self.render.max_interrupted_attempts == 0 {
            return Err(Error::Config(
                "render.max_interrupted_attempts: at least 1".into(),
            ));
        }
        if self.render.crf > 51 {
            return Err(Error::Config("render.crf: must be 0..=51".into()));
        }
        const PRESETS: [&str; 9] = [
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        ];
        if !PRESETS.contains(&self.render.preset.as_str()) {
            return Err(Error::Config(format!(
                "render.preset: unknown preset '{}'",
                self.render.preset
            )));
        }
        if !["text", "json"].contains(&self.log_format.as_str()) {
            return Err(Error::Config("log_format: \"text\" or \"json\"".into()));
        }
        if !self.webhook.secret.trim().is_empty() {
            vidbuilder_actors::signing::WebhookSecret::parse(&self.webhook.secret)
                .map_err(|e| Error::Config(format!("webhook.secret: {e}")))?;
        }
        for cidr in &self.webhook.allow_cidrs {
            parse_cidr(cidr).ok_or_else(|| {
                Error::Config(format!(
                    "webhook.allow_cidrs: '{cidr}' is not a CIDR like 127.0.0.0/8"
                ))
            })?;
        }
        self.s3.check()?;
        self.cluster.check()?;
        if self.cluster.listen_addr()?.is_some() {
            // Refuse to start a coordinator without its secret.
            self.cluster.cookie()?;
        }
        Ok(())
    }

    /// This node's name: `node_name`, else the host name, else `"vidbuilder"`.
    pub fn node_name(&self) -> String {
        let configured = self.node_name.trim();
        if !configured.is_empty() {
            return configured.to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "vidbuilder".into())
    }

    /// Renders at once: configured, or one per two cores.
    pub fn concurrency(&self) -> usize {
        if self.max_concurrent_renders > 0 {
            return self.max_concurrent_renders;
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        (cores / 2).max(1)
    }

    /// `webhook.retry_schedule` as durations: the wait before each delivery retry.
    pub fn retry_schedule(&self) -> Vec<Duration> {
        self.webhook
            .retry_schedule
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect()
    }

    /// The `config_dir` of extra themes and music; `None` when the key is empty.
    pub fn config_dir(&self) -> Option<&Path> {
        (!self.config_dir.is_empty()).then(|| Path::new(&self.config_dir))
    }

    /// The effective configuration as TOML (empty if it cannot be serialized).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// Extra environment names: (alias, the variable it stands for).
const ENV_ALIASES: [(&str, &str); 1] = [("VIDBUILDER_API_KEYS", "VIDBUILDER_AUTH_API_KEYS")];

/// `VIDBUILDER_*` variables that are not settings but are read elsewhere: the log filter, the
/// config file's path, the CLI client's server and key, the test harnesses'.
const OTHER_ENV: [&str; 8] = [
    "VIDBUILDER_LOG",
    "VIDBUILDER_CONFIG",
    "VIDBUILDER_SERVER",
    "VIDBUILDER_API_KEY",
    "VIDBUILDER_URL",
    "VIDBUILDER_BLESS",
    "VIDBUILDER_S3_TEST_CHILD",
    "VIDBUILDER_S3_TEST_ENDPOINT",
];

/// The error for a `VIDBUILDER_*` variable that names no setting: a typo would otherwise be
/// ignored silently. Suggests the closest setting.
fn unknown_var(var: &str, known: &[String]) -> String {
    let closest = known
        .iter()
        .map(|k| (strsim::levenshtein(var, k), k))
        .min()
        .filter(|(d, _)| *d <= 4);
    match closest {
        Some((_, k)) => format!(
            "{var} is not a setting; did you mean {k}? (`vidbuilder config` lists them all)"
        ),
        None => format!("{var} is not a setting (`vidbuilder config` lists them all)"),
    }
}

fn env_name(path: &[String]) -> String {
    format!("VIDBUILDER_{}", path.join("_").to_ascii_uppercase())
}

fn leaves(table: &Table) -> Vec<(Vec<String>, Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            Value::Table(t) => {
                for (mut p, v) in leaves(t) {
                    p.insert(0, k.clone());
                    out.push((p, v));
                }
            }
            v => out.push((vec![k.clone()], v.clone())),
        }
    }
    out
}

fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set(table: &mut Table, path: &[String], value: Value) {
    match path {
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            if let Some(Value::Table(t)) = table.get_mut(first) {
                set(t, rest, value);
            }
        }
        [] => {}
    }
}

/// Parses an environment value as the type its default has.
fn parse_env(raw: &str, like: &Value) -> Result<Value, String> {
    let raw = raw.trim();
    Ok(match like {
        Value::String(_) => Value::String(raw.to_string()),
        Value::Integer(_) => Value::Integer(raw.parse().map_err(|_| "expected a whole number")?),
        Value::Float(_) => Value::Float(raw.parse().map_err(|_| "expected a number")?),
        Value::Boolean(_) => Value::Boolean(match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err("expected true or false".into()),
        }),
        Value::Array(items) => {
            let elem = items
                .first()
                .cloned()
                .unwrap_or(Value::String(String::new()));
            let parts = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
            Value::Array(
                parts
                    .map(|p| parse_env(p, &elem))
                    .collect::<Result<_, _>>()?,
            )
        }
        other => return Err(format!("unsupported type {}", other.type_str())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.webhook.retry_schedule, vec![30, 120, 300]);
        assert_eq!(c.render.preset, "veryfast");
        assert!(c.concurrency() >= 1);
    }

    #[test]
    fn every_key_has_an_env_var_and_the_named_ones_work() {
        let vars = Config::env_vars();
        for v in [
            "VIDBUILDER_BIND",
            "VIDBUILDER_DATA_DIR",
            "VIDBUILDER_WEBHOOK_RETRY_SCHEDULE",
            "VIDBUILDER_WEBHOOK_ALLOW_CIDRS",
            "VIDBUILDER_RENDER_CRF",
            "VIDBUILDER_LIMITS_MAX_SCENES",
        ] {
            assert!(vars.iter().any(|(n, _)| n == v), "{v} missing");
        }
        let c = Config::load_with_env(
            None,
            env(&[
                ("VIDBUILDER_BIND", "0.0.0.0:9999"),
                ("VIDBUILDER_DATA_DIR", "/tmp/x"),
                ("VIDBUILDER_WEBHOOK_RETRY_SCHEDULE", "1, 2,3"),
                ("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "127.0.0.0/8,::1/128"),
                ("VIDBUILDER_LIMITS_MAX_SCENE_SECONDS", "12.5"),
                ("VIDBUILDER_MAX_CONCURRENT_RENDERS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9999");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            c.retry_schedule(),
            vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3)
            ]
        );
        assert_eq!(c.webhook.allow_cidrs, vec!["127.0.0.0/8", "::1/128"]);
        assert_eq!(c.limits.max_scene_seconds, 12.5);
        assert_eq!(c.concurrency(), 3);
    }

    #[test]
    fn vidbuilder_api_keys_is_an_alias_of_auth_api_keys() {
        let c = Config::load_with_env(None, env(&[("VIDBUILDER_API_KEYS", "k1,k2")])).unwrap();
        assert_eq!(c.auth.api_keys, vec!["k1", "k2"]);
        let c = Config::load_with_env(
            None,
            env(&[
                ("VIDBUILDER_API_KEYS", "k1"),
                ("VIDBUILDER_AUTH_API_KEYS", "k3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.api_keys, vec!["k3"]);
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let e = Config::load_with_env(None, env(&[("VIDBUILDER_RENDER_CRF", "abc")])).unwrap_err();
        assert!(e.to_string().contains("VIDBUILDER_RENDER_CRF"), "{e}");
        let e = Config::load_with_env(None, env(&[("VIDBUILDER_WEBHOOK_ALLOW_CIDRS", "nonsense")]))
            .unwrap_err();
        assert!(e.to_string().contains("allow_cidrs"), "{e}");
    }

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "max_queued_jobs = 7\n[webhook]\ntimeout_secs = 2\n").unwrap();
        let c = Config::load_with_env(Some(&f), env(&[])).unwrap();
        assert_eq!(
            (
                c.max_queued_jobs,
                c.webhook.timeout_secs,
                c.webhook.connect_timeout_secs
            ),
            (7, 2, 5)
        );
        std::fs::write(&f, "max_queued_jobz = 7\n").unwrap();
        let e = Config::load_with_env(Some(&f), env(&[])).unwrap_err();
        assert!(e.to_string().contains("max_queued_jobz"), "{e}");
    }

    #[test]
    fn a_variable_that_names_no_setting_is_refused_with_a_suggestion() {
        let e = Config::load_with_env(None, env(&[("VIDBUILDER_HTTP_MAX_CONECTIONS", "9")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("VIDBUILDER_HTTP_MAX_CONECTIONS")
                && e.contains("VIDBUILDER_HTTP_MAX_CONNECTIONS"),
            "{e}"
        );
        let e = Config::load_with_env(None, env(&[("VIDBUILDER_NOTHING_LIKE_IT_AT_ALL", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a setting"), "{e}");
        // Variables read elsewhere are not settings, and not errors.
        Config::load_with_env(
            None,
            env(&[("VIDBUILDER_LOG", "debug"), ("VIDBUILDER_SERVER", "x")]),
        )
        .unwrap();
    }
}
