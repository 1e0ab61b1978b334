//! Frame buffers with dirty-rectangle tracking.
//!
//! Most of a title frame is the static background. A [`FrameBuf`] remembers where it was drawn
//! on, so reusing it only restores those rectangles from the cached background; and the writer's
//! [`YuvState`] only re-converts the rectangles that changed since the frame its buffer last
//! held (this frame's plus that one's). Per-frame cost is proportional to the animated area, not the
//! frame size, which is what makes 4K affordable.

use tiny_skia::{FillRule, Paint, Pixmap, PixmapMut, Transform};

use super::paint::{rgba_to_yuv420p_rect, yuv420p_len};
use super::resample::RowSampler;
use super::theme::Rgb;
use super::yuv::{blend_rgba_over_yuv420p_rect, sample_into, tap, yuv420p_to_rgba, Planes};

/// A pixel rectangle `[x0, x1) × [y0, y1)`, always even-aligned (for 4:2:0 chroma).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IRect {
    /// Left edge, in pixels (inclusive).
    pub x0: usize,
    /// Top edge, in pixels (inclusive).
    pub y0: usize,
    /// Right edge, in pixels (exclusive).
    pub x1: usize,
    /// Bottom edge, in pixels (exclusive).
    pub y1: usize,
}

impl IRect {
    /// The even-aligned rectangle covering `[x0, x1) × [y0, y1)`, clipped to `w × h`.
    pub fn covering(x0: f32, y0: f32, x1: f32, y1: f32, w: usize, h: usize) -> Option<IRect> {
        let cx0 = (x0.floor().max(0.0) as usize) & !1;
        let cy0 = (y0.floor().max(0.0) as usize) & !1;
        let cx1 = ((x1.ceil().max(0.0) as usize + 1) & !1).min(w);
        let cy1 = ((y1.ceil().max(0.0) as usize + 1) & !1).min(h);
        (cx0 < cx1 && cy0 < cy1).then_some(IRect {
            x0: cx0,
            y0: cy0,
            x1: cx1,
            y1: cy1,
        })
    }

    /// The whole `w × h` frame.
    pub fn full(w: usize, h: usize) -> IRect {
        IRect {
            x0: 0,
            y0: 0,
            x1: w,
            y1: h,
        }
    }
}

/// An RGBA frame plus what was drawn on it.
pub struct FrameBuf {
    /// The frame's premultiplied RGBA pixels.
    pub pixmap: Pixmap,
    /// Rectangles drawn since the last [`FrameBuf::reset`].
    pub dirty: Vec<IRect>,
    /// The whole frame was drawn (or the buffer is new).
    pub full: bool,
    /// A hash of everything drawn since the last reset (operations and their parameters). Two
    /// frames with equal signatures and dirty lists are identical.
    pub sig: u64,
    /// The background it was last reset to (its pixel buffer's address; see [`FrameBuf::reset`]),
    /// 0 when none. Frames over different backgrounds differ everywhere.
    pub bg: usize,
    /// Scratch for [`FrameBuf::redraw`]'s probe.
    probe: Vec<IRect>,
    /// The base-picture path (see `yuv.rs`): this frame is [`FrameBuf::yuv`] with `pixmap`
    /// (drawn over a transparent background) blended on top, instead of `pixmap` alone.
    pub base: bool,
    /// With `base`: whether the drawing filled the whole of `yuv` (a base picture was drawn).
    pub base_filled: bool,
    /// With `base`: the signature of the base picture (kept apart from [`FrameBuf::sig`], so a
    /// moving picture under unchanging text redraws only the picture).
    pub base_sig: u64,
    /// The base picture, yuv420p (allocated at the first frame drawn with a base).
    pub yuv: Vec<u8>,
}

impl FrameBuf {
    /// A new `w × h` buffer, marked as fully drawn; panics on a size tiny-skia refuses (e.g. 0).
    pub fn new(w: u32, h: u32) -> FrameBuf {
        FrameBuf {
            pixmap: Pixmap::new(w, h).expect("frame size"),
            dirty: Vec::new(),
            full: true,
            sig: 0,
            bg: 0,
            probe: Vec::new(),
            base: false,
            base_filled: false,
            base_sig: 0,
            yuv: Vec::new(),
        }
    }

    /// Make the buffer equal to `bg` again, restoring only what was drawn since the last reset.
    /// `generation` identifies what is being drawn (e.g. the scene index): it seeds the
    /// signature, so frames of different scenes never compare equal.
    ///
    /// Backgrounds are told apart by address: each must stay alive (unchanged) for as long as
    /// buffers reset to it are in use, which the pipeline guarantees by keeping every background
    /// of a render until its end.
    pub fn reset(&mut self, bg: &Pixmap, generation: u64) {
        self.reset_to(bg, bg.data().as_ptr() as usize, generation)
    }

    /// [`FrameBuf::reset`] with the caller naming the background: `bg_id` must differ between
    /// different backgrounds drawn into this buffer (never 0), which lets a background be freed
    /// and another allocated in its place safely. Do not mix with [`FrameBuf::reset`] on one buffer.
    pub fn reset_to(&mut self, bg: &Pixmap, bg_id: usize, generation: u64) {
        let w = self.pixmap.width() as usize;
        if self.full || bg_id != self.bg {
            self.bg = bg_id;
            self.pixmap.data_mut().copy_from_slice(bg.data());
        } else {
            let (src, dst) = (bg.data(), self.pixmap.data_mut());
            for r in &self.dirty {
                for y in r.y0..r.y1 {
                    let (a, b) = ((y * w + r.x0) * 4, (y * w + r.x1) * 4);
                    dst[a..b].copy_from_slice(&src[a..b]);
                }
            }
        }
        self.dirty.clear();
        self.full = false;
        self.base = false;
        self.base_sig = 0;
        self.sig = mix(SEED, generation);
    }

    /// Declare the whole frame written by other means (a transition composite).
    pub fn set_full(&mut self) {
        self.dirty.clear();
        self.full = true;
        self.base = false;
    }

