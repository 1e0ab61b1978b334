//! `image`: a full-frame image (cover or contain) with slow Ken Burns motion and an optional
//! caption on a band that keeps it readable over any picture.

use tiny_skia::Pixmap;
use vidbuilder_domain::spec::Fit;

use super::{El, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::{Canvas, Picture};
use crate::image::fitted;
use crate::theme::{Align, Easing};

/// How far Ken Burns zooms in over the scene (cover: 8%, contain: 5%).
const ZOOM_COVER: f32 = 1.08;
const ZOOM_CONTAIN: f32 = 1.05;

/// A prepared `image` scene.
pub struct ImageScene {
    /// Scaled once: to the frame (× the zoom reached at the end, so it is never upscaled). When
    /// every pixel is opaque (a photo), Ken Burns frames overwrite instead of blending, and a
    /// `cover` picture takes the base-picture path (`yuv.rs`).
    img: Picture,
    /// Resting rectangle of the image in the frame (x, y, w, h).
    rect: [f32; 4],
    fit: Fit,
    ken_burns: bool,
    duration: f32,
    /// The prepared image's scale relative to `rect` (the final zoom).
    zoom: f32,
    caption: Layers,
}

impl ImageScene {
    /// Scales `src` once for `ctx`'s frame (`fit`, plus the Ken Burns zoom when `ken_burns`) and lays out the caption.
    pub fn new(
        ctx: &mut SceneContext,
        src: &Pixmap,
        fit: Fit,
        caption: Option<&str>,
        ken_burns: bool,
    ) -> ImageScene {
        let fr = ctx.frame;
        let (w, h) = (fr.width as f32, fr.height as f32);
        let zoom = match (ken_burns, fit) {
            (false, _) => 1.0,
            (true, Fit::Cover) => ZOOM_COVER,
            (true, Fit::Contain) => ZOOM_CONTAIN,
        };
        let img = fitted(src, w, h, fit, zoom);
        let (rw, rh) = (img.width() as f32 / zoom, img.height() as f32 / zoom);
        let rect = [((w - rw) / 2.0).round(), ((h - rh) / 2.0).round(), rw, rh];

        let mut layers = Layers::new(ctx);
        if let Some(text) = caption {
            caption_band(ctx, &mut layers, text);
        }
        ImageScene {
            img: Picture::new(img),
            rect,
            fit,
            ken_burns,
            duration: ctx.duration,
            zoom,
            caption: layers,
        }
    }
}

/// A caption on a rounded band of the theme's background colour, at the bottom of the safe
/// area (aligned like the theme's text).
pub(crate) fn caption_band(ctx: &mut SceneContext, layers: &mut Layers, text: &str) {
    let (theme, pal, fr, u, (sx, sy, sw, sh), align) = ctx.setup();
    let (px, py) = (2.2 * u, 1.3 * u);
    let max_w = if fr.narrow() { sw } else { fr.measure(theme) } - 2.0 * px;
    let layer = ctx.text(text, Role::Body, align, max_w, sh * 0.3, pal.text);
    let (bw, bh) = (layer.width + 2.0 * px, layer.height + 2.0 * py);
    let bx = match align {
        Align::Left => sx,
        Align::Center => ((fr.width as f32 - bw) / 2.0).round(),
    };
    let by = (sy + sh - bh).round();
    let tm = ctx.timing();
    let at = tm.at(0.35);
    layers.push(Item {
        el: El::Rect {
            w: bw,
            h: bh,
            radius: 1.0 * u,
            color: pal.background[0],
            opacity: 0.8,
            grow: super::Grow::No,
        },
        x: bx,
        y: by,
        at,
        travel: 0.6,
    });
    layers.push(Item::text(layer, bx + px, by + py, at + 0.05).travel(0.6));
}

impl SceneDraw for ImageScene {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        let [x, y, w, h] = self.rect;
        // A still photo is the underlay, already in the background: only Ken Burns draws here.
        if self.ken_burns {
            // Zoom in slowly (smooth at both ends) and drift towards the upper left, never
            // further than the zoom leaves room for, so the frame stays covered.
            let s = Easing::EaseInOutSine.apply(t / self.duration.max(0.01));
            let z = 1.0 + (self.zoom - 1.0) * s;
            let scale = z / self.zoom;
            let (iw, ih) = (
                self.img.pixmap().width() as f32,
                self.img.pixmap().height() as f32,
            );
            let (slack_x, slack_y) = ((w * z - w) / 2.0, (h * z - h) / 2.0);
            let (pan_x, pan_y) = if self.fit == Fit::Cover {
                (0.5 * slack_x * s, 0.35 * slack_y * s)
            } else {
                (0.0, 0.0)
            };
            let cx = x + w / 2.0 + pan_x;
            let cy = y + h / 2.0 + pan_y;
            let (ox, oy) = (cx - iw * scale / 2.0, cy - ih * scale / 2.0);
            let rect = match self.fit {
                Fit::Cover => [x, y, w, h],
                // the picture itself grows: draw where it is now
                Fit::Contain => [
                    ox.round(),
                    oy.round(),
                    (iw * scale).round(),
                    (ih * scale).round(),
                ],
            };
            canvas.picture(&self.img, rect, scale, ox, oy);
        }
        self.caption.draw(canvas, t);
    }

    fn underlay_at(&self, _t: f32) -> bool {
        !self.ken_burns
    }

    fn underlay(&self, canvas: &mut Canvas) {
        if !self.ken_burns {
            let [x, y, _, _] = self.rect;
            canvas.layer(self.img.pixmap(), x, y, 1.0);
        }
    }

    fn covers(&self) -> bool {
        self.ken_burns && self.fit == Fit::Cover && self.img.opaque()
    }
}
