//! Video clips: their sources made local and probed before any frame is drawn, and decoded
//! frame by frame by an ffmpeg child while the render draws.
//!
//! - A source is an asset (resolved under the assets directory exactly like an image, up to
//!   [`ImageSettings::max_video_bytes`]) or an http(s) URL downloaded to the work directory
//!   under the image fetch rules (SSRF guard, redirects re-checked, timeouts, size limit; any
//!   `video/*` or `application/octet-stream` type). Downloads are deleted when the render's
//!   [`Images`] are dropped.
//! - Every ffmpeg and ffprobe run on a source reads only that file: `-protocol_whitelist file`
//!   and `-format_whitelist` (MP4/MOV and Matroska/WebM demuxers only; for voice-overs also the
//!   plain sound formats) keep a crafted file (an HLS or concat playlist, say) from making ffmpeg
//!   open other files or URLs.
//! - [`probe`] reads the size, length and streams; [`prefetch`] refuses a source without a
//!   picture, of unknown length or too large, and a `trim.start` past its end, naming the field;
//!   [`prefetch_sounds`] does the same for voice-overs (which must have sound) and measures their
//!   loudness.
//! - [`ClipReader`] decodes one clip for one output: ffmpeg seeks to the trim, conforms the
//!   frames to the output's rate (`fps` after `setpts` for the speed, so variable-rate sources
//!   come out constant) and size (`cover`: scaled and cropped; `contain`: scaled and padded with
//!   transparent pixels), and writes raw RGBA that a reader thread collects a few frames ahead.
//!   A clip that ends before its scene holds its last frame, or starts again when it loops; a
//!   frame asked for out of order (a still preview) restarts ffmpeg at that point.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_skia::{IntSize, Pixmap};
use vidbuilder_domain::spec::{Fit, ImageSource, VideoClip, VideoSpec};

use crate::frame::ClipFrame;
use crate::image::{asset_file, next_chunk, open_url, ImageError, ImageSettings, Images};
use crate::theme::Rgb;
use crate::RenderError;

/// `c` in BT.709 limited-range yuv (unrounded), as the writer converts.
fn bt709_limited(c: Rgb) -> [f32; 3] {
    let (r, g, b) = (c.0 as f32, c.1 as f32, c.2 as f32);
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    [
        16.0 + y * 219.0 / 255.0,
        128.0 + (b - y) / 1.8556 * 224.0 / 255.0,
        128.0 + (r - y) / 1.5748 * 224.0 / 255.0,
    ]
}

/// The demuxers ffmpeg may use on a clip (their short names).
pub const FORMAT_WHITELIST: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm";
/// The demuxers ffmpeg may use on a voice-over: a clip's, and the plain sound formats.
pub const SOUND_FORMAT_WHITELIST: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mp3,wav,ogg,flac,aac";
/// Largest width or height of a clip's picture.
pub const MAX_VIDEO_SIDE: u32 = 8192;
/// How long one probe (or sample) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What ffprobe says about a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The picture's width, in pixels (as stored, before any rotation).
    pub width: u32,
    /// The picture's height, in pixels.
    pub height: u32,
    /// Length in seconds.
    pub duration: f64,
    /// Whether it has a sound stream.
    pub audio: bool,
    /// The picture's colour matrix when it is tagged with one other than BT.709 (e.g.
    /// `smpte170m`, `bt470bg`); `None` when BT.709 or untagged. See [`Probe::converts_matrix`].
    pub matrix: Option<String>,
}

impl Probe {
    /// Whether the picture's colours need converting to BT.709: it is tagged with another
    /// matrix, or untagged and of SD size (narrower than 1280 and at most 576 lines), which
    /// players take as BT.601 (mpv's rule); untagged HD they take as BT.709, as we do: passed
    /// through as it is.
    pub fn converts_matrix(&self) -> bool {
        self.matrix.is_some() || (self.width < 1280 && self.height <= 576)
    }
}

/// One clip source, ready to decode.
#[derive(Debug)]
pub struct VideoSource {
    /// The local file ffmpeg reads.
    pub path: PathBuf,
    /// What it holds.
    pub probe: Probe,
    /// The ffmpeg that decodes it.
    pub ffmpeg: PathBuf,
    /// The average colour of a frame from the middle of its first use (for readable text).
    pub average: [f32; 3],
    /// A downloaded copy, deleted with the source.
    downloaded: bool,
}

