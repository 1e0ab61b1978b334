//! Scenes. Each scene type prepares its static layers once (text shaped and rasterised, images
//! scaled, shapes measured) for a given frame geometry, then draws any frame of itself cheaply:
//! a frame is a few composited layers. New scene types add a [`SceneContent`] arm to [`prepare`]
//! and a type implementing [`SceneDraw`], in a file of their own.
//!
//! Shared here: [`Frame`] (geometry, units, safe area), [`SceneContext`], the theme-driven text
//! roles (`Role`), entrance/exit `Timing`, and `Layers`: a list of placed elements that
//! enter with the theme's motion, which most scenes are made of.

mod bullets;
mod cta;
mod hero;
mod image;
mod outro;
mod quote;
mod split;
mod stats;
mod text;
mod video;

use cosmic_text::{FontSystem, SwashCache};
use tiny_skia::Pixmap;
use vidbuilder_domain::spec::{Background, ImageSource, SceneContent};

use super::frame::Canvas;
use super::image::Images;
use super::text::{fit, parse_inline, rasterize, Shadow, TextLayer, TextStyle};
use super::theme::{AccentStyle, Align, Easing, Entrance, Palette, Rgb, Theme};
use super::RenderError;

pub use bullets::BulletList;
pub use cta::CallToAction;
pub use hero::HeroTitle;
pub use image::ImageScene;
pub use outro::LogoOutro;
pub use quote::Quote;
pub use split::Split;
pub use stats::Stats;
pub use text::TextScene;

/// The frame a scene is laid out for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Width, in pixels.
    pub width: u32,
    /// Height, in pixels.
    pub height: u32,
}

impl Frame {
    /// True when taller than wide (the reel, 4:5).
    pub fn portrait(&self) -> bool {
        self.height > self.width
    }

    /// True when at least 1.5 times taller than wide (the 9:16 reel), where the platforms'
    /// buttons and captions cover the top and bottom.
    pub fn tall(&self) -> bool {
        self.height * 2 >= self.width * 3
    }

    /// True when text may use the whole safe width (square and portrait frames): only wide
    /// frames keep lines to the theme's comfortable measure.
    pub fn narrow(&self) -> bool {
        self.width * 10 < self.height * 14
    }

    /// One layout unit: 1% of the short side, so sizes look the same at every resolution.
    pub fn unit(&self) -> f32 {
        self.width.min(self.height) as f32 / 100.0
    }

    /// The title-safe box (x, y, w, h). A tall frame (the reel) leaves room for the reel UI at
    /// top and bottom; square and 4:5 frames keep even margins.
    pub fn safe_box(&self) -> (f32, f32, f32, f32) {
        let (w, h) = (self.width as f32, self.height as f32);
        if self.tall() {
            (0.08 * w, 0.17 * h, 0.84 * w, 0.60 * h)
        } else if self.narrow() {
            (0.08 * w, 0.09 * h, 0.84 * w, 0.82 * h)
        } else {
            (0.09 * w, 0.12 * h, 0.82 * w, 0.76 * h)
        }
    }

    /// The widest comfortable text measure: the theme's `max_width` in a wide frame, the whole
    /// safe width in square and portrait ones (which are narrow already).
    pub fn measure(&self, theme: &Theme) -> f32 {
        let (_, _, sw, _) = self.safe_box();
        if self.narrow() {
            sw
        } else {
            (theme.layout.max_width * self.width as f32).min(sw)
        }
    }
}

/// Everything a scene needs to prepare itself.
pub struct SceneContext<'a> {
    /// The catalog's fonts, for shaping text.
    pub fonts: &'a mut FontSystem,
    /// The glyph cache, for rasterising text.
    pub swash: &'a mut SwashCache,
    /// The video's theme.
    pub theme: &'a Theme,
    /// The geometry laid out for.
    pub frame: Frame,
    /// Scene length, in seconds.
    pub duration: f32,
    /// Frames per second.
    pub fps: u32,
    /// The spec's images, fetched and decoded before rendering.
    pub images: &'a Images,
    /// Whether the scene fades its content out at its end itself: false when a transition to
    /// the next scene does that job (`duration` then already includes the transition windows).
    pub exit_fade: bool,
    /// The scene's own background, if any: text colours are adapted to stay readable on it.
    pub background: Option<&'a Background>,
}

/// A prepared scene: draws the frame `t` seconds into itself onto a frame that already holds the
/// scene's background.
pub trait SceneDraw: Send {
    /// Draws the frame `t` seconds into the scene onto `canvas`.
    fn draw(&self, canvas: &mut Canvas, t: f32);

