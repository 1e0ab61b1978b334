//! `watermark`: over every frame of every output, in its place, standing still through a
//! transition, and nowhere else. The same spec is rendered with and without one (real ffmpeg)
//! and the decoded frames are compared inside and outside the watermark's box.

use vidbuilder_domain::spec::{
    Direction, ImageSource, Quality, Scene, SceneContent, Transition, TransitionKind, Watermark,
    WatermarkPosition, WATERMARK_MARGIN,
};

use super::super::image::demo_images;
use super::*;

fn spec_with(watermark: Option<Watermark>) -> VideoSpec {
    let mut s = spec(
        "corporate",
        Quality::Draft,
        vec![
            Scene {
                transition: Some(Transition {
                    kind: TransitionKind::Slide,
                    duration: 0.6,
                    direction: Direction::Left,
                }),
                ..hero("With a watermark", Some("on every frame"), 1.5)
            },
            Scene::new(
                1.5,
                SceneContent::BulletList {
                    heading: Some("Over everything".into()),
                    items: vec!["Scenes".into(), "Transitions".into(), "Reels".into()],
                },
            ),
        ],
        false,
        true,
    );
    s.watermark = watermark.map(Box::new);
    s
}

/// Mean absolute difference of two grey frames inside (`true`) or outside the box.
fn diff(a: &[u8], b: &[u8], w: u32, bx: [u32; 4], inside: bool) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for (i, (&p, &q)) in a.iter().zip(b).enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        let within = x >= bx[0] && x < bx[2] && y >= bx[1] && y < bx[3];
        if within == inside {
            sum += u64::from(p.abs_diff(q));
            n += 1;
        }
    }
    sum as f64 / n.max(1) as f64
}

#[test]
fn a_watermark_is_on_every_frame_of_every_output_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let cat = catalog();
    let mark = Watermark {
        src: ImageSource::Asset("demo/logo.png".into()),
        position: WatermarkPosition::BottomRight,
        opacity: 1.0,
        scale: 0.2,
    };
    let mut outs = Vec::new();
    for (name, wm) in [("plain", None), ("marked", Some(mark.clone()))] {
        let spec = spec_with(wm);
        let images = demo_images(&spec);
        let req = request(spec, &dir.path().join(name));
        outs.push(
            render_blocking(
                &cat,
                &settings,
                &req,
                &images,
                &|_| {},
                &CancellationToken::new(),
            )
            .unwrap(),
        );
    }
    let logo = demo_images(&spec_with(Some(mark.clone())));
    let logo = logo.get(&mark.src).unwrap();
    let (lw, lh) = (logo.width() as f32, logo.height() as f32);
    for (plain, marked) in [
        (outs[0].video.clone(), outs[1].video.clone()),
        (outs[0].reel.clone().unwrap(), outs[1].reel.clone().unwrap()),
    ] {
        let (w, h, a) = grey_frames(&plain);
        let (_, _, b) = grey_frames(&marked);
        let (w, h) = (w as u32, h as u32);
        assert_eq!(a.len(), 90);
        assert_eq!(a.len(), b.len());
        // Where the watermark should be: 20% of the shorter side wide, 4% of it from the
        // bottom-right corner (the demo logo is square).
        let short = w.min(h) as f32;
        let side = (0.2 * short).round();
        assert!((lw / lh - 1.0).abs() < 0.01, "a square logo");
        let (x, y) = mark
            .position
            .place(w as f32, h as f32, side, side, WATERMARK_MARGIN * short);
        let inner = [
            (x + 0.2 * side) as u32,
            (y + 0.2 * side) as u32,
            (x + 0.8 * side) as u32,
            (y + 0.8 * side) as u32,
        ];
        let outer = [
            (x - 2.0) as u32,
            (y - 2.0) as u32,
            (x + side + 2.0).min(w as f32) as u32,
            (y + side + 2.0).min(h as f32) as u32,
        ];
        for (f, (p, q)) in a.iter().zip(&b).enumerate() {
            let inside = diff(p, q, w, inner, true);
            let outside = diff(p, q, w, outer, false);
            assert!(
                inside > 20.0,
                "{}: frame {f}: the watermark's box differs by only {inside:.1} levels",
                marked.display()
            );
            assert!(
                outside < 1.0,
                "{}: frame {f}: outside the watermark the frames differ by {outside:.2} levels",
                marked.display()
            );
        }
        // It stands still: inside its box the marked video changes no more than the plain one
        // does outside it (the slide moves everything else).
        let still = b
            .windows(2)
            .map(|p| diff(&p[0], &p[1], w, inner, true))
            .fold(0.0, f64::max);
        assert!(
            still < 3.0,
            "the watermark moved: {still:.1} levels between frames"
        );
    }
}
