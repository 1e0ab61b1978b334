//! Text: inline markdown, shrink-to-fit layout with cosmic-text, and rasterising a laid-out
//! block ONCE into a cached premultiplied RGBA layer (with an optional soft shadow).

use cosmic_text::{
    Attrs, Buffer, Family, FontSystem, Metrics, Shaping, Style, SwashCache, SwashContent, Weight,
    Wrap,
};
use tiny_skia::Pixmap;

use super::theme::{Align, Rgb};

/// A run of text with one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The characters, markup removed.
    pub text: String,
    /// Inside `**bold**`.
    pub bold: bool,
    /// Inside `*italic*` or `_italic_`.
    pub italic: bool,
    /// `==highlight==`: drawn in the theme's accent colour.
    pub highlight: bool,
}

impl Span {
    /// Index into the colours given to [`rasterize`]: 0 regular, 1 bold, 2 highlight (the
    /// highlight colour wins over bold; the weight still follows `bold`).
    pub fn color_index(&self) -> usize {
        if self.highlight {
            2
        } else {
            self.bold as usize
        }
    }
}

/// Parse inline markdown: `**bold**` / `__bold__`, `*italic*` / `_italic_`, `==highlight==`
/// (the theme's accent colour), and `\*`, `\_`, `\=` escapes. Unmatched markers stay literal;
/// `_` inside a word (snake_case) stays literal, and so does a lone `=` (`a = b`).
pub fn parse_inline(s: &str) -> Vec<Span> {
    let c: Vec<char> = s.chars().collect();
    let n = c.len();
    let mut spans: Vec<Span> = Vec::new();
    let mut cur = String::new();
    let (mut bold, mut italic, mut mark) = (false, false, false);

    fn flush(spans: &mut Vec<Span>, cur: &mut String, style: (bool, bool, bool)) {
        if cur.is_empty() {
            return;
        }
        let (bold, italic, highlight) = style;
        match spans.last_mut() {
            Some(last)
                if last.bold == bold && last.italic == italic && last.highlight == highlight =>
            {
                last.text.push_str(cur)
            }
            _ => spans.push(Span {
                text: cur.clone(),
                bold,
                italic,
                highlight,
            }),
        }
        cur.clear();
    }
    let ws = |i: Option<usize>| i.and_then(|i| c.get(i)).is_none_or(|ch| ch.is_whitespace());
    // Is there a closing `len`-long run of `m` at or after `from` (preceded by non-space)?
    let has_closer = |from: usize, m: char, len: usize| {
        let mut j = from;
        while j + len <= n {
            if (0..len).all(|k| c[j + k] == m) && j > 0 && !c[j - 1].is_whitespace() {
                let run_end = (j..n).take_while(|&k| c[k] == m).count();
                if len == 2 || run_end != 2 {
                    return true;
                }
            }
            j += 1;
        }
        false
    };

    let mut i = 0;
    while i < n {
        let ch = c[i];
        if ch == '\\' && i + 1 < n && matches!(c[i + 1], '*' | '_' | '=' | '\\') {
            cur.push(c[i + 1]);
            i += 2;
            continue;
        }
        if ch == '=' && i + 1 < n && c[i + 1] == '=' {
            // `==` only ever means highlight (no single-`=` form), so a run of other lengths
            // (`===`, `a == b` without a closer) stays literal.
            let run = (i..n).take_while(|&k| c[k] == '=').count();
            let can_close = mark && run == 2 && !ws(i.checked_sub(1));
            let can_open = !mark && run == 2 && !ws(Some(i + 2)) && has_closer(i + 3, '=', 2);
            if can_close || can_open {
                flush(&mut spans, &mut cur, (bold, italic, mark));
                mark = !mark;
                i += 2;
                continue;
            }
            for _ in 0..run {
                cur.push('=');
            }
            i += run;
            continue;
        }
        if ch == '*' || ch == '_' {
            let run = (i..n).take_while(|&k| c[k] == ch).count();
            let len = if run >= 2 { 2 } else { 1 };
            let prev_alnum = i > 0 && c[i - 1].is_alphanumeric();
            let next_alnum = c.get(i + len).is_some_and(|x| x.is_alphanumeric());
            let intraword = ch == '_' && prev_alnum && next_alnum;
            let open = if len == 2 { bold } else { italic };
            let can_close = open && !ws(i.checked_sub(1));
            let can_open = !open && !ws(Some(i + len)) && has_closer(i + len + 1, ch, len);
            if !intraword && (can_close || can_open) {
                flush(&mut spans, &mut cur, (bold, italic, mark));
                if len == 2 {
                    bold = !bold;
                } else {
                    italic = !italic;
                }
                i += len;
                continue;
            }
            for _ in 0..len {
                cur.push(ch);
            }
            i += len;
            continue;
        }
        cur.push(ch);
        i += 1;
    }
    flush(&mut spans, &mut cur, (bold, italic, mark));
    spans
}

