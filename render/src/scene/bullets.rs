//! `bullet-list`: an optional heading, then items revealed one by one across the scene, each
//! with a dot in the accent colour.

use super::{centre_top, Column, Grow, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;
use crate::theme::Align;

/// A prepared `bullet-list` scene.
pub struct BulletList(Layers);

/// When each of `n` items starts to enter: after the heading, spread over the first ~60% of
/// the scene, at least the theme's stagger apart and at most 1.6 s apart, all in before the
/// scene starts to fade out.
pub(crate) fn reveal_times(first: f32, n: usize, duration: f32, stagger: f32) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    let spread = (duration * 0.6 - first) / n as f32;
    let latest = ((duration * 0.72 - first) / n as f32).max(0.04);
    let step = spread.max(stagger).min(1.6).min(latest);
    (0..n).map(|k| first + k as f32 * step).collect()
}

impl BulletList {
    /// Lays out the heading and `items` for `ctx`'s frame.
    pub fn new(ctx: &mut SceneContext, heading: Option<&str>, items: &[String]) -> BulletList {
        let (theme, pal, fr, u, (_, sy, _, sh), align) = ctx.setup();
        let col = Column::new(ctx, align, fr.measure(theme));
        let above = col.accent.above;

        let head = heading.map(|h| ctx.text(h, Role::Heading, align, col.w, sh * 0.26, pal.text));
        let head_h = head.as_ref().map_or(0.0, |l| l.height);
        let gap = if head.is_some() {
            3.0 * u + col.accent.rule
        } else {
            col.accent.rule
        };

        // One size for every item: the largest at which each fits its share of the height.
        let n = items.len().max(1);
        let item_gap = if fr.portrait() { 2.2 * u } else { 1.7 * u };
        let avail = (sh - above - head_h - gap).max(sh * 0.35);
        let budget = (avail - item_gap * (n - 1) as f32) / n as f32;
        let mut style = ctx.style(Role::Body, Align::Left);
        style.size *= 1.12;
        style.max_lines = 3;
        let dot = |size: f32| (0.34 * size).max(2.0);
        let indent = |size: f32| dot(size) + 0.9 * size;
        let text_w = |size: f32| col.w - indent(size);
        let size = items
            .iter()
            .map(|it| ctx.fitted_size(it, &style, text_w(style.size), budget))
            .fold(style.size, f32::min);
        style.size = size;
        let line_h = (size * style.line_height).ceil();
        let layers_txt: Vec<_> = items
            .iter()
            .map(|it| ctx.text_styled(it, &style, text_w(size), budget.max(line_h), pal.text))
            .collect();
        let list_w = indent(size) + layers_txt.iter().map(|l| l.width).fold(0.0, f32::max);
        let list_h: f32 = layers_txt.iter().map(|l| l.height).sum::<f32>()
            + item_gap * (layers_txt.len().saturating_sub(1)) as f32;

        let total = above + head_h + gap + list_h;
        let top = centre_top(sy, sh, total, fr.height as f32);
        let head_y = top + above;
        let list_y = (head_y + head_h + gap).round();
        let list_x = match align {
            Align::Left => col.x,
            Align::Center => (col.x + (col.w - list_w) / 2.0).round(),
        };

        let tm = ctx.timing();
        let mut layers = Layers::new(ctx);
        if let Some(a) = col.accent_item(ctx, top, head_y + head_h, list_y + list_h, tm.at(0.0)) {
            layers.push(a);
        }
        let mut first = tm.at(0.1);
        if let Some(h) = head {
            let x = col.x_of(h.width);
            layers.push(Item::text(h, x, head_y, first));
            first = tm.at(0.1 + theme.motion.stagger.max(0.15) * 1.5);
        }
        let times = reveal_times(first, layers_txt.len(), ctx.duration, theme.motion.stagger);
        let mut y = list_y;
        let d = dot(size);
        for (layer, at) in layers_txt.into_iter().zip(times) {
            let h = layer.height;
            layers.push(
                Item::rect(
                    [list_x, (y + line_h / 2.0 - d / 2.0).round(), d, d],
                    d / 2.0,
                    pal.accent,
                    Grow::No,
                    at,
                )
                .travel(0.6),
            );
            layers.push(Item::text(layer, list_x + indent(size), y, at).travel(0.6));
            y = (y + h + item_gap).round();
        }
        BulletList(layers)
    }
}

impl SceneDraw for BulletList {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.0.draw(canvas, t)
    }
}