    /// The finished frame as premultiplied RGBA: the pixmap, or on the base-picture path the
    /// base converted back with the pixmap composited over it (for a poster).
    pub fn rgba(&self) -> std::borrow::Cow<'_, [u8]> {
        if !self.base {
            return std::borrow::Cow::Borrowed(self.pixmap.data());
        }
        let (w, h) = (self.pixmap.width() as usize, self.pixmap.height() as usize);
        let mut out = vec![0u8; w * h * 4];
        yuv420p_to_rgba(&self.yuv, w, h, &mut out);
        over_row(&mut out, self.pixmap.data(), 256);
        std::borrow::Cow::Owned(out)
    }

    /// A canvas drawing into this buffer and recording what it touches.
    pub fn canvas(&mut self) -> Canvas<'_> {
        self.canvas_on(false)
    }

    /// [`FrameBuf::canvas`], drawing a picture that covers the frame into [`FrameBuf::yuv`]
    /// when `base`.
    fn canvas_on(&mut self, base: bool) -> Canvas<'_> {
        let (w, h) = (self.pixmap.width() as usize, self.pixmap.height() as usize);
        Canvas {
            data: self.pixmap.data_mut(),
            w,
            h,
            dirty: &mut self.dirty,
            full: &mut self.full,
            sig: &mut self.sig,
            dry: false,
            yuv: if base { Some(&mut self.yuv[..]) } else { None },
            filled: &mut self.base_filled,
            base_sig: &mut self.base_sig,
        }
    }

    /// Reset to `bg` (see [`FrameBuf::reset_to`]) and `draw`, unless the buffer already holds
    /// exactly that frame: `draw` is first run as a probe that only records what it would draw,
    /// and when that matches what the buffer was last drawn with, nothing is touched. A scene at
    /// rest then costs no pixel work at all once each pooled buffer has held it. Returns whether
    /// pixels were drawn.
    ///
    /// With `base`, the frame takes the base-picture path (see `yuv.rs`): `bg` should be
    /// transparent, a picture covering the frame goes into [`FrameBuf::yuv`], and
    /// [`FrameBuf::base_filled`] tells afterwards whether one did (when not, the frame must be
    /// drawn again without a base).
    pub fn redraw(
        &mut self,
        bg: &Pixmap,
        bg_id: usize,
        generation: u64,
        base: bool,
        draw: &mut dyn FnMut(&mut Canvas),
    ) -> bool {
        let (w, h) = (self.pixmap.width() as usize, self.pixmap.height() as usize);
        if !self.full && self.bg == bg_id && self.base == base {
            let mut dirty = std::mem::take(&mut self.probe);
            dirty.clear();
            let (mut full, mut sig, mut filled, mut base_sig) =
                (false, mix(SEED, generation), false, 0);
            draw(&mut Canvas {
                data: &mut [],
                w,
                h,
                dirty: &mut dirty,
                full: &mut full,
                sig: &mut sig,
                dry: true,
                yuv: if base { Some(&mut [][..]) } else { None },
                filled: &mut filled,
                base_sig: &mut base_sig,
            });
            let same = !full && sig == self.sig && dirty == self.dirty;
            if same && (!base || (base_sig == self.base_sig && self.base_filled)) {
                self.probe = dirty;
                return false;
            }
            if same {
                // Only the base picture is new (a clip playing under text at rest): draw it
                // alone, the rest as a probe again.
                dirty.clear();
                let (mut full, mut sig) = (false, 0);
                self.base_sig = 0;
                self.base_filled = false;
                draw(&mut Canvas {
                    data: &mut [],
                    w,
                    h,
                    dirty: &mut dirty,
                    full: &mut full,
                    sig: &mut sig,
                    dry: true,
                    yuv: Some(&mut self.yuv[..]),
                    filled: &mut self.base_filled,
                    base_sig: &mut self.base_sig,
                });
                self.probe = dirty;
                return true;
            }
            self.probe = dirty;
        }
        self.reset_to(bg, bg_id, generation);
        self.base = base;
        self.base_filled = false;
        if base && self.yuv.len() != yuv420p_len(w, h) {
            self.yuv = vec![0; yuv420p_len(w, h)];
        }
        draw(&mut self.canvas_on(base));
        true
    }
}

