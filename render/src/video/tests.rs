//! Clips made by ffmpeg in the test (`testsrc2` pictures, a `sine` tone) and read back: probing
//! and its refusals, the reader's timing, holding, looping and seeking, and whole renders whose
//! frames are compared with ffmpeg's own decode of the source and whose sound is measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use vidbuilder_domain::spec::{Fit, ImageSource, Quality, Scene, SceneContent, VideoClip};

use super::*;
use crate::tests::{catalog, ffprobe, request, settings, stream};

/// A `secs` long 320×240 25 fps clip (with a 440 Hz tone when `sound`) at `dir/name`.
pub(crate) fn make_clip(dir: &Path, name: &str, secs: f64, sound: bool) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=s=320x240:r=25:d={secs}"));
    if sound {
        cmd.args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:sample_rate=48000:d={secs}"))
            .args(["-c:a", "aac", "-shortest"]);
    }
    let out = cmd
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn clip(src: ImageSource) -> VideoClip {
    VideoClip {
        src,
        trim_start: 0.0,
        trim_end: None,
        fit: Fit::Cover,
        speed: 1.0,
        muted: false,
        volume: 1.0,
        looped: false,
    }
}

fn source(path: &Path) -> Arc<VideoSource> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let probe = rt.block_on(probe(Path::new("ffprobe"), path)).unwrap();
    Arc::new(VideoSource {
        path: path.to_path_buf(),
        probe,
        ffmpeg: "ffmpeg".into(),
        average: [0.5; 3],
        downloaded: false,
    })
}

/// ffmpeg's own frame of `path` at `at` seconds, scaled to cover `w`×`h`, as grey (from RGB, so
/// files with different YUV matrices compare by the colours they mean).
fn reference_grey(path: &Path, at: f64, w: u32, h: u32) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at:.4}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-vf"])
        .arg(format!(
            "scale={w}:{h}:force_original_aspect_ratio=increase:flags=bilinear,crop={w}:{h},format=rgb24"
        ))
        .args(["-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    grey_of_rgb(&out.stdout, 3)
}

/// Grey (BT.709 weights) of packed pixels of `n` bytes each, RGB first.
fn grey_of_rgb(data: &[u8], n: usize) -> Vec<u8> {
    data.chunks_exact(n)
        .map(|p| ((p[0] as u32 * 54 + p[1] as u32 * 183 + p[2] as u32 * 19) >> 8) as u8)
        .collect()
}

fn grey_of(pm: &Pixmap) -> Vec<u8> {
    grey_of_rgb(pm.data(), 4)
}

fn mean_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| p.abs_diff(*q) as f64)
        .sum::<f64>()
        / a.len() as f64
}

/// The time (in seconds of `path`) whose frame `grey` is closest to, searched in 1/25 s steps
/// over `[from, to]`, with its mean difference.
fn closest_time(path: &Path, grey: &[u8], w: u32, h: u32, from: f64, to: f64) -> (f64, f64) {
    let mut best = (f64::NAN, f64::MAX);
    let mut t = from;
    while t <= to + 1e-9 {
        let d = mean_diff(grey, &reference_grey(path, t, w, h));
        if d < best.1 {
            best = (t, d);
        }
        t += 0.04;
    }
    best
}

