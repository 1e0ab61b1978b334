//! The JSON Schema of a spec body, built from the same tables and limits as [`super::validate_spec`]
//! (scene types, bullet and stat counts, fps choices, transition kinds, and this server's themes,
//! tracks and size limits), so the schema a client validates against is the one this server
//! enforces.
//!
//! It is written for JSON Schema draft-07 (what browser validators such as Ajv read) and uses
//! nothing that 2020-12 (OpenAPI 3.1) reads differently. It describes the canonical form: the
//! server is more lenient in a few ways a schema cannot say (names are trimmed, transition names
//! and directions are read in any case). A few rules depend on several fields at once and are
//! checked by the server only: the sum of the scene durations, the work a job asks for
//! (`limits.max_work_megapixels`), a scene lasting at least one frame at the spec's fps, and the
//! SSRF rules for URLs (see [`SERVER_ONLY_RULES`]).

use serde_json::{json, Map, Value};

use super::audio::MAX_VOICE_VOLUME;
use super::content::{MAX_BULLETS, MAX_BUTTON_CHARS, MAX_STATS, SCENE_TYPES};
use super::fonts::{MAX_FAMILY_CHARS, MAX_FONTS};
use super::style::{TransitionKind, MAX_TRANSITION_SECONDS};
use super::video::{MAX_CLIP_VOLUME, MAX_SPEED, MAX_TRIM_SECONDS, MIN_SPEED};
use super::{
    AspectRatio, Format, ValidationContext, DEFAULT_WATERMARK_OPACITY, DEFAULT_WATERMARK_SCALE,
    FPS_CHOICES, MAX_CUES, MAX_CUE_CHARS, MAX_CUE_WORDS, MAX_GIF_SECONDS, MAX_METADATA_BYTES,
    MIN_WATERMARK_SCALE,
};

/// What the server checks that the schema cannot express.
pub const SERVER_ONLY_RULES: [&str; 9] = [
    "the sum of the scene durations is at most limits.max_total_seconds",
    "the work asked for (frames × pixels, the reel's too) is at most limits.max_work_megapixels",
    "every scene lasts at least one frame at the spec's fps",
    "metadata is at most 4096 bytes of compact JSON",
    "URLs do not point at internal addresses (SSRF guard), also when their names are resolved",
    "font is an installed family or one of fonts[].family; fonts are given only with font; each font file holds its family (an asset checked at submission, a URL when it is fetched)",
    "a voice-over's offset is less than its scene's duration; a video clip's trim.end comes after its trim.start; a video or sound in the assets directory is readable by ffmpeg and has a picture (a sound: sound) — probed at submission; a URL when it is fetched",
    "a gif lasts at most 30 s; frameRate variable is for mp4 only; aspectRatios lists each ratio once (1x1 and 1:1 are the same)",
    "captions give exactly one of srt, vtt and cues; SRT and WebVTT text parses; a cue ends after it starts and starts before the video ends; word timings are in order, within their cue and found in its text",
];

/// What a `webhookUrl` looks like: an http(s) URL (surrounding spaces are trimmed).
pub const WEBHOOK_URL_PATTERN: &str = "^\\s*[Hh][Tt][Tt][Pp][Ss]?://\\S+\\s*$";

/// The `$id` the schema is served under.
pub const SCHEMA_PATH: &str = "/api/schema/video-spec.json";

/// A string field of at most `max` characters that is not blank, or `null` when optional.
fn text(max: usize, required: bool, description: &str) -> Value {
    let s = json!({"type": "string", "maxLength": max, "pattern": "^[^\\u0000]*\\S[^\\u0000]*$", "description": description});
    if required {
        s
    } else {
        json!({"anyOf": [s, {"type": "null"}], "description": description})
    }
}

