//! End-to-end renderer tests against the real ffmpeg (no mocks).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use vidbuilder_domain::job::JobId;
use vidbuilder_domain::ports::{RenderPhase, RenderProgress, RenderRequest};
use vidbuilder_domain::spec::{MusicSpec, Quality, Scene, SceneContent, VideoSpec};

use super::*;

mod captions;
mod fonts;
mod golden;
mod outputs;
mod vfr;
mod watermark;
mod yuv_path;

// Shared with the other render test modules (motion_tests, golden).
pub(super) fn catalog() -> Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::load(None).expect("embedded catalog")))
        .clone()
}

/// `config/default.toml`, the one source of every default (the server loads the same file).
fn default_toml() -> toml::Table {
    include_str!("../../config/default.toml")
        .parse()
        .expect("config/default.toml parses")
}

/// The render settings of `config/default.toml`, with `work` as scratch space.
pub(super) fn settings(work: &Path) -> RenderSettings {
    let t = default_toml();
    let r = &t["render"];
    RenderSettings {
        ffmpeg: r["ffmpeg"].as_str().expect("render.ffmpeg").into(),
        preset: r["preset"].as_str().expect("render.preset").into(),
        crf: r["crf"].as_integer().expect("render.crf") as u8,
        work_dir: work.to_path_buf(),
        images: image_settings(),
    }
}

/// The image settings of `config/default.toml`: no assets directory, no SSRF allowlist.
pub(super) fn image_settings() -> image::ImageSettings {
    let t = default_toml();
    let i = &t["images"];
    let int = |k: &str| i[k].as_integer().unwrap_or_else(|| panic!("images.{k}")) as u64;
    image::ImageSettings {
        assets_dir: None,
        max_bytes: int("max_bytes"),
        max_video_bytes: int("max_video_bytes"),
        timeout: std::time::Duration::from_secs(int("timeout_secs")),
        connect_timeout: std::time::Duration::from_secs(int("connect_timeout_secs")),
        max_redirects: int("max_redirects") as usize,
        max_pixels: int("max_pixels"),
        max_side: int("max_side") as u32,
        ssrf: Arc::new(vidbuilder_net::SsrfGuard::default()),
        max_pixels_per_job: int("max_pixels_per_job"),
        max_concurrent_per_job: int("max_concurrent_per_job") as usize,
        hosts: image::HostLimits::new(int("max_fetches_per_host") as usize),
        decodes: Arc::new(tokio::sync::Semaphore::new(
            int("max_concurrent_decodes") as usize
        )),
    }
}

fn hero(title: &str, subtitle: Option<&str>, duration: f64) -> Scene {
    Scene::new(
        duration,
        SceneContent::HeroTitle {
            title: title.into(),
            subtitle: subtitle.map(str::to_string),
        },
    )
}

fn spec(theme: &str, quality: Quality, scenes: Vec<Scene>, music: bool, reels: bool) -> VideoSpec {
    VideoSpec {
        theme: theme.into(),
        music: music.then(|| MusicSpec {
            track_id: "corp-1".into(),
            volume: 0.3,
            duck: 1.0,
        }),
        quality,
        fps: 30,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: reels,
        outputs: Default::default(),
        metadata: None,
        scenes,
        font: None,
    }
}

pub(super) fn request(spec: VideoSpec, out: &Path) -> RenderRequest {
    RenderRequest {
        job_id: JobId::new(),
        attempt: 1,
        spec,
        out_dir: out.to_path_buf(),
    }
}

pub(super) fn ffprobe(path: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,width,height,pix_fmt,color_space,color_range,r_frame_rate,nb_frames,duration,sample_rate,channels",
            "-show_entries",
            "format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The video at `path` through the ffmpeg filter `vf` (which must end in grey `w × h`
/// pictures), one `Vec` a frame.
pub(super) fn decode(path: &Path, vf: &str, w: usize, h: usize) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vf", vf, "-f", "rawvideo", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.chunks_exact(w * h).map(<[u8]>::to_vec).collect()
}

/// Every frame of the video at `path`, decoded to 8-bit grey at its own size: (width, height,
/// frames).
pub(super) fn grey_frames(path: &Path) -> (usize, usize, Vec<Vec<u8>>) {
    let p = ffprobe(path);
    let v = stream(&p, "video").expect("a video stream");
    let (w, h) = (
        v["width"].as_u64().unwrap() as usize,
        v["height"].as_u64().unwrap() as usize,
    );
    (w, h, decode(path, "format=gray", w, h))
}

