//! The base-picture path (`yuv.rs`) in a real render: frames whose picture covers them (a Ken
//! Burns photo, a `cover` clip) are drawn into yuv with their text blended on, and must look
//! like the same frames drawn in RGBA and converted (what a still is).

use vidbuilder_domain::spec::{
    Background, Captions, Cue, Fit, ImageSource, Scene, SceneContent, Transition, TransitionKind,
    VideoClip,
};

use super::super::image::demo_images;
use super::super::paint::{rgba_to_yuv420p, yuv420p_len};
use super::*;

/// Mean absolute difference of two planes.
fn mean(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y) as f64)
        .sum::<f64>()
        / a.len() as f64
}

/// Render `spec` frame by frame (the base-picture path where it applies) and compare the
/// frames `ks` with stills of the same moments (RGBA, converted). Returns how many frames took
/// the base-picture path, and how many there are.
pub(crate) fn check_against_stills(
    spec: &VideoSpec,
    images: &image::Images,
    ks: &[u64],
) -> (u64, u64) {
    let c = catalog();
    let (frames, stats) = render_yuv_frames(&c, spec, images, false).unwrap();
    let (w, h) = spec.quality.dimensions();
    let (w, h) = (w as usize, h as usize);
    let n = yuv420p_len(w, h);
    for &k in ks {
        let got = &frames[k as usize * n..(k as usize + 1) * n];
        let still = render_still(&c, spec, images, k as f64 / spec.fps as f64, false).unwrap();
        let mut want = vec![0u8; n];
        rgba_to_yuv420p(still.data(), w, h, &mut want);
        let (yd, cd) = (
            mean(&got[..w * h], &want[..w * h]),
            mean(&got[w * h..], &want[w * h..]),
        );
        // the same frame up to rounding (and a picture's chroma sampled at its block centres,
        // a clip's converted by ffmpeg straight to yuv instead of through RGB)
        assert!(
            yd < 0.6 && cd < 0.5,
            "frame {k}: mean difference luma {yd:.3}, chroma {cd:.3}"
        );
        // and not just any frame: the next second's differs more
        if (k as usize + spec.fps as usize + 1) * n <= frames.len() {
            let later = &frames[(k as usize + spec.fps as usize) * n..][..w * h];
            assert!(
                mean(later, &want[..w * h]) > yd,
                "frame {k} is told apart from a second later"
            );
        }
    }
    (stats.writer.conversions[3], (frames.len() / n) as u64)
}

#[test]
fn ken_burns_frames_on_the_yuv_path_match_stills() {
    let caption = "Shot on location — **Lofoten**";
    let photo = Scene::new(
        2.0,
        SceneContent::Image {
            src: ImageSource::Asset("demo/landscape.jpg".into()),
            fit: Fit::Cover,
            caption: Some(caption.into()),
            ken_burns: true,
        },
    );
    let mut s = spec("modern", Quality::Draft, vec![photo], false, false);
    s.fps = 25;
    let images = demo_images(&s);
    let (base, total) = check_against_stills(&s, &images, &[0, 12, 25, 49]);
    assert_eq!(
        (base, total),
        (50, 50),
        "every frame of the Ken Burns scene took the yuv path"
    );

    // `contain` leaves the theme's background around the picture: drawn in RGBA as before
    let SceneContent::Image { fit, .. } = &mut s.scenes[0].content else {
        unreachable!()
    };
    *fit = Fit::Contain;
    assert_eq!(check_against_stills(&s, &images, &[10]).0, 0);
}

#[test]
fn clip_frames_on_the_yuv_path_match_stills() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    crate::video::tests::make_clip(&assets, "clip.mp4", 2.0, false);
    let clip = VideoClip {
        src: ImageSource::Asset("clip.mp4".into()),
        trim_start: 0.0,
        trim_end: None,
        fit: Fit::Cover,
        speed: 1.0,
        muted: true,
        volume: 1.0,
        looped: false,
    };
    // a clip with a caption, then a title over the clip, dimmed (with a fade between them: its
    // two scenes are drawn in RGBA, converted and mixed in yuv)
    let shown = Scene::new(
        1.2,
        SceneContent::Video {
            clip: clip.clone(),
            caption: Some("A **caption** over the clip".into()),
        },
    );
    let mut under = hero("Over the clip", Some("dimmed towards the theme"), 1.2);
    under.background = Some(Background::Video { clip, dim: 0.5 });
    let mut shown = shown;
    shown.transition = Some(Transition {
        kind: TransitionKind::Fade,
        duration: 0.4,
        direction: Default::default(),
    });
    let mut s = spec("dark", Quality::Draft, vec![shown, under], false, false);
    s.fps = 25;
    let mut settings = settings(dir.path());
    settings.images.assets_dir = Some(assets);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let images = rt.block_on(crate::prefetch_media(&s, &settings)).unwrap();
    // frames of each scene, and the last, which is past the clip's end (held)
    let (base, total) = check_against_stills(&s, &images, &[3, 20, 45, 58]);
    // every frame, the fade's too
    assert_eq!(base, total, "frames on the yuv path");
}

#[test]
fn fade_and_zoom_frames_on_the_yuv_path_match_stills() {
    // A fade, a slide, then a zoom, with a caption over them all: the fade's and the zoom's two
    // scenes are kept in yuv and mixed there (each converted only where it changed); the slide
    // between them is composited in RGBA, and the zoom after it reuses the scratch buffers its
    // scenes were drawn in (converted since only where they changed: this must still be right).
    let mut scenes = Vec::new();
    for (k, (title, kind)) in [
        ("Fade **out**", Some(TransitionKind::Fade)),
        ("Slide **on**", Some(TransitionKind::Slide)),
        ("Zoom **out**", Some(TransitionKind::Zoom)),
        ("And **in**", None),
    ]
    .into_iter()
    .enumerate()
    {
        // the incoming scenes are still entering during each window: they change every frame
        let mut sc = hero(title, Some(&format!("scene {k} of four")), 1.2);
        sc.transition = kind.map(|kind| Transition {
            kind,
            duration: 0.8,
            direction: Default::default(),
        });
        scenes.push(sc);
    }
    let mut s = spec("modern", Quality::Draft, scenes, false, false);
    s.fps = 25;
    s.captions = Some(Box::new(Captions {
        cues: vec![Cue {
            start: 0.6,
            end: 4.2,
            text: "A caption over every transition".into(),
            words: Vec::new(),
        }],
    }));
    let images = image::Images::default();
    // 120 frames; windows 20..40 (fade), 50..70 (slide), 80..100 (zoom): their ends and middles,
    // and a frame of a scene at rest
    let ks = [10, 20, 24, 30, 39, 55, 64, 80, 85, 90, 99, 110];
    let (base, total) = check_against_stills(&s, &images, &ks);
    // the scenes' own frames are drawn in RGBA (no picture covers them), and so is the slide
    assert_eq!((base, total), (40, 120), "frames on the yuv path, of all");
}
