//! Drawing in yuv420p: the base-picture path.
//!
//! A frame that an opaque picture covers whole (a Ken Burns photo, a `cover` video clip) would
//! otherwise be drawn as 8 MB of RGBA at 1080p and converted back to yuv420p in full, every
//! frame. Instead the picture goes straight into the frame's yuv planes ([`sample_into`] for a
//! photo, kept as yuv [`Planes`]; a plain copy for a clip decoded to yuv420p), and what is drawn
//! over it (a caption band, a scene's text, the watermark) is drawn as usual onto a transparent
//! RGBA layer and blended onto the planes only where it was drawn
//! ([`blend_rgba_over_yuv420p_rect`]). Blending premultiplied colour in yuv is the same
//! arithmetic as blending in RGB and converting (the conversion is affine), up to rounding and
//! to chroma being blended per 2×2 block.
//!
//! Everything here is BT.709 limited range in 16.16 fixed point, with the constants and luma
//! dither of [`crate::paint::rgba_to_yuv420p`].

use tiny_skia::Pixmap;

use crate::frame::IRect;
use crate::paint::{chroma_of_sums, fx, CBB, CBG, CBR, CRB, CRG, CRR, DITHER, FP, YB, YG, YR};

/// An opaque picture as yuv planes, for sampling: luma at full size, chroma at half size
/// (rounded up) from 2×2 averages, as the writer converts.
pub struct Planes {
    w: usize,
    h: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Planes {
    /// The planes, borrowed (what [`sample_into`] samples).
    pub fn as_ref(&self) -> PlanesRef<'_> {
        PlanesRef {
            w: self.w,
            h: self.h,
            y: &self.y,
            u: &self.u,
            v: &self.v,
        }
    }

    /// The planes of `p`, whose colour is taken as opaque (alpha is ignored).
    pub fn from_rgba(p: &Pixmap) -> Planes {
        let (w, h) = (p.width() as usize, p.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let d = p.data();
        let y = d
            .chunks_exact(4)
            .map(|q| {
                ((YR * q[0] as i32 + YG * q[1] as i32 + YB * q[2] as i32 + 16 * FP + FP / 2) >> 16)
                    as u8
            })
            .collect();
        let (mut u, mut v) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
        for cy in 0..ch {
            let (y0, y1) = (2 * cy, (2 * cy + 1).min(h - 1));
            for cx in 0..cw {
                let (x0, x1) = (2 * cx, (2 * cx + 1).min(w - 1));
                let mut s = [0i32; 3];
                for (xx, yy) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
                    let o = (yy * w + xx) * 4;
                    for k in 0..3 {
                        s[k] += d[o + k] as i32;
                    }
                }
                let (cb, cr) = chroma_of_sums(s[0], s[1], s[2]);
                u.push(cb);
                v.push(cr);
            }
        }
        Planes { w, h, y, u, v }
    }
}

/// The source index of the left/top neighbour, of the right/bottom one, and the 8-bit weight of
/// the latter, for destination pixel `d` of a picture `n` pixels across scaled by `scale` with
/// its origin at `o` (what [`crate::frame::Canvas::image_scaled`] and [`sample_into`] sample).
pub(crate) fn tap(d: usize, o: f32, scale: f32, n: usize) -> (usize, usize, u16) {
    let f = ((d as f32 + 0.5 - o) / scale - 0.5).clamp(0.0, n.saturating_sub(1) as f32);
    let i = (f.floor() as usize).min(n.saturating_sub(2));
    let w = (((f - i as f32) * 256.0).round() as u16).min(256);
    (i, (i + 1).min(n - 1), w)
}

/// Bilinear resampling of one 8-bit plane along a fixed column table: each output row blends
/// its two source rows (7-bit weight, at most 255 × 128: a positive 16-bit value), then each
/// output sample its two columns (8-bit weight), and rounds (or dithers) the 1.15 result.
///
/// On a CPU with AVX2 (x86-64-v3, detected at run time through `pulp`'s safe tokens) the
/// columns are taken 4 output samples at a time: a block's two-column pairs lie within 8
/// blended samples of its first one whenever the picture is shrunk by at most half, so one
/// 16-byte load and one byte shuffle gather them, and one multiply-add applies both weights.
/// The arithmetic is the same as the scalar loop's, to the bit.
struct PlaneSampler {
    /// Per output sample: its left source column, relative to `lo` (the right one is the next:
    /// [`tap`] never gives the last column as a left one, except in a 1-column source).
    cols: Vec<u32>,
    /// Per output sample: the right column's weight (0..=256).
    weights: Vec<u16>,
    lo: usize,
    hi: usize,
    /// The blended source row, with [`PAD`] more entries so that a block's 8-sample load and
    /// the right neighbour always exist.
    vrow: Vec<u16>,
    #[cfg(target_arch = "x86_64")]
    simd: Option<(pulp::x86::V3, Vec<Block>)>,
}

