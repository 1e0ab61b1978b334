//! Transitions, the frame timeline, fps, music and posters, against the real ffmpeg.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use crate::CancellationToken;
use serde_json::Value;
use vidbuilder_domain::ports::RenderProgress;
use vidbuilder_domain::spec::{
    Background, Direction, MusicSpec, Quality, Scene, SceneContent, Transition, TransitionKind,
    VideoSpec,
};

use super::tests::{catalog, ffprobe, request, settings, stream};
use super::transition::{composite, Timeline};
use super::*;

fn scene(duration: f64, colour: &str, transition: Option<Transition>) -> Scene {
    let mut s = Scene::new(
        duration,
        SceneContent::HeroTitle {
            title: "Hi".into(),
            subtitle: None,
        },
    );
    s.background = Some(Background::Color {
        color: colour.into(),
    });
    s.transition = transition;
    s
}

fn tr(kind: TransitionKind, duration: f64, direction: Direction) -> Option<Transition> {
    Some(Transition {
        kind,
        duration,
        direction,
    })
}

fn video(scenes: Vec<Scene>, fps: u32) -> VideoSpec {
    VideoSpec {
        theme: "corporate".into(),
        music: None,
        quality: Quality::Draft,
        fps,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes,
        font: None,
    }
}

const RED: [u8; 3] = [220, 30, 30];
const BLUE: [u8; 3] = [30, 60, 220];

/// Two plain scenes (red, then blue) of 2 s with `kind` between them.
fn red_to_blue(kind: TransitionKind, direction: Direction) -> VideoSpec {
    video(
        vec![
            scene(2.0, "#dc1e1e", tr(kind, 0.5, direction)),
            scene(2.0, "#1e3cdc", None),
        ],
        30,
    )
}

fn still(spec: &VideoSpec, f: u64) -> tiny_skia::Pixmap {
    render_still(
        &catalog(),
        spec,
        &image::Images::default(),
        f as f64 / spec.fps as f64,
        false,
    )
    .unwrap()
}

fn rgb(p: &tiny_skia::Pixmap, x: u32, y: u32) -> [u8; 3] {
    let c = p.pixel(x, y).unwrap();
    [c.red(), c.green(), c.blue()]
}

fn near(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as i32 - y as i32).abs() <= tol)
}

#[test]
fn timeline_centres_transitions_and_clamps_them() {
    let c = catalog();
    let theme = c.theme("corporate").unwrap();
    let spec = video(
        vec![
            scene(
                2.0,
                "#000000",
                tr(TransitionKind::Fade, 0.5, Direction::Left),
            ),
            // a 3 s transition into and out of a 1 s scene is clamped to fit
            scene(
                1.0,
                "#000000",
                tr(TransitionKind::Slide, 3.0, Direction::Up),
            ),
            scene(
                2.0,
                "#000000",
                tr(TransitionKind::Cut, 0.0, Direction::Left),
            ),
            // the last scene's transition leads nowhere
            scene(
                1.5,
                "#000000",
                tr(TransitionKind::Zoom, 1.0, Direction::Left),
            ),
        ],
        30,
    );
    let tl = Timeline::new(&spec, theme);
    assert_eq!(tl.ranges, vec![(0, 60), (60, 90), (90, 150), (150, 195)]);
    let total: u64 = tl.ranges.iter().map(|(s, e)| e - s).sum();
    assert_eq!(total, spec.frame_count());
    assert_eq!(tl.cuts.len(), 3);
    // 0.5 s = 15 frames: 7 before the cut, 8 from it
    assert_eq!(tl.cuts[0].window(), (53, 68));
    assert_eq!(tl.cuts[0].progress(60), Some(0.5));
    assert_eq!(tl.cuts[0].progress(52), None);
    // the slide fits in scene 1 together with the fade's 8 frames: 22 frames left of its 30
    let w = tl.cuts[1].window();
    assert!(w.0 >= 68 && w.1 <= 150, "{w:?}");
    assert_eq!(tl.cuts[1].before, 15);
    assert_eq!(tl.cuts[1].kind, TransitionKind::Slide);
    assert_eq!(tl.cuts[2].window(), (150, 150));
    assert_eq!(tl.span(0), (0, 68));
    assert_eq!(tl.span(1), (53, 90 + tl.cuts[1].after));
    assert_eq!(tl.span(3), (150, 195));
    assert!(!tl.exit_fade(0) && !tl.exit_fade(1) && tl.exit_fade(2) && tl.exit_fade(3));
    assert!(tl.transition_at(60).is_some() && tl.transition_at(120).is_none());
    // the poster: the middle of scene 0's frames before its transition starts
    assert_eq!(tl.poster_frame(), 26);
}