    /// Whether at `t` (seconds into the scene) the scene's bottom layer is at rest under all
    /// else (a still photo; a split's photo once it has faded in, until the scene fades out):
    /// then [`SceneDraw::underlay`] is drawn once onto a copy of the scene's background, and
    /// `draw` at such a `t` leaves it out, so frames restore and convert only what moves. The
    /// underlay must be the same at every `t` this holds for.
    fn underlay_at(&self, _t: f32) -> bool {
        false
    }

    /// Draws the scene's bottom layer at rest (see [`SceneDraw::underlay_at`]).
    fn underlay(&self, _canvas: &mut Canvas) {}

    /// Whether `draw` starts with an opaque picture covering the whole frame that moves (a Ken
    /// Burns photo, a `cover` clip): then the frame may take the base-picture path (`yuv.rs`),
    /// the picture going straight into the frame's yuv planes and the rest blended over it.
    fn covers(&self) -> bool {
        false
    }

    /// Why drawing failed, if it did (a clip's decoder could not be started): the render fails
    /// with it instead of showing a frame without the clip.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Get ready to draw the scene's first frame soon: a clip starts decoding now, so its first
    /// frame is there when asked for (a decoder takes about a quarter of a second to hand over
    /// its first one).
    fn warm(&self) {}
}

/// A decoder of `clip` for the frame of `ctx`, blended towards `dim`'s colour when given.
fn clip_reader(
    ctx: &SceneContext,
    clip: &vidbuilder_domain::spec::VideoClip,
    dim: Option<(Rgb, f32)>,
) -> Result<crate::video::ClipReader, RenderError> {
    Ok(crate::video::ClipReader::new(
        ctx.images.video(&clip.src)?.clone(),
        clip.clone(),
        crate::video::ClipLook {
            width: ctx.frame.width,
            height: ctx.frame.height,
            fps: ctx.fps,
            dim,
        },
    ))
}

/// Prepare a scene for drawing, over its video background when it has one.
pub fn prepare(
    content: &SceneContent,
    ctx: &mut SceneContext,
) -> Result<Box<dyn SceneDraw>, RenderError> {
    let under = match ctx.background {
        Some(Background::Video { clip, dim }) => Some(clip_reader(
            ctx,
            clip,
            Some((ctx.theme.palette.background[0], *dim)),
        )?),
        _ => None,
    };
    let scene = prepare_content(content, ctx)?;
    Ok(match under {
        Some(reader) => Box::new(video::OverClip::new(reader, ctx.fps, scene)),
        None => scene,
    })
}

/// Prepare a scene's content for drawing. Fails only when an image the scene needs is not among the
/// fetched ones (a pipeline bug, or a spec that was not prefetched).
fn prepare_content(
    content: &SceneContent,
    ctx: &mut SceneContext,
) -> Result<Box<dyn SceneDraw>, RenderError> {
    if let Some(theme) = readable_theme(ctx.theme, ctx.background, ctx.images)? {
        let mut adapted = SceneContext {
            fonts: &mut *ctx.fonts,
            swash: &mut *ctx.swash,
            theme: &theme,
            frame: ctx.frame,
            duration: ctx.duration,
            fps: ctx.fps,
            images: ctx.images,
            exit_fade: ctx.exit_fade,
            background: None,
        };
        return prepare_content(content, &mut adapted);
    }
    Ok(match content {
        SceneContent::HeroTitle { title, subtitle } => {
            Box::new(HeroTitle::new(ctx, title, subtitle.as_deref()))
        }
        SceneContent::Text { heading, body } => {
            Box::new(TextScene::new(ctx, heading.as_deref(), body))
        }
        SceneContent::BulletList { heading, items } => {
            Box::new(BulletList::new(ctx, heading.as_deref(), items))
        }
        SceneContent::Stats { heading, stats } => {
            Box::new(Stats::new(ctx, heading.as_deref(), stats))
        }
        SceneContent::Quote {
            quote,
            author,
            role,
        } => Box::new(Quote::new(ctx, quote, author.as_deref(), role.as_deref())),
        SceneContent::Image {
            src,
            fit,
            caption,
            ken_burns,
        } => Box::new(ImageScene::new(
            ctx,
            image_of(ctx, src)?,
            *fit,
            caption.as_deref(),
            *ken_burns,
        )),
        SceneContent::Video { clip, caption } => {
            let reader = clip_reader(ctx, clip, None)?;
            Box::new(video::VideoScene::new(ctx, reader, caption.as_deref()))
        }
        SceneContent::Split {
            heading,
            body,
            image,
            image_side,
            fit,
        } => Box::new(Split::new(
            ctx,
            heading.as_deref(),
            body.as_deref(),
            image_of(ctx, image)?,
            *image_side,
            *fit,
        )),
        SceneContent::CallToAction {
            headline,
            button,
            url,
        } => Box::new(CallToAction::new(ctx, headline, button, url.as_deref())),
        SceneContent::LogoOutro {
            logo,
            wordmark,
            tagline,
        } => {
            let logo = match logo {
                Some(src) => Some(image_of(ctx, src)?),
                None => None,
            };
            Box::new(LogoOutro::new(
                ctx,
                logo,
                wordmark.as_deref(),
                tagline.as_deref(),
            ))
        }
    })
}

