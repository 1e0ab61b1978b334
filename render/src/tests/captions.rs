//! Burned-in captions with the real ffmpeg: the same spec rendered with and without captions,
//! decoded frame by frame. A cue shows exactly during its time, at the bottom of the frame
//! (landscape and reel), and with word timings the spoken word changes the picture as it moves.

use std::path::Path;

use serde_json::json;
use vidbuilder_domain::spec::{Captions, Quality};

use super::*;

fn captions() -> Captions {
    // validated as the server does, so the test uses what a client would send
    let body = json!({
        "scenes": [{"type": "hero-title", "duration": 3, "content": {"title": "x"}}],
        "captions": {"cues": [
            {"start": 0.5, "end": 1.2, "text": "Hello there"},
            {"start": 1.5, "end": 2.5, "text": "one two three", "words": [
                {"start": 1.5, "end": 1.8, "text": "one"},
                {"start": 1.8, "end": 2.1, "text": "two"},
                {"start": 2.1, "end": 2.5, "text": "three"}]}
        ]}
    });
    let c = catalog();
    let ctx = vidbuilder_domain::ValidationContext {
        themes: c.theme_names(),
        tracks: c.track_ids(),
        default_theme: "corporate".into(),
        limits: vidbuilder_domain::spec::SpecLimits::default(),
    };
    *vidbuilder_domain::validate_spec(&body, &ctx)
        .unwrap()
        .captions
        .unwrap()
}

fn grey(path: &Path) -> (usize, usize, Vec<Vec<u8>>) {
    let p = ffprobe(path);
    let v = stream(&p, "video").expect("video");
    let (w, h) = (
        v["width"].as_u64().unwrap() as usize,
        v["height"].as_u64().unwrap() as usize,
    );
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vf", "format=gray", "-f", "rawvideo", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    let frames = out.stdout.chunks_exact(w * h).map(<[u8]>::to_vec).collect();
    (w, h, frames)
}

/// How many pixels of rows `y0..y1` (fractions of the height) differ by more than 40 levels:
/// a caption's letters, hundreds at draft size; coding noise, a handful at most.
fn changed(a: &[u8], b: &[u8], w: usize, h: usize, y0: f64, y1: f64) -> usize {
    let (r0, r1) = ((y0 * h as f64) as usize, (y1 * h as f64) as usize);
    a[r0 * w..r1 * w]
        .iter()
        .zip(&b[r0 * w..r1 * w])
        .filter(|(p, q)| p.abs_diff(**q) > 40)
        .count()
}

#[test]
fn captions_show_during_their_cues_and_highlight_the_spoken_word() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let cat = catalog();
    let mut outs = Vec::new();
    for with in [false, true] {
        let mut s = spec(
            "corporate",
            Quality::Draft,
            vec![hero("Captions", Some("burned in"), 3.0)],
            false,
            true,
        );
        s.captions = with.then(|| Box::new(captions()));
        let req = request(s, &dir.path().join(if with { "c" } else { "p" }));
        outs.push(
            render_blocking(
                &cat,
                &settings,
                &req,
                &image::Images::default(),
                &|_| {},
                &CancellationToken::new(),
            )
            .unwrap(),
        );
    }
    let caps = captions();
    for (plain, captioned, band) in [
        (&outs[0].video, &outs[1].video, (0.6, 0.9)),
        (
            outs[0].reel.as_ref().unwrap(),
            outs[1].reel.as_ref().unwrap(),
            (0.7, 0.9),
        ),
    ] {
        let (w, h, a) = grey(plain);
        let (_, _, b) = grey(captioned);
        assert_eq!(a.len(), 90);
        for (f, (p, q)) in a.iter().zip(&b).enumerate() {
            let t = f as f64 / 30.0;
            let on = caps.at(t).is_some();
            let low = changed(p, q, w, h, band.0, band.1);
            let top = changed(p, q, w, h, 0.0, 0.4);
            if on {
                assert!(
                    low > 150,
                    "{}: frame {f} ({t:.2} s): no caption at the bottom ({low} pixels changed)",
                    captioned.display()
                );
            } else {
                assert!(
                    low < 40,
                    "{}: frame {f} ({t:.2} s): a caption outside every cue ({low} pixels)",
                    captioned.display()
                );
            }
            assert!(
                top < 10,
                "frame {f}: the caption reached the top ({top} pixels)"
            );
        }
        // The spoken word: frames under one word are the same picture; the next word changes
        // the pixels of two words (one unlit, one lit), a few hundred at this size.
        let at = |t: f64| &b[(t * 30.0).round() as usize];
        let moved = |x: &[u8], y: &[u8]| changed(x, y, w, h, band.0, band.1);
        let same = moved(at(1.53), at(1.73));
        let next = moved(at(1.73), at(1.9));
        let last = moved(at(1.9), at(2.3));
        assert!(
            same < 10,
            "one word lit, yet {same} pixels of the caption changed"
        );
        assert!(
            next > 40 && last > 40,
            "the highlight did not move: {next} and {last} pixels changed"
        );
    }
}
