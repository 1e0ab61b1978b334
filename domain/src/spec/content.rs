//! The scene library's `content` schemas and their validation. One [`SceneContent`] variant per
//! scene type; `docs/scenes.md` documents each field for users.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::video::VideoClip;
use super::{err, SpecError, ValidationContext};

/// Every scene type, in the order the docs list them.
pub const SCENE_TYPES: [&str; 10] = [
    "hero-title",
    "text",
    "bullet-list",
    "stats",
    "quote",
    "image",
    "video",
    "split",
    "call-to-action",
    "logo-outro",
];

/// Most items a `bullet-list` may hold.
pub const MAX_BULLETS: usize = 8;
/// Most numbers a `stats` scene may show.
pub const MAX_STATS: usize = 4;
/// Longest `call-to-action` button label, in characters.
pub const MAX_BUTTON_CHARS: usize = 40;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "kebab-case")]
pub enum ImageSource {
    /// A file under the configured assets directory: a relative path with no `..`, never an
    /// arbitrary path on the server.
    Asset(String),
    /// An `http(s)` URL, fetched with size, type and time limits under the SSRF guard.
    Url(String),
}

impl ImageSource {
    /// As the client wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            ImageSource::Asset(p) | ImageSource::Url(p) => p,
        }
    }
}

/// How an image fills its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Fill the box, cropping what overflows (default).
    #[default]
    Cover,
    /// Show the whole image, letterboxed on the background.
    Contain,
}

/// Which side of a `split` scene the image takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The image on the left, the text on the right.
    Left,
    /// The image on the right, the text on the left (default).
    #[default]
    Right,
}

/// One number of a `stats` scene: counts up from 0 to `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// `value`: the number counted up to (below 10¹⁵ in size; may be negative).
    pub value: f64,
    /// `label`: the text shown below the number.
    pub label: String,
    /// Shown before the number, e.g. "$".
    pub prefix: Option<String>,
    /// Shown after the number, e.g. "%" or "k+".
    pub suffix: Option<String>,
    /// Digits after the decimal point (0–3); by default those of `value` as written.
    pub decimals: u8,
}

/// What a scene shows. One variant per scene type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SceneContent {
    /// A big title (inline markdown) with an optional subtitle.
    HeroTitle {
        /// `title`: the title, with inline markdown.
        title: String,
        /// `subtitle`: shown under the title.
        subtitle: Option<String>,
    },
    /// A heading and a paragraph.
    Text {
        /// `heading`: without it the body is set larger, in the title colour.
        heading: Option<String>,
        /// `body`: the paragraph.
        body: String,
    },
    /// Items revealed one by one under an optional heading.
    BulletList {
        /// `heading`: shown above the items.
        heading: Option<String>,
        /// `items`: 1 to [`MAX_BULLETS`] non-empty items, in order.
        items: Vec<String>,
    },
    /// Numbers that count up, with labels.
    Stats {
        /// `heading`: shown above the numbers.
        heading: Option<String>,
        /// `stats`: 1 to [`MAX_STATS`] numbers.
        stats: Vec<Stat>,
    },
    /// A quotation with its author and the author's role.
    Quote {
        /// `quote`: the quotation.
        quote: String,
        /// `author`: shown as `— author`.
        author: Option<String>,
        /// `role`: the author's role.
        role: Option<String>,
    },
    /// A full-frame image with slow Ken Burns motion and an optional caption.
    Image {
        /// `src`: the image.
        src: ImageSource,
        /// `fit`: how the image fills the frame (default cover).
        fit: Fit,
        /// `caption`: text on a band at the bottom of the frame.
        caption: Option<String>,
        /// `kenBurns`: the slow zoom (default true).
        ken_burns: bool,
    },
    /// A video clip filling the frame (cover or contain), with its sound mixed in unless muted,
    /// and an optional caption.
    Video {
        /// The clip: `src`, `trim`, `fit`, `speed`, `muted`, `volume`, `loop`.
        clip: VideoClip,
        /// `caption`: text on a band at the bottom of the frame.
        caption: Option<String>,
    },
    /// Text beside an image (above it in portrait).
    Split {
        /// `heading`: at least one of `heading` and `body` is given.
        heading: Option<String>,
        /// `body`: at least one of `heading` and `body` is given.
        body: Option<String>,
        /// `image`: the image covering one half of the frame.
        image: ImageSource,
        /// `imageSide`: which half the image takes, in landscape only (default right).
        image_side: Side,
        /// `fit`: how the image fills its half (default cover).
        fit: Fit,
    },
    /// A headline, a button-like label and the URL to visit, as text.
    CallToAction {
        /// `headline`: the headline.
        headline: String,
        /// `button`: the button's label, one line of at most [`MAX_BUTTON_CHARS`] characters.
        button: String,
        /// `url`: shown as written; never fetched.
        url: Option<String>,
    },
    /// A logo image or a wordmark, and a tagline.
    LogoOutro {
        /// `logo`: the logo image; at least one of `logo` and `wordmark` is given.
        logo: Option<ImageSource>,
        /// `wordmark`: the name set in bold; at least one of `logo` and `wordmark` is given.
        wordmark: Option<String>,
        /// `tagline`: shown under the logo or wordmark.
        tagline: Option<String>,
    },
}

