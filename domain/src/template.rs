//! Templates: a stored spec whose strings may hold `{{name}}` merge fields, and the plain
//! functions that find those fields and fill them in.
//!
//! A merge field is `{{name}}` inside any string of the spec (spaces inside the braces are
//! allowed: `{{ name }}`); a name is 1–64 letters, digits, `_`, `.` or `-`, starting with a letter
//! or `_`. Filling in follows two rules:
//!
//! - a string that is **only** a merge field (`"duration": "{{secs}}"`) becomes the value given,
//!   whatever its JSON type, so numbers, booleans, objects and lists can be merged;
//! - a merge field **inside** text (`"Hello {{name}}!"`) is replaced by the value as text: a
//!   string as it is, a number or boolean as written in JSON; `null`, objects and lists cannot be
//!   put inside text.
//!
//! Values given for names the template does not use are ignored (rows of data often carry more
//! columns than one template needs); a name the template uses and the values lack is an error
//! naming it.
//!
//! ```
//! use serde_json::json;
//! use vidbuilder_domain::template::merge;
//!
//! let template = json!({"scenes": [{"type": "hero-title", "duration": "{{secs}}",
//!                                   "content": {"title": "Hello {{ name }}!"}}]});
//! let values = json!({"name": "Ada", "secs": 4});
//! let spec = merge(&template, values.as_object().unwrap()).unwrap();
//! assert_eq!(spec["scenes"][0]["duration"], json!(4));
//! assert_eq!(spec["scenes"][0]["content"]["title"], json!("Hello Ada!"));
//! ```

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest merge-field name, in characters.
pub const MAX_FIELD_NAME_CHARS: usize = 64;
/// The most distinct merge fields one template may use.
pub const MAX_FIELDS: usize = 200;
/// The longest template `name`, in characters.
pub const MAX_TEMPLATE_NAME_CHARS: usize = 200;

/// A template's id: `tpl_` and 24 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TemplateId(String);

impl TemplateId {
    /// A fresh random id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> TemplateId {
        let u = uuid::Uuid::new_v4().simple().to_string();
        TemplateId(format!("tpl_{}", &u[..24]))
    }

    /// Accepts `tpl_` followed by 8 to 64 lowercase hex characters.
    pub fn parse(s: &str) -> Option<TemplateId> {
        let hex = s.strip_prefix("tpl_")?;
        let ok = (8..=64).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        ok.then(|| TemplateId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRecord {
    /// Its id.
    pub id: TemplateId,
    /// The API key id that created it (`None` when the server runs without keys); other keys
    /// cannot see it.
    pub owner: Option<String>,
    /// The client's name for it.
    pub name: Option<String>,
    /// The spec as given, merge fields and all.
    pub spec: Value,
    /// The merge fields it uses, sorted.
    pub fields: Vec<String>,
    /// When it was stored (contract timestamp).
    pub created_at: String,
}

/// A merge field written wrongly, found where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldSyntaxError {
    /// JSON path of the string at fault (`scenes[0].content.title`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Why a template could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The template uses a field the values do not give.
    #[error("no value for the merge field '{name}' (used at {path})")]
    Missing {
        /// The field's name.
        name: String,
        /// Where the template uses it.
        path: String,
    },
    /// A value that cannot be put inside text (`null`, an object or a list).
    #[error("the merge field '{name}' is used inside text at {path}, so it must be a string, number or boolean (got {got})")]
    NotText {
        /// The field's name.
        name: String,
        /// Where the template uses it.
        path: String,
        /// The JSON type given.
        got: &'static str,
    },
    /// The template itself has a badly written merge field.
    #[error(transparent)]
    Syntax(#[from] FieldSyntaxError),
}

impl MergeError {
    /// The field's name, for the error's `field` (`mergeFields.<name>`), when a value is at fault.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            MergeError::Missing { name, .. } | MergeError::NotText { name, .. } => Some(name),
            MergeError::Syntax(_) => None,
        }
    }
}

/// One piece of a string: literal text or a merge field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= MAX_FIELD_NAME_CHARS
}

/// Splits `s` into text and merge fields; `Err` says what is wrong with a `{{…}}`.
fn pieces(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "'{{' is not closed by '}}'".to_string())?;
        let name = after[..close].trim();
        if !valid_name(name) {
            let shown: String = after[..close].chars().take(40).collect();
            return Err(format!(
                "'{{{{{shown}}}}}' is not a merge field: a name is 1 to {MAX_FIELD_NAME_CHARS} letters, digits, '_', '.' or '-', starting with a letter or '_'"
            ));
        }
        out.push(Piece::Field(name));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Calls `f(path, string)` for every string value in `v` (object keys are not merged).
