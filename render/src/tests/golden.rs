//! Golden frames: each scene type, theme and background kind (and a few reel layouts) drawn at
//! chosen moments and compared with small reference PNGs in `tests/golden/`.
//!
//! Frames are shrunk to 320×180 (reels 180×320) before comparing and storing, so the
//! references stay small. The comparison is perceptual: luma and chroma after a 3×3 blur, a
//! mean absolute error over the frame and a worst 8×8 block, so sub-pixel rounding differences
//! between machines pass while a moved, missing or recoloured element fails. Fonts come from
//! `config/fonts/` only (the catalog never loads system fonts), so text renders the same
//! everywhere.
//!
//! A missing reference is written and the test FAILS (review the new image, commit it, rerun).
//! To regenerate every reference after an intended change of the look:
//!
//! ```text
//! VIDBUILDER_BLESS=1 cargo test -p vidbuilder-render --lib tests::golden
//! ```
//!
//! Blessing is refused when `CI` is set, so CI can never pass by regenerating. On a mismatch
//! the actual frame and a difference image are written to `target/golden-diff/`.

use std::path::{Path, PathBuf};

use vidbuilder_domain::spec::{
    validate_spec, Background, Captions, Cue, Scene, SpecLimits, VideoSpec, Watermark,
    WatermarkPosition, Word,
};
use vidbuilder_domain::ValidationContext;

use super::super::image::demo_images;
use super::super::render_still;
use super::*;

const SIZE: (u32, u32) = (320, 180);
/// Mean absolute error (0–255 scale) allowed over the whole frame, per channel.
const MAX_MEAN: f64 = 1.6;
/// Mean absolute error allowed in the worst 8×8 block (luma).
const MAX_BLOCK: f64 = 14.0;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The docs' example spec: one scene of every type, with colour, gradient and image
/// backgrounds.
fn all_scenes() -> VideoSpec {
    let body: Value = serde_json::from_str(include_str!("../../../examples/all-scenes.json"))
        .expect("example spec is JSON");
    let c = catalog();
    let ctx = ValidationContext {
        themes: c.theme_names(),
        tracks: c.track_ids(),
        default_theme: "corporate".into(),
        fonts: ["Inter".to_string(), "Noto Sans".to_string()].into(),
        limits: SpecLimits::default(),
    };
    validate_spec(&body, &ctx).expect("example spec is valid")
}

struct Case {
    name: String,
    theme: &'static str,
    scene: Scene,
    /// Seconds into the scene.
    t: f64,
    reel: bool,
    watermark: Option<Watermark>,
    captions: Option<Captions>,
}

