//! Pixels: the dithered background, layer compositing, shapes, and RGBA → yuv420p BT.709.

use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Transform};

use vidbuilder_domain::spec::{Background, Fit};

use super::frame::IRect;
use super::image::{fitted, Images};
use super::theme::{Pattern, Rgb, Theme};
use super::RenderError;

/// 8×8 Bayer matrix (values 0..63) for ordered dithering.
const BAYER8: [[u8; 8]; 8] = [
    [0, 32, 8, 40, 2, 34, 10, 42],
    [48, 16, 56, 24, 50, 18, 58, 26],
    [12, 44, 4, 36, 14, 46, 6, 38],
    [60, 28, 52, 20, 62, 30, 54, 22],
    [3, 35, 11, 43, 1, 33, 9, 41],
    [51, 19, 59, 27, 49, 17, 57, 25],
    [15, 47, 7, 39, 13, 45, 5, 37],
    [63, 31, 55, 23, 61, 29, 53, 21],
];

/// Background grid step, in pixels: the smooth shading is evaluated every `S` pixels and
/// interpolated in between.
const S: usize = 4;
/// A pixel's position inside its grid cell, 0..1.
const CELL_T: [f32; S] = [
    0.0 / S as f32,
    1.0 / S as f32,
    2.0 / S as f32,
    3.0 / S as f32,
];

/// [`BAYER8`] as the offsets added before truncating: `(b + 0.5) / 64`.
const DITHER_F: [[f32; 8]; 8] = {
    let mut t = [[0.0; 8]; 8];
    let mut r = 0;
    while r < 8 {
        let mut c = 0;
        while c < 8 {
            t[r][c] = (BAYER8[r][c] as f32 + 0.5) / 64.0;
            c += 1;
        }
        r += 1;
    }
    t
};

/// One background row of RGBA pixels from its interpolated grid row `crow` (a grid point every
/// `S` pixels, 0..1 per channel), ordered-dithered with the row's `dither`.
fn fill_row(crow: &[[f32; 3]], dither: &[f32; 8], line: &mut [u8]) {
    // a grid cell's S pixels at a time (fixed-size arrays the compiler vectorises); the same
    // arithmetic, in the same order, as the pixel at a time loop for the rest
    let cells = line.len() / 4 / S;
    let (whole, rest) = line.split_at_mut(cells * S * 4);
    for (i, px) in whole.chunks_exact_mut(S * 4).enumerate() {
        let (a, b) = (crow[i], crow[i + 1]);
        let d: &[f32; S] = dither[(i * S) & 7..][..S].try_into().expect("S lanes");
        for k in 0..3 {
            let (ak, bk) = (a[k], b[k]);
            let v: [f32; S] = std::array::from_fn(|t| {
                ((ak + (bk - ak) * CELL_T[t]) * 255.0 + d[t]).clamp(0.0, 255.0)
            });
            for t in 0..S {
                px[t * 4 + k] = v[t] as u8;
            }
        }
        for t in 0..S {
            px[t * 4 + 3] = 255;
        }
    }
    for (x, o) in (cells * S..).zip(rest.chunks_exact_mut(4)) {
        let (i, tx) = (x / S, (x % S) as f32 / S as f32);
        let (a, b) = (crow[i], crow[i + 1]);
        for k in 0..3 {
            // non-negative after the clamp, so the cast's truncation is the floor (and no libm
            // call: SSE2 has no vector floor)
            o[k] = ((a[k] + (b[k] - a[k]) * tx) * 255.0 + dither[x & 7]).clamp(0.0, 255.0) as u8;
        }
        o[3] = 255;
    }
}

