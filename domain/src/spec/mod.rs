//! The video spec clients send, and its validation.
//!
//! Validation works on the raw JSON value rather than on a derived `Deserialize`, so that every
//! error names the exact field at fault (`scenes[2].content.title`) and unknown extra fields are
//! ignored. The result is a typed [`VideoSpec`] that the renderer can trust.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod audio;
mod captions;
mod content;
mod fonts;
mod output;
pub mod schema;
mod style;
mod video;
mod watermark;

pub use audio::{
    duck_gain, SceneAudio, AUDIO_EXTENSIONS, DEFAULT_DUCK, DUCK_RAMP_SECONDS, MAX_VOICE_VOLUME,
};
pub use captions::{vtt_time, Captions, Cue, Word, MAX_CUES, MAX_CUE_CHARS, MAX_CUE_WORDS};
pub use content::{
    Fit, ImageSource, SceneContent, Side, Stat, MAX_BULLETS, MAX_BUTTON_CHARS, MAX_STATS,
    SCENE_TYPES,
};
pub use fonts::{FontChoice, FontSource, FONT_EXTENSIONS, MAX_FAMILY_CHARS, MAX_FONTS};
pub use output::{
    output_shapes, AspectRatio, Format, OutputRole, OutputShape, Outputs, MAX_GIF_SECONDS,
};
pub use style::{
    parse_color, Background, Direction, Transition, TransitionKind, DEFAULT_TRANSITION_SECONDS,
    MAX_TRANSITION_SECONDS,
};
pub use video::{
    VideoClip, MAX_CLIP_VOLUME, MAX_SPEED, MAX_TRIM_SECONDS, MIN_SPEED, VIDEO_EXTENSIONS,
};
pub use watermark::{
    Watermark, WatermarkPosition, DEFAULT_WATERMARK_OPACITY, DEFAULT_WATERMARK_SCALE,
    MIN_WATERMARK_SCALE, WATERMARK_MARGIN,
};

/// Output resolution preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quality {
    /// 640×360.
    #[serde(rename = "draft")]
    Draft,
    /// 1280×720.
    #[serde(rename = "720p")]
    P720,
    /// 1920×1080 (the default).
    #[serde(rename = "1080p")]
    P1080,
    /// 3840×2160 (`"4k"`, also read from `"2160p"`).
    #[serde(rename = "4k")]
    K4,
}

impl Quality {
    /// Every preset, smallest first.
    pub const ALL: [Quality; 4] = [Quality::Draft, Quality::P720, Quality::P1080, Quality::K4];

    /// The name the spec uses for it (`"720p"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Draft => "draft",
            Quality::P720 => "720p",
            Quality::P1080 => "1080p",
            Quality::K4 => "4k",
        }
    }

    /// Landscape frame size in pixels (width, height).
    pub fn dimensions(self) -> (u32, u32) {
        match self {
            Quality::Draft => (640, 360),
            Quality::P720 => (1280, 720),
            Quality::P1080 => (1920, 1080),
            Quality::K4 => (3840, 2160),
        }
    }

    /// Reads a spec's `quality` (trimmed, any case; `"2160p"` is 4k).
    pub fn parse(s: &str) -> Option<Quality> {
        let s = s.trim().to_ascii_lowercase();
        Quality::ALL
            .into_iter()
            .find(|q| q.as_str() == s || (s == "2160p" && *q == Quality::K4))
    }
}

/// How frames are timed in the output (`frameRate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameRate {
    /// Every frame at the spec's `fps` (the default): what every player and editor expects.
    #[default]
    Constant,
    /// A frame that repeats the previous one is not encoded again: the previous one lasts
    /// longer instead (at least one frame a second is kept, and the last frame). Faster to
    /// encode where the video holds still; some editing software handles such files worse.
    Variable,
}

impl FrameRate {
    /// The name the spec uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameRate::Constant => "constant",
            FrameRate::Variable => "variable",
        }
    }

    /// `true` for the default ([`FrameRate::Constant`]), which specs leave out when stored.
    pub fn is_constant(&self) -> bool {
        *self == FrameRate::Constant
    }
}

/// Background music for a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MusicSpec {
    /// `trackId`: an installed music track.
    pub track_id: String,
    /// Linear gain, 0.0–1.0.
    pub volume: f32,
    /// `duck`: the music's level (0–1) while a scene's voice-over plays; 1: not ducked. (A
    /// plain `f32`, not an `Option`: the spec travels in wire messages kept small.)
    #[serde(default = "not_ducked", skip_serializing_if = "is_not_ducked")]
    pub duck: f32,
}

fn not_ducked() -> f32 {
    1.0
}

fn is_not_ducked(d: &f32) -> bool {
    *d >= 1.0
}

/// One validated scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Seconds on screen.
    pub duration: f64,
    /// What the scene shows: its `type` and `content`.
    pub content: SceneContent,
    /// This scene's own background; `None`: the theme's.
    #[serde(default)]
    pub background: Option<Background>,
    /// How this scene gives way to the next; `None`: the theme's default transition.
    #[serde(default)]
    pub transition: Option<Transition>,
    /// `audio`: a voice-over played over this scene; `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<SceneAudio>,
}

impl Scene {
    /// A scene with the theme's background and transition.
    pub fn new(duration: f64, content: SceneContent) -> Scene {
        Scene {
            duration,
            content,
            background: None,
            transition: None,
            audio: None,
        }
    }
}

/// A validated video spec: everything the renderer needs, nothing it must re-check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSpec {
    /// `theme`: an installed theme (the default theme when the spec names none).
    pub theme: String,
    /// `music`: the background music; `None`: no music.
    pub music: Option<MusicSpec>,
    /// `quality`: the output resolution (1080p when not given).
    pub quality: Quality,
    /// `fps`: frames per second, one of [`FPS_CHOICES`] (30 when not given).
    pub fps: u32,
    /// `frameRate`: constant (the default) or variable, where held frames are encoded once.
    /// Left out when constant, so specs stored by earlier versions read back unchanged.
    #[serde(default, skip_serializing_if = "FrameRate::is_constant")]
    pub frame_rate: FrameRate,
    /// `generateReels`: also render a vertical 1080×1920 reel.
    pub generate_reels: bool,
    /// `format` and `aspectRatios`: the files made (an MP4, landscape, when left out). See
    /// [`VideoSpec::shapes`]. Boxed, as `watermark` is.
    #[serde(default, skip_serializing_if = "Outputs::is_default")]
    pub outputs: Box<Outputs>,
    /// `scenes`: the scenes in order (at least one).
    pub scenes: Vec<Scene>,
    /// `watermark`: an image over every frame of every output; `None`: none. Boxed: most
    /// specs have none, and a spec travels inside wire messages kept small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Box<Watermark>>,
    /// `captions`: timed text burned in over every output, and served as a WebVTT sidecar;
    /// `None`: none. Boxed for the same reason as `watermark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captions: Option<Box<Captions>>,
    /// `font` (with `fonts`): the family every text layer is set in instead of the theme's, and
    /// the files supplying it; `None`: the theme's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub font: Option<Box<FontChoice>>,
    /// `metadata`: the client's own JSON object (at most [`MAX_METADATA_BYTES`] serialised),
    /// stored with the job and echoed unchanged in `job-status` and in every webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The largest `metadata` object a spec may carry, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 4096;

