//! # vidbuilder-render
//!
//! The video renderer: frames drawn in Rust (tiny-skia + cosmic-text), converted to yuv420p
//! BT.709 in Rust, and piped raw into an ffmpeg child (libx264, plus AAC music).
//!
//! Per render: each output (the landscape video, and the 1080×1920 reel when asked for) gets a
//! [`compose::Composer`] and its own ffmpeg child fed by a writer thread through a bounded
//! channel, so drawing, conversion and encoding overlap. With several MP4 outputs, only the
//! first encodes the sound; the others are encoded video-only and get its track copied in at the end
//! ([`ffmpeg::mux_sound`]). Each scene shapes and rasterises its
//! text once into cached layers; a frame is its scene's cached background restored where the
//! last frame drew, plus a few composited layers, and a frame identical to what a pooled buffer
//! already holds is not drawn at all. Transitions ([`transition`]) are centred on the cut: inside
//! their window both scenes are drawn into scratch buffers and composited. The first scene's
//! middle frame becomes the poster JPEG ([`poster`]).
#![forbid(unsafe_code)]

mod captions;
pub mod catalog;
pub mod compose;
pub mod ffmpeg;
pub mod fonts;
pub mod frame;
pub mod image;
pub mod mkv;
pub mod paint;
pub mod poster;
mod resample;
pub mod scene;
mod simd;
pub mod text;
pub mod theme;
pub mod transition;
pub mod video;
pub mod yuv;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmic_text::{FontSystem, SwashCache};
pub use tiny_skia::Pixmap;
pub use tokio_util::sync::CancellationToken;
use vidbuilder_domain::ports::{
    ExtraOutput, ProgressSink, RenderOutput, RenderPhase, RenderProgress, RenderRequest,
};
use vidbuilder_domain::spec::{Background, Format, OutputRole, VideoSpec};

pub use catalog::{Catalog, TrackInfo};
pub use ffmpeg::check_ffmpeg;
pub use theme::{Theme, ThemeColors, ThemeInfo};

use compose::Composer;
use ffmpeg::{EncodeParams, Encoder, WriterStats};
use poster::PosterJob;
use scene::Frame;
use transition::Timeline;

/// The vertical reel format.
pub const REEL_SIZE: (u32, u32) = (1080, 1920);

/// Why a render (or loading the catalog) failed. `Display` is a human message.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The ffmpeg executable (the path given) could not be found.
    #[error("ffmpeg not found at '{0}': install it (Debian/Ubuntu: apt-get install ffmpeg)")]
    FfmpegNotFound(String),
    /// ffmpeg (path, reason) is not ffmpeg or lacks libx264 or the aac encoder.
    #[error("ffmpeg at '{0}' cannot be used: {1}")]
    FfmpegUnusable(String, String),
    /// An ffmpeg run failed.
    #[error("ffmpeg exited with status {status}: {stderr}")]
    Ffmpeg {
        /// Its exit code (or how it ended).
        status: String,
        /// The last lines of its error output.
        stderr: String,
    },
    /// The spec names a theme the catalog lacks.
    #[error("unknown theme '{0}'")]
    UnknownTheme(String),
    /// The spec names a music track the catalog lacks.
    #[error("unknown music track '{0}'")]
    UnknownTrack(String),
    /// The spec cannot be rendered (e.g. no scenes, an fps out of range, a non-positive scene duration).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A bad theme, music catalog or font in the catalog (the message names the file).
    #[error("configuration error: {0}")]
    Config(String),
    /// A file or thread operation failed: what was being done, and the error.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// An image of the spec could not be loaded; the message names the field.
    #[error("{0}")]
    Image(String),
    /// A media file of the spec (image, clip, sound, font) could not be fetched for a reason that
    /// may pass: a timeout, a failed or dropped connection, HTTP 408, 429 or 5xx, a download that
    /// could not be stored. The message names the field; the render is tried again.
    #[error("{0}")]
    MediaUnavailable(String),
    /// The render was cancelled.
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
    /// Where scene images may come from, and their limits.
    pub images: image::ImageSettings,
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