fn walk<E>(
    v: &Value,
    path: &str,
    f: &mut impl FnMut(&str, &str) -> Result<(), E>,
) -> Result<(), E> {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), f)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| walk(x, &child(path, k), f)),
        _ => Ok(()),
    }
}

/// Where merge fields sit in a template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMap {
    /// The distinct names, sorted.
    pub names: BTreeSet<String>,
    /// The JSON paths of the strings that hold at least one merge field.
    pub paths: BTreeSet<String>,
}

/// The merge fields `spec` uses, or the first one written wrongly (or more than [`MAX_FIELDS`]).
pub fn fields(spec: &Value) -> Result<FieldMap, FieldSyntaxError> {
    let mut map = FieldMap::default();
    walk(spec, "", &mut |path, s| {
        if !s.contains("{{") {
            return Ok(());
        }
        let ps = pieces(s).map_err(|message| FieldSyntaxError {
            path: path.to_string(),
            message,
        })?;
        for p in ps {
            if let Piece::Field(name) = p {
                map.names.insert(name.to_string());
                map.paths.insert(path.to_string());
            }
        }
        if map.names.len() > MAX_FIELDS {
            return Err(FieldSyntaxError {
                path: path.to_string(),
                message: format!("a template may use at most {MAX_FIELDS} merge fields"),
            });
        }
        Ok(())
    })?;
    Ok(map)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Fills a string's merge fields in; `None` when it has none.
fn merge_string(
    s: &str,
    path: &str,
    values: &Map<String, Value>,
) -> Result<Option<Value>, MergeError> {
    if !s.contains("{{") {
        return Ok(None);
    }
    let ps = pieces(s).map_err(|message| FieldSyntaxError {
        path: path.to_string(),
        message,
    })?;
    let value_of = |name: &str| {
        values.get(name).ok_or_else(|| MergeError::Missing {
            name: name.to_string(),
            path: path.to_string(),
        })
    };
    if let [Piece::Field(name)] = ps.as_slice() {
        return Ok(Some(value_of(name)?.clone()));
    }
    let mut out = String::with_capacity(s.len());
    for p in ps {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Field(name) => match value_of(name)? {
                Value::String(v) => out.push_str(v),
                v @ (Value::Number(_) | Value::Bool(_)) => out.push_str(&v.to_string()),
                other => {
                    return Err(MergeError::NotText {
                        name: name.to_string(),
                        path: path.to_string(),
                        got: type_name(other),
                    })
                }
            },
        }
    }
    Ok(Some(Value::String(out)))
}

fn merge_at(v: &Value, path: &str, values: &Map<String, Value>) -> Result<Value, MergeError> {
    Ok(match v {
        Value::String(s) => merge_string(s, path, values)?.unwrap_or_else(|| v.clone()),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| merge_at(x, &format!("{path}[{i}]"), values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), merge_at(x, &child(path, k), values)?)))
                .collect::<Result<_, MergeError>>()?,
        ),
        other => other.clone(),
    })
}

/// The template `spec` with its merge fields filled in from `values` (see the module docs).
pub fn merge(spec: &Value, values: &Map<String, Value>) -> Result<Value, MergeError> {
    merge_at(spec, "", values)
}

/// The template with every merge field replaced by its own name as text (`"{{secs}}"` becomes
/// `"secs"`): a stand-in spec to validate a template with before any values are known. Errors
/// it gets at a path in [`FieldMap::paths`] (or inside one) are the merge fields' business and
/// are checked when values are merged; errors elsewhere are the template's own.
pub fn stand_in(spec: &Value) -> Result<Value, FieldSyntaxError> {
    let map = fields(spec)?;
    let values: Map<String, Value> = map
        .names
        .iter()
        .map(|n| (n.clone(), Value::String(n.clone())))
        .collect();
    merge(spec, &values).map_err(|e| match e {
        MergeError::Syntax(s) => s,
        other => FieldSyntaxError {
            path: String::new(),
            message: other.to_string(),
        },
    })
}