fn cases() -> Vec<Case> {
    let all = all_scenes();
    let by_type = |ty: &str| {
        all.scenes
            .iter()
            .find(|s| s.content.type_name() == ty)
            .unwrap_or_else(|| panic!("{ty} in the example"))
            .clone()
    };
    let case = |name: &str, theme: &'static str, scene: Scene, t: f64, reel: bool| Case {
        name: name.to_string(),
        theme,
        scene,
        t,
        reel,
        watermark: None,
        captions: None,
    };
    let mut v = Vec::new();
    // Every scene type at rest (everything entered, nothing leaving yet), in one theme. The
    // example's text, quote and call-to-action scenes carry gradient, colour and image
    // backgrounds.
    for s in &all.scenes {
        let t = (s.duration * 0.8).min(s.duration - 0.6);
        v.push(case(s.content.type_name(), "modern", s.clone(), t, false));
    }
    // Themes look distinct: the hero title in each of the others.
    for theme in ["corporate", "minimal", "vibrant", "dark"] {
        v.push(case(
            &format!("hero-title-{theme}"),
            theme,
            by_type("hero-title"),
            2.5,
            false,
        ));
    }
    // Motion: items mid-reveal, numbers mid-count, an image late in its zoom.
    v.push(case(
        "bullet-list-reveal",
        "corporate",
        by_type("bullet-list"),
        1.9,
        false,
    ));
    v.push(case(
        "stats-counting",
        "minimal",
        by_type("stats"),
        1.0,
        false,
    ));
    v.push(case(
        "image-ken-burns-late",
        "dark",
        by_type("image"),
        4.3,
        false,
    ));
    // Backgrounds set on a scene: a gradient through 3 colours, and an image on a light theme
    // (dimmed towards its paper white; the text colours adapt if the result is too dark).
    let mut hero = by_type("hero-title");
    hero.background = Some(Background::Gradient {
        colors: vec!["#0F172A".into(), "#7C3AED".into(), "#F97316".into()],
        angle: 30.0,
    });
    v.push(case(
        "background-gradient",
        "vibrant",
        hero.clone(),
        2.5,
        false,
    ));
    hero.background = Some(Background::Image {
        src: vidbuilder_domain::spec::ImageSource::Asset("demo/landscape.jpg".into()),
        dim: 0.65,
    });
    v.push(case("background-image", "minimal", hero, 2.5, false));
    // Portrait layouts are reflowed, not cropped.
    for ty in ["hero-title", "bullet-list", "stats", "split"] {
        let s = by_type(ty);
        let t = (s.duration * 0.8).min(s.duration - 0.6);
        v.push(case(&format!("reel-{ty}"), "modern", s, t, true));
    }
    // A watermark: a logo at 80% bottom right of the landscape frame, and at full opacity top
    // left of the reel, the same size on both (a share of the shorter side).
    let logo = vidbuilder_domain::spec::ImageSource::Asset("demo/logo.png".into());
    for (reel, position, opacity) in [
        (false, WatermarkPosition::BottomRight, 0.8),
        (true, WatermarkPosition::TopLeft, 1.0),
    ] {
        let mut c = case(
            if reel { "watermark-reel" } else { "watermark" },
            "corporate",
            by_type("bullet-list"),
            3.0,
            reel,
        );
        c.watermark = Some(Watermark {
            src: logo.clone(),
            position,
            opacity,
            scale: 0.2,
        });
        v.push(c);
    }
    // Captions at the bottom of the safe box, the second word lit, landscape and reel.
    let cues = Captions {
        cues: vec![Cue {
            start: 2.0,
            end: 4.0,
            text: "Captions sit above the reel's buttons".into(),
            words: ["Captions", "sit", "above"]
                .iter()
                .enumerate()
                .map(|(i, w)| Word {
                    start: 2.0 + 0.4 * i as f64,
                    end: 2.4 + 0.4 * i as f64,
                    text: w.to_string(),
                })
                .collect(),
        }],
    };
    for reel in [false, true] {
        let mut c = case(
            if reel { "captions-reel" } else { "captions" },
            "modern",
            by_type("stats"),
            2.5,
            reel,
        );
        c.captions = Some(cues.clone());
        v.push(c);
    }
    v
}

fn render_case(c: &Case) -> ::image::RgbImage {
    let spec = VideoSpec {
        theme: c.theme.into(),
        music: None,
        quality: Quality::Draft,
        fps: 30,
        frame_rate: Default::default(),
        watermark: c.watermark.clone().map(Box::new),
        captions: c.captions.clone().map(Box::new),
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes: vec![c.scene.clone()],
        font: None,
    };
    let images = demo_images(&spec);
    let frame = render_still(&catalog(), &spec, &images, c.t, c.reel).expect("renders");
    let rgba = ::image::RgbaImage::from_raw(frame.width(), frame.height(), frame.data().to_vec())
        .expect("frame buffer");
    let (w, h) = if c.reel { (SIZE.1, SIZE.0) } else { SIZE };
    let small = ::image::imageops::resize(&rgba, w, h, ::image::imageops::FilterType::Triangle);
    ::image::DynamicImage::ImageRgba8(small).into_rgb8()
}

/// Y, Cb, Cr planes (BT.709, 0–255) blurred with a 3×3 box.
fn planes(img: &::image::RgbImage) -> [Vec<f64>; 3] {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut p = [vec![0.0; w * h], vec![0.0; w * h], vec![0.0; w * h]];
    for (i, px) in img.pixels().enumerate() {
        let [r, g, b] = px.0.map(|v| v as f64);
        let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        p[0][i] = y;
        p[1][i] = (b - y) / 1.8556;
        p[2][i] = (r - y) / 1.5748;
    }
    p.map(|plane| {
        let mut out = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let (mut sum, mut n) = (0.0, 0.0);
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (xx, yy) = (x as i64 + dx, y as i64 + dy);
                        if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                            sum += plane[yy as usize * w + xx as usize];
                            n += 1.0;
                        }
                    }
                }
                out[y * w + x] = sum / n;
            }
        }
        out
    })
}