pub(super) fn stream<'a>(probe: &'a Value, kind: &str) -> Option<&'a Value> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn check_monotonic(events: &[RenderProgress], total: u64) {
    assert!(!events.is_empty());
    let mut last = 0;
    for e in events {
        assert!(
            e.frames_done >= last,
            "frames_done went backwards: {events:?}"
        );
        assert_eq!(e.frames_total, total);
        last = e.frames_done;
    }
    assert_eq!(last, total);
    let phases: Vec<RenderPhase> = events.iter().map(|e| e.phase).collect();
    let first_encoding = phases
        .iter()
        .position(|p| *p == RenderPhase::Encoding)
        .expect("an Encoding report");
    assert!(phases[..first_encoding]
        .iter()
        .all(|p| *p == RenderPhase::Rendering));
    assert_eq!(*phases.last().unwrap(), RenderPhase::Finalising);
    let rendering_done = events
        .iter()
        .filter(|e| e.phase == RenderPhase::Rendering)
        .map(|e| e.frames_done)
        .max();
    assert_eq!(
        rendering_done,
        Some(total),
        "Rendering reaches frames_total"
    );
}

#[test]
fn check_ffmpeg_reports_version_and_a_clear_error() {
    let v = check_ffmpeg(Path::new("ffmpeg")).unwrap();
    assert!(v.starts_with("ffmpeg version"), "{v}");
    let e = check_ffmpeg(Path::new("/nonexistent/ffmpeg"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "ffmpeg not found at '/nonexistent/ffmpeg': install it (Debian/Ubuntu: apt-get install ffmpeg)");
}

#[test]
fn scene_ranges_sum_to_the_frame_count() {
    let s = spec(
        "corporate",
        Quality::Draft,
        vec![
            hero("a", None, 1.01),
            hero("b", None, 0.52),
            hero("c", None, 2.337),
        ],
        false,
        false,
    );
    let r = scene_frame_ranges(&s);
    assert_eq!(r.first().unwrap().0, 0);
    assert_eq!(r.last().unwrap().1, s.frame_count());
    for w in r.windows(2) {
        assert_eq!(w[0].1, w[1].0);
    }
}

#[test]
fn draft_render_with_music_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let s = spec(
        "corporate",
        Quality::Draft,
        vec![hero(
            "Welcome to **VidBuilder**",
            Some("Create stunning videos"),
            1.0,
        )],
        true,
        false,
    );
    let req = request(s, out.path());
    let events = Mutex::new(Vec::new());
    let res = render_blocking(
        &catalog(),
        &settings(work.path()),
        &req,
        &image::Images::default(),
        &|p| events.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(res.video, out.path().join(format!("{}.mp4", req.job_id)));
    assert_eq!(
        (res.width, res.height, res.frames, res.reel.clone()),
        (640, 360, 30, None)
    );
    assert!((res.duration_secs - 1.0).abs() < 1e-9);
    check_monotonic(&events.lock().unwrap(), 30);
    assert_eq!(
        dir_names(out.path()),
        vec![format!("{}.jpg", req.job_id), format!("{}.mp4", req.job_id)],
        "only the finished video and its poster"
    );

    let p = ffprobe(&res.video);
    let v = stream(&p, "video").expect("video stream");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["pix_fmt"], "yuv420p");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(v["color_space"], "bt709");
    assert_eq!(v["color_range"], "tv");
    assert_eq!(
        stream(&p, "audio").expect("audio stream")["codec_name"],
        "aac"
    );
    let d = duration(&p);
    assert!((d - 1.0).abs() <= 0.1, "duration {d}");
}

