//! `format` and `aspectRatios`: which files a job makes from its scenes.
//!
//! Every aspect ratio is rendered from the same scenes with the layout reflowed for its frame,
//! at the quality's short side (1080p: 1920×1080, 1080×1920, 1080×1080, 1080×1350). The first
//! ratio is the job's main video (`videoUrl`); a later `9:16` is its reel (`reelsUrl`), and
//! `generateReels: true` stays the shorthand for a `9:16` reel after the others, at 1080×1920
//! whatever the quality, as it always was.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{err, FrameRate, Quality, SpecError};

/// The longest GIF, in seconds: a GIF holds every frame uncompressed by time, so it is for
/// short loops.
pub const MAX_GIF_SECONDS: f64 = 30.0;

/// The container and codecs of every output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Format {
    /// H.264 video and AAC audio in MP4 (the default).
    #[default]
    Mp4,
    /// VP9 video and Opus audio in WebM.
    Webm,
    /// An animated GIF with one palette made for the whole video; no sound.
    Gif,
}

impl Format {
    /// Every format, the default first.
    pub const ALL: [Format; 3] = [Format::Mp4, Format::Webm, Format::Gif];

    /// The name the spec uses (`"webm"`), which is also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
            Format::Gif => "gif",
        }
    }

    /// The file extension (no dot).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// The MIME type downloads are served with.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Mp4 => "video/mp4",
            Format::Webm => "video/webm",
            Format::Gif => "image/gif",
        }
    }

    /// Whether the file carries sound (music, clips' sound, voice-overs).
    pub fn has_audio(self) -> bool {
        self != Format::Gif
    }

    /// The format of a file name's extension, if it is one of ours.
    pub fn of_extension(ext: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.extension() == ext)
    }

    /// The format of a rendered file, by its extension (MP4 when it has none of ours).
    pub fn of_path(path: &std::path::Path) -> Format {
        path.extension()
            .and_then(|e| Format::of_extension(&e.to_string_lossy()))
            .unwrap_or_default()
    }
}

/// The shape of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AspectRatio {
    /// 16:9 landscape (the default).
    #[serde(rename = "16:9")]
    Landscape,
    /// 9:16 vertical, for reels and stories.
    #[serde(rename = "9:16")]
    Vertical,
    /// 1:1 square.
    #[serde(rename = "1:1")]
    Square,
    /// 4:5 portrait, for feeds.
    #[serde(rename = "4:5")]
    Portrait,
}

impl AspectRatio {
    /// Every ratio, as the spec lists them in the docs.
    pub const ALL: [AspectRatio; 4] = [
        AspectRatio::Landscape,
        AspectRatio::Vertical,
        AspectRatio::Square,
        AspectRatio::Portrait,
    ];

    /// The name the spec and the `outputs` map use (`"1:1"`).
    pub fn as_str(self) -> &'static str {
        match self {
            AspectRatio::Landscape => "16:9",
            AspectRatio::Vertical => "9:16",
            AspectRatio::Square => "1:1",
            AspectRatio::Portrait => "4:5",
        }
    }

    /// The name in URLs, file names and object keys (`"1x1"`).
    pub fn slug(self) -> &'static str {
        match self {
            AspectRatio::Landscape => "16x9",
            AspectRatio::Vertical => "9x16",
            AspectRatio::Square => "1x1",
            AspectRatio::Portrait => "4x5",
        }
    }

    /// Reads `"1:1"` or `"1x1"` (surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<AspectRatio> {
        let s = s.trim();
        AspectRatio::ALL
            .into_iter()
            .find(|r| r.as_str() == s || r.slug() == s)
    }

    /// Width and height at `quality`: the quality's short side, the long side from the ratio.
    pub fn size(self, quality: Quality) -> (u32, u32) {
        let (w, h) = quality.dimensions();
        let s = w.min(h);
        match self {
            AspectRatio::Landscape => (w.max(h), s),
            AspectRatio::Vertical => (s, w.max(h)),
            AspectRatio::Square => (s, s),
            // 4:5, rounded to an even height (every quality's short side is a multiple of 8)
            AspectRatio::Portrait => (s, (s * 5 / 4 + 1) & !1),
        }
    }
}

/// What a job's main and extra outputs are: `format` and `aspectRatios` of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// `format`: the container and codecs of every output.
    #[serde(default, skip_serializing_if = "is_mp4")]
    pub format: Format,
    /// `aspectRatios`: the ratios in order, the main one first; empty: `16:9` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aspect_ratios: Vec<AspectRatio>,
}