fn image_of<'a>(ctx: &SceneContext<'a>, src: &ImageSource) -> Result<&'a Pixmap, RenderError> {
    let images: &'a Images = ctx.images;
    images.get(src)
}

/// Shared scene timing: entrance of staggered elements and the fade-out at the scene end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Scales all entrance timings down for short scenes.
    pub k: f32,
    pub start: f32,
    pub enter: f32,
    pub fade_out: f32,
    /// Time of the last frame.
    pub last: f32,
    pub easing: Easing,
}

impl Timing {
    pub(crate) fn new(theme: &Theme, duration: f32, fps: u32) -> Timing {
        let k = (duration / 2.4).min(1.0);
        let fade_out = theme.motion.fade_out.min(duration * 0.25);
        Timing {
            k,
            start: 0.12 * k,
            enter: theme.motion.title_duration.max(0.01) * k,
            fade_out,
            last: (duration - 1.0 / fps as f32).max(0.0),
            easing: theme.motion.easing,
        }
    }

    /// The scene time at which an element `delay` theme-seconds after the first one starts to
    /// enter (delays shrink with short scenes).
    pub(crate) fn at(&self, delay: f32) -> f32 {
        self.start + delay * self.k
    }

    /// (position progress 0..1 (may overshoot with back easing), opacity 0..1) of an element
    /// entering `delay` seconds after the scene's start.
    pub(crate) fn enter(&self, t: f32, delay: f32) -> (f32, f32) {
        self.enter_at(t, self.at(delay))
    }

    /// Like [`Timing::enter`], for an element whose entrance starts at scene time `at`.
    pub(crate) fn enter_at(&self, t: f32, at: f32) -> (f32, f32) {
        let x = (t - at) / self.enter;
        let pos = if x <= 0.0 { 0.0 } else { self.easing.apply(x) };
        let op = Easing::EaseOutQuad.apply(x / 0.75);
        (pos, op)
    }

    /// Scene-end fade: (opacity multiplier, progress 0..1).
    pub(crate) fn exit(&self, t: f32) -> (f32, f32) {
        if self.fade_out <= 0.0 {
            return (1.0, 0.0);
        }
        let q = ((t - (self.last - self.fade_out)) / self.fade_out).clamp(0.0, 1.0);
        (1.0 - q * q, q)
    }
}

/// What a piece of text is, which decides its size, weight and line limits from the theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A scene's main line (call-to-action headline, wordmark).
    Title,
    /// A heading above a body, a list or stats.
    Heading,
    /// A paragraph or list item.
    Body,
    /// Small text under a number, a role, a URL.
    Label,
    /// The counting number of a stat.
    Number,
    /// The text of a quotation.
    Quote,
}

/// Text colours of a block: regular, `**bold**`, `==highlight==`.
pub(crate) fn inks(theme: &Theme, base: Rgb) -> [Rgb; 3] {
    let p = &theme.palette;
    let bold = if base == p.text {
        p.emphasis.unwrap_or(base)
    } else {
        base
    };
    [base, bold, p.accent]
}

