//! The video spec clients send, and its validation.
//!
//! Validation works on the raw JSON value rather than on a derived `Deserialize`, so that every
//! error names the exact field at fault (`scenes[2].content.title`) and unknown extra fields are
//! ignored. The result is a typed [`VideoSpec`] that the renderer can trust.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Output resolution preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quality {
    #[serde(rename = "draft")]
    Draft,
    #[serde(rename = "720p")]
    P720,
    #[serde(rename = "1080p")]
    P1080,
    #[serde(rename = "4k")]
    K4,
}

impl Quality {
    pub const ALL: [Quality; 4] = [Quality::Draft, Quality::P720, Quality::P1080, Quality::K4];

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

    pub fn parse(s: &str) -> Option<Quality> {
        let s = s.trim().to_ascii_lowercase();
        Quality::ALL
            .into_iter()
            .find(|q| q.as_str() == s || (s == "2160p" && *q == Quality::K4))
    }
}

/// Background music for a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MusicSpec {
    pub track_id: String,
    /// Linear gain, 0.0–1.0.
    pub volume: f32,
}

/// What a scene shows. One variant per scene type; more arrive with the scene library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SceneContent {
    /// A big title (inline markdown: `**bold**`) with an optional subtitle.
    HeroTitle {
        title: String,
        subtitle: Option<String>,
    },
}

impl SceneContent {
    pub fn type_name(&self) -> &'static str {
        match self {
            SceneContent::HeroTitle { .. } => "hero-title",
        }
    }
}

/// One validated scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Seconds on screen.
    pub duration: f64,
    pub content: SceneContent,
}

/// A validated video spec: everything the renderer needs, nothing it must re-check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoSpec {
    pub theme: String,
    pub music: Option<MusicSpec>,
    pub quality: Quality,
    pub fps: u32,
    pub generate_reels: bool,
    pub scenes: Vec<Scene>,
}

impl VideoSpec {
    /// Total length in seconds: the sum of the scene durations.
    pub fn duration(&self) -> f64 {
        self.scenes.iter().map(|s| s.duration).sum()
    }

    /// Number of frames of the whole video at its frame rate.
    pub fn frame_count(&self) -> u64 {
        (self.duration() * self.fps as f64).round() as u64
    }
}

/// Limits applied during validation (from config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecLimits {
    pub max_scenes: usize,
    pub max_scene_seconds: f64,
    pub max_total_seconds: f64,
    pub max_text_chars: usize,
}

impl Default for SpecLimits {
    fn default() -> Self {
        SpecLimits {
            max_scenes: 50,
            max_scene_seconds: 60.0,
            max_total_seconds: 600.0,
            max_text_chars: 500,
        }
    }
}

/// What validation checks names against: the installed themes and music tracks, and limits.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    pub themes: BTreeSet<String>,
    pub tracks: BTreeSet<String>,
    pub default_theme: String,
    pub limits: SpecLimits,
}

/// A spec that cannot be accepted, with the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// JSON path of the field at fault, e.g. `scenes[0].content.title`.
    pub field: String,
    pub message: String,
}

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError {
        field: field.into(),
        message: message.into(),
    })
}

pub const FPS_CHOICES: [u32; 4] = [24, 25, 30, 60];
pub const SCENE_TYPES: [&str; 1] = ["hero-title"];

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
        Some(v) => match v.as_u64() {
            Some(f) if FPS_CHOICES.contains(&(f as u32)) => f as u32,
            _ => return err("fps", "must be one of 24, 25, 30, 60"),
        },
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
        scenes.push(validate_scene(i, s, ctx)?);
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

    Ok(VideoSpec {
        theme,
        music,
        quality,
        fps,
        generate_reels,
        scenes,
    })
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
    Ok(MusicSpec { track_id, volume })
}

fn validate_scene(i: usize, s: &Value, ctx: &ValidationContext) -> Result<Scene, SpecError> {
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
    let content = match obj.get("content") {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => return err(format!("{at}.content"), "is required"),
        Some(_) => return err(format!("{at}.content"), "must be an object"),
    };
    let content = match ty {
        "hero-title" => SceneContent::HeroTitle {
            title: text_field(content, &at, "title", true, ctx)?.unwrap_or_default(),
            subtitle: text_field(content, &at, "subtitle", false, ctx)?,
        },
        other => {
            return err(
                format!("{at}.type"),
                format!(
                    "unknown scene type '{other}'; available: {}",
                    SCENE_TYPES.join(", ")
                ),
            )
        }
    };
    Ok(Scene { duration, content })
}

fn text_field(
    content: &Map<String, Value>,
    at: &str,
    name: &str,
    required: bool,
    ctx: &ValidationContext,
) -> Result<Option<String>, SpecError> {
    let field = format!("{at}.content.{name}");
    match content.get(name) {
        None | Some(Value::Null) if required => err(field, "is required"),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() && required => {
            err(field, "must not be empty")
        }
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > ctx.limits.max_text_chars => err(
            field,
            format!("is longer than {} characters", ctx.limits.max_text_chars),
        ),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => err(field, "must be a string"),
    }
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
                volume: 0.3
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
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
        }
        const KEYS: [&str; 14] = [
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
        ];
        fn value(r: &mut Rng, depth: u32) -> Value {
            match r.below(if depth > 4 { 6 } else { 9 }) {
                0 => Value::Null,
                1 => Value::Bool(r.below(2) == 0),
                2 => json!(r.next() as i64 >> r.below(64)),
                3 => json!(f64::from_bits(r.next()).clamp(-1e300, 1e300)),
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
                        "é\u{0}"
                    ][r.below(9) as usize]
                ),
                5 => json!([0.0, 0.5, 1.0, 1.5, -1.0, 30.0, 24.0, 600.0][r.below(8) as usize]),
                6 | 7 => {
                    let mut m = Map::new();
                    for _ in 0..r.below(6) {
                        m.insert(
                            KEYS[r.below(KEYS.len() as u64) as usize].to_string(),
                            value(r, depth + 1),
                        );
                    }
                    Value::Object(m)
                }
                _ => Value::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
            }
        }
        let ctx = ctx();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut v = value(&mut rng, 0);
            if rng.below(2) == 0 {
                // Often start from a valid spec and break one part of it.
                let mut base = contract_example();
                base[KEYS[rng.below(KEYS.len() as u64) as usize]] = v;
                v = base;
            }
            if let Ok(spec) = validate_spec(&v, &ctx) {
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
