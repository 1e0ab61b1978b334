//! `video`: a clip filling the frame (cover or contain) with an optional caption band; and the
//! video `background` any scene may have, drawn under the scene's own layers.

use std::sync::Mutex;

use super::image::caption_band;
use super::{Layers, SceneContext, SceneDraw};
use crate::frame::Canvas;
use crate::video::ClipReader;

/// A clip and what went wrong decoding it, shared by the scene and the background.
pub(crate) struct Clip {
    reader: Mutex<ClipReader>,
    fps: f32,
    failure: Mutex<Option<String>>,
}

impl Clip {
    pub(crate) fn new(reader: ClipReader, fps: u32) -> Clip {
        Clip {
            reader: Mutex::new(reader),
            fps: fps as f32,
            failure: Mutex::new(None),
        }
    }

    /// Draw the clip's frame for `t` seconds into the scene.
    pub(crate) fn draw(&self, canvas: &mut Canvas, t: f32) {
        let k = (t * self.fps).round().max(0.0) as u64;
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let opaque = reader.opaque();
        match reader.frame(k) {
            Ok(Some((id, frame))) => canvas.video_frame(frame, opaque, id),
            Ok(None) => {}
            Err(e) => {
                let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                f.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// Whether every frame covers the output opaquely (`cover`).
    pub(crate) fn covers(&self) -> bool {
        self.reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .opaque()
    }

    /// Start decoding the clip from its first frame, ahead of the first draw.
    pub(crate) fn warm(&self) {
        self.reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prestart();
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A prepared `video` scene.
pub(crate) struct VideoScene {
    clip: Clip,
    caption: Layers,
}

impl VideoScene {
    /// The scene playing `reader`'s clip, with `caption` on a band (laid out once).
    pub(crate) fn new(
        ctx: &mut SceneContext,
        reader: ClipReader,
        caption: Option<&str>,
    ) -> VideoScene {
        let mut layers = Layers::new(ctx);
        if let Some(text) = caption {
            caption_band(ctx, &mut layers, text);
        }
        VideoScene {
            clip: Clip::new(reader, ctx.fps),
            caption: layers,
        }
    }
}

impl SceneDraw for VideoScene {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.clip.draw(canvas, t);
        self.caption.draw(canvas, t);
    }

    fn covers(&self) -> bool {
        self.clip.covers()
    }

    fn failure(&self) -> Option<String> {
        self.clip.failure()
    }

    fn warm(&self) {
        self.clip.warm();
    }
}

/// Any scene over a video background: the clip first, then the scene (its unchanging underlay
/// too, which cannot be drawn once under a moving background).
pub(crate) struct OverClip {
    clip: Clip,
    scene: Box<dyn SceneDraw>,
}

impl OverClip {
    /// `scene` drawn over `reader`'s clip.
    pub(crate) fn new(reader: ClipReader, fps: u32, scene: Box<dyn SceneDraw>) -> OverClip {
        OverClip {
            clip: Clip::new(reader, fps),
            scene,
        }
    }
}

impl SceneDraw for OverClip {
    fn draw(&self, canvas: &mut Canvas, t: f32) {
        self.clip.draw(canvas, t);
        if self.scene.underlay_at(t) {
            self.scene.underlay(canvas);
        }
        self.scene.draw(canvas, t);
    }

    fn covers(&self) -> bool {
        self.clip.covers()
    }

    fn failure(&self) -> Option<String> {
        self.clip.failure().or_else(|| self.scene.failure())
    }

    fn warm(&self) {
        self.clip.warm();
        self.scene.warm();
    }
}