#[test]
fn scenes_without_a_transition_use_the_themes() {
    let c = catalog();
    let mut kinds = std::collections::BTreeSet::new();
    for name in ["corporate", "modern", "minimal", "vibrant", "dark"] {
        let theme = c.theme(name).unwrap();
        kinds.insert(theme.motion.transition.as_str());
        let spec = video(
            vec![scene(2.0, "#000000", None), scene(2.0, "#000000", None)],
            30,
        );
        let tl = Timeline::new(&spec, theme);
        assert_eq!(tl.cuts[0].kind, theme.motion.transition, "{name}");
        let n = (theme.motion.transition_duration as f64 * 30.0).round() as u64;
        assert_eq!(tl.cuts[0].before + tl.cuts[0].after, n, "{name}");
    }
    assert!(kinds.len() >= 4, "themes should differ: {kinds:?}");
}

#[test]
fn fade_midpoint_is_a_blend_and_the_ends_are_pure() {
    let spec = red_to_blue(TransitionKind::Fade, Direction::Left);
    let mid = still(&spec, 60);
    let px = rgb(&mid, 4, 4);
    let avg = [125, 45, 125];
    assert!(near(px, avg, 6), "midpoint {px:?}, expected about {avg:?}");
    // just outside the window, each scene alone
    assert!(near(rgb(&still(&spec, 52), 4, 4), RED, 3));
    assert!(near(rgb(&still(&spec, 68), 4, 4), BLUE, 3));
    // inside it, monotonic from red to blue
    let reds: Vec<u8> = (53..68).map(|f| rgb(&still(&spec, f), 4, 4)[0]).collect();
    assert!(reds.windows(2).all(|w| w[0] >= w[1]), "{reds:?}");
    assert!(
        reds[0] < RED[0] && *reds.last().unwrap() > BLUE[0],
        "{reds:?}"
    );
}

#[test]
fn cut_has_no_blended_frame() {
    let spec = red_to_blue(TransitionKind::Cut, Direction::Left);
    assert!(near(rgb(&still(&spec, 59), 4, 4), RED, 3));
    assert!(near(rgb(&still(&spec, 60), 4, 4), BLUE, 3));
}

#[test]
fn slide_pushes_the_outgoing_scene_away() {
    let (w, h) = Quality::Draft.dimensions();
    for (dir, a_at, b_at) in [
        (Direction::Left, (w / 4, h / 2), (3 * w / 4, h / 2)),
        (Direction::Right, (3 * w / 4, h / 2), (w / 4, h / 2)),
        (Direction::Up, (w / 2, h / 4), (w / 2, 3 * h / 4)),
        (Direction::Down, (w / 2, 3 * h / 4), (w / 2, h / 4)),
    ] {
        let spec = red_to_blue(TransitionKind::Slide, dir);
        let mid = still(&spec, 60);
        // at the midpoint the two scenes share the frame, each whole (no blending)
        assert!(near(rgb(&mid, a_at.0, a_at.1), RED, 3), "{dir:?} outgoing");
        assert!(near(rgb(&mid, b_at.0, b_at.1), BLUE, 3), "{dir:?} incoming");
    }
    // content moves: the title of the outgoing scene is further left at each step
    let mut spec = red_to_blue(TransitionKind::Slide, Direction::Left);
    spec.scenes[1].background = spec.scenes[0].background.clone();
    let centroid = |f: u64| {
        let p = still(&spec, f);
        let (mut sx, mut n) = (0u64, 0u64);
        for y in 0..h {
            for x in 0..w {
                if rgb(&p, x, y)[1] > 150 {
                    // white-ish title text on red
                    sx += x as u64;
                    n += 1;
                }
            }
        }
        assert!(n > 0, "text visible at {f}");
        sx as f64 / n as f64
    };
    // (the title sits near the left edge: a few frames in, it has moved ~40 px, not yet out)
    let (early, late) = (centroid(52), centroid(56));
    assert!(late < early - 20.0, "{early} -> {late}");
}

