//! Transitions between scenes: where they fall on the frame timeline, and how two drawn frames
//! are composited during one.
//!
//! A transition is centred on the cut between two scenes (half its frames before the cut, half
//! after), so the video stays exactly the sum of the scene durations. During its window both
//! scenes are drawn, each into its own buffer over its own background, and the two are blended
//! into the output frame: in RGBA ([`composite`]), or for a fade or zoom on the base-picture path,
//! in yuv ([`composite_yuv`]). Outside windows nothing here runs: frames take the cheap
//! dirty-rect path.

use vidbuilder_domain::spec::{Direction, TransitionKind, VideoSpec};

use super::frame::IRect;
use super::paint::yuv420p_len;
use super::resample::RowSampler;
use super::theme::{Easing, Theme};
use super::yuv::{sample_into, PlanesRef};

/// The transition between scene `i` and scene `i + 1`, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// First frame of the incoming scene (the boundary).
    pub at: u64,
    /// Frames of the window before the boundary (inside the outgoing scene).
    pub before: u64,
    /// Frames of the window from the boundary on (inside the incoming scene).
    pub after: u64,
    /// The effect (`Cut` when the window is empty).
    pub kind: TransitionKind,
    /// Where the incoming scene comes from (`slide` and `wipe`).
    pub direction: Direction,
}

impl Cut {
    /// The window `[start, end)` during which both scenes are drawn.
    pub fn window(&self) -> (u64, u64) {
        (self.at - self.before, self.at + self.after)
    }

    /// Progress 0..1 (exclusive) of frame `f` through the window; frames outside give `None`.
    /// The boundary frame is the midpoint (0.5) when `after` is `before + 1`, as in an odd window
    /// split as evenly as possible.
    pub fn progress(&self, f: u64) -> Option<f32> {
        let (s, e) = self.window();
        (s..e)
            .contains(&f)
            .then(|| (f - s + 1) as f32 / (self.before + self.after + 1) as f32)
    }
}

/// Where every scene and transition falls, in frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Each scene's own frames `[start, end)` (they tile the video).
    pub ranges: Vec<(u64, u64)>,
    /// `cuts[i]` leads from scene `i` to scene `i + 1`.
    pub cuts: Vec<Cut>,
}

impl Timeline {
    /// The theme supplies the transition of scenes that set none. Each transition is clamped so
    /// that its window fits in both neighbouring scenes, alongside their other transition.
    pub fn new(spec: &VideoSpec, theme: &Theme) -> Timeline {
        let ranges = super::scene_frame_ranges(spec);
        let fps = spec.fps as f64;
        let mut cuts: Vec<Cut> = Vec::with_capacity(ranges.len().saturating_sub(1));
        for i in 0..ranges.len().saturating_sub(1) {
            let (kind, duration, direction) = match spec.scenes[i].transition {
                Some(t) => (t.kind, t.duration, t.direction),
                None => (
                    theme.motion.transition,
                    theme.motion.transition_duration as f64,
                    theme.motion.transition_direction,
                ),
            };
            let (len_out, len_in) = (ranges[i].1 - ranges[i].0, ranges[i + 1].1 - ranges[i + 1].0);
            let mut n = if kind == TransitionKind::Cut {
                0
            } else {
                (duration.max(0.0) * fps).round() as u64
            };
            n = n.min(len_out).min(len_in);
            let taken = cuts.last().map(|c| c.after).unwrap_or(0);
            let before = (n / 2).min(len_out - taken.min(len_out));
            let after = (n - n / 2).min(len_in);
            // A one-frame "transition" is a cut that blends a single frame: treat it as a cut.
            let (kind, before, after) = if before + after < 2 {
                (TransitionKind::Cut, 0, 0)
            } else {
                (kind, before, after)
            };
            cuts.push(Cut {
                at: ranges[i].1,
                before,
                after,
                kind,
                direction,
            });
        }
        Timeline { ranges, cuts }
    }