impl SceneContext<'_> {
    pub(crate) fn unit(&self) -> f32 {
        self.frame.unit()
    }

    /// The theme's style for `role`. Portrait frames are narrow but tall: type is set a little
    /// larger relative to the short side there.
    pub(crate) fn style(&self, role: Role, align: Align) -> TextStyle {
        let ty = &self.theme.typography;
        let u = self.unit();
        let portrait = if self.frame.portrait() { 1.2 } else { 1.0 };
        let strong = ty.emphasis_weight.max(ty.title_weight);
        let (size, line_height, weight, max_lines) = match role {
            Role::Title => (
                ty.title_size * 0.86,
                ty.title_line_height,
                ty.title_weight,
                ty.title_max_lines as usize,
            ),
            Role::Heading => (ty.title_size * 0.7, ty.title_line_height + 0.04, strong, 3),
            Role::Body => (
                ty.subtitle_size * 1.25,
                ty.subtitle_line_height,
                ty.subtitle_weight,
                9,
            ),
            Role::Label => (ty.subtitle_size, 1.3, ty.subtitle_weight, 3),
            Role::Number => (ty.title_size * 1.15, 1.05, strong, 1),
            Role::Quote => (ty.title_size * 0.62, 1.25, ty.title_weight, 7),
        };
        TextStyle {
            family: ty.family.clone(),
            size: size * u * portrait,
            line_height,
            weight,
            bold_weight: ty.emphasis_weight.max(weight),
            align,
            max_lines,
        }
    }

    pub(crate) fn shadow(&self) -> Option<Shadow> {
        let pal = &self.theme.palette;
        let u = self.unit();
        (pal.shadow > 0.0).then_some(Shadow {
            color: pal.shadow_color,
            opacity: pal.shadow,
            blur: 1.1 * u,
            dy: 0.35 * u,
        })
    }

    /// Shape, fit (wrap + shrink) into `max_w` × `max_h` and rasterise `text` (inline markdown)
    /// once, in colour `base`.
    pub(crate) fn text(
        &mut self,
        text: &str,
        role: Role,
        align: Align,
        max_w: f32,
        max_h: f32,
        base: Rgb,
    ) -> TextLayer {
        let style = self.style(role, align);
        if role == Role::Label && self.theme.typography.subtitle_uppercase {
            return self.text_styled(&text.to_uppercase(), &style, max_w, max_h, base);
        }
        self.text_styled(text, &style, max_w, max_h, base)
    }

    pub(crate) fn text_styled(
        &mut self,
        text: &str,
        style: &TextStyle,
        max_w: f32,
        max_h: f32,
        base: Rgb,
    ) -> TextLayer {
        let fitted = fit(self.fonts, &parse_inline(text), style, max_w, max_h);
        let shadow = self.shadow();
        rasterize(
            self.fonts,
            self.swash,
            &fitted,
            &inks(self.theme, base),
            shadow,
        )
    }

    /// The preferred size `text` gets in `role` after fitting `max_w` × `max_h`.
    pub(crate) fn fitted_size(
        &mut self,
        text: &str,
        style: &TextStyle,
        max_w: f32,
        max_h: f32,
    ) -> f32 {
        fit(self.fonts, &parse_inline(text), style, max_w, max_h).size
    }

    /// The scene's timing; without the scene-end fade when a transition takes care of it.
    pub(crate) fn timing(&self) -> Timing {
        let mut t = Timing::new(self.theme, self.duration, self.fps);
        if !self.exit_fade {
            t.fade_out = 0.0;
        }
        t
    }
}

/// What every scene's layout starts from (see [`SceneContext::setup`]): the theme, its palette,
/// the frame, its layout unit, its title-safe box `(x, y, w, h)` and the theme's alignment.
pub(crate) type Setup<'a> = (
    &'a Theme,
    &'a Palette,
    Frame,
    f32,
    (f32, f32, f32, f32),
    Align,
);

impl<'a> SceneContext<'a> {
    /// The layout setup every scene starts with:
    /// `let (theme, pal, fr, u, (sx, sy, sw, sh), align) = ctx.setup();`
    pub(crate) fn setup(&self) -> Setup<'a> {
        let theme = self.theme;
        let fr = self.frame;
        let align = theme.layout.align;
        (theme, &theme.palette, fr, fr.unit(), fr.safe_box(), align)
    }
}

/// Where a block of width `w` starts in the column `[x0, x0 + col_w]`.
pub(crate) fn align_x(align: Align, x0: f32, col_w: f32, w: f32) -> f32 {
    match align {
        Align::Left => x0.round(),
        Align::Center => (x0 + (col_w - w) / 2.0).round(),
    }
}

/// Top of a block `h` tall centred vertically in `[y0, y0 + box_h]`, a touch above centre
/// (optically centred), never above `y0`.
pub(crate) fn centre_top(y0: f32, box_h: f32, h: f32, frame_h: f32) -> f32 {
    (y0 + (box_h - h) / 2.0 - 0.015 * frame_h).max(y0).round()
}

/// How a shape grows while it enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grow {
    No,
    /// Width grows from the left edge.
    Right,
    /// Width grows from the centre.
    Sideways,
    /// Height grows from the top.
    Down,
}

