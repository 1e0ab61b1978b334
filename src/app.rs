//! Wiring: builds the adapters from the config, starts the actor tree and the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vidbuilder_actors::manager::{
    JobManager, JobManagerArgs, JobManagerMsg, JobViews, ManagerSettings,
};
use vidbuilder_actors::webhook::{WebhookActor, WebhookArgs, WebhookMsg, WebhookSettings};
use vidbuilder_domain::spec::SpecLimits;
use vidbuilder_domain::ValidationContext;

use crate::config::Config;
use crate::error::Error;
use crate::http::limits::RateLimits;
use crate::http::{router, AppState, RouterOptions};
use crate::render_port::RenderPort;
use crate::s3::S3Uploader;
use crate::store::SqliteStore;
use crate::webhook_client::HttpWebhookTransport;
use vidbuilder_actors::ports::Uploader;
use vidbuilder_actors::upload::UploadSettings;
use vidbuilder_domain::store::JobStore;
use vidbuilder_render::{check_ffmpeg, Catalog, FfmpegRenderer, RenderSettings};

/// The validation context for a catalog and config.
pub fn validation_context(catalog: &Catalog, config: &Config) -> ValidationContext {
    let themes = catalog.theme_names();
    let default_theme = if themes.contains("corporate") {
        "corporate".to_string()
    } else {
        themes.iter().next().cloned().unwrap_or_default()
    };
    ValidationContext {
        themes,
        tracks: catalog.track_ids(),
        default_theme,
        fonts: catalog.font_families(),
        limits: SpecLimits {
            max_scenes: config.limits.max_scenes,
            max_scene_seconds: config.limits.max_scene_seconds,
            max_total_seconds: config.limits.max_total_seconds,
            max_text_chars: config.limits.max_text_chars,
            max_url_chars: config.limits.max_url_chars,
            max_work_megapixels: config.limits.max_work_megapixels,
        },
    }
}

/// The renderer's settings from `[render]`, `[images]` and `data_dir` (scratch files in `<data_dir>/work`).
pub fn render_settings(config: &Config, ssrf: Arc<vidbuilder_net::SsrfGuard>) -> RenderSettings {
    let i = &config.images;
    RenderSettings {
        ffmpeg: config.render.ffmpeg.clone(),
        preset: config.render.preset.clone(),
        crf: config.render.crf,
        work_dir: config.data_dir.join("work"),
        images: vidbuilder_render::image::ImageSettings {
            assets_dir: Some(config.assets_dir()),
            max_bytes: i.max_bytes,
            max_video_bytes: i.max_video_bytes,
            timeout: Duration::from_secs(i.timeout_secs.max(1)),
            connect_timeout: Duration::from_secs(i.connect_timeout_secs.max(1)),
            max_redirects: i.max_redirects,
            max_pixels: i.max_pixels,
            max_side: i.max_side,
            ssrf,
            max_pixels_per_job: i.max_pixels_per_job,
            max_concurrent_per_job: i.max_concurrent_per_job,
            hosts: vidbuilder_render::image::HostLimits::new(i.max_fetches_per_host),
            decodes: Arc::new(tokio::sync::Semaphore::new(i.max_concurrent_decodes.max(1))),
        },
    }
}

/// How uploads retry and how long signed URLs last, from `[s3]`.
pub fn upload_settings(config: &Config) -> UploadSettings {
    UploadSettings {
        max_retries: config.s3.max_retries,
        retry_base: Duration::from_millis(config.s3.retry_base_ms),
        presign_expiry: config.s3.presign_expiry(),
    }
}

/// A running server: its address, the actors, and a way to stop it.
pub struct Server {
    /// The address the HTTP API is bound to (the real port when `bind` asked for port 0).
    pub addr: SocketAddr,
    /// The JobManager actor that admits, runs and tracks jobs.
    pub manager: ActorRef<JobManagerMsg>,
    /// The webhook delivery actor.
    pub webhooks: ActorRef<WebhookMsg>,
    /// The JobManager's live snapshots of every known job, by id.
    pub views: JobViews,
    shutdown: Option<oneshot::Sender<()>>,
    /// Set true at stop: live progress streams end before the HTTP server waits for requests.
    closing: tokio::sync::watch::Sender<bool>,
    /// The dependency probes (readiness), stopped at stop.
    probe_task: JoinHandle<()>,
    http: JoinHandle<()>,
    grace: Duration,
}

