//! `vidbuilder bench`: how close the renderer runs to the encoder's own speed limit, on the
//! specs users send.
//!
//! For each case, measured side by side in one run on the same frames:
//! (a) the encoder-only limit: the video's frames are first rendered into memory as yuv420p
//!     (exactly what the pipeline pipes), then ffmpeg encodes them from memory with the very same
//!     command line as a real render (preset, crf, x264 params, pixel format, music) — with
//!     reels, both outputs' encoders at once, as a render runs them;
//! (b) our end-to-end render of the same spec (drawing, conversion, encoding, music, poster);
//! (c) b / a, and the realtime factor of b;
//! and where (b)'s time went: set-up (music, ffmpeg start), the first frame's latency, and per
//! frame the drawing, compositing, colour conversion, pipe writes and the time the drawing
//! thread waited for the encoder; and how many frames repeat the previous one exactly; and the
//! CPU seconds of (a), and of (b) in our process and in its ffmpeg children (with clips, their
//! decoders: work (a) has no part in, which no render of the clip can skip).
//! Runs alternate (a) and (b) so both see the same machine; medians are reported.
//!
//! The cases ([`cases`]) cover every scene type with its entrance, every transition, an image
//! with and without Ken Burns, gradient and image backgrounds, music, reels, a 1 s video, and
//! `examples/all-scenes.json` whole, at 1080p, some also at 720p and 4k (`--quality` picks).
//! Their images are the examples' own, built into the binary.
//!
//! `--editly` renders editly's reference spec instead (1080p30, three clips of 4, 5 and 4 s with
//! colour/gradient backgrounds, title + subtitle, 0.5 s fades, music, x264 `medium` crf 18).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use vidbuilder_actors::ports::{CancellationToken, RenderRequest};
use vidbuilder_domain::{validate_spec, JobId, VideoSpec};

use crate::app::{render_settings, validation_context};
use crate::{Config, Error};
use vidbuilder_domain::spec::{FrameRate, Quality};
use vidbuilder_render::ffmpeg::{ffmpeg_args, EncodeParams, FramePipe};
use vidbuilder_render::image::Images;
use vidbuilder_render::paint::yuv420p_len;
use vidbuilder_render::{
    check_ffmpeg, render_with_stats, render_yuv_frames, Catalog, ClipDecoding, RenderSettings,
    RenderStats, REEL_SIZE,
};

/// What `vidbuilder bench` was asked for.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Runs per case; the median is reported.
    pub runs: usize,
    /// One JSON document on stdout instead of a table.
    pub json: bool,
    /// editly's reference spec instead of the default cases.
    pub editly: bool,
    /// Only the cases whose name contains one of these (all when empty).
    pub cases: Vec<String>,
    /// Render every case at these qualities instead of each case's own list.
    pub qualities: Vec<Quality>,
    /// Print the cases and their specs' sizes, render nothing.
    pub list: bool,
}

/// Where (b)'s time went, from the median run: seconds, and milliseconds per frame (per output
/// frame: a reel's frames count too).
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Call to the first frame asked for: music prepared, ffmpeg started.
    pub setup_secs: f64,
    /// Call to the first frame handed to the encoder (set-up, first scene prepared and drawn).
    pub first_frame_secs: f64,
    /// Drawing, per frame (transitions' compositing excluded).
    pub draw_ms: f64,
    /// Compositing transitions, per frame.
    pub composite_ms: f64,
    /// RGBA → yuv420p on the writer thread, per frame.
    pub convert_ms: f64,
    /// Writing to ffmpeg's stdin, per frame (long when the encoder is the limit).
    pub write_ms: f64,
    /// The drawing thread waiting for room in the queue, per frame (the encoder is the limit).
    pub encoder_wait_ms: f64,
    /// The writer waiting for a frame, per frame (the drawing is the limit).
    pub writer_idle_ms: f64,
    /// Last frame handed over to every ffmpeg exited.
    pub drain_secs: f64,
    /// Frames identical to the previous one (not converted again), in %.
    pub repeated_pct: f64,
    /// Drawing per frame with nothing else running (the pre-render into memory): the drawing's
    /// own cost, where `draw_ms` also counts time the encoder's threads took the CPU.
    pub draw_alone_ms: f64,
    /// Colour conversion per frame with nothing else running.
    pub convert_alone_ms: f64,
}