/// What scenes draw with. Every operation records the area it touched.
pub struct Canvas<'a> {
    data: &'a mut [u8],
    w: usize,
    h: usize,
    dirty: &'a mut Vec<IRect>,
    full: &'a mut bool,
    sig: &'a mut u64,
    /// A probe: operations record where and what they would draw, and touch no pixel.
    dry: bool,
    /// On the base-picture path: the frame's yuv planes (empty in a probe), where a picture
    /// covering the frame is drawn instead of into `data`.
    yuv: Option<&'a mut [u8]>,
    /// On the base-picture path: set once a picture filled the planes.
    filled: &'a mut bool,
    /// On the base-picture path: the base picture's signature.
    base_sig: &'a mut u64,
}

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A small 64-bit mixing step (splitmix64-style) for frame signatures.
fn mix(h: u64, v: u64) -> u64 {
    let mut z = (h ^ v).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn div255(x: u32) -> u32 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

impl Canvas<'_> {
    /// Frame width, in pixels.
    pub fn width(&self) -> usize {
        self.w
    }

    /// Frame height, in pixels.
    pub fn height(&self) -> usize {
        self.h
    }

    /// Declare the whole frame drawn (e.g. a scene with a moving background).
    pub fn mark_all(&mut self) {
        *self.full = true;
    }

    /// Mix `id` into the frame's signature: for a layer whose pixels may change between frames
    /// of one scene while its size and place stay the same, and whose buffer's address may be
    /// reused by the next one (a caption's text). Two frames compare equal only with equal ids.
    pub fn identify(&mut self, id: u64) {
        self.sign(&[7, id]);
    }

    fn sign_base(&mut self, vals: &[u64]) {
        for v in vals {
            *self.base_sig = mix(*self.base_sig, *v);
        }
    }

    fn sign(&mut self, vals: &[u64]) {
        for v in vals {
            *self.sig = mix(*self.sig, *v);
        }
    }

    fn mark(&mut self, x0: f32, y0: f32, x1: f32, y1: f32) {
        if let Some(r) = IRect::covering(x0, y0, x1, y1, self.w, self.h) {
            self.dirty.push(r);
        }
    }

    /// tiny-skia access for vector drawing; the caller must [`Canvas::mark`] what it draws.
    fn pixmap(&mut self) -> PixmapMut<'_> {
        PixmapMut::from_bytes(self.data, self.w as u32, self.h as u32).expect("frame size")
    }

    /// Composite a premultiplied layer with its top-left at (`x`, `y`) and an opacity.
    /// Fractional positions are resampled bilinearly, so slow motion is smooth.
    pub fn layer(&mut self, layer: &Pixmap, x: f32, y: f32, opacity: f32) {
        let op = (opacity.clamp(0.0, 1.0) * 256.0).round() as u32;
        if op == 0 {
            return;
        }
        let (lw, lh) = (layer.width() as i64, layer.height() as i64);
        let snap = |v: f32| {
            let f = v - v.floor();
            if f < 1.0 / 128.0 {
                (v.floor() as i64, 0u32)
            } else if f > 1.0 - 1.0 / 128.0 {
                (v.floor() as i64 + 1, 0)
            } else {
                (v.floor() as i64, (f * 256.0).round() as u32)
            }
        };
        let (bx, wx) = snap(x);
        let (by, wy) = snap(y);
        let ex = bx + lw + (wx > 0) as i64;
        let ey = by + lh + (wy > 0) as i64;
        let (dx0, dx1) = (bx.max(0) as usize, (ex.min(self.w as i64)).max(0) as usize);
        let (dy0, dy1) = (by.max(0) as usize, (ey.min(self.h as i64)).max(0) as usize);
        if dx0 >= dx1 || dy0 >= dy1 {
            return;
        }
        self.mark(dx0 as f32, dy0 as f32, dx1 as f32, dy1 as f32);
        let src = layer.data();
        // the layer's identity (valid within one generation) and where/how it was drawn
        self.sign(&[
            1,
            src.as_ptr() as u64,
            lw as u64,
            lh as u64,
            bx as u64,
            wx as u64,
            by as u64,
            wy as u64,
            op as u64,
        ]);
        if self.dry {
            return;
        }
        // Row by row: the source samples of the row (resampled when the position is
        // fractional) into a line, then composited over the destination row branch-free.
        let w = self.w;
        let lwu = lw as usize;
        let n = dx1 - dx0;
        let i0 = (dx0 as i64 - bx) as usize; // the first column's index in layer space (≥ 0)
        let row_of = |j: i64| -> Option<&[u8]> {
            (j >= 0 && j < lh).then(|| &src[j as usize * lwu * 4..(j as usize + 1) * lwu * 4])
        };
        if wx == 0 && wy == 0 {
            for dy in dy0..dy1 {
                let srow = row_of(dy as i64 - by).expect("inside the layer");
                let drow = &mut self.data[(dy * w + dx0) * 4..(dy * w + dx1) * 4];
                over_row(drow, &srow[i0 * 4..(i0 + n) * 4], op);
            }
            return;
        }
        let mut line = vec![0u8; n * 4];
        if wx == 0 {
            // Vertical sub-pixel motion (the common case): blend source rows j-1 and j.
            let (wa, wb) = (wy, 256 - wy);
            for dy in dy0..dy1 {
                let j = dy as i64 - by;
                let (ra, rb) = (row_of(j - 1), row_of(j));
                let (ra, rb) = (
                    ra.map(|r| &r[i0 * 4..(i0 + n) * 4]),
                    rb.map(|r| &r[i0 * 4..(i0 + n) * 4]),
                );
                match (ra, rb) {
                    (Some(a), Some(b)) => lerp2(&mut line, a, b, wa, wb),
                    (Some(a), None) => {
                        for (l, &a) in line.iter_mut().zip(a) {
                            *l = ((a as u32 * wa + 128) >> 8) as u8;
                        }
                    }
                    (None, Some(b)) => {
                        for (l, &b) in line.iter_mut().zip(b) {
                            *l = ((b as u32 * wb + 128) >> 8) as u8;
                        }
                    }
                    (None, None) => continue,
                }
                let drow = &mut self.data[(dy * w + dx0) * 4..(dy * w + dx1) * 4];
                over_row(drow, &line, op);
            }
            return;
        }
        // Bilinear: destination pixel (i, j) in layer space blends source (i-1|i, j-1|j), with
        // transparent pixels outside the layer: each source row is copied between transparent
        // ends, so column i-1 of layer space is index i of the copy.
        let (iwx, iwy) = (256 - wx, 256 - wy);
        let (w00, w10, w01, w11) = (wx * wy, iwx * wy, wx * iwy, iwx * iwy);
        let mut top = vec![0u8; (lwu + 2) * 4];
        let mut bottom = vec![0u8; (lwu + 2) * 4];
        let pad = |dst: &mut [u8], r: Option<&[u8]>| match r {
            Some(r) => dst[4..(lwu + 1) * 4].copy_from_slice(r),
            None => dst.fill(0),
        };
        for dy in dy0..dy1 {
            let j = dy as i64 - by;
            // this row's top is the previous row's bottom
            if dy == dy0 {
                pad(&mut top, row_of(j - 1));
            } else {
                std::mem::swap(&mut top, &mut bottom);
            }
            pad(&mut bottom, row_of(j));
            let (t0, t1) = (
                &top[i0 * 4..(i0 + n) * 4],
                &top[(i0 + 1) * 4..(i0 + 1 + n) * 4],
            );
            let (b0, b1) = (
                &bottom[i0 * 4..(i0 + n) * 4],
                &bottom[(i0 + 1) * 4..(i0 + 1 + n) * 4],
            );
            lerp4(&mut line, [t0, t1, b0, b1], [w00, w10, w01, w11]);
            let drow = &mut self.data[(dy * w + dx0) * 4..(dy * w + dx1) * 4];
            over_row(drow, &line, op);
        }
    }

    /// A filled, anti-aliased rounded rectangle `[x, y, w, h]`.
    pub fn round_rect(&mut self, rect: [f32; 4], radius: f32, color: Rgb, opacity: f32) {
        let [x, y, w, h] = rect;
        if w <= 0.05 || h <= 0.05 || opacity <= 0.002 {
            return;
        }
        let Some(path) = super::paint::rounded_rect(x, y, w, h, radius) else {
            return;
        };
        let mut paint = Paint::default();
        paint.set_color_rgba8(
            color.0,
            color.1,
            color.2,
            (opacity.clamp(0.0, 1.0) * 255.0).round() as u8,
        );
        paint.anti_alias = true;
        self.mark(x - 1.0, y - 1.0, x + w + 1.0, y + h + 1.0);
        let c = ((color.0 as u64) << 16) | ((color.1 as u64) << 8) | color.2 as u64;
        let f = |v: f32| v.to_bits() as u64;
        self.sign(&[2, f(x), f(y), f(w), f(h), f(radius), c, f(opacity)]);
        if self.dry {
            return;
        }
        self.pixmap().fill_path(
            &path,
            &paint,
            FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
}

impl Canvas<'_> {
    /// Draw `src` scaled by `scale` with its top-left at (`ox`, `oy`), bilinearly sampled,
    /// inside the clip rectangle `[x, y, w, h]`. For images that move or zoom every frame (Ken
    /// Burns); a static image is cheaper as a [`Canvas::layer`]. `opaque` says that every pixel
    /// of `src` is opaque (see [`is_opaque`]): the samples are then written as they are instead
    /// of blended over what is there.
    ///
    /// Sampled row by row with a separable bilinear filter (`resample::RowSampler`).
    pub fn image_scaled(
        &mut self,
        src: &Pixmap,
        opaque: bool,
        clip: [f32; 4],
        scale: f32,
        ox: f32,
        oy: f32,
    ) {
        if scale <= 0.0 || !scale.is_finite() {
            return;
        }
        let (sw, sh) = (src.width() as usize, src.height() as usize);
        let x0 = clip[0].max(0.0).floor() as usize;
        let y0 = clip[1].max(0.0).floor() as usize;
        let x1 = ((clip[0] + clip[2]).ceil().max(0.0) as usize).min(self.w);
        let y1 = ((clip[1] + clip[3]).ceil().max(0.0) as usize).min(self.h);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        self.mark(x0 as f32, y0 as f32, x1 as f32, y1 as f32);
        let f = |v: f32| v.to_bits() as u64;
        self.sign(&[
            3,
            src.data().as_ptr() as u64,
            x0 as u64,
            y0 as u64,
            x1 as u64,
            y1 as u64,
            f(scale),
            f(ox),
            f(oy),
            opaque as u64,
        ]);
        // A probe records what would be drawn and touches no pixel.
        if self.dry {
            return;
        }
        // source index of the left/top neighbour and the 8-bit weight of the right/bottom one
        let cols: Vec<(usize, usize, u16)> = (x0..x1).map(|x| tap(x, ox, scale, sw)).collect();
        let mut sampler = RowSampler::new(&cols);
        let n = x1 - x0;
        let mut line = vec![0u8; if opaque { 0 } else { n * 4 }];
        let data = src.data();
        let (w, stride) = (self.w, sw * 4);
        for y in y0..y1 {
            let (j0, j1, wy) = tap(y, oy, scale, sh);
            let (r0, r1) = (
                &data[j0 * stride..(j0 + 1) * stride],
                &data[j1 * stride..(j1 + 1) * stride],
            );
            let drow = &mut self.data[(y * w + x0) * 4..(y * w + x1) * 4];
            if opaque {
                sampler.row(r0, r1, wy, drow);
                continue;
            }
            sampler.row(r0, r1, wy, &mut line);
            for (d, s) in drow.chunks_exact_mut(4).zip(line.chunks_exact(4)) {
                let inv = 255 - s[3] as u32;
                for k in 0..4 {
                    d[k] = (s[k] as u32 + div255(d[k] as u32 * inv)).min(255) as u8;
                }
            }
        }
    }
}

