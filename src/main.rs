//! The `vidbuilder` command: `serve`, `worker`, `render`, `validate`, `config`, `bench`,
//! `cluster`, `health`, and the client commands `submit`, `status`, `wait`, `cancel`.
#![forbid(unsafe_code)]

mod client;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tracing::Instrument;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vidbuilder::app::{render_settings, validation_context};
use vidbuilder::{Config, Error, Server};
use vidbuilder_actors::ports::{CancellationToken, RenderPhase, RenderRequest};
use vidbuilder_domain::spec::Quality;
use vidbuilder_domain::{validate_spec, JobId};
use vidbuilder_render::{check_ffmpeg, render_blocking, Catalog};

#[derive(Parser)]
#[command(
    name = "vidbuilder",
    version,
    about = "Async video generation API: JSON spec in, MP4 out, webhooks on the way",
    after_help = TOP_HELP
)]
struct Cli {
    /// A TOML file laid over the embedded defaults (see `vidbuilder config`).
    #[arg(long, global = true, env = "VIDBUILDER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The top-level `--help`'s examples, environment and exit codes (docs/cli.md has more).
const TOP_HELP: &str = "\
Examples:
  vidbuilder serve --bind 0.0.0.0:8080 --data-dir ./data
  vidbuilder submit examples/quick.json --wait --download quick.mp4
  vidbuilder render examples/quick.json -o quick.mp4

Environment:
  VIDBUILDER_SERVER   the server submit, status, wait and cancel talk to (default http://127.0.0.1:8080)
  VIDBUILDER_API_KEY  the API key they send (Authorization: Bearer KEY)
  VIDBUILDER_CONFIG   a TOML file laid over the defaults (`vidbuilder config` lists every other variable)

Exit codes:
  0  success; for wait and submit --wait: the job completed
  1  the job failed or was cancelled (wait, submit --wait, status); cancel refused because the job had
     already finished (409); any error of serve, worker, render, validate, config, bench, cluster, health
  2  a usage error; for submit, status, wait and cancel: a connection or server error (unreachable,
     401 bad API key, 404 unknown job, ...)";

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP API and the actor tree.
    #[command(
        after_help = "Example:\n  vidbuilder serve --bind 0.0.0.0:8080 --data-dir /var/lib/vidbuilder"
    )]
    Serve {
        /// Address to listen on (overrides `bind` / VIDBUILDER_BIND).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Data directory (overrides `data_dir` / VIDBUILDER_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run a render worker that joins a coordinator (cluster mode). The cookie comes from
    /// `cluster.cookie`, VIDBUILDER_CLUSTER_COOKIE or `cluster.cookie_file`, never the command line.
    #[command(
        after_help = "Example:\n  VIDBUILDER_CLUSTER_COOKIE=$(cat cookie) vidbuilder worker --join coordinator:9000 --name gpu-1 --capacity 2"
    )]
    Worker {
        /// The coordinator's cluster address, HOST:PORT (overrides `cluster.join`).
        #[arg(long, env = "VIDBUILDER_CLUSTER_JOIN")]
        join: Option<String>,
        /// This node's name, unique in the cluster (default: `node_name`, else the host name).
        #[arg(long)]
        name: Option<String>,
        /// Renders it runs at once (default: `cluster.capacity`, else one per two cores).
        #[arg(long)]
        capacity: Option<u32>,
        /// Data directory: attempts render under <data-dir>/attempts (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Bench only (`vidbuilder bench --cluster`): renders only sleep this many milliseconds.
        #[arg(long, hide = true)]
        stand_in_sleep_ms: Option<u64>,
    },
    /// Print the cluster's nodes as the coordinator sees them (`GET /api/cluster`).
    #[command(after_help = "Example:\n  vidbuilder cluster --url http://coordinator:8080 --json")]
    Cluster {
        /// The coordinator's HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API key, when the coordinator requires one.
        #[arg(long, env = "VIDBUILDER_API_KEY")]
        api_key: Option<String>,
        /// Print the JSON document as the API gives it.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when this node is healthy (for container health checks): the HTTP API answers, or
    /// with --worker, this data dir's worker is linked to its coordinator.
    #[command(
        after_help = "Examples:\n  vidbuilder health --url http://127.0.0.1:8080/api/health\n  vidbuilder health --worker --data-dir /var/lib/vidbuilder"
    )]
    Health {
        /// The URL to check.
        #[arg(long, default_value = "http://127.0.0.1:8080/api/health")]
        url: String,
        /// Check the worker of this data dir instead of an HTTP API.
        #[arg(long)]
        worker: bool,
        /// The worker's data dir (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Render a spec file to an MP4 without a server (a progress bar on stderr when it is a
    /// terminal).
    #[command(after_help = "Example:\n  vidbuilder render examples/quick.json -o quick.mp4")]
    Render {
        /// The spec, as the API takes it (JSON).
        spec: PathBuf,
        /// Output file.
        #[arg(short, long, default_value = "out.mp4")]
        output: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a spec file and print what is wrong with it, if anything.
    #[command(after_help = "Example:\n  vidbuilder validate examples/tour.json")]
    Validate { spec: PathBuf },
    /// Print the effective configuration (defaults + file + environment) and the variables read.
    #[command(
        after_help = "Example:\n  VIDBUILDER_BIND=0.0.0.0:9000 vidbuilder --config my.toml config"
    )]
    Config,
    /// Measure the renderer against the encoder-only limit (run a release build:
    /// `cargo run --release -- bench`).
    #[command(
        after_help = "Examples:\n  cargo run --release -- bench --runs 5\n  vidbuilder bench --cluster --workers 1,2,4 --json"
    )]
    Bench {
        /// Runs per case; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Render editly's reference spec (1080p30, 3 clips, fades, music, medium crf 18).
        #[arg(long)]
        editly: bool,
        /// Only the cases whose name contains one of these (e.g. `--case scene:,realistic`).
        #[arg(long = "case", value_delimiter = ',')]
        cases: Vec<String>,
        /// Render every case at these qualities (draft, 720p, 1080p, 4k) instead of its own.
        #[arg(long = "quality", value_delimiter = ',', value_parser = parse_quality)]
        qualities: Vec<Quality>,
        /// List the cases (name, quality, size, length) and render nothing.
        #[arg(long)]
        list: bool,
        /// Measure cluster dispatch instead: a coordinator and 1, 2, 4, 8 worker processes whose
        /// renders only sleep; jobs/second, scaling efficiency and overhead per job.
        #[arg(long)]
        cluster: bool,
        /// With --cluster: worker counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        workers: Vec<usize>,
        /// With --cluster: jobs per worker in each run.
        #[arg(long, default_value_t = 8)]
        jobs_per_worker: usize,
        /// With --cluster: how long each stand-in render sleeps, in milliseconds.
        #[arg(long, default_value_t = 500)]
        sleep_ms: u64,
        /// Measure webhook delivery instead: signed deliveries through the WebhookActor and the
        /// HTTP transport to loopback receivers (burst throughput; paced latency with and without
        /// a slow receiver).
        #[arg(long)]
        webhooks: bool,
        /// With --webhooks: deliveries in the burst.
        #[arg(long, default_value_t = 10_000)]
        deliveries: usize,
        /// With --webhooks: deliveries in each paced phase.
        #[arg(long, default_value_t = 5_000)]
        paced: usize,
        /// With --webhooks: deliveries per second offered in the paced phases.
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        /// With --webhooks: healthy receivers, each on its own loopback address.
        #[arg(long, default_value_t = 4)]
        receivers: usize,
        /// With --webhooks: seconds the slow receiver waits before answering.
        #[arg(long, default_value_t = 10.0)]
        slow_secs: f64,
    },
    /// Submit a spec to a running server (`POST /api/jobs`) and print the job id on stdout; with
    /// --wait, follow the job as `vidbuilder wait` does.
    #[command(after_help = "\
