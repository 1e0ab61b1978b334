//! The video renderer: frames drawn in Rust (tiny-skia + cosmic-text), converted to yuv420p
//! BT.709 in Rust, and piped raw into an ffmpeg child (libx264, plus AAC music).
//!
//! Per render: each output (the landscape video, and the 1080×1920 reel when asked for) gets a
//! cached background and its own ffmpeg child fed by a writer thread through a bounded channel,
//! so drawing, conversion and encoding overlap. Each scene shapes and rasterises its text once
//! into cached layers; a frame is a background copy plus a few composited layers.

pub mod catalog;
pub mod ffmpeg;
pub mod frame;
pub mod paint;
pub mod scene;
pub mod text;
pub mod theme;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cosmic_text::SwashCache;
use tiny_skia::Pixmap;
use vidbuilder_actors::ports::{
    CancellationToken, ProgressSink, RenderOutput, RenderPhase, RenderProgress, RenderRequest,
    Renderer,
};
use vidbuilder_actors::spec::VideoSpec;

pub use catalog::{Catalog, TrackInfo};
pub use ffmpeg::check_ffmpeg;
pub use theme::{Theme, ThemeColors, ThemeInfo};

use ffmpeg::{AudioInput, EncodeParams, Encoder};
use scene::{Frame, SceneContext, SceneDraw};

/// The vertical reel format.
pub const REEL_SIZE: (u32, u32) = (1080, 1920);

/// Why a render (or loading the catalog) failed. `Display` is a human message.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("ffmpeg not found at '{0}': install it (Debian/Ubuntu: apt-get install ffmpeg)")]
    FfmpegNotFound(String),
    #[error("ffmpeg at '{0}' cannot be used: {1}")]
    FfmpegUnusable(String, String),
    #[error("ffmpeg exited with status {status}: {stderr}")]
    Ffmpeg { status: String, stderr: String },
    #[error("unknown theme '{0}'")]
    UnknownTheme(String),
    #[error("unknown music track '{0}'")]
    UnknownTrack(String),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("render cancelled")]
    Cancelled,
}

/// How to run the encoder.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// The ffmpeg binary ("ffmpeg": found on PATH).
    pub ffmpeg: PathBuf,
    /// libx264 preset.
    pub preset: String,
    /// libx264 constant rate factor.
    pub crf: u8,
    /// Scratch space (e.g. embedded music extracted for ffmpeg).
    pub work_dir: PathBuf,
}

impl Default for RenderSettings {
    fn default() -> Self {
        RenderSettings {
            ffmpeg: PathBuf::from("ffmpeg"),
            preset: "veryfast".into(),
            crf: 20,
            work_dir: std::env::temp_dir().join("vidbuilder"),
        }
    }
}

/// First and one-past-last frame of each scene. Boundaries are rounded from the cumulative
/// durations, so the total is exactly `spec.frame_count()`.
pub fn scene_frame_ranges(spec: &VideoSpec) -> Vec<(u64, u64)> {
    let fps = spec.fps as f64;
    let mut cum = 0.0;
    let mut start = 0u64;
    spec.scenes
        .iter()
        .map(|s| {
            cum += s.duration;
            let end = (cum * fps).round() as u64;
            let r = (start, end.max(start));
            start = r.1;
            r
        })
        .collect()
}

struct Lane {
    frame: Frame,
    bg: Pixmap,
    enc: Encoder,
}

/// Removes its files on drop unless disarmed.
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn check_spec(spec: &VideoSpec) -> Result<u64, RenderError> {
    if spec.fps == 0 || spec.fps > 120 {
        return Err(RenderError::InvalidSpec(format!(
            "fps {} is out of range",
            spec.fps
        )));
    }
    if spec.scenes.is_empty() {
        return Err(RenderError::InvalidSpec("no scenes".into()));
    }
    if spec
        .scenes
        .iter()
        .any(|s| !s.duration.is_finite() || s.duration <= 0.0)
    {
        return Err(RenderError::InvalidSpec(
            "scene durations must be positive".into(),
        ));
    }
    let frames = spec.frame_count();
    if frames == 0 {
        return Err(RenderError::InvalidSpec(
            "the video is shorter than one frame".into(),
        ));
    }
    Ok(frames)
}

