//! Burned-in captions: the cue on screen at a frame, set in the theme's body type on a dark
//! rounded band centred at the bottom of the title-safe box (in a tall frame just below it, under
//! the scene's content and above the reel's buttons),
//! the word being spoken in a highlight colour when the cue has word timings.
//!
//! Each (cue, highlighted word) is shaped and rasterised once, when first shown, and kept while
//! its cue is on screen: a frame that repeats the previous one draws the same layer at the same
//! place, so it stays an exact repeat (see `frame.rs`); each layer carries a serial number into
//! the frame's signature, so a new caption is never taken for the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cosmic_text::{FontSystem, SwashCache};
use tiny_skia::Pixmap;
use vidbuilder_domain::spec::{Captions, Cue};

use super::frame::Canvas;
use super::image::Images;
use super::scene::{trim, Frame, Role, SceneContext};
use super::text::{fit, rasterize, Span};
use super::theme::{Align, Rgb, Theme};

/// The band behind the text.
const BAND: Rgb = Rgb(8, 10, 16);
const BAND_OPACITY: f32 = 0.62;
/// The caption text.
const TEXT: Rgb = Rgb(255, 255, 255);
/// The spoken word when the theme's accent is too dark to stand out on the band.
const HIGHLIGHT: Rgb = Rgb(255, 214, 10);

/// Numbers every caption layer made in this process (see [`CaptionLayer::draw`]).
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// One caption as drawn: the band and the text over it.
pub(crate) struct CaptionLayer {
    /// Unique in this process: a frame's signature says which caption it shows, so two captions
    /// of the same size in the same place (a freed layer's memory reused by the next) never
    /// make two different frames compare equal.
    serial: u64,
    band: [f32; 4],
    radius: f32,
    text: Pixmap,
    tx: f32,
    ty: f32,
}

impl CaptionLayer {
    pub(crate) fn draw(&self, c: &mut Canvas) {
        c.identify(self.serial);
        c.round_rect(self.band, self.radius, BAND, BAND_OPACITY);
        c.layer(&self.text, self.tx, self.ty, 1.0);
    }
}

/// The captions of one output (landscape or reel).
pub(crate) struct CaptionTrack<'a> {
    captions: &'a Captions,
    fps: u32,
    frame: Frame,
    /// The layers of the cue on screen, by highlighted word (`None`: none highlighted).
    cached: Option<(usize, WordLayers)>,
}

/// A cue's layers by highlighted word.
type WordLayers = Vec<(Option<usize>, Arc<CaptionLayer>)>;

/// The word of `cue` being spoken at `t`: the last one started (it stays lit until the next).
fn spoken(cue: &Cue, t: f64) -> Option<usize> {
    let n = cue.words.partition_point(|w| w.start <= t);
    n.checked_sub(1)
}

/// `cue`'s text as spans, `word` (an index into its words) highlighted.
fn spans(cue: &Cue, word: Option<usize>) -> Vec<Span> {
    // colour only: a bolder word would reflow the line as the highlight moves
    let plain = |s: &str, highlight: bool| Span {
        text: s.to_string(),
        bold: false,
        italic: false,
        highlight,
    };
    let Some(k) = word else {
        return vec![plain(&cue.text, false)];
    };
    // the words were checked to appear in the text in order
    let mut at = 0;
    for (i, w) in cue.words.iter().enumerate() {
        let Some(p) = cue.text[at..].find(w.text.as_str()) else {
            break;
        };
        let (a, b) = (at + p, at + p + w.text.len());
        if i == k {
            return [
                plain(&cue.text[..a], false),
                plain(&cue.text[a..b], true),
                plain(&cue.text[b..], false),
            ]
            .into_iter()
            .filter(|s| !s.text.is_empty())
            .collect();
        }
        at = b;
    }
    vec![plain(&cue.text, false)]
}