fn is_mp4(f: &Format) -> bool {
    *f == Format::Mp4
}

impl Outputs {
    /// True when the spec left both at their defaults (an MP4, landscape).
    pub fn is_default(&self) -> bool {
        *self == Outputs::default()
    }
}

/// What one output of a job is to the rest of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputRole {
    /// The first ratio: `videoUrl`, `s3Upload.standard`.
    Main,
    /// A `9:16` after the first: `reelsUrl`, `s3Upload.reels`.
    Reel,
    /// Any other ratio: only in `outputs`.
    Extra,
}

/// One file a job renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputShape {
    /// Its aspect ratio (its key in `outputs`).
    pub ratio: AspectRatio,
    /// Where it appears besides `outputs`.
    pub role: OutputRole,
    /// Frame width, in pixels.
    pub width: u32,
    /// Frame height, in pixels.
    pub height: u32,
}

impl OutputShape {
    /// The file name's stem for job `job`: `<job>` (main), `<job>-reel`, `<job>-<slug>`.
    pub fn stem(&self, job: &str) -> String {
        match self.role {
            OutputRole::Main => job.to_string(),
            OutputRole::Reel => format!("{job}-reel"),
            OutputRole::Extra => format!("{job}-{}", self.ratio.slug()),
        }
    }
}

/// The outputs of a spec at `quality`, the main one first: its `aspectRatios` (16:9 when none),
/// then, with `generate_reels` and no `9:16` among them, a 1080×1920 reel.
pub fn output_shapes(
    outputs: &Outputs,
    quality: Quality,
    generate_reels: bool,
) -> Vec<OutputShape> {
    let ratios: &[AspectRatio] = if outputs.aspect_ratios.is_empty() {
        &[AspectRatio::Landscape]
    } else {
        &outputs.aspect_ratios
    };
    let mut shapes: Vec<OutputShape> = ratios
        .iter()
        .enumerate()
        .map(|(i, &ratio)| {
            let (width, height) = ratio.size(quality);
            let role = match (i, ratio) {
                (0, _) => OutputRole::Main,
                (_, AspectRatio::Vertical) => OutputRole::Reel,
                _ => OutputRole::Extra,
            };
            OutputShape {
                ratio,
                role,
                width,
                height,
            }
        })
        .collect();
    if generate_reels && !ratios.contains(&AspectRatio::Vertical) {
        shapes.push(OutputShape {
            ratio: AspectRatio::Vertical,
            role: OutputRole::Reel,
            width: 1080,
            height: 1920,
        });
    }
    shapes
}