impl VideoSpec {
    /// Total length in seconds: the sum of the scene durations.
    pub fn duration(&self) -> f64 {
        self.scenes.iter().map(|s| s.duration).sum()
    }

    /// Every image the video uses, with the JSON path of the field naming it.
    pub fn images(&self) -> Vec<(String, &ImageSource)> {
        let mut out = Vec::new();
        for (i, scene) in self.scenes.iter().enumerate() {
            for (field, src) in scene.content.images() {
                out.push((format!("scenes[{i}].{field}"), src));
            }
            if let Some(Background::Image { src, .. }) = &scene.background {
                out.push((format!("scenes[{i}].background.image"), src));
            }
        }
        if let Some(w) = &self.watermark {
            out.push(("watermark.src".to_string(), &w.src));
        }
        out
    }

    /// Every video clip the video uses, with the JSON path of the field naming its source and
    /// the scene it plays in.
    pub fn videos(&self) -> Vec<(String, usize, &VideoClip)> {
        let mut out = Vec::new();
        for (i, scene) in self.scenes.iter().enumerate() {
            if let SceneContent::Video { clip, .. } = &scene.content {
                out.push((format!("scenes[{i}].content.src"), i, clip));
            }
            if let Some(Background::Video { clip, .. }) = &scene.background {
                out.push((format!("scenes[{i}].background.video"), i, clip));
            }
        }
        out
    }

    /// Every voice-over, with the JSON path of the field naming its source and its scene.
    pub fn voices(&self) -> Vec<(String, usize, &SceneAudio)> {
        self.scenes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.audio
                    .as_ref()
                    .map(|a| (format!("scenes[{i}].audio.src"), i, a))
            })
            .collect()
    }

    /// The files this spec makes, the main one first (see [`output_shapes`]).
    pub fn shapes(&self) -> Vec<OutputShape> {
        output_shapes(&self.outputs, self.quality, self.generate_reels)
    }

    /// The container and codecs of every output.
    pub fn format(&self) -> Format {
        self.outputs.format
    }

    /// Number of frames of the whole video at its frame rate.
    pub fn frame_count(&self) -> u64 {
        (self.duration() * self.fps as f64).round() as u64
    }
}

/// Limits applied during validation (from config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecLimits {
    /// Most scenes in one spec.
    pub max_scenes: usize,
    /// Longest scene, in seconds.
    pub max_scene_seconds: f64,
    /// Longest video (the sum of the scene durations), in seconds.
    pub max_total_seconds: f64,
    /// Longest text field, in characters.
    pub max_text_chars: usize,
    /// Longest URL (image sources, call-to-action URLs), in bytes.
    #[serde(default = "default_max_url_chars")]
    pub max_url_chars: usize,
    /// Most work one job may ask for, in megapixel-frames: frames × pixels per frame, the
    /// vertical reel's counted too (600 s of 1080p30 with a reel is 74,650).
    #[serde(default = "default_max_work_megapixels")]
    pub max_work_megapixels: u64,
}

fn default_max_url_chars() -> usize {
    2048
}

fn default_max_work_megapixels() -> u64 {
    75_000
}

/// The work a spec asks for, in megapixel-frames: every frame of every output `shapes` (the
/// main video, its reel and other aspect ratios).
pub fn work_megapixels(shapes: &[OutputShape], fps: u32, seconds: f64) -> f64 {
    let frames = (seconds * fps as f64).round();
    let pixels: f64 = shapes
        .iter()
        .map(|s| s.width as f64 * s.height as f64)
        .sum();
    frames * pixels / 1e6
}

impl Default for SpecLimits {
    fn default() -> Self {
        SpecLimits {
            max_scenes: 50,
            max_scene_seconds: 60.0,
            max_total_seconds: 600.0,
            max_text_chars: 500,
            max_url_chars: default_max_url_chars(),
            max_work_megapixels: default_max_work_megapixels(),
        }
    }
}

/// What validation checks names against: the installed themes and music tracks, and limits.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// The installed theme names: `theme` must be one of them.
    pub themes: BTreeSet<String>,
    /// The installed music track ids: `music.trackId` must be one of them.
    pub tracks: BTreeSet<String>,
    /// The theme of a spec that names none.
    pub default_theme: String,
    /// The installed font families: `font` must be one of them or supplied in `fonts`.
    pub fonts: BTreeSet<String>,
    /// The size limits a spec must keep to.
    pub limits: SpecLimits,
}

/// A spec that cannot be accepted, with the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// JSON path of the field at fault, e.g. `scenes[0].content.title`.
    pub field: String,
    /// What is wrong with the field, worded for the client.
    pub message: String,
}

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError {
        field: field.into(),
        message: message.into(),
    })
}

/// The frame rates a spec may ask for (`fps`).
pub const FPS_CHOICES: [u32; 4] = [24, 25, 30, 60];

/// A JSON number that is a whole number from 0 to 2^53 (`30` or `30.0`); `None` for fractions,
/// negatives, huge values and anything that is not a number. Callers compare the whole value:
/// nothing is truncated to a narrower type before it is checked.
pub(crate) fn whole_number(v: &Value) -> Option<u64> {
    const MAX_EXACT: u64 = 1 << 53;
    if let Some(n) = v.as_u64() {
        return (n <= MAX_EXACT).then_some(n);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= MAX_EXACT as f64).then_some(f as u64)
}