Examples:
  vidbuilder submit examples/quick.json
  vidbuilder submit examples/quick.json --wait --download quick.mp4
  vidbuilder submit spec.json --server https://video.example.com --idempotency-key order-1234

Exit codes: 0 submitted (with --wait: completed), 1 the job failed (--wait), 2 usage or connection error.")]
    Submit(client::SubmitArgs),
    /// Print a job's status, progress, message and video URL or error (`GET /api/job-status/JOB`).
    #[command(after_help = "\
Examples:
  vidbuilder status 3f6c2a9e-8d1b-4c47-9a0e-5b7d2f1c4e88
  vidbuilder status $JOB --json | jq .progress

Exit codes: 0 the job is queued, processing or completed; 1 it failed; 2 usage or connection error.")]
    Status(client::StatusArgs),
    /// Follow a job until it ends (`GET /api/job-events/JOB`): a progress bar on stderr when it is
    /// a terminal, then one line: `completed: URL` or `failed: ERROR`.
    #[command(after_help = "\
Examples:
  vidbuilder wait $JOB
  vidbuilder wait $JOB --quiet --download out.mp4 && mpv out.mp4

A dropped stream is resumed (Last-Event-ID, backoff 1 s to 10 s); after 2 minutes of failures
the job's status is polled every 2 s instead.
Exit codes: 0 the job completed, 1 it failed or was cancelled, 2 usage or connection error.")]
    Wait(client::WaitArgs),
    /// Cancel a queued or running job (`POST /api/jobs/JOB/cancel`).
    #[command(after_help = "\