#[test]
fn probing_reads_size_length_and_sound_and_refuses_what_is_not_a_clip() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = make_clip(dir.path(), "a.mp4", 2.0, true);
    let got = rt.block_on(probe(Path::new("ffprobe"), &p)).unwrap();
    assert_eq!((got.width, got.height, got.audio), (320, 240, true));
    assert!((got.duration - 2.0).abs() < 0.1, "{got:?}");
    let silent = make_clip(dir.path(), "b.mp4", 1.0, false);
    assert!(
        !rt.block_on(probe(Path::new("ffprobe"), &silent))
            .unwrap()
            .audio
    );

    // not a video at all
    std::fs::write(dir.path().join("text.mp4"), b"hello, not a video").unwrap();
    let e = rt
        .block_on(probe(Path::new("ffprobe"), &dir.path().join("text.mp4")))
        .unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
    // a playlist pointing at another file: the demuxer is not allowed, nothing else is opened
    let secret = dir.path().join("secret.mp4");
    std::fs::copy(&p, &secret).unwrap();
    let m3u8 = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{}\n#EXT-X-ENDLIST\n",
        secret.display()
    );
    std::fs::write(dir.path().join("list.mp4"), m3u8).unwrap();
    let e = rt
        .block_on(probe(Path::new("ffprobe"), &dir.path().join("list.mp4")))
        .unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
    // a picture-less file (sound only)
    let out = Command::new("ffmpeg")
        .args([
            "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac",
        ])
        .arg(dir.path().join("sound.mp4"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let e = rt
        .block_on(probe(Path::new("ffprobe"), &dir.path().join("sound.mp4")))
        .unwrap_err();
    assert!(e.contains("no video stream"), "{e}");
}

#[test]
fn the_reader_plays_the_trim_at_speed_then_holds_or_loops_and_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_clip(dir.path(), "a.mp4", 4.0, false);
    let src = source(&p);
    let (w, h) = (160, 120);
    let look = ClipLook {
        width: w,
        height: h,
        fps: 25,
        dim: None,
    };
    let mut c = clip(ImageSource::Asset("a.mp4".into()));
    c.trim_start = 1.0;
    c.trim_end = Some(3.0);
    let mut r = ClipReader::new(src.clone(), c.clone(), look);
    // frame k of the scene shows the source at 1 + k/25 s
    for k in [0u64, 10, 30] {
        let (id, pm) = r.frame(k).unwrap().expect("a frame");
        let pm = &pm.to_pixmap(w, h);
        assert_eq!(id, k);
        let at = 1.0 + k as f64 / 25.0;
        let d = mean_diff(&grey_of(pm), &reference_grey(&p, at, w, h));
        assert!(
            d < 6.0,
            "frame {k}: mean difference {d} from the source at {at} s"
        );
    }
    assert_eq!(r.starts, 1, "read in order: one decode");
    // past the trim's end (2 s = 50 frames) the last frame holds
    let (id, _) = r.frame(70).unwrap().unwrap();
    assert!((48..=50).contains(&id), "held frame {id}");
    assert_eq!(r.frame(90).unwrap().unwrap().0, id);
    let total = id + 1;
    // back to an earlier frame: a new decode seeks there
    let (id, pm) = r.frame(5).unwrap().unwrap();
    let pm = &pm.to_pixmap(w, h);
    assert_eq!(id, 5);
    let d = mean_diff(&grey_of(pm), &reference_grey(&p, 1.2, w, h));
    assert!(d < 6.0, "after seeking back: {d}");

    // looped: frame k shows clip frame k mod its length
    c.looped = true;
    let mut r = ClipReader::new(src.clone(), c.clone(), look);
    for k in 0..(total + 12) {
        let (id, _) = r.frame(k).unwrap().unwrap();
        if k >= total {
            assert_eq!(id, k % total, "frame {k}");
        }
    }
    assert_eq!(r.starts, 2, "one decode per pass");

    // twice the speed: frame k shows 1 + 2k/25 s
    c.looped = false;
    c.speed = 2.0;
    let mut r = ClipReader::new(src, c, look);
    let (_, pm) = r.frame(10).unwrap().unwrap();
    let pm = &pm.to_pixmap(w, h);
    let found = closest_time(&p, &grey_of(pm), w, h, 1.4, 2.2);
    assert!(
        (found.0 - 1.8).abs() < 0.05,
        "at 2x, frame 10 is the source at {found:?}"
    );
}

#[test]
fn a_prestarted_reader_hands_over_the_frames_of_its_one_decode() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_clip(dir.path(), "a.mp4", 2.0, false);
    let src = source(&p);
    let look = ClipLook {
        width: 160,
        height: 120,
        fps: 25,
        dim: None,
    };
    let mut c = clip(ImageSource::Asset("a.mp4".into()));
    c.trim_start = 0.4;
    let mut warm = ClipReader::new(src.clone(), c.clone(), look);
    warm.prestart();
    assert_eq!(
        warm.starts, 1,
        "decoding started before any frame was asked for"
    );
    warm.prestart();
    assert_eq!(
        warm.starts, 1,
        "a second prestart does not start another decode"
    );
    let mut cold = ClipReader::new(src, c, look);
    for k in [0u64, 1, 12] {
        let (i, a) = warm.frame(k).unwrap().expect("a frame");
        let a = a.to_pixmap(160, 120);
        let (j, b) = cold.frame(k).unwrap().expect("a frame");
        assert_eq!(
            (i, a.data()),
            (j, b.to_pixmap(160, 120).data()),
            "frame {k}"
        );
    }
    assert_eq!(warm.starts, 1, "the prestarted decode served every frame");
    assert_eq!(cold.starts, 1);
}

