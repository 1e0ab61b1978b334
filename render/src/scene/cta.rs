//! `call-to-action`: a headline, a pill-shaped button in the accent colour with its label, and
//! the URL to visit as text.

use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, PixmapPaint, Transform};

use super::{centre_top, on_color, Column, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;
use crate::text::TextLayer;
use crate::theme::Rgb;

/// A prepared `call-to-action` scene.
pub struct CallToAction(Layers);

/// A pill `w` × `h` filled with `fill`, the label layer centred on it.
pub(crate) fn pill(label: &TextLayer, w: f32, h: f32, fill: Rgb) -> Option<Pixmap> {
    let (pw, ph) = (w.ceil() as u32 + 2, h.ceil() as u32 + 2);
    let mut pm = Pixmap::new(pw, ph)?;
    let path = PathBuilder::from_rect(tiny_skia::Rect::from_xywh(1.0, 1.0, w, h)?);
    let rounded = super::super::paint::rounded_rect(1.0, 1.0, w, h, h / 2.0);
    let mut paint = Paint::default();
    paint.set_color_rgba8(fill.0, fill.1, fill.2, 255);
    paint.anti_alias = true;
    pm.fill_path(
        rounded.as_ref().unwrap_or(&path),
        &paint,
        FillRule::Winding,
        Transform::identity(),
        None,
    );
    let lx = 1.0 + (w - label.width) / 2.0 - label.pad as f32;
    let ly = 1.0 + (h - label.height) / 2.0 - label.pad as f32;
    pm.draw_pixmap(
        lx.round() as i32,
        ly.round() as i32,
        label.pixmap.as_ref(),
        &PixmapPaint::default(),
        Transform::identity(),
        None,
    );
    Some(pm)
}

impl CallToAction {
    /// Lays out the headline, the `button` label on its pill and the `url` for `ctx`'s frame.
    pub fn new(
        ctx: &mut SceneContext,
        headline: &str,
        button: &str,
        url: Option<&str>,
    ) -> CallToAction {
        let (theme, pal, fr, u, (_, sy, _, sh), align) = ctx.setup();
        let measure = fr.measure(theme);
        let mut col = Column::new(ctx, align, measure);
        // The button is this scene's accent: no bar beside the text.
        if col.accent.indent > 0.0 {
            col.x -= col.accent.indent;
            col.w += col.accent.indent;
        }

        let mut label_style = ctx.style(Role::Body, align);
        label_style.size *= 1.1;
        label_style.weight = theme.typography.emphasis_weight;
        label_style.max_lines = 1;
        let pad_x = 1.1 * label_style.size;
        let label = ctx.text_styled(
            button,
            &label_style,
            col.w - 2.0 * pad_x,
            label_style.size * 2.0,
            on_color(theme, pal.accent),
        );
        let (bw, bh) = (
            label.width + 2.0 * pad_x,
            (label.height + 1.1 * label_style.size).round(),
        );

        let url_layer =
            url.map(|s| ctx.text(s, Role::Label, align, col.w, sh * 0.12, pal.subtitle));
        let url_h = url_layer.as_ref().map_or(0.0, |l| l.height + 2.2 * u);
        let gap = 4.4 * u;
        let head_max = (sh - gap - bh - url_h).max(sh * 0.3);
        let head = ctx.text(headline, Role::Title, align, col.w, head_max, pal.text);

        let total = head.height + gap + bh + url_h;
        let top = centre_top(sy, sh, total, fr.height as f32);
        let tm = ctx.timing();
        let stagger = theme.motion.stagger.max(0.12);
        let mut layers = Layers::new(ctx);
        let button_y = (top + head.height + gap).round();
        let x = col.x_of(head.width);
        layers.push(Item::text(head, x, top, tm.at(0.05)));
        if let Some(pm) = pill(&label, bw, bh, pal.accent) {
            let x = col.x_of(bw) - 1.0;
            layers
                .push(Item::pixmap(pm, x, button_y - 1.0, tm.at(0.1 + stagger * 2.0)).travel(0.7));
        }
        if let Some(l) = url_layer {
            let x = col.x_of(l.width);
            let y = button_y + bh + 2.2 * u;
            layers.push(Item::text(l, x, y.round(), tm.at(0.1 + stagger * 3.0)).travel(0.5));
        }
        CallToAction(layers)
    }
}

impl SceneDraw for CallToAction {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.0.draw(canvas, t)
    }
}
