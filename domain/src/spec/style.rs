//! Per-scene looks: `background` and `transition`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::content::{image_source, ImageSource};
use super::video::VideoClip;
use super::{err, SpecError, ValidationContext};

/// A scene's own background, replacing the theme's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Background {
    /// One colour, `#RRGGBB`.
    Color {
        /// Lower-case `#rrggbb`.
        color: String,
    },
    /// A linear gradient through 2–4 colours at `angle` degrees (0 = left to right, 90 = top to
    /// bottom).
    Gradient {
        /// The colours in order, each lower-case `#rrggbb`.
        colors: Vec<String>,
        /// Degrees, from -360 to 360 (default 135).
        angle: f32,
    },
    /// An image covering the frame, blended towards the theme's first background colour by `dim`
    /// (0–1) so text stays readable: darker on dark themes, lighter on light ones.
    Image {
        /// The image.
        src: ImageSource,
        /// How far it is blended towards the theme's background colour, 0–1 (default 0.35).
        dim: f32,
    },
    /// A video clip covering the frame (muted unless `muted: false`), blended towards the
    /// theme's first background colour by `dim` like an image.
    Video {
        /// The clip (`video` names its source in the spec).
        clip: VideoClip,
        /// How far it is blended towards the theme's background colour, 0–1 (default 0.35).
        dim: f32,
    },
}

/// How one scene gives way to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransitionKind {
    /// No transition: the next scene starts at once.
    Cut,
    /// A cross-fade.
    Fade,
    /// The new scene pushes the old one out.
    Slide,
    /// The new scene is revealed behind a moving edge.
    Wipe,
    /// The old scene grows and fades out while the new one grows into place.
    Zoom,
}

impl TransitionKind {
    /// Every kind with the name the spec uses for it.
    pub const ALL: [(&'static str, TransitionKind); 5] = [
        ("cut", TransitionKind::Cut),
        ("fade", TransitionKind::Fade),
        ("slide", TransitionKind::Slide),
        ("wipe", TransitionKind::Wipe),
        ("zoom", TransitionKind::Zoom),
    ];

    /// The name the spec uses for it (`"fade"`).
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .expect("listed")
            .0
    }

    /// Reads a transition name (trimmed, any case).
    pub fn parse(s: &str) -> Option<TransitionKind> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s.trim().to_ascii_lowercase())
            .map(|(_, k)| *k)
    }
}

/// Direction of a `slide` or `wipe`: the way the movement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The new scene enters from the right, moving left (default).
    #[default]
    Left,
    /// The new scene enters from the left, moving right.
    Right,
    /// The new scene enters from the bottom, moving up.
    Up,
    /// The new scene enters from the top, moving down.
    Down,
}

/// The transition from a scene to the next one. It is centred on the cut between them (half in
/// each scene), so the video's length stays the sum of the scene durations. On the last scene it
/// has nothing to lead into and is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// `type`: the kind of transition.
    pub kind: TransitionKind,
    /// Seconds; 0 for `cut`.
    pub duration: f64,
    /// `direction`: for `slide` and `wipe` (default left); the other kinds ignore it.
    pub direction: Direction,
}

/// Longest transition, in seconds.
pub const MAX_TRANSITION_SECONDS: f64 = 3.0;
/// Default transition length, in seconds.
pub const DEFAULT_TRANSITION_SECONDS: f64 = 0.5;