/// (mean error per plane, worst 8×8 block mean error on luma).
fn compare(a: &::image::RgbImage, b: &::image::RgbImage) -> ([f64; 3], f64) {
    let (w, h) = (a.width() as usize, a.height() as usize);
    let (pa, pb) = (planes(a), planes(b));
    let mut means = [0.0; 3];
    for k in 0..3 {
        means[k] = pa[k]
            .iter()
            .zip(&pb[k])
            .map(|(x, y)| (x - y).abs())
            .sum::<f64>()
            / (w * h) as f64;
    }
    let mut worst: f64 = 0.0;
    for by in (0..h).step_by(8) {
        for bx in (0..w).step_by(8) {
            let (mut sum, mut n) = (0.0, 0.0);
            for y in by..(by + 8).min(h) {
                for x in bx..(bx + 8).min(w) {
                    sum += (pa[0][y * w + x] - pb[0][y * w + x]).abs();
                    n += 1.0;
                }
            }
            worst = worst.max(sum / n);
        }
    }
    (means, worst)
}

#[test]
fn golden_frames_match_their_references() {
    let bless = std::env::var("VIDBUILDER_BLESS").is_ok_and(|v| v == "1");
    if bless && std::env::var_os("CI").is_some() {
        panic!(
            "VIDBUILDER_BLESS=1 is refused under CI: regenerate references locally and commit them"
        );
    }
    let dir = golden_dir();
    let diff_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/golden-diff");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut written, mut failures) = (Vec::new(), Vec::new());
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for c in &cases {
        let actual = render_case(c);
        let path = dir.join(format!("{}.png", c.name));
        if bless || !path.exists() {
            actual.save(&path).unwrap();
            written.push(c.name.clone());
            continue;
        }
        let reference = ::image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into_rgb8();
        if reference.dimensions() != actual.dimensions() {
            failures.push(format!(
                "{}: size {:?} differs from the reference's {:?}",
                c.name,
                actual.dimensions(),
                reference.dimensions()
            ));
            continue;
        }
        let (means, worst) = compare(&actual, &reference);
        if means.iter().any(|m| *m > MAX_MEAN) || worst > MAX_BLOCK {
            std::fs::create_dir_all(&diff_dir).unwrap();
            actual
                .save(diff_dir.join(format!("{}.actual.png", c.name)))
                .unwrap();
            let diff = ::image::RgbImage::from_fn(actual.width(), actual.height(), |x, y| {
                let (p, q) = (actual.get_pixel(x, y).0, reference.get_pixel(x, y).0);
                ::image::Rgb(
                    [0, 1, 2]
                        .map(|k| (p[k] as i16 - q[k] as i16).unsigned_abs().min(255) as u8 * 4),
                )
            });
            diff.save(diff_dir.join(format!("{}.diff.png", c.name)))
                .unwrap();
            failures.push(format!(
                "{}: mean error Y/Cb/Cr {:.2}/{:.2}/{:.2} (max {MAX_MEAN}), worst block {worst:.1} (max {MAX_BLOCK})",
                c.name, means[0], means[1], means[2]
            ));
        }
    }
    if bless {
        eprintln!(
            "VIDBUILDER_BLESS=1: rewrote {} golden references in {}; review and commit them",
            written.len(),
            dir.display()
        );
        return;
    }
    assert!(
        written.is_empty(),
        "golden references were missing and have been written: {written:?} in {}. Review them, \
         commit them and rerun (regenerate all: VIDBUILDER_BLESS=1 cargo test -p vidbuilder-render --lib \
         tests::golden)",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "golden frames differ (actual and diff images in {}):\n{}",
        diff_dir.display(),
        failures.join("\n")
    );
}

/// The comparison itself: identical images pass, a moved element fails.
#[test]
fn the_golden_comparison_catches_a_moved_element() {
    let mut a = ::image::RgbImage::from_pixel(64, 36, ::image::Rgb([20, 30, 60]));
    for y in 10..20 {
        for x in 10..30 {
            a.put_pixel(x, y, ::image::Rgb([240, 240, 240]));
        }
    }
    let (m, w) = compare(&a, &a);
    assert_eq!((m, w), ([0.0; 3], 0.0));
    let mut b = ::image::RgbImage::from_pixel(64, 36, ::image::Rgb([20, 30, 60]));
    for y in 10..20 {
        for x in 22..42 {
            b.put_pixel(x, y, ::image::Rgb([240, 240, 240]));
        }
    }
    let (_, worst) = compare(&a, &b);
    assert!(worst > MAX_BLOCK, "{worst}");
    // a one-level change everywhere (rounding) passes
    let c = ::image::RgbImage::from_fn(64, 36, |x, y| {
        let p = a.get_pixel(x, y).0;
        ::image::Rgb(p.map(|v| v.saturating_add(1)))
    });
    let (m, worst) = compare(&a, &c);
    assert!(m.iter().all(|v| *v <= MAX_MEAN) && worst <= MAX_BLOCK);
}