impl Drop for VideoSource {
    fn drop(&mut self) {
        if self.downloaded {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The ffprobe beside `ffmpeg` (same directory), or `ffprobe` on the PATH when `ffmpeg` is a
/// bare name.
pub fn ffprobe_for(ffmpeg: &Path) -> PathBuf {
    match ffmpeg.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("ffprobe"),
        _ => PathBuf::from("ffprobe"),
    }
}

/// The input options every run on a clip (or, with [`SOUND_FORMAT_WHITELIST`], a voice-over)
/// gets: see the module docs.
pub(crate) fn safe_input(formats: &'static str) -> [&'static str; 4] {
    ["-protocol_whitelist", "file", "-format_whitelist", formats]
}

async fn run(mut cmd: tokio::process::Command, what: &str) -> Result<Vec<u8>, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PROBE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("{what} took longer than {} s", PROBE_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what} could not be started: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(if last.is_empty() {
            "ffmpeg cannot read it as a video".to_string()
        } else {
            format!("ffmpeg cannot read it as a video ({})", last.trim())
        });
    }
    Ok(out.stdout)
}

/// Probe `path` with ffprobe: its picture's size, its length and whether it has sound. The
/// error says, for the client, why it cannot be used.
pub async fn probe(ffprobe: &Path, path: &Path) -> Result<Probe, String> {
    probe_with(ffprobe, path, FORMAT_WHITELIST, true).await
}

/// Probe a voice-over: it must have sound; `width`/`height` are 0 when it has no picture.
pub async fn probe_sound(ffprobe: &Path, path: &Path) -> Result<Probe, String> {
    let p = probe_with(ffprobe, path, SOUND_FORMAT_WHITELIST, false).await?;
    if !p.audio {
        return Err("it has no sound".into());
    }
    Ok(p)
}

async fn probe_with(
    ffprobe: &Path,
    path: &Path,
    formats: &'static str,
    picture: bool,
) -> Result<Probe, String> {
    let mut cmd = tokio::process::Command::new(ffprobe);
    cmd.args(["-v", "error"])
        .args(safe_input(formats))
        .args([
            "-show_entries",
            "stream=codec_type,width,height,duration,color_space:format=duration",
            "-of",
            "json",
        ])
        .arg(path);
    let out = run(cmd, "probing").await?;
    let v: serde_json::Value =
        serde_json::from_slice(&out).map_err(|_| "ffprobe gave no readable answer".to_string())?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let none = serde_json::Value::Null;
    let video = match streams.iter().find(|s| s["codec_type"] == "video") {
        Some(v) => v,
        None if picture => return Err("it has no video stream".to_string()),
        None => &none,
    };
    let dim = |k: &str| video[k].as_u64().unwrap_or(0) as u32;
    let (width, height) = (dim("width"), dim("height"));
    if picture && (width == 0 || height == 0) {
        return Err("its picture has no size".into());
    }
    if width > MAX_VIDEO_SIDE || height > MAX_VIDEO_SIDE {
        return Err(format!(
            "its picture is {width}×{height}; at most {MAX_VIDEO_SIDE} pixels per side"
        ));
    }
    let secs = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let duration = secs(&v["format"]["duration"])
        .or_else(|| streams.iter().find_map(|s| secs(&s["duration"])))
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| "its length is unknown".to_string())?;
    Ok(Probe {
        width,
        height,
        duration,
        audio: streams.iter().any(|s| s["codec_type"] == "audio"),
        matrix: video["color_space"]
            .as_str()
            .filter(|m| !matches!(*m, "bt709" | "unknown" | "reserved" | ""))
            .map(str::to_string),
    })
}