/// The fields of a video clip (`src_key` names its source; a background's `dim` is added when
/// `dim`).
fn clip_properties(src_key: &str, dim: bool) -> Map<String, Value> {
    let num = |min: f64, max: f64, d: &str| json!({"anyOf": [{"type": "number", "minimum": min, "maximum": max}, {"type": "null"}], "description": d});
    let flag = |d: &str| json!({"type": ["boolean", "null"], "description": d});
    let mut p = Map::new();
    p.insert(src_key.into(), json!({"$ref": "#/definitions/video"}));
    p.insert(
        "trim".into(),
        json!({"anyOf": [{"type": "null"}, {"type": "object", "properties": {
            "start": num(0.0, MAX_TRIM_SECONDS, "Where the clip starts in the source, in seconds (default 0)."),
            "end": num(0.0, MAX_TRIM_SECONDS, "Where it ends in the source (after start; default the source's end).")
        }}], "description": "The part of the source to play."}),
    );
    p.insert(
        "fit".into(),
        json!({"anyOf": [{"enum": ["cover", "contain"]}, {"type": "null"}], "description": "cover (crop to fill, default) or contain (letterboxed)."}),
    );
    p.insert(
        "speed".into(),
        num(
            MIN_SPEED,
            MAX_SPEED,
            "Playback rate (default 1); the sound keeps its pitch.",
        ),
    );
    p.insert(
        "volume".into(),
        num(
            0.0,
            MAX_CLIP_VOLUME,
            "Gain of the clip's sound (default 1).",
        ),
    );
    p.insert(
        "muted".into(),
        flag(if dim {
            "Leave the clip's sound out (default true for a background)."
        } else {
            "Leave the clip's sound out (default false)."
        }),
    );
    p.insert(
        "loop".into(),
        flag("Start the clip again when it ends before the scene does (default: hold its last frame)."),
    );
    if dim {
        p.insert(
            "dim".into(),
            num(
                0.0,
                1.0,
                "How far the clip is blended towards the theme's background colour (default 0.35).",
            ),
        );
    }
    p
}

