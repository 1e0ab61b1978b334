//! Scenes. Each scene type prepares its static layers once (text shaped and rasterised, shapes
//! measured) for a given frame geometry, then draws any frame of itself cheaply. New scene types
//! add a [`SceneContent`] arm to [`prepare`] and a type implementing [`SceneDraw`].

use cosmic_text::{FontSystem, SwashCache};
use vidbuilder_actors::spec::SceneContent;

use super::frame::Canvas;
use super::text::{fit, parse_inline, rasterize, Shadow, Span, TextLayer, TextStyle};
use super::theme::{AccentStyle, Align, Easing, Theme};

/// The frame a scene is laid out for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
}

impl Frame {
    pub fn portrait(&self) -> bool {
        self.height > self.width
    }

    /// One layout unit: 1% of the short side, so sizes look the same at every resolution.
    pub fn unit(&self) -> f32 {
        self.width.min(self.height) as f32 / 100.0
    }

    /// The title-safe box (x, y, w, h). Portrait leaves room for the reel UI at top and bottom.
    pub fn safe_box(&self) -> (f32, f32, f32, f32) {
        let (w, h) = (self.width as f32, self.height as f32);
        if self.portrait() {
            (0.08 * w, 0.17 * h, 0.84 * w, 0.60 * h)
        } else {
            (0.09 * w, 0.12 * h, 0.82 * w, 0.76 * h)
        }
    }
}

/// Everything a scene needs to prepare itself.
pub struct SceneContext<'a> {
    pub fonts: &'a mut FontSystem,
    pub swash: &'a mut SwashCache,
    pub theme: &'a Theme,
    pub frame: Frame,
    /// Scene length in seconds, and the frame rate.
    pub duration: f32,
    pub fps: u32,
}

/// A prepared scene: draws the frame `t` seconds into itself onto a frame that already holds the
/// background.
pub trait SceneDraw: Send {
    fn draw(&self, canvas: &mut Canvas, t: f32);
}

/// Prepare a scene for drawing.
pub fn prepare(content: &SceneContent, ctx: &mut SceneContext) -> Box<dyn SceneDraw> {
    match content {
        SceneContent::HeroTitle { title, subtitle } => {
            Box::new(HeroTitle::new(ctx, title, subtitle.as_deref()))
        }
    }
}

/// Shared scene timing: entrance of staggered elements and the fade-out at the scene end.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Scales all entrance timings down for short scenes.
    k: f32,
    start: f32,
    enter: f32,
    fade_out: f32,
    /// Time of the last frame.
    last: f32,
    easing: Easing,
}

