//! `hero-title`: a big title with inline markdown, an optional subtitle and the theme's accent.

use super::{SceneContext, SceneDraw, Timing};
use crate::frame::Canvas;
use crate::text::{fit, parse_inline, rasterize, Shadow, Span, TextLayer, TextStyle};
use crate::theme::{AccentStyle, Align, Entrance, Rgb};

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
    theme_accent: Rgb,
    entrance: Entrance,
    timing: Timing,
    offset: f32,
    subtitle_delay: f32,
}

impl HeroTitle {
    /// Lays out `title` (inline markdown), the subtitle and the accent for `ctx`'s frame.
    pub fn new(ctx: &mut SceneContext, title: &str, subtitle: Option<&str>) -> HeroTitle {
        let (theme, pal, fr, u, (sx, sy, sw, sh), align) = ctx.setup();
        let ty = &theme.typography;
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
        let max_w = if fr.narrow() {
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
                &[color, pal.emphasis.unwrap_or(color), pal.accent],
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
            &[pal.text, pal.emphasis.unwrap_or(pal.text), pal.accent],
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
            entrance: theme.motion.entrance,
            timing: ctx.timing(),
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
        let drift = match self.entrance {
            Entrance::Fade => 0.0,
            _ => -out_q * out_q * self.offset * 0.35,
        };
        // (dx, dy) of an element `travel` px from rest
        let shift = |travel: f32| match self.entrance {
            Entrance::Rise => (0.0, travel),
            Entrance::Slide => (-1.4 * travel, 0.0),
            Entrance::Fade => (0.0, 0.0),
        };

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
        let (dx, dy) = shift((1.0 - p) * self.offset);
        let y = l.y + dy + drift;
        canvas.layer(
            &l.layer.pixmap,
            l.x + dx - l.layer.pad as f32,
            y - l.layer.pad as f32,
            op * out_op,
        );

        if let Some(s) = &self.subtitle {
            let (p, op) = tm.enter(t, 0.1 + self.subtitle_delay);
            let (dx, dy) = shift((1.0 - p) * self.offset * 0.8);
            let y = s.y + dy + drift;
            canvas.layer(
                &s.layer.pixmap,
                s.x + dx - s.layer.pad as f32,
                y - s.layer.pad as f32,
                op * out_op,
            );
        }
    }
}