#[test]
fn a_clip_scene_is_prepared_ahead_and_clip_decoding_reads_what_a_render_shows() {
    let dir = tempfile::tempdir().unwrap();
    make_clip(dir.path(), "a.mp4", 1.0, false);
    let c = clip(ImageSource::Asset("a.mp4".into()));
    // a 2 s title, then 2 s of the 1 s clip (held on its last frame), with a background clip
    let mut spec = video_spec(c.clone(), 2.0, false);
    spec.scenes.insert(0, hero_scene(2.0));
    spec.scenes[0].background =
        Some(vidbuilder_domain::spec::Background::Video { clip: c, dim: 0.5 });
    let mut s = settings(dir.path());
    s.images.assets_dir = Some(dir.path().to_path_buf());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let images = rt.block_on(crate::prefetch_media(&spec, &s)).unwrap();
    let catalog = catalog();
    let theme = crate::theme_of(&catalog, &spec).unwrap();
    let timeline = crate::transition::Timeline::new(&spec, &theme);
    let (w, h) = spec.quality.dimensions();
    let frame = crate::scene::Frame {
        width: w,
        height: h,
    };
    let mut composer = crate::compose::Composer::new(&spec, &theme, &images, &timeline, frame);
    let mut fonts = catalog.font_system_with(images.fonts());
    let mut swash = cosmic_text::SwashCache::new();
    composer.warm_up(&mut fonts, &mut swash).unwrap();
    assert!(composer.prepared(0) && !composer.prepared(1));
    // scene 1 starts at frame 50; it is prepared (its decoder started) half a second before
    let start = timeline.span(1).0;
    let lead = (25.0 * crate::compose::LEAD).ceil() as u64;
    let mut buf = crate::frame::FrameBuf::new(w, h);
    for f in 0..start {
        composer.draw(f, &mut buf, &mut fonts, &mut swash).unwrap();
        assert_eq!(composer.prepared(1), f + lead >= start, "frame {f}");
    }
    // every frame each scene shows is read (the held clip's too), both scenes' through the
    // transition between them
    let mut decoding = crate::ClipDecoding::new(&catalog, &spec, &images, false).unwrap();
    for f in 0..spec.frame_count() {
        decoding.frame(f).unwrap();
    }
    let (a, b) = (timeline.span(0), timeline.span(1));
    assert!(a.1 > b.0, "the theme's transition overlaps the scenes");
    assert_eq!(decoding.read(), (a.1 - a.0) + (b.1 - b.0));
}

#[test]
fn contain_letterboxes_on_the_background_and_dim_blends_towards_a_colour() {
    let dir = tempfile::tempdir().unwrap();
    let p = make_clip(dir.path(), "a.mp4", 1.0, false);
    let src = source(&p);
    // a 4:3 clip in a 16:9 frame: bars left and right are transparent
    let mut c = clip(ImageSource::Asset("a.mp4".into()));
    c.fit = Fit::Contain;
    let look = ClipLook {
        width: 320,
        height: 180,
        fps: 25,
        dim: None,
    };
    let mut r = ClipReader::new(src.clone(), c.clone(), look);
    assert!(!r.opaque());
    let (_, pm) = r.frame(0).unwrap().unwrap();
    let pm = pm.to_pixmap(320, 180);
    let alpha = |x: u32, y: u32| pm.data()[((y * 320 + x) * 4 + 3) as usize];
    assert_eq!(alpha(5, 90), 0, "left bar");
    assert_eq!(alpha(314, 90), 0, "right bar");
    assert_eq!(alpha(160, 90), 255, "picture");
    // dim 1 towards pure red: every pixel is that red
    c.fit = Fit::Cover;
    let mut r = ClipReader::new(
        src,
        c,
        ClipLook {
            dim: Some((Rgb(200, 0, 0), 1.0)),
            ..look
        },
    );
    let (_, pm) = r.frame(3).unwrap().unwrap();
    assert!(
        matches!(pm, ClipFrame::Yuv(_)),
        "a cover clip is decoded to yuv"
    );
    let pm = pm.to_pixmap(320, 180);
    assert!(
        pm.data()
            .chunks_exact(4)
            .all(|p| p[0].abs_diff(200) <= 1 && p[1] <= 1 && p[2] <= 1 && p[3] == 255),
        "fully dimmed: {:?}",
        &pm.data()[..8]
    );
}