/// Entries past a blended row's end: a block's load reads 8 samples from its first column.
const PAD: usize = 8;

/// 4 output samples for the AVX2 path: where their pairs start, the byte shuffle that lays
/// them out as `[l0, r0, l1, r1, …]`, and the weights `[256 − w0, w0, …]` to multiply-add.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Block {
    base: u32,
    shuffle: [u8; 16],
    weights: [i16; 8],
}

impl PlaneSampler {
    fn new(taps: &[(usize, usize, u16)]) -> PlaneSampler {
        let lo = taps.iter().map(|t| t.0.min(t.1)).min().unwrap_or(0);
        let hi = taps.iter().map(|t| t.0.max(t.1)).max().map_or(0, |m| m + 1);
        let cols: Vec<u32> = taps.iter().map(|t| (t.0 - lo) as u32).collect();
        // a 1-column source (left = right): the weight is moot, the padding entry unused
        let weights: Vec<u16> = taps
            .iter()
            .map(|t| if t.1 > t.0 { t.2.min(256) } else { 0 })
            .collect();
        PlaneSampler {
            #[cfg(target_arch = "x86_64")]
            simd: pulp::x86::V3::try_new().and_then(|v3| Some((v3, blocks(&cols, &weights)?))),
            cols,
            weights,
            lo,
            hi,
            vrow: vec![0; hi - lo + PAD],
        }
    }

    /// One output row: source rows `r0` and `r1` (whole rows) blended with `r1`'s weight `wy`
    /// (0..=256, taken at 7 bits), then resampled into `out`, adding `add[k % 8]` (16.16)
    /// before the final shift.
    fn row(&mut self, r0: &[u8], r1: &[u8], wy: u16, add: &[i32; 8], out: &mut [u8]) {
        let wy = (wy.min(256) + 1) >> 1;
        let add = add.map(|a| a >> 1);
        #[cfg(target_arch = "x86_64")]
        if let Some((v3, blocks)) = &self.simd {
            let (v3, lo, hi) = (*v3, self.lo, self.hi);
            crate::simd::avx2!(v3, (v3: pulp::x86::V3 = v3, r0: &'a [u8] = &r0[lo..hi],
                r1: &'a [u8] = &r1[lo..hi], wy: u16 = wy, vrow: &'a mut [u16] = &mut self.vrow,
                blocks: &'a [Block] = blocks, cols: &'a [u32] = &self.cols,
                weights: &'a [u16] = &self.weights, add: [i32; 8] = add, out: &'a mut [u8] = out)
                -> () {
                blend_rows(r0, r1, wy, vrow);
                columns_v3(v3, vrow, blocks, cols, weights, &add, out)
            });
            return;
        }
        blend_rows(
            &r0[self.lo..self.hi],
            &r1[self.lo..self.hi],
            wy,
            &mut self.vrow,
        );
        columns(&self.vrow, &self.cols, &self.weights, &add, out, 0);
    }
}

/// `t = a × (128 − wy) + b × wy` along two source rows.
#[inline(always)]
fn blend_rows(r0: &[u8], r1: &[u8], wy: u16, vrow: &mut [u16]) {
    let iwy = 128 - wy;
    for ((t, &a), &b) in vrow.iter_mut().zip(r0).zip(r1) {
        *t = a as u16 * iwy + b as u16 * wy;
    }
}

/// Output samples `from..` of a row (scalar): each blends its two columns of `v`.
#[inline(always)]
fn columns(v: &[u16], cols: &[u32], weights: &[u16], add: &[i32; 8], out: &mut [u8], from: usize) {
    let n = out.len();
    for k in from..n {
        let (c, wx) = (cols[k] as usize, weights[k] as i32);
        let s = v[c] as i32 * (256 - wx) + v[c + 1] as i32 * wx;
        out[k] = ((s + add[k % 8]) >> 15).clamp(0, 255) as u8;
    }
}

