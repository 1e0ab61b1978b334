//! The ffmpeg child: raw yuv420p frames in on stdin (written by a dedicated thread, fed through
//! a bounded channel), H.264 (+ AAC music) MP4 out. At a variable frame rate the frames go in a
//! Matroska stream with timestamps ([`super::mkv`]) and a frame that repeats the previous one
//! is held back, so the encoder sees each hold once. The child dies with its [`Encoder`]: on
//! cancel, on error and on panic (Drop kills and reaps it).
//!
//! Music is looped or trimmed to the video, faded in and out, and loudness-normalised by a
//! static gain measured once per track ([`measure_loudness`], EBU R128 integrated loudness), so
//! `volume` means the same on every track and the encode pays nothing for it (single-pass
//! `loudnorm` runs at ~20× realtime on one core here: ~0.5 s of CPU per 10 s of video).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vidbuilder_domain::spec::{Format, FrameRate};

use super::frame::{FrameBuf, YuvState};
use super::mkv;
use super::paint::yuv420p_len;
use super::RenderError;

/// How many frames may wait between the drawing thread and the writer.
const QUEUE: usize = 4;
/// Extra libx264 settings (see [`ffmpeg_args`]).
pub const X264_PARAMS: &str = "aq-mode=3:aq-strength=1.4";
/// How many stderr lines are kept for error messages.
const STDERR_LINES: usize = 20;

fn not_found(ffmpeg: &Path) -> RenderError {
    RenderError::FfmpegNotFound(ffmpeg.display().to_string())
}

pub(crate) fn spawn_error(ffmpeg: &Path, e: std::io::Error) -> RenderError {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => not_found(ffmpeg),
        _ => RenderError::Io(format!("starting {}", ffmpeg.display()), e),
    }
}

/// Checks that ffmpeg runs and has the libx264 and aac encoders; returns its version line.
pub fn check_ffmpeg(ffmpeg: &Path) -> Result<String, RenderError> {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(ffmpeg, e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default().trim().to_string();
    if !out.status.success() || !first.starts_with("ffmpeg version") {
        return Err(RenderError::FfmpegUnusable(
            ffmpeg.display().to_string(),
            format!("`-version` did not answer like ffmpeg ({})", out.status),
        ));
    }
    let version = first
        .split(" Copyright")
        .next()
        .unwrap_or(&first)
        .to_string();
    let enc = Command::new(ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(ffmpeg, e))?;
    let list = String::from_utf8_lossy(&enc.stdout);
    let has = |name: &str| {
        list.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(name))
    };
    for (name, what) in [
        ("libx264", "the libx264 H.264 encoder"),
        ("aac", "the aac audio encoder"),
    ] {
        if !has(name) {
            return Err(RenderError::FfmpegUnusable(
                ffmpeg.display().to_string(),
                format!("{version} lacks {what}; install a full build (Debian/Ubuntu: apt-get install ffmpeg)"),
            ));
        }
    }
    Ok(version)
}

/// Background music for one encode.
#[derive(Debug, Clone)]
pub struct AudioInput {
    /// The music file (looped to the video's length).
    pub path: PathBuf,
    /// Linear gain, applied after loudness normalisation.
    pub volume: f32,
    /// Gain in dB that brings the track to [`TARGET_LUFS`] (see [`normalising_gain_db`]).
    pub gain_db: f32,
    /// Lowered under the voice-overs: their level and windows (seconds of the video).
    pub duck: Option<Ducking>,
}

/// The music lowered to `level` during each window (`vidbuilder_domain::spec::duck_gain`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ducking {
    /// The music's gain inside a window, 0–1.
    pub level: f32,
    /// `(start, end)` of each voice-over, in seconds of the video.
    pub windows: Vec<(f64, f64)>,
}

/// The ffmpeg expression (of `t`, seconds) computing `duck_gain` for `d`.
pub fn duck_expr(d: &Ducking) -> String {
    let r = vidbuilder_domain::spec::DUCK_RAMP_SECONDS;
    let mut w = String::from("0");
    for &(a, b) in &d.windows {
        w = format!(
            "max({w},clip((t-{s:.6})/{r},0,1)*clip(({e:.6}-t)/{r},0,1))",
            s = a - r,
            e = b + r
        );
    }
    format!("1-{:.5}*{w}", 1.0 - d.level.clamp(0.0, 1.0) as f64)
}

/// Integrated loudness every track is brought to before `volume` applies.
pub const TARGET_LUFS: f64 = -16.0;
/// Music fade-in length, in seconds (at most a quarter of the video).
pub const MUSIC_FADE_IN: f64 = 1.0;
/// Music fade-out length, in seconds (at most a third of the video).
pub const MUSIC_FADE_OUT: f64 = 1.5;