/// Named definitions the schema refers to with `#/definitions/<name>`.
fn definitions(ctx: &ValidationContext) -> Map<String, Value> {
    let l = &ctx.limits;
    let mut d = Map::new();
    d.insert(
        "image".into(),
        json!({
            "description": "An http(s) URL, or a relative path of a .png, .jpg, .jpeg, .webp or .gif file in the server's assets directory (no leading '/', no '..').",
            "type": "string",
            "maxLength": l.max_url_chars,
            "anyOf": [
                {"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$"},
                {"pattern": "^(?!.*://)(?![/~])(?!.*(^|/)\\.\\.(/|$))(?!.*//)[^\\\\:\\s]+\\.([Pp][Nn][Gg]|[Jj][Pp][Ee]?[Gg]|[Ww][Ee][Bb][Pp]|[Gg][Ii][Ff])$"}
            ]
        }),
    );
    d.insert(
        "video".into(),
        json!({
            "description": "An http(s) URL, or a relative path of a .mp4, .m4v, .mov, .webm or .mkv file in the server's assets directory (no leading '/', no '..').",
            "type": "string",
            "maxLength": l.max_url_chars,
            "anyOf": [
                {"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$"},
                {"pattern": "^(?!.*://)(?![/~])(?!.*(^|/)\\.\\.(/|$))(?!.*//)[^\\\\:\\s]+\\.([Mm][Pp]4|[Mm]4[Vv]|[Mm][Oo][Vv]|[Ww][Ee][Bb][Mm]|[Mm][Kk][Vv])$"}
            ]
        }),
    );
    d.insert(
        "sound".into(),
        json!({
            "description": "An http(s) URL, or a relative path of a .mp3, .m4a, .aac, .wav, .ogg, .opus, .flac or .mp4 file in the server's assets directory (no leading '/', no '..').",
            "type": "string",
            "maxLength": l.max_url_chars,
            "anyOf": [
                {"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$"},
                {"pattern": "^(?!.*://)(?![/~])(?!.*(^|/)\\.\\.(/|$))(?!.*//)[^\\\\:\\s]+\\.([Mm][Pp]3|[Mm]4[Aa]|[Aa][Aa][Cc]|[Ww][Aa][Vv]|[Oo][Gg][Gg]|[Oo][Pp][Uu][Ss]|[Ff][Ll][Aa][Cc]|[Mm][Pp]4)$"}
            ]
        }),
    );
    d.insert(
        "voiceOver".into(),
        json!({
            "description": "A voice-over played from offset seconds into the scene (less than its duration), loudness-normalised like the music, for as long as it lasts.",
            "anyOf": [{"type": "null"}, {"type": "object", "required": ["src"], "properties": {
                "src": {"$ref": "#/definitions/sound"},
                "volume": {"anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_VOICE_VOLUME}, {"type": "null"}], "description": "Gain after normalisation (default 1)."},
                "offset": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}], "description": "Seconds after the scene starts (default 0)."}
            }}]
        }),
    );
    d.insert(
        "color".into(),
        json!({"type": "string", "pattern": "^#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$", "description": "#RGB or #RRGGBB."}),
    );
    d.insert(
        "fit".into(),
        json!({"anyOf": [{"enum": ["cover", "contain"]}, {"type": "null"}], "description": "How the image fills its box (default cover)."}),
    );
    let kinds: Vec<&str> = TransitionKind::ALL.iter().map(|(n, _)| *n).collect();
    d.insert(
        "transition".into(),
        json!({
            "description": "How the scene gives way to the next: a name, or an object with type, duration (seconds, default 0.5) and direction (slide and wipe).",
            "anyOf": [
                {"type": "null"},
                {"enum": kinds},
                {"type": "object", "required": ["type"], "properties": {
                    "type": {"enum": kinds},
                    "duration": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TRANSITION_SECONDS}, {"type": "null"}]},
                    "direction": {"anyOf": [{"enum": ["left", "right", "up", "down"]}, {"type": "null"}]}
                }}
            ]
        }),
    );
    d.insert(
        "background".into(),
        json!({
            "description": "This scene's background instead of the theme's: a colour, or an object with color, gradient (2 to 4 colours, angle in degrees), image (with dim 0..1) or video (a clip covering the frame, muted by default, with dim 0..1).",
            "anyOf": [
                {"type": "null"},
                {"$ref": "#/definitions/color"},
                {"type": "object", "required": ["color"], "properties": {"color": {"$ref": "#/definitions/color"}}},
                {"type": "object", "required": ["gradient"], "not": {"required": ["color"]}, "properties": {
                    "gradient": {"type": "array", "minItems": 2, "maxItems": 4, "items": {"$ref": "#/definitions/color"}},
                    "angle": {"anyOf": [{"type": "number", "minimum": -360, "maximum": 360}, {"type": "null"}]}
                }},
                {"type": "object", "required": ["image"], "not": {"anyOf": [{"required": ["color"]}, {"required": ["gradient"]}]}, "properties": {
                    "image": {"$ref": "#/definitions/image"},
                    "dim": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]}
                }},
                {"type": "object", "required": ["video"], "not": {"anyOf": [{"required": ["color"]}, {"required": ["gradient"]}, {"required": ["image"]}]},
                 "properties": clip_properties("video", true)}
            ]
        }),
    );
    let t = l.max_text_chars;
    let stat = json!({"type": "object", "required": ["value", "label"], "properties": {
        "value": {"type": "number", "exclusiveMinimum": -1e15, "exclusiveMaximum": 1e15},
        "label": text(t, true, "Shown below the number."),
        "prefix": text(24, false, "Shown before the number, e.g. \"$\"."),
        "suffix": text(24, false, "Shown after the number, e.g. \"%\"."),
        "decimals": {"anyOf": [{"enum": [0, 1, 2, 3]}, {"type": "null"}]}
    }});
    let mut video_props = clip_properties("src", false);
    video_props.insert("caption".into(), text(t, false, "A caption over the clip."));
    let contents = [
        (
            "hero-title",
            json!({"required": ["title"], "properties": {
            "title": text(t, true, "The title; **bold** and ==highlight== marks are drawn."),
            "subtitle": text(t, false, "A line below the title.")}}),
        ),
        (
            "text",
            json!({"required": ["body"], "properties": {
            "heading": text(t, false, "A heading above the body."),
            "body": text(t, true, "The text.")}}),
        ),
        (
            "bullet-list",
            json!({"required": ["items"], "properties": {
            "heading": text(t, false, "A heading above the list."),
            "items": {"type": "array", "minItems": 1, "maxItems": MAX_BULLETS, "items": text(t, true, "One bullet.")}}}),
        ),
        (
            "stats",
            json!({"required": ["stats"], "properties": {
            "heading": text(t, false, "A heading above the numbers."),
            "stats": {"type": "array", "minItems": 1, "maxItems": MAX_STATS, "items": stat}}}),
        ),
        (
            "quote",
            json!({"required": ["quote"], "properties": {
            "quote": text(t, true, "The quotation."),
            "author": text(t, false, "Who said it."),
            "role": text(t, false, "Their role.")}}),
        ),
        (
            "image",
            json!({"required": ["src"], "properties": {
            "src": {"$ref": "#/definitions/image"},
            "fit": {"$ref": "#/definitions/fit"},
            "caption": text(t, false, "A caption over the image."),
            "kenBurns": {"type": ["boolean", "null"], "description": "A slow zoom and pan (default true)."}}}),
        ),
        (
            "video",
            json!({"required": ["src"], "properties": video_props}),
        ),
        (
            "split",
            json!({"required": ["image"],
            "anyOf": [{"required": ["heading"], "properties": {"heading": {"type": "string", "pattern": "\\S"}}},
                      {"required": ["body"], "properties": {"body": {"type": "string", "pattern": "\\S"}}}],
            "properties": {
            "heading": text(t, false, "A heading beside the image."),
            "body": text(t, false, "Text beside the image."),
            "image": {"$ref": "#/definitions/image"},
            "imageSide": {"anyOf": [{"enum": ["left", "right"]}, {"type": "null"}]},
            "fit": {"$ref": "#/definitions/fit"}}}),
        ),
        (
            "call-to-action",
            json!({"required": ["headline", "button"], "properties": {
            "headline": text(t, true, "The headline."),
            "button": text(MAX_BUTTON_CHARS, true, "The button's label."),
            "url": text(l.max_url_chars, false, "A URL shown below the button.")}}),
        ),
        (
            "logo-outro",
            json!({
            "anyOf": [{"required": ["logo"], "properties": {"logo": {"type": "string"}}},
                      {"required": ["wordmark"], "properties": {"wordmark": {"type": "string", "pattern": "\\S"}}}],
            "properties": {
            "logo": {"anyOf": [{"$ref": "#/definitions/image"}, {"type": "null"}]},
            "wordmark": text(t, false, "The brand name, drawn as text."),
            "tagline": text(t, false, "A line below.")}}),
        ),
    ];
    debug_assert_eq!(contents.len(), SCENE_TYPES.len());
    let scenes: Vec<Value> = contents
        .into_iter()
        .map(|(ty, mut content)| {
            content["type"] = json!("object");
            json!({
                "title": ty,
                "type": "object",
                "required": ["type", "duration", "content"],
                "properties": {
                    "type": {"const": ty},
                    "duration": {"type": "number", "exclusiveMinimum": 0, "maximum": l.max_scene_seconds,
                                 "description": "Seconds on screen."},
                    "content": content,
                    "background": {"$ref": "#/definitions/background"},
                    "transition": {"$ref": "#/definitions/transition"},
                    "audio": {"$ref": "#/definitions/voiceOver"}
                }
            })
        })
        .collect();
    d.insert(
        "scene".into(),
        json!({
            "description": format!("One scene: its type ({}), duration and content.", SCENE_TYPES.join(", ")),
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": SCENE_TYPES}},
            "oneOf": scenes
        }),
    );
    d
}

