//! `captions`: timed text burned into the video and served as a WebVTT sidecar.
//!
//! Given as `{"srt": "…"}`, `{"vtt": "…"}` or `{"cues": [{start, end, text, words?}]}`; all three
//! become the same list of [`Cue`]s. SRT and WebVTT are read leniently where players are (a BOM,
//! CRLF, `MM:SS.mmm` times in WebVTT, cue settings, `NOTE`/`STYLE`/`REGION` blocks, tags such as
//! `<i>` or `<v Speaker>` and `{\an8}` removed from the text) and strictly where a mistake would
//! show (a time that does not parse, an end before its start, a cue past the video's end: a `400`
//! naming the field and the line). Word timings (`words`) turn on the word-by-word highlight.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{err, SpecError};

/// Most cues one spec may carry.
pub const MAX_CUES: usize = 2000;
/// Most words one cue may time.
pub const MAX_CUE_WORDS: usize = 64;
/// Most characters of one cue's text.
pub const MAX_CUE_CHARS: usize = 300;

/// One timed word of a cue (the word-by-word highlight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// Seconds from the video's start.
    pub start: f64,
    /// Seconds from the video's start.
    pub end: f64,
    /// The word as it appears in the cue's text.
    pub text: String,
}

/// One caption: its text, shown from `start` to `end` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cue {
    /// Seconds from the video's start.
    pub start: f64,
    /// Seconds from the video's start, after `start`.
    pub end: f64,
    /// Plain text (tags removed), lines joined by `\n`.
    pub text: String,
    /// Word timings, in order; empty: the cue is shown whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// Validated captions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Captions {
    /// The cues, sorted by start time.
    pub cues: Vec<Cue>,
}

impl Captions {
    /// The cue shown at `t` seconds: of those running, the one that started last.
    pub fn at(&self, t: f64) -> Option<(usize, &Cue)> {
        let n = self.cues.partition_point(|c| c.start <= t);
        self.cues[..n]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, c)| t < c.end)
    }

    /// The captions as a WebVTT file (the sidecar served beside the video).
    pub fn to_vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n");
        for (i, c) in self.cues.iter().enumerate() {
            out.push_str(&format!(
                "\n{}\n{} --> {}\n{}\n",
                i + 1,
                vtt_time(c.start),
                vtt_time(c.end),
                c.text.replace("-->", "->")
            ));
        }
        out
    }
}