/// A drawable element.
pub(crate) enum El {
    /// A premultiplied layer; its top-left is at (x + dx, y + dy) at rest.
    Layer { pixmap: Pixmap, dx: f32, dy: f32 },
    /// A rounded rectangle `w` × `h` with its top-left at (x, y) at rest.
    Rect {
        w: f32,
        h: f32,
        radius: f32,
        color: Rgb,
        opacity: f32,
        grow: Grow,
    },
}

/// An element placed in the frame, entering at scene time `at`.
pub(crate) struct Item {
    pub el: El,
    pub x: f32,
    pub y: f32,
    pub at: f32,
    /// Multiplies the theme's entrance travel (0: fades in place).
    pub travel: f32,
}

impl Item {
    /// A text layer whose layout box has its top-left at (x, y).
    pub(crate) fn text(layer: TextLayer, x: f32, y: f32, at: f32) -> Item {
        let pad = layer.pad as f32;
        let (pixmap, cx, cy) = trim(layer.pixmap);
        Item {
            el: El::Layer {
                pixmap,
                dx: cx - pad,
                dy: cy - pad,
            },
            x,
            y,
            at,
            travel: 1.0,
        }
    }

    pub(crate) fn pixmap(pixmap: Pixmap, x: f32, y: f32, at: f32) -> Item {
        let (pixmap, dx, dy) = trim(pixmap);
        Item {
            el: El::Layer { pixmap, dx, dy },
            x,
            y,
            at,
            travel: 1.0,
        }
    }

    pub(crate) fn rect(rect: [f32; 4], radius: f32, color: Rgb, grow: Grow, at: f32) -> Item {
        let [x, y, w, h] = rect;
        Item {
            el: El::Rect {
                w,
                h,
                radius,
                color,
                opacity: 1.0,
                grow,
            },
            x,
            y,
            at,
            travel: if grow == Grow::No { 1.0 } else { 0.0 },
        }
    }

    pub(crate) fn travel(mut self, travel: f32) -> Item {
        self.travel = travel;
        self
    }
}

/// Elements that enter with the theme's motion and fade out together at the scene end.
pub(crate) struct Layers {
    pub items: Vec<Item>,
    pub timing: Timing,
    pub entrance: Entrance,
    /// Entrance travel in px.
    pub offset: f32,
    /// The first item, a layer, goes into the scene's underlay while at rest (see
    /// [`Layers::first_at_rest`]).
    pub underlay_first: bool,
}

impl Layers {
    pub(crate) fn new(ctx: &SceneContext) -> Layers {
        Layers {
            items: Vec::new(),
            timing: ctx.timing(),
            entrance: ctx.theme.motion.entrance,
            offset: ctx.theme.motion.entrance_offset * ctx.unit(),
            underlay_first: false,
        }
    }

    /// Whether, with [`Layers::underlay_first`], the first item is at rest at `t`: a layer fully
    /// entered, in place and opaque, the scene not yet fading out. It is then drawn exactly as
    /// [`Layers::draw_item`] draws it at such a `t`.
    pub(crate) fn first_at_rest(&self, t: f32) -> bool {
        let Some(item) = self.items.first().filter(|_| self.underlay_first) else {
            return false;
        };
        matches!(item.el, El::Layer { .. })
            && matches!(
                self.placement(t, item.at, item.travel, self.exit(t)),
                Some((dx, dy, op, p)) if dx == 0.0 && dy == 0.0 && op >= 1.0 && p >= 1.0
            )
    }

    pub(crate) fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    /// The exit state at `t`: (opacity multiplier, vertical drift in px).
    pub(crate) fn exit(&self, t: f32) -> (f32, f32) {
        let (op, q) = self.timing.exit(t);
        let drift = match self.entrance {
            Entrance::Fade => 0.0,
            _ => -q * q * self.offset * 0.35,
        };
        (op, drift)
    }

    /// Where an element entering at `at` (travel multiplier `travel`) is at `t` under the exit
    /// state: (dx, dy, opacity), or `None` while invisible.
    pub(crate) fn placement(
        &self,
        t: f32,
        at: f32,
        travel: f32,
        exit: (f32, f32),
    ) -> Option<(f32, f32, f32, f32)> {
        let (out_op, drift) = exit;
        let (p, op) = self.timing.enter_at(t, at);
        let op = op * out_op;
        if op <= 0.0 {
            return None;
        }
        let travel = (1.0 - p) * self.offset * travel;
        let (dx, dy) = match self.entrance {
            Entrance::Rise => (0.0, travel),
            Entrance::Slide => (-1.4 * travel, 0.0),
            Entrance::Fade => (0.0, 0.0),
        };
        Some((dx, dy + drift, op, p))
    }