/// With several outputs, only the first encodes the sound: the reel is encoded video-only and
/// gets the first output's AAC track copied in (through a logging wrapper around the real
/// ffmpeg), so both files carry the very same sound packets, as long as their video.
#[test]
fn the_reel_gets_the_first_outputs_encoded_sound() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("calls.log");
    let real = settings(work.path()).ffmpeg;
    let wrapper = bin.path().join("ffmpeg");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = spec(
        "corporate",
        Quality::Draft,
        vec![hero("Sound **once**", Some("copied into the reel"), 1.2)],
        true,
        true,
    );
    let req = request(s, out.path());
    let mut settings = settings(work.path());
    settings.ffmpeg = wrapper;
    let res = render_blocking(
        &catalog(),
        &settings,
        &req,
        &image::Images::default(),
        &|_| {},
        &CancellationToken::new(),
    )
    .unwrap();
    let reel = res.reel.clone().expect("a reel");
    let calls = std::fs::read_to_string(&log).unwrap();
    let encodes: Vec<&str> = calls.lines().filter(|l| l.contains("libx264")).collect();
    assert_eq!(encodes.len(), 2, "{calls}");
    assert_eq!(
        encodes.iter().filter(|l| l.contains("-c:a aac")).count(),
        1,
        "one output encodes the sound: {calls}"
    );
    assert!(
        calls
            .lines()
            .any(|l| l.contains("-map 1:a -c copy") && l.ends_with("-reel.1.partial.mp4")),
        "the reel's sound is copied in: {calls}"
    );
    let packets = |f: &Path| {
        let o = std::process::Command::new(&real)
            .args(["-v", "error", "-i"])
            .arg(f)
            .args(["-map", "0:a", "-c", "copy", "-f", "md5", "-"])
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        packets(&res.video),
        packets(&reel),
        "the same sound packets"
    );
    for f in [&res.video, &reel] {
        let p = ffprobe(f);
        assert_eq!(stream(&p, "audio").expect("audio")["codec_name"], "aac");
        let d = |kind: &str| -> f64 {
            stream(&p, kind).unwrap()["duration"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!((d("audio") - d("video")).abs() < 0.05, "{f:?}: {p}");
    }
    // only the finished videos and posters: the video-only file is gone
    assert_eq!(
        dir_names(out.path()).len(),
        4,
        "{:?}",
        dir_names(out.path())
    );
}

#[test]
fn reels_render_a_vertical_video_too() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let s = spec(
        "vibrant",
        Quality::Draft,
        vec![
            hero("Reels **too**", Some("Vertical, reflowed"), 0.6),
            hero("Second scene", None, 0.4),
        ],
        false,
        true,
    );
    let req = request(s, out.path());
    let events = Mutex::new(Vec::new());
    let res = render_blocking(
        &catalog(),
        &settings(work.path()),
        &req,
        &image::Images::default(),
        &|p| events.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .unwrap();
    check_monotonic(&events.lock().unwrap(), 60);
    let reel = res.reel.clone().expect("a reel");
    assert_eq!(reel, out.path().join(format!("{}-reel.mp4", req.job_id)));
    let p = ffprobe(&reel);
    let v = stream(&p, "video").unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1080), Some(1920))
    );
    assert!(stream(&p, "audio").is_none(), "no music → no audio stream");
    assert!((duration(&p) - 1.0).abs() <= 0.1);
    let p = ffprobe(&res.video);
    assert_eq!(stream(&p, "video").unwrap()["width"].as_u64(), Some(640));
    assert_eq!(dir_names(out.path()).len(), 4, "two videos, two posters");
}

/// Processes (including zombies) whose command name is `comm`.
fn processes_named(comm: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
            if c.trim_end() == comm {
                v.push(pid);
            }
        }
    }
    v
}

#[test]
fn cancel_mid_render_kills_ffmpeg_and_leaves_nothing() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // A uniquely named ffmpeg so we can find exactly our child in /proc.
    let name = format!("ffc{}", std::process::id() % 100000);
    let ffmpeg = work.path().join(&name);
    std::os::unix::fs::symlink("/usr/bin/ffmpeg", &ffmpeg).unwrap();
    let settings = RenderSettings {
        ffmpeg,
        ..settings(work.path())
    };
    let s = spec(
        "dark",
        Quality::P720,
        vec![hero("A long **render**", Some("to be cancelled"), 20.0)],
        true,
        true,
    );
    let req = request(s, out.path());
    let cancel = CancellationToken::new();
    let cancelled_at = Mutex::new(None::<Instant>);
    let saw_child = Mutex::new(false);
    let res = render_blocking(
        &catalog(),
        &settings,
        &req,
        &image::Images::default(),
        &|p| {
            if p.frames_done >= 20 && !cancel.is_cancelled() {
                *saw_child.lock().unwrap() = !processes_named(&name).is_empty();
                *cancelled_at.lock().unwrap() = Some(Instant::now());
                cancel.cancel();
            }
        },
        &cancel,
    );
    let elapsed = cancelled_at.lock().unwrap().expect("cancelled").elapsed();
    assert!(matches!(res, Err(RenderError::Cancelled)), "{res:?}");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?} to stop");
    assert!(
        *saw_child.lock().unwrap(),
        "ffmpeg was running before the cancel"
    );
    assert_eq!(
        processes_named(&name),
        Vec::<u32>::new(),
        "no ffmpeg left, not even a zombie"
    );
    assert_eq!(
        dir_names(out.path()),
        Vec::<String>::new(),
        "no temp or partial file"
    );
}