/// One case's results (seconds are medians over the runs).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case's name, e.g. `scene:hero-title`.
    pub name: String,
    /// The spec's quality.
    pub quality: String,
    /// Frame width, in pixels.
    pub width: u32,
    /// Frame height, in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames in the video (per output).
    pub frames: u64,
    /// Outputs rendered (2 with a reel).
    pub outputs: usize,
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
    /// (d) our whole render at `frameRate: "variable"` (repeated frames held back).
    pub variable_secs: f64,
    /// d / a: the variable-frame-rate render against x264 alone on every frame.
    pub variable_ratio: f64,
    /// b / d: how much faster the variable frame rate renders this case.
    pub variable_speedup: f64,
    /// Frames (d) sent to the encoder, in % of the video's frames.
    pub variable_encoded_pct: f64,
    /// Video seconds per wall second of (b).
    pub realtime: f64,
    /// CPU seconds (a) took, every process counted: ffmpeg's encoder(s) and our threads piping
    /// the frames from memory.
    pub encoder_only_cpu_secs: f64,
    /// CPU seconds (b) took in our process: drawing, conversion, pipe writes.
    pub own_cpu_secs: f64,
    /// CPU seconds (b)'s ffmpeg children took: the encoder(s), and what (a) has no part in:
    /// the clips' decoders, the music's preparation. Less (a)'s encoders, about what those cost.
    pub children_cpu_secs: f64,
    /// Every run's (a), in seconds.
    pub encoder_only_all: Vec<f64>,
    /// Every run's (b), in seconds.
    pub end_to_end_all: Vec<f64>,
    /// Every run's (d), in seconds.
    pub variable_all: Vec<f64>,
    /// With clips only: (a') (a) with the clips' decoders of every output running alongside,
    /// as a render runs them, their frames discarded. x264 alone never decodes the footage a
    /// render must: this is the work such a render cannot do without.
    pub with_decoding_secs: Option<f64>,
    /// b / a': the render against that floor.
    pub with_decoding_ratio: Option<f64>,
    /// Every run's (a'), in seconds (empty without clips).
    pub with_decoding_all: Vec<f64>,
    /// Where (b)'s time went.
    pub breakdown: Breakdown,
}

/// The `p` quantile (0..=1) of `sorted` by nearest rank: the smallest value with at least a
/// share `p` of the values at or below it; `None` when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
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

/// `examples/all-scenes.json`, built in.
const ALL_SCENES: &str = include_str!("../examples/all-scenes.json");
/// The examples' images (`demo/…`), built in and written to the bench's assets directory.
/// The bench's footage (an asset made with ffmpeg when a case uses it): 12 s of 1080p30
/// `testsrc2` with a tone, encoded as a camera would (H.264 high profile, AAC).
const FOOTAGE: &str = "demo/footage.mp4";

/// Writes [`FOOTAGE`] under `assets`.
fn make_footage(ffmpeg: &std::path::Path, assets: &std::path::Path) -> Result<(), Error> {
    let path = assets.join(FOOTAGE);
    let out = std::process::Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=s=1920x1080:r=30:d=12")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000:d=12",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt",
        ])
        .args(["yuv420p", "-c:a", "aac", "-shortest"])
        .arg(&path)
        .output()
        .map_err(Error::io("running ffmpeg to make the bench footage"))?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "making the bench footage failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

const ASSETS: [(&str, &[u8]); 2] = [
    (
        "demo/landscape.jpg",
        include_bytes!("../examples/assets/demo/landscape.jpg"),
    ),
    (
        "demo/logo.png",
        include_bytes!("../examples/assets/demo/logo.png"),
    ),
];

/// One benchmark case: a name and a spec, rendered at each of `qualities`.
pub struct Case {
    /// e.g. `scene:image`, `transition:fade`, `realistic`.
    pub name: String,
    /// The spec (its `quality` is replaced by each of `qualities`).
    pub spec: Value,
    /// The qualities it is measured at by default.
    pub qualities: Vec<Quality>,
}

fn all_scenes() -> Value {
    serde_json::from_str(ALL_SCENES).expect("examples/all-scenes.json is JSON")
}

