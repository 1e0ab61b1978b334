//! The `vidbuilder` command: `serve`, `render`, `validate`, `config`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vidbuilder::app::{render_settings, validation_context};
use vidbuilder::{Config, Error, Server};
use vidbuilder_actors::ports::{CancellationToken, RenderPhase, RenderRequest};
use vidbuilder_domain::{validate_spec, JobId};
use vidbuilder_render::{check_ffmpeg, render_blocking, Catalog};

#[derive(Parser)]
#[command(
    name = "vidbuilder",
    version,
    about = "Async video generation API: JSON spec in, MP4 out, webhooks on the way"
)]
struct Cli {
    /// A TOML file laid over the embedded defaults (see `vidbuilder config`).
    #[arg(long, global = true, env = "VIDBUILDER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP API and the actor tree.
    Serve {
        /// Address to listen on (overrides `bind` / VIDBUILDER_BIND).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Data directory (overrides `data_dir` / VIDBUILDER_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Render a spec file to an MP4 without a server.
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
    Validate { spec: PathBuf },
    /// Print the effective configuration (defaults + file + environment) and the variables read.
    Config,
    /// Measure the renderer against the encoder-only limit (run a release build:
    /// `cargo run --release -- bench`).
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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

fn run(cli: Cli) -> Result<(), Error> {
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { bind, data_dir } => {
            config.bind = bind.unwrap_or(config.bind);
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            init_tracing(&config);
            let rt = tokio::runtime::Runtime::new().map_err(Error::io("starting the runtime"))?;
            rt.block_on(serve(config))
        }
        Command::Render {
            spec,
            output,
            quiet,
        } => render(&config, &spec, &output, quiet),
        Command::Bench { runs, json, editly } => vidbuilder::bench::run(
            &config,
            &vidbuilder::bench::BenchOptions { runs, json, editly },
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
    }
}

async fn serve(config: Config) -> Result<(), Error> {
    let server = Server::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    // Images (assets and URLs) are loaded before the first frame, as the server does.
    let images = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?
        .block_on(vidbuilder_render::image::prefetch(
            &req.spec,
            &settings.images,
        ))?;
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
    move_file(&out.video, output)?;
    let mut wrote = vec![output.display().to_string()];
    if let Some(reel) = &out.reel {
        let reel_out = output.with_file_name(format!(
            "{}-reel.mp4",
            output.file_stem().and_then(|s| s.to_str()).unwrap_or("out")
        ));
        move_file(reel, &reel_out)?;
        wrote.push(reel_out.display().to_string());
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