    /// The frames `[start, end)` during which scene `i` is drawn: its own range widened by the
    /// windows of the transitions on either side.
    pub fn span(&self, i: usize) -> (u64, u64) {
        let (s, e) = self.ranges[i];
        let before = i.checked_sub(1).map(|j| self.cuts[j].before).unwrap_or(0);
        let after = self.cuts.get(i).map(|c| c.after).unwrap_or(0);
        (s - before, e + after)
    }

    /// Whether scene `i` fades its content out at its end by itself: when it hands over with a
    /// hard cut, or is the last scene. A real transition does that job instead.
    pub fn exit_fade(&self, i: usize) -> bool {
        self.cuts
            .get(i)
            .map(|c| c.kind == TransitionKind::Cut || c.before + c.after == 0)
            .unwrap_or(true)
    }

    /// The transition whose window holds frame `f`, with its index and progress.
    pub fn transition_at(&self, f: u64) -> Option<(usize, &Cut, f32)> {
        self.cuts
            .iter()
            .enumerate()
            .find_map(|(i, c)| c.progress(f).map(|p| (i, c, p)))
    }

    /// A representative frame for the poster: the middle of the first scene's own frames that
    /// no transition touches (its entrance is over by then).
    pub fn poster_frame(&self) -> u64 {
        let (s, e) = self.ranges[0];
        let e = e - self.cuts.first().map(|c| c.before).unwrap_or(0);
        s + (e.saturating_sub(s)) / 2
    }
}

/// Soft edge of a wipe, as a fraction of the frame's extent along the wipe.
const WIPE_SOFTNESS: f32 = 0.015;
/// Zoom: how much the outgoing scene grows, and how much smaller the incoming one starts.
const ZOOM_OUT_GROWTH: f32 = 0.3;
const ZOOM_IN_START: f32 = 0.9;

/// Blend two opaque RGBA frames `a` (outgoing) and `b` (incoming), `w × h`, into `out` for
/// progress `p` (0..1) of a `kind` transition. Every pixel of `out` is written.
#[allow(clippy::too_many_arguments)] // two frames, their size, the transition and its progress
pub fn composite(
    kind: TransitionKind,
    direction: Direction,
    p: f32,
    a: &[u8],
    b: &[u8],
    w: usize,
    h: usize,
    out: &mut [u8],
) {
    debug_assert!(a.len() == w * h * 4 && b.len() == a.len() && out.len() == a.len());
    let p = p.clamp(0.0, 1.0);
    match kind {
        TransitionKind::Cut => out.copy_from_slice(if p < 0.5 { a } else { b }),
        TransitionKind::Fade => {
            let k = weight(Easing::EaseInOutSine.apply(p));
            lerp_row(a, b, k, out);
        }
        TransitionKind::Slide => slide(direction, Easing::EaseInOutCubic.apply(p), a, b, w, h, out),
        TransitionKind::Wipe => wipe(direction, Easing::EaseInOutSine.apply(p), a, b, w, h, out),
        TransitionKind::Zoom => zoom(p, a, b, w, h, out),
    }
}

/// 0..1 → 0..=256 fixed-point blend weight of the second image.
fn weight(x: f32) -> u16 {
    (x.clamp(0.0, 1.0) * 256.0).round() as u16
}

/// `out = a·(256−k)/256 + b·k/256`, bytewise. u16 arithmetic so it vectorises.
fn lerp_row(a: &[u8], b: &[u8], k: u16, out: &mut [u8]) {
    match k {
        0 => out.copy_from_slice(a),
        256.. => out.copy_from_slice(b),
        _ => {
            let ka = 256 - k;
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = ((x as u16 * ka + y as u16 * k + 128) >> 8) as u8;
            }
        }
    }
}

