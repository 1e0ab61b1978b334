//! Sound beyond the music: a scene's voice-over (`audio`) and the music's ducking under it
//! (`music.duck`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::{media_source, ImageSource};
use super::{err, SpecError, ValidationContext};

/// The file names an audio asset may have.
pub const AUDIO_EXTENSIONS: [&str; 8] = ["mp3", "m4a", "aac", "wav", "ogg", "opus", "flac", "mp4"];
/// Loudest voice-over `volume` (linear gain after loudness normalisation).
pub const MAX_VOICE_VOLUME: f64 = 4.0;
/// The music's level under a voice-over when `music.duck` is `true`.
pub const DEFAULT_DUCK: f32 = 0.3;
/// How long the music takes to go down before a voice-over and back up after it, in seconds.
pub const DUCK_RAMP_SECONDS: f64 = 0.3;

/// A scene's voice-over: a sound file played from `offset` seconds into the scene, loudness-
/// normalised like the music, for as long as it lasts (past its scene if it is longer, never
/// past the video's end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneAudio {
    /// `src`: a sound file in the assets directory or an http(s) URL.
    pub src: ImageSource,
    /// `volume`: linear gain after normalisation, 0–[`MAX_VOICE_VOLUME`] (default 1).
    pub volume: f32,
    /// `offset`: seconds after the scene starts (default 0; less than the scene's duration).
    pub offset: f64,
}

/// Validate a scene's `audio` (`at` is `scenes[i].audio`) for a scene of `duration` seconds.
pub(super) fn scene_audio(
    v: &Value,
    at: &str,
    duration: f64,
    ctx: &ValidationContext,
) -> Result<Option<SceneAudio>, SpecError> {
    let obj: &Map<String, Value> =
        match v {
            Value::Null => return Ok(None),
            Value::Object(o) => o,
            _ => return err(
                at,
                "must be an object {\"src\": \"voice/intro.mp3\", \"volume\": 1, \"offset\": 0}",
            ),
        };
    let src_at = format!("{at}.src");
    let src = match obj.get("src") {
        None | Some(Value::Null) => {
            return err(
                src_at,
                "is required: a sound file in the assets directory or an http(s) URL",
            )
        }
        Some(v) => media_source(v, &src_at, ctx, &AUDIO_EXTENSIONS, "sound")?,
    };
    let number = |name: &str| -> Result<Option<f64>, SpecError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => err(format!("{at}.{name}"), "must be a number"),
            },
        }
    };
    let volume = number("volume")?.unwrap_or(1.0);
    if !(0.0..=MAX_VOICE_VOLUME).contains(&volume) {
        return err(
            format!("{at}.volume"),
            format!("must be a number from 0 to {MAX_VOICE_VOLUME}"),
        );
    }
    let offset = number("offset")?.unwrap_or(0.0);
    if offset < 0.0 || offset >= duration {
        return err(
            format!("{at}.offset"),
            format!(
                "must be a number of seconds from 0 to less than the scene's duration ({duration})"
            ),
        );
    }
    Ok(Some(SceneAudio {
        src,
        volume: volume as f32,
        offset,
    }))
}

/// `music.duck`: `true` (the music drops to [`DEFAULT_DUCK`] under voice-overs), `false`/absent
/// (no ducking: 1), or the level itself, 0–1.
pub(super) fn duck(v: Option<&Value>) -> Result<f32, SpecError> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(1.0),
        Some(Value::Bool(true)) => Ok(DEFAULT_DUCK),
        Some(v) => match v.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(x as f32),
            _ => err(
                "music.duck",
                "must be true, false, or the music's level under a voice-over from 0 to 1",
            ),
        },
    }
}

/// The music's gain at `t` seconds given the voice-over windows `(start, end)` and the ducked
/// level `duck`: 1 away from every window, `duck` inside one, linear ramps of
/// [`DUCK_RAMP_SECONDS`] before and after. The ffmpeg expression of the render
/// (`render/src/ffmpeg.rs`) computes the same.
pub fn duck_gain(t: f64, windows: &[(f64, f64)], duck: f32) -> f64 {
    let r = DUCK_RAMP_SECONDS;
    let w = windows
        .iter()
        .map(|&(a, b)| ((t - (a - r)) / r).clamp(0.0, 1.0) * (((b + r) - t) / r).clamp(0.0, 1.0))
        .fold(0.0, f64::max);
    1.0 - (1.0 - duck as f64) * w
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn voice_over_fields_defaults_and_errors() {
        let ctx = ValidationContext::default();
        let a = scene_audio(&json!({"src": "voice/a.mp3"}), "scenes[0].audio", 3.0, &ctx)
            .unwrap()
            .unwrap();
        assert_eq!((a.volume, a.offset), (1.0, 0.0));
        let a = scene_audio(
            &json!({"src": "https://x.test/v.wav", "volume": 0.5, "offset": 1.5}),
            "scenes[0].audio",
            3.0,
            &ctx,
        )
        .unwrap()
        .unwrap();
        assert_eq!((a.volume, a.offset), (0.5, 1.5));
        for (v, field) in [
            (json!("a.mp3"), "scenes[0].audio"),
            (json!({}), "scenes[0].audio.src"),
            (json!({"src": "a.png"}), "scenes[0].audio.src"),
            (
                json!({"src": "a.mp3", "volume": 5}),
                "scenes[0].audio.volume",
            ),
            (
                json!({"src": "a.mp3", "offset": 3}),
                "scenes[0].audio.offset",
            ),
            (
                json!({"src": "a.mp3", "offset": -1}),
                "scenes[0].audio.offset",
            ),
        ] {
            let e = scene_audio(&v, "scenes[0].audio", 3.0, &ctx).unwrap_err();
            assert_eq!(e.field, field, "{v}");
        }
        assert_eq!(duck(Some(&json!(true))).unwrap(), DEFAULT_DUCK);
        assert_eq!(duck(Some(&json!(0.5))).unwrap(), 0.5);
        assert_eq!(duck(Some(&json!(false))).unwrap(), 1.0);
        assert_eq!(duck(Some(&json!(2))).unwrap_err().field, "music.duck");
    }

    #[test]
    fn the_music_goes_down_under_each_voice_over_with_ramps() {
        let w = [(2.0, 4.0), (6.0, 6.5)];
        assert_eq!(duck_gain(0.0, &w, 0.25), 1.0);
        assert_eq!(duck_gain(3.0, &w, 0.25), 0.25);
        assert!(
            (duck_gain(1.85, &w, 0.25) - 0.625).abs() < 1e-9,
            "half-way down"
        );
        assert!(
            (duck_gain(4.15, &w, 0.25) - 0.625).abs() < 1e-9,
            "half-way up"
        );
        assert_eq!(duck_gain(5.0, &w, 0.25), 1.0);
        assert_eq!(duck_gain(6.2, &w, 0.25), 0.25);
    }
}