/// The synchronous render pipeline. See the module docs; writes `<out_dir>/<jobId>.mp4` (and
/// `<jobId>-reel.mp4`) via temporary names, renamed only when complete.
pub fn render_blocking(
    catalog: &Catalog,
    settings: &RenderSettings,
    req: &RenderRequest,
    progress: &dyn Fn(RenderProgress),
    cancel: &CancellationToken,
) -> Result<RenderOutput, RenderError> {
    let spec = &req.spec;
    let theme = catalog
        .theme(&spec.theme)
        .ok_or_else(|| RenderError::UnknownTheme(spec.theme.clone()))?;
    let frames = check_spec(spec)?;
    let fps = spec.fps;
    let audio = match &spec.music {
        Some(m) => Some(AudioInput {
            path: catalog.track_file(&m.track_id, &settings.work_dir)?,
            volume: m.volume,
        }),
        None => None,
    };
    std::fs::create_dir_all(&req.out_dir).map_err(|e| {
        RenderError::Io(
            format!("creating output directory {}", req.out_dir.display()),
            e,
        )
    })?;

    let job = req.job_id.as_str();
    let (w, h) = spec.quality.dimensions();
    let mut plans = vec![(
        Frame {
            width: w,
            height: h,
        },
        req.out_dir.join(format!("{job}.mp4")),
    )];
    if spec.generate_reels {
        plans.push((
            Frame {
                width: REEL_SIZE.0,
                height: REEL_SIZE.1,
            },
            req.out_dir.join(format!("{job}-reel.mp4")),
        ));
    }
    let temps: Vec<PathBuf> = plans
        .iter()
        .map(|(_, fin)| {
            let stem = fin.file_stem().and_then(|s| s.to_str()).unwrap_or(job);
            req.out_dir
                .join(format!(".{stem}.{}.partial.mp4", req.attempt))
        })
        .collect();
    let mut temp_guard = TempFiles(temps.clone());

    let mut lanes = Vec::with_capacity(plans.len());
    for ((frame, _), tmp) in plans.iter().zip(&temps) {
        let enc = Encoder::spawn(&EncodeParams {
            ffmpeg: &settings.ffmpeg,
            preset: &settings.preset,
            crf: settings.crf,
            width: frame.width,
            height: frame.height,
            fps,
            frames,
            audio: audio.clone(),
            out: tmp,
        })?;
        lanes.push(Lane {
            frame: *frame,
            bg: paint::background(theme, frame.width, frame.height),
            enc,
        });
    }

    let total = frames * lanes.len() as u64;
    let mut done = 0u64;
    progress(RenderProgress {
        phase: RenderPhase::Rendering,
        frames_done: 0,
        frames_total: total,
    });
    let mut fonts = catalog.font_system();
    let mut swash = SwashCache::new();
    let mut broken = false;
    'scenes: for (index, (scene, (start, end))) in
        spec.scenes.iter().zip(scene_frame_ranges(spec)).enumerate()
    {
        if end == start {
            continue;
        }
        let duration = (end - start) as f32 / fps as f32;
        let prepared: Vec<Box<dyn SceneDraw>> = lanes
            .iter()
            .map(|lane| {
                scene::prepare(
                    &scene.content,
                    &mut SceneContext {
                        fonts: &mut fonts,
                        swash: &mut swash,
                        theme,
                        frame: lane.frame,
                        duration,
                        fps,
                    },
                )
            })
            .collect();
        for f in start..end {
            if cancel.is_cancelled() {
                return Err(RenderError::Cancelled);
            }
            let t = (f - start) as f32 / fps as f32;
            for (lane, drawer) in lanes.iter().zip(&prepared) {
                let mut buf = lane.enc.buffer();
                buf.reset(&lane.bg, index as u64);
                drawer.draw(&mut buf.canvas(), t);
                if !lane.enc.send(buf) {
                    broken = true;
                    break 'scenes;
                }
                done += 1;
            }
            progress(RenderProgress {
                phase: RenderPhase::Rendering,
                frames_done: done,
                frames_total: total,
            });
        }
    }
    if !broken {
        progress(RenderProgress {
            phase: RenderPhase::Encoding,
            frames_done: done,
            frames_total: total,
        });
    }
    for lane in lanes {
        lane.enc.finish(cancel)?;
    }
    if broken {
        // ffmpeg stopped reading yet exited cleanly: should not happen, but never report success.
        return Err(RenderError::Ffmpeg {
            status: "0".into(),
            stderr: "ffmpeg stopped reading frames early".into(),
        });
    }
    progress(RenderProgress {
        phase: RenderPhase::Finalising,
        frames_done: done,
        frames_total: total,
    });
    let mut finals = Vec::new();
    for ((_, fin), tmp) in plans.iter().zip(&temps) {
        std::fs::rename(tmp, fin)
            .map_err(|e| RenderError::Io(format!("moving the video to {}", fin.display()), e))?;
        finals.push(fin.clone());
    }
    temp_guard.0.clear(); // all renamed: nothing left to clean up
    Ok(RenderOutput {
        video: finals[0].clone(),
        reel: finals.get(1).cloned(),
        duration_secs: frames as f64 / fps as f64,
        width: w,
        height: h,
        frames,
    })
}