/// One output being made: what draws it, what encodes it, and where its poster goes.
struct Lane<'a> {
    composer: Composer<'a>,
    enc: Encoder,
    poster: Option<PathBuf>,
}

/// Where a render's time went (the benchmark's breakdown); summed over the outputs (lanes).
///
/// The drawing thread's time is `draw + composite + encoder_wait` (plus posters); the writer
/// threads' is `writer.convert + writer.write + writer.idle`. Whichever of the two waits less is
/// the limit: a large `encoder_wait` and `writer.write` mean the encoder is.
#[derive(Debug, Clone, Default)]
pub struct RenderStats {
    /// From the call until the first frame is asked for: music prepared, the first scene
    /// prepared (its clips' decoders started), ffmpeg started.
    pub setup: Duration,
    /// From the call until the first frame is handed to an encoder: setup (which prepares the
    /// first scene: shaping and rasterising its text, starting its clips), plus drawing the
    /// first frame and waiting for its clips' first frames.
    pub first_frame: Duration,
    /// Drawing frames (scene layers over their backgrounds), transitions' compositing excluded.
    pub draw: Duration,
    /// Compositing the two scenes of a transition.
    pub composite: Duration,
    /// The drawing thread blocked handing a frame over (the queue is full: the encoder is slower).
    pub encoder_wait: Duration,
    /// From the last frame handed over until every ffmpeg has exited (the encoder's backlog,
    /// the music, the MP4 index).
    pub drain: Duration,
    /// The writer threads: colour conversion, pipe writes, waiting for frames.
    pub writer: WriterStats,
    /// The whole call.
    pub total: Duration,
}

impl RenderStats {
    fn add_writer(&mut self, w: WriterStats) {
        let s = &mut self.writer;
        s.frames += w.frames;
        s.held += w.held;
        s.convert += w.convert;
        s.write += w.write;
        s.idle += w.idle;
        for (a, b) in s.conversions.iter_mut().zip(w.conversions) {
            *a += b;
        }
    }
}

/// The spec's theme, set in the spec's `font` when it names one.
fn theme_of<'c>(
    catalog: &'c Catalog,
    spec: &VideoSpec,
) -> Result<std::borrow::Cow<'c, Theme>, RenderError> {
    let theme = catalog
        .theme(&spec.theme)
        .ok_or_else(|| RenderError::UnknownTheme(spec.theme.clone()))?;
    Ok(match &spec.font {
        Some(f) => {
            let mut t = theme.clone();
            t.typography.family = f.family.clone();
            std::borrow::Cow::Owned(t)
        }
        None => std::borrow::Cow::Borrowed(theme),
    })
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

/// The sounds of `spec`'s clips in the mix: every clip that has sound and is not muted, from
/// where its scene comes into view for as long as the scene is on screen (as its picture).
fn clip_sounds(
    spec: &VideoSpec,
    timeline: &Timeline,
    images: &image::Images,
) -> Result<Vec<ffmpeg::ClipAudio>, RenderError> {
    let fps = spec.fps as f64;
    let mut out = Vec::new();
    for (_, i, clip) in spec.videos() {
        if clip.muted || clip.volume <= 0.0 {
            continue;
        }
        let src = images.video(&clip.src)?;
        if !src.probe.audio {
            continue;
        }
        let (start, end) = timeline.span(i);
        out.push(ffmpeg::ClipAudio {
            path: src.path.clone(),
            at: start as f64 / fps,
            length: (end - start) as f64 / fps,
            trim: (
                clip.trim_start,
                clip.trim_end.unwrap_or(f64::MAX).min(src.probe.duration),
            ),
            speed: clip.speed,
            volume: clip.volume,
            looped: clip.looped,
            formats: video::FORMAT_WHITELIST,
        });
    }
    Ok(out)
}

/// `(start, end)` of each voice-over, in seconds of the video.
type Windows = Vec<(f64, f64)>;