/// How a block of text should be set.
#[derive(Debug, Clone)]
pub struct TextStyle {
    /// Font family name.
    pub family: String,
    /// Preferred font size in px (shrunk if the text does not fit).
    pub size: f32,
    /// Line height as a multiple of the size.
    pub line_height: f32,
    /// Weight of regular spans (100–900).
    pub weight: u16,
    /// Weight of bold spans.
    pub bold_weight: u16,
    /// Horizontal alignment of the lines.
    pub align: Align,
    /// Soft limit: shrink (down to 55% of `size`) to keep to this many lines.
    pub max_lines: usize,
}

/// A shaped, wrapped block of text that fits its box.
pub struct FittedText {
    /// The shaped, laid-out text.
    pub buffer: Buffer,
    /// The font size chosen, in px (≤ the style's size).
    pub size: f32,
    /// The layout width (≤ the box width; narrower when lines were balanced).
    pub width: f32,
    /// Height of the laid-out block, in px.
    pub height: f32,
    /// Number of lines after wrapping.
    pub lines: usize,
    /// Widest line.
    pub max_line_w: f32,
}

fn measure(buffer: &Buffer) -> (usize, f32, f32) {
    let (mut lines, mut h, mut w) = (0usize, 0f32, 0f32);
    for run in buffer.layout_runs() {
        lines += 1;
        h = h.max(run.line_top + run.line_height);
        w = w.max(run.line_w);
    }
    (lines, h, w)
}

