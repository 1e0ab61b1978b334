//! Themes: palette, typography, layout and motion, read from `config/themes/*.toml`.
//!
//! Every field has a default, so a user theme can be as small as a palette. Sizes are in percent
//! of the frame's short side ("units"), so a theme looks the same at every resolution and in
//! portrait.

use serde::{Deserialize, Serialize};
use vidbuilder_domain::spec::{Direction, TransitionKind, MAX_TRANSITION_SECONDS};

/// An opaque sRGB colour, written `"#RRGGBB"` in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// Parses `#RRGGBB` or `#RGB` (hex digits, either case); `None` otherwise.
    pub fn parse(s: &str) -> Option<Rgb> {
        let h = s.trim().strip_prefix('#')?;
        let h: String = if h.len() == 3 {
            h.chars().flat_map(|c| [c, c]).collect()
        } else {
            h.to_string()
        };
        if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = u32::from_str_radix(&h, 16).ok()?;
        Some(Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8))
    }

    /// The colour as `#RRGGBB` (upper-case hex).
    pub fn hex(self) -> String {
        format!("#{:02X}{:02X}{:02X}", self.0, self.1, self.2)
    }

    /// Components as 0..1 floats.
    pub fn f32(self) -> [f32; 3] {
        [
            self.0 as f32 / 255.0,
            self.1 as f32 / 255.0,
            self.2 as f32 / 255.0,
        ]
    }
}

impl<'de> Deserialize<'de> for Rgb {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rgb::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("'{s}' is not a colour; use \"#RRGGBB\""))
        })
    }
}

impl Serialize for Rgb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

/// Easing curves for entrance motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Easing {
    /// Constant speed.
    Linear,
    /// Decelerates: 1 − (1 − x)².
    EaseOutQuad,
    /// Decelerates: 1 − (1 − x)³ (the default).
    #[default]
    EaseOutCubic,
    /// Decelerates: 1 − (1 − x)⁴.
    EaseOutQuart,
    /// Decelerates: 1 − (1 − x)⁵.
    EaseOutQuint,
    /// Decelerates exponentially: 1 − 2^(−10x).
    EaseOutExpo,
    /// Overshoots slightly, then settles: playful.
    EaseOutBack,
    /// Accelerates then decelerates along a half cosine.
    EaseInOutSine,
    /// Accelerates then decelerates, cubic.
    EaseInOutCubic,
}