    /// Draws one element at `t` under the exit state.
    pub(crate) fn draw_item(&self, canvas: &mut Canvas, item: &Item, t: f32, exit: (f32, f32)) {
        let Some((dx, dy, op, p)) = self.placement(t, item.at, item.travel, exit) else {
            return;
        };
        Self::draw_placed(canvas, item, dx, dy, op, p);
    }

    /// Draws one element moved by (`dx`, `dy`) at opacity `op` and entrance progress `p`.
    fn draw_placed(canvas: &mut Canvas, item: &Item, dx: f32, dy: f32, op: f32, p: f32) {
        let (x, y) = (item.x + dx, item.y + dy);
        match &item.el {
            El::Layer { pixmap, dx, dy } => canvas.layer(pixmap, x + dx, y + dy, op),
            El::Rect {
                w,
                h,
                radius,
                color,
                opacity,
                grow,
            } => {
                let g = p.clamp(0.0, 1.06);
                let (rx, rw, rh) = match grow {
                    Grow::No => (x, *w, *h),
                    Grow::Right => (x, w * g, *h),
                    Grow::Sideways => (x + (w - w * g) / 2.0, w * g, *h),
                    Grow::Down => (x, *w, h * g.min(1.0)),
                };
                canvas.round_rect([rx, y, rw, rh], *radius, *color, op * opacity);
            }
        }
    }
}

impl SceneDraw for Layers {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        let exit = self.exit(t);
        if exit.0 <= 0.0 {
            return;
        }
        let skip = self.first_at_rest(t) as usize; // in the underlay
        for item in &self.items[skip..] {
            self.draw_item(canvas, item, t, exit);
        }
    }

    fn underlay_at(&self, t: f32) -> bool {
        self.first_at_rest(t)
    }

    fn underlay(&self, canvas: &mut Canvas) {
        if let Some(item) = self.items.first().filter(|_| self.underlay_first) {
            // at rest: in place, opaque, entered (as `first_at_rest` requires)
            Self::draw_placed(canvas, item, 0.0, 0.0, 1.0, 1.0);
        }
    }
}

/// The theme's accent next to a heading, for the non-hero scenes: how much room it takes and
/// the element itself.
pub(crate) struct AccentPlan {
    pub style: AccentStyle,
    /// Room above the heading (for a bar).
    pub above: f32,
    /// Left indent of the text (for a side bar).
    pub indent: f32,
    /// Room between heading and what follows (for an underline rule).
    pub rule: f32,
}

impl AccentPlan {
    pub(crate) fn new(ctx: &SceneContext, align: Align) -> AccentPlan {
        let u = ctx.unit();
        let style = match (ctx.theme.layout.accent, align) {
            (AccentStyle::Side, Align::Center) => AccentStyle::Bar,
            (s, _) => s,
        };
        match style {
            AccentStyle::Bar => AccentPlan {
                style,
                above: 0.7 * u + 2.8 * u,
                indent: 0.0,
                rule: 0.0,
            },
            AccentStyle::Side => AccentPlan {
                style,
                above: 0.0,
                indent: 3.0 * u,
                rule: 0.0,
            },
            AccentStyle::Underline => AccentPlan {
                style,
                above: 0.0,
                indent: 0.0,
                rule: 2.2 * u,
            },
            AccentStyle::None => AccentPlan {
                style,
                above: 0.0,
                indent: 0.0,
                rule: 0.0,
            },
        }
    }

