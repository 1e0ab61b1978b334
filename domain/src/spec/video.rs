//! Video clips: the `video` scene's content and a scene's video `background` share one schema,
//! [`VideoClip`] (`src`, `trim`, `fit`, `speed`, `muted`, `volume`, `loop`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::{media_source, Fit, ImageSource};
use super::{err, SpecError, ValidationContext};

/// The file names a video asset may have.
pub const VIDEO_EXTENSIONS: [&str; 5] = ["mp4", "m4v", "mov", "webm", "mkv"];
/// Slowest and fastest `speed`.
pub const MIN_SPEED: f64 = 0.25;
/// See [`MIN_SPEED`].
pub const MAX_SPEED: f64 = 4.0;
/// Loudest clip `volume` (linear gain).
pub const MAX_CLIP_VOLUME: f64 = 4.0;
/// Latest `trim.start` / `trim.end`, in seconds of the source.
pub const MAX_TRIM_SECONDS: f64 = 86_400.0;

/// One video clip: which part of which file, how it fills its box, how fast it plays, and what
/// becomes of its sound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoClip {
    /// `src`: a video file in the assets directory or an http(s) URL.
    pub src: ImageSource,
    /// `trim.start`: where in the source the clip starts, in seconds (default 0).
    pub trim_start: f64,
    /// `trim.end`: where in the source it ends; `None`: the source's end.
    pub trim_end: Option<f64>,
    /// `fit`: cover (crop to fill, the default) or contain (letterboxed on the background).
    pub fit: Fit,
    /// `speed`: playback rate, [`MIN_SPEED`]–[`MAX_SPEED`] (default 1); the sound keeps its pitch.
    pub speed: f64,
    /// `muted`: leave the clip's sound out (default false in a `video` scene, true for a
    /// background).
    pub muted: bool,
    /// `volume`: linear gain of the clip's sound, 0–[`MAX_CLIP_VOLUME`] (default 1).
    pub volume: f32,
    /// `loop`: a clip shorter than its scene starts again; otherwise it holds its last frame
    /// (and its sound stops).
    #[serde(rename = "loop")]
    pub looped: bool,
}

impl VideoClip {
    /// Seconds of the scene the trimmed clip fills once at its speed, given the source's length
    /// (`None`: unknown, taken as long enough).
    pub fn played_secs(&self, source_secs: Option<f64>) -> Option<f64> {
        let end = match (self.trim_end, source_secs) {
            (Some(e), Some(s)) => e.min(s),
            (Some(e), None) => e,
            (None, Some(s)) => s,
            (None, None) => return None,
        };
        Some(((end - self.trim_start) / self.speed).max(0.0))
    }
}

fn number(obj: &Map<String, Value>, name: &str, at: &str) -> Result<Option<f64>, SpecError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => err(format!("{at}.{name}"), "must be a number"),
        },
    }
}

fn flag(obj: &Map<String, Value>, name: &str, at: &str, default: bool) -> Result<bool, SpecError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => err(format!("{at}.{name}"), "must be true or false"),
    }
}