impl Easing {
    /// Maps progress `x` in 0..=1 (clamped) to eased progress.
    pub fn apply(self, x: f32) -> f32 {
        let x = x.clamp(0.0, 1.0);
        match self {
            Easing::Linear => x,
            Easing::EaseOutQuad => 1.0 - (1.0 - x) * (1.0 - x),
            Easing::EaseOutCubic => 1.0 - (1.0 - x).powi(3),
            Easing::EaseOutQuart => 1.0 - (1.0 - x).powi(4),
            Easing::EaseOutQuint => 1.0 - (1.0 - x).powi(5),
            Easing::EaseOutExpo => {
                if x >= 1.0 {
                    1.0
                } else {
                    1.0 - 2f32.powf(-10.0 * x)
                }
            }
            Easing::EaseOutBack => {
                let c1 = 1.40158;
                let c3 = c1 + 1.0;
                1.0 + c3 * (x - 1.0).powi(3) + c1 * (x - 1.0).powi(2)
            }
            Easing::EaseInOutSine => -((std::f32::consts::PI * x).cos() - 1.0) / 2.0,
            Easing::EaseInOutCubic => {
                if x < 0.5 {
                    4.0 * x * x * x
                } else {
                    1.0 - (-2.0 * x + 2.0).powi(3) / 2.0
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
/// Horizontal alignment of a theme's text and layout.
pub enum Align {
    /// Left-aligned (the default).
    #[default]
    Left,
    /// Centred.
    Center,
}

/// The small accent element of a title scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AccentStyle {
    /// A short thick bar above the title; grows sideways.
    #[default]
    Bar,
    /// A vertical bar left of the title; grows downwards (left-aligned layouts).
    Side,
    /// A thin rule between title and subtitle; grows from its anchor.
    Underline,
    /// No accent.
    None,
}

/// A faint static decoration drawn into the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// No pattern (the default).
    #[default]
    None,
    /// A dot grid fading out from the top-right corner.
    Dots,
    /// Concentric rings around the glow centre.
    Rings,
    /// A fine grid fading towards the top, like a horizon.
    Grid,
    /// A few large soft translucent circles.
    Bubbles,
}

/// `[palette]`: a theme's colours, background and text shadow.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Palette {
    /// Background gradient stops (1 to 4 colours).
    pub background: Vec<Rgb>,
    /// Gradient direction in degrees (0 = left→right, 90 = top→bottom).
    pub gradient_angle: f32,
    /// Optional soft radial glow over the background.
    pub glow: Option<Rgb>,
    /// Glow opacity at its centre, 0..1.
    pub glow_strength: f32,
    /// Glow centre, relative to the frame (0..1, 0..1).
    pub glow_center: [f32; 2],
    /// Glow radius in units of the frame's long side.
    pub glow_radius: f32,
    /// Darkening of the corners, 0..1.
    pub vignette: f32,
    /// Title text.
    pub text: Rgb,
    /// `**bold**` title spans (defaults to `text`).
    pub emphasis: Option<Rgb>,
    /// Subtitle text.
    pub subtitle: Rgb,
    /// Accent elements (bars, bullet dots, buttons) and `==highlight==` spans.
    pub accent: Rgb,
    /// Opacity of the soft text shadow, 0 for none.
    pub shadow: f32,
    /// Colour of the text shadow.
    pub shadow_color: Rgb,
    /// Decoration drawn into the background.
    pub pattern: Pattern,
    /// Peak opacity of the pattern, 0..1.
    pub pattern_opacity: f32,
    /// Pattern colour (defaults to `text`).
    pub pattern_color: Option<Rgb>,
}

impl Default for Palette {
    fn default() -> Self {
        Palette {
            background: vec![Rgb(0x0B, 0x1F, 0x44), Rgb(0x16, 0x3D, 0x6E)],
            gradient_angle: 120.0,
            glow: None,
            glow_strength: 0.0,
            glow_center: [0.8, 0.2],
            glow_radius: 0.6,
            vignette: 0.2,
            text: Rgb(0xFF, 0xFF, 0xFF),
            emphasis: None,
            subtitle: Rgb(0xC5, 0xD3, 0xE8),
            accent: Rgb(0x2F, 0x9B, 0xFF),
            shadow: 0.3,
            shadow_color: Rgb(0, 0, 0),
            pattern: Pattern::None,
            pattern_opacity: 0.08,
            pattern_color: None,
        }
    }
}

/// `[typography]`: a theme's font, weights and sizes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Typography {
    /// Font family (one of the shipped fonts, or one added in the config directory's `fonts/`).
    pub family: String,
    /// Weight of title text (100–900).
    pub title_weight: u16,
    /// Weight of `**bold**` spans.
    pub emphasis_weight: u16,
    /// Weight of subtitle text (100–900).
    pub subtitle_weight: u16,
    /// Title size, in percent of the frame's short side.
    pub title_size: f32,
    /// Subtitle size, in percent of the frame's short side.
    pub subtitle_size: f32,
    /// Line height as a multiple of the font size.
    pub title_line_height: f32,
    /// Subtitle line height as a multiple of its font size.
    pub subtitle_line_height: f32,
    /// Set subtitles in upper case.
    pub subtitle_uppercase: bool,
    /// The title shrinks until it fits in this many lines (or fewer).
    pub title_max_lines: u32,
}

impl Default for Typography {
    fn default() -> Self {
        Typography {
            family: "Inter".into(),
            title_weight: 400,
            emphasis_weight: 700,
            subtitle_weight: 400,
            title_size: 9.0,
            subtitle_size: 3.6,
            title_line_height: 1.12,
            subtitle_line_height: 1.4,
            subtitle_uppercase: false,
            title_max_lines: 4,
        }
    }
}

/// `[layout]`: a theme's alignment, accent and text measure.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Layout {
    /// Text alignment.
    pub align: Align,
    /// The accent element of title scenes.
    pub accent: AccentStyle,
    /// Widest text line, as a fraction of a landscape frame's width.
    pub max_width: f32,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            align: Align::Left,
            accent: AccentStyle::Bar,
            max_width: 0.72,
        }
    }
}