/// `HH:MM:SS.mmm`.
pub fn vtt_time(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// A cue time: `HH:MM:SS,mmm` (SRT), `HH:MM:SS.mmm` or `MM:SS.mmm` (WebVTT).
fn parse_time(s: &str, srt: bool) -> Option<f64> {
    let s = s.trim();
    let (clock, frac) = s.split_once(if srt { ',' } else { '.' })?;
    if frac.len() != 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let nums: Option<Vec<u64>> = parts
        .iter()
        .map(|p| {
            (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect();
    let nums = nums?;
    let (h, m, sec) = match (nums.as_slice(), srt) {
        ([h, m, s], _) => (*h, *m, *s),
        ([m, s], false) => (0, *m, *s),
        _ => return None,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    let ms: u64 = frac.parse().ok()?;
    Some((h * 3600 + m * 60 + sec) as f64 + ms as f64 / 1000.0)
}

/// `line` without its tags: a run from `<` to the next `>`, or from `{\` to the next `}`; an
/// opener with no closer after it stays.
fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(['<', '{']) {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        let close = if at.starts_with('<') {
            Some('>')
        } else if at.starts_with("{\\") {
            Some('}')
        } else {
            None
        };
        match close.and_then(|c| at.find(c)) {
            Some(end) => rest = &at[end + 1..],
            None => {
                out.push_str(&at[..1]);
                rest = &at[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Cue text as shown: tags (`<i>`, `<v Name>`, `<00:01.000>`), ASS overrides (`{\an8}`) and
/// the common entities removed, lines trimmed, empty lines dropped.
fn clean_text(lines: &[&str]) -> String {
    let mut out = Vec::new();
    for line in lines {
        let s = strip_tags(line)
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", " ")
            .replace("&amp;", "&");
        let s = s.trim();
        if !s.is_empty() {
            out.push(s.to_string());
        }
    }
    out.join("\n")
}

/// The blocks of a subtitle file: runs of non-blank lines, with the 1-based line each starts on.
fn blocks(text: &str) -> Vec<(usize, Vec<&str>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push((start, std::mem::take(&mut cur)));
            }
        } else {
            if cur.is_empty() {
                start = i + 1;
            }
            cur.push(line);
        }
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    out
}

/// Reads SRT (`srt`) or WebVTT text into cues; errors say the line.
fn parse_file(text: &str, srt: bool, field: &str) -> Result<Vec<Cue>, SpecError> {
    let mut cues = Vec::new();
    let mut all = blocks(text);
    if !srt {
        match all.first() {
            Some((_, b)) if b[0].starts_with("WEBVTT") => {
                all.remove(0);
            }
            _ => return err(field, "must start with a WEBVTT line"),
        }
    }
    for (line, block) in all {
        if !srt
            && (block[0].starts_with("NOTE")
                || block[0].starts_with("STYLE")
                || block[0].starts_with("REGION"))
        {
            continue;
        }
        // the timing line: the first or (after a cue number / identifier) the second
        let Some(at) = block.iter().take(2).position(|l| l.contains("-->")) else {
            return err(
                field,
                format!("line {line}: a cue needs a timing line `start --> end`"),
            );
        };
        let timing = block[at];
        let (a, b) = timing.split_once("-->").expect("contains -->");
        // WebVTT cue settings follow the end time
        let b = b.split_whitespace().next().unwrap_or("");
        let (Some(start), Some(end)) = (parse_time(a, srt), parse_time(b, srt)) else {
            let want = if srt {
                "HH:MM:SS,mmm --> HH:MM:SS,mmm"
            } else {
                "HH:MM:SS.mmm --> HH:MM:SS.mmm"
            };
            return err(
                field,
                format!(
                    "line {}: cannot read the times '{timing}' (want {want})",
                    line + at
                ),
            );
        };
        let text = clean_text(&block[at + 1..]);
        if text.is_empty() {
            continue; // an empty cue shows nothing
        }
        cues.push(Cue {
            start,
            end,
            text,
            words: Vec::new(),
        });
        if cues.len() > MAX_CUES {
            return err(field, format!("has more than {MAX_CUES} cues"));
        }
    }
    for (i, c) in cues.iter().enumerate() {
        if c.end <= c.start {
            return err(
                field,
                format!(
                    "cue {} ('{}') ends at {} s, not after its start ({} s)",
                    i + 1,
                    short(&c.text),
                    c.end,
                    c.start
                ),
            );
        }
    }
    Ok(cues)
}

fn short(s: &str) -> String {
    let mut t: String = s.chars().take(30).collect();
    if s.chars().count() > 30 {
        t.push('…');
    }
    t.replace('\n', " ")
}

/// A number of seconds ≥ 0 (integers and fractions alike).
fn seconds(v: Option<&Value>, field: &str) -> Result<f64, SpecError> {
    match v {
        Some(v) if v.is_number() => match v.as_f64() {
            Some(x) if (0.0..=1e7).contains(&x) => Ok(x),
            _ => err(field, "must be a number of seconds, 0 or more"),
        },
        None | Some(Value::Null) => err(field, "is required (seconds)"),
        Some(_) => err(field, "must be a number of seconds"),
    }
}

fn cue_text(v: Option<&Value>, field: &str) -> Result<String, SpecError> {
    match v {
        Some(Value::String(s)) if s.trim().is_empty() => err(field, "must not be empty"),
        Some(Value::String(s)) if s.contains('\0') => err(field, "must not contain NUL characters"),
        Some(Value::String(s)) if s.chars().count() > MAX_CUE_CHARS => {
            err(field, format!("is longer than {MAX_CUE_CHARS} characters"))
        }
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        None | Some(Value::Null) => err(field, "is required"),
        Some(_) => err(field, "must be a string"),
    }
}

fn parse_cues(v: &Value) -> Result<Vec<Cue>, SpecError> {
    let Value::Array(items) = v else {
        return err("captions.cues", "must be an array of {start, end, text}");
    };
    if items.len() > MAX_CUES {
        return err(
            "captions.cues",
            format!("has {} cues; at most {MAX_CUES} are allowed", items.len()),
        );
    }
    let mut cues = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("captions.cues[{i}]");
        let Value::Object(o) = item else {
            return err(at, "must be an object {start, end, text}");
        };
        let start = seconds(o.get("start"), &format!("{at}.start"))?;
        let end = seconds(o.get("end"), &format!("{at}.end"))?;
        if end <= start {
            return err(
                format!("{at}.end"),
                format!("must be after start ({start} s), got {end}"),
            );
        }
        let text = cue_text(o.get("text"), &format!("{at}.text"))?;
        let mut words = Vec::new();
        match o.get("words") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ws)) => {
                if ws.len() > MAX_CUE_WORDS {
                    return err(
                        format!("{at}.words"),
                        format!("has {} words; at most {MAX_CUE_WORDS}", ws.len()),
                    );
                }
                let mut searched = 0; // each word is found in the text after the previous one
                for (j, w) in ws.iter().enumerate() {
                    let wat = format!("{at}.words[{j}]");
                    let Value::Object(wo) = w else {
                        return err(wat, "must be an object {start, end, text}");
                    };
                    let ws_ = seconds(wo.get("start"), &format!("{wat}.start"))?;
                    let we = seconds(wo.get("end"), &format!("{wat}.end"))?;
                    if we <= ws_ || ws_ < start - 1e-6 || we > end + 1e-6 {
                        return err(
                            format!("{wat}.end"),
                            format!(
                                "a word must end after it starts and lie within its cue ({start}–{end} s), got {ws_}–{we}"
                            ),
                        );
                    }
                    if let Some(prev) = words.last().map(|p: &Word| p.start) {
                        if ws_ < prev {
                            return err(format!("{wat}.start"), "words must be in order");
                        }
                    }
                    let wt = cue_text(wo.get("text"), &format!("{wat}.text"))?;
                    match text[searched..].find(wt.as_str()) {
                        Some(p) => searched += p + wt.len(),
                        None => {
                            return err(
                                format!("{wat}.text"),
                                format!(
                                    "'{wt}' is not in the cue's text (after the words before it)"
                                ),
                            )
                        }
                    }
                    words.push(Word {
                        start: ws_,
                        end: we,
                        text: wt,
                    });
                }
            }
            Some(_) => {
                return err(
                    format!("{at}.words"),
                    "must be an array of {start, end, text}",
                )
            }
        }
        cues.push(Cue {
            start,
            end,
            text,
            words,
        });
    }
    Ok(cues)
}

/// `captions`: absent, `null`, or exactly one of `srt`, `vtt`, `cues`. `duration` is the
/// video's length: a cue must start before it (cues running past the end are cut there).
pub(super) fn validate_captions(
    v: Option<&Value>,
    duration: f64,
) -> Result<Option<Captions>, SpecError> {
    let o = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return err(
                "captions",
                "must be an object: {\"srt\": \"…\"}, {\"vtt\": \"…\"} or {\"cues\": [...]}",
            )
        }
    };
    let given: Vec<&str> = ["srt", "vtt", "cues"]
        .into_iter()
        .filter(|k| o.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    let mut cues = match given.as_slice() {
        ["srt"] | ["vtt"] => {
            let key = given[0];
            let field = format!("captions.{key}");
            match &o[key] {
                Value::String(s) => parse_file(s, key == "srt", &field)?,
                _ => return err(field, "must be a string (the file's text)"),
            }
        }
        ["cues"] => parse_cues(&o["cues"])?,
        [] => return err("captions", "needs one of srt, vtt or cues"),
        _ => {
            return err(
                "captions",
                format!("give one of srt, vtt or cues, not {}", given.join(" and ")),
            )
        }
    };
    for (i, c) in cues.iter_mut().enumerate() {
        if c.start >= duration {
            let field = if given[0] == "cues" {
                format!("captions.cues[{i}].start")
            } else {
                format!("captions.{}", given[0])
            };
            return err(
                field,
                format!(
                    "cue {} ('{}') starts at {} s, at or after the video's end ({duration} s)",
                    i + 1,
                    short(&c.text),
                    c.start
                ),
            );
        }
        c.end = c.end.min(duration);
        for w in &mut c.words {
            w.end = w.end.min(duration);
        }
    }
    cues.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(Some(Captions { cues }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn srt_is_read_with_its_quirks() {
        let srt = "\u{feff}1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there\r\n\r\n2\r\n00:00:02,500 --> 00:00:04,000\r\n{\\an8}Second &amp; last\r\nline two\r\n";
        let c = validate_captions(Some(&json!({"srt": srt})), 10.0)
            .unwrap()
            .unwrap();
        assert_eq!(c.cues.len(), 2);
        assert_eq!((c.cues[0].start, c.cues[0].end), (1.0, 2.5));
        assert_eq!(c.cues[0].text, "Hello there");
        assert_eq!(c.cues[1].text, "Second & last\nline two");
        assert_eq!(c.at(2.0).unwrap().0, 0);
        assert_eq!(c.at(2.5).unwrap().0, 1);
        assert!(c.at(0.5).is_none() && c.at(4.0).is_none());
    }

    #[test]
    fn tags_go_and_lone_openers_stay() {
        assert_eq!(strip_tags("<i>a</i> <v Ana>b</v>{\\an8}c"), "a bc");
        assert_eq!(strip_tags("1 < 2 {x} é"), "1 < 2 {x} é");
        assert_eq!(strip_tags("a {\\b"), "a {\\b");
    }

    #[test]
    fn vtt_is_read_and_written_back() {
        let vtt = "WEBVTT - a title\n\nNOTE a comment\nspanning lines\n\nintro\n00:01.000 --> 00:02.000 align:start line:90%\n<v Ana>Hi</v> <c.loud>all</c>\n\n00:00:02.000 --> 00:00:03.250\nBye\n";
        let c = validate_captions(Some(&json!({"vtt": vtt})), 3.0)
            .unwrap()
            .unwrap();
        assert_eq!(c.cues.len(), 2);
        assert_eq!(c.cues[0].text, "Hi all");
        assert_eq!(c.cues[1].end, 3.0, "cut at the video's end");
        let out = c.to_vtt();
        assert_eq!(
            out,
            "WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nHi all\n\n2\n00:00:02.000 --> 00:00:03.000\nBye\n"
        );
        // the sidecar reads back as the same captions
        let again = validate_captions(Some(&json!({ "vtt": out })), 3.0)
            .unwrap()
            .unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn cues_with_words_are_checked() {
        let ok = json!({"cues": [
            {"start": 0.5, "end": 2, "text": "Say it word by word", "words": [
                {"start": 0.5, "end": 0.8, "text": "Say"}, {"start": 0.8, "end": 1.0, "text": "it"},
                {"start": 1.0, "end": 1.4, "text": "word"}, {"start": 1.4, "end": 1.5, "text": "by"},
                {"start": 1.5, "end": 2.0, "text": "word"}]},
            {"start": 0, "end": 0.5, "text": "First"}]});
        let c = validate_captions(Some(&ok), 5.0).unwrap().unwrap();
        assert_eq!(c.cues[0].text, "First", "sorted by start");
        assert_eq!(c.cues[1].words.len(), 5);
        for (bad, field) in [
            (json!("x"), "captions"),
            (json!({}), "captions"),
            (
                json!({"srt": "1\n00:00:01,000 --> 00:00:02,000\nx", "cues": []}),
                "captions",
            ),
            (json!({"srt": 5}), "captions.srt"),
            (
                json!({"srt": "1\n00:00:01.000 --> 00:00:02,000\nx"}),
                "captions.srt",
            ),
            (
                json!({"srt": "1\n00:00:03,000 --> 00:00:02,000\nx"}),
                "captions.srt",
            ),
            (json!({"srt": "1\nno timing here\nx"}), "captions.srt"),
            (json!({"vtt": "00:01.000 --> 00:02.000\nx"}), "captions.vtt"),
            (
                json!({"vtt": "WEBVTT\n\n00:61.000 --> 00:62.000\nx"}),
                "captions.vtt",
            ),
            (
                json!({"srt": "1\n00:00:09,000 --> 00:00:12,000\nlate"}),
                "captions.srt",
            ),
            (json!({"cues": "x"}), "captions.cues"),
            (
                json!({"cues": [{"start": 1, "end": 1, "text": "x"}]}),
                "captions.cues[0].end",
            ),
            (
                json!({"cues": [{"start": -1, "end": 1, "text": "x"}]}),
                "captions.cues[0].start",
            ),
            (
                json!({"cues": [{"start": 0, "end": 1}]}),
                "captions.cues[0].text",
            ),
            (
                json!({"cues": [{"start": 0, "end": 1, "text": " "}]}),
                "captions.cues[0].text",
            ),
            (
                json!({"cues": [{"start": 6, "end": 7, "text": "late"}]}),
                "captions.cues[0].start",
            ),
            (
                json!({"cues": [{"start": 0, "end": 1, "text": "a b", "words": [{"start": 0, "end": 2, "text": "a"}]}]}),
                "captions.cues[0].words[0].end",
            ),
            (
                json!({"cues": [{"start": 0, "end": 1, "text": "a b", "words": [{"start": 0, "end": 0.5, "text": "c"}]}]}),
                "captions.cues[0].words[0].text",
            ),
            (
                json!({"cues": [{"start": 0, "end": 1, "text": "a b", "words": [{"start": 0.5, "end": 0.6, "text": "a"}, {"start": 0.1, "end": 0.2, "text": "b"}]}]}),
                "captions.cues[0].words[1].start",
            ),
        ] {
            let e = validate_captions(Some(&bad), 5.0).unwrap_err();
            assert_eq!(e.field, field, "{bad}: {}", e.message);
        }
    }
}