/// Draw one still frame of `spec` at `at_secs` (landscape, or the reel layout) and return it as
/// PNG bytes. Useful for previews and thumbnails.
pub fn render_still_png(
    catalog: &Catalog,
    spec: &VideoSpec,
    at_secs: f64,
    reel: bool,
) -> Result<Vec<u8>, RenderError> {
    let theme = catalog
        .theme(&spec.theme)
        .ok_or_else(|| RenderError::UnknownTheme(spec.theme.clone()))?;
    let frames = check_spec(spec)?;
    let fps = spec.fps;
    let (w, h) = if reel {
        REEL_SIZE
    } else {
        spec.quality.dimensions()
    };
    let frame = Frame {
        width: w,
        height: h,
    };
    let f = ((at_secs * fps as f64).round().max(0.0) as u64).min(frames - 1);
    let ranges = scene_frame_ranges(spec);
    let (i, (start, end)) = ranges
        .iter()
        .copied()
        .enumerate()
        .find(|(_, (s, e))| (*s..*e).contains(&f))
        .ok_or_else(|| RenderError::InvalidSpec("no scene at that time".into()))?;
    let mut fonts = catalog.font_system();
    let mut swash = SwashCache::new();
    let drawer = scene::prepare(
        &spec.scenes[i].content,
        &mut SceneContext {
            fonts: &mut fonts,
            swash: &mut swash,
            theme,
            frame,
            duration: (end - start) as f32 / fps as f32,
            fps,
        },
    );
    let mut buf = frame::FrameBuf::new(w, h);
    buf.reset(&paint::background(theme, w, h), 0);
    drawer.draw(&mut buf.canvas(), (f - start) as f32 / fps as f32);
    buf.pixmap
        .encode_png()
        .map_err(|e| RenderError::Io("encoding PNG".into(), std::io::Error::other(e.to_string())))
}

/// [`Renderer`] for the actors: runs [`render_blocking`] on tokio's blocking pool.
pub struct FfmpegRenderer {
    catalog: Arc<Catalog>,
    settings: RenderSettings,
}

impl FfmpegRenderer {
    pub fn new(catalog: Arc<Catalog>, settings: RenderSettings) -> Self {
        FfmpegRenderer { catalog, settings }
    }

    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}

#[async_trait]
impl Renderer for FfmpegRenderer {
    async fn render(
        &self,
        req: RenderRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderOutput, String> {
        let catalog = self.catalog.clone();
        let settings = self.settings.clone();
        // If this future is dropped (the caller gave up), stop the blocking render too.
        let token = cancel.child_token();
        let _stop_on_drop = token.clone().drop_guard();
        let job = tokio::task::spawn_blocking(move || {
            render_blocking(&catalog, &settings, &req, &|p| progress(p), &token)
        });
        match job.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(format!("Failed to render video: {e}")),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(format!(
                "Failed to render video: the render task was cancelled ({e})"
            )),
        }
    }
}

/// The final paths [`render_blocking`] writes for a job: (video, reel).
pub fn video_paths(out_dir: &Path, job_id: &str) -> (PathBuf, PathBuf) {
    (
        out_dir.join(format!("{job_id}.mp4")),
        out_dir.join(format!("{job_id}-reel.mp4")),
    )
}

#[cfg(test)]
mod tests;