Example:
  vidbuilder cancel $JOB

Exit codes: 0 cancelled, 1 the job had already finished (409), 2 usage or connection error.")]
    Cancel(client::CancelArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_env("VIDBUILDER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The span every log line of this process is under: it names the node.
fn node_span(node: &str) -> tracing::Span {
    tracing::info_span!("node", name = %node)
}

/// A runtime whose threads all log under this node's span.
fn runtime(node: &str) -> Result<tokio::runtime::Runtime, Error> {
    let node = node.to_string();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // Entered for the thread's whole life: events and spans made on it name the node.
            std::mem::forget(node_span(&node).entered());
        })
        .build()
        .map_err(Error::io("starting the runtime"))
}

/// A blocking GET; `Ok(body)` on a 2xx answer.
fn http_get(url: &str, api_key: Option<String>) -> Result<String, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let mut req = client.get(url);
        if let Some(k) = api_key {
            req = req.bearer_auth(k);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Config(format!("{url}: {e}")))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(Error::Config(format!("{url}: {status}: {body}")));
        }
        Ok(body)
    })
}

/// `vidbuilder cluster`: the nodes as a table (or the API's JSON).
fn cluster_command(url: &str, api_key: Option<String>, json: bool) -> Result<(), Error> {
    let body = http_get(
        &format!("{}/api/cluster", url.trim_end_matches('/')),
        api_key,
    )?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let doc: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| Error::Config(format!("not a cluster document: {e}")))?;
    println!(
        "{:<20} {:<24} {:<8} {:>8} {:>8}  LAST HEARTBEAT",
        "NAME", "ADDRESS", "STATUS", "CAPACITY", "RUNNING"
    );
    for n in doc["nodes"].as_array().into_iter().flatten() {
        let s = |k: &str| n[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<20} {:<24} {:<8} {:>8} {:>8}  {}{}",
            s("name"),
            s("address"),
            s("status"),
            n["capacity"].as_u64().unwrap_or(0),
            n["running"].as_u64().unwrap_or(0),
            s("lastHeartbeat"),
            n["reason"]
                .as_str()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    // The client commands need no configuration: they talk to a server.
    let command = match cli.command {
        Command::Submit(args) => return Ok(client::submit(args)),
        Command::Status(args) => return Ok(client::status(args)),
        Command::Wait(args) => return Ok(client::wait(args)),
        Command::Cancel(args) => return Ok(client::cancel(args)),
        other => other,
    };
    let mut config = Config::load(cli.config.as_deref())?;
    let done = match command {
        Command::Submit(_) | Command::Status(_) | Command::Wait(_) | Command::Cancel(_) => {
            unreachable!("handled above")
        }
        Command::Serve { bind, data_dir } => {
            config.bind = bind.unwrap_or(config.bind);
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            init_tracing(&config);
            let node = config.node_name();
            runtime(&node)?.block_on(serve(config).instrument(node_span(&node)))
        }
        Command::Worker {
            join,
            name,
            capacity,
            data_dir,
            stand_in_sleep_ms,
        } => {
            if let Some(n) = &name {
                config.node_name = n.clone();
            }
            init_tracing(&config);
            let node = config.node_name();
            let opts = vidbuilder::cluster::WorkerOptions {
                join,
                name,
                capacity,
                data_dir,
                stand_in: stand_in_sleep_ms.map(Duration::from_millis),
            };
            runtime(&node)?.block_on(
                vidbuilder::cluster::run_worker(config, opts).instrument(node_span(&node)),
            )
        }
        Command::Cluster { url, api_key, json } => cluster_command(&url, api_key, json),
        Command::Health {
            url,
            worker,
            data_dir,
        } => {
            if worker {
                let dir = data_dir.unwrap_or(config.data_dir.clone());
                let max_age = Duration::from_millis(config.cluster.heartbeat_interval_ms * 5)
                    .max(Duration::from_secs(15));
                let h = vidbuilder::cluster::check_worker_health(&dir, max_age)
                    .map_err(Error::Config)?;
                println!(
                    "ok: worker {} linked, {} render(s) running",
                    h.node, h.running
                );
                Ok(())
            } else {
                http_get(&url, None).map(|_| println!("ok: {url}"))
            }
        }
        Command::Render {
            spec,
            output,
            quiet,
        } => render(&config, &spec, &output, quiet),
        Command::Bench {
            json,
            webhooks: true,
            deliveries,
            paced,
            rate,
            receivers,
            slow_secs,
            ..
        } => runtime("bench")?.block_on(vidbuilder::bench_webhooks::run(
            config,
            vidbuilder::bench_webhooks::WebhookBenchOptions {
                deliveries,
                paced,
                rate,
                receivers,
                slow: Duration::from_secs_f64(slow_secs.clamp(0.0, 3600.0)),
                json,
            },
        )),
        Command::Bench {
            runs,
            json,
            cluster: true,
            workers,
            jobs_per_worker,
            sleep_ms,
            ..
        } => {
            let _ = runs;
            runtime("bench")?.block_on(vidbuilder::bench_cluster::run(
                config,
                vidbuilder::bench_cluster::ClusterBenchOptions {
                    workers,
                    jobs_per_worker,
                    sleep: Duration::from_millis(sleep_ms),
                    json,
                },
            ))
        }
        Command::Bench {
            runs,
            json,
            editly,
            cases,
            qualities,
            list,
            ..
        } => vidbuilder::bench::run(
            &config,
            &vidbuilder::bench::BenchOptions {
                runs,
                json,
                editly,
                cases,
                qualities,
                list,
            },
        ),
        Command::Validate { spec } => {
            let catalog = Catalog::load(config.config_dir())?;
            let spec = read_spec(&spec, &catalog, &config)?;
            println!(
                "ok: {} scene(s), {:.1} s, {} {}x{} at {} fps",
                spec.scenes.len(),
                spec.duration(),
                spec.quality.as_str(),
                spec.quality.dimensions().0,
                spec.quality.dimensions().1,
                spec.fps
            );
            Ok(())
        }
        Command::Config => {
            // Secrets are not printed: a config dump ends up in tickets and chat.
            let mut shown = config.clone();
            if !shown.webhook.secret.is_empty() {
                shown.webhook.secret = "(set, hidden)".into();
            }
            shown.auth.api_keys = shown
                .auth
                .api_keys
                .iter()
                .map(|_| "(hidden)".to_string())
                .collect();
            if !shown.cluster.cookie.is_empty() {
                shown.cluster.cookie = "(set, hidden)".into();
            }
            if !shown.s3.secret_access_key.is_empty() {
                shown.s3.secret_access_key = "(set, hidden)".into();
            }
            println!("{}", shown.to_toml());
            println!("# Environment variables read:");
            for (var, key) in Config::env_vars() {
                println!("#   {var:<44} {key}");
            }
            Ok(())
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

async fn serve(config: Config) -> Result<(), Error> {
    let server = Server::start(config).await?;
    vidbuilder::shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

fn read_spec(
    path: &Path,
    catalog: &Catalog,
    config: &Config,
) -> Result<vidbuilder_domain::VideoSpec, Error> {
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: not valid JSON: {e}", path.display())))?;
    Ok(validate_spec(&value, &validation_context(catalog, config))?)
}

fn parse_quality(s: &str) -> Result<Quality, String> {
    Quality::ALL
        .into_iter()
        .find(|q| q.as_str() == s)
        .ok_or_else(|| format!("'{s}' is not one of draft, 720p, 1080p, 4k"))
}

fn render(config: &Config, spec_path: &Path, output: &Path, quiet: bool) -> Result<(), Error> {
    check_ffmpeg(&config.render.ffmpeg)?;
    let catalog = Catalog::load(config.config_dir())?;
    let spec = read_spec(spec_path, &catalog, config)?;
    let out_dir = std::env::temp_dir().join(format!("vidbuilder-render-{}", std::process::id()));
    let ssrf = std::sync::Arc::new(config.ssrf_guard()?);
    let mut settings = render_settings(config, ssrf);
    settings.work_dir = std::env::temp_dir().join("vidbuilder-work");
    let req = RenderRequest {
        job_id: JobId::new(),
        attempt: 1,
        spec,
        out_dir: out_dir.clone(),
    };
    let bar = indicatif::ProgressBar::new(req.spec.frame_count());
    // Quiet when asked, and when stderr is not a terminal (logs, CI): only the final line then.
    if quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames {fps} ETA {eta} {msg}",
        )
        .expect("template")
        .with_key(
            "fps",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} fps", state.per_sec());
            },
        )
        .progress_chars("=> "),
    );
    let started = Instant::now();
    // Images and videos (assets and URLs) are loaded before the first frame, as the server does.
    let images = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?
        .block_on(vidbuilder_render::prefetch_media(&req.spec, &settings))?;
    let cancel = CancellationToken::new();
    let result = render_blocking(
        &catalog,
        &settings,
        &req,
        &images,
        &|p| {
            bar.set_length(p.frames_total);
            bar.set_position(p.frames_done);
            match p.phase {
                RenderPhase::Rendering => {}
                RenderPhase::Encoding => bar.set_message("encoding"),
                RenderPhase::Finalising => bar.set_message("finalising"),
            }
        },
        &cancel,
    );
    bar.finish_and_clear();
    let out = result?;
    let move_file = |from: &Path, to: &Path| -> Result<(), Error> {
        if std::fs::rename(from, to).is_err() {
            std::fs::copy(from, to).map_err(Error::io(format!("writing {}", to.display())))?;
        }
        Ok(())
    };
    // The file is named for what it holds: `-o out.mp4` of a gif spec writes out.gif.
    let ext = req.spec.format().extension();
    let output = &output.with_extension(ext);
    move_file(&out.video, output)?;
    let mut wrote = vec![output.display().to_string()];
    let stem = output.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    let others = out
        .reel
        .iter()
        .map(|r| (r, "reel"))
        .chain(out.extras.iter().map(|e| (&e.video, e.ratio.slug())));
    for (file, suffix) in others {
        let to = output.with_file_name(format!("{stem}-{suffix}.{ext}"));
        move_file(file, &to)?;
        wrote.push(to.display().to_string());
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} ({}x{}, {:.1} s, {} frames) in {:.1} s ({:.2}x realtime)",
        wrote.join(" and "),
        out.width,
        out.height,
        out.duration_secs,
        out.frames,
        secs,
        out.duration_secs / secs
    );
    Ok(())
}
