//! The frame loop's drawing side for one output geometry: which scenes are on screen at a
//! frame, preparing them as they come into view (and dropping them after), their backgrounds,
//! and transitions.
//!
//! A frame showing one scene is its background restored where the last frame drew, plus the
//! scene's layers (the dirty-rect path, see `frame.rs`). A frame inside a transition window draws
//! both scenes into two scratch buffers, each over its own background (again only where they
//! changed), and composites them. A slide or wipe is composited in RGBA into the output frame,
//! which the writer then converts to yuv in full. A fade or zoom mixes every pixel of both: each
//! scene is converted to yuv by its own `YuvState` (only where it changed: a scene at rest costs
//! nothing), and the two are mixed straight into the frame's yuv planes on the base-picture path
//! (`yuv.rs`), 2.7 times less data, with nothing left for the writer to convert (the bench's
//! 1080p zoom case, side by side with the RGBA mix: drawing and converting alone 3.3–3.6 →
//! 1.5–2.3 ms a frame on average, our process's CPU 0.52 → 0.33 s).
//!
//! The spec's captions and watermark go over every frame: drawn with the scene's layers (so a
//! frame at rest still repeats the previous one exactly), or over the composite in a
//! transition (so they stay put while the scenes move).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmic_text::{FontSystem, SwashCache};
use tiny_skia::Pixmap;
use vidbuilder_domain::spec::{Fit, VideoSpec, WATERMARK_MARGIN};

use super::captions::{CaptionLayer, CaptionTrack};
use super::frame::{Canvas, FrameBuf, YuvState};
use super::image::Images;
use super::scene::{self, Frame, SceneContext, SceneDraw};
use super::theme::Theme;
use super::transition::{composite, composite_yuv, composites_in_yuv, Timeline, YuvScratch};
use super::{paint, RenderError};

/// Draws any frame of a video for one output (landscape or reel). Frames are meant to be asked
/// for in order (scenes are prepared once, when first needed, and dropped once passed), but any
/// order works.
pub struct Composer<'a> {
    spec: &'a VideoSpec,
    theme: &'a Theme,
    images: &'a Images,
    timeline: &'a Timeline,
    frame: Frame,
    /// Scene index → index of its (deduplicated) background.
    bg_of: Vec<usize>,
    /// Per distinct background: the last scene using it, and the pixmap while needed.
    bgs: Vec<(usize, Option<Arc<Pixmap>>)>,
    drawers: Vec<Option<Box<dyn SceneDraw>>>,
    /// Per scene with an underlay: its background with the underlay drawn on, while needed.
    underlays: Vec<Option<Arc<Pixmap>>>,
    /// The two scenes of a transition are drawn here, allocated at the first transition.
    scratch: Option<[FrameBuf; 2]>,
    /// On the base-picture path, the two scenes of a fade or zoom kept in yuv (see
    /// [`SceneYuv`]), allocated at the first such transition.
    scene_yuv: Option<Box<SceneYuv>>,
    /// Time spent compositing transitions (a part of drawing).
    composite_time: Duration,
    /// The watermark scaled and placed for this output, once first needed (`Some(None)`: none).
    mark: Option<Option<Arc<Mark>>>,
    /// The spec's captions laid out for this output.
    captions: Option<CaptionTrack<'a>>,
    /// A transparent frame: what the base-picture path draws the rest of a frame over.
    clear: Option<Pixmap>,
    /// Per scene: its picture did not fill a frame on the base-picture path (a clip without
    /// frames), so the scene is drawn without it from then on.
    no_base: Vec<bool>,
    /// Whether frames may take the base-picture path at all (not for a still: see
    /// [`Composer::rgba_only`]).
    base_path: bool,
}

/// How far ahead of its first frame a scene is prepared, in seconds.
pub(crate) const LEAD: f64 = 0.5;

/// The background id of [`Composer::clear`] (scene backgrounds count up from 1).
const CLEAR_BG: usize = usize::MAX;

/// What goes over a frame's scenes: the caption on screen, then the watermark.
#[derive(Clone, Copy, Default)]
struct Overlays<'x> {
    caption: Option<&'x CaptionLayer>,
    mark: Option<&'x Mark>,
}

impl Overlays<'_> {
    fn draw(&self, c: &mut Canvas) {
        if let Some(cap) = self.caption {
            cap.draw(c);
        }
        if let Some(m) = self.mark {
            m.draw(c);
        }
    }
}

/// The spec's watermark, ready to copy onto this output's frames.
struct Mark {
    pixmap: Pixmap,
    x: f32,
    y: f32,
    opacity: f32,
}

