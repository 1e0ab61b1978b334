//! Renders the poster frames of `docs/scenes.md`: every scene type of `examples/all-scenes.json`
//! in every theme (landscape), plus a few reel (portrait), square and 4:5 layouts, a watermark and captions, as small JPEGs.
//!
//! ```text
//! cargo run --release --example scene-gallery            # writes docs/img/
//! cargo run --release --example scene-gallery -- /tmp/g  # somewhere else
//! ```
//!
//! Images named in the spec are drawn in code (`render::image::demo_image`), so the output is
//! the same on every machine and needs no network or assets directory. The same drawings are
//! written as files to `examples/assets/`, so the example spec renders as it is:
//! `VIDBUILDER_IMAGES_ASSETS_DIR=examples/assets cargo run --release -- render examples/all-scenes.json`.

use std::path::PathBuf;

use vidbuilder_domain::spec::{
    validate_spec, AspectRatio, Captions, Cue, ImageSource, Quality, SpecLimits, VideoSpec,
    Watermark, WatermarkPosition, Word,
};
use vidbuilder_domain::ValidationContext;
use vidbuilder_render::image::demo_images;
use vidbuilder_render::{render_still, render_still_sized, Catalog};

/// Landscape posters are stored at this size (the frame is rendered at 720p, then shrunk).
const THUMB: (u32, u32) = (384, 216);

/// A moment when everything of the scene has entered and nothing has started to leave.
fn poster_time(duration: f64, fade_out: f64) -> f64 {
    (duration * 0.8).min(duration - fade_out - 0.15).max(0.0)
}

fn save_jpeg(
    pixmap: &vidbuilder_render::Pixmap,
    size: (u32, u32),
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    // The frame is opaque, so premultiplied RGBA is plain RGBA.
    let rgba = image::RgbaImage::from_raw(pixmap.width(), pixmap.height(), pixmap.data().to_vec())
        .ok_or("bad frame buffer")?;
    let small =
        image::imageops::resize(&rgba, size.0, size.1, image::imageops::FilterType::Triangle);
    let rgb = image::DynamicImage::ImageRgba8(small).into_rgb8();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 82).encode_image(&rgb)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "docs/img".to_string()),
    );
    std::fs::create_dir_all(&out)?;
    let catalog = Catalog::load(None)?;
    let body: serde_json::Value = serde_json::from_str(include_str!("all-scenes.json"))?;
    let ctx = ValidationContext {
        themes: catalog.theme_names(),
        tracks: catalog.track_ids(),
        default_theme: "corporate".into(),
        fonts: ["Inter".to_string(), "Noto Sans".to_string()].into(),
        limits: SpecLimits::default(),
    };
    let spec = validate_spec(&body, &ctx)?;
    let images = demo_images(&spec);
    let assets = PathBuf::from("examples/assets");
    for (_, src) in spec.images() {
        let path = assets.join(src.as_str());
        std::fs::create_dir_all(path.parent().ok_or("asset path")?)?;
        let pixmap = images.get(src)?;
        if src.as_str().ends_with(".png") {
            std::fs::write(&path, pixmap.encode_png()?)?;
        } else {
            save_jpeg(pixmap, (pixmap.width(), pixmap.height()), &path)?;
        }
    }
    let single = |theme: &str, i: usize| VideoSpec {
        theme: theme.to_string(),
        music: None,
        quality: Quality::P720,
        fps: 30,
        frame_rate: Default::default(),
        captions: None,
        watermark: None,
        generate_reels: false,
        outputs: Default::default(),
        metadata: None,
        scenes: vec![spec.scenes[i].clone()],
        font: None,
    };
    let mut written = 0;
    for theme in catalog.theme_names() {
        let fade = catalog
            .theme(&theme)
            .map_or(0.5, |t| t.motion.fade_out as f64);
        for (i, scene) in spec.scenes.iter().enumerate() {
            let s = single(&theme, i);
            let frame = render_still(
                &catalog,
                &s,
                &images,
                poster_time(scene.duration, fade),
                false,
            )?;
            let path = out.join(format!("{theme}-{}.jpg", scene.content.type_name()));
            save_jpeg(&frame, THUMB, &path)?;
            written += 1;
        }
    }
    // Portrait layouts are reflowed, not cropped: show a few of them.
    for (i, scene) in spec.scenes.iter().enumerate() {
        let ty = scene.content.type_name();
        if !matches!(
            ty,
            "hero-title" | "bullet-list" | "stats" | "split" | "quote" | "call-to-action"
        ) {
            continue;
        }
        let s = single("modern", i);
        let frame = render_still(
            &catalog,
            &s,
            &images,
            poster_time(scene.duration, 0.4),
            true,
        )?;
        save_jpeg(
            &frame,
            (THUMB.1, THUMB.1 * 16 / 9),
            &out.join(format!("reel-{ty}.jpg")),
        )?;
        written += 1;
    }
    // Square and 4:5 layouts (docs/scenes.md#formats-and-aspect-ratios), reflowed the same way.
    for (i, scene) in spec.scenes.iter().enumerate() {
        let ty = scene.content.type_name();
        if !matches!(
            ty,
            "hero-title" | "bullet-list" | "stats" | "split" | "quote" | "call-to-action"
        ) {
            continue;
        }
        let s = single("modern", i);
        for (ratio, name) in [
            (AspectRatio::Square, "square"),
            (AspectRatio::Portrait, "feed"),
        ] {
            let (w, h) = ratio.size(Quality::P720);
            let frame = render_still_sized(
                &catalog,
                &s,
                &images,
                poster_time(scene.duration, 0.4),
                (w, h),
            )?;
            save_jpeg(
                &frame,
                (THUMB.1, THUMB.1 * h / w),
                &out.join(format!("{name}-{ty}.jpg")),
            )?;
            written += 1;
        }
    }
    // A watermark over a scene (docs/scenes.md#watermark): the example's logo, bottom right.
    let bullets = spec
        .scenes
        .iter()
        .position(|s| s.content.type_name() == "bullet-list")
        .ok_or("a bullet-list scene in the example")?;
    let mut s = single("corporate", bullets);
    s.watermark = Some(Box::new(Watermark {
        src: ImageSource::Asset("demo/logo.png".into()),
        position: WatermarkPosition::BottomRight,
        opacity: 0.8,
        scale: 0.2,
    }));
    let frame = render_still(
        &catalog,
        &s,
        &images,
        poster_time(spec.scenes[bullets].duration, 0.5),
        false,
    )?;
    save_jpeg(&frame, THUMB, &out.join("watermark.jpg"))?;
    written += 1;
    // Captions (docs/scenes.md#captions): the spoken word lit.
    let mut s = single("modern", bullets);
    s.captions = Some(Box::new(Captions {
        cues: vec![Cue {
            start: 0.5,
            end: 5.0,
            text: "Give word timings and the spoken word lights up.".into(),
            words: ["Give", "word", "timings", "and", "the", "spoken"]
                .iter()
                .enumerate()
                .map(|(i, w)| Word {
                    start: 0.5 + 0.3 * i as f64,
                    end: 0.8 + 0.3 * i as f64,
                    text: w.to_string(),
                })
                .collect(),
        }],
    }));
    let frame = render_still(
        &catalog,
        &s,
        &images,
        poster_time(spec.scenes[bullets].duration, 0.5),
        false,
    )?;
    save_jpeg(&frame, THUMB, &out.join("captions.jpg"))?;
    written += 1;
    println!("wrote {written} images to {}", out.display());
    Ok(())
}