#[test]
fn ffmpeg_failure_is_reported_with_its_stderr_and_cleans_up() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let settings = RenderSettings {
        preset: "no-such-preset".into(),
        ..settings(work.path())
    };
    let s = spec(
        "minimal",
        Quality::Draft,
        vec![hero("x", None, 2.0)],
        false,
        false,
    );
    let err = render_blocking(
        &catalog(),
        &settings,
        &request(s, out.path()),
        &image::Images::default(),
        &|_| {},
        &CancellationToken::new(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("ffmpeg exited with status"), "{msg}");
    assert!(
        msg.to_lowercase().contains("preset"),
        "stderr should be quoted: {msg}"
    );
    assert_eq!(dir_names(out.path()), Vec::<String>::new());

    let missing = RenderSettings {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..settings
    };
    let s = spec(
        "minimal",
        Quality::Draft,
        vec![hero("x", None, 1.0)],
        false,
        false,
    );
    let err = render_blocking(
        &catalog(),
        &missing,
        &request(s, out.path()),
        &image::Images::default(),
        &|_| {},
        &CancellationToken::new(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::FfmpegNotFound(_)), "{err}");
}

#[tokio::test]
async fn ffmpeg_renderer_runs_on_the_blocking_pool() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let r = FfmpegRenderer::new(catalog(), settings(work.path()));
    let s = spec(
        "modern",
        Quality::Draft,
        vec![hero("Async **render**", None, 0.5)],
        false,
        false,
    );
    let seen = Arc::new(Mutex::new(0u64));
    let seen2 = seen.clone();
    let sink: vidbuilder_domain::ports::ProgressSink = Arc::new(move |p: RenderProgress| {
        *seen2.lock().unwrap() = p.frames_done;
    });
    let res = r
        .render(
            request(s, out.path()),
            sink.clone(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(res.frames, 15);
    assert_eq!(*seen.lock().unwrap(), 15);

    let s = spec(
        "nope",
        Quality::Draft,
        vec![hero("x", None, 0.5)],
        false,
        false,
    );
    let e = r
        .render(request(s, out.path()), sink, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RenderError::UnknownTheme(t) if t == "nope"),
        "{e}"
    );
}

/// Writes stills for a visual check: /tmp/vidbuilder-frame.png (1080p corporate at t = 1.5 s)
/// plus one per theme and a reel frame.
#[test]
fn stills_for_visual_review() {
    let c = catalog();
    let s = spec(
        "corporate",
        Quality::P1080,
        vec![hero(
            "Welcome to **VidBuilder**",
            Some("Create stunning videos"),
            4.0,
        )],
        true,
        false,
    );
    let png = render_still_png(&c, &s, &image::Images::default(), 1.5, false).unwrap();
    std::fs::write("/tmp/vidbuilder-frame.png", &png).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    for theme in c.theme_names() {
        let mut s = s.clone();
        s.theme = theme.clone();
        std::fs::write(
            format!("/tmp/vidbuilder-frame-{theme}.png"),
            render_still_png(&c, &s, &image::Images::default(), 1.5, false).unwrap(),
        )
        .unwrap();
        std::fs::write(
            format!("/tmp/vidbuilder-reel-{theme}.png"),
            render_still_png(&c, &s, &image::Images::default(), 1.5, true).unwrap(),
        )
        .unwrap();
    }
    // A long title with italics wraps, balances and shrinks inside the safe area.
    let mut long = s.clone();
    long.theme = "minimal".into();
    long.scenes = vec![hero(
        "*Ship* product videos **ten times faster** with a self-hostable API that turns JSON into polished MP4s",
        Some("Themes, music, reels and webhooks included — no editing suite required"),
        4.0,
    )];
    std::fs::write(
        "/tmp/vidbuilder-frame-long.png",
        render_still_png(&c, &long, &image::Images::default(), 1.5, false).unwrap(),
    )
    .unwrap();
    std::fs::write(
        "/tmp/vidbuilder-reel-long.png",
        render_still_png(&c, &long, &image::Images::default(), 1.5, true).unwrap(),
    )
    .unwrap();
    // Mid-entrance and mid-exit frames, to eyeball the motion.
    std::fs::write(
        "/tmp/vidbuilder-frame-t0.3.png",
        render_still_png(&c, &s, &image::Images::default(), 0.3, false).unwrap(),
    )
    .unwrap();
    std::fs::write(
        "/tmp/vidbuilder-frame-t3.85.png",
        render_still_png(&c, &s, &image::Images::default(), 3.85, false).unwrap(),
    )
    .unwrap();
}