/// The AVX2 tables for a column table, or `None` when some 4 consecutive output samples'
/// pairs do not lie within 8 blended samples (a picture shrunk by more than half).
#[cfg(target_arch = "x86_64")]
fn blocks(cols: &[u32], weights: &[u16]) -> Option<Vec<Block>> {
    cols.chunks_exact(4)
        .zip(weights.chunks_exact(4))
        .map(|(c, w)| {
            let base = c[0];
            let mut shuffle = [0u8; 16];
            let mut wts = [0i16; 8];
            for j in 0..4 {
                let l = (c[j].checked_sub(base)? as usize) * 2;
                if l + 4 > 16 {
                    return None;
                }
                for b in 0..4 {
                    shuffle[4 * j + b] = (l + b) as u8;
                }
                wts[2 * j] = 256 - w[j] as i16;
                wts[2 * j + 1] = w[j] as i16;
            }
            Some(Block {
                base,
                shuffle,
                weights: wts,
            })
        })
        .collect()
}

/// A row's output samples, 8 at a time with AVX2 (the rest as [`columns`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn columns_v3(
    v3: pulp::x86::V3,
    v: &[u16],
    blocks: &[Block],
    cols: &[u32],
    weights: &[u16],
    add: &[i32; 8],
    out: &mut [u8],
) {
    use pulp::bytemuck::cast;
    use std::arch::x86_64::{__m128i, __m256i};
    let load = |base: u32| -> __m128i {
        let b = base as usize;
        let s: [u16; 8] = v[b..b + 8].try_into().expect("a padded row");
        cast(s)
    };
    let addv: __m256i = cast(*add);
    let done = (out.len() / 8 * 8).min(blocks.len() / 2 * 8);
    for (o, b) in out[..done].chunks_exact_mut(8).zip(blocks.chunks_exact(2)) {
        let pairs = v3.avx._mm256_set_m128i(load(b[1].base), load(b[0].base));
        let shuffle: __m256i = cast([b[0].shuffle, b[1].shuffle]);
        let pairs = v3.avx2._mm256_shuffle_epi8(pairs, shuffle);
        let w: __m256i = cast([b[0].weights, b[1].weights]);
        crate::simd::weigh_pairs::<15>(v3, pairs, w, addv, o);
    }
    columns(v, cols, weights, add, out, done);
}

/// Borrowed yuv planes: luma `w × h`, chroma at half size (rounded up).
#[derive(Clone, Copy)]
pub struct PlanesRef<'a> {
    w: usize,
    h: usize,
    y: &'a [u8],
    u: &'a [u8],
    v: &'a [u8],
}

