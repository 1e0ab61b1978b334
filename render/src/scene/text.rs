//! `text`: an optional heading and a paragraph, with the theme's accent.

use super::{centre_top, Column, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;

/// A prepared `text` scene.
pub struct TextScene(Layers);

impl TextScene {
    /// Lays out the heading and `body` for `ctx`'s frame.
    pub fn new(ctx: &mut SceneContext, heading: Option<&str>, body: &str) -> TextScene {
        let (theme, pal, fr, u, (_, sy, _, sh), align) = ctx.setup();
        let col = Column::new(ctx, align, fr.measure(theme));
        let above = col.accent.above;

        let head = heading.map(|h| ctx.text(h, Role::Heading, align, col.w, sh * 0.34, pal.text));
        let head_h = head.as_ref().map_or(0.0, |l| l.height);
        let gap = if head.is_some() {
            2.6 * u + col.accent.rule
        } else {
            col.accent.rule
        };
        let body_max_h = (sh - above - head_h - gap).max(sh * 0.3);
        // Without a heading the paragraph is the scene's voice: set it a size larger.
        let mut style = ctx.style(Role::Body, align);
        if head.is_none() {
            style.size *= 1.35;
            style.line_height = (style.line_height - 0.05).max(1.15);
        }
        let body = ctx.text_styled(
            body,
            &style,
            col.w,
            body_max_h,
            if head.is_some() {
                pal.subtitle
            } else {
                pal.text
            },
        );

        let total = above + head_h + gap + body.height;
        let top = centre_top(sy, sh, total, fr.height as f32);
        let tm = ctx.timing();
        let stagger = theme.motion.stagger;
        let mut layers = Layers::new(ctx);
        let head_y = top + above;
        let body_y = (head_y + head_h + gap).round();
        let bottom = body_y + body.height;
        if let Some(a) = col.accent_item(ctx, top, head_y + head_h, bottom, tm.at(0.0)) {
            layers.push(a);
        }
        let mut delay = 0.1;
        if let Some(h) = head {
            let x = col.x_of(h.width);
            layers.push(Item::text(h, x, head_y, tm.at(delay)));
            delay += stagger.max(0.12);
        }
        let x = col.x_of(body.width);
        layers.push(Item::text(body, x, body_y, tm.at(delay)).travel(0.8));
        TextScene(layers)
    }
}

impl SceneDraw for TextScene {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.0.draw(canvas, t)
    }
}
