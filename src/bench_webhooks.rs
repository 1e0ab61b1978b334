//! `vidbuilder bench --webhooks`: how many signed deliveries per second the WebhookActor pushes
//! through the real HTTP transport, and whether a slow receiver holds up the others.
//!
//! Everything is the server's own: the WebhookActor with the configured limits
//! (`webhook.max_in_flight`, `webhook.max_per_host`), the reqwest transport behind the SSRF guard
//! (loopback allowed for the bench), signing, and the SQLite outbox (each delivery's job and
//! (each job is stored beforehand; its outbox row is written when the delivery is enqueued, in
//! the timed loop, as the JobManager does; every attempt is logged in the outbox).
//! Receivers are axum servers on loopback addresses of their own (127.0.0.2, …: other hosts to
//! the per-host limit) that check every signature and note when each delivery arrived.
//!
//! Three phases, each with a fresh actor and database:
//! 1. burst: N deliveries enqueued at once to the healthy receivers; deliveries/s from the first
//!    enqueue to the last attempt recorded in the outbox;
//! 2. paced: deliveries enqueued at a steady rate; latency (enqueued → received) p50/p99;
//! 3. paced with a slow receiver alongside, which answers only after `--slow-secs` (10 s) and is
//!    sent a delivery with every tenth one: the healthy receivers' p50/p99 again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use ractor::Actor;
use serde::Serialize;
use serde_json::json;
use vidbuilder_actors::signing::{SigningKeys, WebhookSecret};
use vidbuilder_actors::webhook::{
    Delivery, WebhookActor, WebhookArgs, WebhookMsg, WebhookSettings,
};
use vidbuilder_domain::events::WebhookEvent;
use vidbuilder_domain::store::{JobRecord, JobStore};
use vidbuilder_domain::{validate_spec, JobId, VideoSpec};

use crate::app::validation_context;
use crate::bench::percentile;
use crate::store::{OffAsync, SqliteStore};
use crate::webhook_client::HttpWebhookTransport;
use crate::{Config, Error};

