//! Typefaces: `font` names the family every text layer is set in (one installed on the server,
//! or one the spec supplies in `fonts`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::content::{media_source, ImageSource};
use super::{err, SpecError, ValidationContext};

/// Most font files a spec may supply.
pub const MAX_FONTS: usize = 4;
/// Longest family name, in characters.
pub const MAX_FAMILY_CHARS: usize = 64;
/// The file names a font asset may have.
pub const FONT_EXTENSIONS: [&str; 2] = ["ttf", "otf"];

/// A font file the spec supplies, and the family it must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FontSource {
    /// `family`: the family name inside the file (checked when it is loaded).
    pub family: String,
    /// `src`: a `.ttf`/`.otf` file in the assets directory or an http(s) URL.
    pub src: ImageSource,
}

/// The spec's typeface: the family its text is set in, and the files supplying it (if it is not
/// installed on the server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FontChoice {
    /// `font`: the family every text layer uses instead of the theme's.
    pub family: String,
    /// `fonts`: files loaded for this video (each checked to hold its family).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<FontSource>,
}

fn family_name(v: &Value, at: &str) -> Result<String, SpecError> {
    match v {
        Value::String(s)
            if !s.trim().is_empty() && s.trim().chars().count() <= MAX_FAMILY_CHARS =>
        {
            if s.chars().any(char::is_control) {
                return err(at, "must not contain control characters");
            }
            Ok(s.trim().to_string())
        }
        _ => err(
            at,
            format!("must be a font family name of 1 to {MAX_FAMILY_CHARS} characters"),
        ),
    }
}

/// Validate `font` and `fonts`. `installed` are the server's families.
pub(super) fn font_choice(
    font: Option<&Value>,
    fonts: Option<&Value>,
    installed: &BTreeSet<String>,
    ctx: &ValidationContext,
) -> Result<Option<Box<FontChoice>>, SpecError> {
    let mut sources = Vec::new();
    match fonts {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.len() <= MAX_FONTS => {
            for (i, f) in list.iter().enumerate() {
                let at = format!("fonts[{i}]");
                let Some(o) = f.as_object() else {
                    return err(
                        at,
                        "must be an object {\"family\": \"…\", \"src\": \"fonts/x.ttf\"}",
                    );
                };
                let family = family_name(
                    o.get("family").unwrap_or(&Value::Null),
                    &format!("{at}.family"),
                )?;
                let src_at = format!("{at}.src");
                let src = match o.get("src") {
                    None | Some(Value::Null) => {
                        return err(src_at, "is required: a .ttf or .otf file in the assets directory or an http(s) URL")
                    }
                    Some(v) => media_source(v, &src_at, ctx, &FONT_EXTENSIONS, "font")?,
                };
                sources.push(FontSource { family, src });
            }
        }
        Some(Value::Array(list)) => {
            return err(
                "fonts",
                format!("has {} fonts; at most {MAX_FONTS} are allowed", list.len()),
            )
        }
        Some(_) => return err("fonts", "must be an array of {\"family\", \"src\"}"),
    }
    let family = match font {
        None | Some(Value::Null) => {
            return if sources.is_empty() {
                Ok(None)
            } else {
                err(
                    "font",
                    "is required with fonts: the family the text is set in",
                )
            };
        }
        Some(v) => family_name(v, "font")?,
    };
    let supplied = sources.iter().any(|s| s.family == family);
    if !supplied && !installed.contains(&family) {
        return err(
            "font",
            format!(
                "unknown font family '{family}'; installed: {}; or supply it in fonts",
                installed.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    Ok(Some(Box::new(FontChoice { family, sources })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_font_is_installed_or_supplied_and_each_bad_field_is_named() {
        let ctx = ValidationContext::default();
        let installed: BTreeSet<String> = ["Inter".to_string(), "Noto Sans".to_string()].into();
        let ok =
            |font: Value, fonts: Value| font_choice(Some(&font), Some(&fonts), &installed, &ctx);
        assert_eq!(ok(json!(null), json!(null)).unwrap(), None);
        let c = ok(json!("Noto Sans"), json!(null)).unwrap().unwrap();
        assert_eq!((c.family.as_str(), c.sources.len()), ("Noto Sans", 0));
        let c = ok(
            json!("Brand"),
            json!([{"family": "Brand", "src": "fonts/brand.otf"}]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c.sources[0].src,
            ImageSource::Asset("fonts/brand.otf".into())
        );
        for (font, fonts, field) in [
            (json!("Comic"), json!(null), "font"),
            (json!(""), json!(null), "font"),
            (json!(3), json!(null), "font"),
            (
                json!(null),
                json!([{"family": "B", "src": "b.ttf"}]),
                "font",
            ),
            (
                json!("B"),
                json!([{"family": "B", "src": "b.woff"}]),
                "fonts[0].src",
            ),
            (
                json!("B"),
                json!([{"family": "", "src": "b.ttf"}]),
                "fonts[0].family",
            ),
            (json!("B"), json!([{"family": "B"}]), "fonts[0].src"),
            (json!("B"), json!("b.ttf"), "fonts"),
            (json!("B"), json!([1, 2, 3, 4, 5]), "fonts"),
        ] {
            let e = ok(font.clone(), fonts.clone()).unwrap_err();
            assert_eq!(e.field, field, "{font} {fonts}: {e}");
        }
    }
}