impl Server {
    /// Starts everything and returns once the socket is bound.
    pub async fn start(config: Config) -> Result<Server, Error> {
        let ffmpeg_version = check_ffmpeg(&config.render.ffmpeg)?;
        info!(ffmpeg = %ffmpeg_version, "ffmpeg found");
        let videos: PathBuf = config.data_dir.join("videos");
        for dir in [&videos, &config.data_dir.join("work")] {
            std::fs::create_dir_all(dir)
                .map_err(Error::io(format!("creating {}", dir.display())))?;
        }
        let catalog = Arc::new(Catalog::load(config.config_dir())?);
        let db = config.data_dir.join("vidbuilder.db");
        let store: Arc<dyn JobStore> = Arc::new(crate::store::OffAsync(
            SqliteStore::open(&db).map_err(|e| Error::Actors(e.to_string()))?,
        ));
        info!(path = %db.display(), "job store open");
        let validation = Arc::new(validation_context(&catalog, &config));
        if !config.webhook.allow_cidrs.is_empty() {
            warn!(cidrs = ?config.webhook.allow_cidrs, "webhook targets in these private ranges are allowed");
        }
        let api_keys = Arc::new(crate::http::auth::ApiKeys::from_config(&config)?);
        if api_keys.is_enabled() {
            info!(keys = api_keys.len(), "API keys required on /api/ routes");
        } else {
            warn!("no API keys configured (auth.api_keys, auth.keys_file): the API is open to anyone who can reach it");
        }

        let ssrf = Arc::new(config.ssrf_guard()?);
        let transport = HttpWebhookTransport::new(
            Duration::from_secs(config.webhook.timeout_secs),
            Duration::from_secs(config.webhook.connect_timeout_secs),
            ssrf.clone(),
        )
        .map_err(|e| Error::Actors(format!("HTTP client: {e}")))?;
        let (secret, source) = crate::webhook_client::webhook_secret(&config)?;
        match &source {
            crate::webhook_client::SecretSource::Config => {
                info!("webhooks are signed with the configured secret")
            }
            crate::webhook_client::SecretSource::File(p) => {
                info!(path = %p.display(), "webhooks are signed with the secret in this file")
            }
            crate::webhook_client::SecretSource::Generated(p) => {
                warn!(path = %p.display(), "no webhook.secret configured: generated one; give receivers the secret in this file")
            }
        }
        // With API keys, each key's jobs are signed with that key's own secret.
        let signing = Arc::new(api_keys.signing_keys(secret));
        let webhook_settings = WebhookSettings {
            retry_schedule: config.retry_schedule(),
            max_in_flight: config.webhook.max_in_flight,
            max_per_host: config.webhook.max_per_host,
            max_retry_after: Duration::from_secs(config.webhook.max_retry_after_secs),
            redelivery_cooldown: Duration::from_secs_f64(config.webhook.redelivery_cooldown_secs),
            secrets: signing.as_ref().clone(),
        };
        let webhook_args = WebhookArgs {
            transport: Arc::new(transport),
            settings: webhook_settings,
            store: store.clone(),
        };
        let (webhooks, _) = Actor::spawn(None, WebhookActor, webhook_args.clone())
            .await
            .map_err(|e| Error::Actors(e.to_string()))?;

        let views: JobViews = Arc::new(DashMap::new());
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        let (closing_tx, closing) = tokio::sync::watch::channel(false);
        let (stats_tx, stats) = tokio::sync::watch::channel(Default::default());
        let settings = render_settings(&config, ssrf.clone());
        let media = Arc::new(vidbuilder_render::video::AssetProber::new(
            settings.images.clone(),
            &settings.ffmpeg,
        ));
        let renderer = RenderPort::new(FfmpegRenderer::new(catalog.clone(), settings));
        let mut s3_probe: Option<Arc<S3Uploader>> = None;
        let uploader: Option<(Arc<dyn Uploader>, UploadSettings)> = if config.s3.enabled() {
            let s3 = Arc::new(S3Uploader::new(&config.s3).await?);
            s3_probe = Some(s3.clone());
            if let Err(e) = s3.check_bucket().await {
                warn!(bucket = %config.s3.bucket, "S3 bucket check failed (uploads will retry): {e}");
            }
            info!(bucket = %config.s3.bucket, endpoint = %config.s3.endpoint, "S3 uploads on");
            Some((s3 as Arc<dyn Uploader>, upload_settings(&config)))
        } else {
            info!("S3 is off: videos stay on local disk (set VIDBUILDER_S3_BUCKET to turn it on)");
            None
        };
        let cluster_views = vidbuilder_actors::cluster::registry::ClusterViews::default();
        let cluster =
            crate::cluster::coordinator_settings(&config, &videos, cluster_views.clone())?;
        let local_renders = if cluster.is_some() {
            config.cluster.local_renders
        } else {
            config.concurrency()
        };
        let manager_args = JobManagerArgs {
            renderer: Arc::new(renderer),
            links: Arc::new(crate::http::present::DownloadLinks),
            artifacts: Arc::new(crate::artifacts::LocalArtifacts::new(&videos)),
            webhooks: webhooks.clone(),
            webhooks_respawn: Some(webhook_args),
            views: views.clone(),
            changes: changes.clone(),
            stats: stats_tx,
            store,
            uploader,
            cluster: cluster.clone(),
            settings: ManagerSettings {
                max_concurrent: local_renders,
                max_queued: config.max_queued_jobs,
                max_queued_per_key: config.auth.max_queued_per_key,
                out_dir: videos,
                max_restarts: config.render.max_restarts,
                max_interrupted: config.render.max_interrupted_attempts,
                restart_window: Duration::from_secs(config.render.restart_window_secs),
                restart_backoff: Duration::from_secs_f64(
                    config.render.restart_backoff_secs.max(0.0),
                ),
                stall_timeout: Duration::from_secs(config.render.stall_timeout_secs.max(1)),
                retention: (config.retention_hours > 0.0)
                    .then(|| Duration::from_secs_f64(config.retention_hours * 3600.0)),
                tick: Duration::from_secs(1),
                s3_prefix: config.s3.prefix.clone(),
                delete_local_after_upload: config.s3.delete_local_after_upload,
                node_name: config.node_name(),
                cluster: cluster.is_some(),
            },
        };
        let (manager, _) = Actor::spawn(None, JobManager, manager_args)
            .await
            .map_err(|e| Error::Actors(e.to_string()))?;

        let (probes, probe_task) = spawn_probes(config.render.ffmpeg.clone(), s3_probe);
        let connections = Arc::new(crate::http::serve::ConnStats::default());
        let state = AppState {
            manager: manager.clone(),
            views: views.clone(),
            stats,
            validation,
            themes: Arc::new(catalog.themes()),
            tracks: Arc::new(catalog.tracks()),
            ffmpeg_version: Arc::new(ffmpeg_version),
            ssrf,
            media,
            auth: api_keys,
            signing,
            max_json_depth: config.limits.max_json_depth,
            max_batch_jobs: config.limits.max_batch_jobs,
            max_templates_per_key: config.limits.max_templates_per_key,
            cluster: crate::http::ClusterInfo {
                listen: cluster.as_ref().map(|c| c.listen),
                views: cluster_views,
            },
            connections: connections.clone(),
            blocking: Arc::new(tokio::sync::Semaphore::new(
                config.http.max_blocking_requests,
            )),
            blocking_max: config.http.max_blocking_requests,
            blocking_timeout: Duration::from_secs_f64(config.http.blocking_timeout_secs),
            changes,
            boot: chrono::Utc::now().timestamp_millis().max(0) as u64,
            closing,
            event_streams: Arc::new(tokio::sync::Semaphore::new(config.http.max_event_streams)),
            event_streams_max: config.http.max_event_streams,
            metrics: crate::telemetry::handle(),
            probes,
        };
        let app = router(
            state,
            RouterOptions {
                max_body_bytes: config.max_body_bytes,
                cors_origins: config.cors_origins.clone(),
                rate_limits: RateLimits::new(
                    config.auth.rate_limit_per_minute,
                    config.auth.rate_limit_burst,
                ),
            },
        );
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(Error::io(format!("binding {}", config.bind)))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the bound address"))?;
        let (tx, rx) = oneshot::channel::<()>();
        let limits = crate::http::serve::HttpLimits {
            header_timeout: Duration::from_secs_f64(config.http.header_timeout_secs),
            body_timeout: Duration::from_secs_f64(config.http.body_timeout_secs),
            max_connections: config.http.max_connections,
            max_connections_per_ip: config.http.max_connections_per_ip,
        };
        let http = tokio::spawn(crate::http::serve::serve(
            listener,
            app,
            limits,
            connections,
            async {
                let _ = rx.await;
            },
        ));
        info!(%addr, renders_at_once = local_renders, cluster = cluster.is_some(), max_queued = config.max_queued_jobs, "vidbuilder listening");
        Ok(Server {
            grace: Duration::from_secs(config.shutdown_grace_secs),
            addr,
            manager,
            webhooks,
            views,
            shutdown: Some(tx),
            closing: closing_tx,
            probe_task,
            http,
        })
    }

