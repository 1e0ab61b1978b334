//! `stats`: 1–4 numbers that count up from 0 with the theme's easing, each with a label below;
//! side by side in landscape, stacked in portrait.
//!
//! Only the digits change from frame to frame, so the digits, separators and each stat's prefix
//! and suffix are rasterised once as glyph layers and every frame composes the current number
//! from them. Digits sit in equal slots (tabular figures), so a number never jitters.

use std::collections::HashMap;

use vidbuilder_domain::spec::Stat;

use super::{centre_top, inks, trim, Column, Grow, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;
use crate::text::{fit, rasterize, Span, TextLayer, TextStyle};
use crate::theme::{Align, Easing};

/// `v` with `decimals` digits after the point and `,` between thousands; no `-0`.
pub(super) fn format_number(v: f64, decimals: u8) -> String {
    let s = format!("{:.*}", decimals as usize, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s.as_str(), None),
    };
    let mut out = String::with_capacity(s.len() + int.len() / 3 + 1);
    if v < 0.0 && s.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        out.push('-');
    }
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// A rasterised piece of the number line (trimmed to its ink, which starts at (`dx`, `dy`) from
/// the pen position at the top of the line) and how far it advances the pen.
struct Glyph {
    pixmap: tiny_skia::Pixmap,
    dx: f32,
    dy: f32,
    advance: f32,
}

struct Counter {
    value: f64,
    decimals: u8,
    prefix: Option<Glyph>,
    suffix: Option<Glyph>,
    /// Centre x and top y of the number line at rest.
    cx: f32,
    y: f32,
    /// Entrance start, and when counting ends.
    at: f32,
    count: f32,
}

/// A prepared `stats` scene.
pub struct Stats {
    layers: Layers,
    glyphs: HashMap<char, Glyph>,
    /// Width of a digit slot: the widest digit.
    slot: f32,
    counters: Vec<Counter>,
    easing: Easing,
}

fn glyph(ctx: &mut SceneContext, text: &str, style: &TextStyle) -> Glyph {
    let spans = [Span {
        text: text.to_string(),
        bold: true,
        italic: false,
        highlight: false,
    }];
    let fitted = fit(ctx.fonts, &spans, style, 1.0e5, 1.0e5);
    let advance = fitted.max_line_w;
    let number = ctx.theme.palette.emphasis.unwrap_or(ctx.theme.palette.text);
    let shadow = ctx.shadow();
    let layer = rasterize(
        ctx.fonts,
        ctx.swash,
        &fitted,
        &inks(ctx.theme, number),
        shadow,
    );
    let pad = layer.pad as f32;
    let (pixmap, cx, cy) = trim(layer.pixmap);
    Glyph {
        pixmap,
        dx: cx - pad,
        dy: cy - pad,
        advance,
    }
}

/// Width of `text` set on one line in `style`.
fn line_width(ctx: &mut SceneContext, text: &str, style: &TextStyle) -> f32 {
    let spans = [Span {
        text: text.to_string(),
        bold: true,
        italic: false,
        highlight: false,
    }];
    fit(ctx.fonts, &spans, style, 1.0e5, 1.0e5).max_line_w
}