fn video_spec(clip: VideoClip, scene_secs: f64, background: bool) -> VideoSpec {
    let content = if background {
        SceneContent::HeroTitle {
            title: "Over a clip".into(),
            subtitle: None,
        }
    } else {
        SceneContent::Video {
            clip: clip.clone(),
            caption: None,
        }
    };
    let mut scene = Scene::new(scene_secs, content);
    if background {
        scene.background = Some(vidbuilder_domain::spec::Background::Video { clip, dim: 0.0 });
    }
    VideoSpec {
        theme: "modern".into(),
        music: None,
        quality: Quality::Draft,
        fps: 25,
        frame_rate: Default::default(),
        generate_reels: false,
        outputs: Default::default(),
        scenes: vec![scene],
        watermark: None,
        captions: None,
        metadata: None,
        font: None,
    }
}

fn render(spec: VideoSpec, assets: &Path, work: &Path) -> crate::RenderOutput {
    let mut s = settings(work);
    s.images.assets_dir = Some(assets.to_path_buf());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let images = rt.block_on(crate::prefetch_media(&spec, &s)).unwrap();
    crate::render_blocking(
        &catalog(),
        &s,
        &request(spec, &work.join("out")),
        &images,
        &|_| {},
        &crate::CancellationToken::new(),
    )
    .unwrap()
}

/// Every frame of the rendered video, as grey (from RGB) at its size.
fn rendered_greys(path: &Path, w: u32, h: u32) -> Vec<Vec<u8>> {
    crate::tests::decode(path, "format=rgb24", 3 * w as usize, h as usize)
        .iter()
        .map(|f| grey_of_rgb(f, 3))
        .collect()
}

#[test]
fn a_rendered_clip_shows_the_trimmed_source_in_time_with_its_sound_at_its_volume() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    let p = make_clip(&assets, "clip.mp4", 4.0, true);
    let mut c = clip(ImageSource::Asset("clip.mp4".into()));
    c.trim_start = 1.0;
    c.trim_end = Some(3.5);
    let loud = render(
        video_spec(c.clone(), 2.0, false),
        &assets,
        &dir.path().join("w1"),
    );
    let (w, h) = (loud.width, loud.height);
    // frame 25 (1 s into the scene) is the source at 2 s: the closest source frame is found
    let grey = &rendered_greys(&loud.video, w, h)[25];
    let (at, d) = closest_time(&p, grey, w, h, 1.6, 2.4);
    assert!(
        (at - 2.0).abs() < 0.05 && d < 8.0,
        "frame 25 shows the source at {at} s (diff {d})"
    );
    let probe = ffprobe(&loud.video);
    assert!(
        stream(&probe, "audio").is_some(),
        "the clip's sound is mixed in"
    );
    let ff = Path::new("ffmpeg");
    let l_loud = crate::ffmpeg::measure_loudness(ff, &loud.video)
        .unwrap()
        .unwrap();

    c.volume = 0.25;
    let quiet = render(
        video_spec(c.clone(), 2.0, false),
        &assets,
        &dir.path().join("w2"),
    );
    let l_quiet = crate::ffmpeg::measure_loudness(ff, &quiet.video)
        .unwrap()
        .unwrap();
    // a quarter of the amplitude is 12 dB quieter
    let drop = l_loud - l_quiet;
    assert!(
        (drop - 12.04).abs() < 1.0,
        "volume 0.25: {l_loud} → {l_quiet} LUFS"
    );

    c.muted = true;
    let muted = render(video_spec(c, 2.0, false), &assets, &dir.path().join("w3"));
    assert!(
        stream(&ffprobe(&muted.video), "audio").is_none(),
        "muted: no sound"
    );
}