impl<'a> PlanesRef<'a> {
    /// A `w × h` yuv420p frame (even sizes: luma, then the two chroma planes) as planes.
    pub fn of_yuv420p(yuv: &'a [u8], w: usize, h: usize) -> PlanesRef<'a> {
        debug_assert!(w.is_multiple_of(2) && h.is_multiple_of(2) && yuv.len() == w * h * 3 / 2);
        let (y, uv) = yuv.split_at(w * h);
        let (u, v) = uv.split_at((w / 2) * (h / 2));
        PlanesRef { w, h, y, u, v }
    }
}

/// Sample `src` scaled by `scale` with its top-left at (`ox`, `oy`) into the even-aligned
/// rectangle `r` of the `w × h` yuv420p frame `out` (the same geometry as
/// [`crate::frame::Canvas::image_scaled`]); luma is dithered like the writer's conversion.
#[allow(clippy::too_many_arguments)]
pub fn sample_into(
    src: PlanesRef<'_>,
    scale: f32,
    ox: f32,
    oy: f32,
    w: usize,
    h: usize,
    r: IRect,
    out: &mut [u8],
) {
    debug_assert!((r.x0 | r.y0 | r.x1 | r.y1) & 1 == 0 && r.x1 <= w && r.y1 <= h);
    if src.w == 0 || src.h == 0 || r.x0 >= r.x1 || r.y0 >= r.y1 {
        return;
    }
    let (yp, uv) = out.split_at_mut(w * h);
    let (up, vp) = uv.split_at_mut((w / 2) * (h / 2));
    let taps: Vec<_> = (r.x0..r.x1).map(|x| tap(x, ox, scale, src.w)).collect();
    let mut s = PlaneSampler::new(&taps);
    for y in r.y0..r.y1 {
        let (j0, j1, wy) = tap(y, oy, scale, src.h);
        let dither = &DITHER[y & 7];
        let add: [i32; 8] = std::array::from_fn(|k| dither[(r.x0 + k) & 7]);
        s.row(
            &src.y[j0 * src.w..(j0 + 1) * src.w],
            &src.y[j1 * src.w..(j1 + 1) * src.w],
            wy,
            &add,
            &mut yp[y * w + r.x0..y * w + r.x1],
        );
    }
    // Chroma sample (cx, cy) sits at the centre of its 2×2 luma block: in the source's chroma
    // plane that is the same formula with the origin halved.
    let (sw, sh, cw) = (src.w.div_ceil(2), src.h.div_ceil(2), w / 2);
    let (cx0, cx1) = (r.x0 / 2, r.x1 / 2);
    let taps: Vec<_> = (cx0..cx1).map(|x| tap(x, ox / 2.0, scale, sw)).collect();
    let mut s = PlaneSampler::new(&taps);
    let round = [FP / 2; 8];
    for cy in r.y0 / 2..r.y1 / 2 {
        let (j0, j1, wy) = tap(cy, oy / 2.0, scale, sh);
        for (plane, dst) in [(src.u, &mut *up), (src.v, &mut *vp)] {
            s.row(
                &plane[j0 * sw..(j0 + 1) * sw],
                &plane[j1 * sw..(j1 + 1) * sw],
                wy,
                &round,
                &mut dst[cy * cw + cx0..cy * cw + cx1],
            );
        }
    }
}

/// `a × 16 / 255` and `a × 128 / 255` in 16.16: the offsets a premultiplied colour of alpha `a`
/// carries into luma and chroma.
pub(crate) const Y16: i32 = fx(16.0 / 255.0);
const C128: i32 = fx(128.0 / 255.0);
/// `FP / 255`, rounded: scales an 8-bit plane value by a 0..255 weight into 16.16.
pub(crate) const K255: i32 = 257;

/// Blend premultiplied RGBA `rgba` (`w × h`, e.g. captions drawn over a transparent layer) over
/// the yuv420p frame `yuv`, inside the even-aligned rectangle `r`. Transparent pixels (and 2×2
/// blocks) are left as they are; luma is dithered like the writer's conversion, 8 samples at a
/// time with AVX2 where the CPU has it (the same bytes as the scalar row).
pub fn blend_rgba_over_yuv420p_rect(rgba: &[u8], w: usize, h: usize, r: IRect, yuv: &mut [u8]) {
    assert_eq!(rgba.len(), w * h * 4);
    debug_assert!((r.x0 | r.y0 | r.x1 | r.y1) & 1 == 0 && r.x1 <= w && r.y1 <= h);
    let (yp, uv) = yuv.split_at_mut(w * h);
    let (up, vp) = uv.split_at_mut((w / 2) * (h / 2));
    #[cfg(target_arch = "x86_64")]
    let v3 = pulp::x86::V3::try_new();
    for y in r.y0..r.y1 {
        let src = &rgba[(y * w + r.x0) * 4..(y * w + r.x1) * 4];
        let dst = &mut yp[y * w + r.x0..y * w + r.x1];
        let dither = &DITHER[y & 7];
        #[allow(unused_mut)]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let Some(v3) = v3 {
            let add: [i32; 8] = std::array::from_fn(|k| dither[(r.x0 + k) & 7]);
            done = crate::simd::blend_luma_v3(v3, src, &add, dst);
        }
        blend_luma_row(&src[done * 4..], dither, r.x0 + done, &mut dst[done..]);
    }
    let cw = w / 2;
    for y0 in (r.y0..r.y1).step_by(2) {
        let row0 = &rgba[(y0 * w) * 4..(y0 + 1) * w * 4];
        let row1 = &rgba[(y0 + 1) * w * 4..(y0 + 2) * w * 4];
        for x0 in (r.x0..r.x1).step_by(2) {
            let (i, j) = (x0 * 4, x0 * 4 + 4);
            let px = [
                &row0[i..i + 4],
                &row0[j..j + 4],
                &row1[i..i + 4],
                &row1[j..j + 4],
            ];
            if px.iter().all(|p| p[3] == 0) {
                continue;
            }
            let mut sums = [0i32; 4];
            for p in px {
                for (s, &c) in sums.iter_mut().zip(p) {
                    *s += c as i32;
                }
            }
            let c = (y0 / 2) * cw + x0 / 2;
            blend_chroma(sums, &mut up[c], &mut vp[c]);
        }
    }
}

