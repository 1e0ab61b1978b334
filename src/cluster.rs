//! Cluster-mode wiring: the coordinator's [`ClusterSettings`] from `[cluster]`, the worker process
//! (`vidbuilder worker`), TLS for node links, and the worker's health file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;
use tracing::{info, warn};
use vidbuilder_actors::cluster::coordinator::ClusterSettings;
use vidbuilder_actors::cluster::registry::ClusterViews;
use vidbuilder_actors::cluster::worker::{WorkerArgs, WorkerHealth, WorkerNode, WorkerSettings};
use vidbuilder_actors::cluster::Timings;
use vidbuilder_actors::ports::Uploader;
use vidbuilder_actors::upload::UploadSettings;
use vidbuilder_render::catalog::catalog_version;
use vidbuilder_render::{check_ffmpeg, Catalog, FfmpegRenderer};

use crate::app::render_settings;
use crate::artifacts::LocalArtifacts;
use crate::config::{ClusterConfig, Config};
use crate::error::Error;
use crate::render_port::RenderPort;

/// The protocol timings of `[cluster]`.
pub fn timings(c: &ClusterConfig) -> Timings {
    Timings {
        heartbeat_interval: Duration::from_millis(c.heartbeat_interval_ms),
        heartbeat_timeout: Duration::from_secs(c.heartbeat_timeout_secs),
        rpc_timeout: Duration::from_secs(c.rpc_timeout_secs),
    }
}

/// The coordinator's cluster settings, when `cluster.listen` is set (`None`: single node).
pub fn coordinator_settings(
    config: &Config,
    videos: &Path,
    views: ClusterViews,
) -> Result<Option<ClusterSettings>, Error> {
    let Some(listen) = config.cluster.listen_addr()? else {
        return Ok(None);
    };
    let cookie = config.cluster.cookie()?;
    let tls = if config.cluster.tls() {
        Some(tls_acceptor(&config.cluster)?)
    } else {
        warn!("cluster links are not encrypted (set cluster.tls_cert and cluster.tls_key)");
        None
    };
    Ok(Some(ClusterSettings {
        node_name: config.node_name(),
        listen,
        cookie,
        timings: timings(&config.cluster),
        catalog_version: catalog_version(config.config_dir())?,
        out_dir: videos.to_path_buf(),
        files: Arc::new(LocalArtifacts::new(videos)),
        views,
        tls,
    }))
}

fn pem_error(what: &str, path: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what} '{path}': {e}"))
}

fn certs(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error("cluster TLS certificate", path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("cluster TLS certificate", path, e))?;
    if certs.is_empty() {
        return Err(pem_error(
            "cluster TLS certificate",
            path,
            "no certificate in it",
        ));
    }
    Ok(certs)
}

fn key(path: &str) -> Result<rustls::pki_types::PrivateKeyDer<'static>, Error> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path)
        .map_err(|e| pem_error("cluster TLS key", path, e))
}