impl<'a> CaptionTrack<'a> {
    pub(crate) fn new(captions: &'a Captions, fps: u32, frame: Frame) -> CaptionTrack<'a> {
        CaptionTrack {
            captions,
            fps: fps.max(1),
            frame,
            cached: None,
        }
    }

    /// The caption to draw on frame `f`, if any.
    pub(crate) fn at(
        &mut self,
        f: u64,
        theme: &Theme,
        images: &Images,
        fonts: &mut FontSystem,
        swash: &mut SwashCache,
    ) -> Option<Arc<CaptionLayer>> {
        let t = f as f64 / f64::from(self.fps);
        let (i, cue) = self.captions.at(t)?;
        let word = spoken(cue, t);
        if self.cached.as_ref().is_none_or(|(c, _)| *c != i) {
            self.cached = Some((i, Vec::new()));
        }
        let (_, layers) = self.cached.as_mut().expect("set above");
        if let Some((_, l)) = layers.iter().find(|(w, _)| *w == word) {
            return Some(l.clone());
        }
        let layer = Arc::new(layout(cue, word, self.frame, theme, images, fonts, swash));
        layers.push((word, layer.clone()));
        Some(layer)
    }
}

fn layout(
    cue: &Cue,
    word: Option<usize>,
    frame: Frame,
    theme: &Theme,
    images: &Images,
    fonts: &mut FontSystem,
    swash: &mut SwashCache,
) -> CaptionLayer {
    let ctx = SceneContext {
        fonts,
        swash,
        theme,
        frame,
        duration: 1.0,
        fps: 30,
        images,
        exit_fade: false,
        background: None,
    };
    let u = frame.unit();
    let (_, sy, sw, sh) = frame.safe_box();
    let mut style = ctx.style(Role::Body, Align::Center);
    style.max_lines = 3;
    let shadow = ctx.shadow();
    let max_w = if frame.narrow() {
        sw
    } else {
        (0.7 * frame.width as f32).min(sw)
    };
    let (px, py) = (1.6 * u, 0.7 * u);
    let fitted = fit(
        &mut *ctx.fonts,
        &spans(cue, word),
        &style,
        max_w - 2.0 * px,
        0.3 * sh,
    );
    let accent = theme.palette.accent;
    let luma =
        0.2126 * f32::from(accent.0) + 0.7152 * f32::from(accent.1) + 0.0722 * f32::from(accent.2);
    let highlight = if luma >= 120.0 { accent } else { HIGHLIGHT };
    let layer = rasterize(
        &mut *ctx.fonts,
        &mut *ctx.swash,
        &fitted,
        &[TEXT, TEXT, highlight],
        shadow,
    );
    let (bw, bh) = (layer.width + 2.0 * px, layer.height + 2.0 * py);
    let bx = ((frame.width as f32 - bw) / 2.0).round();
    let by = if frame.tall() {
        // below the scene's content, above the reel's buttons and caption (the bottom 14%)
        (sy + sh + u).min(0.86 * frame.height as f32 - bh).round()
    } else {
        (sy + sh - bh).round()
    };
    let pad = layer.pad as f32;
    let (text, dx, dy) = trim(layer.pixmap);
    CaptionLayer {
        serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        band: [bx, by, bw.round(), bh.round()],
        radius: 0.9 * u,
        text,
        tx: bx + px + dx - pad,
        ty: by + py + dy - pad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidbuilder_domain::spec::Word;

    fn cue() -> Cue {
        let w = |s: f64, t: &str| Word {
            start: s,
            end: s + 0.2,
            text: t.into(),
        };
        Cue {
            start: 1.0,
            end: 2.0,
            text: "go go gadget".into(),
            words: vec![w(1.0, "go"), w(1.3, "go"), w(1.6, "gadget")],
        }
    }

    #[test]
    fn the_spoken_word_is_the_last_one_started() {
        let c = cue();
        assert_eq!(spoken(&c, 0.9), None);
        assert_eq!(spoken(&c, 1.0), Some(0));
        assert_eq!(spoken(&c, 1.25), Some(0), "lit until the next word");
        assert_eq!(spoken(&c, 1.3), Some(1));
        assert_eq!(spoken(&c, 1.99), Some(2));
    }

    #[test]
    fn repeated_words_highlight_their_own_place() {
        let c = cue();
        let texts = |w| {
            spans(&c, w)
                .into_iter()
                .map(|s| (s.text, s.highlight))
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(None), [("go go gadget".to_string(), false)]);
        assert_eq!(
            texts(Some(1)),
            [
                ("go ".to_string(), false),
                ("go".to_string(), true),
                (" gadget".to_string(), false)
            ]
        );
        assert_eq!(
            texts(Some(2)),
            [("go go ".to_string(), false), ("gadget".to_string(), true)]
        );
    }
}