fn list(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Validate a request body (already parsed as JSON) into a [`VideoSpec`].
///
/// Fields that are not part of the spec (`webhookUrl`, unknown extras) are ignored here.
pub fn validate_spec(body: &Value, ctx: &ValidationContext) -> Result<VideoSpec, SpecError> {
    let obj = match body.as_object() {
        Some(o) => o,
        None => return err("body", "the request body must be a JSON object"),
    };

    let theme = match obj.get("theme") {
        None | Some(Value::Null) => ctx.default_theme.clone(),
        Some(Value::String(t)) if ctx.themes.contains(t.trim()) => t.trim().to_string(),
        Some(Value::String(t)) => {
            return err(
                "theme",
                format!("unknown theme '{t}'; available: {}", list(&ctx.themes)),
            )
        }
        Some(_) => return err("theme", "must be a string"),
    };

    let quality = match obj.get("quality") {
        None | Some(Value::Null) => Quality::P1080,
        Some(Value::String(q)) => match Quality::parse(q) {
            Some(q) => q,
            None => {
                return err(
                    "quality",
                    format!("unknown quality '{q}'; use one of draft, 720p, 1080p, 4k"),
                )
            }
        },
        Some(_) => return err("quality", "must be a string: draft, 720p, 1080p or 4k"),
    };

    let fps = match obj.get("fps") {
        None | Some(Value::Null) => 30,
        Some(v) => match whole_number(v) {
            Some(f) if FPS_CHOICES.iter().any(|&c| u64::from(c) == f) => f as u32,
            _ => return err("fps", format!("must be one of 24, 25, 30, 60, got {v}")),
        },
    };

    let frame_rate = match obj.get("frameRate") {
        None | Some(Value::Null) => FrameRate::Constant,
        Some(Value::String(r)) => match r.as_str() {
            "constant" => FrameRate::Constant,
            "variable" => FrameRate::Variable,
            _ => {
                return err(
                    "frameRate",
                    format!("unknown frame rate '{r}'; use constant or variable"),
                )
            }
        },
        Some(_) => return err("frameRate", "must be a string: constant or variable"),
    };

    let generate_reels = match obj.get("generateReels") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return err("generateReels", "must be true or false"),
    };

    let music = match obj.get("music") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(validate_music(m, ctx)?),
        Some(_) => {
            return err(
                "music",
                "must be an object {\"trackId\": ..., \"volume\": 0..1}",
            )
        }
    };

    let scenes_v = match obj.get("scenes") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => {
            return err("scenes", "is required: a non-empty array of scenes")
        }
        Some(_) => return err("scenes", "must be an array of scenes"),
    };
    if scenes_v.is_empty() {
        return err("scenes", "must contain at least one scene");
    }
    if scenes_v.len() > ctx.limits.max_scenes {
        return err(
            "scenes",
            format!(
                "too many scenes: {} (at most {})",
                scenes_v.len(),
                ctx.limits.max_scenes
            ),
        );
    }
    let mut scenes = Vec::with_capacity(scenes_v.len());
    for (i, s) in scenes_v.iter().enumerate() {
        scenes.push(validate_scene(i, s, fps, ctx)?);
    }
    let total: f64 = scenes.iter().map(|s| s.duration).sum();
    if total > ctx.limits.max_total_seconds {
        return err(
            "scenes",
            format!(
                "total duration {total}s is longer than the limit of {}s",
                ctx.limits.max_total_seconds
            ),
        );
    }
    let outputs = output::validate_outputs(
        obj.get("format"),
        obj.get("aspectRatios"),
        total,
        frame_rate,
    )?;
    let shapes = output_shapes(&outputs, quality, generate_reels);
    let work = work_megapixels(&shapes, fps, total);
    if work > ctx.limits.max_work_megapixels as f64 {
        let extra = match shapes.len() {
            1 => String::new(),
            2 if generate_reels && outputs.aspect_ratios.is_empty() => " with a reel".into(),
            n => format!(" in {n} aspect ratios"),
        };
        return err(
            "quality",
            format!(
                "{total}s at {} and {fps} fps{extra} is {work:.0} megapixel-frames of work, more than this server renders for one job ({}); shorten the video, lower the quality or fps, or ask for fewer outputs (generateReels, aspectRatios)",
                quality.as_str(),
                ctx.limits.max_work_megapixels
            ),
        );
    }

    let watermark = watermark::validate_watermark(obj.get("watermark"), ctx)?.map(Box::new);
    let font = fonts::font_choice(obj.get("font"), obj.get("fonts"), &ctx.fonts, ctx)?;
    let captions = captions::validate_captions(obj.get("captions"), total)?.map(Box::new);
    let metadata = validate_metadata(obj.get("metadata"))?;

    Ok(VideoSpec {
        theme,
        music,
        quality,
        fps,
        frame_rate,
        generate_reels,
        outputs: Box::new(outputs),
        scenes,
        watermark,
        captions,
        font,
        metadata,
    })
}

/// `metadata`: absent, `null`, or a JSON object of at most [`MAX_METADATA_BYTES`] (compact).
fn validate_metadata(v: Option<&Value>) -> Result<Option<Value>, SpecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(_)) => {
            let v = v.expect("matched").clone();
            let size = serde_json::to_vec(&v).map_or(usize::MAX, |b| b.len());
            if size > MAX_METADATA_BYTES {
                return err(
                    "metadata",
                    format!("is {size} bytes of JSON; at most {MAX_METADATA_BYTES} are kept"),
                );
            }
            Ok(Some(v))
        }
        Some(_) => err(
            "metadata",
            "must be a JSON object of your own fields (for example {\"orderId\": \"A-1\"})",
        ),
    }
}

fn validate_music(m: &Map<String, Value>, ctx: &ValidationContext) -> Result<MusicSpec, SpecError> {
    let track_id = match m.get("trackId") {
        Some(Value::String(t)) if ctx.tracks.contains(t.trim()) => t.trim().to_string(),
        Some(Value::String(t)) => {
            return err(
                "music.trackId",
                format!("unknown track '{t}'; available: {}", list(&ctx.tracks)),
            )
        }
        None | Some(Value::Null) => return err("music.trackId", "is required when music is given"),
        Some(_) => return err("music.trackId", "must be a string"),
    };
    let volume = match m.get("volume") {
        None | Some(Value::Null) => 0.3,
        Some(v) => match v.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => x as f32,
            Some(x) => return err("music.volume", format!("must be between 0 and 1, got {x}")),
            None => return err("music.volume", "must be a number between 0 and 1"),
        },
    };
    let duck = audio::duck(m.get("duck"))?;
    Ok(MusicSpec {
        track_id,
        volume,
        duck,
    })
}