/// Timing of the contract example (4 s hero-title, corp-1 music). Run with:
/// `cargo test --release --lib render::tests::bench_contract_example -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn bench_contract_example() {
    let c = catalog();
    let work = tempfile::tempdir().unwrap();
    let out = Path::new("/tmp/vidbuilder-bench");
    let _ = std::fs::remove_dir_all(out);
    for (quality, reels) in [
        (Quality::P1080, false),
        (Quality::K4, false),
        (Quality::P1080, true),
        (Quality::P720, false),
    ] {
        let s = spec(
            "corporate",
            quality,
            vec![hero(
                "Welcome to **VidBuilder**",
                Some("Create stunning videos"),
                4.0,
            )],
            true,
            reels,
        );
        let mut req = request(s, out);
        req.job_id = JobId::parse(&format!("{:016x}", quality as u64 * 2 + reels as u64)).unwrap();
        let t0 = Instant::now();
        let res = render_blocking(
            &c,
            &settings(work.path()),
            &req,
            &image::Images::default(),
            &|_| {},
            &CancellationToken::new(),
        )
        .unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let frames = res.frames * if reels { 2 } else { 1 };
        let size = std::fs::metadata(&res.video).unwrap().len();
        println!(
            "BENCH {} reels={reels}: {frames} frames in {wall:.2} s = {:.1} fps ({:.2}x realtime), {} kB",
            quality.as_str(),
            frames as f64 / wall,
            res.duration_secs / wall,
            size / 1024
        );
    }
}

/// Per-stage timings (release): background, scene preparation, frame drawing, yuv conversion.
/// `cargo test --release --lib render::tests::bench_stages -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn bench_stages() {
    use std::hint::black_box;
    let c = catalog();
    let theme = c.theme("corporate").unwrap();
    for (w, h) in [(1920u32, 1080u32), (3840, 2160), (1080, 1920)] {
        let t0 = Instant::now();
        let bg = paint::background(theme, w, h);
        let t_bg = t0.elapsed();
        let t0 = Instant::now();
        let mut fonts = c.font_system();
        let mut swash = cosmic_text::SwashCache::new();
        let t_fonts = t0.elapsed();
        let t0 = Instant::now();
        let content = SceneContent::HeroTitle {
            title: "Welcome to **VidBuilder**".into(),
            subtitle: Some("Create stunning videos".into()),
        };
        let drawer = scene::prepare(
            &content,
            &mut scene::SceneContext {
                fonts: &mut fonts,
                swash: &mut swash,
                theme,
                frame: scene::Frame {
                    width: w,
                    height: h,
                },
                duration: 4.0,
                fps: 30,
                images: &image::Images::default(),
                exit_fade: true,
                background: None,
            },
        )
        .unwrap();
        let t_prep = t0.elapsed();
        let mut frame = frame::FrameBuf::new(w, h);
        let mut yuv = frame::YuvState::new(w as usize, h as usize);
        let n = 60;
        let (mut t_moving, mut t_yuv_moving) = (Duration::ZERO, Duration::ZERO);
        for i in 0..n {
            let t0 = Instant::now();
            frame.reset(&bg, 0);
            drawer.draw(&mut frame.canvas(), 0.2 + i as f32 * 0.01); // moving, fading
            t_moving += t0.elapsed();
            let t0 = Instant::now();
            black_box(yuv.convert(&mut frame));
            t_yuv_moving += t0.elapsed();
        }
        let t0 = Instant::now();
        for _ in 0..n {
            frame.reset(&bg, 0);
            drawer.draw(&mut frame.canvas(), 2.0); // at rest
        }
        let t_rest = t0.elapsed() / n;
        let mut full = vec![0u8; paint::yuv420p_len(w as usize, h as usize)];
        let t0 = Instant::now();
        for _ in 0..n {
            paint::rgba_to_yuv420p(
                black_box(frame.pixmap.data()),
                w as usize,
                h as usize,
                &mut full,
            );
        }
        let t_yuv = t0.elapsed() / n;
        println!(
            "STAGES {w}x{h}: background {t_bg:?}, font system {t_fonts:?}, scene prepare {t_prep:?}, \
             frame moving {:?} (+ incremental yuv {:?}), frame at rest {t_rest:?}, full rgba->yuv {t_yuv:?}",
            t_moving / n,
            t_yuv_moving / n
        );
    }
}

