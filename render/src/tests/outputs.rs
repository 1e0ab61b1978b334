//! `format` and `aspectRatios`: every ratio rendered at its size from the same scenes, as MP4,
//! WebM (VP9/Opus) or GIF, each probed with ffprobe (real ffmpeg).

use vidbuilder_domain::spec::{AspectRatio, Format, Outputs};

use super::*;

fn render(
    s: VideoSpec,
) -> (
    tempfile::TempDir,
    RenderRequest,
    RenderOutput,
    Vec<RenderProgress>,
) {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
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
    (out, req, res, events.into_inner().unwrap())
}

fn size(path: &Path) -> (u64, u64) {
    let p = ffprobe(path);
    let v = stream(&p, "video").expect("a video stream");
    (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())
}

#[test]
fn every_aspect_ratio_is_rendered_at_its_size_under_its_name() {
    let mut s = spec(
        "corporate", // left-aligned: a centred layout that fits is the same in every frame
        Quality::Draft,
        vec![Scene::new(
            0.5,
            SceneContent::BulletList {
                heading: Some("One spec, every shape".into()),
                items: vec!["Reflowed for each frame".into(), "Not cropped".into()],
            },
        )],
        false,
        true, // generateReels with 9:16 listed: still one vertical video
    );
    *s.outputs = Outputs {
        format: Format::Mp4,
        aspect_ratios: vec![
            AspectRatio::Square,
            AspectRatio::Landscape,
            AspectRatio::Vertical,
            AspectRatio::Portrait,
        ],
    };
    let (dir, req, res, events) = render(s);
    let id = req.job_id.as_str();
    check_monotonic(&events, 4 * 15);
    assert_eq!(res.video, dir.path().join(format!("{id}.mp4")));
    assert_eq!((res.width, res.height), (360, 360));
    assert_eq!(
        size(&res.video),
        (360, 360),
        "the first ratio is the main video"
    );
    let reel = res.reel.clone().expect("9:16 after the first is the reel");
    assert_eq!(reel, dir.path().join(format!("{id}-reel.mp4")));
    assert_eq!(
        size(&reel),
        (360, 640),
        "sized from the quality, not 1080x1920"
    );
    let extras: Vec<(AspectRatio, (u64, u64), String)> = res
        .extras
        .iter()
        .map(|e| {
            assert!(e.poster.as_ref().is_some_and(|p| p.exists()));
            let name = e.video.file_name().unwrap().to_string_lossy().into_owned();
            (e.ratio, size(&e.video), name)
        })
        .collect();
    assert_eq!(
        extras,
        vec![
            (AspectRatio::Landscape, (640, 360), format!("{id}-16x9.mp4")),
            (AspectRatio::Portrait, (360, 450), format!("{id}-4x5.mp4")),
        ]
    );
    assert_eq!(dir_names(dir.path()).len(), 8, "four videos, four posters");
    for v in [
        &res.video,
        &reel,
        &res.extras[0].video,
        &res.extras[1].video,
    ] {
        assert!((duration(&ffprobe(v)) - 0.5).abs() <= 0.1);
    }
    // Reflowed, not cropped: the square frame is not the middle of the landscape one.
    let (_, _, square) = grey_frames(&res.video);
    let (_, _, wide) = grey_frames(&res.extras[0].video);
    let (sq, wd) = (&square[10], &wide[10]);
    let spread = |f: &[u8]| f.iter().max().unwrap() - f.iter().min().unwrap();
    assert!(
        spread(sq) > 100 && spread(wd) > 100,
        "text is on both frames"
    );
    let crop: Vec<u8> = (0..360)
        .flat_map(|y| wd[y * 640 + 140..y * 640 + 500].to_vec())
        .collect();
    let differ = sq
        .iter()
        .zip(&crop)
        .filter(|(a, b)| a.abs_diff(**b) > 40)
        .count();
    assert!(
        differ > 500,
        "the square layout is its own ({differ} pixels differ from a centre crop)"
    );
}

