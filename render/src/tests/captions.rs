//! Burned-in captions with the real ffmpeg: the same spec rendered with and without captions,
//! decoded frame by frame. A cue shows exactly during its time, at the bottom of the frame
//! (landscape and reel), and with word timings the spoken word changes the picture as it moves.

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
    *validated(&body)
}

/// The captions of a spec body, validated as the server does.
fn validated(body: &serde_json::Value) -> Box<Captions> {
    let c = catalog();
    let ctx = vidbuilder_domain::ValidationContext {
        themes: c.theme_names(),
        tracks: c.track_ids(),
        default_theme: "corporate".into(),
        fonts: ["Inter".to_string(), "Noto Sans".to_string()].into(),
        limits: vidbuilder_domain::spec::SpecLimits::default(),
    };
    vidbuilder_domain::validate_spec(body, &ctx)
        .unwrap()
        .captions
        .expect("the body has captions")
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
        let (w, h, a) = grey_frames(plain);
        let (_, _, b) = grey_frames(captioned);
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

/// Two cues of the same size in the same place, back to back, over a scene at rest: the second
/// must replace the first on screen, at a constant and at a variable frame rate (a frame is
/// reused, or held back, only when it repeats the previous one exactly).
#[test]
fn a_caption_of_the_same_size_replaces_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let cat = catalog();
    let body = json!({
        "scenes": [{"type": "hero-title", "duration": 3, "content": {"title": "x"}}],
        "captions": {"cues": [
            {"start": 1.0, "end": 1.5, "text": "abcd"},
            {"start": 1.5, "end": 2.0, "text": "dcba"},
            {"start": 2.0, "end": 2.5, "text": "abcd"}
        ]}
    });
    let caps = validated(&body);
    for rate in [
        vidbuilder_domain::spec::FrameRate::Constant,
        vidbuilder_domain::spec::FrameRate::Variable,
    ] {
        let mut s = spec(
            "corporate",
            Quality::Draft,
            vec![hero("Still", None, 3.0)],
            false,
            false,
        );
        s.captions = Some(caps.clone());
        s.frame_rate = rate;
        let req = request(s, &dir.path().join(rate.as_str()));
        let out = render_blocking(
            &cat,
            &settings,
            &req,
            &image::Images::default(),
            &|_| {},
            &CancellationToken::new(),
        )
        .unwrap();
        let (w, h, f) = grey_frames(&out.video);
        let at = |t: f64| &f[(t * 30.0).round() as usize];
        let swap = changed(at(1.3), at(1.7), w, h, 0.6, 0.9);
        let back = changed(at(1.7), at(2.2), w, h, 0.6, 0.9);
        let same = changed(at(1.3), at(2.2), w, h, 0.6, 0.9);
        assert!(
            swap > 40 && back > 40,
            "{}: the second caption did not replace the first ({swap}, {back} pixels changed)",
            rate.as_str()
        );
        assert!(
            same < 10,
            "{}: the same text drew differently ({same})",
            rate.as_str()
        );
    }
}