/// Validate the clip fields of `obj` (the object at `at`); the source is read from `src_key`
/// (`src` in a scene, `video` in a background), `muted` defaults to `muted_default`.
pub(super) fn clip(
    obj: &Map<String, Value>,
    at: &str,
    src_key: &str,
    muted_default: bool,
    ctx: &ValidationContext,
) -> Result<VideoClip, SpecError> {
    let src_field = format!("{at}.{src_key}");
    let src = match obj.get(src_key) {
        None | Some(Value::Null) => {
            return err(
                src_field,
                "is required: a video file in the assets directory or an http(s) URL",
            )
        }
        Some(v) => media_source(v, &src_field, ctx, &VIDEO_EXTENSIONS, "video")?,
    };
    let (trim_start, trim_end) = match obj.get("trim") {
        None | Some(Value::Null) => (0.0, None),
        Some(Value::Object(t)) => {
            let tat = format!("{at}.trim");
            let start = number(t, "start", &tat)?.unwrap_or(0.0);
            if !(0.0..=MAX_TRIM_SECONDS).contains(&start) {
                return err(
                    format!("{tat}.start"),
                    format!("must be a number of seconds from 0 to {MAX_TRIM_SECONDS}"),
                );
            }
            let end = number(t, "end", &tat)?;
            if let Some(e) = end {
                if e > MAX_TRIM_SECONDS || e <= start {
                    return err(
                        format!("{tat}.end"),
                        format!(
                            "must be a number of seconds after trim.start ({start}) and at most {MAX_TRIM_SECONDS}"
                        ),
                    );
                }
            }
            (start, end)
        }
        Some(_) => {
            return err(
                format!("{at}.trim"),
                "must be an object {\"start\": seconds, \"end\": seconds}",
            )
        }
    };
    let fit = match obj.get("fit") {
        None | Some(Value::Null) => Fit::Cover,
        Some(Value::String(s)) if s.trim() == "cover" => Fit::Cover,
        Some(Value::String(s)) if s.trim() == "contain" => Fit::Contain,
        Some(_) => return err(format!("{at}.fit"), "must be one of 'cover', 'contain'"),
    };
    let speed = number(obj, "speed", at)?.unwrap_or(1.0);
    if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
        return err(
            format!("{at}.speed"),
            format!("must be a number from {MIN_SPEED} to {MAX_SPEED}"),
        );
    }
    let volume = number(obj, "volume", at)?.unwrap_or(1.0);
    if !(0.0..=MAX_CLIP_VOLUME).contains(&volume) {
        return err(
            format!("{at}.volume"),
            format!("must be a number from 0 to {MAX_CLIP_VOLUME}"),
        );
    }
    Ok(VideoClip {
        src,
        trim_start,
        trim_end,
        fit,
        speed,
        muted: flag(obj, "muted", at, muted_default)?,
        volume: volume as f32,
        looped: flag(obj, "loop", at, false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<VideoClip, SpecError> {
        let ctx = ValidationContext::default();
        clip(
            v.as_object().unwrap(),
            "scenes[0].content",
            "src",
            false,
            &ctx,
        )
    }

    #[test]
    fn defaults_and_full_form() {
        let c = parse(json!({"src": "clips/a.mp4"})).unwrap();
        assert_eq!(c.src, ImageSource::Asset("clips/a.mp4".into()));
        assert_eq!((c.trim_start, c.trim_end, c.speed), (0.0, None, 1.0));
        assert!(!c.muted && !c.looped && c.fit == Fit::Cover && c.volume == 1.0);
        let c = parse(
            json!({"src": "https://x.test/v.webm", "trim": {"start": 1.5, "end": 4},
            "fit": "contain", "speed": 2, "muted": true, "volume": 0.5, "loop": true}),
        )
        .unwrap();
        assert_eq!((c.trim_start, c.trim_end, c.speed), (1.5, Some(4.0), 2.0));
        assert!(c.muted && c.looped && c.fit == Fit::Contain && c.volume == 0.5);
        assert_eq!(c.played_secs(Some(10.0)), Some(1.25));
        assert_eq!(c.played_secs(Some(3.0)), Some(0.75));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({}), "scenes[0].content.src"),
            (json!({"src": "a.png"}), "scenes[0].content.src"),
            (json!({"src": "../a.mp4"}), "scenes[0].content.src"),
            (
                json!({"src": "file:///etc/passwd"}),
                "scenes[0].content.src",
            ),
            (
                json!({"src": "a.mp4", "trim": {"start": -1}}),
                "scenes[0].content.trim.start",
            ),
            (
                json!({"src": "a.mp4", "trim": {"start": 3, "end": 2}}),
                "scenes[0].content.trim.end",
            ),
            (json!({"src": "a.mp4", "trim": 3}), "scenes[0].content.trim"),
            (
                json!({"src": "a.mp4", "speed": 0}),
                "scenes[0].content.speed",
            ),
            (
                json!({"src": "a.mp4", "speed": 9}),
                "scenes[0].content.speed",
            ),
            (
                json!({"src": "a.mp4", "volume": -1}),
                "scenes[0].content.volume",
            ),
            (
                json!({"src": "a.mp4", "fit": "fill"}),
                "scenes[0].content.fit",
            ),
            (
                json!({"src": "a.mp4", "loop": "yes"}),
                "scenes[0].content.loop",
            ),
            (
                json!({"src": "a.mp4", "muted": 1}),
                "scenes[0].content.muted",
            ),
        ];
        for (v, field) in cases {
            let e = parse(v.clone()).unwrap_err();
            assert_eq!(e.field, field, "{v}: {e}");
        }
    }
}