/// The scene of `examples/all-scenes.json` of type `ty`, without its transition.
fn example_scene(ty: &str) -> Value {
    let doc = all_scenes();
    let mut scene = doc["scenes"]
        .as_array()
        .expect("scenes")
        .iter()
        .find(|s| s["type"] == ty)
        .unwrap_or_else(|| panic!("examples/all-scenes.json has a {ty} scene"))
        .clone();
    scene.as_object_mut().expect("object").remove("transition");
    scene
}

fn spec_of(scenes: Vec<Value>, music: bool, reels: bool) -> Value {
    let mut spec = json!({"theme": "modern", "quality": "1080p", "fps": 30, "scenes": scenes});
    if music {
        spec["music"] = json!({"trackId": "upbeat-1", "volume": 0.4});
    }
    if reels {
        spec["generateReels"] = json!(true);
    }
    spec
}

/// The realistic spec: a hero title, a bullet list entered with a fade, a call to
/// action; 8 s with music.
fn realistic(reels: bool) -> Value {
    let mut hero = example_scene("hero-title");
    hero["duration"] = json!(2.5);
    hero["transition"] = json!({"type": "fade", "duration": 0.6});
    let mut bullets = example_scene("bullet-list");
    bullets["duration"] = json!(3.0);
    bullets["transition"] = json!({"type": "fade", "duration": 0.6});
    let mut cta = json!({"type": "call-to-action", "duration": 2.5, "content":
        {"headline": "Start rendering **today**", "button": "Get your API key",
         "url": "vidbuilder.dev/start"}});
    cta["background"] = json!({"gradient": ["#1E1B4B", "#0F766E"], "angle": 120});
    spec_of(vec![hero, bullets, cta], true, reels)
}

