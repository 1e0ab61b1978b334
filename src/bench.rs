//! `vidbuilder bench`: how close the renderer runs to the encoder's own speed limit.
//!
//! For each case, measured side by side in one run on the same frames:
//! (a) the encoder-only limit: the video's frames are first rendered into memory as yuv420p
//!     (exactly what the pipeline pipes), then ffmpeg encodes them from memory with the very same
//!     command line as a real render (preset, crf, x264 params, pixel format, music);
//! (b) our end-to-end render of the same spec (drawing, conversion, encoding, music, poster);
//! (c) b / a, and the realtime factor of b.
//! Runs alternate (a) and (b) so both see the same machine; medians are reported.
//!
//! `--editly` renders editly's reference spec instead (1080p30, three clips of 4, 5 and 4 s with
//! colour/gradient backgrounds, title + subtitle, 0.5 s fades, music, x264 `medium` crf 18).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use vidbuilder_actors::ports::{CancellationToken, RenderRequest};
use vidbuilder_domain::{validate_spec, JobId, VideoSpec};

use crate::app::{render_settings, validation_context};
use crate::{Config, Error};
use vidbuilder_render::ffmpeg::{ffmpeg_args, EncodeParams};
use vidbuilder_render::image::Images;
use vidbuilder_render::paint::yuv420p_len;
use vidbuilder_render::{
    check_ffmpeg, render_blocking, render_yuv_frames, Catalog, RenderSettings,
};

/// What `vidbuilder bench` was asked for.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Runs per case; the median is reported.
    pub runs: usize,
    /// One JSON document on stdout instead of a table.
    pub json: bool,
    /// editly's reference spec instead of the default cases.
    pub editly: bool,
}

/// One case's results (seconds are medians over the runs).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case's name, e.g. `1080p30 10s`.
    pub name: String,
    /// Frame width, in pixels.
    pub width: u32,
    /// Frame height, in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames in the video.
    pub frames: u64,
    /// Length of the video, in seconds (`frames / fps`).
    pub video_secs: f64,
    /// The x264 preset used (`render.preset`).
    pub preset: String,
    /// The x264 CRF used (`render.crf`).
    pub crf: u8,
    /// Runs measured.
    pub runs: usize,
    /// Drawing the frames into memory once (not part of either measurement).
    pub prerender_secs: f64,
    /// (a) ffmpeg alone, frames piped from memory.
    pub encoder_only_secs: f64,
    /// (b) our whole render.
    pub end_to_end_secs: f64,
    /// (c) b / a.
    pub ratio: f64,
    /// Video seconds per wall second of (b).
    pub realtime: f64,
    /// Every run's (a), in seconds.
    pub encoder_only_all: Vec<f64>,
    /// Every run's (b), in seconds.
    pub end_to_end_all: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn hero(duration: f64, title: &str, subtitle: &str) -> Value {
    json!({"type": "hero-title", "duration": duration,
           "content": {"title": title, "subtitle": subtitle}})
}

/// The default cases: (name, spec JSON).
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "1080p30 10s",
            json!({
                "theme": "corporate", "quality": "1080p", "fps": 30,
                "music": {"trackId": "corp-1", "volume": 0.5},
                "scenes": [
                    hero(3.5, "Welcome to **VidBuilder**", "Create stunning videos"),
                    {"type": "bullet-list", "duration": 3.5, "content": {
                        "heading": "Why teams switch",
                        "items": ["Renders faster than realtime", "Themes, music and reels built in",
                                  "Webhooks you can trust"]}},
                    {"type": "stats", "duration": 3.0, "content": {
                        "heading": "In numbers",
                        "stats": [{"value": 3, "label": "times faster"},
                                  {"value": 99.9, "label": "uptime, %"},
                                  {"value": 24, "label": "scene looks"}]}}
                ]
            }),
        ),
        (
            "4k30 4s",
            json!({
                "theme": "modern", "quality": "4k", "fps": 30,
                "music": {"trackId": "upbeat-1", "volume": 0.5},
                "scenes": [
                    hero(2.0, "Ship videos **faster**", "JSON in, MP4 out"),
                    {"type": "text", "duration": 2.0, "content": {
                        "heading": "Self-hosted",
                        "body": "Your data stays on your servers, and renders run at the speed of the encoder."}}
                ]
            }),
        ),
    ]
}