fn roots(path: &str) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .map_err(|e| pem_error("cluster TLS CA", path, e))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The coordinator's TLS: its certificate, and client certificates required when `tls_ca` is set.
pub fn tls_acceptor(c: &ClusterConfig) -> Result<tokio_rustls::TlsAcceptor, Error> {
    if c.tls_cert.trim().is_empty() {
        return Err(Error::Config(
            "cluster.tls_cert and cluster.tls_key are needed on the coordinator for TLS".into(),
        ));
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("cluster TLS: {e}")))?;
    let builder = if c.tls_ca.trim().is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(c.tls_ca.trim())?),
            provider(),
        )
        .build()
        .map_err(|e| Error::Config(format!("cluster.tls_ca: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    };
    let server = builder
        .with_single_cert(certs(c.tls_cert.trim())?, key(c.tls_key.trim())?)
        .map_err(|e| Error::Config(format!("cluster TLS certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// A worker's TLS: the coordinator verified against `tls_ca` under `tls_server_name` (or the
/// host of `join`), and this worker's certificate when one is configured.
pub fn tls_connector(
    c: &ClusterConfig,
    join: &str,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
    Error,
> {
    if c.tls_ca.trim().is_empty() {
        return Err(Error::Config(
            "cluster.tls_ca is needed on a worker for TLS (the CA of the coordinator's certificate)"
                .into(),
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("cluster TLS: {e}")))?
        .with_root_certificates(roots(c.tls_ca.trim())?);
    let client = if c.tls_cert.trim().is_empty() {
        builder.with_no_client_auth()
    } else {
        builder
            .with_client_auth_cert(certs(c.tls_cert.trim())?, key(c.tls_key.trim())?)
            .map_err(|e| Error::Config(format!("cluster TLS certificate and key: {e}")))?
    };
    let name = match c.tls_server_name.trim() {
        "" => join
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(join)
            .trim_matches(['[', ']'])
            .to_string(),
        n => n.to_string(),
    };
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|e| Error::Config(format!("cluster TLS server name '{name}': {e}")))?;
    Ok((
        tokio_rustls::TlsConnector::from(Arc::new(client)),
        server_name,
    ))
}

/// What `vidbuilder worker` was asked on its command line.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// `--join`: the coordinator's cluster address (else `cluster.join`).
    pub join: Option<String>,
    /// `--name` (else `node_name`, else the host name).
    pub name: Option<String>,
    /// `--capacity` (else `cluster.capacity`, else one per two cores).
    pub capacity: Option<u32>,
    /// `--data-dir` (else `data_dir`).
    pub data_dir: Option<PathBuf>,
    /// Bench only: render with [`crate::render_port::SleepRenderer`] sleeping this long.
    pub stand_in: Option<Duration>,
}

/// The worker's health file, written on every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFile {
    /// The node's name.
    pub node: String,
    /// Linked to a coordinator.
    pub connected: bool,
    /// Attempts rendering.
    pub running: usize,
    /// When it was written (Unix ms).
    pub at_ms: i64,
}

/// Where a worker writes its health.
pub fn health_path(data_dir: &Path) -> PathBuf {
    data_dir.join("worker-health.json")
}

/// `vidbuilder health --worker`: `Ok` when the worker of `data_dir` wrote within `max_age` that it
/// is connected.
pub fn check_worker_health(data_dir: &Path, max_age: Duration) -> Result<HealthFile, String> {
    let path = health_path(data_dir);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let h: HealthFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let age = chrono::Utc::now().timestamp_millis() - h.at_ms;
    if age > max_age.as_millis() as i64 {
        return Err(format!("the worker has not reported for {} ms", age));
    }
    if !h.connected {
        return Err("the worker is not linked to its coordinator".into());
    }
    Ok(h)
}

/// Runs a worker until SIGTERM/SIGINT.
pub async fn run_worker(mut config: Config, opts: WorkerOptions) -> Result<(), Error> {
    if let Some(d) = opts.data_dir {
        config.data_dir = d;
    }
    if let Some(n) = opts.name {
        config.node_name = n;
    }
    let join = opts
        .join
        .or_else(|| Some(config.cluster.join.trim().to_string()).filter(|j| !j.is_empty()))
        .ok_or_else(|| Error::Config("a worker needs --join HOST:PORT (or cluster.join)".into()))?;
    let cookie = config.cluster.cookie()?;
    let capacity = opts
        .capacity
        .or(Some(config.cluster.capacity).filter(|c| *c > 0))
        .unwrap_or_else(|| {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            (cores / 2).max(1) as u32
        });
    if capacity == 0 {
        return Err(Error::Config("--capacity: at least 1".into()));
    }
    if opts.stand_in.is_none() {
        let ffmpeg = check_ffmpeg(&config.render.ffmpeg)?;
        info!(ffmpeg = %ffmpeg, "ffmpeg found");
    }
    let work = config.data_dir.join("work");
    let attempts = config.data_dir.join("attempts");
    for dir in [&config.data_dir, &work] {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    let catalog = Arc::new(Catalog::load(config.config_dir())?);
    let ssrf = Arc::new(config.ssrf_guard()?);
    let renderer: Arc<dyn vidbuilder_actors::ports::Renderer> = match opts.stand_in {
        Some(sleep) => {
            warn!(
                sleep_ms = sleep.as_millis() as u64,
                "bench stand-in: renders only sleep"
            );
            Arc::new(crate::render_port::SleepRenderer { sleep })
        }
        None => Arc::new(RenderPort::new(FfmpegRenderer::new(
            catalog,
            render_settings(&config, ssrf),
        ))),
    };
    let tls = if config.cluster.tls() {
        Some(tls_connector(&config.cluster, &join)?)
    } else {
        None
    };
    let name = config.node_name();
    let health_file = health_path(&config.data_dir);
    let settings = WorkerSettings {
        name: name.clone(),
        capacity,
        join,
        cookie,
        timings: timings(&config.cluster),
        catalog_version: catalog_version(config.config_dir())?,
        work_dir: attempts.clone(),
        tls,
        keep_finished: Duration::from_secs(config.cluster.keep_finished_secs),
    };
    let health = Arc::new(move |h: &WorkerHealth| {
        let file = HealthFile {
            node: h.node.clone(),
            connected: h.connected,
            running: h.running,
            at_ms: chrono::Utc::now().timestamp_millis(),
        };
        let tmp = health_file.with_extension("json.tmp");
        let body = serde_json::to_vec(&file).unwrap_or_default();
        if std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &health_file))
            .is_err()
        {
            warn!(path = %health_file.display(), "could not write the health file");
        }
    });
    let uploader: Option<(Arc<dyn Uploader>, UploadSettings)> = if config.s3.enabled() {
        let s3 = crate::s3::S3Uploader::new(&config.s3).await?;
        info!(bucket = %config.s3.bucket, "finished videos are uploaded from this worker");
        Some((Arc::new(s3), crate::app::upload_settings(&config)))
    } else {
        None
    };
    let args = WorkerArgs {
        settings,
        renderer,
        files: Arc::new(LocalArtifacts::new(&attempts)),
        health,
        uploader,
    };
    let (worker, mut handle) = Actor::spawn(None, WorkerNode, args)
        .await
        .map_err(|e| Error::Actors(e.to_string()))?;
    info!(node = %name, capacity, "worker running");
    tokio::select! {
        _ = crate::shutdown_signal() => {
            info!("shutting down: running attempts stop and their jobs go to other nodes");
            worker.stop(Some("shutdown".into()));
            let _ = handle.await;
            Ok(())
        }
        _ = &mut handle => Err(Error::Actors("the worker actor stopped".into())),
    }
}

/// The address a cluster listener accepts on, for `/api/cluster`'s own entry.
pub fn listen_address(config: &Config) -> Option<SocketAddr> {
    config.cluster.listen_addr().ok().flatten()
}
