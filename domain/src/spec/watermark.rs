//! `watermark`: an image drawn over every frame of every output (the landscape video and the
//! reel), in a corner or the centre, at a size relative to the frame's shorter side.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::{image_source, ImageSource};
use super::{err, SpecError, ValidationContext};

/// Where the watermark sits (`position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatermarkPosition {
    /// Top left, inside the margin.
    TopLeft,
    /// Top right, inside the margin.
    TopRight,
    /// Bottom left, inside the margin.
    BottomLeft,
    /// Bottom right, inside the margin (the default).
    #[default]
    BottomRight,
    /// The centre of the frame.
    Center,
}

impl WatermarkPosition {
    /// Every position with the name the spec uses for it.
    pub const ALL: [(&'static str, WatermarkPosition); 5] = [
        ("top-left", WatermarkPosition::TopLeft),
        ("top-right", WatermarkPosition::TopRight),
        ("bottom-left", WatermarkPosition::BottomLeft),
        ("bottom-right", WatermarkPosition::BottomRight),
        ("center", WatermarkPosition::Center),
    ];

    /// The name the spec uses for it.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .expect("listed")
            .0
    }

    /// The top-left corner of a `w × h` watermark in a `fw × fh` frame, `margin` pixels from
    /// the edges it sits at, in whole pixels (so it is copied, never resampled).
    pub fn place(self, fw: f32, fh: f32, w: f32, h: f32, margin: f32) -> (f32, f32) {
        let (left, right) = (margin, fw - margin - w);
        let (top, bottom) = (margin, fh - margin - h);
        let (x, y) = match self {
            WatermarkPosition::TopLeft => (left, top),
            WatermarkPosition::TopRight => (right, top),
            WatermarkPosition::BottomLeft => (left, bottom),
            WatermarkPosition::BottomRight => (right, bottom),
            WatermarkPosition::Center => ((fw - w) / 2.0, (fh - h) / 2.0),
        };
        (x.round(), y.round())
    }
}

/// A validated `watermark`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// `src`: the image (assets directory or http(s) URL, as scene images).
    pub src: ImageSource,
    /// `position`: where it sits (default bottom-right).
    pub position: WatermarkPosition,
    /// `opacity`: 0 (invisible) to 1 (as the image is); default [`DEFAULT_WATERMARK_OPACITY`].
    pub opacity: f32,
    /// `scale`: its width as a share of the frame's shorter side (so it is the same size on the
    /// landscape video and the reel), from [`MIN_WATERMARK_SCALE`] to 1; default
    /// [`DEFAULT_WATERMARK_SCALE`]. Its height follows the image's aspect, at most half the
    /// shorter side.
    pub scale: f32,
}

/// `opacity` when not given.
pub const DEFAULT_WATERMARK_OPACITY: f64 = 0.8;
/// `scale` when not given: 15% of the shorter side (162 px on 1080p and on the reel).
pub const DEFAULT_WATERMARK_SCALE: f64 = 0.15;
/// The smallest `scale`.
pub const MIN_WATERMARK_SCALE: f64 = 0.02;
/// The distance from the frame's edges, as a share of its shorter side.
pub const WATERMARK_MARGIN: f32 = 0.04;

/// `watermark`: absent, `null`, or `{src, position?, opacity?, scale?}`.
pub(super) fn validate_watermark(
    v: Option<&Value>,
    ctx: &ValidationContext,
) -> Result<Option<Watermark>, SpecError> {
    let obj: &Map<String, Value> = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return err(
                "watermark",
                "must be an object {\"src\": ..., \"position\": ..., \"opacity\": 0..1, \"scale\": ...}",
            )
        }
    };
    let src = match obj.get("src") {
        None | Some(Value::Null) => {
            return err(
                "watermark.src",
                "is required: a file in the assets directory or an http(s) URL",
            )
        }
        Some(v) => image_source(v, "watermark.src", ctx)?,
    };
    let position = match obj.get("position") {
        None | Some(Value::Null) => WatermarkPosition::default(),
        Some(Value::String(p)) => match WatermarkPosition::ALL.iter().find(|(n, _)| n == p) {
            Some((_, pos)) => *pos,
            None => {
                return err(
                    "watermark.position",
                    format!("unknown position '{p}'; use one of top-left, top-right, bottom-left, bottom-right, center"),
                )
            }
        },
        Some(_) => {
            return err(
                "watermark.position",
                "must be a string: top-left, top-right, bottom-left, bottom-right or center",
            )
        }
    };
    let number = |name: &str, default: f64, lo: f64| -> Result<f32, SpecError> {
        let field = format!("watermark.{name}");
        match obj.get(name) {
            None | Some(Value::Null) => Ok(default as f32),
            Some(v) => match v.as_f64() {
                Some(x) if x >= lo && x <= 1.0 => Ok(x as f32),
                Some(x) => err(field, format!("must be between {lo} and 1, got {x}")),
                None => err(field, format!("must be a number between {lo} and 1")),
            },
        }
    };
    Ok(Some(Watermark {
        src,
        position,
        opacity: number("opacity", DEFAULT_WATERMARK_OPACITY, 0.0)?,
        scale: number("scale", DEFAULT_WATERMARK_SCALE, MIN_WATERMARK_SCALE)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_position_keeps_its_margin_in_whole_pixels() {
        let (fw, fh, w, h, m) = (1920.0, 1080.0, 162.0, 81.0, 43.2);
        let at = |p: WatermarkPosition| p.place(fw, fh, w, h, m);
        assert_eq!(at(WatermarkPosition::TopLeft), (43.0, 43.0));
        assert_eq!(at(WatermarkPosition::TopRight), (1715.0, 43.0));
        assert_eq!(at(WatermarkPosition::BottomLeft), (43.0, 956.0));
        assert_eq!(at(WatermarkPosition::BottomRight), (1715.0, 956.0));
        assert_eq!(at(WatermarkPosition::Center), (879.0, 500.0));
        for (name, p) in WatermarkPosition::ALL {
            assert_eq!(p.as_str(), name);
        }
    }
}