#[test]
fn a_video_background_moves_under_the_scene_and_holds_when_the_clip_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    make_clip(&assets, "bg.mp4", 1.0, true);
    let c = VideoClip {
        muted: true,
        ..clip(ImageSource::Asset("bg.mp4".into()))
    };
    let out = render(video_spec(c, 2.0, true), &assets, &dir.path().join("w"));
    let (w, h) = (out.width, out.height);
    let frames = rendered_greys(&out.video, w, h);
    assert_eq!(frames.len(), 50);
    // the picture moves while the clip plays (testsrc2 moves every frame) ...
    assert!(
        mean_diff(&frames[5], &frames[15]) > 1.0,
        "moving under the title"
    );
    // ... and holds its last frame once it has ended (the title has finished entering by then)
    // (the title fades out over the last frames)
    assert!(
        mean_diff(&frames[27], &frames[38]) < 0.05,
        "held after the clip's end"
    );
    assert!(
        stream(&ffprobe(&out.video), "audio").is_none(),
        "a background is muted"
    );
}

/// A `secs` long `freq` Hz tone at amplitude `amp` (0–1), as M4A, at `dir/name`.
fn make_tone(dir: &Path, name: &str, secs: f64, freq: u32, amp: f64) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={freq}:sample_rate=48000:d={secs},volume={amp}"
        ))
        .args(["-c:a", "aac"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// The mean volume (dBFS) of `path`'s sound from `at` for `secs` seconds.
fn mean_volume(path: &Path, at: f64, secs: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-ss",
            &format!("{at}"),
            "-t",
            &format!("{secs}"),
            "-i",
        ])
        .arg(path)
        .args(["-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("mean_volume:"))
        .unwrap_or_else(|| panic!("no mean_volume in {text}"));
    line.split("mean_volume:")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches("dB")
        .trim()
        .parse()
        .unwrap()
}

fn hero_scene(secs: f64) -> Scene {
    Scene::new(
        secs,
        SceneContent::HeroTitle {
            title: "Voice".into(),
            subtitle: None,
        },
    )
}

fn audio_spec(scenes: Vec<Scene>, music: Option<vidbuilder_domain::spec::MusicSpec>) -> VideoSpec {
    VideoSpec {
        theme: "modern".into(),
        music,
        quality: Quality::Draft,
        fps: 25,
        frame_rate: Default::default(),
        generate_reels: false,
        outputs: Default::default(),
        scenes,
        watermark: None,
        captions: None,
        metadata: None,
        font: None,
    }
}

fn voice(src: &str, volume: f32, offset: f64) -> Option<vidbuilder_domain::spec::SceneAudio> {
    Some(vidbuilder_domain::spec::SceneAudio {
        src: ImageSource::Asset(src.into()),
        volume,
        offset,
    })
}

#[test]
fn voice_overs_play_at_their_offset_normalised_like_music() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    // (ffmpeg's sine has an amplitude of 1/8 before this volume: -31 and -12 LUFS)
    make_tone(&assets, "quiet.m4a", 1.0, 300, 0.3);
    make_tone(&assets, "loud.m4a", 1.0, 300, 4.0);
    let mut levels = Vec::new();
    for (k, file) in ["quiet.m4a", "loud.m4a"].into_iter().enumerate() {
        let mut second = hero_scene(2.0);
        second.audio = voice(file, 1.0, 0.5);
        let out = render(
            audio_spec(vec![hero_scene(2.0), second], None),
            &assets,
            &dir.path().join(format!("w{k}")),
        );
        // silent before the voice (2.5 s: scene 2 starts at 2 s, offset 0.5 s) and after it
        assert!(
            mean_volume(&out.video, 0.2, 2.0) < -80.0,
            "{file}: silence before"
        );
        assert!(
            mean_volume(&out.video, 3.7, 0.25) < -80.0,
            "{file}: silence after"
        );
        levels.push(mean_volume(&out.video, 2.6, 0.8));
    }
    // 19 dB apart in the files, the same loudness in the mix (normalised to the music's target)
    assert!(
        (levels[0] - levels[1]).abs() < 1.0,
        "normalised voice-overs: {levels:?} dB"
    );
    assert!(levels[1] > -30.0, "audible: {levels:?}");
}

#[test]
fn the_music_ducks_under_a_voice_over_and_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    make_tone(&assets, "voice.m4a", 1.6, 300, 0.5);
    let mut measured = Vec::new();
    for (k, duck) in [1.0, 0.25f32].into_iter().enumerate() {
        // a silent voice-over (volume 0) still ducks: the mix is the music alone
        let mut scene = hero_scene(5.0);
        scene.audio = voice("voice.m4a", 0.0, 1.5);
        let music = vidbuilder_domain::spec::MusicSpec {
            track_id: "corp-1".into(),
            volume: 0.8,
            duck,
        };
        let out = render(
            audio_spec(vec![scene], Some(music)),
            &assets,
            &dir.path().join(format!("w{k}")),
        );
        measured.push((
            mean_volume(&out.video, 1.9, 0.8),  // inside the window 1.5–3.1 s
            mean_volume(&out.video, 0.9, 0.25), // before it (past the fade-in)
            mean_volume(&out.video, 3.5, 0.3),  // after it (before the fade-out)
        ));
    }
    let (plain, ducked) = (measured[0], measured[1]);
    let drop = plain.0 - ducked.0;
    assert!(
        (drop - 12.04).abs() < 1.0,
        "ducked to 0.25: {plain:?} → {ducked:?}"
    );
    assert!(
        (plain.1 - ducked.1).abs() < 0.5,
        "untouched before: {plain:?} {ducked:?}"
    );
    assert!(
        (plain.2 - ducked.2).abs() < 0.5,
        "untouched after: {plain:?} {ducked:?}"
    );
}