/// What `vidbuilder bench --webhooks` was asked for.
#[derive(Debug, Clone)]
pub struct WebhookBenchOptions {
    /// Deliveries in the burst phase.
    pub deliveries: usize,
    /// Deliveries in each paced phase.
    pub paced: usize,
    /// Deliveries per second offered in the paced phases.
    pub rate: u32,
    /// Healthy receivers (each on its own loopback address).
    pub receivers: usize,
    /// How long the slow receiver takes to answer.
    pub slow: Duration,
    /// One JSON document instead of a table.
    pub json: bool,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPhase {
    /// `burst`, `paced` or `paced + slow receiver`.
    pub name: String,
    /// Deliveries to the healthy receivers.
    pub deliveries: usize,
    /// First enqueue to the last healthy delivery received, in seconds.
    pub received_secs: f64,
    /// First enqueue to every healthy delivery's attempt recorded in the outbox, in seconds.
    pub settled_secs: f64,
    /// Deliveries per second, to settled.
    pub per_sec: f64,
    /// Latency enqueued → received, healthy receivers, median (ms).
    pub p50_ms: f64,
    /// 99th percentile of the same (ms).
    pub p99_ms: f64,
    /// Slowest of the same (ms).
    pub max_ms: f64,
    /// Deliveries sent to the slow receiver (0 without it).
    pub slow_deliveries: usize,
    /// Deliveries whose signature did not verify (must be 0).
    pub bad_signatures: usize,
}

#[derive(Default)]
struct Received {
    at: HashMap<String, Instant>,
    bad: usize,
}

type Log = Arc<Mutex<Received>>;

async fn receive(
    log: Log,
    secret: Arc<WebhookSecret>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let id = h("webhook-id").to_string();
    let good = h("webhook-timestamp")
        .parse::<i64>()
        .map(|ts| h("webhook-signature") == secret.sign_v1(&id, ts, &body))
        .unwrap_or(false);
    let mut r = log.lock().unwrap_or_else(|e| e.into_inner());
    if good {
        r.at.insert(id, at);
    } else {
        r.bad += 1;
    }
    StatusCode::NO_CONTENT
}

/// Starts a receiver on `ip` (port chosen by the OS) answering after `delay`.
async fn receiver(
    ip: &str,
    log: Log,
    secret: Arc<WebhookSecret>,
    delay: Duration,
) -> Result<SocketAddr, Error> {
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let (log, secret) = (log.clone(), secret.clone());
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                receive(log, secret, headers, body).await
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .map_err(Error::io(format!("binding a receiver on {ip}")))?;
    let addr = listener
        .local_addr()
        .map_err(Error::io("receiver address"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

#[derive(Clone)]
struct Phase<'a> {
    config: &'a Config,
    spec: &'a VideoSpec,
    healthy: &'a [String],
    slow: Option<&'a str>,
    secret: Arc<WebhookSecret>,
    log: Log,
    scratch: &'a std::path::Path,
}

impl Phase<'_> {
    /// Runs `n` healthy deliveries (and with a slow receiver, one to it with every tenth, at most
    /// 2 × its per-host slots), enqueued all at once (`rate` None) or at `rate` per second.
    async fn run(&self, name: &str, n: usize, rate: Option<u32>) -> Result<WebhookPhase, Error> {
        let db = self.scratch.join(format!(
            "{}.db",
            name.replace(|c: char| !c.is_alphanumeric(), "-")
        ));
        let store: Arc<dyn JobStore> = Arc::new(OffAsync(
            SqliteStore::open(&db).map_err(|e| Error::Actors(e.to_string()))?,
        ));
        let guard = Arc::new(
            vidbuilder_net::SsrfGuard::new(&["127.0.0.0/8".to_string()])
                .map_err(|e| Error::Config(e.to_string()))?,
        );
        let transport = HttpWebhookTransport::new(
            Duration::from_secs(self.config.webhook.timeout_secs),
            Duration::from_secs(self.config.webhook.connect_timeout_secs),
            guard,
        )
        .map_err(|e| Error::Actors(format!("HTTP client: {e}")))?;
        let settings = WebhookSettings {
            retry_schedule: self.config.retry_schedule(),
            max_in_flight: self.config.webhook.max_in_flight,
            max_per_host: self.config.webhook.max_per_host,
            max_retry_after: Duration::from_secs(self.config.webhook.max_retry_after_secs),
            redelivery_cooldown: Duration::from_secs(1),
            secrets: SigningKeys::single((*self.secret).clone()),
        };
        // The deliveries and their jobs, admitted as the JobManager does (job row + outbox row).
        let slow_max = 2 * self.config.webhook.max_per_host.max(1);
        let mut plan: Vec<(JobRecord, Delivery, bool)> = Vec::with_capacity(n + n / 10);
        let mut slow_count = 0;
        for i in 0..n {
            if let Some(slow) = self.slow {
                if i % 10 == 0 && slow_count < slow_max {
                    let (rec, d) = self.delivery(slow, &*store)?;
                    plan.push((rec, d, true));
                    slow_count += 1;
                }
            }
            let url = &self.healthy[i % self.healthy.len()];
            let (rec, d) = self.delivery(url, &*store)?;
            plan.push((rec, d, false));
        }
        let (actor, handle) = Actor::spawn(
            None,
            WebhookActor,
            WebhookArgs {
                transport: Arc::new(transport),
                settings,
                store: store.clone(),
            },
        )
        .await
        .map_err(|e| Error::Actors(e.to_string()))?;

        let mut sent: HashMap<String, Instant> = HashMap::with_capacity(n);
        let start = Instant::now();
        let gap = rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64));
        for (k, (rec, d, slow)) in plan.into_iter().enumerate() {
            if let Some(gap) = gap {
                let due = start + gap * k as u32;
                tokio::time::sleep_until(due.into()).await;
            }
            if !slow {
                sent.insert(d.webhook_id.clone(), Instant::now());
            }
            // As the JobManager does: the outbox row in the job's transaction, then the cast.
            store
                .update_job(&rec, Some(&d.to_row()))
                .map_err(|e| Error::Actors(e.to_string()))?;
            actor
                .cast(WebhookMsg::Enqueue(d))
                .map_err(|e| Error::Actors(e.to_string()))?;
        }
        // Every healthy delivery received …
        let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 100);
        let received_at = loop {
            let last = {
                let r = self.log.lock().unwrap_or_else(|e| e.into_inner());
                let all = sent.keys().all(|id| r.at.contains_key(id));
                all.then(|| sent.keys().filter_map(|id| r.at.get(id)).max().copied())
            };
            if let Some(last) = last {
                break last.unwrap_or(start);
            }
            if Instant::now() > deadline {
                return Err(Error::Actors(format!(
                    "{name}: not every delivery arrived within the deadline"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        // … and recorded: only the slow receiver's may still be pending.
        let settled = loop {
            let pending = ractor::call!(actor, WebhookMsg::Pending)
                .map_err(|e| Error::Actors(e.to_string()))?;
            if pending <= slow_count {
                break Instant::now();
            }
            if Instant::now() > deadline {
                return Err(Error::Actors(format!(
                    "{name}: deliveries not settled within the deadline"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        actor.stop(None);
        let _ = handle.await;
        let mut lat: Vec<f64> = {
            let r = self.log.lock().unwrap_or_else(|e| e.into_inner());
            sent.iter()
                .filter_map(|(id, t0)| {
                    r.at.get(id)
                        .map(|t| t.duration_since(*t0).as_secs_f64() * 1000.0)
                })
                .collect()
        };
        lat.sort_by(|a, b| a.total_cmp(b));
        let settled_secs = settled.duration_since(start).as_secs_f64();
        let bad = self.log.lock().unwrap_or_else(|e| e.into_inner()).bad;
        Ok(WebhookPhase {
            name: name.to_string(),
            deliveries: n,
            received_secs: received_at.duration_since(start).as_secs_f64(),
            settled_secs,
            per_sec: n as f64 / settled_secs,
            p50_ms: percentile(&lat, 0.50).unwrap_or(f64::NAN),
            p99_ms: percentile(&lat, 0.99).unwrap_or(f64::NAN),
            max_ms: lat.last().copied().unwrap_or(f64::NAN),
            slow_deliveries: slow_count,
            bad_signatures: bad,
        })
    }

    /// A new job (stored) and its `started` delivery to `url` (not yet in the outbox: the phase
    /// writes it when it enqueues, as the JobManager does).
    fn delivery(&self, url: &str, store: &dyn JobStore) -> Result<(JobRecord, Delivery), Error> {
        let job = JobId::new();
        let mut rec = JobRecord::queued(
            job.clone(),
            self.spec.clone(),
            Some(url.to_string()),
            None,
            vidbuilder_domain::job::timestamp(Utc::now()),
        );
        let d = Delivery::new(url, &WebhookEvent::started(&job, Utc::now()), None);
        let store_err = |e: vidbuilder_domain::store::StoreError| Error::Actors(e.to_string());
        store.insert_job(&mut rec).map_err(store_err)?;
        Ok((rec, d))
    }
}

/// Run the webhook benchmark and print its results.
pub async fn run(config: Config, opts: WebhookBenchOptions) -> Result<(), Error> {
    let catalog = vidbuilder_render::Catalog::load(config.config_dir())?;
    let ctx = validation_context(&catalog, &config);
    let spec = validate_spec(
        &json!({"scenes": [{"type": "hero-title", "duration": 1, "content": {"title": "Bench"}}]}),
        &ctx,
    )?;
    let scratch =
        std::env::temp_dir().join(format!("vidbuilder-webhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(Error::io(format!("creating {}", scratch.display())))?;
    let secret = Arc::new(WebhookSecret::generate());
    let log: Log = Arc::default();
    let mut healthy = Vec::new();
    for i in 0..opts.receivers.max(1) {
        let addr = receiver(
            &format!("127.0.0.{}", 2 + i),
            log.clone(),
            secret.clone(),
            Duration::ZERO,
        )
        .await?;
        healthy.push(format!("http://{addr}/hook"));
    }
    let slow_addr = receiver("127.0.1.1", log.clone(), secret.clone(), opts.slow).await?;
    let slow_url = format!("http://{slow_addr}/hook");
    let calm = Phase {
        config: &config,
        spec: &spec,
        healthy: &healthy,
        slow: None,
        secret: secret.clone(),
        log: log.clone(),
        scratch: &scratch,
    };
    let with_slow = Phase {
        slow: Some(&slow_url),
        ..calm.clone()
    };
    let say = |s: String| {
        if !opts.json {
            eprintln!("{s}");
        }
    };
    let mut phases = Vec::new();
    let outcome = async {
        say(format!(
            "burst: {} deliveries to {} receivers …",
            opts.deliveries,
            healthy.len()
        ));
        phases.push(calm.run("burst", opts.deliveries, None).await?);
        say(format!(
            "paced: {} deliveries at {}/s …",
            opts.paced, opts.rate
        ));
        phases.push(calm.run("paced", opts.paced, Some(opts.rate)).await?);
        say(format!(
            "paced + slow receiver ({:.0} s answers): {} deliveries at {}/s …",
            opts.slow.as_secs_f64(),
            opts.paced,
            opts.rate
        ));
        phases.push(
            with_slow
                .run("paced + slow receiver", opts.paced, Some(opts.rate))
                .await?,
        );
        Ok::<(), Error>(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if opts.json {
        let doc = json!({
            "cores": cores,
            "maxInFlight": config.webhook.max_in_flight,
            "maxPerHost": config.webhook.max_per_host,
            "receivers": healthy.len(),
            "phases": phases,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialisable")
        );
        return Ok(());
    }
    println!(
        "{cores} cores, {} healthy receivers, max_in_flight {}, max_per_host {}",
        healthy.len(),
        config.webhook.max_in_flight,
        config.webhook.max_per_host
    );
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>6} {:>4}",
        "phase", "healthy", "received", "settled", "per sec", "p50 ms", "p99 ms", "slow", "bad"
    );
    for p in &phases {
        println!(
            "{:<24} {:>8} {:>9.2}s {:>9.2}s {:>9.0} {:>9.2} {:>9.2} {:>6} {:>4}",
            p.name,
            p.deliveries,
            p.received_secs,
            p.settled_secs,
            p.per_sec,
            p.p50_ms,
            p.p99_ms,
            p.slow_deliveries,
            p.bad_signatures
        );
    }
    if let [_, calm, slow] = &phases[..] {
        println!(
            "the slow receiver adds {:+.2} ms to the healthy receivers' p99",
            slow.p99_ms - calm.p99_ms
        );
    }
    Ok(())
}