fn validate_scene(
    i: usize,
    s: &Value,
    fps: u32,
    ctx: &ValidationContext,
) -> Result<Scene, SpecError> {
    let at = format!("scenes[{i}]");
    let obj = match s.as_object() {
        Some(o) => o,
        None => return err(at, "must be an object with type, duration and content"),
    };
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) => return err(format!("{at}.type"), "is required"),
        Some(_) => return err(format!("{at}.type"), "must be a string"),
    };
    if !SCENE_TYPES.contains(&ty) {
        return err(
            format!("{at}.type"),
            format!(
                "unknown scene type '{ty}'; available: {}",
                SCENE_TYPES.join(", ")
            ),
        );
    }
    let duration = match obj.get("duration") {
        None | Some(Value::Null) => return err(format!("{at}.duration"), "is required (seconds)"),
        Some(v) => match v.as_f64() {
            Some(d) if d.is_finite() && d > 0.0 && d <= ctx.limits.max_scene_seconds => d,
            Some(d) if d.is_finite() && d > 0.0 => {
                return err(
                    format!("{at}.duration"),
                    format!(
                        "{d}s is longer than the limit of {}s per scene",
                        ctx.limits.max_scene_seconds
                    ),
                )
            }
            Some(d) => {
                return err(
                    format!("{at}.duration"),
                    format!("must be greater than 0, got {d}"),
                )
            }
            None => return err(format!("{at}.duration"), "must be a number of seconds"),
        },
    };
    if duration * f64::from(fps) < 1.0 {
        return err(
            format!("{at}.duration"),
            format!("{duration}s is shorter than one frame at {fps} fps"),
        );
    }
    let content = match obj.get("content") {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => return err(format!("{at}.content"), "is required"),
        Some(_) => return err(format!("{at}.content"), "must be an object"),
    };
    let content = content::content(ty, content, &at, ctx)?;
    let background = match obj.get("background") {
        None => None,
        Some(v) => style::background(v, &format!("{at}.background"), ctx)?,
    };
    let transition = match obj.get("transition") {
        None => None,
        Some(v) => style::transition(v, &format!("{at}.transition"))?,
    };
    let audio = match obj.get("audio") {
        None => None,
        Some(v) => audio::scene_audio(v, &format!("{at}.audio"), duration, ctx)?,
    };
    Ok(Scene {
        duration,
        content,
        background,
        transition,
        audio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ValidationContext {
        ValidationContext {
            themes: ["corporate", "modern"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tracks: ["corp-1"].iter().map(|s| s.to_string()).collect(),
            default_theme: "corporate".into(),
            fonts: ["Inter".to_string(), "Noto Sans".to_string()].into(),
            limits: SpecLimits::default(),
        }
    }

    fn contract_example() -> Value {
        json!({
            "webhookUrl": "https://your-app.com/webhook/video-status",
            "theme": "corporate",
            "music": {"trackId": "corp-1", "volume": 0.3},
            "quality": "4k",
            "generateReels": false,
            "scenes": [{"type": "hero-title", "duration": 4,
                        "content": {"title": "Welcome to **VidBuilder**", "subtitle": "Create stunning videos"}}]
        })
    }

    /// One scene of every type, with every optional field, and every kind of background and
    /// transition.
    fn every_scene_type() -> Value {
        json!({
            "theme": "modern",
            "scenes": [
                {"type": "hero-title", "duration": 3, "content": {"title": "Hi ==there==", "subtitle": "sub"},
                 "transition": "fade"},
                {"type": "text", "duration": 3, "content": {"heading": "H", "body": "Body *text*"},
                 "background": "#112233", "transition": {"type": "slide", "duration": 0.8, "direction": "up"}},
                {"type": "bullet-list", "duration": 3, "content": {"heading": "List", "items": ["a", "b", "c"]},
                 "background": {"gradient": ["#000", "#ffffff", "#123456"], "angle": 45}},
                {"type": "stats", "duration": 3, "content": {"heading": "Numbers", "stats": [
                    {"value": 1250, "label": "users"},
                    {"value": 99.5, "label": "uptime", "suffix": "%"},
                    {"value": 3, "label": "price", "prefix": "$", "decimals": 2}]},
                 "transition": {"type": "cut"}},
                {"type": "quote", "duration": 3, "content": {"quote": "Q", "author": "A", "role": "R"},
                 "background": {"color": "#abc"}},
                {"type": "image", "duration": 3, "content": {"src": "https://example.com/a.png", "fit": "contain",
                 "caption": "Cap", "kenBurns": false}},
                {"type": "video", "duration": 3, "content": {"src": "clips/a.mp4", "trim": {"start": 1, "end": 2.5},
                 "speed": 1.5, "loop": true, "caption": "Clip"},
                 "background": {"video": "https://example.com/bg.webm", "dim": 0.2}},
                {"type": "split", "duration": 3, "content": {"heading": "S", "body": "B", "image": "photos/a.jpg",
                 "imageSide": "left", "fit": "cover"}, "background": {"image": "bg.webp", "dim": 0.5}},
                {"type": "call-to-action", "duration": 3, "content": {"headline": "Go", "button": "Sign up",
                 "url": "example.com/x"}, "transition": {"type": "wipe", "direction": "right"}},
                {"type": "logo-outro", "duration": 3, "content": {"logo": "logo.png", "wordmark": "W", "tagline": "T"},
                 "transition": "zoom"}
            ]
        })
    }

    #[test]
    fn metadata_is_an_object_of_at_most_4_kb_kept_as_given() {
        let mut body = contract_example();
        body["metadata"] = json!({"orderId": "A-1", "n": 3, "nested": {"tags": ["x", null, 1.5]}});
        let spec = validate_spec(&body, &ctx()).unwrap();
        assert_eq!(spec.metadata, Some(body["metadata"].clone()));
        body["metadata"] = Value::Null;
        assert_eq!(validate_spec(&body, &ctx()).unwrap().metadata, None);
        for bad in [json!("A-1"), json!([1]), json!(3), json!(true)] {
            body["metadata"] = bad.clone();
            let e = validate_spec(&body, &ctx()).unwrap_err();
            assert_eq!(e.field, "metadata", "{bad}");
        }
        // 4096 bytes of compact JSON are kept; one more is refused.
        let fill = |n: usize| json!({"k": "x".repeat(n)});
        let base = serde_json::to_vec(&fill(0)).unwrap().len();
        body["metadata"] = fill(MAX_METADATA_BYTES - base);
        assert!(validate_spec(&body, &ctx()).is_ok());
        body["metadata"] = fill(MAX_METADATA_BYTES - base + 1);
        let e = validate_spec(&body, &ctx()).unwrap_err();
        assert_eq!(e.field, "metadata");
        assert!(e.message.contains("4096"), "{}", e.message);
    }

    #[test]
    fn every_scene_type_validates_with_its_fields_and_defaults() {
        let spec = validate_spec(&every_scene_type(), &ctx()).unwrap();
        let types: Vec<_> = spec.scenes.iter().map(|s| s.content.type_name()).collect();
        assert_eq!(types, SCENE_TYPES);
        let c = |i: usize| spec.scenes[i].content.clone();
        assert_eq!(
            c(1),
            SceneContent::Text {
                heading: Some("H".into()),
                body: "Body *text*".into()
            }
        );
        assert_eq!(
            c(2),
            SceneContent::BulletList {
                heading: Some("List".into()),
                items: vec!["a".into(), "b".into(), "c".into()]
            }
        );
        let SceneContent::Stats { stats, .. } = c(3) else {
            panic!("stats")
        };
        assert_eq!(
            stats.iter().map(|s| s.decimals).collect::<Vec<_>>(),
            [0, 1, 2],
            "decimals default to those written"
        );
        assert_eq!(stats[2].prefix.as_deref(), Some("$"));
        assert_eq!(stats[1].suffix.as_deref(), Some("%"));
        assert_eq!(
            c(5),
            SceneContent::Image {
                src: ImageSource::Url("https://example.com/a.png".into()),
                fit: Fit::Contain,
                caption: Some("Cap".into()),
                ken_burns: false
            }
        );
        assert_eq!(
            c(6),
            SceneContent::Video {
                clip: VideoClip {
                    src: ImageSource::Asset("clips/a.mp4".into()),
                    trim_start: 1.0,
                    trim_end: Some(2.5),
                    fit: Fit::Cover,
                    speed: 1.5,
                    muted: false,
                    volume: 1.0,
                    looped: true,
                },
                caption: Some("Clip".into())
            }
        );
        assert!(matches!(
            &spec.scenes[6].background,
            Some(Background::Video { clip, dim }) if clip.muted && *dim == 0.2
                && clip.src == ImageSource::Url("https://example.com/bg.webm".into())
        ));
        assert_eq!(
            c(7),
            SceneContent::Split {
                heading: Some("S".into()),
                body: Some("B".into()),
                image: ImageSource::Asset("photos/a.jpg".into()),
                image_side: Side::Left,
                fit: Fit::Cover
            }
        );
        assert_eq!(
            c(8),
            SceneContent::CallToAction {
                headline: "Go".into(),
                button: "Sign up".into(),
                url: Some("example.com/x".into())
            }
        );
        assert_eq!(
            c(9),
            SceneContent::LogoOutro {
                logo: Some(ImageSource::Asset("logo.png".into())),
                wordmark: Some("W".into()),
                tagline: Some("T".into())
            }
        );
        // backgrounds
        assert_eq!(
            spec.scenes[1].background,
            Some(Background::Color {
                color: "#112233".into()
            })
        );
        assert_eq!(
            spec.scenes[2].background,
            Some(Background::Gradient {
                colors: vec!["#000000".into(), "#ffffff".into(), "#123456".into()],
                angle: 45.0
            })
        );
        assert_eq!(
            spec.scenes[4].background,
            Some(Background::Color {
                color: "#aabbcc".into()
            })
        );
        assert_eq!(
            spec.scenes[7].background,
            Some(Background::Image {
                src: ImageSource::Asset("bg.webp".into()),
                dim: 0.5
            })
        );
        // transitions
        let tr = |i: usize| spec.scenes[i].transition;
        assert_eq!(
            tr(0),
            Some(Transition {
                kind: TransitionKind::Fade,
                duration: DEFAULT_TRANSITION_SECONDS,
                direction: Direction::Left
            })
        );
        assert_eq!(
            tr(1),
            Some(Transition {
                kind: TransitionKind::Slide,
                duration: 0.8,
                direction: Direction::Up
            })
        );
        assert_eq!(
            tr(3).map(|t| (t.kind, t.duration)),
            Some((TransitionKind::Cut, 0.0))
        );
        assert_eq!(tr(8).map(|t| t.direction), Some(Direction::Right));
        assert_eq!(tr(5), None);
        let videos: Vec<_> = spec.videos().into_iter().map(|(f, i, _)| (f, i)).collect();
        assert_eq!(
            videos,
            [
                ("scenes[6].content.src".to_string(), 6),
                ("scenes[6].background.video".to_string(), 6)
            ]
        );
        // every image, with the field naming it
        let images: Vec<_> = spec
            .images()
            .into_iter()
            .map(|(f, s)| (f, s.as_str().to_string()))
            .collect();
        assert_eq!(
            images,
            [
                ("scenes[5].content.src", "https://example.com/a.png"),
                ("scenes[7].content.image", "photos/a.jpg"),
                ("scenes[7].background.image", "bg.webp"),
                ("scenes[9].content.logo", "logo.png"),
            ]
            .map(|(f, s)| (f.to_string(), s.to_string()))
        );
        // Defaults: image fit cover with Ken Burns, split image on the right, dim 0.35.
        let minimal = json!({"scenes": [
            {"type": "image", "duration": 2, "content": {"src": "a.png"}},
            {"type": "split", "duration": 2, "content": {"body": "b", "image": "a.png"},
             "background": {"image": "b.png"}},
            {"type": "logo-outro", "duration": 2, "content": {"wordmark": "W"}}
        ]});
        let spec = validate_spec(&minimal, &ctx()).unwrap();
        assert_eq!(
            spec.scenes[0].content,
            SceneContent::Image {
                src: ImageSource::Asset("a.png".into()),
                fit: Fit::Cover,
                caption: None,
                ken_burns: true
            }
        );
        assert!(matches!(
            spec.scenes[1].content,
            SceneContent::Split {
                image_side: Side::Right,
                fit: Fit::Cover,
                heading: None,
                ..
            }
        ));
        assert!(
            matches!(&spec.scenes[1].background, Some(Background::Image { dim, .. }) if (*dim - 0.35).abs() < 1e-6)
        );
    }

    #[test]
    fn bad_scene_fields_are_named() {
        let scene = |ty: &str, content: Value| json!({"scenes": [{"type": ty, "duration": 2, "content": content}]});
        let styled = |extra: Value| {
            let mut s = json!({"type": "hero-title", "duration": 2, "content": {"title": "t"}});
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            json!({ "scenes": [s] })
        };
        let cases: Vec<(Value, &str)> = vec![
            (
                scene("text", json!({"heading": "h"})),
                "scenes[0].content.body",
            ),
            (scene("text", json!({"body": 3})), "scenes[0].content.body"),
            (
                scene("bullet-list", json!({"items": []})),
                "scenes[0].content.items",
            ),
            (
                scene("bullet-list", json!({"items": "a"})),
                "scenes[0].content.items",
            ),
            (
                scene("bullet-list", json!({"items": vec!["a"; 9]})),
                "scenes[0].content.items",
            ),
            (
                scene("bullet-list", json!({"items": ["a", " "]})),
                "scenes[0].content.items[1]",
            ),
            (scene("stats", json!({})), "scenes[0].content.stats"),
            (
                scene("stats", json!({"stats": [{"label": "x"}]})),
                "scenes[0].content.stats[0].value",
            ),
            (
                scene("stats", json!({"stats": [{"value": "1", "label": "x"}]})),
                "scenes[0].content.stats[0].value",
            ),
            (
                scene("stats", json!({"stats": [{"value": 1e16, "label": "x"}]})),
                "scenes[0].content.stats[0].value",
            ),
            (
                scene("stats", json!({"stats": [{"value": 1}]})),
                "scenes[0].content.stats[0].label",
            ),
            (
                scene(
                    "stats",
                    json!({"stats": [{"value": 1, "label": "x", "decimals": 4}]}),
                ),
                "scenes[0].content.stats[0].decimals",
            ),
            (
                scene(
                    "stats",
                    json!({"stats": [{"value": 1, "label": "x", "suffix": "y".repeat(25)}]}),
                ),
                "scenes[0].content.stats[0].suffix",
            ),
            (
                scene(
                    "stats",
                    json!({"stats": vec![json!({"value": 1, "label": "x"}); 5]}),
                ),
                "scenes[0].content.stats",
            ),
            (
                scene("stats", json!({"stats": [7]})),
                "scenes[0].content.stats[0]",
            ),
            (
                scene("quote", json!({"author": "a"})),
                "scenes[0].content.quote",
            ),
            (
                scene("quote", json!({"quote": "q", "role": false})),
                "scenes[0].content.role",
            ),
            (scene("image", json!({})), "scenes[0].content.src"),
            (
                scene("image", json!({"src": "../secret.png"})),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "/etc/passwd.png"})),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "a\\b.png"})),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "file:///etc/x.png"})),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "ftp://host/x.png"})),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "notes.txt"})),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "https://a b/x.png"})),
                "scenes[0].content.src",
            ),
            (
                scene(
                    "image",
                    json!({"src": format!("https://e.com/{}", "a".repeat(2100))}),
                ),
                "scenes[0].content.src",
            ),
            (
                scene("image", json!({"src": "a.png", "fit": "stretch"})),
                "scenes[0].content.fit",
            ),
            (
                scene("image", json!({"src": "a.png", "kenBurns": "yes"})),
                "scenes[0].content.kenBurns",
            ),
            (
                scene("split", json!({"image": "a.png"})),
                "scenes[0].content.heading",
            ),
            (
                scene("split", json!({"body": "b"})),
                "scenes[0].content.image",
            ),
            (
                scene(
                    "split",
                    json!({"body": "b", "image": "a.png", "imageSide": "top"}),
                ),
                "scenes[0].content.imageSide",
            ),
            (
                scene("call-to-action", json!({"button": "b"})),
                "scenes[0].content.headline",
            ),
            (
                scene("call-to-action", json!({"headline": "h"})),
                "scenes[0].content.button",
            ),
            (
                scene(
                    "call-to-action",
                    json!({"headline": "h", "button": "b".repeat(41)}),
                ),
                "scenes[0].content.button",
            ),
            (
                scene("logo-outro", json!({"tagline": "t"})),
                "scenes[0].content.logo",
            ),
            (
                scene("logo-outro", json!({"logo": 5})),
                "scenes[0].content.logo",
            ),
            (styled(json!({"background": "red"})), "scenes[0].background"),
            (styled(json!({"background": 5})), "scenes[0].background"),
            (styled(json!({"background": {}})), "scenes[0].background"),
            (
                styled(json!({"background": {"color": "#12"}})),
                "scenes[0].background.color",
            ),
            (
                styled(json!({"background": {"gradient": ["#000"]}})),
                "scenes[0].background.gradient",
            ),
            (
                styled(
                    json!({"background": {"gradient": ["#000", "#111", "#222", "#333", "#444"]}}),
                ),
                "scenes[0].background.gradient",
            ),
            (
                styled(json!({"background": {"gradient": ["#000", "blue"]}})),
                "scenes[0].background.gradient[1]",
            ),
            (
                styled(json!({"background": {"gradient": ["#000", "#fff"], "angle": 400}})),
                "scenes[0].background.angle",
            ),
            (
                styled(json!({"background": {"image": "../x.png"}})),
                "scenes[0].background.image",
            ),
            (
                styled(json!({"background": {"image": "x.png", "dim": 1.5}})),
                "scenes[0].background.dim",
            ),
            (
                styled(json!({"transition": "spin"})),
                "scenes[0].transition",
            ),
            (styled(json!({"transition": 3})), "scenes[0].transition"),
            (
                styled(json!({"transition": {"duration": 1}})),
                "scenes[0].transition.type",
            ),
            (
                styled(json!({"transition": {"type": "fade", "duration": 0}})),
                "scenes[0].transition.duration",
            ),
            (
                styled(json!({"transition": {"type": "fade", "duration": 3.5}})),
                "scenes[0].transition.duration",
            ),
            (
                styled(json!({"transition": {"type": "slide", "direction": "sideways"}})),
                "scenes[0].transition.direction",
            ),
        ];
        for (body, field) in cases {
            let e = validate_spec(&body, &ctx()).expect_err(&body.to_string());
            assert_eq!(e.field, field, "{body} -> {e}");
        }
    }

    #[test]
    fn contract_example_is_valid() {
        let spec = validate_spec(&contract_example(), &ctx()).unwrap();
        assert_eq!(spec.quality, Quality::K4);
        assert_eq!(spec.quality.dimensions(), (3840, 2160));
        assert_eq!(spec.duration(), 4.0);
        assert_eq!(spec.frame_count(), 120);
        assert_eq!(
            spec.music,
            Some(MusicSpec {
                track_id: "corp-1".into(),
                volume: 0.3,
                duck: 1.0
            })
        );
        assert_eq!(
            spec.scenes[0].content,
            SceneContent::HeroTitle {
                title: "Welcome to **VidBuilder**".into(),
                subtitle: Some("Create stunning videos".into())
            }
        );
    }

    #[test]
    fn defaults_apply_and_extra_fields_are_ignored() {
        let body = json!({"scenes": [{"type": "hero-title", "duration": 1.5, "content": {"title": "x"}, "extra": 1}],
                          "somethingElse": {"a": 1}});
        let spec = validate_spec(&body, &ctx()).unwrap();
        assert_eq!(spec.theme, "corporate");
        assert_eq!(spec.quality, Quality::P1080);
        assert_eq!(spec.fps, 30);
        assert!(spec.music.is_none());
        assert!(!spec.generate_reels);
        assert_eq!(spec.frame_rate, FrameRate::Constant);
    }

    #[test]
    fn a_watermark_is_validated_with_defaults_and_each_bad_field_named() {
        let scenes = json!([{"type": "hero-title", "duration": 1, "content": {"title": "x"}}]);
        let body = json!({"watermark": {"src": "brand/logo.png", "position": "top-left", "opacity": 0.5, "scale": 0.25}, "scenes": scenes});
        let w = *validate_spec(&body, &ctx()).unwrap().watermark.unwrap();
        assert_eq!(w.src, ImageSource::Asset("brand/logo.png".into()));
        assert_eq!(w.position, WatermarkPosition::TopLeft);
        assert_eq!((w.opacity, w.scale), (0.5, 0.25));
        let spec = validate_spec(
            &json!({"watermark": {"src": "https://cdn.example.com/l.png"}, "scenes": scenes}),
            &ctx(),
        )
        .unwrap();
        let w = spec.watermark.clone().unwrap();
        assert_eq!(w.position, WatermarkPosition::BottomRight);
        assert_eq!(
            f64::from(w.opacity),
            DEFAULT_WATERMARK_OPACITY as f32 as f64
        );
        assert_eq!(f64::from(w.scale), DEFAULT_WATERMARK_SCALE as f32 as f64);
        // fetched like every image: listed with its field
        let images: Vec<String> = spec.images().into_iter().map(|(f, _)| f).collect();
        assert_eq!(images, ["watermark.src"]);
        // stored and read back unchanged; a spec without one stores no field
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<VideoSpec>(stored).unwrap(), spec);
        let plain = validate_spec(&json!({"watermark": null, "scenes": scenes}), &ctx()).unwrap();
        assert!(serde_json::to_value(&plain)
            .unwrap()
            .get("watermark")
            .is_none());
        for (wm, field) in [
            (json!("logo.png"), "watermark"),
            (json!({}), "watermark.src"),
            (json!({"src": ""}), "watermark.src"),
            (json!({"src": "../etc/passwd"}), "watermark.src"),
            (json!({"src": 5}), "watermark.src"),
            (
                json!({"src": "l.png", "position": "middle"}),
                "watermark.position",
            ),
            (json!({"src": "l.png", "position": 1}), "watermark.position"),
            (json!({"src": "l.png", "opacity": 1.5}), "watermark.opacity"),
            (
                json!({"src": "l.png", "opacity": -0.1}),
                "watermark.opacity",
            ),
            (
                json!({"src": "l.png", "opacity": "half"}),
                "watermark.opacity",
            ),
            (json!({"src": "l.png", "scale": 0.01}), "watermark.scale"),
            (json!({"src": "l.png", "scale": 2}), "watermark.scale"),
        ] {
            let e = validate_spec(&json!({"watermark": wm, "scenes": scenes}), &ctx()).unwrap_err();
            assert_eq!(e.field, field, "{wm}: {}", e.message);
        }
    }

    #[test]
    fn frame_rate_is_constant_or_variable_and_constant_is_stored_as_before() {
        let scenes = json!([{"type": "hero-title", "duration": 1, "content": {"title": "x"}}]);
        let v = validate_spec(&json!({"frameRate": "variable", "scenes": scenes}), &ctx()).unwrap();
        assert_eq!(v.frame_rate, FrameRate::Variable);
        let stored = serde_json::to_value(&v).unwrap();
        assert_eq!(stored["frameRate"], "variable");
        assert_eq!(serde_json::from_value::<VideoSpec>(stored).unwrap(), v);
        for constant in [json!("constant"), Value::Null] {
            let c =
                validate_spec(&json!({"frameRate": constant, "scenes": scenes}), &ctx()).unwrap();
            assert_eq!(c.frame_rate, FrameRate::Constant);
            // a spec stored by an earlier version (no frameRate) reads back as constant, and a
            // constant one is stored without the field, as before
            let stored = serde_json::to_value(&c).unwrap();
            assert!(stored.get("frameRate").is_none(), "{stored}");
            assert_eq!(serde_json::from_value::<VideoSpec>(stored).unwrap(), c);
        }
        for bad in [
            json!("Variable"),
            json!("vfr"),
            json!(true),
            json!(30),
            json!({}),
        ] {
            let e =
                validate_spec(&json!({"frameRate": bad, "scenes": scenes}), &ctx()).unwrap_err();
            assert_eq!(e.field, "frameRate", "{bad}");
            assert!(e.message.contains("constant"), "{}", e.message);
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([1, 2]), "body"),
            (json!({"scenes": []}), "scenes"),
            (json!({}), "scenes"),
            (json!({"scenes": "x"}), "scenes"),
            (
                json!({"theme": "nope", "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "theme",
            ),
            (
                json!({"quality": "8k", "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "quality",
            ),
            (
                json!({"fps": 29, "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "fps",
            ),
            (
                json!({"music": {"trackId": "zzz"}, "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "music.trackId",
            ),
            (
                json!({"music": {"trackId": "corp-1", "volume": 1.5}, "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "music.volume",
            ),
            (
                json!({"music": {"trackId": "corp-1", "volume": -0.1}, "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "music.volume",
            ),
            (
                json!({"scenes": [{"type":"spinning-cube","duration":1,"content":{"title":"a"}}]}),
                "scenes[0].type",
            ),
            (
                json!({"scenes": [{"duration":1,"content":{"title":"a"}}]}),
                "scenes[0].type",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":0,"content":{"title":"a"}}]}),
                "scenes[0].duration",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":-3,"content":{"title":"a"}}]}),
                "scenes[0].duration",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":100000,"content":{"title":"a"}}]}),
                "scenes[0].duration",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":"4","content":{"title":"a"}}]}),
                "scenes[0].duration",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":1}]}),
                "scenes[0].content",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":1,"content":{}}]}),
                "scenes[0].content.title",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":1,"content":{"title":"   "}}]}),
                "scenes[0].content.title",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":1,"content":{"title":"a","subtitle":5}}]}),
                "scenes[0].content.subtitle",
            ),
            (
                json!({"scenes": [{"type":"hero-title","duration":1,"content":{"title":"a".repeat(501)}}]}),
                "scenes[0].content.title",
            ),
            (
                json!({"generateReels": "yes", "scenes": [{"type":"hero-title","duration":1,"content":{"title":"a"}}]}),
                "generateReels",
            ),
        ];
        for (body, field) in cases {
            let e = validate_spec(&body, &ctx()).expect_err(&body.to_string());
            assert_eq!(e.field, field, "{body} -> {e}");
        }
    }

    /// A small deterministic fuzzer: random JSON built from the spec's own vocabulary (so it goes
    /// deep into validation) never panics, and whatever is accepted obeys the limits.
    #[test]
    fn random_specs_never_panic_and_accepted_ones_obey_the_limits() {
        const KEYS: [&str; 44] = [
            "theme",
            "quality",
            "fps",
            "music",
            "trackId",
            "volume",
            "generateReels",
            "scenes",
            "type",
            "duration",
            "content",
            "title",
            "subtitle",
            "x",
            "heading",
            "body",
            "items",
            "stats",
            "value",
            "label",
            "prefix",
            "suffix",
            "decimals",
            "quote",
            "author",
            "role",
            "src",
            "fit",
            "caption",
            "kenBurns",
            "image",
            "imageSide",
            "headline",
            "button",
            "url",
            "logo",
            "wordmark",
            "tagline",
            "background",
            "color",
            "gradient",
            "angle",
            "dim",
            "transition",
        ];
        fn value(r: &mut fastrand::Rng, depth: u32) -> Value {
            match r.u64(..if depth > 4 { 6 } else { 9 }) {
                0 => Value::Null,
                1 => Value::Bool(r.u64(..2) == 0),
                2 => json!(r.u64(..) as i64 >> r.u64(..64)),
                3 => json!(f64::from_bits(r.u64(..)).clamp(-1e300, 1e300)),
                4 => json!(
                    [
                        "corporate",
                        "modern",
                        "4k",
                        "draft",
                        "hero-title",
                        "corp-1",
                        "",
                        "**x**",
                        "é\u{0}",
                        "text",
                        "bullet-list",
                        "stats",
                        "quote",
                        "image",
                        "split",
                        "call-to-action",
                        "logo-outro",
                        "cover",
                        "contain",
                        "left",
                        "right",
                        "fade",
                        "slide",
                        "wipe",
                        "zoom",
                        "cut",
                        "#123456",
                        "#abc",
                        "red",
                        "logo.png",
                        "a/b.jpg",
                        "../etc/passwd.png",
                        "/abs.png",
                        "https://example.com/a.png",
                        "file:///etc/passwd",
                        "==hi=="
                    ][r.u64(..36) as usize]
                ),
                5 => json!([0.0, 0.5, 1.0, 1.5, -1.0, 30.0, 24.0, 600.0][r.u64(..8) as usize]),
                6 | 7 => {
                    let mut m = Map::new();
                    for _ in 0..r.u64(..6) {
                        m.insert(
                            KEYS[r.u64(..KEYS.len() as u64) as usize].to_string(),
                            value(r, depth + 1),
                        );
                    }
                    Value::Object(m)
                }
                _ => Value::Array((0..r.u64(..4)).map(|_| value(r, depth + 1)).collect()),
            }
        }
        let ctx = ctx();
        let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut v = value(&mut rng, 0);
            match rng.u64(..4) {
                0 => {
                    // Often start from a valid spec and break one part of it.
                    let mut base = contract_example();
                    base[KEYS[rng.u64(..KEYS.len() as u64) as usize]] = v;
                    v = base;
                }
                1 | 2 => {
                    // ... or one field of one scene (its content, or its look).
                    let mut base = every_scene_type();
                    let k = rng.u64(..SCENE_TYPES.len() as u64) as usize;
                    let key = KEYS[rng.u64(..KEYS.len() as u64) as usize];
                    if rng.u64(..2) == 0 {
                        base["scenes"][k]["content"][key] = v;
                    } else {
                        base["scenes"][k][key] = v;
                    }
                    v = base;
                }
                _ => {}
            }
            if let Ok(spec) = validate_spec(&v, &ctx) {
                for (_, src) in spec.images() {
                    if let ImageSource::Asset(p) = src {
                        assert!(
                            !p.starts_with('/') && !p.split('/').any(|c| c == ".."),
                            "{p}"
                        );
                    }
                }
                for scene in &spec.scenes {
                    match &scene.content {
                        SceneContent::BulletList { items, .. } => {
                            assert!(!items.is_empty() && items.len() <= MAX_BULLETS)
                        }
                        SceneContent::Stats { stats, .. } => {
                            assert!(!stats.is_empty() && stats.len() <= MAX_STATS);
                            assert!(stats.iter().all(|s| s.value.is_finite() && s.decimals <= 3));
                        }
                        _ => {}
                    }
                    if let Some(t) = scene.transition {
                        assert!(t.duration >= 0.0 && t.duration <= MAX_TRANSITION_SECONDS);
                    }
                    if let Some(Background::Gradient { colors, .. }) = &scene.background {
                        assert!((2..=4).contains(&colors.len()));
                    }
                }
                accepted += 1;
                assert!(!spec.scenes.is_empty() && spec.scenes.len() <= ctx.limits.max_scenes);
                assert!(spec.duration() <= ctx.limits.max_total_seconds);
                assert!(spec
                    .scenes
                    .iter()
                    .all(|s| s.duration > 0.0 && s.duration <= ctx.limits.max_scene_seconds));
                assert!(ctx.themes.contains(&spec.theme));
                assert!(FPS_CHOICES.contains(&spec.fps));
            }
        }
        assert!(
            accepted > 100,
            "the fuzzer should reach valid specs too ({accepted})"
        );
    }

    /// Number edges: every numeric field either refuses a value or keeps it exactly — nothing is
    /// truncated or wrapped into range (4294967326 once became fps 30).
    #[test]
    fn a_jobs_total_work_is_bounded_at_submission() {
        let ctx = ctx();
        let spec = |quality: &str, scenes: usize, reels: bool| {
            let scene = json!({"type": "hero-title", "duration": 60, "content": {"title": "t"}});
            json!({"theme": "modern", "quality": quality, "generateReels": reels,
                   "scenes": vec![scene; scenes]})
        };
        // 600 s of 1080p30 with a reel: 74,650 megapixel-frames, within the default 75,000.
        assert!(validate_spec(&spec("1080p", 10, true), &ctx).is_ok());
        assert!(validate_spec(&spec("4k", 5, false), &ctx).is_ok());
        let e = validate_spec(&spec("4k", 10, false), &ctx).unwrap_err();
        assert_eq!(e.field, "quality");
        assert!(
            e.message.contains("149299 megapixel-frames"),
            "{}",
            e.message
        );
        let shapes = output_shapes(&Outputs::default(), Quality::P1080, true);
        assert!((work_megapixels(&shapes, 30, 600.0) - 74_649.6).abs() < 0.01);
    }

    #[test]
    fn numbers_at_the_edges_are_refused_or_kept_exactly() {
        let edges: Vec<Value> = serde_json::from_str(
            "[0, 1, 2, 3, 24, 25, 30, 60, 24.0, 30.0, 60.0, 30.5, 29.999999999999996, 2.0000000001, \
             4294967296, 4294967320, 4294967326, 4294967356, 18446744073709551615, \
             18446744073709551614, -9223372036854775808, -1, -30, -0.0, 1e-320, 5e-324, \
             0.1, 0.5, 0.9999999999999999, 1.0000000000000002, 1e15, 9007199254740993, \
             1e300, -1e300, 1.7976931348623157e308, 359.99999999999994, 360, 360.0000000000001]",
        )
        .unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut values = edges.clone();
        for _ in 0..2000 {
            let e = edges[rng.usize(..edges.len())].as_f64().unwrap();
            values.push(json!(e * [1.0, -1.0, 0.5, 2.0, 1e-9, 1e9][rng.usize(..6)]));
            values.push(json!(f64::from_bits(rng.u64(..)).clamp(-1e300, 1e300)));
        }
        values.retain(Value::is_number); // NaN became null: a default, not an edge
        let ctx = ctx();
        let exact = |v: &Value, got: f64| {
            let want = v.as_f64().unwrap();
            assert_eq!(got, want, "{v} was accepted as {got}");
        };
        for v in &values {
            let mut spec = contract_example();
            spec["fps"] = v.clone();
            if let Ok(s) = validate_spec(&spec, &ctx) {
                exact(v, f64::from(s.fps));
                assert!(FPS_CHOICES.contains(&s.fps));
            }
            let mut spec = contract_example();
            spec["scenes"][0]["duration"] = v.clone();
            if let Ok(s) = validate_spec(&spec, &ctx) {
                exact(v, s.scenes[0].duration);
            }
            let mut spec = contract_example();
            spec["music"]["volume"] = v.clone();
            if let Ok(s) = validate_spec(&spec, &ctx) {
                let m = s.music.unwrap();
                assert!((0.0..=1.0).contains(&m.volume), "{v}");
                assert!(
                    (f64::from(m.volume) - v.as_f64().unwrap()).abs() < 1e-6,
                    "{v}"
                );
            }
            let mut spec = every_scene_type();
            spec["scenes"][3]["content"]["stats"][0]["decimals"] = v.clone();
            if let Ok(s) = validate_spec(&spec, &ctx) {
                let SceneContent::Stats { stats, .. } = &s.scenes[3].content else {
                    panic!("scene 3 is stats")
                };
                exact(v, f64::from(stats[0].decimals));
            }
            let mut spec = every_scene_type();
            spec["scenes"][3]["content"]["stats"][0]["value"] = v.clone();
            if let Ok(s) = validate_spec(&spec, &ctx) {
                let SceneContent::Stats { stats, .. } = &s.scenes[3].content else {
                    panic!("scene 3 is stats")
                };
                exact(v, stats[0].value);
            }
            let mut spec = every_scene_type();
            spec["scenes"][1]["transition"]["duration"] = v.clone();
            if let Ok(s) = validate_spec(&spec, &ctx) {
                exact(v, s.scenes[1].transition.unwrap().duration);
            }
        }
        // A whole number written as a float is the same number.
        let mut spec = contract_example();
        spec["fps"] = json!(60.0);
        assert_eq!(validate_spec(&spec, &ctx).unwrap().fps, 60);
        spec["fps"] = json!(4294967326u64);
        let e = validate_spec(&spec, &ctx).unwrap_err();
        assert_eq!(e.field, "fps");
        assert!(e.message.contains("4294967326"), "{e}");
    }

    #[test]
    fn too_many_scenes_and_too_long_in_total() {
        let scene = json!({"type":"hero-title","duration":50,"content":{"title":"a"}});
        let body = json!({ "scenes": vec![scene.clone(); 51] });
        assert_eq!(validate_spec(&body, &ctx()).unwrap_err().field, "scenes");
        let body = json!({ "scenes": vec![scene; 13] }); // 650 s > 600 s
        let e = validate_spec(&body, &ctx()).unwrap_err();
        assert!(e.message.contains("total duration"), "{e}");
    }
}