/// Every text scene, stuffed to its limits, keeps its ink inside the frame with a margin, in
/// landscape, in the reel layout and in square and 4:5 frames: text wraps and shrinks to fit
/// instead of overflowing.
#[test]
fn text_never_overflows_the_frame() {
    use vidbuilder_domain::spec::{AspectRatio, Background, Stat};
    let long = |n: usize| {
        "Supercalifragilistic **expialidocious** words and ==highlighted== *phrases* go on "
            .repeat(8)
            .chars()
            .take(n)
            .collect::<String>()
    };
    let stat = |v: f64| Stat {
        value: v,
        label: long(120),
        prefix: Some("$".into()),
        suffix: Some("k+/yr".into()),
        decimals: 3,
    };
    let contents = vec![
        SceneContent::HeroTitle {
            title: long(500),
            subtitle: Some(long(500)),
        },
        SceneContent::Text {
            heading: Some(long(300)),
            body: long(500),
        },
        SceneContent::BulletList {
            heading: Some(long(200)),
            items: (0..8).map(|_| long(300)).collect(),
        },
        SceneContent::Stats {
            heading: Some(long(200)),
            stats: vec![
                stat(999_999_999_999.0),
                stat(-12_345_678.5),
                stat(1.0),
                stat(7e14),
            ],
        },
        SceneContent::Quote {
            quote: long(500),
            author: Some(long(200)),
            role: Some(long(200)),
        },
        SceneContent::CallToAction {
            headline: long(500),
            button: "W".repeat(40),
            url: Some(long(300)),
        },
        SceneContent::LogoOutro {
            logo: None,
            wordmark: Some(long(300)),
            tagline: Some(long(300)),
        },
    ];
    let c = catalog();
    for content in contents {
        // landscape, the reel, and the square and 4:5 frames of `aspectRatios`
        for (shape, size) in [
            ("landscape", Quality::Draft.dimensions()),
            ("reel", REEL_SIZE),
            ("1:1", AspectRatio::Square.size(Quality::Draft)),
            ("4:5", AspectRatio::Portrait.size(Quality::Draft)),
        ] {
            let mut scene = Scene::new(4.0, content.clone());
            scene.background = Some(Background::Color {
                color: "#000000".into(),
            });
            let s = spec("minimal", Quality::Draft, vec![scene], false, false);
            let frame = render_still_sized(&c, &s, &image::Images::default(), 3.0, size).unwrap();
            let (w, h) = (frame.width(), frame.height());
            let margin = (w.min(h) as f32 * 0.02) as u32;
            let mut ink = 0;
            for y in 0..h {
                for x in 0..w {
                    let p = frame.pixel(x, y).unwrap();
                    let lit = p.red().max(p.green()).max(p.blue()) > 24;
                    if lit {
                        ink += 1;
                        let inside = x >= margin && y >= margin && x < w - margin && y < h - margin;
                        assert!(
                            inside,
                            "{} ({shape}): ink at ({x}, {y}) in a {w}x{h} frame",
                            content.type_name()
                        );
                    }
                }
            }
            assert!(ink > 1000, "{} drew something", content.type_name());
        }
    }
}

/// Per scene type at 1080p: preparation, and the average cost of drawing a frame (entrance and
/// at rest) plus its incremental yuv conversion. Run in release:
/// `cargo test --release --lib render::tests::bench_scenes -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn bench_scenes() {
    let body: Value = serde_json::from_str(include_str!("../../examples/all-scenes.json")).unwrap();
    let c = catalog();
    let ctx = vidbuilder_domain::ValidationContext {
        themes: c.theme_names(),
        tracks: c.track_ids(),
        default_theme: "corporate".into(),
        fonts: ["Inter".to_string(), "Noto Sans".to_string()].into(),
        limits: Default::default(),
    };
    let all = vidbuilder_domain::spec::validate_spec(&body, &ctx).unwrap();
    let images = image::demo_images(&all);
    let theme = c.theme("modern").unwrap();
    let (w, h) = (1920u32, 1080u32);
    let mut fonts = c.font_system();
    let mut swash = cosmic_text::SwashCache::new();
    for s in &all.scenes {
        let t0 = Instant::now();
        let bg = paint::scene_background(theme, s.background.as_ref(), &images, w, h).unwrap();
        let t_bg = t0.elapsed();
        let t0 = Instant::now();
        let drawer = scene::prepare(
            &s.content,
            &mut scene::SceneContext {
                fonts: &mut fonts,
                swash: &mut swash,
                theme,
                frame: scene::Frame {
                    width: w,
                    height: h,
                },
                duration: s.duration as f32,
                fps: 30,
                images: &images,
                exit_fade: true,
                background: s.background.as_ref(),
            },
        )
        .unwrap();
        let t_prep = t0.elapsed();
        let mut frame = frame::FrameBuf::new(w, h);
        let mut yuv = frame::YuvState::new(w as usize, h as usize);
        let n = (s.duration * 30.0) as usize;
        let (mut t_draw, mut t_yuv) = (Duration::ZERO, Duration::ZERO);
        for i in 0..n {
            let t0 = Instant::now();
            frame.reset(&bg, 0);
            drawer.draw(&mut frame.canvas(), i as f32 / 30.0);
            t_draw += t0.elapsed();
            let t0 = Instant::now();
            std::hint::black_box(yuv.convert(&mut frame));
            t_yuv += t0.elapsed();
        }
        println!(
            "SCENE {:15} background {t_bg:?}, prepare {t_prep:?}, per frame: draw {:?} + yuv {:?} (full/incremental/skipped {:?})",
            s.content.type_name(),
            t_draw / n as u32,
            t_yuv / n as u32,
            yuv.stats
        );
    }
}