/// The average colour (0–1 RGB) of the frame at `at` seconds of `path`.
async fn average_at(ffmpeg: &Path, path: &Path, at: f64) -> Result<[f32; 3], String> {
    let mut cmd = tokio::process::Command::new(ffmpeg);
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"])
        .args(safe_input(FORMAT_WHITELIST))
        .args(["-ss", &format!("{at:.3}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=16:16,format=rgb24",
            "-f",
            "rawvideo",
            "pipe:1",
        ]);
    let px = run(cmd, "sampling a frame").await?;
    if px.len() < 3 {
        return Err("no frame could be decoded".into());
    }
    let mut sum = [0f64; 3];
    for p in px.chunks_exact(3) {
        for k in 0..3 {
            sum[k] += p[k] as f64 / 255.0;
        }
    }
    let n = (px.len() / 3) as f64;
    Ok(sum.map(|s| (s / n) as f32))
}

/// Check the trim of `clip` against the source's length: `Err((field suffix, message))`.
pub fn check_trim(clip: &VideoClip, probe: &Probe) -> Result<(), (&'static str, String)> {
    if clip.trim_start >= probe.duration {
        return Err((
            "trim.start",
            format!(
                "is past the end of the video ({:.2} s long)",
                probe.duration
            ),
        ));
    }
    Ok(())
}

/// The field naming a clip's trim, from the field naming its source.
pub fn sibling_field(src_field: &str, name: &str) -> String {
    match src_field.rsplit_once('.') {
        Some((parent, _)) => format!("{parent}.{name}"),
        None => name.to_string(),
    }
}

/// Checks a spec's asset videos at submission (what can be checked without fetching
/// anything), remembering what each file (by path, size and modification time) was found to be.
pub struct AssetProber {
    images: ImageSettings,
    ffprobe: PathBuf,
    seen: std::sync::Mutex<std::collections::HashMap<FileKey, Result<Probe, String>>>,
}

/// A file as it was probed: its path, size and modification time, and whether as a sound.
type FileKey = (PathBuf, u64, std::time::SystemTime, bool);

/// Files an [`AssetProber`] remembers; past it, it forgets them all.
const PROBES_REMEMBERED: usize = 512;

impl AssetProber {
    /// A prober reading assets under `images`' rules with the ffprobe beside `ffmpeg`.
    pub fn new(images: ImageSettings, ffmpeg: &Path) -> AssetProber {
        AssetProber {
            images,
            ffprobe: ffprobe_for(ffmpeg),
            seen: Default::default(),
        }
    }

    /// Probe every asset video of `spec`: `Err((field, message))` for the first that cannot be
    /// used (missing, outside the assets directory, too large, not a readable video, trimmed
    /// past its end).
    pub async fn check(&self, spec: &VideoSpec) -> Result<(), (String, String)> {
        for (field, _, clip) in spec.videos() {
            let ImageSource::Asset(rel) = &clip.src else {
                continue;
            };
            let p = self.probed(&field, rel, false).await?;
            check_trim(clip, &p).map_err(|(name, why)| (sibling_field(&field, name), why))?;
        }
        for (field, _, voice) in spec.voices() {
            if let ImageSource::Asset(rel) = &voice.src {
                self.probed(&field, rel, true).await?;
            }
        }
        for (i, font) in spec.font.iter().flat_map(|f| f.sources.iter()).enumerate() {
            let ImageSource::Asset(rel) = &font.src else {
                continue;
            };
            let field = format!("fonts[{i}].src");
            let bytes = crate::image::read_asset(&self.images, rel).map_err(|e| {
                (
                    field.clone(),
                    format!("font {rel} could not be {}: {}", e.step, e.reason),
                )
            })?;
            crate::fonts::check(font, &bytes)
                .map_err(|why| (field.clone(), format!("font {rel} cannot be used: {why}")))?;
        }
        Ok(())
    }

    /// What the asset `rel` (named by `field`) is, as a clip or (`sound`) a voice-over.
    async fn probed(&self, field: &str, rel: &str, sound: bool) -> Result<Probe, (String, String)> {
        let what = if sound { "sound" } else { "video" };
        let images = &self.images;
        let (path, len) = asset_file(images, rel, images.max_video_bytes).map_err(|e| {
            (
                field.to_string(),
                format!("{what} {rel} could not be {}: {}", e.step, e.reason),
            )
        })?;
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let key = (path.clone(), len, modified, sound);
        let known = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let found = match known {
            Some(r) => r,
            None => {
                let r = if sound {
                    probe_sound(&self.ffprobe, &path).await
                } else {
                    probe(&self.ffprobe, &path).await
                };
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() >= PROBES_REMEMBERED {
                    seen.clear();
                }
                seen.insert(key, r.clone());
                r
            }
        };
        found.map_err(|why| {
            (
                field.to_string(),
                format!("{what} {rel} cannot be used: {why}"),
            )
        })
    }
}

/// Download `url` into `dir` under the fetch rules and `max_video_bytes`; the file's path.
async fn download(
    client: &reqwest::Client,
    settings: &ImageSettings,
    url: &str,
    dir: &Path,
    sound: bool,
) -> Result<PathBuf, ImageError> {
    use tokio::io::AsyncWriteExt;
    let max = settings.max_video_bytes;
    let mut res = if sound {
        open_url(
            client,
            settings,
            url,
            "audio/mpeg, audio/mp4, audio/wav, audio/ogg, audio/flac, */*;q=0.1",
            &|t| {
                t.starts_with("audio/")
                    || t.starts_with("video/")
                    || t == "application/octet-stream"
            },
            "a sound type (audio/*, video/*) or application/octet-stream",
            max,
        )
        .await?
    } else {
        open_url(
            client,
            settings,
            url,
            "video/mp4, video/webm, video/quicktime, video/x-matroska, */*;q=0.1",
            &|t| t.starts_with("video/") || t == "application/octet-stream",
            "a video type (video/*) or application/octet-stream",
            max,
        )
        .await?
    };
    let io = |e: std::io::Error| ImageError::fetch_transient(format!("storing the download: {e}"));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    sweep(dir);
    let path = dir.join(format!("{}.clip", uuid::Uuid::new_v4().simple()));
    // removes the file if this future is dropped half-way (the job was cancelled)
    let mut partial = Partial(Some(path.clone()));
    let written = async {
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        let mut n = 0u64;
        while let Some(chunk) = next_chunk(&mut res, settings).await? {
            n += chunk.len() as u64;
            if n > max {
                return Err(ImageError::fetch(format!("larger than {max} bytes")));
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(())
    }
    .await;
    written?;
    partial.0 = None;
    Ok(path)
}

/// A download being written: removed on drop unless it is complete (`None`).
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Downloads older than a day: left by a process that was killed mid-render (a render deletes
/// its own when it ends).
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = Duration::from_secs(86_400);
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if old && e.path().extension().is_some_and(|x| x == "clip") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Where ffmpeg can read `src` (named by `field`; a voice-over's when `sound`): an asset's own
/// path, or a download of a URL into `dir` (then `true`: deleted with its source). `client` is
/// made on first use.
async fn localise(
    src: &ImageSource,
    field: &str,
    sound: bool,
    settings: &ImageSettings,
    client: &mut Option<reqwest::Client>,
    dir: &Path,
) -> Result<(PathBuf, bool), RenderError> {
    let what = if sound { "sound" } else { "video" };
    let fail = |e: ImageError| e.into_render(field, what, src);
    match src {
        ImageSource::Asset(rel) => {
            let (p, _) = asset_file(settings, rel, settings.max_video_bytes).map_err(fail)?;
            Ok((p, false))
        }
        ImageSource::Url(url) => {
            if client.is_none() {
                *client = Some(crate::image::client(settings)?);
            }
            let c = client.as_ref().expect("made above");
            let path = download(c, settings, url, dir, sound).await.map_err(fail)?;
            Ok((path, true))
        }
    }
}

/// Make every video source of `spec` local and probe it, adding them to `images`. The first
/// that cannot be used fails the lot, naming its field, e.g.
/// `scenes[1].content.src: video https://… could not be fetched: HTTP 404`.
pub async fn prefetch(
    spec: &VideoSpec,
    settings: &ImageSettings,
    ffmpeg: &Path,
    work_dir: &Path,
    images: &mut Images,
) -> Result<(), RenderError> {
    let videos = spec.videos();
    if videos.is_empty() {
        return Ok(());
    }
    let mut client = None;
    let ffprobe = ffprobe_for(ffmpeg);
    let dir = work_dir.join("clips");
    for (field, _, clip) in videos {
        if let Ok(done) = images.video(&clip.src) {
            check_trim(clip, &done.probe).map_err(|(name, why)| {
                RenderError::Image(format!("{}: {why}", sibling_field(&field, name)))
            })?;
            continue;
        }
        let (path, downloaded) =
            localise(&clip.src, &field, false, settings, &mut client, &dir).await?;
        let mut source = VideoSource {
            path,
            probe: Probe {
                width: 0,
                height: 0,
                duration: 0.0,
                audio: false,
                matrix: None,
            },
            ffmpeg: ffmpeg.to_path_buf(),
            average: [0.0; 3],
            downloaded,
        };
        let unusable = |why: String| {
            RenderError::Image(format!(
                "{field}: video {} cannot be used: {why}",
                clip.src.as_str()
            ))
        };
        source.probe = probe(&ffprobe, &source.path).await.map_err(unusable)?;
        check_trim(clip, &source.probe).map_err(|(name, why)| {
            RenderError::Image(format!("{}: {why}", sibling_field(&field, name)))
        })?;
        let end = clip.trim_end.unwrap_or(f64::MAX).min(source.probe.duration);
        let mid = (clip.trim_start + end) / 2.0;
        source.average = average_at(ffmpeg, &source.path, mid)
            .await
            .map_err(unusable)?;
        images.insert_video(clip.src.clone(), Arc::new(source));
    }
    Ok(())
}

/// One voice-over source, ready to mix.
#[derive(Debug)]
pub struct SoundSource {
    /// The local file ffmpeg reads.
    pub path: PathBuf,
    /// Its length, in seconds.
    pub duration: f64,
    /// The gain that brings it to the music's loudness (see `ffmpeg::normalising_gain_db`).
    pub gain_db: f32,
    downloaded: bool,
}

impl Drop for SoundSource {
    fn drop(&mut self) {
        if self.downloaded {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Make every voice-over of `spec` local, probe it and measure its loudness, adding them to
/// `images`; the first that cannot be used fails the lot, naming its field.
pub async fn prefetch_sounds(
    spec: &VideoSpec,
    settings: &ImageSettings,
    ffmpeg: &Path,
    work_dir: &Path,
    images: &mut Images,
) -> Result<(), RenderError> {
    let voices = spec.voices();
    if voices.is_empty() {
        return Ok(());
    }
    let mut client = None;
    let ffprobe = ffprobe_for(ffmpeg);
    let dir = work_dir.join("clips");
    for (field, _, voice) in voices {
        if images.sound(&voice.src).is_ok() {
            continue;
        }
        let (path, downloaded) =
            localise(&voice.src, &field, true, settings, &mut client, &dir).await?;
        let mut source = SoundSource {
            path,
            duration: 0.0,
            gain_db: 0.0,
            downloaded,
        };
        let unusable = |why: String| {
            RenderError::Image(format!(
                "{field}: sound {} cannot be used: {why}",
                voice.src.as_str()
            ))
        };
        source.duration = probe_sound(&ffprobe, &source.path)
            .await
            .map_err(unusable)?
            .duration;
        let (ff, p) = (ffmpeg.to_path_buf(), source.path.clone());
        let lufs = tokio::task::spawn_blocking(move || {
            crate::ffmpeg::measure_loudness_with(&ff, &p, &safe_input(SOUND_FORMAT_WHITELIST))
        })
        .await
        .map_err(|e| unusable(e.to_string()))?
        .map_err(|e| unusable(e.to_string()))?;
        source.gain_db = crate::ffmpeg::normalising_gain_db(lufs);
        images.insert_sound(voice.src.clone(), Arc::new(source));
    }
    Ok(())
}

/// How a [`ClipReader`] shapes its frames.
#[derive(Debug, Clone, Copy)]
pub struct ClipLook {
    /// Output frame width and height.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Output frames per second.
    pub fps: u32,
    /// Blended towards this colour by this much (a background's `dim`).
    pub dim: Option<(Rgb, f32)>,
}

/// A running decode: ffmpeg and the thread collecting its frames.
struct Stream {
    child: Child,
    /// `None` once dropping: the reader thread's sends then fail and it ends.
    frames: Option<Receiver<Vec<u8>>>,
    spare: SyncSender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    /// The clip frame the stream gives next.
    next: u64,
    /// The clip frame it started at.
    start: u64,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // the reader thread may be blocked handing over a frame: let that fail first
        self.frames = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        // the pipe is closed and nothing receives: the reader thread ends at once
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decodes one clip for one output, frame by frame (see the module docs).
pub struct ClipReader {
    src: Arc<VideoSource>,
    clip: VideoClip,
    look: ClipLook,
    stream: Option<Stream>,
    /// The clip frame last read, and its pixels (yuv420p when [`ClipReader::opaque`], else
    /// RGBA).
    current: Option<(u64, Vec<u8>)>,
    /// RGBA frames are handed out as a pixmap (moved in and out of `current`'s buffer).
    rgba: Option<Pixmap>,
    /// Frames in one pass of the clip, once a pass has been seen to its end.
    total: Option<u64>,
    /// Decodes started (a clip that loops starts one per pass).
    pub starts: u32,
}

impl ClipReader {
    /// A reader for `clip` (whose source is `src`) shaped by `look`; nothing runs until the
    /// first frame is asked for.
    pub fn new(src: Arc<VideoSource>, clip: VideoClip, look: ClipLook) -> ClipReader {
        ClipReader {
            src,
            clip,
            look,
            stream: None,
            current: None,
            rgba: None,
            total: None,
            starts: 0,
        }
    }

    /// Whether every pixel of every frame is opaque (`cover`): then frames are decoded to
    /// yuv420p, ready for the base-picture path (`yuv.rs`), and RGBA otherwise.
    pub fn opaque(&self) -> bool {
        self.clip.fit == Fit::Cover
    }

    /// Bytes of one decoded frame.
    fn frame_len(&self) -> usize {
        let (w, h) = (self.look.width as usize, self.look.height as usize);
        if self.opaque() {
            crate::paint::yuv420p_len(w, h)
        } else {
            w * h * 4
        }
    }

    /// The ffmpeg filter graph conforming the source to the output.
    pub fn filter(&self) -> String {
        let ClipLook {
            width: w,
            height: h,
            fps,
            dim,
        } = self.look;
        let speed = self.clip.speed;
        // yuv420p first: a source's own alpha never reaches the frame
        let mut f = format!("setpts=(PTS-STARTPTS)/{speed:.6},fps={fps},format=yuv420p,");
        match self.clip.fit {
            // yuv420p out, limited range (a full-range source is converted by the `format`
            // above), in BT.709: see `Probe::converts_matrix` (HD in BT.709 at the output's
            // size is passed through without any conversion)
            Fit::Cover => {
                let p = &self.src.probe;
                let matrix = match (p.converts_matrix(), p.matrix.is_some()) {
                    (false, _) => "",
                    (true, true) => ":out_color_matrix=bt709",
                    (true, false) => ":in_color_matrix=bt601:out_color_matrix=bt709",
                };
                f.push_str(&format!(
                    "scale={w}:{h}:force_original_aspect_ratio=increase:flags=bilinear{matrix},crop={w}:{h},setsar=1,format=yuv420p"
                ))
            }
            Fit::Contain => f.push_str(&format!(
                "scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2:flags=bilinear,setsar=1,format=rgba,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black@0"
            )),
        }
        if let Some((c, d)) = dim {
            let d = d.clamp(0.0, 1.0);
            let keep = 1.0 - d;
            let lut = |v: f32| format!("val*{keep:.4}+{:.3}", v * d);
            if self.opaque() {
                // mixing towards a colour is affine, so in yuv it mixes towards its yuv (+ ½:
                // the lut truncates)
                let [y, u, v] = bt709_limited(c);
                let lut = |c: f32| format!("val*{keep:.4}+{:.3}", c * d + 0.5);
                f.push_str(&format!(
                    ",lutyuv=y='{}':u='{}':v='{}'",
                    lut(y),
                    lut(u),
                    lut(v)
                ));
            } else {
                f.push_str(&format!(
                    ",lutrgb=r='{}':g='{}':b='{}'",
                    lut(c.0 as f32),
                    lut(c.1 as f32),
                    lut(c.2 as f32)
                ));
            }
        }
        f
    }

    /// The clip frame shown at frame `k` of the scene, given what is known of the clip's length.
    fn index(&self, k: u64) -> u64 {
        match self.total {
            Some(0) | None => k,
            Some(n) if self.clip.looped => k % n,
            Some(n) => k.min(n - 1),
        }
    }

    /// Start decoding from the clip's first frame now, ahead of the first [`ClipReader::frame`]
    /// (starting ffmpeg, probing and seeking to the trim take about a quarter of a second);
    /// nothing when a decode is already running or a frame was read. A failure to start is left
    /// for `frame` to meet again and report.
    pub fn prestart(&mut self) {
        if self.stream.is_none() && self.current.is_none() {
            let _ = self.start(0);
        }
    }

    fn start(&mut self, at: u64) -> Result<(), RenderError> {
        self.stream = None; // stops a previous decode first
        let fps = self.look.fps;
        let seek = self.clip.trim_start + at as f64 * self.clip.speed / fps as f64;
        let end = self
            .clip
            .trim_end
            .unwrap_or(f64::MAX)
            .min(self.src.probe.duration);
        let mut cmd = Command::new(&self.src.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(safe_input(FORMAT_WHITELIST))
            .args(["-ss", &format!("{seek:.6}")])
            .args(["-t", &format!("{:.6}", (end - seek).max(0.0))])
            .arg("-i")
            .arg(&self.src.path)
            .args(["-an", "-sn", "-dn", "-map", "0:v:0", "-vf", &self.filter()])
            .args(["-f", "rawvideo", "-pix_fmt"])
            .arg(if self.opaque() { "yuv420p" } else { "rgba" })
            .arg("pipe:1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| crate::ffmpeg::spawn_error(&self.src.ffmpeg, e))?;
        let mut out = child.stdout.take().expect("piped stdout");
        let size = self.frame_len();
        let (tx, frames) = sync_channel::<Vec<u8>>(2);
        let (spare, spares) = sync_channel::<Vec<u8>>(4);
        let thread = std::thread::Builder::new()
            .name("clip-decode".into())
            .spawn(move || loop {
                let mut buf = spares.try_recv().unwrap_or_else(|_| vec![0u8; size]);
                if out.read_exact(&mut buf).is_err() || tx.send(buf).is_err() {
                    return;
                }
            })
            .map_err(|e| RenderError::Io("starting a clip decoder thread".into(), e))?;
        self.starts += 1;
        self.stream = Some(Stream {
            child,
            frames: Some(frames),
            spare,
            thread: Some(thread),
            next: at,
            start: at,
        });
        Ok(())
    }

    /// Read the stream's next frame into `current`; false at its end.
    fn read_one(&mut self) -> bool {
        let Some(s) = &mut self.stream else {
            return false;
        };
        let Some(Ok(buf)) = s.frames.as_ref().map(Receiver::recv) else {
            return false;
        };
        let old = match self.rgba.take() {
            Some(pm) => Some(pm.take()),
            None => self.current.take().map(|(_, b)| b),
        };
        if let Some(old) = old {
            let _ = s.spare.try_send(old);
        }
        self.current = Some((s.next, buf));
        s.next += 1;
        true
    }

    /// The frame to show at frame `k` of the scene (`k / fps` seconds in), with the clip frame
    /// index it shows (equal indices: equal pixels). `None` when the clip gives no frame at all.
    pub fn frame(&mut self, k: u64) -> Result<Option<(u64, ClipFrame<'_>)>, RenderError> {
        // Each round either returns, or learns the clip's length (at most once per stream
        // start), or restarts the decode: a few rounds at most.
        for _ in 0..6 {
            let j = self.index(k);
            if self.current.as_ref().is_some_and(|(i, _)| *i == j) {
                break;
            }
            let near = self
                .stream
                .as_ref()
                .is_some_and(|s| s.next <= j && j - s.next <= 2 * self.look.fps as u64);
            if !near {
                self.start(j)?;
            }
            while self.stream.as_ref().is_some_and(|s| s.next <= j) {
                if !self.read_one() {
                    let s = self.stream.take().expect("reading a stream");
                    // the clip ends where this stream did; nothing at all from its first
                    // frame means it ends before that
                    let end = if s.next > s.start { s.next } else { s.start };
                    self.total = Some(self.total.map_or(end, |t| t.min(end)));
                    break;
                }
            }
        }
        if self.total == Some(0) {
            return Ok(None);
        }
        if self.opaque() {
            return Ok(self.current.as_ref().map(|(i, b)| (*i, ClipFrame::Yuv(b))));
        }
        // an RGBA frame lives in `rgba` from its first use until the next is read
        let Some((i, _)) = self.current else {
            return Ok(None);
        };
        if self.rgba.is_none() {
            let (_, buf) = self.current.as_mut().expect("checked above");
            let size = IntSize::from_wh(self.look.width, self.look.height).expect("frame size");
            self.rgba = Some(Pixmap::from_vec(std::mem::take(buf), size).expect("a whole frame"));
        }
        Ok(self.rgba.as_ref().map(|p| (i, ClipFrame::Rgba(p))))
    }
}

#[cfg(test)]
pub(crate) mod tests;