impl Canvas<'_> {
    /// The yuv planes to draw a picture covering the frame into, on the base-picture path and
    /// while nothing has been drawn yet (a base goes under everything); `Some(&mut [])` in a
    /// probe.
    fn base_planes(&mut self) -> Option<&mut [u8]> {
        if self.dirty.is_empty() && !*self.full {
            self.yuv.as_deref_mut()
        } else {
            None
        }
    }

    /// Draw `pic` scaled by `scale` with its top-left at (`ox`, `oy`) inside the clip rectangle
    /// `[x, y, w, h]`, like [`Canvas::image_scaled`]; on the base-picture path, an opaque
    /// picture covering the frame is sampled straight into the yuv planes instead.
    pub fn picture(&mut self, pic: &Picture, clip: [f32; 4], scale: f32, ox: f32, oy: f32) {
        let (w, h) = (self.w, self.h);
        // the pixels image_scaled would draw: the clip rectangle's, rounded outwards
        let covers = clip[0].floor() <= 0.0
            && clip[1].floor() <= 0.0
            && (clip[0] + clip[2]).ceil() >= w as f32
            && (clip[1] + clip[3]).ceil() >= h as f32;
        if pic.opaque() && covers && scale > 0.0 && scale.is_finite() {
            if let Some(yuv) = self.base_planes() {
                // (a probe has no planes to draw into)
                if !yuv.is_empty() {
                    sample_into(
                        pic.planes().as_ref(),
                        scale,
                        ox,
                        oy,
                        w,
                        h,
                        IRect::full(w, h),
                        yuv,
                    );
                }
                let f = |v: f32| v.to_bits() as u64;
                let id = pic.pixmap().data().as_ptr() as u64;
                self.sign_base(&[10, id, f(scale), f(ox), f(oy), w as u64, h as u64]);
                *self.filled = true;
                return;
            }
        }
        self.image_scaled(pic.pixmap(), pic.opaque(), clip, scale, ox, oy);
    }

    /// On the base-picture path, a whole frame computed straight in yuv420p by `fill` (a fade's
    /// or zoom's mix of two scenes); `id` identifies its pixels (equal ids, equal frames).
    /// Nothing is drawn off that path ([`FrameBuf::base_filled`] tells).
    pub fn yuv_frame(&mut self, id: u64, fill: impl FnOnce(&mut [u8])) {
        let (w, h) = (self.w as u64, self.h as u64);
        let Some(planes) = self.base_planes() else {
            return;
        };
        // (a probe has no planes to fill)
        if !planes.is_empty() {
            fill(planes);
        }
        self.sign_base(&[13, id, w, h]);
        *self.filled = true;
    }

    /// Draw a decoded video frame of the canvas's own size at the origin: copied as it is when
    /// `opaque` (every pixel opaque), composited otherwise; a yuv frame goes straight into the
    /// planes on the base-picture path. `id` identifies its pixels (frames with equal ids are
    /// equal), since the buffer holding them is reused for the next frame.
    pub fn video_frame(&mut self, frame: ClipFrame, opaque: bool, id: u64) {
        let (w, h) = (self.w, self.h);
        let frame = match frame {
            ClipFrame::Yuv(yuv) => {
                if yuv.len() != yuv420p_len(w, h) {
                    return;
                }
                if let Some(planes) = self.base_planes() {
                    if !planes.is_empty() {
                        planes.copy_from_slice(yuv);
                    }
                    self.sign_base(&[11, id, w as u64, h as u64]);
                    *self.filled = true;
                    return;
                }
                // where RGBA is needed (a transition's scene, a still): converted
                self.identify(id);
                self.mark(0.0, 0.0, w as f32, h as f32);
                self.sign(&[12, w as u64, h as u64]);
                if !self.dry {
                    yuv420p_to_rgba(yuv, w, h, self.data);
                }
                return;
            }
            ClipFrame::Rgba(p) => p,
        };
        if frame.width() as usize != w || frame.height() as usize != h {
            return;
        }
        self.identify(id);
        if !opaque {
            self.layer(frame, 0.0, 0.0, 1.0);
            return;
        }
        self.mark(0.0, 0.0, w as f32, h as f32);
        self.sign(&[9, w as u64, h as u64]);
        if !self.dry {
            self.data.copy_from_slice(frame.data());
        }
    }
}

/// A decoded video frame of the output's size: RGBA (with alpha: a `contain` clip's bars), or
/// yuv420p (an opaque `cover` clip, ready for the base-picture path).
#[derive(Clone, Copy)]
pub enum ClipFrame<'a> {
    /// Premultiplied RGBA.
    Rgba(&'a Pixmap),
    /// Planar yuv420p, BT.709 limited range.
    Yuv(&'a [u8]),
}

impl ClipFrame<'_> {
    /// The frame as RGBA (converted from yuv when it is yuv).
    pub fn to_pixmap(&self, w: u32, h: u32) -> Pixmap {
        match self {
            ClipFrame::Rgba(p) => (*p).clone(),
            ClipFrame::Yuv(yuv) => {
                let mut p = Pixmap::new(w, h).expect("frame size");
                yuv420p_to_rgba(yuv, w as usize, h as usize, p.data_mut());
                p
            }
        }
    }
}

/// A prepared picture (a Ken Burns photo): its pixels, whether all are opaque, and, once first
/// drawn on the base-picture path, its yuv planes.
pub struct Picture {
    pixmap: Pixmap,
    opaque: bool,
    planes: std::sync::OnceLock<Planes>,
}

impl Picture {
    /// `pixmap` ready to draw.
    pub fn new(pixmap: Pixmap) -> Picture {
        Picture {
            opaque: is_opaque(&pixmap),
            pixmap,
            planes: std::sync::OnceLock::new(),
        }
    }

    /// The picture's pixels.
    pub fn pixmap(&self) -> &Pixmap {
        &self.pixmap
    }

    /// Whether every pixel is opaque.
    pub fn opaque(&self) -> bool {
        self.opaque
    }

    /// The picture as yuv planes, converted at the first call.
    pub fn planes(&self) -> &Planes {
        self.planes.get_or_init(|| Planes::from_rgba(&self.pixmap))
    }
}