/// The outline of a rounded rectangle `[x, y, w, h]` with corner radius `radius` (clamped to half
/// the shorter side, so `h / 2` gives a pill); `None` for an empty rectangle.
pub fn rounded_rect(x: f32, y: f32, w: f32, h: f32, radius: f32) -> Option<tiny_skia::Path> {
    let r = radius.min(w / 2.0).min(h / 2.0).max(0.0);
    let k = 0.5523 * r; // cubic approximation of a quarter circle
    let mut pb = PathBuilder::new();
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.cubic_to(x + w - r + k, y, x + w, y + r - k, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.cubic_to(x + w, y + h - r + k, x + w - r + k, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.cubic_to(x + r - k, y + h, x, y + h - r + k, x, y + h - r);
    pb.line_to(x, y + r);
    pb.cubic_to(x, y + r - k, x + r - k, y, x + r, y);
    pb.close();
    pb.finish()
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// The theme's background (gradient + glow + vignette), computed in float and ordered-dithered
/// to 8 bits so it does not band. Drawn once per render and copied into every frame.
pub fn background(theme: &Theme, w: u32, h: u32) -> Pixmap {
    let p = &theme.palette;
    let stops: Vec<[f32; 3]> = p.background.iter().map(|c| c.f32()).collect();
    let (wf, hf) = (w as f32, h as f32);
    let a = p.gradient_angle.to_radians();
    let (dx, dy) = (a.cos(), a.sin());
    let half_extent = ((wf * dx).abs() + (hf * dy).abs()) / 2.0;
    let glow = p.glow.filter(|_| p.glow_strength > 0.0).map(|g| g.f32());
    let (gx, gy) = (p.glow_center[0] * wf, p.glow_center[1] * hf);
    let gr = p.glow_radius * wf.max(hf);
    let inv_gr2 = 1.0 / (gr * gr);
    let (cx, cy) = (wf / 2.0, hf / 2.0);

    let nseg = (stops.len() - 1).max(1) as f32;
    let shade = |xf: f32, yf: f32| -> [f32; 3] {
        // gradient position 0..1 across the frame along the angle
        let t = if half_extent > 0.0 {
            (0.5 + ((xf - cx) * dx + (yf - cy) * dy) / (2.0 * half_extent)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut c = if stops.len() == 1 {
            stops[0]
        } else {
            let s = t * nseg;
            let i = (s.floor() as usize).min(stops.len() - 2);
            let f = smoothstep(0.0, 1.0, s - i as f32) * 0.5 + (s - i as f32) * 0.5;
            let (a, b) = (stops[i], stops[i + 1]);
            [
                a[0] + (b[0] - a[0]) * f,
                a[1] + (b[1] - a[1]) * f,
                a[2] + (b[2] - a[2]) * f,
            ]
        };
        if let Some(g) = glow {
            let d2 = (xf - gx) * (xf - gx) + (yf - gy) * (yf - gy);
            let k = p.glow_strength * (-2.2 * d2 * inv_gr2).exp();
            // screen blend: brightens without washing out
            for j in 0..3 {
                c[j] = 1.0 - (1.0 - c[j]) * (1.0 - g[j] * k);
            }
        }
        if p.vignette > 0.0 {
            let nx = (xf - cx) / cx;
            let ny = (yf - cy) / cy;
            let r = ((nx * nx + ny * ny) * 0.5).sqrt();
            let v = 1.0 - p.vignette * smoothstep(0.3, 1.05, r);
            for cj in c.iter_mut() {
                *cj *= v;
            }
        }
        c
    };

    // Everything above is smooth: evaluate it on a coarse grid and interpolate (in float, before
    // dithering), which is ~16× cheaper than per pixel and visually identical.
    let (wu, hu) = (w as usize, h as usize);
    let (gw, gh) = (wu / S + 2, hu / S + 2);
    let mut grid = vec![[0f32; 3]; gw * gh];
    for j in 0..gh {
        for i in 0..gw {
            grid[j * gw + i] = shade((i * S) as f32 + 0.5, (j * S) as f32 + 0.5);
        }
    }
    let mut pm = Pixmap::new(w, h).expect("frame size");
    let data = pm.data_mut();
    let mut crow = vec![[0f32; 3]; gw];
    for y in 0..hu {
        let (j, ty) = (y / S, (y % S) as f32 / S as f32);
        for (i, c) in crow.iter_mut().enumerate() {
            let (a, b) = (grid[j * gw + i], grid[(j + 1) * gw + i]);
            *c = [
                a[0] + (b[0] - a[0]) * ty,
                a[1] + (b[1] - a[1]) * ty,
                a[2] + (b[2] - a[2]) * ty,
            ];
        }
        fill_row(
            &crow,
            &DITHER_F[y & 7],
            &mut data[y * wu * 4..(y + 1) * wu * 4],
        );
    }
    decorate(&mut pm, theme);
    pm
}

/// A scene's background: its own `background` when it sets one, else the theme's. Computed once
/// per scene and output, then copied into each of its frames.
///
/// - colour: that colour, flat;
/// - gradient: the colours at the angle, dithered like the theme's (no glow, vignette or pattern);
/// - image: the image covering the frame (over the theme's background, for transparent images),
///   blended towards the theme's first background colour by `dim`, so the theme's text colour
///   stays readable on it (darker on dark themes, lighter on light ones).
pub fn scene_background(
    theme: &Theme,
    bg: Option<&Background>,
    images: &Images,
    w: u32,
    h: u32,
) -> Result<Pixmap, RenderError> {
    let plain = |colors: Vec<Rgb>, angle: f32| {
        let mut t = theme.clone();
        t.palette.background = colors;
        t.palette.gradient_angle = angle;
        t.palette.glow = None;
        t.palette.glow_strength = 0.0;
        t.palette.vignette = 0.0;
        t.palette.pattern = Pattern::None;
        background(&t, w, h)
    };
    let colour = |c: &str| {
        Rgb::parse(c).ok_or_else(|| RenderError::InvalidSpec(format!("'{c}' is not a colour")))
    };
    match bg {
        // a video background covers the frame: the theme's shows only before its first frame
        None | Some(Background::Video { .. }) => Ok(background(theme, w, h)),
        Some(Background::Color { color }) => Ok(plain(vec![colour(color)?], 0.0)),
        Some(Background::Gradient { colors, angle }) => {
            let stops = colors
                .iter()
                .map(|c| colour(c))
                .collect::<Result<Vec<_>, _>>()?;
            if stops.is_empty() || stops.len() > 4 {
                return Err(RenderError::InvalidSpec(
                    "a gradient needs 2 to 4 colours".into(),
                ));
            }
            Ok(plain(stops, *angle))
        }
        Some(Background::Image { src, dim }) => {
            let img = fitted(images.get(src)?, w as f32, h as f32, Fit::Cover, 1.0);
            let mut pm = background(theme, w, h);
            let (x, y) = (
                (w as i32 - img.width() as i32) / 2,
                (h as i32 - img.height() as i32) / 2,
            );
            pm.draw_pixmap(
                x,
                y,
                img.as_ref(),
                &tiny_skia::PixmapPaint::default(),
                Transform::identity(),
                None,
            );
            let k = (dim.clamp(0.0, 1.0) * 256.0).round() as u32;
            if k > 0 {
                let to = theme.palette.background[0];
                let to = [to.0 as u32, to.1 as u32, to.2 as u32];
                for px in pm.data_mut().chunks_exact_mut(4) {
                    for c in 0..3 {
                        px[c] = ((px[c] as u32 * (256 - k) + to[c] * k + 128) >> 8) as u8;
                    }
                }
            }
            Ok(pm)
        }
    }
}

fn paint_of(c: Rgb, opacity: f32) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(
        c.0,
        c.1,
        c.2,
        (opacity.clamp(0.0, 1.0) * 255.0).round() as u8,
    );
    paint.anti_alias = true;
    paint
}

/// A rectangle filled as a path (tiny-skia's anti-aliased `fill_rect` trips a debug assertion on
/// rectangles thinner than a pixel).
fn fill_rect_path(pm: &mut Pixmap, [x, y, w, h]: [f32; 4], paint: &Paint) {
    if let Some(path) = tiny_skia::Rect::from_xywh(x, y, w, h).map(PathBuilder::from_rect) {
        pm.fill_path(&path, paint, FillRule::Winding, Transform::identity(), None);
    }
}

/// The theme's faint static pattern, in frame-relative units so it scales with the frame.
fn decorate(pm: &mut Pixmap, theme: &Theme) {
    let p = &theme.palette;
    if p.pattern == Pattern::None || p.pattern_opacity <= 0.0 {
        return;
    }
    let color = p.pattern_color.unwrap_or(p.text);
    let (w, h) = (pm.width() as f32, pm.height() as f32);
    let u = w.min(h) / 100.0;
    let op = p.pattern_opacity;
    match p.pattern {
        Pattern::None => {}
        Pattern::Dots => {
            let step = 2.8 * u;
            let r = 0.2 * u;
            let reach = 0.55 * w.max(h);
            let mut y = step * 0.75;
            while y < h * 0.6 {
                let mut x = w - step * 0.75;
                while x > w * 0.35 {
                    let d = ((w - x).powi(2) + y.powi(2)).sqrt() / reach;
                    let a = op * (1.0 - d).max(0.0).powf(1.6);
                    if a > 0.004 {
                        if let Some(path) = PathBuilder::from_circle(x, y, r) {
                            pm.fill_path(
                                &path,
                                &paint_of(color, a),
                                FillRule::Winding,
                                Transform::identity(),
                                None,
                            );
                        }
                    }
                    x -= step;
                }
                y += step;
            }
        }
        Pattern::Rings => {
            let (cx, cy) = (p.glow_center[0] * w, p.glow_center[1] * h);
            let base = 0.5 * w.max(h);
            let stroke = tiny_skia::Stroke {
                width: 0.14 * u,
                ..Default::default()
            };
            for i in 0..6 {
                let r = base * (0.28 + 0.16 * i as f32);
                let a = op * (1.0 - i as f32 / 7.0);
                if let Some(path) = PathBuilder::from_circle(cx, cy, r) {
                    pm.stroke_path(
                        &path,
                        &paint_of(color, a),
                        &stroke,
                        Transform::identity(),
                        None,
                    );
                }
            }
        }
        Pattern::Grid => {
            let step = 6.0 * u;
            let lw = (0.09 * u).max(1.0);
            // horizontal lines, fading towards the top
            let mut y = h - step / 2.0;
            while y > 0.0 {
                let a = op * (y / h).powf(2.0);
                fill_rect_path(pm, [0.0, y, w, lw], &paint_of(color, a));
                y -= step;
            }
            // vertical lines, drawn per cell so they fade the same way
            let mut x = (w / 2.0) % step;
            while x < w {
                let mut y = h;
                while y > 0.0 {
                    let a = op * ((y - step / 2.0) / h).max(0.0).powf(2.0);
                    fill_rect_path(
                        pm,
                        [x, (y - step).max(0.0), lw, step.min(y)],
                        &paint_of(color, a),
                    );
                    y -= step;
                }
                x += step;
            }
        }
        Pattern::Bubbles => {
            // (x, y, radius) relative to the frame / its long side
            let long = w.max(h);
            for (bx, by, br) in [
                (0.86, 0.18, 0.16),
                (0.1, 0.82, 0.2),
                (0.72, 0.9, 0.08),
                (0.24, 0.12, 0.06),
                (0.95, 0.62, 0.05),
            ] {
                let (x, y, r) = (bx * w, by * h, br * long);
                let c = |a: f32| {
                    tiny_skia::Color::from_rgba8(
                        color.0,
                        color.1,
                        color.2,
                        (a * 255.0).round() as u8,
                    )
                };
                let stops = vec![
                    tiny_skia::GradientStop::new(0.0, c(op * 0.35)),
                    tiny_skia::GradientStop::new(0.9, c(op)),
                    tiny_skia::GradientStop::new(1.0, c(0.0)),
                ];
                let shader = tiny_skia::RadialGradient::new(
                    tiny_skia::Point::from_xy(x, y),
                    tiny_skia::Point::from_xy(x, y),
                    r,
                    stops,
                    tiny_skia::SpreadMode::Pad,
                    Transform::identity(),
                );
                if let (Some(path), Some(shader)) = (PathBuilder::from_circle(x, y, r), shader) {
                    let paint = Paint {
                        shader,
                        anti_alias: true,
                        ..Paint::default()
                    };
                    pm.fill_path(
                        &path,
                        &paint,
                        FillRule::Winding,
                        Transform::identity(),
                        None,
                    );
                }
            }
        }
    }
}

// BT.709 limited range, 16.16 fixed point.
pub(crate) const FP: i32 = 1 << 16;
pub(crate) const fn fx(v: f64) -> i32 {
    (v * FP as f64 + if v >= 0.0 { 0.5 } else { -0.5 }) as i32
}
pub(crate) const YR: i32 = fx(0.2126 * 219.0 / 255.0);
pub(crate) const YG: i32 = fx(0.7152 * 219.0 / 255.0);
pub(crate) const YB: i32 = fx(0.0722 * 219.0 / 255.0);
pub(crate) const CBR: i32 = fx(-0.2126 / 1.8556 * 224.0 / 255.0);
pub(crate) const CBG: i32 = fx(-0.7152 / 1.8556 * 224.0 / 255.0);
pub(crate) const CBB: i32 = fx(0.5 * 224.0 / 255.0);
pub(crate) const CRR: i32 = fx(0.5 * 224.0 / 255.0);
pub(crate) const CRG: i32 = fx(-0.7152 / 1.5748 * 224.0 / 255.0);
pub(crate) const CRB: i32 = fx(-0.0722 / 1.5748 * 224.0 / 255.0);

/// Bytes of one yuv420p frame.
pub fn yuv420p_len(w: usize, h: usize) -> usize {
    w * h + 2 * (w / 2) * (h / 2)
}

/// Convert opaque RGBA (w, h even) to planar yuv420p, BT.709 limited range. Luma is
/// ordered-dithered (±½ code value) so smooth gradients survive the 256 → 219 level squeeze;
/// chroma is the 2×2 average.
pub fn rgba_to_yuv420p(rgba: &[u8], w: usize, h: usize, out: &mut [u8]) {
    rgba_to_yuv420p_rect(rgba, w, h, IRect::full(w, h), out)
}

/// Luma dither thresholds in 16.16 (a Bayer 8×8 centred on ½).
const fn dither_table() -> [[i32; 8]; 8] {
    let mut t = [[0i32; 8]; 8];
    let mut r = 0;
    while r < 8 {
        let mut c = 0;
        while c < 8 {
            t[r][c] = ((BAYER8[r][c] as i32 * 2 + 1) * FP) / 128;
            c += 1;
        }
        r += 1;
    }
    t
}
pub(crate) const DITHER: [[i32; 8]; 8] = dither_table();

/// [`rgba_to_yuv420p`] restricted to an even-aligned rectangle of the frame; the rest of `out`
/// is left as it was.
pub fn rgba_to_yuv420p_rect(rgba: &[u8], w: usize, h: usize, r: IRect, out: &mut [u8]) {
    convert_rect(rgba, w, h, r, out, true)
}

/// [`rgba_to_yuv420p_rect`], with AVX2 where the CPU has it when `simd` (the same bytes).
fn convert_rect(rgba: &[u8], w: usize, h: usize, r: IRect, out: &mut [u8], simd: bool) {
    assert!((w | h) & 1 == 0, "frame size must be even");
    assert_eq!(rgba.len(), w * h * 4);
    assert_eq!(out.len(), yuv420p_len(w, h));
    debug_assert!((r.x0 | r.y0 | r.x1 | r.y1) & 1 == 0 && r.x1 <= w && r.y1 <= h);
    let (yp, uv) = out.split_at_mut(w * h);
    let (up, vp) = uv.split_at_mut((w / 2) * (h / 2));
    let cw = w / 2;
    #[cfg(target_arch = "x86_64")]
    let v3 = pulp::x86::V3::try_new().filter(|_| simd);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for y0 in (r.y0..r.y1).step_by(2) {
        let row0 = &rgba[(y0 * w + r.x0) * 4..(y0 * w + r.x1) * 4];
        let row1 = &rgba[((y0 + 1) * w + r.x0) * 4..((y0 + 1) * w + r.x1) * 4];
        let (ya, yb) = yp[y0 * w..(y0 + 2) * w].split_at_mut(w);
        // Luma, row by row, eight pixels at a time with the dither rotated to the first column:
        // fixed-size inner loops the compiler turns into vector code.
        for (out, src, dither) in [
            (&mut ya[r.x0..r.x1], row0, &DITHER[y0 & 7]),
            (&mut yb[r.x0..r.x1], row1, &DITHER[(y0 + 1) & 7]),
        ] {
            let add: [i32; 8] = std::array::from_fn(|k| dither[(r.x0 + k) & 7] + 16 * FP);
            // AVX2 where the CPU has it, for whole groups of 8 (the dither's period)
            #[cfg(target_arch = "x86_64")]
            let done = v3.map_or(0, |v3| crate::simd::luma_v3(v3, src, &add, out));
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            let (out, src) = (&mut out[done..], &src[done * 4..]);
            let mut outs = out.chunks_exact_mut(8);
            let mut pixels = src.chunks_exact(32);
            for (o, p) in (&mut outs).zip(&mut pixels) {
                let o: &mut [u8; 8] = o.try_into().expect("8 pixels");
                let p: &[u8; 32] = p.try_into().expect("8 pixels");
                for k in 0..8 {
                    o[k] = ((YR * p[4 * k] as i32
                        + YG * p[4 * k + 1] as i32
                        + YB * p[4 * k + 2] as i32
                        + add[k])
                        >> 16) as u8;
                }
            }
            let rest = pixels.remainder().chunks_exact(4);
            for ((o, p), a) in outs.into_remainder().iter_mut().zip(rest).zip(add) {
                *o = ((YR * p[0] as i32 + YG * p[1] as i32 + YB * p[2] as i32 + a) >> 16) as u8;
            }
        }
        // Chroma: the 2×2 average (sums of 4 pixels; the extra /4 is folded into the shift).
        let cy = y0 / 2;
        let urow = &mut up[cy * cw + r.x0 / 2..cy * cw + r.x1 / 2];
        let vrow = &mut vp[cy * cw + r.x0 / 2..cy * cw + r.x1 / 2];
        #[cfg(target_arch = "x86_64")]
        let done = v3.map_or(0, |v3| crate::simd::chroma_v3(v3, row0, row1, urow, vrow));
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        let (urow, vrow) = (&mut urow[done..], &mut vrow[done..]);
        let (row0, row1) = (&row0[done * 8..], &row1[done * 8..]);
        let pairs = row0.chunks_exact(8).zip(row1.chunks_exact(8));
        for ((u, v), (p0, p1)) in urow.iter_mut().zip(vrow.iter_mut()).zip(pairs) {
            let p0: &[u8; 8] = p0.try_into().expect("2 pixels");
            let p1: &[u8; 8] = p1.try_into().expect("2 pixels");
            let sum = |k: usize| p0[k] as i32 + p0[k + 4] as i32 + p1[k] as i32 + p1[k + 4] as i32;
            (*u, *v) = chroma_of_sums(sum(0), sum(1), sum(2));
        }
    }
}

/// Cb and Cr of a 2×2 block from the sums of its four pixels' R, G and B (the extra /4 is
/// folded into the shift).
#[inline]
pub(crate) fn chroma_of_sums(sr: i32, sg: i32, sb: i32) -> (u8, u8) {
    (
        ((CBR * sr + CBG * sg + CBB * sb + (128 * 4 * FP) + 2 * FP) >> 18) as u8,
        ((CRR * sr + CRG * sg + CRB * sb + (128 * 4 * FP) + 2 * FP) >> 18) as u8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The background's row fill, a grid cell at a time, gives exactly the bytes of the pixel
    /// at a time loop it replaced: every width's remainder, values clamped at both ends, every
    /// dither row.
    #[test]
    fn background_rows_match_the_pixel_loop_exactly() {
        let mut seed = 0x2545_f491_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 * 1.4 - 0.2 // -0.2..1.2: both clamps are hit
        };
        for w in [1usize, 3, 4, 7, 64, 1918, 1920] {
            let crow: Vec<[f32; 3]> = (0..w / S + 2).map(|_| [next(), next(), next()]).collect();
            for (y, dither) in DITHER_F.iter().enumerate() {
                let mut got = vec![0u8; w * 4];
                fill_row(&crow, dither, &mut got);
                let brow = &BAYER8[y];
                let want: Vec<u8> = (0..w)
                    .flat_map(|x| {
                        let (i, tx) = (x / S, (x % S) as f32 / S as f32);
                        let (a, b) = (crow[i], crow[i + 1]);
                        let d = (brow[x & 7] as f32 + 0.5) / 64.0;
                        let c = |k: usize| {
                            ((a[k] + (b[k] - a[k]) * tx) * 255.0 + d).clamp(0.0, 255.0) as u8
                        };
                        [c(0), c(1), c(2), 255]
                    })
                    .collect();
                assert_eq!(got, want, "width {w}, dither row {y}");
            }
        }
    }

    fn convert(r: u8, g: u8, b: u8) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (w, h) = (16, 16);
        let rgba: Vec<u8> = (0..w * h).flat_map(|_| [r, g, b, 255]).collect();
        let mut out = vec![0u8; yuv420p_len(w, h)];
        rgba_to_yuv420p(&rgba, w, h, &mut out);
        let y = out[..w * h].to_vec();
        let u = out[w * h..w * h + 64].to_vec();
        let v = out[w * h + 64..].to_vec();
        (y, u, v)
    }

    fn within(vals: &[u8], want: i32) {
        for v in vals {
            assert!((*v as i32 - want).abs() <= 1, "{v} vs {want}");
        }
    }

    #[test]
    fn the_simd_conversion_matches_the_scalar_loop_exactly() {
        if !crate::simd::avx2_here() {
            return;
        }
        let (w, h) = (86, 14);
        // every byte value, in every channel, at every column phase (alpha is not read)
        let rgba: Vec<u8> = (0..w * h * 4)
            .map(|i| ((i * 7919 + i / 13) % 256) as u8)
            .collect();
        let rects = [
            IRect::full(w, h),
            IRect {
                x0: 2,
                y0: 2,
                x1: 84,
                y1: 12,
            },
            IRect {
                x0: 6,
                y0: 0,
                x1: 24,
                y1: 4,
            },
            IRect {
                x0: 10,
                y0: 4,
                x1: 12,
                y1: 6,
            },
        ];
        for r in rects {
            let mut want = vec![7u8; yuv420p_len(w, h)];
            let mut got = want.clone();
            convert_rect(&rgba, w, h, r, &mut want, false);
            convert_rect(&rgba, w, h, r, &mut got, true);
            assert!(want == got, "{r:?}");
        }
        // the extremes: black, white, pure primaries
        for px in [
            [0, 0, 0, 255],
            [255; 4],
            [255, 0, 0, 0],
            [0, 255, 0, 9],
            [0, 0, 255, 255],
        ] {
            let rgba: Vec<u8> = (0..w * h).flat_map(|_| px).collect();
            let mut want = vec![0u8; yuv420p_len(w, h)];
            let mut got = want.clone();
            convert_rect(&rgba, w, h, IRect::full(w, h), &mut want, false);
            convert_rect(&rgba, w, h, IRect::full(w, h), &mut got, true);
            assert!(want == got, "{px:?}");
        }
    }

    #[test]
    fn known_colours_map_to_bt709_limited_range() {
        let (y, u, v) = convert(255, 255, 255);
        within(&y, 235);
        within(&u, 128);
        within(&v, 128);
        let (y, u, v) = convert(0, 0, 0);
        within(&y, 16);
        within(&u, 128);
        within(&v, 128);
        // pure red: Y = 16 + 219·0.2126 = 62.6, Cb = 128 − 224·0.1146 = 102.3, Cr = 240
        let (y, u, v) = convert(255, 0, 0);
        within(&y, 63);
        within(&u, 102);
        within(&v, 240);
        // pure green and blue for good measure
        let (y, u, v) = convert(0, 255, 0);
        within(&y, 173);
        within(&u, 42);
        within(&v, 26);
        let (y, u, v) = convert(0, 0, 255);
        within(&y, 32);
        within(&u, 240);
        within(&v, 118);
    }

    #[test]
    fn dithered_luma_averages_to_the_exact_value() {
        // mid grey 128: Y = 16 + 219·128/255 = 125.93; the dither should average to that.
        let (y, _, _) = convert(128, 128, 128);
        let mean = y.iter().map(|v| *v as f64).sum::<f64>() / y.len() as f64;
        assert!((mean - 125.93).abs() < 0.1, "{mean}");
    }

    #[test]
    fn background_is_opaque_and_follows_the_gradient() {
        let mut theme = Theme::default();
        theme.palette.background = vec![Rgb(0, 0, 0), Rgb(255, 255, 255)];
        theme.palette.gradient_angle = 0.0;
        theme.palette.vignette = 0.0;
        let bg = background(&theme, 64, 8);
        assert!(bg.pixels().iter().all(|p| p.alpha() == 255));
        let left = bg.pixel(0, 4).unwrap().red();
        let right = bg.pixel(63, 4).unwrap().red();
        assert!(left < 10 && right > 245, "{left} {right}");
    }
}