fn kinds() -> String {
    TransitionKind::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"fade"` or `{"type": "slide", "duration": 0.6, "direction": "up"}`.
pub(super) fn transition(v: &Value, field: &str) -> Result<Option<Transition>, SpecError> {
    let (kind_v, duration_v, direction_v) = match v {
        Value::Null => return Ok(None),
        Value::String(_) => (v, None, None),
        Value::Object(o) => match o.get("type") {
            Some(t) => (t, o.get("duration"), o.get("direction")),
            None => return err(format!("{field}.type"), format!("is required: {}", kinds())),
        },
        _ => {
            return err(
                field,
                format!(
                    "must be a transition name ({}) or an object {{\"type\", \"duration\"}}",
                    kinds()
                ),
            )
        }
    };
    let type_field = if v.is_object() {
        format!("{field}.type")
    } else {
        field.to_string()
    };
    let kind = match kind_v.as_str().and_then(TransitionKind::parse) {
        Some(k) => k,
        None => return err(type_field, format!("must be one of {}", kinds())),
    };
    let duration = match duration_v {
        _ if kind == TransitionKind::Cut => 0.0,
        None | Some(Value::Null) => DEFAULT_TRANSITION_SECONDS,
        Some(d) => match d.as_f64() {
            Some(d) if d.is_finite() && d > 0.0 && d <= MAX_TRANSITION_SECONDS => d,
            _ => {
                return err(
                    format!("{field}.duration"),
                    format!(
                        "must be a number of seconds above 0 and at most {MAX_TRANSITION_SECONDS}"
                    ),
                )
            }
        },
    };
    let direction = match direction_v {
        None | Some(Value::Null) => Direction::default(),
        Some(d) => match d.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("left") => Direction::Left,
            Some("right") => Direction::Right,
            Some("up") => Direction::Up,
            Some("down") => Direction::Down,
            _ => {
                return err(
                    format!("{field}.direction"),
                    "must be one of left, right, up, down",
                )
            }
        },
    };
    Ok(Some(Transition {
        kind,
        duration,
        direction,
    }))
}

/// `#RGB` or `#RRGGBB`, returned as lower-case `#rrggbb`.
pub fn parse_color(s: &str) -> Option<String> {
    let hex = s.trim().strip_prefix('#')?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let full = match hex.len() {
        3 => hex.chars().flat_map(|c| [c, c]).collect::<String>(),
        6 => hex.to_string(),
        _ => return None,
    };
    Some(format!("#{}", full.to_ascii_lowercase()))
}

fn color(v: Option<&Value>, field: &str) -> Result<String, SpecError> {
    match v.and_then(Value::as_str).and_then(parse_color) {
        Some(c) => Ok(c),
        None => err(field, "must be a colour written #RRGGBB or #RGB"),
    }
}

/// `"#112233"`, `{"color": …}`, `{"gradient": ["#…", "#…"], "angle": 135}` or
/// `{"image": "…", "dim": 0.35}`.
pub(super) fn background(
    v: &Value,
    field: &str,
    ctx: &ValidationContext,
) -> Result<Option<Background>, SpecError> {
    let o =
        match v {
            Value::Null => return Ok(None),
            Value::String(_) => {
                return Ok(Some(Background::Color {
                    color: color(Some(v), field)?,
                }))
            }
            Value::Object(o) => o,
            _ => return err(
                field,
                "must be a colour \"#RRGGBB\" or an object with color, gradient, image or video",
            ),
        };
    if let Some(c) = o.get("color") {
        return Ok(Some(Background::Color {
            color: color(Some(c), &format!("{field}.color"))?,
        }));
    }
    if let Some(g) = o.get("gradient") {
        let at = format!("{field}.gradient");
        let list = match g.as_array() {
            Some(a) if (2..=4).contains(&a.len()) => a,
            _ => return err(at, "must be an array of 2 to 4 colours"),
        };
        let colors = list
            .iter()
            .enumerate()
            .map(|(k, c)| color(Some(c), &format!("{at}[{k}]")))
            .collect::<Result<_, _>>()?;
        let angle = match o.get("angle") {
            None | Some(Value::Null) => 135.0,
            Some(a) => match a.as_f64() {
                Some(a) if a.is_finite() && (-360.0..=360.0).contains(&a) => a as f32,
                _ => {
                    return err(
                        format!("{field}.angle"),
                        "must be a number of degrees between -360 and 360",
                    )
                }
            },
        };
        return Ok(Some(Background::Gradient { colors, angle }));
    }
    let dim = || match o.get("dim") {
        None | Some(Value::Null) => Ok(0.35),
        Some(d) => match d.as_f64() {
            Some(d) if (0.0..=1.0).contains(&d) => Ok(d as f32),
            _ => err(format!("{field}.dim"), "must be a number between 0 and 1"),
        },
    };
    if let Some(i) = o.get("image") {
        let src = image_source(i, &format!("{field}.image"), ctx)?;
        return Ok(Some(Background::Image { src, dim: dim()? }));
    }
    if o.contains_key("video") {
        let clip = super::video::clip(o, field, "video", true, ctx)?;
        return Ok(Some(Background::Video { clip, dim: dim()? }));
    }
    err(
        field,
        "must have one of color, gradient (with optional angle), image or video (with optional dim)",
    )
}