impl Mark {
    fn draw(&self, c: &mut Canvas) {
        c.layer(&self.pixmap, self.x, self.y, self.opacity);
    }
}

/// A fade's or zoom's two scenes in yuv: each scene's RGBA scratch frame converted by its own
/// [`YuvState`], so only what changed since the previous transition frame is converted (a scene
/// at rest costs nothing), and the mixing buffers.
struct SceneYuv {
    states: [YuvState; 2],
    scratch: YuvScratch,
}

impl SceneYuv {
    fn new(w: usize, h: usize) -> SceneYuv {
        SceneYuv {
            states: [YuvState::new(w, h), YuvState::new(w, h)],
            scratch: YuvScratch::default(),
        }
    }
}

impl<'a> Composer<'a> {
    /// A composer for `spec` at the size of `frame`; scenes are prepared lazily as frames need them.
    pub fn new(
        spec: &'a VideoSpec,
        theme: &'a Theme,
        images: &'a Images,
        timeline: &'a Timeline,
        frame: Frame,
    ) -> Composer<'a> {
        let mut keys: Vec<usize> = Vec::new(); // first scene of each distinct background
        let mut bg_of = Vec::with_capacity(spec.scenes.len());
        let mut bgs: Vec<(usize, Option<Arc<Pixmap>>)> = Vec::new();
        for (i, s) in spec.scenes.iter().enumerate() {
            let k = match keys
                .iter()
                .position(|&j| spec.scenes[j].background == s.background)
            {
                Some(k) => k,
                None => {
                    keys.push(i);
                    bgs.push((i, None));
                    keys.len() - 1
                }
            };
            bgs[k].0 = i;
            bg_of.push(k);
        }
        Composer {
            spec,
            theme,
            images,
            timeline,
            frame,
            bg_of,
            bgs,
            drawers: (0..spec.scenes.len()).map(|_| None).collect(),
            underlays: vec![None; spec.scenes.len()],
            scratch: None,
            scene_yuv: None,
            composite_time: Duration::ZERO,
            mark: None,
            captions: spec
                .captions
                .as_deref()
                .map(|c| CaptionTrack::new(c, spec.fps, frame)),
            clear: None,
            no_base: vec![false; spec.scenes.len()],
            base_path: true,
        }
    }

    /// The watermark for this output's size: the image fitted to its share of the shorter side
    /// (its height at most half of it), placed `WATERMARK_MARGIN` from the edges.
    fn mark(&mut self) -> Result<Option<Arc<Mark>>, RenderError> {
        if let Some(m) = &self.mark {
            return Ok(m.clone());
        }
        let made = match &self.spec.watermark {
            None => None,
            Some(w) => {
                let src = self.images.get(&w.src)?;
                let (fw, fh) = (self.frame.width as f32, self.frame.height as f32);
                let short = fw.min(fh);
                let pixmap = super::image::fitted(
                    src,
                    (w.scale * short).max(1.0),
                    (0.5 * short).max(1.0),
                    Fit::Contain,
                    1.0,
                );
                let (x, y) = w.position.place(
                    fw,
                    fh,
                    pixmap.width() as f32,
                    pixmap.height() as f32,
                    WATERMARK_MARGIN * short,
                );
                Some(Arc::new(Mark {
                    pixmap,
                    x,
                    y,
                    opacity: w.opacity,
                }))
            }
        };
        self.mark = Some(made.clone());
        Ok(made)
    }

    /// Draw every frame in RGBA alone, never on the base-picture path (`yuv.rs`): for a still,
    /// whose pixmap is the picture (a video frame's pixmap may be only what goes over its base).
    pub fn rgba_only(mut self) -> Self {
        self.base_path = false;
        self
    }

    /// The geometry of this output.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    /// How long compositing the transitions' two scenes has taken so far.
    pub fn composite_time(&self) -> Duration {
        self.composite_time
    }

    /// Draw frame `f` into `out` (a buffer of this output's size, possibly recycled).
    pub fn draw(
        &mut self,
        f: u64,
        out: &mut FrameBuf,
        fonts: &mut FontSystem,
        swash: &mut SwashCache,
    ) -> Result<(), RenderError> {
        let tl = self.timeline;
        let n = tl.ranges.len();
        let c = tl.ranges.partition_point(|r| r.1 <= f).min(n - 1);
        let pair = match c
            .checked_sub(1)
            .and_then(|b| tl.cuts[b].progress(f).map(|p| (b, p)))
        {
            Some(x) => Some(x),
            None => tl
                .cuts
                .get(c)
                .and_then(|cut| cut.progress(f))
                .map(|p| (c, p)),
        };
        self.release_before(pair.map(|(i, _)| i).unwrap_or(c));
        self.prepare_ahead(c, f, fonts, swash)?;
        let mark = self.mark()?;
        let caption = match &mut self.captions {
            Some(track) => track.at(f, self.theme, self.images, fonts, swash),
            None => None,
        };
        let over = Overlays {
            caption: caption.as_deref(),
            mark: mark.as_deref(),
        };
        match pair {
            None => {
                let base = self.base_path;
                self.draw_scene(c, f, out, fonts, swash, over, base)
            }
            Some((i, p)) => {
                let (w, h) = (self.frame.width, self.frame.height);
                let mut scratch = self
                    .scratch
                    .take()
                    .unwrap_or_else(|| [FrameBuf::new(w, h), FrameBuf::new(w, h)]);
                // both scenes in RGBA, for the composite
                let drawn = self
                    .draw_scene(
                        i,
                        f,
                        &mut scratch[0],
                        fonts,
                        swash,
                        Overlays::default(),
                        false,
                    )
                    .and_then(|()| {
                        self.draw_scene(
                            i + 1,
                            f,
                            &mut scratch[1],
                            fonts,
                            swash,
                            Overlays::default(),
                            false,
                        )
                    });
                if drawn.is_ok() {
                    let t0 = Instant::now();
                    let cut = &tl.cuts[i];
                    let (wu, hu) = (w as usize, h as usize);
                    let mut in_yuv = false;
                    if self.base_path
                        && composites_in_yuv(cut.kind)
                        && wu.is_multiple_of(2)
                        && hu.is_multiple_of(2)
                    {
                        // mixed in yuv: both scenes converted only where they changed, 2.7
                        // times less data to mix, and nothing for the writer to convert (the
                        // overlays are blended on)
                        let clear = self
                            .clear
                            .get_or_insert_with(|| Pixmap::new(w, h).expect("frame size"));
                        let sy = self
                            .scene_yuv
                            .get_or_insert_with(|| Box::new(SceneYuv::new(wu, hu)));
                        let [ya, yb] = &mut sy.states;
                        let (a, b) = (ya.convert(&mut scratch[0]), yb.convert(&mut scratch[1]));
                        let tmp = &mut sy.scratch;
                        let kind = cut.kind;
                        let id = ((i as u64) << 32) | p.to_bits() as u64;
                        let generation = (n + i) as u64; // after every scene's
                        out.redraw(clear, CLEAR_BG, generation, true, &mut |c: &mut Canvas| {
                            c.yuv_frame(id, |yuv| composite_yuv(kind, p, a, b, wu, hu, tmp, yuv));
                            over.draw(c);
                        });
                        in_yuv = out.base_filled;
                    }
                    if !in_yuv {
                        composite(
                            cut.kind,
                            cut.direction,
                            p,
                            scratch[0].pixmap.data(),
                            scratch[1].pixmap.data(),
                            w as usize,
                            h as usize,
                            out.pixmap.data_mut(),
                        );
                        out.set_full();
                        over.draw(&mut out.canvas());
                    }
                    self.composite_time += t0.elapsed();
                }
                self.scratch = Some(scratch);
                drawn
            }
        }
    }

    /// Draw scene `i` as it is at frame `f` (its own clock starts where it comes into view),
    /// with `over` drawn over it; on the base-picture path (`yuv.rs`) when `base` allows and
    /// the scene starts with a picture covering the frame.
    #[allow(clippy::too_many_arguments)]
    fn draw_scene(
        &mut self,
        i: usize,
        f: u64,
        out: &mut FrameBuf,
        fonts: &mut FontSystem,
        swash: &mut SwashCache,
        over: Overlays,
        base: bool,
    ) -> Result<(), RenderError> {
        let drawer = match self.drawers[i].take() {
            Some(d) => d,
            None => self.prepare(i, fonts, swash)?,
        };
        let drawn = self.draw_with(i, &*drawer, f, out, over, base);
        self.drawers[i] = Some(drawer);
        drawn
    }

    /// [`Composer::draw_scene`] with scene `i`'s drawer at hand. The background (or underlay)
    /// is only made when the frame needs it: a frame on the base-picture path covers it, so a
    /// Ken Burns photo or a clip never pays for the theme's gradient.
    fn draw_with(
        &mut self,
        i: usize,
        drawer: &dyn SceneDraw,
        f: u64,
        out: &mut FrameBuf,
        over: Overlays,
        base: bool,
    ) -> Result<(), RenderError> {
        let (start, _) = self.timeline.span(i);
        let t = f.saturating_sub(start) as f32 / self.spec.fps as f32;
        let mut draw = |c: &mut Canvas| {
            drawer.draw(c, t);
            over.draw(c);
        };
        let mut drawn = false;
        if base && drawer.covers() && !self.no_base[i] {
            let (w, h) = (self.frame.width, self.frame.height);
            let clear = self
                .clear
                .get_or_insert_with(|| Pixmap::new(w, h).expect("frame size"));
            out.redraw(clear, CLEAR_BG, i as u64, true, &mut draw);
            drawn = out.base_filled;
            self.no_base[i] = !drawn;
        }
        if !drawn {
            let mut bg = self.background(i)?;
            // Background ids: 1 + the shared background's index, or past those for an underlay.
            let mut bg_id = self.bg_of[i] + 1;
            if drawer.underlay_at(t) {
                bg_id = self.bgs.len() + 1 + i;
                bg = match &self.underlays[i] {
                    Some(u) => u.clone(),
                    None => {
                        let mut base = FrameBuf::new(self.frame.width, self.frame.height);
                        base.reset(&bg, 0);
                        drawer.underlay(&mut base.canvas());
                        let u = Arc::new(base.pixmap);
                        self.underlays[i] = Some(u.clone());
                        u
                    }
                };
            }
            // Skips all pixel work when the buffer already holds this very frame (a scene at
            // rest).
            out.redraw(&bg, bg_id, i as u64, false, &mut draw);
        }
        match drawer.failure() {
            Some(why) => Err(RenderError::Image(format!("scenes[{i}]: {why}"))),
            None => Ok(()),
        }
    }

    fn prepare(
        &self,
        i: usize,
        fonts: &mut FontSystem,
        swash: &mut SwashCache,
    ) -> Result<Box<dyn SceneDraw>, RenderError> {
        let (start, end) = self.timeline.span(i);
        let fps = self.spec.fps;
        scene::prepare(
            &self.spec.scenes[i].content,
            &mut SceneContext {
                fonts,
                swash,
                theme: self.theme,
                frame: self.frame,
                duration: (end - start) as f32 / fps as f32,
                fps,
                images: self.images,
                exit_fade: self.timeline.exit_fade(i),
                background: self.spec.scenes[i].background.as_ref(),
            },
        )
    }

    fn background(&mut self, i: usize) -> Result<Arc<Pixmap>, RenderError> {
        let k = self.bg_of[i];
        if let Some(bg) = &self.bgs[k].1 {
            return Ok(bg.clone());
        }
        let bg = Arc::new(paint::scene_background(
            self.theme,
            self.spec.scenes[i].background.as_ref(),
            self.images,
            self.frame.width,
            self.frame.height,
        )?);
        self.bgs[k].1 = Some(bg.clone());
        Ok(bg)
    }

    /// Prepare (and warm: see [`SceneDraw::warm`]) the scenes from `from` on that come into
    /// view within [`LEAD`] of frame `f`, so a clip's decoder has started by its first frame
    /// instead of stalling the encoder then.
    fn prepare_ahead(
        &mut self,
        from: usize,
        f: u64,
        fonts: &mut FontSystem,
        swash: &mut SwashCache,
    ) -> Result<(), RenderError> {
        let lead = (self.spec.fps as f64 * LEAD).ceil() as u64;
        for j in from..self.drawers.len() {
            if self.timeline.span(j).0 > f + lead {
                break;
            }
            if self.drawers[j].is_none() {
                let drawer = self.prepare(j, fonts, swash)?;
                drawer.warm();
                self.drawers[j] = Some(drawer);
            }
        }
        Ok(())
    }

    /// Whether scene `i` is prepared (and not yet released).
    #[cfg(test)]
    pub(crate) fn prepared(&self, i: usize) -> bool {
        self.drawers[i].is_some()
    }

    /// Prepare (and warm) the scenes in view at the first frame, or coming into view within
    /// half a second of it: call before starting the encoder, so the first scene's clips start
    /// decoding while it starts.
    pub fn warm_up(
        &mut self,
        fonts: &mut FontSystem,
        swash: &mut SwashCache,
    ) -> Result<(), RenderError> {
        self.prepare_ahead(0, 0, fonts, swash)
    }

    /// Free what scenes before `first` held: they will not be drawn again in order.
    fn release_before(&mut self, first: usize) {
        for d in &mut self.drawers[..first] {
            *d = None;
        }
        for u in &mut self.underlays[..first] {
            *u = None;
        }
        for (last, bg) in &mut self.bgs {
            if *last < first {
                *bg = None;
            }
        }
    }
}
