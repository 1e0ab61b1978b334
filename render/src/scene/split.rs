//! `split`: text beside an image (the image on `image_side`, full bleed over half the frame);
//! in portrait the image takes the top of the frame and the text goes below it.

use tiny_skia::Pixmap;
use vidbuilder_domain::spec::{Fit, Side};

use super::{centre_top, Column, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;
use crate::image::fitted;

/// A prepared `split` scene.
pub struct Split(Layers);

impl Split {
    /// Lays out the text and the image `src` (on `side`, scaled by `fit`) for `ctx`'s frame.
    pub fn new(
        ctx: &mut SceneContext,
        heading: Option<&str>,
        body: Option<&str>,
        src: &Pixmap,
        side: Side,
        fit: Fit,
    ) -> Split {
        let (theme, pal, fr, u, (sx, sy, sw, sh), align) = ctx.setup();
        let (w, h) = (fr.width as f32, fr.height as f32);

        // (image box, text box) as (x, y, w, h)
        let (ibox, tbox) = if fr.portrait() {
            let ih = (0.46 * h).round();
            (
                (0.0, 0.0, w, ih),
                (sx, ih + 0.05 * h, sw, 0.78 * h - ih - 0.05 * h),
            )
        } else {
            let half = (w / 2.0).round();
            let margin = 0.07 * w;
            match side {
                Side::Left => (
                    (0.0, 0.0, half, h),
                    (half + margin, sy, w - half - 1.8 * margin, sh),
                ),
                Side::Right => (
                    (half, 0.0, w - half, h),
                    (0.09 * w, sy, half - 0.09 * w - margin * 0.8, sh),
                ),
            }
        };

        let img = fitted(src, ibox.2, ibox.3, fit, 1.0);
        let ix = ibox.0 + ((ibox.2 - img.width() as f32) / 2.0).round();
        let iy = ibox.1 + ((ibox.3 - img.height() as f32) / 2.0).round();

        let col = Column::within(ctx, align, tbox.0, tbox.2, tbox.2);
        let above = col.accent.above;
        let head =
            heading.map(|t| ctx.text(t, Role::Heading, align, col.w, tbox.3 * 0.45, pal.text));
        let head_h = head.as_ref().map_or(0.0, |l| l.height);
        let gap = match (&head, body) {
            (Some(_), Some(_)) => 2.4 * u + col.accent.rule,
            _ => col.accent.rule,
        };
        let body = body.map(|t| {
            let max_h = (tbox.3 - above - head_h - gap).max(tbox.3 * 0.3);
            let base = if head.is_some() {
                pal.subtitle
            } else {
                pal.text
            };
            ctx.text(t, Role::Body, align, col.w, max_h, base)
        });
        let body_h = body.as_ref().map_or(0.0, |l| l.height);
        let total = above + head_h + gap + body_h;
        let top = centre_top(tbox.1, tbox.3, total, h);

        let tm = ctx.timing();
        let stagger = theme.motion.stagger.max(0.12);
        let mut layers = Layers::new(ctx);
        // the photo, once faded in, is drawn once into the scene's underlay: frames where only
        // the text moves restore and convert the text alone
        layers.underlay_first = true;
        layers.push(Item::pixmap(img, ix, iy, tm.at(0.0)).travel(0.0));
        let head_y = top + above;
        let body_y = (head_y + head_h + gap).round();
        if let Some(a) = col.accent_item(ctx, top, head_y + head_h, body_y + body_h, tm.at(0.1)) {
            layers.push(a);
        }
        let mut delay = 0.15;
        if let Some(l) = head {
            let x = col.x_of(l.width);
            layers.push(Item::text(l, x, head_y, tm.at(delay)));
            delay += stagger;
        }
        if let Some(l) = body {
            let x = col.x_of(l.width);
            layers.push(Item::text(l, x, body_y, tm.at(delay)).travel(0.8));
        }
        Split(layers)
    }
}

impl SceneDraw for Split {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.0.draw(canvas, t)
    }

    fn underlay_at(&self, t: f32) -> bool {
        self.0.underlay_at(t)
    }

    fn underlay(&self, canvas: &mut Canvas) {
        self.0.underlay(canvas)
    }
}
