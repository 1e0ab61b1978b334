//! The actors' [`Renderer`] port, served by the real renderer of [`vidbuilder_render`].

use async_trait::async_trait;
use vidbuilder_actors::ports::{
    CancellationToken, ProgressSink, RenderFailure, RenderFailureKind, RenderOutput, RenderRequest,
    Renderer,
};
use vidbuilder_render::{FfmpegRenderer, RenderError};

/// [`FfmpegRenderer`] behind the actors' [`Renderer`] trait.
pub struct RenderPort(FfmpegRenderer);

impl RenderPort {
    /// Wraps `renderer`.
    pub fn new(renderer: FfmpegRenderer) -> Self {
        RenderPort(renderer)
    }
}

#[async_trait]
impl Renderer for RenderPort {
    async fn render(
        &self,
        req: RenderRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderOutput, RenderFailure> {
        self.0
            .render(req, progress, cancel)
            .await
            .map_err(|e| RenderFailure::new(failure_kind(&e), e.to_string()))
    }
}

/// The kind of failure a renderer error is.
pub fn failure_kind(e: &RenderError) -> RenderFailureKind {
    match e {
        RenderError::FfmpegNotFound(_)
        | RenderError::FfmpegUnusable(..)
        | RenderError::Ffmpeg { .. } => RenderFailureKind::Encoder,
        RenderError::UnknownTheme(_)
        | RenderError::UnknownTrack(_)
        | RenderError::InvalidSpec(_)
        | RenderError::Config(_)
        | RenderError::Image(_) => RenderFailureKind::InvalidInput,
        RenderError::Io(..) => RenderFailureKind::Io,
        RenderError::Cancelled => RenderFailureKind::Cancelled,
    }
}