/// The EBU R128 integrated loudness of an audio file, in LUFS (ffmpeg's `ebur128` filter;
/// ~250× realtime). `None` for silence.
pub fn measure_loudness(ffmpeg: &Path, file: &Path) -> Result<Option<f64>, RenderError> {
    measure_loudness_with(ffmpeg, file, &[])
}

/// [`measure_loudness`] with input options before `-i` (e.g. a demuxer whitelist).
pub fn measure_loudness_with(
    ffmpeg: &Path,
    file: &Path,
    input: &[&str],
) -> Result<Option<f64>, RenderError> {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostats", "-nostdin"])
        .args(input)
        .arg("-i")
        .arg(file)
        .args([
            "-map",
            "0:a:0",
            "-af",
            "aformat=sample_fmts=fltp:channel_layouts=stereo,ebur128",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(ffmpeg, e))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(4).collect();
        return Err(RenderError::Ffmpeg {
            status: out.status.code().map(|c| c.to_string()).unwrap_or_default(),
            stderr: format!(
                "measuring the loudness of {}: {}",
                file.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    // The summary's "Integrated loudness:" block is followed by "I: <value> LUFS".
    let summary = text.rsplit("Integrated loudness:").next().unwrap_or("");
    let value = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("I:"))
        .and_then(|v| v.trim().trim_end_matches("LUFS").trim().parse::<f64>().ok());
    Ok(value.filter(|v| v.is_finite() && *v > -70.0))
}

/// The gain that brings a track measured at `lufs` to [`TARGET_LUFS`], bounded so a nearly
/// silent track is not blown up into noise.
pub fn normalising_gain_db(lufs: Option<f64>) -> f32 {
    match lufs {
        Some(l) => (TARGET_LUFS - l).clamp(-30.0, 24.0) as f32,
        None => 0.0,
    }
}

/// The audio filter graph for `audio` under a video of `secs` seconds: a stereo 48 kHz stream
/// exactly `secs` long (the input is looped upstream), normalised, scaled by `volume`, faded.
pub fn music_filter(audio: &AudioInput, secs: f64) -> String {
    let fade_in = MUSIC_FADE_IN.min(secs / 4.0);
    let fade_out = MUSIC_FADE_OUT.min(secs / 3.0);
    let gain = 10f64.powf(audio.gain_db as f64 / 20.0) * audio.volume.clamp(0.0, 4.0) as f64;
    // A track brought up a lot could clip; a limiter only where that can happen (it costs).
    let limiter = if gain > 1.0 {
        ",alimiter=limit=0.97:level=disabled"
    } else {
        ""
    };
    let duck = match &audio.duck {
        Some(d) if !d.windows.is_empty() => {
            format!(",volume=volume='{}':eval=frame", duck_expr(d))
        }
        _ => String::new(),
    };
    format!(
        "[1:a]aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,\
         atrim=duration={secs:.6},asetpts=PTS-STARTPTS,volume={gain:.5}{limiter}{duck},\
         afade=t=in:st=0:d={fade_in:.3},afade=t=out:st={st:.6}:d={fade_out:.3}[aout]",
        st = (secs - fade_out).max(0.0),
    )
}

/// A video clip's sound in the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipAudio {
    /// The clip's file.
    pub path: PathBuf,
    /// Where in the video it starts, in seconds.
    pub at: f64,
    /// How long it may last in the video (its scene), in seconds.
    pub length: f64,
    /// The part of the source played, in source seconds.
    pub trim: (f64, f64),
    /// Playback rate (the pitch is kept).
    pub speed: f64,
    /// Linear gain (a voice-over's includes its normalising gain).
    pub volume: f32,
    /// Start again at the end instead of stopping.
    pub looped: bool,
    /// The demuxers ffmpeg may use on the file (`video::FORMAT_WHITELIST` for a clip).
    pub formats: &'static str,
}

/// `atempo` steps making `speed` (each step is limited to 0.5–2).
fn atempo(speed: f64) -> String {
    let mut rest = speed;
    let mut steps = Vec::new();
    while rest > 2.0 + 1e-9 {
        steps.push(2.0);
        rest /= 2.0;
    }
    while rest < 0.5 - 1e-9 {
        steps.push(0.5);
        rest /= 0.5;
    }
    if (rest - 1.0).abs() > 1e-9 {
        steps.push(rest);
    }
    steps.iter().map(|s| format!(",atempo={s:.6}")).collect()
}

/// The filter chain of clip sound `c` read from input `input`, labelled `[c<k>]`: trimmed,
/// looped when asked, sped up or down, cut to its scene, scaled and moved to its start.
pub fn clip_filter(c: &ClipAudio, input: usize, k: usize) -> String {
    let (s, e) = c.trim;
    let looped = if c.looped {
        format!(
            ",aloop=loop=-1:size={}",
            ((e - s) * 48_000.0).ceil().max(1.0) as u64
        )
    } else {
        String::new()
    };
    format!(
        "[{input}:a]aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,\
         atrim=start={s:.6}:end={e:.6},asetpts=PTS-STARTPTS{looped}{tempo},\
         atrim=duration={len:.6},volume={vol:.5},adelay=delays={ms}:all=1[c{k}]",
        tempo = atempo(c.speed),
        len = c.length.max(0.0),
        // the client's volume (≤ 4) times a voice-over's normalising gain (≤ +24 dB)
        vol = c.volume.clamp(0.0, 64.0),
        ms = (c.at.max(0.0) * 1000.0).round() as u64,
    )
}

/// The whole audio graph for a video of `secs` seconds: the music (input 1, see
/// [`music_filter`]) and the clips' sounds (the inputs after it) mixed, unscaled, into one
/// stereo stream `[aout]` exactly `secs` long; `None` without any sound.
pub fn audio_graph(music: Option<&AudioInput>, clips: &[ClipAudio], secs: f64) -> Option<String> {
    if clips.is_empty() {
        return music.map(|m| music_filter(m, secs));
    }
    let mut parts = Vec::new();
    let mut labels = String::new();
    let first = if let Some(m) = music {
        parts.push(music_filter(m, secs).replace("[aout]", "[music]"));
        labels.push_str("[music]");
        2
    } else {
        1
    };
    for (k, c) in clips.iter().enumerate() {
        parts.push(clip_filter(c, first + k, k));
        labels.push_str(&format!("[c{k}]"));
    }
    let n = clips.len() + music.is_some() as usize;
    // A mix of loud clips could clip: limited like loud music.
    parts.push(format!(
        "{labels}amix=inputs={n}:duration=longest:dropout_transition=0:normalize=0,\
         alimiter=limit=0.97:level=disabled,apad,atrim=duration={secs:.6}[aout]"
    ));
    Some(parts.join(";"))
}

/// What to encode.
#[derive(Debug, Clone)]
pub struct EncodeParams<'a> {
    /// The ffmpeg executable.
    pub ffmpeg: &'a Path,
    /// x264 preset (`ultrafast` … `veryslow`).
    pub preset: &'a str,
    /// x264 constant rate factor, 0..=51.
    pub crf: u8,
    /// Frame width, in pixels.
    pub width: u32,
    /// Frame height, in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames that will be sent; the video lasts `frames / fps` seconds.
    pub frames: u64,
    /// Constant: every frame is encoded; variable: repeats are held back (see the module docs).
    pub frame_rate: FrameRate,
    /// The container and codecs: H.264/AAC MP4, VP9/Opus WebM, or a GIF (no sound).
    pub format: Format,
    /// Background music; `None`: no music.
    pub audio: Option<AudioInput>,
    /// Video clips' sounds; with neither these nor music the video has no audio track.
    pub clips: Vec<ClipAudio>,
    /// The MP4 file to write.
    pub out: &'a Path,
}

/// The ffmpeg command line for `p`.
pub fn ffmpeg_args(p: &EncodeParams) -> Vec<String> {
    let secs = p.frames as f64 / p.fps as f64;
    let variable = p.frame_rate == FrameRate::Variable;
    let mut a: Vec<String> = ["-hide_banner", "-nostats", "-loglevel", "error", "-y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if variable {
        // size, pixel format and timing come in the stream (see `mkv`)
        a.extend(["-f".into(), "matroska".into()]);
    } else {
        a.extend([
            "-f".into(),
            "rawvideo".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            "-s".into(),
            format!("{}x{}", p.width, p.height),
            "-r".into(),
            p.fps.to_string(),
        ]);
    }
    a.extend(["-i".into(), "pipe:0".into()]);
    if p.format == Format::Gif {
        gif_args(&mut a, p);
        return a;
    }
    if let Some(audio) = &p.audio {
        a.extend([
            "-stream_loop".into(),
            "-1".into(),
            "-t".into(),
            format!("{:.3}", secs + 1.0),
            "-i".into(),
        ]);
        a.push(audio.path.display().to_string());
    }
    for c in &p.clips {
        for s in crate::video::safe_input(c.formats) {
            a.push(s.into());
        }
        a.extend(["-vn".into(), "-i".into(), c.path.display().to_string()]);
    }
    let graph = audio_graph(p.audio.as_ref(), &p.clips, secs);
    if let Some(graph) = &graph {
        a.extend(["-filter_complex".into(), graph.clone()]);
        a.extend(["-map".into(), "0:v".into(), "-map".into(), "[aout]".into()]);
    } else {
        a.extend(["-map".into(), "0:v".into()]);
    }
    if p.format == Format::Webm {
        webm_args(&mut a, p, graph.is_some());
        return a;
    }
    for s in ["-c:v", "libx264", "-preset", p.preset, "-crf"] {
        a.push(s.into());
    }
    a.push(p.crf.to_string());
    // Auto-variance AQ biased to dark, flat areas keeps the dithered gradients from banding
    // (measured: visibly smoother backgrounds for the same speed, ~+50% bytes on static frames).
    if variable {
        // x264's rate control by frame count, not by timestamps: with timestamps a held frame
        // lasting a second gets the bits of a second of video (measured: all-scenes.json at
        // 1080p 9.4 MB instead of 6.4 MB; the timestamps in the file are the same either way).
        // `-fps_mode vfr` (ffmpeg 5.1+) keeps the gaps (mp4 would otherwise be filled back to a
        // constant rate). No B-frames: with them x264's decode times run ahead of a hold's
        // presentation times and the MP4 track ends early (ffprobe: a 3 s video's track
        // lasting 1.6 s).
        a.extend([
            "-x264-params".into(),
            format!("{X264_PARAMS}:force-cfr=1"),
            "-fps_mode".into(),
            "vfr".into(),
            "-bf".into(),
            "0".into(),
        ]);
    } else {
        a.extend(["-x264-params".into(), X264_PARAMS.into()]);
    }
    a.extend(["-pix_fmt".into(), "yuv420p".into()]);
    a.extend(BT709_TAGS.iter().map(|s| s.to_string()));
    // No `-frames:v`: the pipe carries exactly `frames` frames, and in ffmpeg ≤ 6 reaching a
    // stream's frame limit closes every stream of the file, cutting the music short.
    if graph.is_some() {
        for s in ["-c:a", "aac", "-b:a", "160k", "-ar", "48000"] {
            a.push(s.into());
        }
    }
    for s in ["-movflags", "+faststart", "-f", "mp4"] {
        a.push(s.into());
    }
    a.push(p.out.display().to_string());
    a
}

/// Copy the sound of the finished MP4 `sound_from` into each video-only MP4 of `jobs` (video
/// file, output), both streams copied as they are: the outputs of one render (landscape, reel,
/// other aspect ratios) carry the same soundtrack, so only the first output encodes it
/// (measured here: about 0.035 s of CPU per second of AAC at 160 kb/s, against ~0.1 s for a
/// copy). Each output's packets, sound and video, are then exactly those of encoding it whole
/// (checked with ffprobe, constant and variable frame rate). MP4 only: copied into WebM, the
/// Opus track's start moves the video by 7 ms, so a WebM output encodes its own. Each copy runs
/// as the GIF's passes do (`run_to_end`): killed when `cancel` fires.
pub fn mux_sound(
    ffmpeg: &Path,
    sound_from: &Path,
    jobs: &[(PathBuf, PathBuf)],
    cancel: &CancellationToken,
) -> Result<(), RenderError> {
    std::thread::scope(|s| {
        let runs: Vec<_> = jobs
            .iter()
            .map(|(video, out)| {
                let (video, sound, out) = (
                    video.display().to_string(),
                    sound_from.display().to_string(),
                    out.display().to_string(),
                );
                let args: Vec<String> = [
                    "-hide_banner",
                    "-nostats",
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    &video,
                    "-i",
                    &sound,
                    "-map",
                    "0:v",
                    "-map",
                    "1:a",
                    "-c",
                    "copy",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                    &out,
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                s.spawn(move || run_to_end(ffmpeg, &args, cancel))
            })
            .collect();
        // the rest are joined by the scope whatever the first error
        runs.into_iter()
            .try_for_each(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// The BT.709 colour tags every output carries (the frames are converted so).
const BT709_TAGS: [&str; 8] = [
    "-colorspace",
    "bt709",
    "-color_primaries",
    "bt709",
    "-color_trc",
    "bt709",
    "-color_range",
    "tv",
];

/// VP9 quality for an x264 CRF: VP9's scale runs higher for the same look (x264 20 ≈ VP9 33).
fn vp9_crf(x264_crf: u8) -> u8 {
    (x264_crf as u32 * 3 / 2 + 3).min(63) as u8
}

/// The rest of a WebM command line (after the inputs and the audio graph): VP9 in one pass at
/// constant quality, tuned for speed (`realtime`, row multithreading), Opus sound.
fn webm_args(a: &mut Vec<String>, p: &EncodeParams, audio: bool) {
    let speed = if p.preset.contains("fast") || p.preset == "ultrafast" {
        "8"
    } else {
        "6"
    };
    for s in [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        speed,
        "-row-mt",
        "1",
        "-tile-columns",
        "2",
        "-b:v",
        "0",
        "-crf",
    ] {
        a.push(s.into());
    }
    a.push(vp9_crf(p.crf).to_string());
    a.extend(["-pix_fmt".into(), "yuv420p".into()]);
    a.extend(BT709_TAGS.iter().map(|s| s.to_string()));
    if audio {
        for s in ["-c:a", "libopus", "-b:a", "128k", "-ar", "48000"] {
            a.push(s.into());
        }
    }
    a.extend(["-f".into(), "webm".into(), p.out.display().to_string()]);
}

/// The rest of a GIF's first command line (see [`GifPasses`]): the frames encoded losslessly
/// to the intermediate. A GIF has no sound.
fn gif_args(a: &mut Vec<String>, p: &EncodeParams) {
    // the first of the GIF's passes (see `GifPasses`): the frames, losslessly
    for s in [
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "matroska",
    ] {
        a.push(s.into());
    }
    a.push(GifPasses::new(p.ffmpeg, p.out).source.display().to_string());
}

/// A running ffmpeg encode. Dropping it without [`Encoder::finish`] kills the child.
///
/// [`Encoder::capture`] makes one without ffmpeg that keeps the converted frames in memory (the
/// benchmark's pre-rendered input).
pub struct Encoder {
    child: Option<Child>,
    reaped: bool,
    tx: Option<SyncSender<FrameBuf>>,
    recycle: Receiver<FrameBuf>,
    writer: Option<JoinHandle<WriterResult>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
    width: u32,
    height: u32,
    /// A GIF's palette passes, run once the frames are encoded (see [`GifPasses`]).
    gif: Option<GifPasses>,
}

/// A GIF is made in two passes over a lossless intermediate, so that the whole video shares one
/// palette made for all of its frames: a palette per frame (made on the fly) changes every
/// pixel's dithering from one frame to the next and defeats GIF's frame-difference compression
/// (measured on a 9.5 s 720p spec: 97 MB with a palette per frame, 10 MB with one palette, and
/// the two passes take less time than the one); holding every frame for one palette would hold
/// the whole video in memory. The first pass encodes the frames losslessly (x264 `qp 0`,
/// `ultrafast`) while they are drawn; then `palettegen` reads it for the palette and `paletteuse`
/// writes the GIF, re-dithering only the rectangle that changed from the previous frame.
struct GifPasses {
    ffmpeg: PathBuf,
    /// The lossless intermediate.
    source: PathBuf,
    /// The palette image.
    palette: PathBuf,
    /// The GIF to write.
    out: PathBuf,
}

impl GifPasses {
    fn new(ffmpeg: &Path, out: &Path) -> GifPasses {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        GifPasses {
            ffmpeg: ffmpeg.to_path_buf(),
            source: out.with_file_name(format!("{name}.src.mkv")),
            palette: out.with_file_name(format!("{name}.palette.png")),
            out: out.to_path_buf(),
        }
    }

    /// Makes the palette, then the GIF; either pass is killed when `cancel` fires.
    fn run(&self, cancel: &CancellationToken) -> Result<(), RenderError> {
        let src = self.source.display().to_string();
        let palette = self.palette.display().to_string();
        let first: Vec<String> = [
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-y",
            "-i",
            &src,
            "-vf",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("{GIF_RGB},palettegen=stats_mode=diff:reserve_transparent=0"),
            "-frames:v".into(),
            "1".into(),
            "-update".into(),
            "1".into(),
            palette.clone(),
        ])
        .collect();
        run_to_end(&self.ffmpeg, &first, cancel)?;
        let second: Vec<String> = [
            "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-i", &src, "-i", &palette,
            "-lavfi",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!(
                "[0:v]{GIF_RGB}[v];[v][1:v]paletteuse=dither=bayer:bayer_scale=3:diff_mode=rectangle"
            ),
            "-loop".into(),
            "0".into(),
            "-f".into(),
            "gif".into(),
            self.out.display().to_string(),
        ])
        .collect();
        run_to_end(&self.ffmpeg, &second, cancel)
    }

    /// Removes the intermediate files.
    fn clean(&self) {
        let _ = std::fs::remove_file(&self.source);
        let _ = std::fs::remove_file(&self.palette);
    }
}

/// Our BT.709 limited-range frames as full-range RGB (what `palettegen` reads).
const GIF_RGB: &str = "scale=in_color_matrix=bt709:in_range=tv:out_range=pc,format=rgb24";

/// Runs ffmpeg with `args` to the end; killed when `cancel` fires. Its error output is the
/// error's text.
fn run_to_end(
    ffmpeg: &Path,
    args: &[String],
    cancel: &CancellationToken,
) -> Result<(), RenderError> {
    let mut child = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(ffmpeg, e))?;
    let mut pipe = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if cancel.is_cancelled() => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(RenderError::Cancelled);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RenderError::Io("waiting for ffmpeg".into(), e));
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    Err(RenderError::Ffmpeg {
        status: status
            .code()
            .map_or_else(|| status.to_string(), |c| c.to_string()),
        stderr: {
            let lines: Vec<&str> = stderr.lines().collect();
            lines[lines.len().saturating_sub(STDERR_LINES)..].join("\n")
        },
    })
}

impl Encoder {
    /// Starts ffmpeg with [`ffmpeg_args`] and the writer thread that feeds it frames.
    pub fn spawn(p: &EncodeParams) -> Result<Encoder, RenderError> {
        let mut child = Command::new(p.ffmpeg)
            .args(ffmpeg_args(p))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(p.ffmpeg, e))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let ring = stderr.clone();
        let stderr_thread = std::thread::Builder::new()
            .name("ffmpeg-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr_pipe).lines() {
                    let Ok(line) = line else { break };
                    let line = line.trim_end();
                    if line.is_empty() {
                        continue;
                    }
                    let mut r = ring.lock().unwrap_or_else(|e| e.into_inner());
                    if r.len() == STDERR_LINES {
                        r.pop_front();
                    }
                    r.push_back(line.chars().take(400).collect());
                }
            })
            .map_err(|e| RenderError::Io("starting the ffmpeg stderr reader".into(), e));
        let stderr_thread = match stderr_thread {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };

        let (tx, rx) = sync_channel::<FrameBuf>(QUEUE);
        let (recycle_tx, recycle) = std::sync::mpsc::channel::<FrameBuf>();
        let (w, h) = (p.width as usize, p.height as usize);
        let timing = match p.frame_rate {
            FrameRate::Constant => Timing::Constant,
            FrameRate::Variable => Timing::Variable(p.fps),
        };
        let writer = std::thread::Builder::new()
            .name("ffmpeg-writer".into())
            .spawn(move || {
                let mut out = FramePipe::new(stdin, yuv420p_len(w, h));
                let (stats, lent) = write_frames(&mut out, rx, recycle_tx, w, h, timing)?;
                drop(out); // end of input: ffmpeg finishes
                Ok(Written {
                    captured: Vec::new(),
                    stats,
                    _lent: Some(lent),
                })
            });
        let writer = match writer {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RenderError::Io("starting the ffmpeg writer".into(), e));
            }
        };
        Ok(Encoder {
            child: Some(child),
            reaped: false,
            tx: Some(tx),
            recycle,
            writer: Some(writer),
            stderr,
            stderr_thread: Some(stderr_thread),
            width: p.width,
            height: p.height,
            gif: (p.format == Format::Gif).then(|| GifPasses::new(p.ffmpeg, p.out)),
        })
    }

    /// An encoder that converts frames to yuv420p like the real one but appends them to memory;
    /// [`Encoder::finish_captured`] returns them (`frames` sizes the allocation).
    pub fn capture(width: u32, height: u32, frames: u64) -> Result<Encoder, RenderError> {
        let (tx, rx) = sync_channel::<FrameBuf>(QUEUE);
        let (recycle_tx, recycle) = std::sync::mpsc::channel::<FrameBuf>();
        let (w, h) = (width as usize, height as usize);
        let writer = std::thread::Builder::new()
            .name("frame-capture".into())
            .spawn(move || {
                let mut mem = Vec::with_capacity(yuv420p_len(w, h) * frames as usize);
                let (stats, _) = write_frames(&mut mem, rx, recycle_tx, w, h, Timing::Constant)?;
                Ok(Written {
                    captured: mem,
                    stats,
                    _lent: None,
                })
            })
            .map_err(|e| RenderError::Io("starting the capture thread".into(), e))?;
        Ok(Encoder {
            child: None,
            reaped: true,
            tx: Some(tx),
            recycle,
            writer: Some(writer),
            stderr: Arc::new(Mutex::new(VecDeque::new())),
            stderr_thread: None,
            width,
            height,
            gif: None,
        })
    }

    /// A frame buffer to draw into (recycled from the writer when possible).
    pub fn buffer(&self) -> FrameBuf {
        self.recycle
            .try_recv()
            .unwrap_or_else(|_| FrameBuf::new(self.width, self.height))
    }

    /// Queue a frame; blocks while the queue is full. `false` when the writer has stopped
    /// (ffmpeg died): call [`Encoder::finish`] to learn why.
    pub fn send(&self, frame: FrameBuf) -> bool {
        match &self.tx {
            Some(tx) => tx.send(frame).is_ok(),
            None => false,
        }
    }

    /// The child's process id (for tests and logs); 0 for a capture.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn stderr_tail(&self) -> String {
        let r = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn kill(&mut self) {
        if !self.reaped {
            if let Some(child) = &mut self.child {
                let _ = child.kill();
                let _ = child.wait();
            }
            self.reaped = true;
        }
    }

    /// Close stdin, let ffmpeg finish, and report how it went (and where the writer's time
    /// went). Polls `cancel` throughout and kills ffmpeg when it fires.
    pub fn finish(self, cancel: &CancellationToken) -> Result<WriterStats, RenderError> {
        self.finish_captured(cancel).map(|(_, stats)| stats)
    }

    /// [`Encoder::finish`], also returning the captured yuv420p frames of a
    /// [`Encoder::capture`] (empty for a real encode).
    pub fn finish_captured(
        mut self,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, WriterStats), RenderError> {
        self.tx = None; // the writer drains the queue, then closes ffmpeg's stdin
        let writer = self.writer.take().expect("writer");
        while !writer.is_finished() {
            if cancel.is_cancelled() {
                self.kill();
                let _ = writer.join();
                return Err(RenderError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let written = match writer.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        if self.child.is_none() {
            return written
                .map(|w| (w.captured, w.stats))
                .map_err(|e| RenderError::Io("capturing frames".into(), e));
        }
        let status = loop {
            let polled = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .expect("checked above");
            match polled {
                Ok(Some(status)) => break status,
                Ok(None) => {
                    if cancel.is_cancelled() {
                        self.kill();
                        return Err(RenderError::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    self.kill();
                    return Err(RenderError::Io("waiting for ffmpeg".into(), e));
                }
            }
        };
        self.reaped = true;
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        if !status.success() {
            let code = status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| status.to_string());
            let mut stderr = self.stderr_tail();
            if stderr.is_empty() {
                stderr = "(no error output)".into();
            }
            return Err(RenderError::Ffmpeg {
                status: code,
                stderr,
            });
        }
        // ffmpeg has exited: the frames it was reading (`Written::_lent`) may go now
        let written = written
            .map(|w| (w.captured, w.stats))
            .map_err(|e| RenderError::Io("writing frames to ffmpeg".into(), e))?;
        if let Some(gif) = &self.gif {
            gif.run(cancel)?;
        }
        Ok(written)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.tx = None;
        self.kill();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        if let Some(gif) = &self.gif {
            gif.clean();
        }
    }
}

/// What the writer thread ends with: what it captured of the encoder's output (when asked) and
/// its timings.
type WriterResult = std::io::Result<Written>;

/// What the writer thread wrote.
struct Written {
    /// The frames, for a capture.
    captured: Vec<u8>,
    stats: WriterStats,
    /// The yuv buffers, which ffmpeg may still be reading (see [`FramePipe`]): dropped only
    /// once it has exited.
    _lent: Option<YuvState>,
}

/// Where the writer thread's time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    /// Frames written.
    pub frames: u64,
    /// Of those, frames held back at a variable frame rate (repeats of the previous frame that
    /// the encoder never saw: the previous frame lasts longer instead).
    pub held: u64,
    /// Converting RGBA to yuv420p (only the regions that changed).
    pub convert: Duration,
    /// Writing to ffmpeg's stdin (blocks while ffmpeg does not read: the encoder is the limit).
    pub write: Duration,
    /// Waiting for the drawing thread's next frame (the drawing is the limit).
    pub idle: Duration,
    /// Frames converted in full, in part (or blended onto their base picture), and not at all
    /// (identical to the previous one); and of all those, the frames on the base-picture path
    /// (`yuv.rs`).
    pub conversions: [u64; 4],
}

/// How the writer hands frames over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timing {
    /// Raw frames back to back, every one (`-f rawvideo`).
    Constant,
    /// A Matroska stream at this fps, repeats held back ([`mkv::HoldPolicy`]).
    Variable(u32),
}

/// Where the writer sends frames: ffmpeg's stdin ([`FramePipe`]) or memory (a capture).
pub(crate) trait FrameOut {
    /// A few bytes (a container's header or a frame's prefix), copied.
    fn bytes(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// A whole frame. `true` when it was handed over by reference: its memory must not change
    /// until another frame has been handed over after it (see [`FramePipe`]).
    fn frame(&mut self, data: &[u8]) -> std::io::Result<bool>;
}

impl FrameOut for Vec<u8> {
    fn bytes(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }

    fn frame(&mut self, data: &[u8]) -> std::io::Result<bool> {
        self.extend_from_slice(data);
        Ok(false)
    }
}

/// An encoder's stdin (or any pipe), fed whole frames.
///
/// On Linux, frames at least twice the pipe's capacity are handed over with `vmsplice`: the
/// pipe takes references to their pages instead of a copy (at 1080p this saves ~1.5 ms of CPU
/// a frame in the writer, and some in ffmpeg's reads). ffmpeg reads the pages themselves, so a
/// frame's memory must stay unchanged until ffmpeg has read it. The pipe never holds more than
/// its capacity, so once a later frame (larger than that) has been handed over whole, every
/// earlier one has been read: the writer converts into a buffer other than the one it lent last
/// ([`YuvState::lend`]). The last frames lent must outlive ffmpeg's reads: the writer returns
/// its buffers, kept until the process has exited. Smaller frames, and other systems, are
/// copied with `write`.
pub struct FramePipe {
    out: std::fs::File,
    splice: bool,
}

impl FramePipe {
    /// The pipe to an encoder's stdin, for frames of `frame_len` bytes: grown to 1 MiB (fewer
    /// wake-ups) when frames are large, and splicing when a frame is at least twice its
    /// capacity.
    pub fn new(out: impl Into<std::os::fd::OwnedFd>, frame_len: usize) -> FramePipe {
        let out = std::fs::File::from(out.into());
        #[cfg(target_os = "linux")]
        let splice = {
            use nix::fcntl::{fcntl, FcntlArg};
            if frame_len >= 2 << 20 {
                let _ = fcntl(&out, FcntlArg::F_SETPIPE_SZ(1 << 20));
            }
            matches!(fcntl(&out, FcntlArg::F_GETPIPE_SZ), Ok(cap) if cap > 0 && frame_len >= 2 * cap as usize)
        };
        #[cfg(not(target_os = "linux"))]
        let splice = {
            let _ = frame_len;
            false
        };
        FramePipe { out, splice }
    }

    /// The pipe to an encoder's stdin, every frame copied with `write`.
    pub fn copying(out: impl Into<std::os::fd::OwnedFd>) -> FramePipe {
        FramePipe {
            out: std::fs::File::from(out.into()),
            splice: false,
        }
    }

    /// Whether frames are handed over by reference.
    pub fn splices(&self) -> bool {
        self.splice
    }

    /// Write a few bytes (copied).
    pub fn bytes(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.out.write_all(data)
    }

    /// Write a whole frame; `true` when it went by reference (then its memory must not change
    /// until another frame has been written after it, nor be freed before ffmpeg has exited).
    pub fn frame(&mut self, data: &[u8]) -> std::io::Result<bool> {
        #[cfg(target_os = "linux")]
        if self.splice {
            use nix::fcntl::{vmsplice, SpliceFFlags};
            let mut at = 0;
            while at < data.len() {
                match vmsplice(
                    &self.out,
                    &[std::io::IoSlice::new(&data[at..])],
                    SpliceFFlags::empty(),
                ) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => at += n,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(true);
        }
        self.out.write_all(data)?;
        Ok(false)
    }
}

impl FrameOut for FramePipe {
    fn bytes(&mut self, data: &[u8]) -> std::io::Result<()> {
        FramePipe::bytes(self, data)
    }

    fn frame(&mut self, data: &[u8]) -> std::io::Result<bool> {
        FramePipe::frame(self, data)
    }
}

/// Converts and writes every frame `rx` brings to `out`, handing each buffer back through
/// `recycle`. Returns its timings and the yuv state, whose buffers ffmpeg may still be reading
/// (see [`FramePipe`]): keep it until ffmpeg has exited.
pub(crate) fn write_frames<O: FrameOut>(
    out: &mut O,
    rx: Receiver<FrameBuf>,
    recycle: std::sync::mpsc::Sender<FrameBuf>,
    w: usize,
    h: usize,
    timing: Timing,
) -> std::io::Result<(WriterStats, YuvState)> {
    let mut yuv = YuvState::new(w, h);
    let mut stats = WriterStats::default();
    let mut prefix = Vec::with_capacity(32);
    let mut holds = match timing {
        Timing::Constant => None,
        Timing::Variable(fps) => {
            out.bytes(&mkv::header(w as u32, h as u32, fps))?;
            Some((fps, mkv::HoldPolicy::new(fps)))
        }
    };
    let mut t = Instant::now();
    for mut frame in rx {
        let t1 = Instant::now();
        stats.idle += t1 - t;
        let repeats = yuv.stats[2];
        yuv.convert(&mut frame);
        let repeat = yuv.stats[2] > repeats;
        let _ = recycle.send(frame);
        let t2 = Instant::now();
        stats.convert += t2 - t1;
        let n = stats.frames;
        stats.frames += 1;
        if let Some((fps, policy)) = &mut holds {
            if !policy.send(n, repeat) {
                stats.held += 1;
                t = Instant::now();
                continue;
            }
            mkv::frame_prefix(n, *fps, yuv.current().len(), &mut prefix);
            out.bytes(&prefix)?;
        }
        if out.frame(yuv.current())? {
            yuv.lend();
        }
        t = Instant::now();
        stats.write += t - t2;
    }
    if let Some((fps, policy)) = &holds {
        let last = stats.frames.saturating_sub(1);
        if stats.frames > 0 && policy.finish(last) {
            // the video lasts to its end: its last frame is sent even when it repeats
            mkv::frame_prefix(last, *fps, yuv.current().len(), &mut prefix);
            out.bytes(&prefix)?;
            if out.frame(yuv.current())? {
                yuv.lend();
            }
            stats.held -= 1;
        }
    }
    stats.conversions = yuv.stats;
    Ok((stats, yuv))
}

#[cfg(test)]
mod tests;