/// Whether a validation error at `error_path` may come from a merge field (the path is one of
/// `paths` or lies inside one).
pub fn caused_by_field(map: &FieldMap, error_path: &str) -> bool {
    map.paths.iter().any(|p| {
        error_path == p
            || error_path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    #[test]
    fn ids_are_prefixed_hex_and_parse_back() {
        let id = TemplateId::new();
        assert!(id.as_str().starts_with("tpl_"));
        assert_eq!(TemplateId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "tpl_",
            "tpl_XYZ12345",
            "abc12345678",
            "tpl_1234567",
            "tpl_12345678/",
        ] {
            assert_eq!(TemplateId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn fields_are_found_with_their_paths() {
        let t = json!({"theme": "{{theme}}", "scenes": [
            {"content": {"title": "Hi {{ name }}, {{name}} {{ n.2-x }}"}},
            {"content": {"items": ["a", "{{item_1}}"]}}
        ], "{{not}}": 3});
        let map = fields(&t).unwrap();
        assert_eq!(
            map.names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["item_1", "n.2-x", "name", "theme"]
        );
        assert!(map.paths.contains("scenes[0].content.title"));
        assert!(map.paths.contains("scenes[1].content.items[1]"));
        assert!(map.paths.contains("theme"));
        assert_eq!(map.paths.len(), 3);
    }

    #[test]
    fn bad_fields_are_refused_with_their_path() {
        for (s, want) in [
            ("{{}}", "is not a merge field"),
            ("{{ 1abc }}", "is not a merge field"),
            ("{{a b}}", "is not a merge field"),
            ("Hello {{name", "is not closed"),
        ] {
            let e = fields(&json!({"scenes": [{"content": {"title": s}}]})).unwrap_err();
            assert_eq!(e.path, "scenes[0].content.title", "{s}");
            assert!(e.message.contains(want), "{s}: {}", e.message);
        }
        let long = format!("{{{{{}}}}}", "a".repeat(MAX_FIELD_NAME_CHARS + 1));
        assert!(fields(&json!({"t": long})).is_err());
        let many: Vec<Value> = (0..=MAX_FIELDS)
            .map(|i| json!(format!("{{{{f{i}}}}}")))
            .collect();
        assert!(fields(&json!({ "items": many }))
            .unwrap_err()
            .message
            .contains("at most"));
    }

    #[test]
    fn a_whole_string_field_takes_the_value_s_type_and_text_fields_are_text() {
        let t = json!({"d": "{{d}}", "flag": "{{ f }}", "list": "{{l}}", "t": "{{d}}s {{f}} {{s}}", "keep": 1});
        let out = merge(
            &t,
            &obj(json!({"d": 2.5, "f": true, "l": [1, 2], "s": "x", "unused": null})),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"d": 2.5, "flag": true, "list": [1, 2], "t": "2.5s true x", "keep": 1})
        );
    }

    #[test]
    fn a_missing_value_is_named_with_where_it_is_used() {
        let t = json!({"scenes": [{"content": {"title": "Hi {{name}}"}}]});
        let e = merge(&t, &Map::new()).unwrap_err();
        assert_eq!(
            e,
            MergeError::Missing {
                name: "name".into(),
                path: "scenes[0].content.title".into()
            }
        );
        assert_eq!(e.field_name(), Some("name"));
    }

    #[test]
    fn null_objects_and_lists_cannot_go_inside_text() {
        let t = json!({"t": "a {{x}}"});
        for v in [json!(null), json!({}), json!([1])] {
            let e = merge(&t, &obj(json!({ "x": v }))).unwrap_err();
            assert!(matches!(e, MergeError::NotText { .. }), "{e}");
        }
    }

    #[test]
    fn merged_text_is_not_merged_again() {
        // A value that looks like a field stays as given: no second pass, no injection.
        let out = merge(
            &json!({"t": "{{a}}!"}),
            &obj(json!({"a": "{{b}}", "b": "x"})),
        )
        .unwrap();
        assert_eq!(out, json!({"t": "{{b}}!"}));
    }

    #[test]
    fn stand_ins_and_the_errors_fields_may_cause() {
        let t = json!({"scenes": [{"duration": "{{secs}}", "content": {"title": "{{t}}"}}]});
        let s = stand_in(&t).unwrap();
        assert_eq!(s["scenes"][0]["duration"], json!("secs"));
        let map = fields(&t).unwrap();
        assert!(caused_by_field(&map, "scenes[0].duration"));
        assert!(caused_by_field(&map, "scenes[0].content.title"));
        assert!(!caused_by_field(&map, "scenes[0].type"));
        assert!(!caused_by_field(&map, "scenes[0].durationX"));
    }
}