/// The Ken Burns sampler: at scale 1 and a whole-pixel offset it copies the image exactly; at
/// scale 2 a flat area stays flat and the clip rectangle bounds what changes.
#[test]
fn scaled_image_drawing_is_exact_at_scale_one_and_clipped() {
    let mut src = tiny_skia::Pixmap::new(8, 6).unwrap();
    for (i, px) in src.data_mut().chunks_exact_mut(4).enumerate() {
        px.copy_from_slice(&[(i * 5) as u8, (i * 3) as u8, 200, 255]);
    }
    let mut buf = frame::FrameBuf::new(32, 24);
    let bg = tiny_skia::Pixmap::new(32, 24).unwrap();
    // The opaque path and the blending path agree on an opaque source.
    for (gen, opaque) in [(0, true), (2, false)] {
        buf.reset(&bg, gen);
        buf.canvas()
            .image_scaled(&src, opaque, [4.0, 2.0, 8.0, 6.0], 1.0, 4.0, 2.0);
        for y in 0..6 {
            for x in 0..8 {
                assert_eq!(
                    buf.pixmap.pixel(x + 4, y + 2).unwrap(),
                    src.pixel(x, y).unwrap(),
                    "({x}, {y}), opaque path {opaque}"
                );
            }
        }
    }
    assert_eq!(
        buf.pixmap.pixel(3, 2).unwrap().alpha(),
        0,
        "outside the clip"
    );
    assert_eq!(
        buf.pixmap.pixel(12, 2).unwrap().alpha(),
        0,
        "outside the clip"
    );

    let flat = tiny_skia::Pixmap::from_vec(
        [9u8, 90, 180, 255].repeat(16),
        tiny_skia::IntSize::from_wh(4, 4).unwrap(),
    )
    .unwrap();
    buf.reset(&bg, 1);
    buf.canvas()
        .image_scaled(&flat, true, [0.0, 0.0, 10.0, 10.0], 2.0, 1.0, 1.0);
    for y in 0..10 {
        for x in 0..10 {
            let p = buf.pixmap.pixel(x, y).unwrap();
            assert_eq!((p.red(), p.green(), p.blue(), p.alpha()), (9, 90, 180, 255));
        }
    }
    assert_eq!(buf.pixmap.pixel(10, 5).unwrap().alpha(), 0);
    assert_eq!(buf.dirty.len(), 1);
}

/// The separable sampler against a plain floating-point bilinear reference at a Ken Burns
/// scale, opaque and half-transparent (blended over an opaque background): within one level
/// per channel (it rounds after each pass).
#[test]
fn scaled_image_matches_a_bilinear_reference() {
    let (sw, sh) = (61u32, 47u32);
    for alpha in [255u8, 128] {
        let mut src = tiny_skia::Pixmap::new(sw, sh).unwrap();
        for (i, px) in src.data_mut().chunks_exact_mut(4).enumerate() {
            let (x, y) = (i as u32 % sw, i as u32 / sw);
            let c = |v: u32| (v % 256) as u8;
            let rgb = [c(x * 37 + y * 11), c(x * x + y * 5), c(y * y * 3 + x)];
            // premultiplied, as tiny-skia stores it
            let pm = |v: u8| ((v as u32 * alpha as u32 + 127) / 255) as u8;
            px.copy_from_slice(&[pm(rgb[0]), pm(rgb[1]), pm(rgb[2]), alpha]);
        }
        assert_eq!(frame::is_opaque(&src), alpha == 255);
        let bg_color = [40u8, 80, 120, 255];
        let bg = tiny_skia::Pixmap::from_vec(
            bg_color.repeat(64 * 48),
            tiny_skia::IntSize::from_wh(64, 48).unwrap(),
        )
        .unwrap();
        let mut buf = frame::FrameBuf::new(64, 48);
        buf.reset(&bg, 0);
        let (scale, ox, oy) = (0.937f32, 1.3f32, -0.7f32);
        buf.canvas()
            .image_scaled(&src, alpha == 255, [0.0, 0.0, 56.0, 44.0], scale, ox, oy);
        let d = src.data();
        for y in 0..44usize {
            for x in 0..56usize {
                let fx = ((x as f32 + 0.5 - ox) / scale - 0.5).clamp(0.0, (sw - 1) as f32);
                let fy = ((y as f32 + 0.5 - oy) / scale - 0.5).clamp(0.0, (sh - 1) as f32);
                let (i0, j0) = (
                    (fx.floor() as usize).min(sw as usize - 2),
                    (fy.floor() as usize).min(sh as usize - 2),
                );
                let (tx, ty) = (fx - i0 as f32, fy - j0 as f32);
                let at = |i: usize, j: usize, k: usize| d[(j * sw as usize + i) * 4 + k] as f32;
                let got = buf.pixmap.pixel(x as u32, y as u32).unwrap();
                let got = [got.red(), got.green(), got.blue(), got.alpha()];
                for k in 0..4 {
                    let s = at(i0, j0, k) * (1.0 - tx) * (1.0 - ty)
                        + at(i0 + 1, j0, k) * tx * (1.0 - ty)
                        + at(i0, j0 + 1, k) * (1.0 - tx) * ty
                        + at(i0 + 1, j0 + 1, k) * tx * ty;
                    let sa = alpha as f32;
                    let want = s + bg_color[k] as f32 * (255.0 - sa) / 255.0;
                    assert!(
                        (got[k] as f32 - want).abs() <= 1.6,
                        "alpha {alpha}, ({x}, {y}) channel {k}: {} vs {want:.2}",
                        got[k]
                    );
                }
            }
        }
    }
}