#[test]
fn wipe_reveals_the_incoming_scene_behind_an_edge() {
    let (w, h) = Quality::Draft.dimensions();
    for (dir, a_at, b_at) in [
        (Direction::Left, (w / 5, h / 2), (4 * w / 5, h / 2)),
        (Direction::Right, (4 * w / 5, h / 2), (w / 5, h / 2)),
        (Direction::Up, (w / 2, h / 5), (w / 2, 4 * h / 5)),
        (Direction::Down, (w / 2, 4 * h / 5), (w / 2, h / 5)),
    ] {
        let spec = red_to_blue(TransitionKind::Wipe, dir);
        let mid = still(&spec, 60);
        assert!(near(rgb(&mid, a_at.0, a_at.1), RED, 3), "{dir:?}");
        assert!(near(rgb(&mid, b_at.0, b_at.1), BLUE, 3), "{dir:?}");
    }
}

#[test]
fn zoom_blends_and_scales() {
    let spec = red_to_blue(TransitionKind::Zoom, Direction::Left);
    let px = rgb(&still(&spec, 60), 4, 4);
    assert!(near(px, [125, 45, 125], 8), "{px:?}");
}

#[test]
fn composites_cover_every_pixel_exactly_at_the_ends() {
    let (w, h) = (64usize, 36usize);
    let a: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 251) as u8, 10, 20, 255])
        .collect();
    let b: Vec<u8> = (0..w * h)
        .flat_map(|i| [5, (i % 241) as u8, 90, 255])
        .collect();
    let mut out = vec![0u8; w * h * 4];
    for kind in [
        TransitionKind::Fade,
        TransitionKind::Slide,
        TransitionKind::Wipe,
        TransitionKind::Zoom,
    ] {
        for dir in [
            Direction::Left,
            Direction::Right,
            Direction::Up,
            Direction::Down,
        ] {
            composite(kind, dir, 0.0, &a, &b, w, h, &mut out);
            assert!(out == a, "{kind:?} {dir:?} at 0");
            composite(kind, dir, 1.0, &a, &b, w, h, &mut out);
            assert!(out == b, "{kind:?} {dir:?} at 1");
            composite(kind, dir, 0.5, &a, &b, w, h, &mut out);
            assert!(out.chunks_exact(4).all(|p| p[3] == 255), "{kind:?} opaque");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// With ffmpeg.

fn render(catalog: &Catalog, spec: VideoSpec, out: &Path) -> (RenderOutput, Vec<RenderProgress>) {
    let events = Mutex::new(Vec::new());
    let work = out.join("work");
    let res = render_blocking(
        catalog,
        &settings(&work),
        &request(spec, out),
        &image::Images::default(),
        &|p| events.lock().unwrap().push(p),
        &CancellationToken::new(),
    )
    .unwrap();
    (res, events.into_inner().unwrap())
}

fn num(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Mean volume (dB) of a file's audio, from ffmpeg's volumedetect.
fn mean_volume(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no mean_volume in {text}"))
}

#[test]
fn fps_24_and_60_give_the_right_rate_and_frame_count_with_transitions() {
    let c = catalog();
    let dir = tempfile::tempdir().unwrap();
    for fps in [24u32, 60] {
        let spec = video(
            vec![
                scene(
                    1.0,
                    "#dc1e1e",
                    tr(TransitionKind::Fade, 0.4, Direction::Left),
                ),
                scene(
                    1.5,
                    "#1e3cdc",
                    tr(TransitionKind::Slide, 0.5, Direction::Up),
                ),
                scene(1.0, "#1edc3c", None),
            ],
            fps,
        );
        let want = (3.5 * fps as f64).round() as u64;
        assert_eq!(spec.frame_count(), want);
        let out = dir.path().join(format!("fps{fps}"));
        let (res, events) = render(&c, spec, &out);
        assert_eq!(res.frames, want);
        let p = ffprobe(&res.video);
        let v = stream(&p, "video").unwrap();
        assert_eq!(v["r_frame_rate"], format!("{fps}/1"), "{p}");
        assert_eq!(num(&v["nb_frames"]) as u64, want, "{p}");
        assert!((num(&p["format"]["duration"]) - 3.5).abs() < 0.05, "{p}");
        assert!(
            stream(&p, "audio").is_none(),
            "no music, no audio stream: {p}"
        );
        // progress: frames, then encoding, then finalising
        let phases: Vec<_> = events.iter().map(|e| e.phase).collect();
        let enc = phases
            .iter()
            .position(|p| *p == RenderPhase::Encoding)
            .unwrap();
        assert!(phases[..enc].iter().all(|p| *p == RenderPhase::Rendering));
        assert_eq!(events[enc - 1].frames_done, want);
        assert_eq!(*phases.last().unwrap(), RenderPhase::Finalising);
        // the poster is a JPEG of the video's size, next to it
        let poster = res.poster.as_ref().unwrap();
        assert_eq!(poster, &res.video.with_extension("jpg"));
        let img = ::image::open(poster).unwrap();
        assert_eq!((img.width(), img.height()), Quality::Draft.dimensions());
        assert!(res.reel_poster.is_none());
    }
}

#[test]
fn music_level_follows_volume_and_lasts_as_long_as_the_video() {
    let c = catalog();
    let dir = tempfile::tempdir().unwrap();
    let mut levels = Vec::new();
    for volume in [1.0f32, 0.5] {
        let mut spec = video(vec![scene(3.0, "#202020", None)], 30);
        spec.music = Some(MusicSpec {
            track_id: "upbeat-1".into(),
            volume,
            duck: 1.0,
        });
        let (res, _) = render(&c, spec, &dir.path().join(format!("v{volume}")));
        let p = ffprobe(&res.video);
        let a = stream(&p, "audio").expect("an audio stream");
        assert_eq!(a["sample_rate"], "48000");
        assert_eq!(a["channels"], 2);
        assert!((num(&a["duration"]) - 3.0).abs() < 0.06, "{p}");
        levels.push(mean_volume(&res.video));
    }
    let diff = levels[0] - levels[1];
    assert!(
        (diff - 6.02).abs() < 0.6,
        "volume 0.5 should be ~6 dB down: {levels:?}"
    );
}

/// A user track shorter than the video loops; two tracks at very different levels come out at
/// about the same loudness (normalisation happens before `volume`).
#[test]
fn short_tracks_loop_and_loudness_is_normalised() {
    let cfg = tempfile::tempdir().unwrap();
    let music = cfg.path().join("music");
    std::fs::create_dir_all(&music).unwrap();
    for (name, amp) in [("quiet", 0.02), ("loud", 0.5)] {
        // 1.5 s of a chord: much shorter than the video
        let expr = format!(
            "{amp}*(sin(2*PI*220*t)+sin(2*PI*277*t)+sin(2*PI*330*t))/3|{amp}*(sin(2*PI*220*t)+sin(2*PI*330*t))/2"
        );
        let st = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!("aevalsrc=exprs={expr}:s=48000:d=1.5"))
            .args(["-c:a", "aac", "-b:a", "128k"])
            .arg(music.join(format!("{name}.m4a")))
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::write(
        music.join("catalog.toml"),
        "[[tracks]]\nid = \"quiet\"\nfile = \"quiet.m4a\"\nduration_secs = 1.5\n\
         [[tracks]]\nid = \"loud\"\nfile = \"loud.m4a\"\nduration_secs = 1.5\n",
    )
    .unwrap();
    let c = Catalog::load(Some(cfg.path())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut levels = Vec::new();
    for id in ["quiet", "loud"] {
        let mut spec = video(vec![scene(5.0, "#202020", None)], 25);
        spec.music = Some(MusicSpec {
            track_id: id.into(),
            volume: 0.8,
            duck: 1.0,
        });
        let (res, _) = render(&c, spec, &dir.path().join(id));
        let p = ffprobe(&res.video);
        let a = stream(&p, "audio").unwrap();
        assert!(
            (num(&a["duration"]) - 5.0).abs() < 0.06,
            "looped to 5 s: {p}"
        );
        // still sounding in the 4th second (it looped rather than stopping at 1.5 s)
        let seg = dir.path().join(format!("{id}-seg.wav"));
        let st = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                "2.5",
                "-t",
                "1",
                "-i",
            ])
            .arg(&res.video)
            .args(["-vn"])
            .arg(&seg)
            .status()
            .unwrap();
        assert!(st.success());
        assert!(mean_volume(&seg) > -40.0, "{id} silent after 1.5 s");
        levels.push(mean_volume(&res.video));
    }
    assert!(
        (levels[0] - levels[1]).abs() < 1.5,
        "normalised levels differ: {levels:?}"
    );
}

#[test]
fn reels_get_a_poster_too() {
    let c = catalog();
    let dir = tempfile::tempdir().unwrap();
    let mut spec = video(
        vec![scene(0.6, "#dc1e1e", None), scene(0.6, "#1e3cdc", None)],
        30,
    );
    spec.generate_reels = true;
    let (res, _) = render(&c, spec, dir.path());
    let reel = res.reel.as_ref().unwrap();
    let poster = res.reel_poster.as_ref().unwrap();
    assert_eq!(poster, &reel.with_extension("jpg"));
    let img = ::image::open(poster).unwrap();
    assert_eq!((img.width(), img.height()), REEL_SIZE);
    let px = img.to_rgb8().get_pixel(5, 5).0;
    assert!(near(px, RED, 8), "poster from the first scene: {px:?}");
    // nothing else left behind: videos and posters only
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "work")
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

/// Writes `/tmp/vidbuilder-transition-<kind>.png`: 720p frames 40% into each transition between
/// two real scenes, for a visual check.
/// `cargo test --lib render::motion_tests::transition_stills -- --ignored`
#[test]
#[ignore = "writes review images to /tmp"]
fn transition_stills() {
    for (name, kind) in TransitionKind::ALL {
        let mut first = Scene::new(
            2.0,
            SceneContent::HeroTitle {
                title: "Welcome to **VidBuilder**".into(),
                subtitle: Some("Create stunning videos".into()),
            },
        );
        first.transition = tr(kind, 1.0, Direction::Left);
        let mut second = Scene::new(
            2.0,
            SceneContent::HeroTitle {
                title: "Second *scene*".into(),
                subtitle: None,
            },
        );
        second.background = Some(Background::Gradient {
            colors: vec!["#1d2671".into(), "#c33764".into()],
            angle: 135.0,
        });
        let mut spec = video(vec![first, second], 30);
        spec.quality = Quality::P720;
        let png =
            render_still_png(&catalog(), &spec, &image::Images::default(), 1.9, false).unwrap();
        std::fs::write(format!("/tmp/vidbuilder-transition-{name}.png"), png).unwrap();
    }
}