/// The incoming frame pushes the outgoing one out, both moving towards `direction`.
fn slide(d: Direction, p: f32, a: &[u8], b: &[u8], w: usize, h: usize, out: &mut [u8]) {
    let row = w * 4;
    match d {
        Direction::Left | Direction::Right => {
            let off = ((p * w as f32).round() as usize).min(w);
            for y in 0..h {
                let (ra, rb) = (&a[y * row..(y + 1) * row], &b[y * row..(y + 1) * row]);
                let ro = &mut out[y * row..(y + 1) * row];
                if d == Direction::Left {
                    // the outgoing frame moved left by `off`; the incoming one's left part follows
                    ro[..(w - off) * 4].copy_from_slice(&ra[off * 4..]);
                    ro[(w - off) * 4..].copy_from_slice(&rb[..off * 4]);
                } else {
                    ro[..off * 4].copy_from_slice(&rb[(w - off) * 4..]);
                    ro[off * 4..].copy_from_slice(&ra[..(w - off) * 4]);
                }
            }
        }
        Direction::Up | Direction::Down => {
            let off = ((p * h as f32).round() as usize).min(h);
            if d == Direction::Up {
                out[..(h - off) * row].copy_from_slice(&a[off * row..]);
                out[(h - off) * row..].copy_from_slice(&b[..off * row]);
            } else {
                out[..off * row].copy_from_slice(&b[(h - off) * row..]);
                out[off * row..].copy_from_slice(&a[..(h - off) * row]);
            }
        }
    }
}

/// Per-position weights (0..=256) of the incoming frame for a soft edge travelling across `n`
/// positions towards `towards_start` (the incoming side is behind the edge).
fn edge_weights(n: usize, p: f32, towards_start: bool) -> Vec<u16> {
    let soft = (WIPE_SOFTNESS * n as f32).max(2.0);
    // the edge runs from just past the far end to just before the near end
    let e = n as f32 + soft / 2.0 - p * (n as f32 + soft);
    (0..n)
        .map(|i| {
            let x = if towards_start { i } else { n - 1 - i } as f32 + 0.5;
            weight((x - e) / soft + 0.5)
        })
        .collect()
}

/// A soft edge sweeps across, revealing the incoming frame behind it.
fn wipe(d: Direction, p: f32, a: &[u8], b: &[u8], w: usize, h: usize, out: &mut [u8]) {
    let row = w * 4;
    match d {
        Direction::Left | Direction::Right => {
            let ws = edge_weights(w, p, d == Direction::Left);
            // columns are one side or the other except in the edge band: copy those runs whole
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for (x, &k) in ws.iter().enumerate() {
                let solid = k == 0 || k >= 256;
                match runs.last_mut() {
                    Some((_, end)) if solid && *end == x && ws[x - 1] == k => *end = x + 1,
                    _ => runs.push((x, x + 1)),
                }
            }
            for y in 0..h {
                let r = y * row..(y + 1) * row;
                let (ra, rb, ro) = (&a[r.clone()], &b[r.clone()], &mut out[r]);
                for &(s, e) in &runs {
                    let k = ws[s];
                    let px = s * 4..e * 4;
                    lerp_row(&ra[px.clone()], &rb[px.clone()], k, &mut ro[px]);
                }
            }
        }
        Direction::Up | Direction::Down => {
            let ws = edge_weights(h, p, d == Direction::Up);
            for (y, &k) in ws.iter().enumerate() {
                let r = y * row..(y + 1) * row;
                lerp_row(&a[r.clone()], &b[r.clone()], k, &mut out[r]);
            }
        }
    }
}

/// Source coordinate (index of the left/top tap, of the right/bottom one, and the latter's
/// weight in 0..=256) of each destination position when scaling by `s` about the centre, clamped
/// to the edge.
fn taps(n: usize, s: f32) -> Vec<(usize, usize, u16)> {
    let c = n as f32 / 2.0;
    (0..n)
        .map(|i| {
            let x = ((i as f32 + 0.5 - c) / s + c - 0.5).clamp(0.0, (n - 1) as f32);
            let x0 = x.floor() as usize;
            let x1 = (x0 + 1).min(n - 1);
            (x0, x1, ((x - x0 as f32) * 256.0).round() as u16)
        })
        .collect()
}

/// Whether [`composite_yuv`] composites `kind`: the transitions that mix every pixel of both
/// scenes (a fade, a zoom). A slide or a wipe mostly copies whole runs of either frame and stays
/// in RGBA.
pub fn composites_in_yuv(kind: TransitionKind) -> bool {
    matches!(kind, TransitionKind::Fade | TransitionKind::Zoom)
}