/// Shape `spans` and shrink/wrap them until they fit in `max_w` × `max_h`; then balance the
/// line lengths (a narrower measure with the same line count, like a designer would set it).
pub fn fit(
    fs: &mut FontSystem,
    spans: &[Span],
    style: &TextStyle,
    max_w: f32,
    max_h: f32,
) -> FittedText {
    let max_w = max_w.max(8.0);
    let max_h = max_h.max(4.0);
    let mut size = style.size.max(4.0);
    let min_soft = style.size * 0.55;
    let family = style.family.as_str();
    let attrs_for = |s: &Span| {
        let mut a = Attrs::new()
            .family(Family::Name(family))
            .weight(Weight(if s.bold {
                style.bold_weight
            } else {
                style.weight
            }));
        if s.italic {
            a = a.style(Style::Italic);
        }
        a.metadata(s.color_index())
    };
    let default = Attrs::new()
        .family(Family::Name(family))
        .weight(Weight(style.weight));
    let mut buffer = Buffer::new(fs, Metrics::new(size, size * style.line_height));
    // Whole words first: a word is only broken inside when no size down to `word_floor` fits.
    buffer.set_wrap(fs, Wrap::Word);
    buffer.set_rich_text(
        fs,
        spans.iter().map(|s| (s.text.as_str(), attrs_for(s))),
        default,
        Shaping::Advanced,
    );
    let cosmic_align = match style.align {
        Align::Left => None,
        Align::Center => Some(cosmic_text::Align::Center),
    };
    for line in buffer.lines.iter_mut() {
        line.set_align(cosmic_align);
    }

    let relayout = |buffer: &mut Buffer, fs: &mut FontSystem, size: f32, w: f32| {
        buffer.set_metrics_and_size(
            fs,
            Metrics::new(size, (size * style.line_height).ceil()),
            Some(w),
            None,
        );
        buffer.shape_until_scroll(fs, false);
        measure(buffer)
    };

    let word_floor = (style.size * 0.4).max(4.0);
    let mut by_glyph = false;
    let (mut lines, mut h, mut w);
    loop {
        (lines, h, w) = relayout(&mut buffer, fs, size, max_w);
        let fits = h <= max_h && w <= max_w + 0.5;
        let lines_ok = lines <= style.max_lines || size <= min_soft;
        if (fits && lines_ok) || size <= 4.0 {
            break;
        }
        if !by_glyph && w > max_w + 0.5 && size * 0.94 < word_floor {
            // A word wider than the box even this small: allow breaking inside words.
            by_glyph = true;
            buffer.set_wrap(fs, Wrap::WordOrGlyph);
            continue;
        }
        size = (size * 0.94).max(4.0);
    }

    // Balance: the narrowest width that keeps the same number of lines.
    let mut width = max_w;
    if lines >= 2 {
        let (mut lo, mut hi) = (w * 0.5, max_w);
        for _ in 0..10 {
            let mid = (lo + hi) / 2.0;
            let (l, _, lw) = relayout(&mut buffer, fs, size, mid);
            // A whole word wider than `mid` overflows instead of adding a line: too narrow too.
            if l > lines || lw > mid + 0.5 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        width = (hi + 1.0).min(max_w);
        (lines, h, w) = relayout(&mut buffer, fs, size, width);
    } else {
        // One line: the layout is exactly as wide as the text.
        width = width.min(w.ceil() + 1.0);
        (lines, h, w) = relayout(&mut buffer, fs, size, width);
    }
    FittedText {
        buffer,
        size,
        width,
        height: h,
        lines,
        max_line_w: w,
    }
}

/// A soft drop shadow under text.
#[derive(Debug, Clone, Copy)]
pub struct Shadow {
    /// Shadow colour.
    pub color: Rgb,
    /// Shadow opacity, 0..1.
    pub opacity: f32,
    /// Blur radius in px (≈ Gaussian sigma).
    pub blur: f32,
    /// Vertical offset in px.
    pub dy: f32,
}

/// Rasterised text. Layout coordinate (0, 0) is at pixel (`pad`, `pad`) of `pixmap`.
pub struct TextLayer {
    /// The premultiplied RGBA text (and shadow), padded on every side.
    pub pixmap: Pixmap,
    /// Padding around the layout box, in px (room for the shadow and overhanging glyphs).
    pub pad: i32,
    /// Layout box width, in px (without padding).
    pub width: f32,
    /// Layout box height, in px (without padding).
    pub height: f32,
}

/// Rasterise `text` once. `colors[metadata]` colours each span (0 = regular, 1 = bold,
/// 2 = highlight; see [`Span::color_index`]).
pub fn rasterize(
    fs: &mut FontSystem,
    cache: &mut SwashCache,
    text: &FittedText,
    colors: &[Rgb; 3],
    shadow: Option<Shadow>,
) -> TextLayer {
    let shadow = shadow.filter(|s| s.opacity > 0.0);
    let sh_extent = shadow.map(|s| s.blur * 3.0 + s.dy.abs()).unwrap_or(0.0);
    let pad = (sh_extent + text.size * 0.35).ceil() as i32 + 2;
    let lw = text.width.ceil() as i32 + 2 * pad;
    let lh = text.height.ceil() as i32 + 2 * pad;
    let (lw, lh) = (lw.max(1) as usize, lh.max(1) as usize);

    let mut rgba = vec![0u8; lw * lh * 4];
    let mut mask = vec![0u8; lw * lh];
    for run in text.buffer.layout_runs() {
        for glyph in run.glyphs {
            let pg = glyph.physical((pad as f32, 0.0), 1.0);
            let color = colors[glyph.metadata.min(2)];
            let Some(img) = cache.get_image(fs, pg.cache_key) else {
                continue;
            };
            let x0 = pg.x + img.placement.left;
            let y0 = pad + run.line_y as i32 + pg.y - img.placement.top;
            let (gw, gh) = (img.placement.width as i32, img.placement.height as i32);
            for gy in 0..gh {
                let y = y0 + gy;
                if y < 0 || y >= lh as i32 {
                    continue;
                }
                for gx in 0..gw {
                    let x = x0 + gx;
                    if x < 0 || x >= lw as i32 {
                        continue;
                    }
                    let gi = (gy * gw + gx) as usize;
                    let (r, g, b, a) = match img.content {
                        SwashContent::Mask => (color.0, color.1, color.2, img.data[gi]),
                        SwashContent::Color => {
                            let p = &img.data[gi * 4..gi * 4 + 4];
                            (p[0], p[1], p[2], p[3])
                        }
                        SwashContent::SubpixelMask => {
                            let p = &img.data[gi * 4..gi * 4 + 4];
                            let a = ((p[0] as u16 + p[1] as u16 + p[2] as u16) / 3) as u8;
                            (color.0, color.1, color.2, a)
                        }
                    };
                    if a == 0 {
                        continue;
                    }
                    let pi = y as usize * lw + x as usize;
                    mask[pi] = mask[pi].saturating_add(a);
                    blend_over(&mut rgba[pi * 4..pi * 4 + 4], r, g, b, a, 255);
                }
            }
        }
    }

    let out = if let Some(s) = shadow {
        let mut blurred = mask;
        let r = (s.blur / 1.7).round().max(1.0) as usize;
        for _ in 0..3 {
            box_blur_h(&mut blurred, lw, lh, r);
            box_blur_v(&mut blurred, lw, lh, r);
        }
        let dy = s.dy.round() as isize;
        let op = (s.opacity.clamp(0.0, 1.0) * 255.0).round() as u16;
        let mut out = vec![0u8; lw * lh * 4];
        for y in 0..lh {
            let sy = y as isize - dy;
            for x in 0..lw {
                let i = y * lw + x;
                let sa = if sy >= 0 && (sy as usize) < lh {
                    blurred[sy as usize * lw + x]
                } else {
                    0
                };
                let a = (sa as u16 * op / 255) as u8;
                let o = &mut out[i * 4..i * 4 + 4];
                if a > 0 {
                    o[0] = mul255(s.color.0, a);
                    o[1] = mul255(s.color.1, a);
                    o[2] = mul255(s.color.2, a);
                    o[3] = a;
                }
                // text (premultiplied) over shadow
                let t = &rgba[i * 4..i * 4 + 4];
                if t[3] > 0 {
                    let inv = 255 - t[3] as u16;
                    for k in 0..4 {
                        o[k] = (t[k] as u16 + (o[k] as u16 * inv + 127) / 255).min(255) as u8;
                    }
                }
            }
        }
        out
    } else {
        rgba
    };
    let pixmap = Pixmap::from_vec(
        out,
        tiny_skia::IntSize::from_wh(lw as u32, lh as u32).expect("non-zero layer"),
    )
    .expect("layer buffer size");
    TextLayer {
        pixmap,
        pad,
        width: text.width,
        height: text.height,
    }
}

#[inline]
fn mul255(c: u8, a: u8) -> u8 {
    ((c as u16 * a as u16 + 127) / 255) as u8
}

/// Source-over of a straight-alpha colour (alpha `a`, scaled by `op`) onto a premultiplied pixel.
#[inline]
fn blend_over(d: &mut [u8], r: u8, g: u8, b: u8, a: u8, op: u8) {
    let a = mul255(a, op);
    let inv = 255 - a as u16;
    d[0] = (mul255(r, a) as u16 + (d[0] as u16 * inv + 127) / 255).min(255) as u8;
    d[1] = (mul255(g, a) as u16 + (d[1] as u16 * inv + 127) / 255).min(255) as u8;
    d[2] = (mul255(b, a) as u16 + (d[2] as u16 * inv + 127) / 255).min(255) as u8;
    d[3] = (a as u16 + (d[3] as u16 * inv + 127) / 255).min(255) as u8;
}

fn box_blur_h(buf: &mut [u8], w: usize, h: usize, r: usize) {
    let mut line = vec![0u8; w];
    let div = (2 * r + 1) as u32;
    for y in 0..h {
        let row = &mut buf[y * w..(y + 1) * w];
        line.copy_from_slice(row);
        let mut acc: u32 = line[..=r.min(w - 1)].iter().map(|&v| v as u32).sum();
        for x in 0..w {
            row[x] = ((acc + div / 2) / div) as u8;
            let add = x + r + 1;
            if add < w {
                acc += line[add] as u32;
            }
            if x >= r {
                acc -= line[x - r] as u32;
            }
        }
    }
}

fn box_blur_v(buf: &mut [u8], w: usize, h: usize, r: usize) {
    let mut col = vec![0u8; h];
    let div = (2 * r + 1) as u32;
    for x in 0..w {
        for y in 0..h {
            col[y] = buf[y * w + x];
        }
        let mut acc: u32 = col[..=r.min(h - 1)].iter().map(|&v| v as u32).sum();
        for y in 0..h {
            buf[y * w + x] = ((acc + div / 2) / div) as u8;
            let add = y + r + 1;
            if add < h {
                acc += col[add] as u32;
            }
            if y >= r {
                acc -= col[y - r] as u32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(text: &str, bold: bool, italic: bool) -> Span {
        Span {
            text: text.into(),
            bold,
            italic,
            highlight: false,
        }
    }

    fn hl(text: &str, bold: bool) -> Span {
        Span {
            highlight: true,
            ..sp(text, bold, false)
        }
    }

    #[test]
    fn markdown_highlight_uses_double_equals() {
        assert_eq!(
            parse_inline("Grow ==faster== now"),
            vec![
                sp("Grow ", false, false),
                hl("faster", false),
                sp(" now", false, false)
            ]
        );
        assert_eq!(
            parse_inline("**==big==** win"),
            vec![hl("big", true), sp(" win", false, false)]
        );
        // Comparisons, lone and spaced markers, unclosed runs and escapes stay literal.
        for lit in ["a == b", "x = 1", "==open", "a === b === c", "== spaced =="] {
            assert_eq!(parse_inline(lit), vec![sp(lit, false, false)], "{lit}");
        }
        assert_eq!(
            parse_inline(r"\==not== it"),
            vec![sp("==not== it", false, false)]
        );
        assert_eq!(hl("x", true).color_index(), 2);
        assert_eq!(sp("x", true, false).color_index(), 1);
    }

    #[test]
    fn markdown_bold_and_italic() {
        assert_eq!(
            parse_inline("Welcome to **VidBuilder**"),
            vec![
                sp("Welcome to ", false, false),
                sp("VidBuilder", true, false)
            ]
        );
        assert_eq!(
            parse_inline("a *b* __c__ ***d***"),
            vec![
                sp("a ", false, false),
                sp("b", false, true),
                sp(" ", false, false),
                sp("c", true, false),
                sp(" ", false, false),
                sp("d", true, true)
            ]
        );
        // Unmatched, spaced, escaped and intra-word markers stay literal.
        assert_eq!(
            parse_inline("2 * 3 * 4"),
            vec![sp("2 * 3 * 4", false, false)]
        );
        assert_eq!(
            parse_inline("**open only"),
            vec![sp("**open only", false, false)]
        );
        assert_eq!(
            parse_inline(r"\*not\* it"),
            vec![sp("*not* it", false, false)]
        );
        assert_eq!(
            parse_inline("snake_case_name"),
            vec![sp("snake_case_name", false, false)]
        );
        assert_eq!(parse_inline(""), vec![]);
    }

    #[test]
    fn long_title_shrinks_and_wraps_inside_the_box() {
        let catalog = super::super::Catalog::load(None).unwrap();
        let mut fs = catalog.font_system();
        let style = TextStyle {
            family: "Inter".into(),
            size: 100.0,
            line_height: 1.1,
            weight: 400,
            bold_weight: 700,
            align: Align::Center,
            max_lines: 3,
        };
        let long = "Welcome to **VidBuilder**, the self-hostable video generation API that turns a JSON spec into a polished MP4 with music, themes and reels — and supercalifragilisticexpialidociouslylongwordswithoutbreaks too";
        let (bw, bh) = (800.0, 300.0);
        let t = fit(&mut fs, &parse_inline(long), &style, bw, bh);
        assert!(t.size < 100.0, "should shrink, size {}", t.size);
        assert!(t.lines >= 2);
        assert!(
            t.max_line_w <= bw + 0.5,
            "line {} wider than box {bw}",
            t.max_line_w
        );
        assert!(t.height <= bh, "height {} taller than box {bh}", t.height);
        assert!(t.width <= bw);
        // Every glyph's ink is inside the box (plus the layer padding).
        let mut swash = SwashCache::new();
        let layer = rasterize(
            &mut fs,
            &mut swash,
            &t,
            &[Rgb(255, 255, 255), Rgb(255, 0, 0), Rgb(0, 0, 255)],
            None,
        );
        let (w, h) = (layer.pixmap.width() as i32, layer.pixmap.height() as i32);
        let slack = 0.3 * t.size; // ascender/descender overhang beyond the line box
        for y in 0..h {
            for x in 0..w {
                if layer.pixmap.pixel(x as u32, y as u32).unwrap().alpha() > 0 {
                    let (lx, ly) = ((x - layer.pad) as f32, (y - layer.pad) as f32);
                    assert!(lx >= -2.0 && lx <= bw + 2.0, "ink at x {lx}");
                    assert!(ly >= -slack && ly <= bh + slack, "ink at y {ly}");
                }
            }
        }
        // A short title keeps its preferred size and sits on one line.
        let t = fit(&mut fs, &parse_inline("Hi **there**"), &style, bw, bh);
        assert_eq!((t.size, t.lines), (100.0, 1));
    }

    #[test]
    fn bold_spans_use_the_bold_face_and_colour() {
        let catalog = super::super::Catalog::load(None).unwrap();
        let mut fs = catalog.font_system();
        let style = TextStyle {
            family: "Inter".into(),
            size: 60.0,
            line_height: 1.1,
            weight: 400,
            bold_weight: 700,
            align: Align::Left,
            max_lines: 2,
        };
        let t = fit(&mut fs, &parse_inline("ab **ab**"), &style, 1000.0, 200.0);
        let mut weights = Vec::new();
        for run in t.buffer.layout_runs() {
            for g in run.glyphs {
                let face = fs.db().face(g.font_id).unwrap();
                weights.push((g.metadata, face.weight.0));
            }
        }
        assert!(
            weights.contains(&(0, 400)) && weights.contains(&(1, 700)),
            "{weights:?}"
        );
        let mut swash = SwashCache::new();
        let layer = rasterize(
            &mut fs,
            &mut swash,
            &t,
            &[Rgb(255, 255, 255), Rgb(255, 0, 0), Rgb(0, 0, 255)],
            None,
        );
        let red = layer
            .pixmap
            .pixels()
            .iter()
            .filter(|p| p.alpha() == 255 && p.red() == 255 && p.green() == 0)
            .count();
        let white = layer
            .pixmap
            .pixels()
            .iter()
            .filter(|p| p.alpha() == 255 && p.green() == 255)
            .count();
        assert!(red > 50 && white > 50, "red {red} white {white}");
    }
}