/// The JSON Schema of a request body of `POST /api/generate-video-async` (and the other
/// submission endpoints) on a server with this validation context.
pub fn json_schema(ctx: &ValidationContext) -> Value {
    let themes: Vec<&String> = ctx.themes.iter().collect();
    let tracks: Vec<&String> = ctx.tracks.iter().collect();
    let watermark = json!({"anyOf": [{"type": "null"}, {"type": "object", "required": ["src"], "properties": {
                "src": {"$ref": "#/definitions/image"},
                "position": {"anyOf": [{"enum": ["top-left", "top-right", "bottom-left", "bottom-right", "center"]}, {"type": "null"}], "description": "Default bottom-right."},
                "opacity": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}], "description": format!("0..1 (default {DEFAULT_WATERMARK_OPACITY}).")},
                "scale": {"anyOf": [{"type": "number", "minimum": MIN_WATERMARK_SCALE, "maximum": 1}, {"type": "null"}],
                          "description": format!("Its width as a share of the frame's shorter side (default {DEFAULT_WATERMARK_SCALE}); its height at most half of it.")}
            }}], "description": "An image over every frame of every output (the reel too)."});
    let cue_text = text(MAX_CUE_CHARS, true, "The cue's text (plain).");
    let word = json!({"type": "object", "required": ["start", "end", "text"], "properties": {
        "start": {"type": "number", "minimum": 0}, "end": {"type": "number", "minimum": 0},
        "text": text(MAX_CUE_CHARS, true, "The word, as it appears in the cue's text.")
    }});
    let cue = json!({"type": "object", "required": ["start", "end", "text"], "properties": {
        "start": {"type": "number", "minimum": 0, "description": "Seconds from the video's start."},
        "end": {"type": "number", "minimum": 0, "description": "Seconds from the video's start, after start."},
        "text": cue_text,
        "words": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": MAX_CUE_WORDS, "items": word}],
                  "description": "Word timings, in order: the spoken word is highlighted."}
    }});
    let captions = json!({"anyOf": [{"type": "null"}, {"type": "object", "properties": {
        "srt": {"type": ["string", "null"], "description": "An SRT file's text."},
        "vtt": {"type": ["string", "null"], "description": "A WebVTT file's text (starting with WEBVTT)."},
        "cues": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": MAX_CUES, "items": cue}]}
    }}], "description": "Timed text burned into every output and served as WebVTT at /api/download/{jobId}/captions: exactly one of srt, vtt, cues."});
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_PATH,
        "title": "Video spec",
        "description": format!(
            "A video to render: a theme, music, a quality and its scenes. Checked by the server only: {}.",
            SERVER_ONLY_RULES.join("; ")
        ),
        "type": "object",
        "required": ["scenes"],
        "properties": {
            "webhookUrl": {"anyOf": [{"type": "string", "pattern": WEBHOOK_URL_PATTERN, "maxLength": ctx.limits.max_url_chars}, {"type": "null"}],
                           "description": "Where the started and completed/failed webhooks go (required by POST /api/generate-video-async)."},
            "theme": {"anyOf": [{"enum": themes}, {"type": "null"}], "description": format!("An installed theme (default {}).", ctx.default_theme)},
            "music": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["trackId"], "properties": {
                "trackId": {"enum": tracks},
                "volume": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}], "description": "0..1 (default 0.3)."},
                "duck": {"anyOf": [{"type": ["boolean", "null"]}, {"type": "number", "minimum": 0, "maximum": 1}],
                         "description": "Lower the music while a scene's voice-over plays: true (to 0.3), or the level 0..1; false or absent: not lowered."}
            }}]},
            "quality": {"anyOf": [{"enum": ["draft", "720p", "1080p", "4k"]}, {"type": "null"}], "description": "Output resolution (default 1080p)."},
            "fps": {"anyOf": [{"enum": FPS_CHOICES}, {"type": "null"}], "description": "Frames per second (default 30)."},
            "frameRate": {"anyOf": [{"enum": ["constant", "variable"]}, {"type": "null"}],
                          "description": "constant (default): every frame at fps. variable: a frame that repeats the previous one is not encoded again, the previous one lasts longer (at least one frame a second is kept); faster where the video holds still."},
            "generateReels": {"type": ["boolean", "null"], "description": "Also render a vertical 1080×1920 reel (the shorthand for a 9:16 after aspectRatios' others)."},
            "format": {"anyOf": [{"enum": Format::ALL.map(Format::as_str)}, {"type": "null"}],
                       "description": format!("mp4 (H.264/AAC, default), webm (VP9/Opus) or gif (no sound, at most {MAX_GIF_SECONDS} s; one palette for the whole video).")},
            "aspectRatios": {"anyOf": [{"type": "null"}, {"type": "array", "minItems": 1, "maxItems": AspectRatio::ALL.len(), "uniqueItems": true,
                              "items": {"enum": AspectRatio::ALL.map(AspectRatio::as_str)}}],
                             "description": "The shapes to render from the same scenes, the layout reflowed for each, at the quality's short side; the first is videoUrl, a later 9:16 the reel, every one in outputs. Default [\"16:9\"]."},
            "watermark": watermark,
            "captions": captions,
            "font": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": MAX_FAMILY_CHARS, "pattern": "\\S"}],
                     "description": format!("The font family every text layer is set in instead of the theme's: installed ({}) or supplied in fonts.", ctx.fonts.iter().cloned().collect::<Vec<_>>().join(", "))},
            "fonts": {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": MAX_FONTS, "items": {"type": "object", "required": ["family", "src"], "properties": {
                "family": {"type": "string", "maxLength": MAX_FAMILY_CHARS, "pattern": "\\S", "description": "The family name inside the file."},
                "src": {"type": "string", "maxLength": ctx.limits.max_url_chars, "description": "A .ttf or .otf file in the assets directory or an http(s) URL.",
                        "anyOf": [{"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$"},
                                  {"pattern": "^(?!.*://)(?![/~])(?!.*(^|/)\\.\\.(/|$))(?!.*//)[^\\\\:\\s]+\\.([Tt][Tt][Ff]|[Oo][Tt][Ff])$"}]}
            }}}], "description": "Font files for font (at most 4), each checked to hold its family."},
            "metadata": {"anyOf": [{"type": "object"}, {"type": "null"}],
                         "description": format!("Your own JSON object (at most {MAX_METADATA_BYTES} bytes), echoed in job-status and every webhook.")},
            "scenes": {"type": "array", "minItems": 1, "maxItems": ctx.limits.max_scenes, "items": {"$ref": "#/definitions/scene"}}
        },
        "definitions": definitions(ctx)
    })
}