impl Timing {
    fn new(theme: &Theme, duration: f32, fps: u32) -> Timing {
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

    /// (position progress 0..1 (may overshoot with back easing), opacity 0..1) of an element
    /// entering `delay` seconds after the scene's start.
    fn enter(&self, t: f32, delay: f32) -> (f32, f32) {
        let x = (t - self.start - delay * self.k) / self.enter;
        let pos = if x <= 0.0 { 0.0 } else { self.easing.apply(x) };
        let op = Easing::EaseOutQuad.apply(x / 0.75);
        (pos, op)
    }

    /// Scene-end fade: (opacity multiplier, progress 0..1).
    fn exit(&self, t: f32) -> (f32, f32) {
        if self.fade_out <= 0.0 {
            return (1.0, 0.0);
        }
        let q = ((t - (self.last - self.fade_out)) / self.fade_out).clamp(0.0, 1.0);
        (1.0 - q * q, q)
    }
}

struct Placed {
    layer: TextLayer,
    /// Where layout (0, 0) lands in the frame at rest.
    x: f32,
    y: f32,
}

struct Accent {
    style: AccentStyle,
    x: f32,
    y: f32,
    w: f32,
    h: f32,
    /// Grow from the centre (centred layouts) rather than from the start.
    centred: bool,
}

/// `hero-title`: a big title with inline markdown, an optional subtitle and an accent.
pub struct HeroTitle {
    title: Placed,
    subtitle: Option<Placed>,
    accent: Option<Accent>,
    theme_accent: super::theme::Rgb,
    timing: Timing,
    offset: f32,
    subtitle_delay: f32,
}

impl HeroTitle {
    pub fn new(ctx: &mut SceneContext, title: &str, subtitle: Option<&str>) -> HeroTitle {
        let theme = ctx.theme;
        let ty = &theme.typography;
        let pal = &theme.palette;
        let fr = ctx.frame;
        let u = fr.unit();
        let (sx, sy, sw, sh) = fr.safe_box();
        let align = theme.layout.align;
        let accent_style = match (theme.layout.accent, align) {
            // a side bar beside centred text looks lost: use a bar above instead
            (AccentStyle::Side, Align::Center) => AccentStyle::Bar,
            (s, _) => s,
        };

        // Portrait frames are narrow but tall: set type a little larger relative to the width.
        let (title_scale, sub_scale) = if fr.portrait() {
            (1.3, 1.2)
        } else {
            (1.0, 1.0)
        };

        // Horizontal measure.
        let side_indent = if accent_style == AccentStyle::Side {
            3.4 * u
        } else {
            0.0
        };
        let max_w = if fr.portrait() {
            sw
        } else {
            (theme.layout.max_width * fr.width as f32).min(sw)
        } - side_indent;
        let text_x0 = sx + side_indent;

        // Vertical budget.
        let bar_h = 0.8 * u;
        let above = if accent_style == AccentStyle::Bar {
            bar_h + 3.4 * u
        } else {
            0.0
        };
        let (gap, rule) = match accent_style {
            AccentStyle::Underline => (2.6 * u, 0.32 * u),
            _ => (2.4 * u, 0.0),
        };

        let shadow = (pal.shadow > 0.0).then_some(Shadow {
            color: pal.shadow_color,
            opacity: pal.shadow,
            blur: 1.1 * u,
            dy: 0.35 * u,
        });

        let sub = subtitle.map(|s| {
            let text = if ty.subtitle_uppercase {
                s.to_uppercase()
            } else {
                s.to_string()
            };
            // The subtitle is plain text styled by the theme; markdown markers are honoured too.
            let spans = parse_inline(&text);
            let style = TextStyle {
                family: ty.family.clone(),
                size: ty.subtitle_size * u * sub_scale,
                line_height: ty.subtitle_line_height,
                weight: ty.subtitle_weight,
                bold_weight: ty.emphasis_weight.max(ty.subtitle_weight),
                align,
                max_lines: 3,
            };
            let fitted = fit(ctx.fonts, &spans, &style, max_w, sh * 0.3);
            let color = pal.subtitle;
            rasterize(
                ctx.fonts,
                ctx.swash,
                &fitted,
                &[color, pal.emphasis.unwrap_or(color)],
                shadow,
            )
        });
        let sub_h = sub
            .as_ref()
            .map(|l| l.height + gap * 2.0 + rule)
            .unwrap_or(0.0);

        let spans: Vec<Span> = parse_inline(title);
        let style = TextStyle {
            family: ty.family.clone(),
            size: ty.title_size * u * title_scale,
            line_height: ty.title_line_height,
            weight: ty.title_weight,
            bold_weight: ty.emphasis_weight,
            align,
            max_lines: ty.title_max_lines as usize,
        };
        let title_box_h = (sh - above - sub_h).max(sh * 0.3);
        let fitted = fit(ctx.fonts, &spans, &style, max_w, title_box_h);
        let title_layer = rasterize(
            ctx.fonts,
            ctx.swash,
            &fitted,
            &[pal.text, pal.emphasis.unwrap_or(pal.text)],
            shadow,
        );

        // Stack the block and centre it vertically (a touch above centre, optically).
        let block_h = above + title_layer.height + sub_h;
        let top = (sy + (sh - block_h) / 2.0 - 0.015 * fr.height as f32)
            .max(sy)
            .round();
        let place_x = |w: f32| match align {
            Align::Left => text_x0.round(),
            Align::Center => (fr.width as f32 / 2.0 - w / 2.0).round(),
        };
        let title_y = (top + above).round();
        let title = Placed {
            x: place_x(title_layer.width),
            y: title_y,
            layer: title_layer,
        };
        let after_title = title_y + title.layer.height;

        let subtitle = sub.map(|layer| {
            let y = (after_title + gap * 2.0 + rule).round();
            Placed {
                x: place_x(layer.width),
                y,
                layer,
            }
        });

        let centred = align == Align::Center;
        let accent = match accent_style {
            AccentStyle::None => None,
            AccentStyle::Bar => {
                let w = 7.5 * u;
                let x = if centred {
                    fr.width as f32 / 2.0 - w / 2.0
                } else {
                    text_x0
                };
                Some(Accent {
                    style: accent_style,
                    x,
                    y: top,
                    w,
                    h: bar_h,
                    centred,
                })
            }
            AccentStyle::Side => {
                // beside the title's first line to the subtitle's last
                let inset = fitted.size * 0.18;
                let bottom = subtitle
                    .as_ref()
                    .map(|s| s.y + s.layer.height)
                    .unwrap_or(after_title);
                Some(Accent {
                    style: accent_style,
                    x: sx,
                    y: title_y + inset,
                    w: 0.6 * u,
                    h: (bottom - title_y - 2.0 * inset).max(u),
                    centred: false,
                })
            }
            AccentStyle::Underline => {
                let w = 10.0 * u;
                let x = if centred {
                    fr.width as f32 / 2.0 - w / 2.0
                } else {
                    text_x0
                };
                Some(Accent {
                    style: accent_style,
                    x,
                    y: after_title + gap,
                    w,
                    h: rule.max(1.0),
                    centred,
                })
            }
        };

        HeroTitle {
            title,
            subtitle,
            accent,
            theme_accent: pal.accent,
            timing: Timing::new(theme, ctx.duration, ctx.fps),
            offset: theme.motion.entrance_offset * u,
            subtitle_delay: theme.motion.subtitle_delay,
        }
    }
}

impl SceneDraw for HeroTitle {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        let tm = &self.timing;
        let (out_op, out_q) = tm.exit(t);
        if out_op <= 0.0 {
            return;
        }
        let drift = -out_q * out_q * self.offset * 0.35;