/// Reads `format` and `aspectRatios`; `seconds` is the video's length (a GIF is short) and
/// `frame_rate` its frame rate (variable is an MP4 feature).
pub(super) fn validate_outputs(
    format: Option<&Value>,
    ratios: Option<&Value>,
    seconds: f64,
    frame_rate: FrameRate,
) -> Result<Outputs, SpecError> {
    let names = || Format::ALL.map(Format::as_str).join(", ");
    let format = match format {
        None | Some(Value::Null) => Format::Mp4,
        Some(Value::String(s)) => {
            match Format::ALL
                .into_iter()
                .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
            {
                Some(f) => f,
                None => {
                    return err(
                        "format",
                        format!("unknown format '{s}'; use one of {}", names()),
                    )
                }
            }
        }
        Some(_) => return err("format", format!("must be a string: one of {}", names())),
    };
    if format == Format::Gif && seconds > MAX_GIF_SECONDS {
        return err(
            "format",
            format!("a gif is for short videos: this one lasts {seconds}s, a gif at most {MAX_GIF_SECONDS}s; use mp4 or webm"),
        );
    }
    if format != Format::Mp4 && frame_rate == FrameRate::Variable {
        return err(
            "frameRate",
            format!(
                "variable frame rate is made for mp4; use constant with {}",
                format.as_str()
            ),
        );
    }
    let all = || AspectRatio::ALL.map(AspectRatio::as_str).join(", ");
    let mut aspect_ratios = Vec::new();
    match ratios {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return err(
                    "aspectRatios",
                    format!("must name at least one of {}", all()),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let field = format!("aspectRatios[{i}]");
                let Some(s) = item.as_str() else {
                    return err(field, format!("must be a string: one of {}", all()));
                };
                let Some(r) = AspectRatio::parse(s) else {
                    return err(
                        field,
                        format!("unknown aspect ratio '{s}'; use one of {}", all()),
                    );
                };
                if aspect_ratios.contains(&r) {
                    return err(field, format!("'{}' is listed twice", r.as_str()));
                }
                aspect_ratios.push(r);
            }
        }
        Some(_) => {
            return err(
                "aspectRatios",
                format!(
                    "must be an array of aspect ratios, e.g. [\"16:9\", \"1:1\"]; one of {}",
                    all()
                ),
            )
        }
    }
    // `["16:9"]` is the default, stored as such so an unchanged spec reads back the same
    if aspect_ratios == [AspectRatio::Landscape] {
        aspect_ratios.clear();
    }
    Ok(Outputs {
        format,
        aspect_ratios,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shapes(
        ratios: &[&str],
        quality: Quality,
        reels: bool,
    ) -> Vec<(String, OutputRole, u32, u32)> {
        let v = json!(ratios);
        let o = validate_outputs(None, Some(&v), 5.0, FrameRate::Constant).unwrap();
        output_shapes(&o, quality, reels)
            .into_iter()
            .map(|s| (s.ratio.as_str().to_string(), s.role, s.width, s.height))
            .collect()
    }

    #[test]
    fn ratios_are_sized_from_the_quality_and_the_first_is_main() {
        use OutputRole::*;
        assert_eq!(
            shapes(&["16:9", "9:16", "1:1", "4:5"], Quality::P1080, false),
            vec![
                ("16:9".into(), Main, 1920, 1080),
                ("9:16".into(), Reel, 1080, 1920),
                ("1:1".into(), Extra, 1080, 1080),
                ("4:5".into(), Extra, 1080, 1350),
            ]
        );
        assert_eq!(
            shapes(&["1x1", "16:9"], Quality::Draft, false),
            vec![
                ("1:1".into(), Main, 360, 360),
                ("16:9".into(), Extra, 640, 360)
            ]
        );
        assert_eq!(
            shapes(&["4:5"], Quality::K4, false),
            vec![("4:5".into(), Main, 2160, 2700)]
        );
        assert_eq!(shapes(&["4:5"], Quality::P720, false)[0].3, 900);
    }

    #[test]
    fn generate_reels_adds_the_legacy_reel_unless_9_16_is_listed() {
        use OutputRole::*;
        let none = Outputs::default();
        let s = output_shapes(&none, Quality::P720, true);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].role, s[0].width, s[0].height), (Main, 1280, 720));
        assert_eq!((s[1].role, s[1].width, s[1].height), (Reel, 1080, 1920));
        // listed: sized by the quality, not doubled
        let s = shapes(&["16:9", "9:16"], Quality::P720, true);
        assert_eq!(s.len(), 2);
        assert_eq!((s[1].2, s[1].3), (720, 1280));
        // a 9:16 main video is not a reel
        let s = shapes(&["9:16"], Quality::P1080, true);
        assert_eq!(s, vec![("9:16".into(), Main, 1080, 1920)]);
        // the default list is stored as the default
        assert!(
            validate_outputs(None, Some(&json!(["16:9"])), 1.0, FrameRate::Constant)
                .unwrap()
                .is_default()
        );
    }

    #[test]
    fn bad_outputs_name_their_field() {
        let bad = |f: Option<Value>, r: Option<Value>, secs: f64, rate: FrameRate| {
            validate_outputs(f.as_ref(), r.as_ref(), secs, rate)
                .unwrap_err()
                .field
        };
        let c = FrameRate::Constant;
        assert_eq!(bad(Some(json!("avi")), None, 1.0, c), "format");
        assert_eq!(bad(Some(json!(3)), None, 1.0, c), "format");
        assert_eq!(bad(Some(json!("gif")), None, 31.0, c), "format");
        assert_eq!(
            bad(Some(json!("webm")), None, 1.0, FrameRate::Variable),
            "frameRate"
        );
        assert_eq!(bad(None, Some(json!([])), 1.0, c), "aspectRatios");
        assert_eq!(bad(None, Some(json!("1:1")), 1.0, c), "aspectRatios");
        assert_eq!(
            bad(None, Some(json!(["1:1", "3:2"])), 1.0, c),
            "aspectRatios[1]"
        );
        assert_eq!(
            bad(None, Some(json!(["1:1", 1])), 1.0, c),
            "aspectRatios[1]"
        );
        assert_eq!(
            bad(None, Some(json!(["1:1", "1x1"])), 1.0, c),
            "aspectRatios[1]"
        );
        let ok = validate_outputs(Some(&json!(" GIF ")), None, 30.0, c).unwrap();
        assert_eq!(ok.format, Format::Gif);
    }
}