/// A split's photo, once faded in, is drawn once into the scene's underlay and left out of the
/// frames (which then restore and convert only what moves): every frame, entering, at rest and
/// fading out, is byte for byte the frame drawn with the photo in the layers.
#[test]
fn a_photo_at_rest_in_the_underlay_draws_the_same_frames() {
    use scene::{Item, Layers, SceneDraw};
    let c = catalog();
    let theme = c.theme("modern").unwrap();
    let (w, h) = (320u32, 180u32);
    let mut fonts = c.font_system();
    let mut swash = cosmic_text::SwashCache::new();
    let images = image::Images::default();
    let ctx = scene::SceneContext {
        fonts: &mut fonts,
        swash: &mut swash,
        theme,
        frame: scene::Frame {
            width: w,
            height: h,
        },
        duration: 3.0,
        fps: 30,
        images: &images,
        exit_fade: true,
        background: None,
    };
    let layers = |underlay_first: bool| {
        let tm = ctx.timing();
        let mut l = Layers::new(&ctx);
        l.underlay_first = underlay_first;
        let mut photo = tiny_skia::Pixmap::new(120, 180).unwrap();
        photo.fill(tiny_skia::Color::from_rgba8(200, 120, 40, 255));
        l.push(Item::pixmap(photo, 200.0, 0.0, tm.at(0.0)).travel(0.0));
        // something that keeps moving after the photo has settled, partly over it
        let mut card = tiny_skia::Pixmap::new(90, 40).unwrap();
        card.fill(tiny_skia::Color::from_rgba8(20, 200, 220, 180));
        l.push(Item::pixmap(card, 150.0, 70.0, tm.at(0.6)));
        l
    };
    let (plain, under) = (layers(false), layers(true));
    let bg = paint::background(theme, w, h);
    let mut with_photo = frame::FrameBuf::new(w, h);
    with_photo.reset(&bg, 0);
    under.underlay(&mut with_photo.canvas());
    let (mut at_rest, mut moving_at_rest) = (0, 0);
    for k in 0..90 {
        let t = k as f32 / 30.0;
        let mut want = frame::FrameBuf::new(w, h);
        want.reset(&bg, 0);
        plain.draw(&mut want.canvas(), t);
        assert!(!plain.underlay_at(t), "only with underlay_first");
        let mut got = frame::FrameBuf::new(w, h);
        if under.underlay_at(t) {
            at_rest += 1;
            got.reset(&with_photo.pixmap, 1);
            // and the photo is left out of the frame itself
            let mut bare = frame::FrameBuf::new(w, h);
            bare.reset(&bg, 0);
            under.draw(&mut bare.canvas(), t);
            assert_ne!(
                bare.pixmap.data(),
                want.pixmap.data(),
                "t {t}: photo drawn again"
            );
            moving_at_rest += (t < 1.2) as u32;
        } else {
            got.reset(&bg, 0);
        }
        under.draw(&mut got.canvas(), t);
        assert!(
            got.pixmap.data() == want.pixmap.data(),
            "t {t}: frames differ"
        );
    }
    // not while fading in (the first frames) or out (the last): at rest in between, some of it
    // while the card still enters
    assert!(!under.underlay_at(0.0) && !under.underlay_at(2.97));
    assert!((30..80).contains(&at_rest), "{at_rest} frames at rest");
    assert!(
        moving_at_rest > 3,
        "{moving_at_rest} frames with the card still entering"
    );
}