/// A 2×2 block's premultiplied RGBA sums (`[r, g, b, a]` over its 4 pixels) blended over its
/// chroma samples.
fn blend_chroma([sr, sg, sb, sa]: [i32; 4], u: &mut u8, v: &mut u8) {
    let inv = 4 * 255 - sa;
    let cb = CBR * sr + CBG * sg + CBB * sb + C128 * sa + inv * *u as i32 * K255;
    let cr = CRR * sr + CRG * sg + CRB * sb + C128 * sa + inv * *v as i32 * K255;
    *u = ((cb + 2 * FP) >> 18).clamp(0, 255) as u8;
    *v = ((cr + 2 * FP) >> 18).clamp(0, 255) as u8;
}

/// Premultiplied RGBA pixels `src` blended over the luma samples `dst` of one row, the first at
/// column `x` (for the dither); a transparent pixel leaves its sample as it is.
fn blend_luma_row(src: &[u8], dither: &[i32; 8], x: usize, dst: &mut [u8]) {
    for (k, (p, d)) in src.chunks_exact(4).zip(dst.iter_mut()).enumerate() {
        let (r_, g, b, a) = (p[0] as i32, p[1] as i32, p[2] as i32, p[3] as i32);
        if a == 0 {
            continue;
        }
        let v = YR * r_ + YG * g + YB * b + Y16 * a + (255 - a) * *d as i32 * K255;
        *d = ((v + dither[(x + k) & 7]) >> 16).clamp(0, 255) as u8;
    }
}