/// `l = (a × wa + b × wb + 128) >> 8` bytewise (weights summing to 256); compiled for AVX2
/// where the CPU has it.
fn lerp2(line: &mut [u8], a: &[u8], b: &[u8], wa: u32, wb: u32) {
    #[inline(always)]
    fn run(line: &mut [u8], a: &[u8], b: &[u8], wa: u32, wb: u32) {
        for ((l, &a), &b) in line.iter_mut().zip(a).zip(b) {
            *l = ((a as u32 * wa + b as u32 * wb + 128) >> 8) as u8;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return crate::simd::avx2!(v3, (line: &'a mut [u8] = line, a: &'a [u8] = a,
                                       b: &'a [u8] = b, wa: u32 = wa, wb: u32 = wb) -> () {
            run(line, a, b, wa, wb)
        });
    }
    run(line, a, b, wa, wb)
}

/// `l = (Σ pₖ × wₖ + 32768) >> 16` bytewise over four rows (weights summing to 65536); compiled
/// for AVX2 where the CPU has it.
fn lerp4(line: &mut [u8], p: [&[u8]; 4], w: [u32; 4]) {
    #[inline(always)]
    fn run(line: &mut [u8], p: [&[u8]; 4], w: [u32; 4]) {
        let [a, b, c, d] = p;
        for ((((l, &a), &b), &c), &d) in line.iter_mut().zip(a).zip(b).zip(c).zip(d) {
            *l = ((a as u32 * w[0] + b as u32 * w[1] + c as u32 * w[2] + d as u32 * w[3] + 32768)
                >> 16) as u8;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return crate::simd::avx2!(v3, (line: &'a mut [u8] = line, p: [&'a [u8]; 4] = p,
                                       w: [u32; 4] = w) -> () {
            run(line, p, w)
        });
    }
    run(line, p, w)
}

/// Composite the premultiplied pixels `src` over `dst` (same length), scaled by the opacity
/// `op` (0..=256): `d = s + d × (255 − sₐ) / 255`, rounded, per channel. Eight pixels at a
/// time: a run that is wholly transparent is skipped and a wholly opaque one copied (glyph gaps
/// and interiors, photos), the rest blended branch-free, so the compiler vectorises it. A
/// transparent source pixel leaves its destination exactly as it was and an opaque one replaces
/// it, as per-pixel tests would. Runs of eight are blended with AVX2 where the CPU has it (the
/// same bytes).
fn over_row(dst: &mut [u8], src: &[u8], op: u32) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = pulp::x86::V3::try_new() {
        return crate::simd::avx2!(v3, (v3: pulp::x86::V3 = v3, dst: &'a mut [u8] = dst,
                                       src: &'a [u8] = src, op: u32 = op) -> () {
            over_row_with(dst, src, op, Some(v3))
        });
    }
    over_row_with(dst, src, op, None)
}

/// [`over_row`], blending runs of eight with AVX2 when given `v3`.
#[inline(always)]
fn over_row_with(dst: &mut [u8], src: &[u8], op: u32, v3: Option<Simd>) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v3;
    let mut d8 = dst.chunks_mut(32);
    for (d, s) in (&mut d8).zip(src.chunks(32)) {
        let (mut any, mut all) = (0u8, 255u8);
        for a in s.iter().skip(3).step_by(4) {
            any |= a;
            all &= a;
        }
        if any == 0 {
            continue;
        }
        if all == 255 && op >= 256 {
            d.copy_from_slice(s);
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if let (Some(v3), Ok(d), Ok(s)) = (v3, d.try_into(), s.try_into()) {
            crate::simd::over8_v3(v3, d, s, op);
            continue;
        }
        blend(d, s, op);
    }
}

/// The AVX2 token where there is one.
#[cfg(target_arch = "x86_64")]
type Simd = pulp::x86::V3;
#[cfg(not(target_arch = "x86_64"))]
type Simd = ();

/// [`over_row`]'s arithmetic, for any pixels.
fn blend(dst: &mut [u8], src: &[u8], op: u32) {
    if op >= 256 {
        for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
            let inv = 255 - s[3] as u32;
            for k in 0..4 {
                d[k] = (s[k] as u32 + div255(d[k] as u32 * inv)).min(255) as u8;
            }
        }
        return;
    }
    for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
        let s = [0, 1, 2, 3].map(|k| (s[k] as u32 * op + 128) >> 8);
        let inv = 255 - s[3];
        for k in 0..4 {
            d[k] = (s[k] + div255(d[k] as u32 * inv)).min(255) as u8;
        }
    }
}

/// Whether every pixel of `p` is opaque (then [`Canvas::image_scaled`] may overwrite).
pub fn is_opaque(p: &Pixmap) -> bool {
    p.data().chunks_exact(4).all(|px| px[3] == 255)
}

/// The writer side: yuv420p frames kept up to date incrementally, in two buffers.
///
/// Two, so that a frame can be handed to the encoder's pipe by reference (`vmsplice`, see
/// `ffmpeg.rs`) and the next different frame be converted into the other buffer while the
/// encoder may still be reading the first: after [`YuvState::lend`], the current buffer is not
/// written again until another one has been lent after it.
pub struct YuvState {
    w: usize,
    h: usize,
    slots: [Slot; 2],
    /// The slot holding the last frame converted.
    cur: usize,
    /// The slot last lent (still possibly read by the encoder): never written.
    lent: Option<usize>,
    /// Frames converted in full / incrementally (or blended onto their base picture) / not at
    /// all (identical to the previous one); and of all those, the frames on the base-picture
    /// path.
    pub stats: [u64; 4],
}

/// One yuv buffer and what the frame it holds was drawn with.
struct Slot {
    yuv: Vec<u8>,
    dirty: Vec<IRect>,
    /// Unknown (new) or drawn in full: the next frame in this slot is converted in full.
    full: bool,
    sig: u64,
    bg: usize,
    /// The frame took the base-picture path.
    base: bool,
    base_sig: u64,
}

impl Slot {
    fn new(len: usize) -> Slot {
        Slot {
            yuv: vec![0; len],
            dirty: Vec::new(),
            full: true,
            sig: 0,
            bg: 0,
            base: false,
            base_sig: 0,
        }
    }

    /// Whether it holds exactly the frame `f` is.
    fn holds(&self, f: &FrameBuf) -> bool {
        !f.full
            && !self.full
            && f.base == self.base
            && f.sig == self.sig
            && f.dirty == self.dirty
            && f.bg == self.bg
            && f.base_sig == self.base_sig
    }
}