    /// The accent element for a block whose heading spans `[head_top, head_bottom]` and whose
    /// content ends at `bottom`; `x0`/`col_w` is the text column (before the indent).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn item(
        &self,
        ctx: &SceneContext,
        align: Align,
        x0: f32,
        col_w: f32,
        block_top: f32,
        head_bottom: f32,
        bottom: f32,
        at: f32,
    ) -> Option<Item> {
        let u = ctx.unit();
        let color = ctx.theme.palette.accent;
        let centred = align == Align::Center;
        match self.style {
            AccentStyle::None => None,
            AccentStyle::Bar => {
                let w = 6.5 * u;
                let x = if centred { x0 + (col_w - w) / 2.0 } else { x0 };
                let grow = if centred { Grow::Sideways } else { Grow::Right };
                Some(Item::rect(
                    [x, block_top, w, 0.7 * u],
                    0.35 * u,
                    color,
                    grow,
                    at,
                ))
            }
            AccentStyle::Side => Some(Item::rect(
                [
                    x0,
                    block_top + 0.4 * u,
                    0.55 * u,
                    (bottom - block_top - 0.8 * u).max(u),
                ],
                0.275 * u,
                color,
                Grow::Down,
                at,
            )),
            AccentStyle::Underline => {
                let w = 9.0 * u;
                let x = if centred { x0 + (col_w - w) / 2.0 } else { x0 };
                let grow = if centred { Grow::Sideways } else { Grow::Right };
                let h = (0.3 * u).max(1.0);
                Some(Item::rect(
                    [x, head_bottom + self.rule / 2.0 - h / 2.0, w, h],
                    h / 2.0,
                    color,
                    grow,
                    at,
                ))
            }
        }
    }
}

/// Relative luminance (0..1, sRGB-ish): picks dark or light text on a coloured shape.
pub(crate) fn luminance(c: Rgb) -> f32 {
    let [r, g, b] = c.f32();
    0.2126 * r * r + 0.7152 * g * g + 0.0722 * b * b
}

/// Text colour readable on `fill`.
pub(crate) fn on_color(theme: &Theme, fill: Rgb) -> Rgb {
    let p = &theme.palette;
    let dark = if luminance(p.text) < 0.3 {
        p.text
    } else {
        Rgb(0x11, 0x14, 0x1A)
    };
    if luminance(fill) > 0.33 {
        dark
    } else {
        Rgb(0xFF, 0xFF, 0xFF)
    }
}

/// A text column: where text of a scene goes horizontally, and the theme's accent beside it.
pub(crate) struct Column {
    pub align: Align,
    /// Left edge and width of the text.
    pub x: f32,
    pub w: f32,
    pub accent: AccentPlan,
    /// Left edge of the accent's column.
    pub accent_x: f32,
}

impl Column {
    /// A column `measure` wide (accent indent included), centred in the frame for centred
    /// themes, at the safe area's left edge otherwise.
    pub(crate) fn new(ctx: &SceneContext, align: Align, measure: f32) -> Column {
        Column::within(
            ctx,
            align,
            ctx.frame.safe_box().0,
            measure,
            ctx.frame.width as f32,
        )
    }

    /// A column inside the horizontal span `[x0, x0 + span]` (e.g. one half of a split scene).
    pub(crate) fn within(
        ctx: &SceneContext,
        align: Align,
        x0: f32,
        measure: f32,
        span: f32,
    ) -> Column {
        let accent = AccentPlan::new(ctx, align);
        let w = measure - accent.indent;
        let (x, accent_x) = match align {
            Align::Center => {
                let x = if span >= ctx.frame.width as f32 {
                    (ctx.frame.width as f32 - w) / 2.0
                } else {
                    x0 + (span - w) / 2.0
                };
                (x, x)
            }
            Align::Left => (x0 + accent.indent, x0),
        };
        Column {
            align,
            x,
            w,
            accent,
            accent_x,
        }
    }

    pub(crate) fn x_of(&self, w: f32) -> f32 {
        align_x(self.align, self.x, self.w, w)
    }

    /// The accent element for a block from `top` to `bottom` whose first text ends at
    /// `head_bottom`.
    pub(crate) fn accent_item(
        &self,
        ctx: &SceneContext,
        top: f32,
        head_bottom: f32,
        bottom: f32,
        at: f32,
    ) -> Option<Item> {
        let col_w = if self.align == Align::Center {
            self.w
        } else {
            self.w + self.accent.indent
        };
        self.accent.item(
            ctx,
            self.align,
            self.accent_x,
            col_w,
            top,
            head_bottom,
            bottom,
            at,
        )
    }
}