impl SceneContent {
    /// The scene's `type` as the spec writes it (`"hero-title"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            SceneContent::HeroTitle { .. } => "hero-title",
            SceneContent::Text { .. } => "text",
            SceneContent::BulletList { .. } => "bullet-list",
            SceneContent::Stats { .. } => "stats",
            SceneContent::Quote { .. } => "quote",
            SceneContent::Image { .. } => "image",
            SceneContent::Video { .. } => "video",
            SceneContent::Split { .. } => "split",
            SceneContent::CallToAction { .. } => "call-to-action",
            SceneContent::LogoOutro { .. } => "logo-outro",
        }
    }

    /// The images this content uses, with the field naming each (relative to the scene).
    pub fn images(&self) -> Vec<(&'static str, &ImageSource)> {
        match self {
            SceneContent::Image { src, .. } => vec![("content.src", src)],
            SceneContent::Split { image, .. } => vec![("content.image", image)],
            SceneContent::LogoOutro { logo: Some(l), .. } => vec![("content.logo", l)],
            _ => Vec::new(),
        }
    }
}

/// Reads the fields of one scene's `content` object, naming `scenes[i].content.<name>` in errors.
pub(super) struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub at: String,
    pub ctx: &'a ValidationContext,
}

impl Fields<'_> {
    fn path(&self, name: &str) -> String {
        format!("{}.{name}", self.at)
    }

    /// A text field: trimmed, non-empty when required, within the text limit. An empty optional
    /// field counts as absent.
    pub(super) fn text(&self, name: &str, required: bool) -> Result<Option<String>, SpecError> {
        text_value(
            self.obj.get(name),
            &self.path(name),
            required,
            self.ctx.limits.max_text_chars,
        )
    }

    pub(super) fn required_text(&self, name: &str) -> Result<String, SpecError> {
        Ok(self.text(name, true)?.unwrap_or_default())
    }

    /// A short label of at most `max` characters.
    fn label(&self, name: &str, required: bool, max: usize) -> Result<Option<String>, SpecError> {
        text_value(self.obj.get(name), &self.path(name), required, max)
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, SpecError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => err(self.path(name), "must be true or false"),
        }
    }

    fn choice<T: Copy + Default>(&self, name: &str, options: &[(&str, T)]) -> Result<T, SpecError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(T::default()),
            Some(Value::String(s)) => match options.iter().find(|(n, _)| *n == s.trim()) {
                Some((_, v)) => Ok(*v),
                None => err(
                    self.path(name),
                    format!("must be one of {}", names(options)),
                ),
            },
            Some(_) => err(
                self.path(name),
                format!("must be one of {}", names(options)),
            ),
        }
    }

    fn image(&self, name: &str, required: bool) -> Result<Option<ImageSource>, SpecError> {
        match self.obj.get(name) {
            None | Some(Value::Null) if required => err(
                self.path(name),
                "is required: a file in the assets directory or an http(s) URL",
            ),
            None | Some(Value::Null) => Ok(None),
            Some(v) => image_source(v, &self.path(name), self.ctx).map(Some),
        }
    }

    /// A non-empty array of at most `max` elements.
    fn array(&self, name: &str, max: usize) -> Result<&Vec<Value>, SpecError> {
        match self.obj.get(name) {
            Some(Value::Array(a)) if a.is_empty() => {
                err(self.path(name), "must contain at least one element")
            }
            Some(Value::Array(a)) if a.len() > max => err(
                self.path(name),
                format!("has {} elements; at most {max} are allowed", a.len()),
            ),
            Some(Value::Array(a)) => Ok(a),
            None | Some(Value::Null) => err(self.path(name), "is required: a non-empty array"),
            Some(_) => err(self.path(name), "must be an array"),
        }
    }
}