/// Buffers [`composite_yuv`] reuses from frame to frame (a zoom's two scaled scenes).
#[derive(Default)]
pub struct YuvScratch {
    sampled: [Vec<u8>; 2],
}

/// [`composite`] straight into the yuv420p frame `out` (`w × h`, both even) from the two scenes
/// already in yuv420p (`a` outgoing, `b` incoming), for the base-picture path; `kind` must be
/// one of [`composites_in_yuv`]. A fade mixes the planes with the same weights; a zoom samples
/// each scene with the same geometry (the Ken Burns sampler of `yuv.rs`) and mixes the two.
/// Both steps are linear, so the frame is the RGBA composite converted, up to rounding (and
/// chroma sampled at block centres). On 2.7 times less data than RGBA, and the writer has
/// nothing left to convert.
#[allow(clippy::too_many_arguments)] // two frames, their size, the transition, scratch and out
pub fn composite_yuv(
    kind: TransitionKind,
    p: f32,
    a: &[u8],
    b: &[u8],
    w: usize,
    h: usize,
    scratch: &mut YuvScratch,
    out: &mut [u8],
) {
    let n = yuv420p_len(w, h);
    debug_assert!(a.len() == n && b.len() == n && out.len() == n);
    let p = p.clamp(0.0, 1.0);
    let k = weight(Easing::EaseInOutSine.apply(p));
    match kind {
        TransitionKind::Fade => lerp_row(a, b, k, out),
        TransitionKind::Zoom => {
            let e = Easing::EaseInOutCubic.apply(p);
            let scales = [
                1.0 + ZOOM_OUT_GROWTH * e,
                ZOOM_IN_START + (1.0 - ZOOM_IN_START) * e,
            ];
            for ((planes, sampled), s) in [a, b].into_iter().zip(&mut scratch.sampled).zip(scales) {
                sampled.resize(n, 0);
                // the scale about the centre: the top-left lands at c·(1 − s)
                let (ox, oy) = (w as f32 / 2.0 * (1.0 - s), h as f32 / 2.0 * (1.0 - s));
                let src = PlanesRef::of_yuv420p(planes, w, h);
                sample_into(src, s, ox, oy, w, h, IRect::full(w, h), sampled);
            }
            lerp_row(&scratch.sampled[0], &scratch.sampled[1], k, out);
        }
        // not reached (see `composites_in_yuv`): a hard cut at the midpoint
        _ => {
            debug_assert!(false, "{kind:?} is composited in RGBA");
            out.copy_from_slice(if p < 0.5 { a } else { b });
        }
    }
}

/// The outgoing frame grows and fades; the incoming one grows from slightly smaller into place.
/// Both are resampled row by row ([`RowSampler`]) and cross-faded.
fn zoom(p: f32, a: &[u8], b: &[u8], w: usize, h: usize, out: &mut [u8]) {
    let e = Easing::EaseInOutCubic.apply(p);
    let sa = 1.0 + ZOOM_OUT_GROWTH * e;
    let sb = ZOOM_IN_START + (1.0 - ZOOM_IN_START) * e;
    let k = weight(Easing::EaseInOutSine.apply(p));
    let (ay, by) = (taps(h, sa), taps(h, sb));
    let (mut sample_a, mut sample_b) =
        (RowSampler::new(&taps(w, sa)), RowSampler::new(&taps(w, sb)));
    let row = w * 4;
    let (mut line_a, mut line_b) = (vec![0u8; row], vec![0u8; row]);
    fn src_row(img: &[u8], row: usize, y: usize) -> &[u8] {
        &img[y * row..(y + 1) * row]
    }
    for (y, ro) in out.chunks_exact_mut(row).enumerate().take(h) {
        let (a0, a1, afy) = ay[y];
        let (b0, b1, bfy) = by[y];
        sample_a.row(src_row(a, row, a0), src_row(a, row, a1), afy, &mut line_a);
        sample_b.row(src_row(b, row, b0), src_row(b, row, b1), bfy, &mut line_b);
        lerp_row(&line_a, &line_b, k, ro);
    }
}