/// How elements enter a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Entrance {
    /// Rise into place from below while fading in.
    #[default]
    Rise,
    /// Slide in from the reading side (from the left) while fading in.
    Slide,
    /// Fade in where they stand.
    Fade,
}

/// `[motion]`: a theme's entrance animation, scene-end fade and default transition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Motion {
    /// Easing of entrances (and of counting stats).
    pub easing: Easing,
    /// How far text travels on entrance, in percent of the frame's short side.
    pub entrance_offset: f32,
    /// Title entrance length, seconds.
    pub title_duration: f32,
    /// Delay of the subtitle after the title, seconds.
    pub subtitle_delay: f32,
    /// Scene-end fade, seconds.
    pub fade_out: f32,
    /// How text and shapes enter.
    pub entrance: Entrance,
    /// Delay between successive elements of a scene (heading → body, stats, …), seconds.
    /// Bullet items are spread across the scene but never closer than this.
    pub stagger: f32,
    /// How a scene gives way to the next when the spec's scene sets no `transition`.
    pub transition: TransitionKind,
    /// Its length in seconds (ignored for `cut`).
    pub transition_duration: f32,
    /// Where the incoming scene comes from, for `slide` and `wipe`.
    pub transition_direction: Direction,
}

impl Default for Motion {
    fn default() -> Self {
        Motion {
            easing: Easing::EaseOutCubic,
            entrance_offset: 4.0,
            title_duration: 0.7,
            subtitle_delay: 0.25,
            fade_out: 0.45,
            entrance: Entrance::Rise,
            stagger: 0.18,
            transition: TransitionKind::Fade,
            transition_duration: 0.5,
            transition_direction: Direction::Left,
        }
    }
}

/// A complete theme.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Theme {
    /// The theme's name: its file stem, which specs name.
    pub name: String,
    /// A one-line description, listed by `GET /api/themes`.
    pub description: String,
    /// Colours and background.
    pub palette: Palette,
    /// Font, weights and sizes.
    pub typography: Typography,
    /// Alignment, accent and measure.
    pub layout: Layout,
    /// Entrances, fades and the default transition.
    pub motion: Motion,
}