/// Merge overlapping rectangles into their bounding boxes (consecutive frames of a moving layer
/// overlap almost entirely; converting the union once beats converting both).
fn merge(mut rects: Vec<IRect>) -> Vec<IRect> {
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..rects.len() {
            for j in i + 1..rects.len() {
                let (a, b) = (rects[i], rects[j]);
                if a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 {
                    rects[i] = IRect {
                        x0: a.x0.min(b.x0),
                        y0: a.y0.min(b.y0),
                        x1: a.x1.max(b.x1),
                        y1: a.y1.max(b.y1),
                    };
                    rects.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    rects
}

impl YuvState {
    /// A state for `w × h` frames; the first frame is converted in full.
    pub fn new(w: usize, h: usize) -> YuvState {
        let len = yuv420p_len(w, h);
        YuvState {
            w,
            h,
            slots: [Slot::new(len), Slot::new(len)],
            cur: 0,
            lent: None,
            stats: [0; 4],
        }
    }

    /// The last frame converted (all zeroes before the first).
    pub fn current(&self) -> &[u8] {
        &self.slots[self.cur].yuv
    }

    /// The current frame was handed out by reference (its buffer may still be read): it is not
    /// written until another frame has been lent after it. The encoder's pipe holds less than a
    /// frame, so once the next frame is in it, this one has been read.
    pub fn lend(&mut self) {
        self.lent = Some(self.cur);
    }

    /// Bring the yuv frame up to date with `f` and return it. A frame identical to the previous
    /// one is the same buffer, untouched. Otherwise it goes into a buffer not lent (the current
    /// one, or the other one), converting what `f` drew plus what that buffer's frame drew (now
    /// background again), or everything when either was drawn in full.
    ///
    /// A frame on the base-picture path is its yuv planes with what was drawn over them blended
    /// on, only where something was. Its planes are taken, not copied: `f` is left holding an
    /// older frame's planes (never a lent one), marked as no base picture drawn (so
    /// [`FrameBuf::redraw`] draws one again rather than skip the frame as already held).
    pub fn convert(&mut self, f: &mut FrameBuf) -> &[u8] {
        if f.base {
            self.stats[3] += 1;
        }
        if self.slots[self.cur].holds(f) {
            self.stats[2] += 1; // the same drawing as the previous frame
            return &self.slots[self.cur].yuv;
        }
        if self.lent == Some(self.cur) {
            self.cur = 1 - self.cur;
        }
        let (w, h, base_sig) = (self.w, self.h, f.base_sig);
        let slot = &mut self.slots[self.cur];
        let rgba = f.pixmap.data();
        if f.base {
            // the planes are the whole base picture: swap instead of copying 3 MB at 1080p
            std::mem::swap(&mut slot.yuv, &mut f.yuv);
            f.base_filled = false;
            f.base_sig = 0;
            let over = if f.full {
                vec![IRect::full(w, h)]
            } else {
                merge(f.dirty.clone())
            };
            for r in over {
                blend_rgba_over_yuv420p_rect(rgba, w, h, r, &mut slot.yuv);
            }
            self.stats[1] += 1;
        } else if f.full || slot.full || slot.base || f.bg != slot.bg {
            rgba_to_yuv420p_rect(rgba, w, h, IRect::full(w, h), &mut slot.yuv);
            self.stats[0] += 1;
        } else {
            // both frames are the background outside what each drew
            for r in merge(slot.dirty.iter().chain(&f.dirty).copied().collect()) {
                rgba_to_yuv420p_rect(rgba, w, h, r, &mut slot.yuv);
            }
            self.stats[1] += 1;
        }
        slot.dirty.clear();
        slot.dirty.extend_from_slice(&f.dirty);
        slot.full = f.full;
        slot.sig = f.sig;
        slot.bg = f.bg;
        slot.base = f.base;
        // the base signature as drawn (`f`'s was cleared with its planes)
        slot.base_sig = base_sig;
        &slot.yuv
    }
}

#[cfg(test)]
mod tests {
    use super::super::paint::rgba_to_yuv420p_rect;
    use super::*;

    fn layer(w: u32, h: u32) -> Pixmap {
        let mut p = Pixmap::new(w, h).unwrap();
        for (i, px) in p.data_mut().chunks_exact_mut(4).enumerate() {
            let a = ((i * 37) % 256) as u8;
            px.copy_from_slice(&[a / 2, a / 3, a, a]);
        }
        p
    }

    #[test]
    fn an_identity_tells_apart_frames_that_draw_alike() {
        // the same pixmap at the same place: equal signatures unless identified differently
        // (what a caption's serial number guards against when a freed layer's memory is reused)
        let bg = Pixmap::new(32, 32).unwrap();
        let l = layer(10, 10);
        let sig = |id: Option<u64>| {
            let mut b = FrameBuf::new(32, 32);
            b.reset(&bg, 0);
            let mut c = b.canvas();
            if let Some(id) = id {
                c.identify(id);
            }
            c.layer(&l, 3.0, 4.0, 1.0);
            b.sig
        };
        assert_eq!(sig(None), sig(None));
        assert_eq!(sig(Some(1)), sig(Some(1)));
        assert_ne!(sig(Some(1)), sig(Some(2)));
        assert_ne!(sig(None), sig(Some(1)));
    }

    #[test]
    fn incremental_frames_match_full_redraws() {
        let (w, h) = (96usize, 64usize);
        let mut bg = Pixmap::new(w as u32, h as u32).unwrap();
        for (i, px) in bg.data_mut().chunks_exact_mut(4).enumerate() {
            px.copy_from_slice(&[(i % 251) as u8, (i % 127) as u8, (i % 63) as u8, 255]);
        }
        let l = layer(30, 12);
        // A few recycled buffers, as in the encoder, and one yuv state.
        let mut bufs: Vec<FrameBuf> = (0..3).map(|_| FrameBuf::new(w as u32, h as u32)).collect();
        let mut yuv = YuvState::new(w, h);
        for step in 0..16 {
            // steps 9..16 repeat one drawing (a title at rest): those frames need no conversion
            let t = step.min(9) as f32;
            let draw = |c: &mut Canvas| {
                c.layer(&l, 5.0 + t * 3.3, 40.0 - t * 2.7, 0.3 + 0.05 * t);
                // from step 12 on, only the rectangle changes (the layer stays put)
                let g = if step >= 12 { step as f32 } else { t };
                c.round_rect([60.0 - g, 4.0, 2.0 + g, 3.0], 1.5, Rgb(250, 200, 10), 0.9);
                if step == 7 {
                    c.mark_all();
                }
            };
            let buf = &mut bufs[step % 3];
            buf.reset(&bg, 0);
            draw(&mut buf.canvas());
            // reference: a fresh full redraw
            let mut reference = FrameBuf::new(w as u32, h as u32);
            reference.reset(&bg, 0);
            draw(&mut reference.canvas());
            assert_eq!(
                buf.pixmap.data(),
                reference.pixmap.data(),
                "rgba differs at step {step}"
            );
            let mut full = vec![0u8; yuv420p_len(w, h)];
            rgba_to_yuv420p_rect(reference.pixmap.data(), w, h, IRect::full(w, h), &mut full);
            assert_eq!(yuv.convert(buf), &full[..], "yuv differs at step {step}");
        }
        assert_eq!(
            yuv.stats[0], 3,
            "first frame, the mark_all frame and the one after"
        );
        assert_eq!(
            yuv.stats[2], 2,
            "steps 10 and 11 repeat step 9: {:?}",
            yuv.stats
        );
    }

    #[test]
    fn redraw_skips_frames_the_buffer_already_holds() {
        let (w, h) = (64usize, 32usize);
        let mut bg = Pixmap::new(w as u32, h as u32).unwrap();
        bg.fill(tiny_skia::Color::from_rgba8(10, 20, 30, 255));
        let mut bg2 = Pixmap::new(w as u32, h as u32).unwrap();
        bg2.fill(tiny_skia::Color::from_rgba8(200, 20, 30, 255));
        let l = &layer(12, 6);
        let draw = |x: f32| {
            move |c: &mut Canvas| {
                c.layer(l, x, 3.0, 0.8);
                c.round_rect([40.0, 10.0, 8.0, 4.0], 1.0, Rgb(250, 250, 0), 1.0);
                // Ken Burns images go through probes too (a probe has no pixels to touch).
                c.image_scaled(l, false, [20.0, 16.0, 20.0, 14.0], 1.5, 18.0 + x, 15.0);
            }
        };
        let reference = |bg: &Pixmap, x: f32| {
            let mut r = FrameBuf::new(w as u32, h as u32);
            r.reset(bg, 0);
            draw(x)(&mut r.canvas());
            r.pixmap.data().to_vec()
        };
        let mut buf = FrameBuf::new(w as u32, h as u32);
        let mut yuv = YuvState::new(w, h);
        let mut out = vec![0u8; yuv420p_len(w, h)];
        // (background, its id, generation, x, expected to draw)
        for (bgp, id, gen, x, drawn) in [
            (&bg, 1, 0, 2.0, true),   // a new buffer
            (&bg, 1, 0, 2.0, false),  // the same frame again
            (&bg, 1, 0, 5.5, true),   // moved
            (&bg, 1, 0, 5.5, false),  // at rest
            (&bg, 1, 1, 5.5, true),   // another scene draws the same: not the same frame
            (&bg2, 2, 1, 5.5, true),  // another background
            (&bg2, 2, 1, 5.5, false), // at rest
        ] {
            assert_eq!(
                buf.redraw(bgp, id, gen, false, &mut draw(x)),
                drawn,
                "{id} {gen} {x}"
            );
            assert_eq!(buf.pixmap.data(), &reference(bgp, x)[..], "{id} {gen} {x}");
            rgba_to_yuv420p_rect(&reference(bgp, x), w, h, IRect::full(w, h), &mut out);
            assert_eq!(yuv.convert(&mut buf), &out[..], "yuv {id} {gen} {x}");
        }
    }

    /// The per-pixel, branchy compositing `Canvas::layer` had before its row kernels: the
    /// reference they must match bit for bit.
    #[allow(clippy::needless_range_loop)]
    fn layer_reference(
        data: &mut [u8],
        fw: usize,
        fh: usize,
        layer: &Pixmap,
        x: f32,
        y: f32,
        opacity: f32,
    ) {
        let op = (opacity.clamp(0.0, 1.0) * 256.0).round() as u32;
        if op == 0 {
            return;
        }
        let (lw, lh) = (layer.width() as i64, layer.height() as i64);
        let snap = |v: f32| {
            let f = v - v.floor();
            if f < 1.0 / 128.0 {
                (v.floor() as i64, 0u32)
            } else if f > 1.0 - 1.0 / 128.0 {
                (v.floor() as i64 + 1, 0)
            } else {
                (v.floor() as i64, (f * 256.0).round() as u32)
            }
        };
        let (bx, wx) = snap(x);
        let (by, wy) = snap(y);
        let ex = bx + lw + (wx > 0) as i64;
        let ey = by + lh + (wy > 0) as i64;
        let (dx0, dx1) = (bx.max(0) as usize, (ex.min(fw as i64)).max(0) as usize);
        let (dy0, dy1) = (by.max(0) as usize, (ey.min(fh as i64)).max(0) as usize);
        if dx0 >= dx1 || dy0 >= dy1 {
            return;
        }
        let src = layer.data();
        let w = fw;
        let over = |d: &mut [u8], s: [u32; 4]| {
            let (r, g, b, a) = if op >= 256 {
                (s[0], s[1], s[2], s[3])
            } else {
                (
                    (s[0] * op + 128) >> 8,
                    (s[1] * op + 128) >> 8,
                    (s[2] * op + 128) >> 8,
                    (s[3] * op + 128) >> 8,
                )
            };
            if a == 0 {
                return;
            }
            if a >= 255 {
                // opaque (glyph interiors, solid shapes): the source replaces the destination
                d[0] = r.min(255) as u8;
                d[1] = g.min(255) as u8;
                d[2] = b.min(255) as u8;
                d[3] = 255;
                return;
            }
            let inv = 255 - a;
            d[0] = (r + div255(d[0] as u32 * inv)).min(255) as u8;
            d[1] = (g + div255(d[1] as u32 * inv)).min(255) as u8;
            d[2] = (b + div255(d[2] as u32 * inv)).min(255) as u8;
            d[3] = (a + div255(d[3] as u32 * inv)).min(255) as u8;
        };
        if wx == 0 && wy == 0 {
            for dy in dy0..dy1 {
                let sy = (dy as i64 - by) as usize;
                let srow = &src[sy * lw as usize * 4..(sy + 1) * lw as usize * 4];
                let drow = &mut data[dy * w * 4..(dy + 1) * w * 4];
                for dx in dx0..dx1 {
                    let sx = (dx as i64 - bx) as usize;
                    let s = &srow[sx * 4..sx * 4 + 4];
                    if s[3] == 0 {
                        continue;
                    }
                    over(
                        &mut drow[dx * 4..dx * 4 + 4],
                        [s[0] as u32, s[1] as u32, s[2] as u32, s[3] as u32],
                    );
                }
            }
            return;
        }
        if wx == 0 {
            // Vertical sub-pixel motion (the common case): blend source rows j-1 and j.
            let lwu = lw as usize;
            let (wa, wb) = (wy, 256 - wy);
            for dy in dy0..dy1 {
                let j = dy as i64 - by;
                let ra = (j >= 1 && j - 1 < lh)
                    .then(|| &src[(j - 1) as usize * lwu * 4..j as usize * lwu * 4]);
                let rb = (j >= 0 && j < lh)
                    .then(|| &src[j as usize * lwu * 4..(j as usize + 1) * lwu * 4]);
                let drow = &mut data[dy * w * 4..(dy + 1) * w * 4];
                for dx in dx0..dx1 {
                    let i = (dx as i64 - bx) as usize * 4;
                    let a = ra.map(|r| &r[i..i + 4]).unwrap_or(&[0; 4]);
                    let b = rb.map(|r| &r[i..i + 4]).unwrap_or(&[0; 4]);
                    if a[3] | b[3] == 0 {
                        continue;
                    }
                    let mut s = [0u32; 4];
                    for k in 0..4 {
                        s[k] = (a[k] as u32 * wa + b[k] as u32 * wb + 128) >> 8;
                    }
                    over(&mut drow[dx * 4..dx * 4 + 4], s);
                }
            }
            return;
        }
        // Bilinear: destination pixel (i, j) in layer space blends source (i-1|i, j-1|j).
        let px = |i: i64, j: i64| -> [u32; 4] {
            if i < 0 || j < 0 || i >= lw || j >= lh {
                return [0; 4];
            }
            let o = ((j * lw + i) * 4) as usize;
            [
                src[o] as u32,
                src[o + 1] as u32,
                src[o + 2] as u32,
                src[o + 3] as u32,
            ]
        };
        let (iwx, iwy) = (256 - wx, 256 - wy);
        let w00 = wx * wy;
        let w10 = iwx * wy;
        let w01 = wx * iwy;
        let w11 = iwx * iwy;
        for dy in dy0..dy1 {
            let j = dy as i64 - by;
            let drow = &mut data[dy * w * 4..(dy + 1) * w * 4];
            for dx in dx0..dx1 {
                let i = dx as i64 - bx;
                let (a, b, c, d) = (px(i - 1, j - 1), px(i, j - 1), px(i - 1, j), px(i, j));
                if a[3] | b[3] | c[3] | d[3] == 0 {
                    continue;
                }
                let mut s = [0u32; 4];
                for k in 0..4 {
                    s[k] = (a[k] * w00 + b[k] * w10 + c[k] * w01 + d[k] * w11 + 32768) >> 16;
                }
                over(&mut drow[dx * 4..dx * 4 + 4], s);
            }
        }
    }

    #[test]
    fn layer_rows_match_the_per_pixel_reference_exactly() {
        let (w, h) = (48usize, 40usize);
        let mut bg = vec![0u8; w * h * 4];
        for (i, px) in bg.chunks_exact_mut(4).enumerate() {
            px.copy_from_slice(&[
                (i * 7 % 256) as u8,
                (i * 3 % 256) as u8,
                (i % 200) as u8,
                255,
            ]);
        }
        // premultiplied, with transparent, translucent and opaque pixels
        let mut l = Pixmap::new(13, 9).unwrap();
        for (i, px) in l.data_mut().chunks_exact_mut(4).enumerate() {
            let a = [0u32, 255, 128, 37, 255, 200, 0, 1][i % 8];
            let c = |v: u32| (v * a / 255) as u8;
            px.copy_from_slice(&[c(250), c((i * 40 % 256) as u32), c(90), a as u8]);
        }
        let mut cases = 0;
        for &x in &[0.0f32, 3.0, 3.5, 3.25, -4.75, 40.6, -20.0, 7.999, 8.004] {
            for &y in &[0.0f32, 5.0, 5.5, 2.125, -3.3, 35.2, 60.0] {
                for &op in &[1.0f32, 0.5, 0.02, 0.999] {
                    let mut want = bg.clone();
                    layer_reference(&mut want, w, h, &l, x, y, op);
                    let mut f = FrameBuf::new(w as u32, h as u32);
                    f.pixmap.data_mut().copy_from_slice(&bg);
                    f.canvas().layer(&l, x, y, op);
                    assert!(f.pixmap.data() == &want[..], "at ({x}, {y}), opacity {op}");
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 252);
    }

    #[test]
    fn the_simd_over_matches_the_scalar_blend_exactly() {
        if !crate::simd::avx2_here() {
            return;
        }
        // 61 pixels: runs of 8 that are mixed, transparent, opaque, and a short tail; any bytes
        // (premultiplied or not: every step must stay exact)
        let n = 61;
        let src: Vec<u8> = (0..n * 4)
            .map(|i| match i / 32 {
                1 => 0,
                2 => 255,
                _ => ((i * 7919 + i / 5) % 256) as u8,
            })
            .collect();
        let dst: Vec<u8> = (0..n * 4).map(|i| ((i * 104729) % 256) as u8).collect();
        for op in [256, 255, 200, 128, 1, 0] {
            let mut want = dst.clone();
            over_row_with(&mut want, &src, op, None);
            let mut got = dst.clone();
            over_row(&mut got, &src, op);
            assert!(want == got, "op {op}");
        }
    }

    /// `cargo test --release -p vidbuilder-render --lib frame::tests::bench_layer -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark; run explicitly in release mode"]
    fn bench_layer() {
        let (w, h) = (1920usize, 1080usize);
        let bg = vec![40u8; w * h * 4];
        // text-like: glyph strokes of 6 px in every 16 (mostly transparent); and a photo
        let mut text = Pixmap::new(1400, 220).unwrap();
        for (i, px) in text.data_mut().chunks_exact_mut(4).enumerate() {
            let x = i % 1400;
            let a = if x % 16 < 6 {
                255
            } else if x % 16 == 6 {
                120
            } else {
                0
            };
            px.copy_from_slice(&[a, a, a, a]);
        }
        let mut photo = Pixmap::new(900, 900).unwrap();
        photo.fill(tiny_skia::Color::from_rgba8(200, 100, 50, 255));
        for (name, l) in [("text", &text), ("photo", &photo)] {
            for (x, y) in [(100.0f32, 200.0f32), (100.0, 200.4), (100.3, 200.4)] {
                let n = 40;
                let mut data = bg.clone();
                let t0 = std::time::Instant::now();
                for _ in 0..n {
                    layer_reference(&mut data, w, h, l, x, y, 1.0);
                }
                let old = t0.elapsed() / n;
                let mut f = FrameBuf::new(w as u32, h as u32);
                f.pixmap.data_mut().copy_from_slice(&bg);
                let t0 = std::time::Instant::now();
                for _ in 0..n {
                    f.canvas().layer(l, x, y, 1.0);
                }
                let new = t0.elapsed() / n;
                println!("LAYER {name} at ({x}, {y}): per-pixel {old:?}, rows {new:?}");
            }
        }
    }

    #[test]
    fn layer_at_integer_and_fractional_positions() {
        let (w, h) = (40usize, 20usize);
        let mut f = FrameBuf::new(w as u32, h as u32);
        let mut bg = Pixmap::new(w as u32, h as u32).unwrap();
        bg.fill(tiny_skia::Color::BLACK);
        let mut l = Pixmap::new(4, 4).unwrap();
        l.fill(tiny_skia::Color::WHITE);
        f.reset(&bg, 0);
        f.canvas().layer(&l, 10.0, 5.0, 1.0);
        let px = |f: &FrameBuf, x, y| f.pixmap.pixel(x, y).unwrap().red();
        assert_eq!(
            (px(&f, 10, 5), px(&f, 13, 8), px(&f, 14, 5), px(&f, 9, 5)),
            (255, 255, 0, 0)
        );
        // Half a pixel down: the top and bottom rows are half covered.
        f.reset(&bg, 0);
        f.canvas().layer(&l, 10.0, 5.5, 1.0);
        let (top, mid, bottom) = (px(&f, 11, 5), px(&f, 11, 7), px(&f, 11, 9));
        assert!(
            (126..=129).contains(&top) && mid == 255 && (126..=129).contains(&bottom),
            "{top} {mid} {bottom}"
        );
        // Opacity.
        f.reset(&bg, 0);
        f.canvas().layer(&l, 10.0, 5.0, 0.5);
        assert!((126..=129).contains(&px(&f, 11, 6)));
        // Off-frame is clipped, not a panic.
        f.reset(&bg, 0);
        f.canvas().layer(&l, -2.5, 18.5, 1.0);
        f.canvas().layer(&l, 100.0, 100.0, 1.0);
    }
}