/// editly's reference spec, in our terms.
fn editly_case() -> (&'static str, Value) {
    (
        "editly reference 13s",
        json!({
            "theme": "corporate", "quality": "1080p", "fps": 30,
            "music": {"trackId": "corp-1", "volume": 0.8},
            "scenes": [
                {"type": "hero-title", "duration": 4.0,
                 "content": {"title": "Clip one", "subtitle": "A gradient background"},
                 "background": {"gradient": ["#1d2671", "#c33764"], "angle": 135},
                 "transition": {"type": "fade", "duration": 0.5}},
                {"type": "hero-title", "duration": 5.0,
                 "content": {"title": "Clip two", "subtitle": "A plain colour"},
                 "background": {"color": "#0f4c5c"},
                 "transition": {"type": "fade", "duration": 0.5}},
                {"type": "hero-title", "duration": 4.0,
                 "content": {"title": "Clip three", "subtitle": "Another gradient"},
                 "background": {"gradient": ["#f7971e", "#ffd200"], "angle": 45}}
            ]
        }),
    )
}

/// (a): ffmpeg alone, encoding `yuv` (whole frames back to back) piped from memory with the
/// command line a render of `spec` uses. Returns wall seconds, spawn to exit.
fn encode_from_memory(
    settings: &RenderSettings,
    params: &EncodeParams,
    yuv: &[u8],
) -> Result<f64, Error> {
    let t0 = Instant::now();
    let mut child = Command::new(params.ffmpeg)
        .args(ffmpeg_args(params))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io(format!("starting {}", settings.ffmpeg.display())))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let frame = yuv420p_len(params.width as usize, params.height as usize);
    // One frame per write, as the pipeline's writer does.
    let written = std::thread::scope(|s| {
        s.spawn(move || -> std::io::Result<()> {
            for chunk in yuv.chunks(frame) {
                stdin.write_all(chunk)?;
            }
            Ok(())
        })
        .join()
        .expect("writer thread")
    });
    let out = child
        .wait_with_output()
        .map_err(Error::io("waiting for ffmpeg"))?;
    let secs = t0.elapsed().as_secs_f64();
    if !out.status.success() || written.is_err() {
        return Err(Error::Config(format!(
            "the encoder-only ffmpeg failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(secs)
}

fn run_case(
    catalog: &Catalog,
    settings: &RenderSettings,
    name: &str,
    spec: VideoSpec,
    runs: usize,
    scratch: &Path,
    say: &dyn Fn(String),
) -> Result<CaseResult, Error> {
    let images = Images::default();
    let (w, h) = spec.quality.dimensions();
    let frames = spec.frame_count();
    let fps = spec.fps;
    say(format!(
        "{name}: pre-rendering {frames} frames {w}x{h} into memory …"
    ));
    let t0 = Instant::now();
    let yuv = render_yuv_frames(catalog, &spec, &images)?;
    let prerender_secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        yuv.len(),
        yuv420p_len(w as usize, h as usize) * frames as usize
    );
    let audio = match &spec.music {
        Some(m) => Some(catalog.track_audio(
            &m.track_id,
            m.volume,
            &settings.ffmpeg,
            &settings.work_dir,
        )?),
        None => None,
    };
    let encoded = scratch.join("encoder-only.mp4");
    let params = EncodeParams {
        ffmpeg: &settings.ffmpeg,
        preset: &settings.preset,
        crf: settings.crf,
        width: w,
        height: h,
        fps,
        frames,
        audio,
        out: &encoded,
    };
    let (mut enc_all, mut e2e_all) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let a = encode_from_memory(settings, &params, &yuv)?;
        let req = RenderRequest {
            job_id: JobId::new(),
            attempt: 1,
            spec: spec.clone(),
            out_dir: scratch.join("out"),
        };
        let t0 = Instant::now();
        let out = render_blocking(
            catalog,
            settings,
            &req,
            &images,
            &|_| {},
            &CancellationToken::new(),
        )?;
        let b = t0.elapsed().as_secs_f64();
        for p in [Some(&out.video), out.poster.as_ref()]
            .into_iter()
            .flatten()
        {
            let _ = std::fs::remove_file(p);
        }
        say(format!(
            "{name}: run {run}/{runs}: encoder-only {a:.2} s, end-to-end {b:.2} s ({:.3}x)",
            b / a
        ));
        enc_all.push(a);
        e2e_all.push(b);
    }
    let _ = std::fs::remove_file(&encoded);
    let (a, b) = (median(&enc_all), median(&e2e_all));
    let video_secs = frames as f64 / fps as f64;
    Ok(CaseResult {
        name: name.to_string(),
        width: w,
        height: h,
        fps,
        frames,
        video_secs,
        preset: settings.preset.clone(),
        crf: settings.crf,
        runs,
        prerender_secs,
        encoder_only_secs: a,
        end_to_end_secs: b,
        ratio: b / a,
        realtime: video_secs / b,
        encoder_only_all: enc_all,
        end_to_end_all: e2e_all,
    })
}

/// Run the benchmark and print its results.
pub fn run(config: &Config, opts: &BenchOptions) -> Result<(), Error> {
    let version = check_ffmpeg(&config.render.ffmpeg)?;
    let catalog = Catalog::load(config.config_dir())?;
    let scratch = tempfile_dir()?;
    let ssrf = std::sync::Arc::new(config.ssrf_guard()?);
    let mut settings = render_settings(config, ssrf);
    settings.work_dir = scratch.join("work");
    let ctx = validation_context(&catalog, config);
    let runs = opts.runs.max(1);
    let json_out = opts.json;
    let say = |s: String| {
        if !json_out {
            eprintln!("{s}");
        }
    };
    let list = if opts.editly {
        settings.preset = "medium".into();
        settings.crf = 18;
        vec![editly_case()]
    } else {
        cases()
    };
    let mut results = Vec::new();
    let outcome = (|| -> Result<(), Error> {
        for (name, body) in list {
            let spec = validate_spec(&body, &ctx)?;
            results.push(run_case(
                &catalog, &settings, name, spec, runs, &scratch, &say,
            )?);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if json_out {
        let doc = json!({
            "ffmpeg": version,
            "cores": cores,
            "mode": if opts.editly { "editly" } else { "default" },
            "cases": results,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialisable")
        );
        return Ok(());
    }
    println!("{version}, {cores} cores, median of {runs} run(s)");
    println!(
        "{:<46} {:>9} {:>12} {:>12} {:>7} {:>9}",
        "case", "preset", "(a) encoder", "(b) ours", "(c) b/a", "realtime"
    );
    for r in &results {
        println!(
            "{:<46} {:>9} {:>10.2} s {:>10.2} s {:>6.3}x {:>8.2}x",
            format!("{} ({}x{}, {} frames)", r.name, r.width, r.height, r.frames),
            format!("{}/{}", r.preset, r.crf),
            r.encoder_only_secs,
            r.end_to_end_secs,
            r.ratio,
            r.realtime
        );
    }
    if opts.editly {
        if let Some(r) = results.first() {
            println!(
                "editly reference spec: {:.2} s wall (editly: median 27 s on this machine; goal < 8 s)",
                r.end_to_end_secs
            );
        }
    }
    Ok(())
}

/// A fresh scratch directory under the system temp dir.
fn tempfile_dir() -> Result<std::path::PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("vidbuilder-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}
