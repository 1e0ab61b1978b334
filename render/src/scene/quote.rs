//! `quote`: a big quotation mark in the accent colour, the quote, then its author and role.

use super::{centre_top, Column, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;

/// A prepared `quote` scene.
pub struct Quote(Layers);

impl Quote {
    /// Lays out the quotation mark, `quote`, `author` and `role` for `ctx`'s frame.
    pub fn new(
        ctx: &mut SceneContext,
        quote: &str,
        author: Option<&str>,
        role: Option<&str>,
    ) -> Quote {
        let (theme, pal, fr, u, (_, sy, _, sh), align) = ctx.setup();
        // The mark is the accent here: no bar or rule.
        let measure = fr.measure(theme);
        let mut col = Column::new(ctx, align, measure);
        col.x -= col.accent.indent * (align == crate::theme::Align::Left) as u8 as f32;
        col.w = measure;

        let mut mark_style = ctx.style(Role::Number, align);
        mark_style.size *= 1.6;
        mark_style.line_height = 1.0;
        mark_style.bold_weight = mark_style.weight;
        let mark_size = mark_style.size;
        let mark = ctx.text_styled("\u{201C}", &mark_style, col.w, mark_size * 1.5, pal.accent);
        // The glyph sits in the top part of its line: let the quote tuck under it.
        let mark_h = mark_size * 0.5;

        let mut tail = Vec::new();
        if let Some(a) = author {
            let mut st = ctx.style(Role::Body, align);
            st.weight = theme.typography.emphasis_weight;
            tail.push(ctx.text_styled(&format!("\u{2014} {a}"), &st, col.w, sh * 0.16, pal.text));
        }
        if let Some(r) = role {
            tail.push(ctx.text(r, Role::Label, align, col.w, sh * 0.14, pal.subtitle));
        }
        let tail_gap = 0.8 * u;
        let tail_h: f32 = tail.iter().map(|l| l.height).sum::<f32>()
            + tail_gap * tail.len().saturating_sub(1) as f32;
        let gap = if tail.is_empty() { 0.0 } else { 3.4 * u };
        let quote_max_h = (sh - mark_h - gap - tail_h).max(sh * 0.35);
        let text = ctx.text(quote, Role::Quote, align, col.w, quote_max_h, pal.text);

        let total = mark_h + text.height + gap + tail_h;
        let top = centre_top(sy, sh, total, fr.height as f32);
        let tm = ctx.timing();
        let stagger = theme.motion.stagger.max(0.12);
        let mut layers = Layers::new(ctx);
        // The mark's layout box starts a little above the glyph's ink.
        let mark_x = col.x_of(mark.width)
            - if align == crate::theme::Align::Left {
                0.06 * mark_size
            } else {
                0.0
            };
        layers.push(Item::text(mark, mark_x, top - 0.12 * mark_size, tm.at(0.0)).travel(0.5));
        let quote_y = (top + mark_h).round();
        let x = col.x_of(text.width);
        let mut y = quote_y + text.height + gap;
        layers.push(Item::text(text, x, quote_y, tm.at(0.1)));
        let mut delay = 0.1 + stagger * 2.0;
        for l in tail {
            let x = col.x_of(l.width);
            let h = l.height;
            layers.push(Item::text(l, x, y.round(), tm.at(delay)).travel(0.7));
            y += h + tail_gap;
            delay += stagger;
        }
        Quote(layers)
    }
}

impl SceneDraw for Quote {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.0.draw(canvas, t)
    }
}