/// A clip tagged with another colour matrix is converted to BT.709 on the way to yuv, and so is
/// an untagged one smaller than HD (players take it as BT.601); its frames then look like
/// ffmpeg's own RGB rendering of the source. Untagged HD is passed through.
#[test]
fn a_clip_in_another_colour_matrix_is_converted_to_bt709() {
    let dir = tempfile::tempdir().unwrap();
    let untagged = make_clip(dir.path(), "plain.mp4", 1.0, false);
    let tagged = dir.path().join("sd.mp4");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&untagged)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-colorspace",
            "smpte170m",
        ])
        .arg(&tagged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let look = ClipLook {
        width: 160,
        height: 120,
        fps: 25,
        dim: None,
    };
    let c = clip(ImageSource::Asset("x.mp4".into()));
    let plain = ClipReader::new(source(&untagged), c.clone(), look);
    assert_eq!(plain.src.probe.matrix, None);
    assert!(plain
        .filter()
        .contains("in_color_matrix=bt601:out_color_matrix=bt709"));
    let hd = Probe {
        width: 1920,
        height: 1080,
        ..plain.src.probe.clone()
    };
    assert!(!hd.converts_matrix(), "untagged HD is taken as BT.709");
    // where SD ends: PAL's 576 lines are SD, 720 lines are not, nor is a portrait phone clip
    for (w, h, sd) in [(720, 576, true), (960, 720, false), (720, 1280, false)] {
        let p = Probe {
            width: w,
            height: h,
            ..hd.clone()
        };
        assert_eq!(p.converts_matrix(), sd, "{w}×{h}");
    }
    let mut sd = ClipReader::new(source(&tagged), c, look);
    assert_eq!(sd.src.probe.matrix.as_deref(), Some("smpte170m"));
    assert!(
        sd.filter().contains("out_color_matrix=bt709"),
        "{}",
        sd.filter()
    );
    // ffmpeg's RGB of the tagged source (it honours the tag) against ours, channel by channel
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "0.2", "-i"])
        .arg(&tagged)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=160:120:flags=bilinear,format=rgb24",
        ])
        .args(["-f", "rawvideo", "-"])
        .output()
        .unwrap();
    let reference = out.stdout;
    let rgb_diff = |r: &mut ClipReader| {
        let (_, frame) = r.frame(5).unwrap().unwrap();
        let ours = frame.to_pixmap(160, 120);
        let ours: Vec<u8> = ours
            .data()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        mean_diff(&ours, &reference)
    };
    let converted = rgb_diff(&mut sd);
    // the same source taken as BT.709 (as untagged HD is): its colours are off
    let mut as_untagged = ClipReader::new(
        Arc::new(VideoSource {
            path: tagged.clone(),
            probe: Probe {
                matrix: None,
                width: 1920,
                height: 1080,
                ..source(&tagged).probe.clone()
            },
            ffmpeg: "ffmpeg".into(),
            average: [0.5; 3],
            downloaded: false,
        }),
        clip(ImageSource::Asset("x.mp4".into())),
        look,
    );
    let passed = rgb_diff(&mut as_untagged);
    assert!(
        converted < 3.0 && passed > converted + 1.0,
        "mean RGB difference from ffmpeg's: {converted} converted, {passed} passed through"
    );
}