fn names<T>(options: &[(&str, T)]) -> String {
    options
        .iter()
        .map(|(n, _)| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn text_value(
    v: Option<&Value>,
    field: &str,
    required: bool,
    max_chars: usize,
) -> Result<Option<String>, SpecError> {
    match v {
        None | Some(Value::Null) if required => err(field, "is required"),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() && required => {
            err(field, "must not be empty")
        }
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max_chars => {
            err(field, format!("is longer than {max_chars} characters"))
        }
        Some(Value::String(s)) if s.contains('\0') => err(field, "must not contain NUL characters"),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => err(field, "must be a string"),
    }
}

/// An image reference: `"https://…"`/`"http://…"` or a relative path under the assets directory.
pub(super) fn image_source(
    v: &Value,
    field: &str,
    ctx: &ValidationContext,
) -> Result<ImageSource, SpecError> {
    media_source(
        v,
        field,
        ctx,
        &["png", "jpg", "jpeg", "webp", "gif"],
        "image",
    )
}

/// A media reference: an http(s) URL, or a relative path under the assets directory whose name
/// ends in one of `exts` (`what` names the kind of file in errors).
pub(super) fn media_source(
    v: &Value,
    field: &str,
    ctx: &ValidationContext,
    exts: &[&str],
    what: &str,
) -> Result<ImageSource, SpecError> {
    let s = match v {
        Value::String(s) if !s.trim().is_empty() => s.trim(),
        Value::String(_) => return err(field, "must not be empty"),
        _ => {
            return err(
                field,
                "must be a string: a file in the assets directory or an http(s) URL",
            )
        }
    };
    let max = ctx.limits.max_url_chars;
    if s.len() > max {
        return err(field, format!("is longer than {max} characters"));
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            err(field, "must be a valid http(s) URL")
        } else {
            Ok(ImageSource::Url(s.to_string()))
        };
    }
    if s.contains("://") || lower.starts_with("data:") || lower.starts_with("file:") {
        return err(
            field,
            "only http(s) URLs and files in the assets directory are supported",
        );
    }
    let bad = s.starts_with('/')
        || s.starts_with('~')
        || s.contains('\\')
        || s.contains(':')
        || s.chars().any(|c| c.is_control())
        || s.split('/').any(|part| part == ".." || part.is_empty());
    if bad {
        return err(
            field,
            "must be a relative path inside the assets directory (no leading '/', no '..') or an http(s) URL",
        );
    }
    let ext = lower.rsplit('.').next().unwrap_or("");
    if !exts.contains(&ext) || !lower.contains('.') {
        let list = exts
            .iter()
            .map(|e| format!(".{e}"))
            .collect::<Vec<_>>()
            .join(", ");
        return err(field, format!("must name a {what} file ({list})"));
    }
    Ok(ImageSource::Asset(s.to_string()))
}

fn stat(v: &Value, at: &str, ctx: &ValidationContext) -> Result<Stat, SpecError> {
    let obj = match v.as_object() {
        Some(o) => o,
        None => return err(at, "must be an object {\"value\": 42, \"label\": \"...\"}"),
    };
    let (value, written_decimals) = match obj.get("value") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() && x.abs() < 1e15 => {
                let text = n.to_string();
                let decimals = text.split_once('.').map_or(0, |(_, d)| d.len().min(3));
                (x, decimals as u8)
            }
            _ => return err(format!("{at}.value"), "must be a number below 10^15"),
        },
        None | Some(Value::Null) => return err(format!("{at}.value"), "is required"),
        Some(_) => return err(format!("{at}.value"), "must be a number"),
    };
    let short = 24;
    let label = text_value(
        obj.get("label"),
        &format!("{at}.label"),
        true,
        ctx.limits.max_text_chars,
    )?
    .unwrap_or_default();
    let prefix = text_value(obj.get("prefix"), &format!("{at}.prefix"), false, short)?;
    let suffix = text_value(obj.get("suffix"), &format!("{at}.suffix"), false, short)?;
    let decimals = match obj.get("decimals") {
        None | Some(Value::Null) => written_decimals,
        Some(v) => match super::whole_number(v) {
            Some(d) if d <= 3 => d as u8,
            _ => return err(format!("{at}.decimals"), "must be 0, 1, 2 or 3"),
        },
    };
    Ok(Stat {
        value,
        label,
        prefix,
        suffix,
        decimals,
    })
}