#[test]
fn webm_is_vp9_with_opus_sound() {
    let mut s = spec(
        "corporate",
        Quality::Draft,
        vec![hero("WebM", Some("VP9 and Opus"), 1.0)],
        true,
        false,
    );
    s.outputs.format = Format::Webm;
    let (dir, req, res, _) = render(s);
    assert_eq!(res.video, dir.path().join(format!("{}.webm", req.job_id)));
    let p = ffprobe(&res.video);
    let v = stream(&p, "video").unwrap();
    assert_eq!(v["codec_name"], "vp9");
    assert_eq!(v["pix_fmt"], "yuv420p");
    assert_eq!(v["color_space"], "bt709");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    let a = stream(&p, "audio").expect("the music");
    assert_eq!(a["codec_name"], "opus");
    let d = duration(&p);
    assert!((d - 1.0).abs() <= 0.1, "duration {d}");
    assert_eq!(
        dir_names(dir.path()),
        vec![
            format!("{}.jpg", req.job_id),
            format!("{}.webm", req.job_id)
        ]
    );
}

#[test]
fn gif_is_palettised_silent_timed_true_to_colour_and_tidy() {
    let scenes = || {
        vec![
            hero("GIF", Some("short loops"), 0.6),
            Scene::new(
                0.4,
                SceneContent::Quote {
                    quote: "Colours stay put.".into(),
                    author: None,
                    role: None,
                },
            ),
        ]
    };
    let mp4 = spec("vibrant", Quality::Draft, scenes(), true, false);
    let mut gif = mp4.clone();
    gif.outputs.format = Format::Gif;
    let (_d1, _, mp4, _) = render(mp4);
    let (d2, req, gif, _) = render(gif);
    assert_eq!(
        dir_names(d2.path()),
        vec![format!("{}.gif", req.job_id), format!("{}.jpg", req.job_id)],
        "the intermediate and the palette are gone"
    );
    assert_eq!(
        gif.video.file_name().unwrap().to_string_lossy(),
        format!("{}.gif", req.job_id)
    );
    let p = ffprobe(&gif.video);
    let v = stream(&p, "video").unwrap();
    assert_eq!(v["codec_name"], "gif");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(
        stream(&p, "audio").is_none(),
        "a gif has no sound, music or not"
    );
    let d = duration(&p);
    assert!((d - 1.0).abs() <= 0.06, "plays for its length: {d}");
    // The same frame from both files, as RGB: the GIF's colours are the MP4's (BT.709 read as
    // such; BT.601 would shift the saturated background by far more than this).
    let rgb = |path: &Path| decode(path, "select=eq(n\\,12),format=rgb24", 640 * 3, 360);
    let (a, b) = (rgb(&mp4.video), rgb(&gif.video));
    // (ffmpeg may repeat the one selected frame to keep the rate: every copy is that frame)
    let (a, b) = (a.last().expect("a frame"), b.last().expect("a frame"));
    let mean_diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum::<u64>() as f64
        / a.len() as f64;
    assert!(mean_diff < 6.0, "mean colour difference {mean_diff:.2}");
}

#[test]
fn stacked_stats_fit_the_safe_box_of_a_4_5_frame() {
    use vidbuilder_domain::spec::{Background, Stat};
    let stat = |v: f64, label: &str| Stat {
        value: v,
        label: label.into(),
        prefix: None,
        suffix: None,
        decimals: 0,
    };
    let mut scene = Scene::new(
        3.0,
        SceneContent::Stats {
            heading: Some("Reflowed, not cropped".into()),
            stats: vec![stat(3.0, "shapes"), stat(1.0, "render"), stat(0.0, "seams")],
        },
    );
    scene.background = Some(Background::Color {
        color: "#000000".into(),
    });
    let s = spec("modern", Quality::P720, vec![scene], false, false);
    let size = AspectRatio::Portrait.size(Quality::P720);
    let frame = render_still_sized(&catalog(), &s, &image::Images::default(), 2.0, size).unwrap();
    let (w, h) = (frame.width(), frame.height());
    let lit_rows: Vec<u32> = (0..h)
        .filter(|&y| {
            (0..w).any(|x| {
                let p = frame.pixel(x, y).unwrap();
                p.red().max(p.green()).max(p.blue()) > 24
            })
        })
        .collect();
    let (top, bottom) = (lit_rows[0], *lit_rows.last().unwrap());
    // the safe box of a 4:5 frame: 9% to 91% of the height
    let (safe_top, safe_bottom) = ((0.09 * h as f32) as u32, (0.91 * h as f32) as u32);
    assert!(
        top >= safe_top && bottom <= safe_bottom,
        "ink from row {top} to {bottom}; the safe box is {safe_top} to {safe_bottom}"
    );
    assert!(bottom - top > h / 2, "three rows of numbers fill the box");
}