        if let Some(a) = &self.accent {
            let (p, op) = tm.enter(t, 0.0);
            let grow = p.clamp(0.0, 1.06);
            let op = op * out_op;
            match a.style {
                AccentStyle::Side => canvas.round_rect(
                    [a.x, a.y + drift, a.w, a.h * grow.min(1.0)],
                    a.w / 2.0,
                    self.theme_accent,
                    op,
                ),
                _ => {
                    let w = a.w * grow;
                    let x = if a.centred {
                        a.x + (a.w - w) / 2.0
                    } else {
                        a.x
                    };
                    canvas.round_rect([x, a.y + drift, w, a.h], a.h / 2.0, self.theme_accent, op);
                }
            }
        }

        let (p, op) = tm.enter(t, 0.1);
        let l = &self.title;
        let y = l.y + (1.0 - p) * self.offset + drift;
        canvas.layer(
            &l.layer.pixmap,
            l.x - l.layer.pad as f32,
            y - l.layer.pad as f32,
            op * out_op,
        );

        if let Some(s) = &self.subtitle {
            let (p, op) = tm.enter(t, 0.1 + self.subtitle_delay);
            let y = s.y + (1.0 - p) * self.offset * 0.8 + drift;
            canvas.layer(
                &s.layer.pixmap,
                s.x - s.layer.pad as f32,
                y - s.layer.pad as f32,
                op * out_op,
            );
        }
    }
}
