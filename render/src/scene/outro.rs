//! `logo-outro`: a logo image and/or a wordmark, and a tagline, centred.

use tiny_skia::Pixmap;
use vidbuilder_domain::spec::Fit;

use super::{centre_top, Item, Layers, Role, SceneContext, SceneDraw};
use crate::frame::Canvas;
use crate::image::fitted;
use crate::theme::Align;

/// A prepared `logo-outro` scene.
pub struct LogoOutro(Layers);

impl LogoOutro {
    /// Lays out the logo and/or wordmark and the tagline for `ctx`'s frame.
    pub fn new(
        ctx: &mut SceneContext,
        logo: Option<&Pixmap>,
        wordmark: Option<&str>,
        tagline: Option<&str>,
    ) -> LogoOutro {
        let (theme, pal, fr, u, (_, sy, sw, sh), _) = ctx.setup();
        let w = fr.width as f32;
        let measure = fr.measure(theme);
        let align = Align::Center;

        let logo = logo.map(|src| {
            let (bw, bh) = if wordmark.is_some() {
                ((0.4 * sw).min(36.0 * u), 0.26 * sh)
            } else {
                ((0.6 * sw).min(60.0 * u), 0.42 * sh)
            };
            fitted(src, bw, bh, Fit::Contain, 1.0)
        });
        let logo_h = logo.as_ref().map_or(0.0, |p| p.height() as f32);
        let mut word_style = ctx.style(Role::Title, align);
        word_style.weight = theme.typography.emphasis_weight;
        word_style.max_lines = 2;
        let word = wordmark.map(|t| ctx.text_styled(t, &word_style, measure, sh * 0.34, pal.text));
        let word_h = word.as_ref().map_or(0.0, |l| l.height);
        let tag = tagline.map(|t| ctx.text(t, Role::Body, align, measure, sh * 0.2, pal.subtitle));
        let tag_h = tag.as_ref().map_or(0.0, |l| l.height);
        let g1 = if logo.is_some() && (word.is_some() || tag.is_some()) {
            3.6 * u
        } else {
            0.0
        };
        let g2 = if tag.is_some() && (word.is_some() || logo.is_some()) {
            2.4 * u
        } else {
            0.0
        };
        let total = logo_h + g1 + word_h + g2 + tag_h;
        let top = centre_top(sy, sh, total, fr.height as f32);

        let tm = ctx.timing();
        let stagger = theme.motion.stagger.max(0.12);
        let mut layers = Layers::new(ctx);
        let mut y = top;
        let mut delay = 0.0;
        if let Some(p) = logo {
            let x = ((w - p.width() as f32) / 2.0).round();
            layers.push(Item::pixmap(p, x, y, tm.at(delay)).travel(0.6));
            y += logo_h + g1;
            delay += 0.1 + stagger;
        }
        if let Some(l) = word {
            let x = ((w - l.width) / 2.0).round();
            layers.push(Item::text(l, x, y.round(), tm.at(delay)));
            y += word_h;
            delay += stagger;
        }
        y += g2;
        if let Some(l) = tag {
            let x = ((w - l.width) / 2.0).round();
            layers.push(Item::text(l, x, y.round(), tm.at(delay + stagger * 0.5)).travel(0.7));
        }
        LogoOutro(layers)
    }
}

impl SceneDraw for LogoOutro {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.0.draw(canvas, t)
    }
}