/// The voice-overs of `spec` in the mix (each from `offset` after its scene's start, normalised,
/// until it ends or the video does), and the windows in which they play.
fn voice_sounds(
    spec: &VideoSpec,
    images: &image::Images,
) -> Result<(Vec<ffmpeg::ClipAudio>, Windows), RenderError> {
    let fps = spec.fps as f64;
    let secs = spec.frame_count() as f64 / fps;
    let ranges = scene_frame_ranges(spec);
    let (mut sounds, mut windows) = (Vec::new(), Vec::new());
    for (_, i, voice) in spec.voices() {
        let src = images.sound(&voice.src)?;
        let at = ranges[i].0 as f64 / fps + voice.offset;
        if at >= secs {
            continue;
        }
        let length = src.duration.min(secs - at);
        windows.push((at, at + length));
        sounds.push(ffmpeg::ClipAudio {
            path: src.path.clone(),
            at,
            length,
            trim: (0.0, src.duration),
            speed: 1.0,
            volume: voice.volume * 10f32.powf(src.gain_db / 20.0),
            looped: false,
            formats: video::SOUND_FORMAT_WHITELIST,
        });
    }
    Ok((sounds, windows))
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

/// Draw every frame of every lane in order and hand each to its encoder; start each lane's
/// poster on the poster frame. Returns the poster jobs, or `None` if an encoder stopped reading
/// early (its `finish` says why). `on_frame` gets the number of frames handed over so far.
#[allow(clippy::too_many_arguments)]
fn drive(
    fonts: &mut FontSystem,
    swash: &mut SwashCache,
    lanes: &mut [Lane],
    frames: u64,
    poster_frame: u64,
    on_frame: &mut dyn FnMut(u64),
    cancel: &CancellationToken,
    started: Instant,
    stats: &mut RenderStats,
) -> Result<Option<Vec<PosterJob>>, RenderError> {
    let mut posters = Vec::new();
    let mut done = 0u64;
    stats.setup = started.elapsed();
    for f in 0..frames {
        if cancel.is_cancelled() {
            return Err(RenderError::Cancelled);
        }
        for lane in lanes.iter_mut() {
            let mut buf = lane.enc.buffer();
            let t0 = Instant::now();
            lane.composer.draw(f, &mut buf, fonts, swash)?;
            stats.draw += t0.elapsed();
            if f == poster_frame {
                if let Some(path) = &lane.poster {
                    let fr = lane.composer.frame();
                    posters.push(PosterJob::start(
                        buf.rgba(),
                        fr.width as usize,
                        fr.height as usize,
                        path,
                    )?);
                }
            }
            let t1 = Instant::now();
            if !lane.enc.send(buf) {
                return Ok(None);
            }
            let t2 = Instant::now();
            stats.encoder_wait += t2 - t1;
            if done == 0 {
                stats.first_frame = t2 - started;
            }
            done += 1;
        }
        on_frame(done);
    }
    for lane in lanes.iter() {
        stats.composite += lane.composer.composite_time();
    }
    stats.draw = stats.draw.saturating_sub(stats.composite);
    Ok(Some(posters))
}

/// The synchronous render pipeline. See the module docs; writes `<out_dir>/<jobId>.mp4` (and
/// `<jobId>-reel.mp4`), each with a poster `<jobId>.jpg` (`<jobId>-reel.jpg`), via temporary
/// names renamed only when complete.
///
/// `images` holds the spec's images, fetched and decoded beforehand ([`image::prefetch`]).
pub fn render_blocking(
    catalog: &Catalog,
    settings: &RenderSettings,
    req: &RenderRequest,
    images: &image::Images,
    progress: &dyn Fn(RenderProgress),
    cancel: &CancellationToken,
) -> Result<RenderOutput, RenderError> {
    render_with_stats(catalog, settings, req, images, progress, cancel).map(|(out, _)| out)
}

/// [`render_blocking`], also telling where the time went.
pub fn render_with_stats(
    catalog: &Catalog,
    settings: &RenderSettings,
    req: &RenderRequest,
    images: &image::Images,
    progress: &dyn Fn(RenderProgress),
    cancel: &CancellationToken,
) -> Result<(RenderOutput, RenderStats), RenderError> {
    let started = Instant::now();
    let mut stats = RenderStats::default();
    let spec = &req.spec;
    let theme = &theme_of(catalog, spec)?;
    let frames = check_spec(spec)?;
    let fps = spec.fps;
    // A GIF has no sound: nothing of the music, clips or voice-overs is prepared for it.
    let sound = spec.format().has_audio();
    let (voices, windows) = if sound {
        voice_sounds(spec, images)?
    } else {
        Default::default()
    };
    let audio = match spec.music.as_ref().filter(|_| sound) {
        Some(m) => Some(ffmpeg::AudioInput {
            duck: (m.duck < 1.0).then(|| ffmpeg::Ducking {
                level: m.duck,
                windows: windows.clone(),
            }),
            ..catalog.track_audio(&m.track_id, m.volume, &settings.ffmpeg, &settings.work_dir)?
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
    let format = spec.format();
    let ext = format.extension();
    let shapes = spec.shapes();
    let plans: Vec<(Frame, String)> = shapes
        .iter()
        .map(|s| {
            let frame = Frame {
                width: s.width,
                height: s.height,
            };
            (frame, s.stem(job))
        })
        .collect();
    let partial = |stem: &str, ext: &str| {
        req.out_dir
            .join(format!(".{stem}.{}.partial.{ext}", req.attempt))
    };
    let mut temp_guard = TempFiles(Vec::new());
    for (_, stem) in &plans {
        temp_guard.0.push(partial(stem, ext));
        temp_guard.0.push(partial(stem, "jpg"));
    }

    let timeline = Timeline::new(spec, theme);
    let mut clips = if sound {
        clip_sounds(spec, &timeline, images)?
    } else {
        Vec::new()
    };
    clips.extend(voices);
    let mut fonts = catalog.font_system_with(images.fonts());
    let mut swash = SwashCache::new();
    // Every output has the same sound: with several MP4s, only the first encodes it, and the
    // others are written video-only and get its encoded track copied in once it is done.
    let share_sound =
        format == Format::Mp4 && plans.len() > 1 && (audio.is_some() || !clips.is_empty());
    let video_only = |stem: &str| partial(stem, &format!("video.{ext}"));
    let mut lanes = Vec::with_capacity(plans.len());
    for (k, (frame, stem)) in plans.iter().enumerate() {
        let copies_sound = share_sound && k > 0;
        let out = if copies_sound {
            temp_guard.0.push(video_only(stem));
            video_only(stem)
        } else {
            partial(stem, ext)
        };
        // the first scene prepared first: its clips start decoding while the encoder starts
        let mut composer = Composer::new(spec, theme, images, &timeline, *frame);
        composer.warm_up(&mut fonts, &mut swash)?;
        let enc = Encoder::spawn(&EncodeParams {
            ffmpeg: &settings.ffmpeg,
            preset: &settings.preset,
            crf: settings.crf,
            width: frame.width,
            height: frame.height,
            fps,
            frames,
            frame_rate: spec.frame_rate,
            format,
            audio: audio.clone().filter(|_| !copies_sound),
            clips: if copies_sound {
                Vec::new()
            } else {
                clips.clone()
            },
            out: &out,
        })?;
        lanes.push(Lane {
            composer,
            enc,
            poster: Some(partial(stem, "jpg")),
        });
    }

    let total = frames * lanes.len() as u64;
    let report = |phase, frames_done| {
        progress(RenderProgress {
            phase,
            frames_done,
            frames_total: total,
        })
    };
    report(RenderPhase::Rendering, 0);
    let posters = drive(
        &mut fonts,
        &mut swash,
        &mut lanes,
        frames,
        timeline.poster_frame(),
        &mut |done| report(RenderPhase::Rendering, done),
        cancel,
        started,
        &mut stats,
    )?;
    if posters.is_some() {
        report(RenderPhase::Encoding, total);
    }
    let drain = Instant::now();
    for lane in lanes {
        stats.add_writer(lane.enc.finish(cancel)?);
    }
    stats.drain = drain.elapsed();
    let Some(posters) = posters else {
        // ffmpeg stopped reading yet exited cleanly: should not happen, but never report success.
        return Err(RenderError::Ffmpeg {
            status: "0".into(),
            stderr: "ffmpeg stopped reading frames early".into(),
        });
    };
    if share_sound {
        let jobs: Vec<(PathBuf, PathBuf)> = plans[1..]
            .iter()
            .map(|(_, stem)| (video_only(stem), partial(stem, ext)))
            .collect();
        ffmpeg::mux_sound(&settings.ffmpeg, &partial(&plans[0].1, ext), &jobs, cancel)?;
        for (video, _) in &jobs {
            let _ = std::fs::remove_file(video);
        }
    }
    let posters = posters
        .into_iter()
        .map(PosterJob::finish)
        .collect::<Result<Vec<_>, _>>()?;
    report(RenderPhase::Finalising, total);
    let mut finals = Vec::new();
    for (_, stem) in &plans {
        let video = req.out_dir.join(format!("{stem}.{ext}"));
        let poster = req.out_dir.join(format!("{stem}.jpg"));
        // The poster first: the video's appearance is what marks the output complete.
        for (tmp, fin) in [
            (partial(stem, "jpg"), &poster),
            (partial(stem, ext), &video),
        ] {
            std::fs::rename(&tmp, fin)
                .map_err(|e| RenderError::Io(format!("moving {}", fin.display()), e))?;
        }
        finals.push((video, poster));
    }
    debug_assert_eq!(posters.len(), finals.len());
    temp_guard.0.clear(); // all renamed: nothing left to clean up
    let mut out = RenderOutput {
        video: PathBuf::new(),
        reel: None,
        duration_secs: frames as f64 / fps as f64,
        width: shapes[0].width,
        height: shapes[0].height,
        frames,
        poster: None,
        reel_poster: None,
        extras: Vec::new(),
    };
    for (shape, (video, poster)) in shapes.iter().zip(finals) {
        match shape.role {
            OutputRole::Main => (out.video, out.poster) = (video, Some(poster)),
            OutputRole::Reel => (out.reel, out.reel_poster) = (Some(video), Some(poster)),
            OutputRole::Extra => out.extras.push(ExtraOutput {
                ratio: shape.ratio,
                video,
                poster: Some(poster),
            }),
        }
    }
    stats.total = started.elapsed();
    Ok((out, stats))
}

/// Every frame of `spec`'s landscape video (or, with `reel`, of its reel), drawn and converted
/// exactly as [`render_blocking`] does, as concatenated yuv420p frames in memory (the
/// benchmark's encoder-only input), with where the time went (no encoder competes for the
/// CPU here, so these are the drawing's and conversion's own costs). No files, no music, no
/// posters.
pub fn render_yuv_frames(
    catalog: &Catalog,
    spec: &VideoSpec,
    images: &image::Images,
    reel: bool,
) -> Result<(Vec<u8>, RenderStats), RenderError> {
    let theme = &theme_of(catalog, spec)?;
    let frames = check_spec(spec)?;
    let (w, h) = if reel {
        REEL_SIZE
    } else {
        spec.quality.dimensions()
    };
    let timeline = Timeline::new(spec, theme);
    let frame = Frame {
        width: w,
        height: h,
    };
    let mut lanes = [Lane {
        composer: Composer::new(spec, theme, images, &timeline, frame),
        enc: Encoder::capture(w, h, frames)?,
        poster: None,
    }];
    let cancel = CancellationToken::new();
    let mut stats = RenderStats::default();
    let started = Instant::now();
    let mut fonts = catalog.font_system_with(images.fonts());
    let mut swash = SwashCache::new();
    drive(
        &mut fonts,
        &mut swash,
        &mut lanes,
        frames,
        u64::MAX,
        &mut |_| {},
        &cancel,
        started,
        &mut stats,
    )?;
    let [lane] = lanes;
    let (yuv, writer) = lane.enc.finish_captured(&cancel)?;
    stats.add_writer(writer);
    stats.total = started.elapsed();
    Ok((yuv, stats))
}

/// The clips of `spec`'s landscape video (or of its reel), decoded as a render decodes them
/// (the same decoder commands, started as far ahead, each clip frame pulled at the output frame
/// that shows it) and their pixels discarded: the decoding a render of `spec` cannot do
/// without. The benchmark's floor for cases with clips runs this in step with x264 alone.
pub struct ClipDecoding {
    /// Per clip: the output frames its scene is in view (`start..end`), and its reader until
    /// the scene has passed.
    clips: Vec<(u64, u64, Option<video::ClipReader>)>,
    lead: u64,
    read: u64,
}

impl ClipDecoding {
    /// The decoders of `spec`'s clips (none started yet).
    pub fn new(
        catalog: &Catalog,
        spec: &VideoSpec,
        images: &image::Images,
        reel: bool,
    ) -> Result<ClipDecoding, RenderError> {
        let theme = &theme_of(catalog, spec)?;
        check_spec(spec)?;
        let (width, height) = if reel {
            REEL_SIZE
        } else {
            spec.quality.dimensions()
        };
        let timeline = Timeline::new(spec, theme);
        let mut clips = Vec::new();
        for (_, i, clip) in spec.videos() {
            // a background clip is dimmed towards the theme's colour (as `scene::prepare` does)
            let dim = match &spec.scenes[i].background {
                Some(Background::Video { clip: c, dim }) if std::ptr::eq(c, clip) => {
                    Some((theme.palette.background[0], *dim))
                }
                _ => None,
            };
            let look = video::ClipLook {
                width,
                height,
                fps: spec.fps,
                dim,
            };
            let src = images.video(&clip.src)?.clone();
            let (start, end) = timeline.span(i);
            clips.push((
                start,
                end,
                Some(video::ClipReader::new(src, clip.clone(), look)),
            ));
        }
        Ok(ClipDecoding {
            clips,
            lead: (spec.fps as f64 * compose::LEAD).ceil() as u64,
            read: 0,
        })
    }

    /// Pull every clip frame output frame `f` shows (frames are asked for in order); start the
    /// decoders of the scenes coming into view as the composer does; stop those that have
    /// passed.
    pub fn frame(&mut self, f: u64) -> Result<(), RenderError> {
        for (start, end, reader) in &mut self.clips {
            if f >= *end {
                *reader = None;
            }
            let Some(r) = reader else { continue };
            if f >= *start {
                // a scene draws its clip's frame `f - start` at frame `f`
                self.read += u64::from(r.frame(f - *start)?.is_some());
            } else if f + self.lead >= *start {
                r.prestart();
            }
        }
        Ok(())
    }

    /// Clip frames read so far.
    pub fn read(&self) -> u64 {
        self.read
    }
}

/// Draw one still frame of `spec` at `at_secs` (landscape, or the reel layout) and return it as
/// PNG bytes. Useful for previews and thumbnails.
pub fn render_still_png(
    catalog: &Catalog,
    spec: &VideoSpec,
    images: &image::Images,
    at_secs: f64,
    reel: bool,
) -> Result<Vec<u8>, RenderError> {
    let pixmap = render_still(catalog, spec, images, at_secs, reel)?;
    pixmap
        .encode_png()
        .map_err(|e| RenderError::Io("encoding PNG".into(), std::io::Error::other(e.to_string())))
}

/// Draw one still frame of `spec` at `at_secs` (landscape, or the reel layout), with the scene's
/// own background.
pub fn render_still(
    catalog: &Catalog,
    spec: &VideoSpec,
    images: &image::Images,
    at_secs: f64,
    reel: bool,
) -> Result<Pixmap, RenderError> {
    let size = if reel {
        REEL_SIZE
    } else {
        spec.quality.dimensions()
    };
    render_still_sized(catalog, spec, images, at_secs, size)
}

/// [`render_still`] at any frame size (`(width, height)`, e.g. an aspect ratio's
/// [`vidbuilder_domain::spec::AspectRatio::size`]), laid out for it.
pub fn render_still_sized(
    catalog: &Catalog,
    spec: &VideoSpec,
    images: &image::Images,
    at_secs: f64,
    (w, h): (u32, u32),
) -> Result<Pixmap, RenderError> {
    let theme = &theme_of(catalog, spec)?;
    let frames = check_spec(spec)?;
    let fps = spec.fps;
    let frame = Frame {
        width: w,
        height: h,
    };
    let f = ((at_secs * fps as f64).round().max(0.0) as u64).min(frames - 1);
    // Drawn exactly as in a render: the scene's own clock and background, transitions included.
    let timeline = Timeline::new(spec, theme);
    let mut composer = Composer::new(spec, theme, images, &timeline, frame).rgba_only();
    let mut fonts = catalog.font_system_with(images.fonts());
    let mut swash = SwashCache::new();
    let mut buf = frame::FrameBuf::new(w, h);
    composer.draw(f, &mut buf, &mut fonts, &mut swash)?;
    Ok(buf.pixmap)
}

/// Every image, video and voice-over source of `spec`, fetched (or read) and checked before any
/// frame is drawn: images decoded ([`image::prefetch`]), videos made local and probed
/// ([`video::prefetch`]), voice-overs made local, probed and measured
/// ([`video::prefetch_sounds`]; not for a GIF, which has no sound). The first that cannot be used fails the lot, naming its field.
pub async fn prefetch_media(
    spec: &VideoSpec,
    settings: &RenderSettings,
) -> Result<image::Images, RenderError> {
    let mut images = image::prefetch(spec, &settings.images).await?;
    let s = &settings.images;
    video::prefetch(spec, s, &settings.ffmpeg, &settings.work_dir, &mut images).await?;
    if spec.format().has_audio() {
        video::prefetch_sounds(spec, s, &settings.ffmpeg, &settings.work_dir, &mut images).await?;
    }
    fonts::prefetch(spec, s, &mut images).await?;
    Ok(images)
}

/// The renderer the actors drive (through the server's `Renderer` port): runs
/// [`render_blocking`] on tokio's blocking pool.
pub struct FfmpegRenderer {
    catalog: Arc<Catalog>,
    settings: RenderSettings,
}

impl FfmpegRenderer {
    /// A renderer drawing with `catalog` and encoding with `settings`.
    pub fn new(catalog: Arc<Catalog>, settings: RenderSettings) -> Self {
        FfmpegRenderer { catalog, settings }
    }

    /// The encoder and image settings it renders with.
    pub fn settings(&self) -> &RenderSettings {
        &self.settings
    }

    /// The themes, tracks and fonts it renders with.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}

impl FfmpegRenderer {
    /// Renders `req`: fetches its images, then draws and encodes on a blocking thread. Returns
    /// promptly (ffmpeg killed) once `cancel` fires or this future is dropped; a panic of the
    /// render thread is re-raised here.
    pub async fn render(
        &self,
        req: RenderRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderOutput, RenderError> {
        let catalog = self.catalog.clone();
        let settings = self.settings.clone();
        // Every image and video once, before any frame: a missing one fails the job early.
        let images = tokio::select! {
            r = prefetch_media(&req.spec, &settings) => match r {
                Ok(images) => images,
                Err(e) => return Err(e),
            },
            _ = cancel.cancelled() => return Err(RenderError::Cancelled),
        };
        // If this future is dropped (the caller gave up), stop the blocking render too.
        let token = cancel.child_token();
        let _stop_on_drop = token.clone().drop_guard();
        let job = tokio::task::spawn_blocking(move || {
            render_blocking(&catalog, &settings, &req, &images, &|p| progress(p), &token)
        });
        match job.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(RenderError::Cancelled),
        }
    }
}

#[cfg(test)]
mod motion_tests;
#[cfg(test)]
mod tests;