impl Theme {
    /// Parse a theme file; `name` (the file stem) wins over any `name` key inside.
    pub fn from_toml(name: &str, text: &str) -> Result<Theme, String> {
        let mut t: Theme = toml::from_str(text).map_err(|e| e.to_string())?;
        t.name = name.to_string();
        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> Result<(), String> {
        let p = &self.palette;
        if p.background.is_empty() || p.background.len() > 4 {
            return Err("palette.background needs 1 to 4 colours".into());
        }
        for (what, v, lo, hi) in [
            ("palette.glow_strength", p.glow_strength, 0.0, 1.0),
            ("palette.vignette", p.vignette, 0.0, 1.0),
            ("palette.shadow", p.shadow, 0.0, 1.0),
            ("palette.pattern_opacity", p.pattern_opacity, 0.0, 1.0),
            ("palette.glow_radius", p.glow_radius, 0.01, 4.0),
            (
                "typography.title_size",
                self.typography.title_size,
                1.0,
                30.0,
            ),
            (
                "typography.subtitle_size",
                self.typography.subtitle_size,
                0.5,
                15.0,
            ),
            (
                "typography.title_line_height",
                self.typography.title_line_height,
                0.8,
                3.0,
            ),
            (
                "typography.subtitle_line_height",
                self.typography.subtitle_line_height,
                0.8,
                3.0,
            ),
            ("layout.max_width", self.layout.max_width, 0.2, 1.0),
            (
                "motion.entrance_offset",
                self.motion.entrance_offset,
                0.0,
                50.0,
            ),
            (
                "motion.title_duration",
                self.motion.title_duration,
                0.0,
                10.0,
            ),
            (
                "motion.subtitle_delay",
                self.motion.subtitle_delay,
                0.0,
                10.0,
            ),
            ("motion.fade_out", self.motion.fade_out, 0.0, 10.0),
            ("motion.stagger", self.motion.stagger, 0.0, 5.0),
            (
                "motion.transition_duration",
                self.motion.transition_duration,
                0.0,
                MAX_TRANSITION_SECONDS as f32,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{what} must be between {lo} and {hi}, got {v}"));
            }
        }
        for (what, w) in [
            ("typography.title_weight", self.typography.title_weight),
            (
                "typography.emphasis_weight",
                self.typography.emphasis_weight,
            ),
            (
                "typography.subtitle_weight",
                self.typography.subtitle_weight,
            ),
        ] {
            if !(100..=900).contains(&w) {
                return Err(format!("{what} must be between 100 and 900, got {w}"));
            }
        }
        if self.typography.title_max_lines == 0 {
            return Err("typography.title_max_lines must be at least 1".into());
        }
        Ok(())
    }

    /// Its summary for `GET /api/themes`.
    pub fn info(&self) -> ThemeInfo {
        ThemeInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            colors: ThemeColors {
                background: self.palette.background.iter().map(|c| c.hex()).collect(),
                text: self.palette.text.hex(),
                accent: self.palette.accent.hex(),
            },
            font: self.typography.family.clone(),
            easing: self.motion.easing,
        }
    }
}

/// A theme summary for `GET /api/themes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThemeInfo {
    /// The theme's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its main colours.
    pub colors: ThemeColors,
    /// Its font family.
    pub font: String,
    /// Its entrance easing.
    pub easing: Easing,
}

/// A theme's main colours, as `#RRGGBB`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThemeColors {
    /// The background gradient stops.
    pub background: Vec<String>,
    /// The title text colour.
    pub text: String,
    /// The accent colour.
    pub accent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse() {
        assert_eq!(Rgb::parse("#ff8000"), Some(Rgb(255, 128, 0)));
        assert_eq!(Rgb::parse("#FFF"), Some(Rgb(255, 255, 255)));
        assert_eq!(Rgb::parse("ff8000"), None);
        assert_eq!(Rgb::parse("#ggg000"), None);
        assert_eq!(Rgb(1, 2, 255).hex(), "#0102FF");
    }

    #[test]
    fn easings_start_at_0_and_end_at_1() {
        for e in [
            Easing::Linear,
            Easing::EaseOutQuad,
            Easing::EaseOutCubic,
            Easing::EaseOutQuart,
            Easing::EaseOutQuint,
            Easing::EaseOutExpo,
            Easing::EaseOutBack,
            Easing::EaseInOutSine,
            Easing::EaseInOutCubic,
        ] {
            assert!(e.apply(0.0).abs() < 1e-4, "{e:?}");
            assert!((e.apply(1.0) - 1.0).abs() < 1e-4, "{e:?}");
        }
    }

    #[test]
    fn minimal_theme_uses_defaults_and_bad_values_are_named() {
        let t = Theme::from_toml("mine", "[palette]\nbackground = [\"#000000\"]\n").unwrap();
        assert_eq!(t.name, "mine");
        assert_eq!(t.typography.family, "Inter");
        let e = Theme::from_toml("x", "[palette]\nbackground = []\n").unwrap_err();
        assert!(e.contains("palette.background"), "{e}");
        let e = Theme::from_toml("x", "[motion]\neasing = \"bouncy\"\n").unwrap_err();
        assert!(e.contains("bouncy"), "{e}");
        let e = Theme::from_toml("x", "[palette]\ntext = \"red\"\n").unwrap_err();
        assert!(e.contains("#RRGGBB"), "{e}");
    }
}