impl Stats {
    /// Lays out the heading and `stats`, rasterising the glyphs the counters need, for `ctx`'s frame.
    pub fn new(ctx: &mut SceneContext, heading: Option<&str>, stats: &[Stat]) -> Stats {
        let (theme, pal, fr, u, (sx, sy, sw, sh), align) = ctx.setup();
        let portrait = fr.portrait();
        let n = stats.len().max(1);
        let col = Column::new(ctx, align, fr.measure(theme));

        let head = heading.map(|h| ctx.text(h, Role::Heading, align, col.w, sh * 0.22, pal.text));
        let head_h = head.as_ref().map_or(0.0, |l| l.height);
        let head_gap = if head.is_some() { 4.5 * u } else { 0.0 };

        // Cells: columns across the safe width, or rows down it.
        let cell_gap = if portrait { 4.0 * u } else { 4.5 * u };
        let cell_w = if portrait {
            sw
        } else {
            (sw - cell_gap * (n - 1) as f32) / n as f32
        };

        // One number size for all: the nominal one, shrunk so that the widest final value fits.
        let mut style = ctx.style(Role::Number, Align::Left);
        if !portrait {
            style.size *= [1.0, 1.0, 0.86, 0.74][n - 1];
        }
        let finals: Vec<String> = stats
            .iter()
            .map(|s| {
                format!(
                    "{}{}{}",
                    s.prefix.as_deref().unwrap_or(""),
                    format_number(s.value, s.decimals),
                    s.suffix.as_deref().unwrap_or("")
                )
            })
            .collect();
        let mut widest: f32 = 1.0;
        for f in &finals {
            widest = widest.max(line_width(ctx, f, &style));
        }
        // Digits are set in slots as wide as the widest digit: measure that way too.
        let digits_w = line_width(ctx, "0", &style).max(line_width(ctx, "8", &style));
        let slack = 1.0 + 0.08 * digits_w / widest.max(1.0);
        style.size *= (cell_w * 0.94 / (widest * slack)).min(1.0);
        let label_style = ctx.style(Role::Label, Align::Center);
        let labels: Vec<TextLayer> = stats
            .iter()
            .map(|s| {
                ctx.text_styled(
                    &s.label,
                    &label_style,
                    cell_w,
                    (sh * if portrait { 0.12 } else { 0.22 }).max(label_style.size * 1.4),
                    pal.subtitle,
                )
            })
            .collect();
        let rule_gap = 2.2 * u;
        let rule_h = (0.45 * u).max(1.0);
        let label_gap = 1.6 * u;
        if portrait {
            // Rows share the height with the labels; keep numbers from crowding them.
            let row_h = (sh - head_h - head_gap) / n as f32;
            style.size = style.size.min(row_h * 0.55);
            // and every row fits in the safe box (a 4:5 frame is not as tall as the reel)
            let fixed: f32 = labels
                .iter()
                .map(|l| rule_gap + rule_h + label_gap + l.height)
                .sum::<f32>()
                + cell_gap * (n - 1) as f32;
            let per_number = (sh - head_h - head_gap - fixed) / n as f32;
            style.size = style
                .size
                .min((per_number - 1.0).max(u) / style.line_height);
        }

        let mut glyphs = HashMap::new();
        for ch in "0123456789,.-".chars() {
            glyphs.insert(ch, glyph(ctx, &ch.to_string(), &style));
        }
        let slot = ('0'..='9').map(|c| glyphs[&c].advance).fold(0.0, f32::max);
        // the line's height: the layout box of a digit
        let num_h = (style.size * style.line_height).ceil();

        let cell_h = |label: &TextLayer| num_h + rule_gap + rule_h + label_gap + label.height;
        let cells_h = if portrait {
            labels.iter().map(cell_h).sum::<f32>() + cell_gap * (n - 1) as f32
        } else {
            labels.iter().map(cell_h).fold(0.0, f32::max)
        };

        let total = head_h + head_gap + cells_h;
        let top = centre_top(sy, sh, total, fr.height as f32);
        let tm = ctx.timing();
        let stagger = theme.motion.stagger.max(0.1);
        let mut layers = Layers::new(ctx);
        let mut delay = 0.0;
        if let Some(h) = head {
            let x = col.x_of(h.width);
            layers.push(Item::text(h, x, top, tm.at(delay)));
            delay += 0.1 + stagger;
        }
        let cells_top = (top + head_h + head_gap).round();
        let count = (ctx.duration * 0.5).clamp(0.6, 2.5);
        let easing = match theme.motion.easing {
            // a count that overshoots its value reads as a glitch
            Easing::EaseOutBack => Easing::EaseOutCubic,
            e => e,
        };
        let mut counters = Vec::with_capacity(n);
        let mut y = cells_top;
        for (k, (s, label)) in stats.iter().zip(labels).enumerate() {
            let at = tm.at(delay + k as f32 * stagger);
            let cx = if portrait {
                fr.width as f32 / 2.0
            } else {
                sx + k as f32 * (cell_w + cell_gap) + cell_w / 2.0
            };
            let cy = if portrait { y } else { cells_top };
            let rule_w = 5.0 * u;
            layers.push(Item::rect(
                [cx - rule_w / 2.0, cy + num_h + rule_gap, rule_w, rule_h],
                rule_h / 2.0,
                pal.accent,
                Grow::Sideways,
                at + 0.15,
            ));
            let h = cell_h(&label);
            let lx = (cx - label.width / 2.0).round();
            let ly = (cy + num_h + rule_gap + rule_h + label_gap).round();
            layers.push(Item::text(label, lx, ly, at + 0.08).travel(0.7));
            let prefix = s.prefix.as_deref().map(|p| glyph(ctx, p, &style));
            let suffix = s.suffix.as_deref().map(|p| glyph(ctx, p, &style));
            // Count while visible, done well before the scene ends.
            let latest = (ctx.duration * 0.8 - at).max(0.05);
            counters.push(Counter {
                value: s.value,
                decimals: s.decimals,
                prefix,
                suffix,
                cx,
                y: cy,
                at,
                count: count.min(latest),
            });
            y += h + cell_gap;
        }
        Stats {
            layers,
            glyphs,
            slot,
            counters,
            easing,
        }
    }

    fn advance(&self, ch: char) -> f32 {
        if ch.is_ascii_digit() {
            self.slot
        } else {
            self.glyphs.get(&ch).map_or(0.0, |g| g.advance)
        }
    }
}

impl SceneDraw for Stats {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.layers.draw(canvas, t);
        let exit = self.layers.exit(t);
        if exit.0 <= 0.0 {
            return;
        }
        for c in &self.counters {
            let Some((dx, dy, op, _)) = self.layers.placement(t, c.at, 1.0, exit) else {
                continue;
            };
            let x = (t - c.at) / c.count;
            let p = if x <= 0.0 {
                0.0
            } else {
                self.easing.apply(x) as f64
            };
            let text = format_number(c.value * p, c.decimals);
            let width = c.prefix.as_ref().map_or(0.0, |g| g.advance)
                + text.chars().map(|ch| self.advance(ch)).sum::<f32>()
                + c.suffix.as_ref().map_or(0.0, |g| g.advance);
            let mut pen = (c.cx - width / 2.0 + dx).round();
            let y = c.y + dy;
            let mut put = |g: &Glyph, slot: f32, canvas: &mut Canvas| {
                let off = ((slot - g.advance) / 2.0).round();
                canvas.layer(&g.pixmap, pen + off + g.dx, y + g.dy, op);
                pen += slot;
            };
            if let Some(g) = &c.prefix {
                put(g, g.advance, canvas);
            }
            for ch in text.chars() {
                if let Some(g) = self.glyphs.get(&ch) {
                    put(g, self.advance(ch), canvas);
                }
            }
            if let Some(g) = &c.suffix {
                put(g, g.advance, canvas);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(format_number(0.0, 0), "0");
        assert_eq!(format_number(1234567.0, 0), "1,234,567");
        assert_eq!(format_number(999.5, 0), "1,000");
        assert_eq!(format_number(12.346, 2), "12.35");
        assert_eq!(format_number(-1500.26, 1), "-1,500.3");
        assert_eq!(format_number(-0.001, 1), "0.0");
        assert_eq!(format_number(100.0, 0), "100");
        assert_eq!(format_number(0.5, 3), "0.500");
    }
}