/// WCAG relative luminance (0 black .. 1 white).
pub(crate) fn rel_luminance([r, g, b]: [f32; 3]) -> f32 {
    let lin = |c: f32| {
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

fn contrast(a: f32, b: f32) -> f32 {
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

/// The average colour of a scene background, as it will look.
fn background_average(
    theme: &Theme,
    bg: &Background,
    images: &Images,
) -> Result<[f32; 3], RenderError> {
    let parse = |c: &str| Rgb::parse(c).map(Rgb::f32).unwrap_or([0.0; 3]);
    Ok(match bg {
        Background::Color { color } => parse(color),
        Background::Gradient { colors, .. } => {
            let n = colors.len().max(1) as f32;
            let mut sum = [0.0; 3];
            for c in colors {
                let c = parse(c);
                for k in 0..3 {
                    sum[k] += c[k] / n;
                }
            }
            sum
        }
        Background::Video { clip, dim } => {
            let avg = images.video(&clip.src)?.average;
            let to = theme.palette.background[0].f32();
            let d = dim.clamp(0.0, 1.0);
            [0, 1, 2].map(|k| avg[k] * (1.0 - d) + to[k] * d)
        }
        Background::Image { src, dim } => {
            let img = images.get(src)?;
            // every 8th pixel of every 8th row is plenty for an average
            let (w, h) = (img.width() as usize, img.height() as usize);
            let mut sum = [0.0f64; 3];
            let mut n = 0.0f64;
            let data = img.data();
            for y in (0..h).step_by(8) {
                for x in (0..w).step_by(8) {
                    let i = (y * w + x) * 4;
                    for k in 0..3 {
                        sum[k] += data[i + k] as f64 / 255.0;
                    }
                    n += 1.0;
                }
            }
            let to = theme.palette.background[0].f32();
            let d = dim.clamp(0.0, 1.0);
            let mut avg = [0.0; 3];
            for k in 0..3 {
                avg[k] = (sum[k] / n.max(1.0)) as f32 * (1.0 - d) + to[k] * d;
            }
            avg
        }
    })
}

/// When a scene's own background leaves the theme's text hard to read (dark text on a dark
/// colour, light on light), a copy of the theme with light or dark text colours; `None` when
/// the theme's colours read well (or there is no own background).
pub(crate) fn readable_theme(
    theme: &Theme,
    bg: Option<&Background>,
    images: &Images,
) -> Result<Option<Theme>, RenderError> {
    let Some(bg) = bg else { return Ok(None) };
    let lb = rel_luminance(background_average(theme, bg, images)?);
    let p = &theme.palette;
    if contrast(rel_luminance(p.text.f32()), lb) >= 4.5 {
        return Ok(None);
    }
    let mut t = theme.clone();
    let dark_bg = lb < 0.18;
    let (text, subtitle) = if dark_bg {
        (Rgb(0xFF, 0xFF, 0xFF), Rgb(0xD5, 0xDA, 0xE3))
    } else {
        (Rgb(0x11, 0x14, 0x1A), Rgb(0x3D, 0x44, 0x52))
    };
    let keep = |c: Rgb, min: f32| contrast(rel_luminance(c.f32()), lb) >= min;
    let q = &mut t.palette;
    q.emphasis = Some(match p.emphasis {
        Some(e) if keep(e, 3.0) => e,
        _ => text,
    });
    if !keep(p.accent, 3.0) {
        q.accent = text;
    }
    q.text = text;
    q.subtitle = subtitle;
    if dark_bg {
        q.shadow = q.shadow.max(0.3);
        q.shadow_color = Rgb(0, 0, 0);
    } else {
        q.shadow = 0.0;
    }
    Ok(Some(t))
}

/// The visible part of a layer: (cropped pixmap, x and y of the crop within the layer). Text
/// layers carry generous padding for shadows and overhangs; compositing only the inked part
/// keeps the per-frame work and the changed area small.
pub(crate) fn trim(pm: Pixmap) -> (Pixmap, f32, f32) {
    let (w, h) = (pm.width() as usize, pm.height() as usize);
    let data = pm.data();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        let row = &data[y * w * 4..(y + 1) * w * 4];
        let mut first = None;
        let mut last = 0;
        for (x, px) in row.chunks_exact(4).enumerate() {
            if px[3] != 0 {
                first.get_or_insert(x);
                last = x;
            }
        }
        if let Some(f) = first {
            x0 = x0.min(f);
            x1 = x1.max(last + 1);
            y0 = y0.min(y);
            y1 = y + 1;
        }
    }
    if x0 >= x1 || y0 >= y1 {
        let empty = Pixmap::new(1, 1).expect("1x1");
        return (empty, 0.0, 0.0);
    }
    if (x0, y0, x1, y1) == (0, 0, w, h) {
        return (pm, 0.0, 0.0);
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let mut out = Vec::with_capacity(cw * ch * 4);
    for y in y0..y1 {
        out.extend_from_slice(&data[(y * w + x0) * 4..(y * w + x1) * 4]);
    }
    let size = tiny_skia::IntSize::from_wh(cw as u32, ch as u32).expect("non-empty crop");
    let cropped = Pixmap::from_vec(out, size).expect("crop buffer size");
    (cropped, x0 as f32, y0 as f32)
}