const FITS: [(&str, Fit); 2] = [("cover", Fit::Cover), ("contain", Fit::Contain)];

/// Validate `content` for a scene of type `ty`. `at` is `scenes[i]`.
pub(super) fn content(
    ty: &str,
    obj: &Map<String, Value>,
    at: &str,
    ctx: &ValidationContext,
) -> Result<SceneContent, SpecError> {
    let f = Fields {
        obj,
        at: format!("{at}.content"),
        ctx,
    };
    Ok(match ty {
        "hero-title" => SceneContent::HeroTitle {
            title: f.required_text("title")?,
            subtitle: f.text("subtitle", false)?,
        },
        "text" => SceneContent::Text {
            heading: f.text("heading", false)?,
            body: f.required_text("body")?,
        },
        "bullet-list" => {
            let heading = f.text("heading", false)?;
            let items = f
                .array("items", MAX_BULLETS)?
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    text_value(
                        Some(v),
                        &format!("{}.items[{k}]", f.at),
                        true,
                        ctx.limits.max_text_chars,
                    )
                    .map(Option::unwrap_or_default)
                })
                .collect::<Result<_, _>>()?;
            SceneContent::BulletList { heading, items }
        }
        "stats" => {
            let heading = f.text("heading", false)?;
            let stats = f
                .array("stats", MAX_STATS)?
                .iter()
                .enumerate()
                .map(|(k, v)| stat(v, &format!("{}.stats[{k}]", f.at), ctx))
                .collect::<Result<_, _>>()?;
            SceneContent::Stats { heading, stats }
        }
        "quote" => SceneContent::Quote {
            quote: f.required_text("quote")?,
            author: f.text("author", false)?,
            role: f.text("role", false)?,
        },
        "image" => SceneContent::Image {
            src: f.image("src", true)?.expect("required"),
            fit: f.choice("fit", &FITS)?,
            caption: f.text("caption", false)?,
            ken_burns: f.flag("kenBurns", true)?,
        },
        "video" => SceneContent::Video {
            clip: super::video::clip(obj, &f.at, "src", false, ctx)?,
            caption: f.text("caption", false)?,
        },
        "split" => {
            let heading = f.text("heading", false)?;
            let body = f.text("body", false)?;
            if heading.is_none() && body.is_none() {
                return err(
                    format!("{}.heading", f.at),
                    "a split scene needs a heading or a body (or both)",
                );
            }
            SceneContent::Split {
                heading,
                body,
                image: f.image("image", true)?.expect("required"),
                image_side: f
                    .choice("imageSide", &[("left", Side::Left), ("right", Side::Right)])?,
                fit: f.choice("fit", &FITS)?,
            }
        }
        "call-to-action" => SceneContent::CallToAction {
            headline: f.required_text("headline")?,
            button: f
                .label("button", true, MAX_BUTTON_CHARS)?
                .unwrap_or_default(),
            url: f.label("url", false, ctx.limits.max_url_chars)?,
        },
        "logo-outro" => {
            let logo = f.image("logo", false)?;
            let wordmark = f.text("wordmark", false)?;
            if logo.is_none() && wordmark.is_none() {
                return err(
                    format!("{}.logo", f.at),
                    "a logo-outro needs a logo image or a wordmark (or both)",
                );
            }
            SceneContent::LogoOutro {
                logo,
                wordmark,
                tagline: f.text("tagline", false)?,
            }
        }
        other => {
            return err(
                format!("{at}.type"),
                format!(
                    "unknown scene type '{other}'; available: {}",
                    SCENE_TYPES.join(", ")
                ),
            )
        }
    })
}