/// Every default case.
pub fn cases() -> Vec<Case> {
    use Quality::{K4, P1080, P720};
    let mut out = Vec::new();
    let mut add = |name: String, spec: Value, qualities: &[Quality]| {
        out.push(Case {
            name,
            spec,
            qualities: qualities.to_vec(),
        })
    };
    add("realistic".into(), realistic(false), &[P720, P1080, K4]);
    add("realistic+reels".into(), realistic(true), &[P1080]);
    for ty in vidbuilder_domain::spec::SCENE_TYPES {
        let q: &[Quality] = if ty == "image" || ty == "video" {
            &[P1080, K4]
        } else {
            &[P1080]
        };
        let scene = if ty == "video" {
            // 5 s of the bench's 1080p footage (made with ffmpeg at start), with its sound
            json!({"type": "video", "duration": 5.0,
                   "content": {"src": FOOTAGE, "trim": {"start": 1.0}}})
        } else {
            example_scene(ty)
        };
        add(format!("scene:{ty}"), spec_of(vec![scene], false, false), q);
    }
    let mut still = example_scene("image");
    still["content"]["kenBurns"] = json!(false);
    add(
        "scene:image (still)".into(),
        spec_of(vec![still], false, false),
        &[P1080],
    );
    for kind in ["fade", "slide", "wipe", "zoom"] {
        let mut a = example_scene("hero-title");
        a["duration"] = json!(2.5);
        a["transition"] = json!({"type": kind, "duration": 1.0});
        let mut b = example_scene("text");
        b["duration"] = json!(2.5);
        let q: &[Quality] = if kind == "fade" {
            &[P1080, K4]
        } else {
            &[P1080]
        };
        add(
            format!("transition:{kind}"),
            spec_of(vec![a, b], false, false),
            q,
        );
    }
    for (bg, value) in [
        (
            "gradient",
            json!({"gradient": ["#1E1B4B", "#0F766E"], "angle": 120}),
        ),
        ("image", json!({"image": "demo/landscape.jpg", "dim": 0.6})),
    ] {
        let mut s = example_scene("hero-title");
        s["background"] = value;
        add(
            format!("background:{bg}"),
            spec_of(vec![s], false, false),
            &[P1080],
        );
    }
    // The case: 30 s at 1080p over a video background (the footage looped), with music.
    let bg = json!({"video": FOOTAGE, "loop": true, "dim": 0.45});
    let mut over_video = Vec::new();
    for ty in ["hero-title", "bullet-list", "call-to-action"] {
        let mut s = example_scene(ty);
        s["duration"] = json!(10.0);
        s["background"] = bg.clone();
        s["transition"] = json!({"type": "fade", "duration": 0.6});
        over_video.push(s);
    }
    add(
        "background:video 30s".into(),
        spec_of(over_video, true, false),
        &[P1080],
    );
    let mut one = example_scene("hero-title");
    one["duration"] = json!(1.0);
    add(
        "1s video".into(),
        spec_of(vec![one], false, false),
        &[P1080],
    );
    add("all-scenes.json".into(), all_scenes(), &[P1080]);
    out
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

/// (a): ffmpeg alone, encoding each output's `yuv` (whole frames back to back) piped from
/// memory with the command line a render uses, all outputs at once as a render runs them.
/// Returns wall seconds, first spawn to last exit.
///
/// (a'), with a [`ClipDecoding`] for each output: before writing frame `f`, its writer pulls
/// the clip frames `f` shows, so the clips are decoded at the encoder's pace as in a render.
fn encode_from_memory(
    outputs: &[(EncodeParams, Vec<u8>)],
    decoding: Vec<Option<ClipDecoding>>,
) -> Result<f64, Error> {
    let t0 = Instant::now();
    let mut children = Vec::new();
    for (params, _) in outputs {
        let child = Command::new(params.ffmpeg)
            .args(ffmpeg_args(params))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!("starting {}", params.ffmpeg.display())))?;
        children.push(child);
    }
    // One frame at a time through the pipeline's own pipe (by reference where a render's
    // would be: the frames stay in memory, unchanged, until ffmpeg has exited); one writer
    // thread per output.
    let written: Vec<std::io::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = children
            .iter_mut()
            .zip(outputs)
            .zip(decoding)
            .map(|((child, (params, yuv)), mut clips)| {
                let frame = yuv420p_len(params.width as usize, params.height as usize);
                let mut stdin = FramePipe::new(child.stdin.take().expect("piped stdin"), frame);
                s.spawn(move || -> std::io::Result<()> {
                    for (f, chunk) in yuv.chunks(frame).enumerate() {
                        if let Some(c) = &mut clips {
                            c.frame(f as u64).map_err(std::io::Error::other)?;
                        }
                        stdin.frame(chunk)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let mut failures = Vec::new();
    for (child, w) in children.into_iter().zip(written) {
        let out = child
            .wait_with_output()
            .map_err(Error::io("waiting for ffmpeg"))?;
        if !out.status.success() || w.is_err() {
            let writing = w
                .err()
                .map(|e| format!(" (writing: {e})"))
                .unwrap_or_default();
            failures.push(format!(
                "{}{writing}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if !failures.is_empty() {
        return Err(Error::Config(format!(
            "the encoder-only ffmpeg failed: {}",
            failures.join("; ")
        )));
    }
    Ok(secs)
}

/// Everything a case needs that does not change between cases.
struct Bench<'a> {
    catalog: &'a Catalog,
    settings: &'a RenderSettings,
    scratch: &'a Path,
    runs: usize,
    say: &'a dyn Fn(String),
}

/// CPU seconds used so far by this process and by its children that have been waited for
/// (every ffmpeg a render or the encoder-only run starts is waited for), from
/// `/proc/self/stat` in Linux's fixed 100 ticks a second; zero where there is no `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    own: f64,
    children: f64,
}

impl CpuTimes {
    fn now() -> CpuTimes {
        CpuTimes::read().unwrap_or_default()
    }

    fn read() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// utime, stime, cutime and cstime are the 14th to 17th fields; the 2nd, the command name
    /// in parentheses, may hold spaces, so fields are counted after its closing parenthesis.
    fn parse(stat: &str) -> Option<CpuTimes> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<f64> = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|v| v.parse::<f64>().map(|t| t / 100.0))
            .collect::<Result<_, _>>()
            .ok()?;
        (f.len() == 4).then(|| CpuTimes {
            own: f[0] + f[1],
            children: f[2] + f[3],
        })
    }
}

fn breakdown(s: &RenderStats, alone: &RenderStats, frames: u64) -> Breakdown {
    let per = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / frames.max(1) as f64;
    let w = &s.writer;
    Breakdown {
        setup_secs: s.setup.as_secs_f64(),
        first_frame_secs: s.first_frame.as_secs_f64(),
        draw_ms: per(s.draw),
        composite_ms: per(s.composite),
        convert_ms: per(w.convert),
        write_ms: per(w.write),
        encoder_wait_ms: per(s.encoder_wait),
        writer_idle_ms: per(w.idle),
        drain_secs: s.drain.as_secs_f64(),
        repeated_pct: 100.0 * w.conversions[2] as f64 / w.frames.max(1) as f64,
        draw_alone_ms: per(alone.draw + alone.composite),
        convert_alone_ms: per(alone.writer.convert),
    }
}

fn run_case(b: &Bench, name: &str, spec: VideoSpec, images: &Images) -> Result<CaseResult, Error> {
    let (catalog, settings) = (b.catalog, b.settings);
    let (w, h) = spec.quality.dimensions();
    let frames = spec.frame_count();
    let fps = spec.fps;
    let label = format!("{name} {}", spec.quality.as_str());
    (b.say)(format!(
        "{label}: pre-rendering {frames} frames {w}x{h} into memory …"
    ));
    let audio = match &spec.music {
        Some(m) => Some(catalog.track_audio(
            &m.track_id,
            m.volume,
            &settings.ffmpeg,
            &settings.work_dir,
        )?),
        None => None,
    };
    let t0 = Instant::now();
    let mut sizes = vec![(w, h, false)];
    if spec.generate_reels {
        sizes.push((REEL_SIZE.0, REEL_SIZE.1, true));
    }
    let encoded: Vec<_> = (0..sizes.len())
        .map(|i| b.scratch.join(format!("encoder-only-{i}.mp4")))
        .collect();
    let mut outputs = Vec::new();
    let mut alone = RenderStats::default();
    for (&(ow, oh, reel), out) in sizes.iter().zip(&encoded) {
        let (yuv, stats) = render_yuv_frames(catalog, &spec, images, reel)?;
        alone.draw += stats.draw + stats.composite;
        alone.writer.convert += stats.writer.convert;
        assert_eq!(
            yuv.len(),
            yuv420p_len(ow as usize, oh as usize) * frames as usize
        );
        let params = EncodeParams {
            ffmpeg: &settings.ffmpeg,
            preset: &settings.preset,
            crf: settings.crf,
            width: ow,
            height: oh,
            fps,
            frames,
            frame_rate: FrameRate::Constant,
            format: vidbuilder_domain::spec::Format::Mp4,
            audio: audio.clone(),
            clips: Vec::new(),
            out,
        };
        outputs.push((params, yuv));
    }
    let prerender_secs = t0.elapsed().as_secs_f64();
    let mut variable_spec = spec.clone();
    variable_spec.frame_rate = FrameRate::Variable;
    let (mut enc_all, mut e2e_all, mut stats_all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut var_all, mut held) = (Vec::new(), 0u64);
    let mut dec_all = Vec::new();
    let reels: Vec<bool> = sizes.iter().map(|s| s.2).collect();
    let clips = !spec.videos().is_empty();
    let (mut cpu_a, mut cpu_own, mut cpu_kids) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=b.runs {
        let before = CpuTimes::now();
        let a = encode_from_memory(&outputs, outputs.iter().map(|_| None).collect())?;
        let after_a = CpuTimes::now();
        if clips {
            let decoding = reels
                .iter()
                .map(|&reel| ClipDecoding::new(b.catalog, &spec, images, reel).map(Some))
                .collect::<Result<Vec<_>, _>>()?;
            let a2 = encode_from_memory(&outputs, decoding)?;
            (b.say)(format!(
                "{label}: run {run}/{}: encoder-only with the clips' decoding {a2:.2} s",
                b.runs
            ));
            dec_all.push(a2);
        }
        let before_b = CpuTimes::now();
        let (e2e, stats) = timed_render(b, &spec, images)?;
        let after_b = CpuTimes::now();
        cpu_a.push(after_a.own - before.own + after_a.children - before.children);
        cpu_own.push(after_b.own - before_b.own);
        cpu_kids.push(after_b.children - before_b.children);
        let (d, var_stats) = timed_render(b, &variable_spec, images)?;
        held = var_stats.writer.held;
        (b.say)(format!(
            "{label}: run {run}/{}: encoder-only {a:.2} s, end-to-end {e2e:.2} s ({:.3}x), variable frame rate {d:.2} s ({:.3}x)",
            b.runs,
            e2e / a,
            d / a
        ));
        enc_all.push(a);
        e2e_all.push(e2e);
        var_all.push(d);
        stats_all.push(stats);
    }
    drop(outputs);
    for p in &encoded {
        let _ = std::fs::remove_file(p);
    }
    let (a, e2e, d) = (median(&enc_all), median(&e2e_all), median(&var_all));
    let a2 = clips.then(|| median(&dec_all));
    let output_frames = frames * sizes.len() as u64;
    // The breakdown of the run closest to the median.
    let closest = (0..e2e_all.len())
        .min_by(|&i, &j| {
            (e2e_all[i] - e2e)
                .abs()
                .total_cmp(&(e2e_all[j] - e2e).abs())
        })
        .expect("at least one run");
    let video_secs = frames as f64 / fps as f64;
    Ok(CaseResult {
        name: name.to_string(),
        quality: spec.quality.as_str().to_string(),
        width: w,
        height: h,
        fps,
        frames,
        outputs: sizes.len(),
        video_secs,
        preset: settings.preset.clone(),
        crf: settings.crf,
        runs: b.runs,
        prerender_secs,
        encoder_only_secs: a,
        end_to_end_secs: e2e,
        ratio: e2e / a,
        variable_secs: d,
        variable_ratio: d / a,
        variable_speedup: e2e / d,
        variable_encoded_pct: 100.0 * output_frames.saturating_sub(held) as f64
            / output_frames.max(1) as f64,
        realtime: video_secs / e2e,
        encoder_only_cpu_secs: median(&cpu_a),
        own_cpu_secs: median(&cpu_own),
        children_cpu_secs: median(&cpu_kids),
        encoder_only_all: enc_all,
        end_to_end_all: e2e_all,
        variable_all: var_all,
        with_decoding_secs: a2,
        with_decoding_ratio: a2.map(|a2| e2e / a2),
        with_decoding_all: dec_all,
        breakdown: breakdown(&stats_all[closest], &alone, output_frames),
    })
}

/// One end-to-end render of `spec` into the scratch directory (its files removed after): wall
/// seconds, and where the time went.
fn timed_render(b: &Bench, spec: &VideoSpec, images: &Images) -> Result<(f64, RenderStats), Error> {
    let req = RenderRequest {
        job_id: JobId::new(),
        attempt: 1,
        spec: spec.clone(),
        out_dir: b.scratch.join("out"),
    };
    let t0 = Instant::now();
    let (out, stats) = render_with_stats(
        b.catalog,
        b.settings,
        &req,
        images,
        &|_| {},
        &CancellationToken::new(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    for p in [
        Some(&out.video),
        out.poster.as_ref(),
        out.reel.as_ref(),
        out.reel_poster.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        let _ = std::fs::remove_file(p);
    }
    Ok((secs, stats))
}

/// The cases to run: (name, spec JSON with its quality set), filtered by `opts`.
fn selected(opts: &BenchOptions) -> Vec<(String, Value)> {
    if opts.editly {
        let (name, spec) = editly_case();
        return vec![(name.to_string(), spec)];
    }
    let mut out = Vec::new();
    for case in cases() {
        if !opts.cases.is_empty() && !opts.cases.iter().any(|c| case.name.contains(c.as_str())) {
            continue;
        }
        let qualities = if opts.qualities.is_empty() {
            &case.qualities
        } else {
            &opts.qualities
        };
        for q in qualities {
            let mut spec = case.spec.clone();
            spec["quality"] = json!(q.as_str());
            out.push((case.name.clone(), spec));
        }
    }
    out
}

/// Run the benchmark and print its results.
pub fn run(config: &Config, opts: &BenchOptions) -> Result<(), Error> {
    let catalog = Catalog::load(config.config_dir())?;
    let ctx = validation_context(&catalog, config);
    let list = selected(opts);
    if list.is_empty() {
        return Err(Error::Config(format!(
            "no bench case matches {:?}; `vidbuilder bench --list` shows them",
            opts.cases
        )));
    }
    let mut specs = Vec::new();
    for (name, body) in list {
        let spec = validate_spec(&body, &ctx)
            .map_err(|e| Error::Config(format!("bench case {name}: {e}")))?;
        specs.push((name, spec));
    }
    if opts.list {
        for (name, spec) in &specs {
            let (w, h) = spec.quality.dimensions();
            println!(
                "{:<24} {:>5} {w}x{h}, {:.1} s, {} scene(s){}{}",
                name,
                spec.quality.as_str(),
                spec.duration(),
                spec.scenes.len(),
                if spec.music.is_some() { ", music" } else { "" },
                if spec.generate_reels { ", reel" } else { "" },
            );
        }
        return Ok(());
    }
    let version = check_ffmpeg(&config.render.ffmpeg)?;
    let scratch = tempfile_dir()?;
    let ssrf = std::sync::Arc::new(config.ssrf_guard()?);
    let mut settings = render_settings(config, ssrf);
    settings.work_dir = scratch.join("work");
    let assets = scratch.join("assets");
    for (rel, bytes) in ASSETS {
        let path = assets.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent"))
            .map_err(Error::io(format!("creating {}", assets.display())))?;
        std::fs::write(&path, bytes).map_err(Error::io(format!("writing {}", path.display())))?;
    }
    if specs.iter().any(|(_, s)| !s.videos().is_empty()) {
        make_footage(&settings.ffmpeg, &assets)?;
    }
    settings.images.assets_dir = Some(assets);
    if opts.editly {
        settings.preset = "medium".into();
        settings.crf = 18;
    }
    let json_out = opts.json;
    let say = |s: String| {
        if !json_out {
            eprintln!("{s}");
        }
    };
    let bench = Bench {
        catalog: &catalog,
        settings: &settings,
        scratch: &scratch,
        runs: opts.runs.max(1),
        say: &say,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the runtime"))?;
    let mut results = Vec::new();
    let outcome = (|| -> Result<(), Error> {
        for (name, spec) in specs {
            let images = rt.block_on(vidbuilder_render::prefetch_media(&spec, &settings))?;
            results.push(run_case(&bench, &name, spec, &images)?);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let runs = bench.runs;
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
    println!(
        "{version}, {cores} cores, x264 {}/{}, median of {runs} run(s); per-frame columns in ms",
        settings.preset, settings.crf
    );
    println!(
        "setup: to the first frame asked for; 1st: to the first frame handed over; draw, comp(osite), \
         conv(ert), write, wait (for the encoder): during (b), sharing the CPU with x264; \
         draw1, conv1: the same work alone; rep%: frames repeating the previous one; \
         (d) vfr: (b) at frameRate variable, d/a its ratio to (a), enc%: frames it encoded; \
         cpu a: CPU seconds of (a), every process; ours: (b)'s in our process; kids: (b)'s ffmpeg \
         children (encoder, and clip decoders and music that (a) has no part in)"
    );
    print!("{}", table(&results));
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

/// The results as a text table.
pub fn table(results: &[CaseResult]) -> String {
    let mut t = format!(
        "{:<22} {:>5} {:>6} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6} {:>6} {:>6} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>4} {:>6} {:>6} {:>6} {:>6} {:>6}\n",
        "case", "qual", "frames", "(a) enc", "(b) ours", "b/a", "rt", "(d) vfr", "d/a", "enc%",
        "setup", "1st", "draw", "comp", "conv", "write", "wait", "rep%", "draw1", "conv1",
        "cpu a", "ours", "kids"
    );
    for r in results {
        let b = &r.breakdown;
        t += &format!(
            "{:<22} {:>5} {:>6} {:>7.2}s {:>7.2}s {:>5.3}x {:>5.2}x {:>7.2}s {:>5.3}x {:>5.0}% {:>5.2}s {:>5.2}s {:>5.1} {:>5.1} {:>5.1} {:>5.1} {:>5.1} {:>4.0} {:>6.1} {:>6.1} {:>5.2}s {:>5.2}s {:>5.2}s\n",
            r.name,
            r.quality,
            r.frames * r.outputs as u64,
            r.encoder_only_secs,
            r.end_to_end_secs,
            r.ratio,
            r.realtime,
            r.variable_secs,
            r.variable_ratio,
            r.variable_encoded_pct,
            b.setup_secs,
            b.first_frame_secs,
            b.draw_ms,
            b.composite_ms,
            b.convert_ms,
            b.write_ms,
            b.encoder_wait_ms,
            b.repeated_pct,
            b.draw_alone_ms,
            b.convert_alone_ms,
            r.encoder_only_cpu_secs,
            r.own_cpu_secs,
            r.children_cpu_secs,
        );
    }
    let clips: Vec<&CaseResult> = results
        .iter()
        .filter(|r| r.with_decoding_secs.is_some())
        .collect();
    if !clips.is_empty() {
        t += "cases with clips: (a') is (a) with the clips decoded alongside as the render decodes them\n";
        t += &format!(
            "{:<22} {:>5} {:>8} {:>8} {:>8} {:>6} {:>6}\n",
            "case", "qual", "(a) enc", "(a') dec", "(b) ours", "b/a", "b/a'"
        );
        for r in clips {
            let (a2, r2) = (
                r.with_decoding_secs.unwrap_or(f64::NAN),
                r.with_decoding_ratio.unwrap_or(f64::NAN),
            );
            t += &format!(
                "{:<22} {:>5} {:>7.2}s {:>7.2}s {:>7.2}s {:>5.3}x {:>5.3}x\n",
                r.name, r.quality, r.encoder_only_secs, a2, r.end_to_end_secs, r.ratio, r2
            );
        }
    }
    t
}

/// A fresh scratch directory under the system temp dir.
fn tempfile_dir() -> Result<std::path::PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("vidbuilder-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        // a command name may hold spaces and parentheses
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 1200 30 20 0 \
                    12 0 100 0 0";
        let t = CpuTimes::parse(stat).expect("parsed");
        assert!((t.own - 3.25).abs() < 1e-9, "{t:?}");
        assert!((t.children - 12.3).abs() < 1e-9, "{t:?}");
        assert!(CpuTimes::parse("12 (x) S 1 2").is_none());
        // the reading follows this process's own CPU use (10 ms ticks): spin until it moves
        let start = CpuTimes::read().expect("/proc/self/stat parses");
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let mut x = 1u64;
        while CpuTimes::read().expect("parses").own <= start.own {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(
                Instant::now() < deadline,
                "no CPU time counted after 20 s of spinning"
            );
        }
    }

    #[test]
    fn percentile_is_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    /// Every spec in `examples/` passes the server's validation with the shipped catalog (the
    /// template and batch bodies carry theirs under `spec`, with merge fields: those must parse).
    #[test]
    fn every_example_spec_is_valid() {
        let config = Config::load_with_env(None, std::iter::empty()).expect("embedded defaults");
        let catalog = Catalog::load(config.config_dir()).expect("catalog");
        let ctx = validation_context(&catalog, &config);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("examples/") {
            let path = entry.expect("an entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if body.get("spec").is_some() {
                assert!(body["spec"]["scenes"].is_array(), "{}", path.display());
                continue;
            }
            validate_spec(&body, &ctx).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} example specs");
    }

    /// The bench measures specs users could send: every case (at every quality) and the editly
    /// case pass the server's own validation with the shipped catalog.
    #[test]
    fn every_case_is_a_valid_spec() {
        let config = Config::load_with_env(None, std::iter::empty()).expect("embedded defaults");
        let catalog = Catalog::load(config.config_dir()).expect("catalog");
        let ctx = validation_context(&catalog, &config);
        let mut names = std::collections::BTreeSet::new();
        for case in cases() {
            assert!(
                names.insert(case.name.clone()),
                "duplicate case {}",
                case.name
            );
            for q in Quality::ALL {
                let mut body = case.spec.clone();
                body["quality"] = json!(q.as_str());
                let spec = validate_spec(&body, &ctx)
                    .unwrap_or_else(|e| panic!("bench case {} at {}: {e}", case.name, q.as_str()));
                assert!(spec.frame_count() > 0);
            }
        }
        // Every scene type and transition has its case, and the whole example is there.
        for want in [
            "scene:image",
            "scene:video",
            "background:video 30s",
            "scene:logo-outro",
            "transition:zoom",
            "all-scenes.json",
        ] {
            assert!(names.contains(want), "{want} missing");
        }
        let (_, editly) = editly_case();
        validate_spec(&editly, &ctx).expect("editly case");
        // --case filters by substring; --quality replaces each case's own list.
        let opts = BenchOptions {
            cases: vec!["transition:".into()],
            qualities: vec![Quality::P720],
            ..Default::default()
        };
        let picked = selected(&opts);
        assert_eq!(picked.len(), 4);
        assert!(picked.iter().all(|(_, s)| s["quality"] == "720p"));
    }
}