    /// Stops accepting requests, then stops the actors.
    /// Graceful stop: new jobs are refused (503), running renders get the grace period to finish
    /// (those that don't are stopped and resume on the next start, as do queued jobs), then the
    /// HTTP server and the actors stop. Everything unfinished is in the store.
    pub async fn stop(mut self) {
        let grace = self.grace;
        match ractor::call_t!(
            self.manager,
            |reply| JobManagerMsg::Drain { grace, reply },
            (grace + Duration::from_secs(10)).as_millis() as u64
        ) {
            Ok(report) => info!(
                finished = report.finished,
                interrupted = report.interrupted,
                "renders drained"
            ),
            Err(e) => warn!("drain did not complete: {e}"),
        }
        // Live progress streams end, then the HTTP server stops accepting and finishes.
        let _ = self.closing.send(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.http).await;
        self.http.abort();
        self.probe_task.abort();
        self.manager.stop(Some("shutdown".into()));
        self.webhooks.stop(Some("shutdown".into()));
    }
}

/// How often the dependency probes run.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Probes ffmpeg (it still runs) and object storage (its bucket answers) every [`PROBE_EVERY`],
/// publishing what they find for `/readyz`; requests never wait on them.
fn spawn_probes(
    ffmpeg: PathBuf,
    s3: Option<Arc<S3Uploader>>,
) -> (
    tokio::sync::watch::Receiver<crate::http::Probes>,
    JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(crate::http::Probes::default());
    let task = tokio::spawn(async move {
        loop {
            let path = ffmpeg.clone();
            let ffmpeg_down = tokio::task::spawn_blocking(move || {
                check_ffmpeg(&path).err().map(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Some(e.to_string()));
            let s3_down = match &s3 {
                None => None,
                Some(s3) => {
                    match tokio::time::timeout(Duration::from_secs(5), s3.check_bucket()).await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some("no answer within 5 s".into()),
                    }
                }
            };
            let now = crate::http::Probes {
                ffmpeg: ffmpeg_down,
                s3: s3_down,
            };
            tx.send_if_modified(|p| {
                if *p != now {
                    if now != crate::http::Probes::default() {
                        warn!(?now, "a dependency is down: not ready");
                    }
                    *p = now;
                    true
                } else {
                    false
                }
            });
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
    (rx, task)
}