/// Convert a yuv420p frame (BT.709 limited range) to opaque RGBA, each chroma sample serving
/// its 2×2 block: for a clip decoded to yuv drawn where RGBA is needed (a transition, a still).
pub fn yuv420p_to_rgba(yuv: &[u8], w: usize, h: usize, rgba: &mut [u8]) {
    assert_eq!(rgba.len(), w * h * 4);
    assert_eq!(yuv.len(), crate::paint::yuv420p_len(w, h));
    let (yp, uv) = yuv.split_at(w * h);
    let (up, vp) = uv.split_at((w / 2) * (h / 2));
    let cw = w / 2;
    // 16.16 inverse of BT.709 limited range
    const KY: i32 = fx(255.0 / 219.0);
    const RV: i32 = fx(255.0 / 224.0 * 1.5748);
    const GU: i32 = fx(255.0 / 224.0 * 1.8556 * 0.0722 / 0.7152);
    const GV: i32 = fx(255.0 / 224.0 * 1.5748 * 0.2126 / 0.7152);
    const BU: i32 = fx(255.0 / 224.0 * 1.8556);
    for (y, out) in rgba.chunks_exact_mut(w * 4).enumerate() {
        let crow = (y / 2) * cw;
        for (x, px) in out.chunks_exact_mut(4).enumerate() {
            let l = (yp[y * w + x] as i32 - 16) * KY + FP / 2;
            let (u, v) = (up[crow + x / 2] as i32 - 128, vp[crow + x / 2] as i32 - 128);
            px[0] = ((l + RV * v) >> 16).clamp(0, 255) as u8;
            px[1] = ((l - GU * u - GV * v) >> 16).clamp(0, 255) as u8;
            px[2] = ((l + BU * u) >> 16).clamp(0, 255) as u8;
            px[3] = 255;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paint::{rgba_to_yuv420p, yuv420p_len};

    /// The AVX2 column path gives the scalar loop's bytes exactly, at scales where it applies
    /// (block tables made) and in the rows' tails; where a picture is shrunk by more than half
    /// there are no tables and the scalar loop runs.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_columns_match_the_scalar_loop_exactly() {
        if !crate::simd::avx2_here() {
            return;
        }
        let n = 517usize;
        let r0: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
        let r1: Vec<u8> = (0..n).map(|i| (255 - i * 11 % 256) as u8).collect();
        let mut tables = 0;
        for (scale, o, width) in [
            (1.0f32, 0.0f32, 512usize),
            (0.926, -40.3, 480),
            (1.37, -3.7, 603),
            (0.51, -0.4, 259),
            (0.45, -1.0, 232),
            (2.5, -100.2, 300),
            (0.999, -2.5, 13),
        ] {
            let taps: Vec<_> = (0..width).map(|x| tap(x, o, scale, n)).collect();
            let mut fast = PlaneSampler::new(&taps);
            let mut slow = PlaneSampler::new(&taps);
            tables += fast.simd.is_some() as usize;
            assert_eq!(fast.simd.is_some(), scale > 0.5, "tables at {scale}");
            slow.simd = None;
            for (wy, add) in [
                (0u16, [FP / 2; 8]),
                (77, DITHER[3]),
                (256, DITHER[6]),
                (129, [0; 8]),
            ] {
                let (mut a, mut b) = (vec![0u8; width], vec![0u8; width]);
                fast.row(&r0, &r1, wy, &add, &mut a);
                slow.row(&r0, &r1, wy, &add, &mut b);
                assert_eq!(a, b, "scale {scale} origin {o} width {width} wy {wy}");
            }
        }
        assert_eq!(tables, 6);
    }

    /// A smooth, colourful opaque picture.
    fn picture(w: u32, h: u32) -> Pixmap {
        let mut p = Pixmap::new(w, h).unwrap();
        for (i, px) in p.data_mut().chunks_exact_mut(4).enumerate() {
            let (x, y) = ((i % w as usize) as f32, (i / w as usize) as f32);
            px.copy_from_slice(&[
                (128.0 + 120.0 * (x / 9.0).sin()) as u8,
                (128.0 + 120.0 * (y / 7.0).cos()) as u8,
                (128.0 + 100.0 * ((x + y) / 11.0).sin()) as u8,
                255,
            ]);
        }
        p
    }

    fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
        let mean = a
            .iter()
            .zip(b)
            .map(|(x, y)| x.abs_diff(*y) as f64)
            .sum::<f64>()
            / a.len() as f64;
        (
            mean,
            a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap(),
        )
    }

    #[test]
    fn sampling_planes_matches_sampling_rgba_then_converting() {
        let (w, h) = (96usize, 64usize);
        let src = picture(110, 80);
        let planes = Planes::from_rgba(&src);
        for (scale, ox, oy) in [(1.0, 0.0, 0.0), (0.93, -3.3, -5.7), (0.87, -1.25, -2.5)] {
            let mut f = crate::frame::FrameBuf::new(w as u32, h as u32);
            f.canvas()
                .image_scaled(&src, true, [0.0, 0.0, w as f32, h as f32], scale, ox, oy);
            let mut want = vec![0u8; yuv420p_len(w, h)];
            rgba_to_yuv420p(f.pixmap.data(), w, h, &mut want);
            let mut got = vec![0u8; yuv420p_len(w, h)];
            sample_into(
                planes.as_ref(),
                scale,
                ox,
                oy,
                w,
                h,
                IRect::full(w, h),
                &mut got,
            );
            let (ym, yx) = diff(&got[..w * h], &want[..w * h]);
            let (cm, cx) = diff(&got[w * h..], &want[w * h..]);
            assert!(ym < 0.6 && yx <= 2, "luma {ym} {yx} at {scale} {ox} {oy}");
            // chroma: sampled at the block centre instead of averaging four samples
            assert!(
                cm < 1.5 && cx <= 12,
                "chroma {cm} {cx} at {scale} {ox} {oy}"
            );
        }
    }

    #[test]
    fn blending_in_yuv_matches_blending_in_rgb_then_converting() {
        let (w, h) = (64usize, 32usize);
        let base = picture(w as u32, h as u32);
        // an overlay with transparent, translucent and opaque parts (premultiplied)
        let mut over = Pixmap::new(w as u32, h as u32).unwrap();
        let mut paint = tiny_skia::Paint::default();
        paint.set_color_rgba8(250, 240, 20, 200);
        paint.anti_alias = true;
        let rect = tiny_skia::Rect::from_xywh(5.3, 4.6, 30.0, 17.5).unwrap();
        over.fill_rect(rect, &paint, tiny_skia::Transform::identity(), None);
        paint.set_color_rgba8(10, 20, 200, 255);
        let rect = tiny_skia::Rect::from_xywh(20.0, 10.0, 30.0, 15.0).unwrap();
        over.fill_rect(rect, &paint, tiny_skia::Transform::identity(), None);
        // the RGB way: composite, then convert
        let mut comp = base.clone();
        comp.draw_pixmap(
            0,
            0,
            over.as_ref(),
            &tiny_skia::PixmapPaint::default(),
            tiny_skia::Transform::identity(),
            None,
        );
        let mut want = vec![0u8; yuv420p_len(w, h)];
        rgba_to_yuv420p(comp.data(), w, h, &mut want);
        // the yuv way
        let mut got = vec![0u8; yuv420p_len(w, h)];
        rgba_to_yuv420p(base.data(), w, h, &mut got);
        blend_rgba_over_yuv420p_rect(over.data(), w, h, IRect::full(w, h), &mut got);
        let (ym, yx) = diff(&got[..w * h], &want[..w * h]);
        let (cm, cx) = diff(&got[w * h..], &want[w * h..]);
        assert!(ym < 0.3 && yx <= 2, "luma {ym} {yx}");
        assert!(cm < 1.0 && cx <= 12, "chroma {cm} {cx}");
        // nothing changes outside the rectangle asked for
        let mut part = vec![0u8; yuv420p_len(w, h)];
        rgba_to_yuv420p(base.data(), w, h, &mut part);
        let before = part.clone();
        let r = IRect {
            x0: 0,
            y0: 0,
            x1: 16,
            y1: 8,
        };
        blend_rgba_over_yuv420p_rect(over.data(), w, h, r, &mut part);
        assert_eq!(part[20 * w..h * w], before[20 * w..h * w]);
    }

    /// The blend as it was before its luma pass was split out (per 2×2 block, luma and chroma
    /// together; its chroma step is the same function): the reference the rows, scalar and
    /// AVX2, must match to the byte.
    fn blend_reference(rgba: &[u8], w: usize, h: usize, r: IRect, yuv: &mut [u8]) {
        let (yp, uv) = yuv.split_at_mut(w * h);
        let (up, vp) = uv.split_at_mut((w / 2) * (h / 2));
        let cw = w / 2;
        for y0 in (r.y0..r.y1).step_by(2) {
            for x0 in (r.x0..r.x1).step_by(2) {
                let at = |dx: usize, dy: usize| {
                    let o = ((y0 + dy) * w + x0 + dx) * 4;
                    (&rgba[o..o + 4], dx, dy)
                };
                let px = [at(0, 0), at(1, 0), at(0, 1), at(1, 1)];
                if px.iter().all(|(p, _, _)| p[3] == 0) {
                    continue;
                }
                let (mut sr, mut sg, mut sb, mut sa) = (0i32, 0i32, 0i32, 0i32);
                for (p, dx, dy) in px {
                    let (r_, g, b, a) = (p[0] as i32, p[1] as i32, p[2] as i32, p[3] as i32);
                    (sr, sg, sb, sa) = (sr + r_, sg + g, sb + b, sa + a);
                    if a == 0 {
                        continue;
                    }
                    let (x, y) = (x0 + dx, y0 + dy);
                    let d = &mut yp[y * w + x];
                    let v = YR * r_ + YG * g + YB * b + Y16 * a + (255 - a) * *d as i32 * K255;
                    *d = ((v + DITHER[y & 7][x & 7]) >> 16).clamp(0, 255) as u8;
                }
                // (the chroma step is unchanged: shared)
                let c = (y0 / 2) * cw + x0 / 2;
                blend_chroma([sr, sg, sb, sa], &mut up[c], &mut vp[c]);
            }
        }
    }

    #[test]
    fn the_blend_matches_the_per_block_reference_exactly() {
        // every alpha (0, 255 and between), colours up to their alpha (premultiplied), over
        // every plane value, in rectangles at every column phase and with tails
        let (w, h) = (70usize, 12usize);
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let a = match i % 5 {
                    0 => 0,
                    1 => 255,
                    _ => (next() % 256) as u8,
                };
                let mut c = || (next() % (a as u32 + 1)) as u8;
                [c(), c(), c(), a]
            })
            .collect();
        let base: Vec<u8> = (0..yuv420p_len(w, h))
            .map(|_| (next() % 256) as u8)
            .collect();
        for (x0, x1) in [(0, w), (2, 68), (4, 30), (6, 14), (8, 10), (10, 62)] {
            for (y0, y1) in [(0, h), (2, 8)] {
                let r = IRect { x0, y0, x1, y1 };
                let mut want = base.clone();
                blend_reference(&rgba, w, h, r, &mut want);
                let mut got = base.clone();
                blend_rgba_over_yuv420p_rect(&rgba, w, h, r, &mut got);
                assert_eq!(got, want, "{r:?}");
                // and the scalar rows alone
                let mut scalar = base.clone();
                for y in y0..y1 {
                    let src = &rgba[(y * w + x0) * 4..(y * w + x1) * 4];
                    blend_luma_row(src, &DITHER[y & 7], x0, &mut scalar[y * w + x0..y * w + x1]);
                }
                assert_eq!(scalar[..w * h], want[..w * h], "scalar {r:?}");
            }
        }
    }

    #[test]
    #[ignore = "benchmark; run explicitly in release mode"]
    fn bench_blend_1080p() {
        // a caption band's area of a 1080p frame: a translucent band with opaque text on it
        let (w, h) = (1920usize, 1080usize);
        let r = IRect {
            x0: 360,
            y0: 760,
            x1: 1560,
            y1: 1000,
        };
        let mut rgba = vec![0u8; w * h * 4];
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                let a: u8 = if (x / 7 + y / 5) % 3 == 0 { 255 } else { 204 };
                rgba[(y * w + x) * 4..][..4].copy_from_slice(&[a / 2, a / 3, a / 4, a]);
            }
        }
        let base = vec![90u8; yuv420p_len(w, h)];
        let mut out = base.clone();
        let n = 200;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            blend_reference(&rgba, w, h, r, std::hint::black_box(&mut out));
        }
        let before = t0.elapsed() / n;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            blend_rgba_over_yuv420p_rect(&rgba, w, h, r, std::hint::black_box(&mut out));
        }
        println!(
            "BLEND 1200x240: per-block {before:?}, rows {:?}",
            t0.elapsed() / n
        );
    }

    #[test]
    fn yuv_to_rgba_inverts_the_conversion() {
        let (w, h) = (32usize, 16usize);
        // flat 2×2 blocks, so chroma subsampling loses nothing
        let mut p = Pixmap::new(w as u32, h as u32).unwrap();
        for (i, px) in p.data_mut().chunks_exact_mut(4).enumerate() {
            let (x, y) = (i % w / 2, i / w / 2);
            px.copy_from_slice(&[(x * 16) as u8, (y * 30) as u8, 200 - (x * 9) as u8, 255]);
        }
        let mut yuv = vec![0u8; yuv420p_len(w, h)];
        rgba_to_yuv420p(p.data(), w, h, &mut yuv);
        let mut back = vec![0u8; w * h * 4];
        yuv420p_to_rgba(&yuv, w, h, &mut back);
        let (mean, max) = diff(&back, p.data());
        assert!(mean < 1.0 && max <= 4, "{mean} {max}");
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p vidbuilder-render --lib yuv::bench -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark; run explicitly in release mode"]
    fn bench_sampling_1080p() {
        let (w, h) = (1920usize, 1080usize);
        let mut src = Pixmap::new(2074, 1166).unwrap();
        for (i, px) in src.data_mut().chunks_exact_mut(4).enumerate() {
            px.copy_from_slice(&[(i % 251) as u8, (i % 13) as u8, (i % 7) as u8, 255]);
        }
        let planes = Planes::from_rgba(&src);
        let mut out = vec![0u8; crate::paint::yuv420p_len(w, h)];
        let n = 60;
        let t0 = Instant::now();
        for i in 0..n {
            let s = 0.926 + 0.001 * i as f32;
            sample_into(
                planes.as_ref(),
                s,
                -40.3 - i as f32,
                -20.7,
                w,
                h,
                IRect::full(w, h),
                &mut out,
            );
        }
        println!("SAMPLE 1080p: {:?} per frame", t0.elapsed() / n);
        std::hint::black_box(&out);
    }
}
