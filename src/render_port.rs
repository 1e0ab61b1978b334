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
        RenderError::Io(..) | RenderError::MediaUnavailable(_) => RenderFailureKind::Io,
        RenderError::Cancelled => RenderFailureKind::Cancelled,
    }
}

/// A render stand-in for `vidbuilder bench --cluster` and the cluster tests only: it sleeps for the
/// given time, reporting progress, and writes a small placeholder video and poster (not playable
/// media). It measures what the cluster adds around a render on machines too small to show real
/// render scaling. A first scene titled [`SleepRenderer::CRASH`] makes it panic mid-render, as a
/// crashing render would (the supervision tests use it).
pub struct SleepRenderer {
    /// How long each "render" takes.
    pub sleep: std::time::Duration,
}

impl SleepRenderer {
    /// The hero-title that makes the stand-in panic.
    pub const CRASH: &'static str = "stand-in: crash";
}

#[async_trait]
impl Renderer for SleepRenderer {
    async fn render(
        &self,
        req: RenderRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<RenderOutput, RenderFailure> {
        let frames = 10u64;
        let io = |e: std::io::Error| RenderFailure::new(RenderFailureKind::Io, e.to_string());
        let crash = matches!(
            req.spec.scenes.first().map(|s| &s.content),
            Some(vidbuilder_domain::spec::SceneContent::HeroTitle { title, .. })
                if title == Self::CRASH
        );
        // Deadlines from the start, so the whole "render" takes `sleep` and not `sleep` plus
        // each step's timer slack.
        let start = tokio::time::Instant::now();
        for f in 0..frames {
            assert!(
                !(crash && f == frames / 2),
                "the render stand-in was asked to crash"
            );
            progress(vidbuilder_actors::ports::RenderProgress {
                phase: vidbuilder_actors::ports::RenderPhase::Rendering,
                frames_done: f,
                frames_total: frames,
            });
            tokio::select! {
                _ = tokio::time::sleep_until(start + self.sleep * (f as u32 + 1) / frames as u32) => {}
                _ = cancel.cancelled() => {
                    return Err(RenderFailure::new(RenderFailureKind::Cancelled, "cancelled"));
                }
            }
        }
        tokio::fs::create_dir_all(&req.out_dir).await.map_err(io)?;
        let video = req.out_dir.join(format!("{}.mp4", req.job_id));
        let poster = req.out_dir.join(format!("{}.jpg", req.job_id));
        tokio::fs::write(&video, vec![0u8; 64 * 1024])
            .await
            .map_err(io)?;
        tokio::fs::write(&poster, vec![0u8; 4 * 1024])
            .await
            .map_err(io)?;
        Ok(RenderOutput {
            video,
            reel: None,
            duration_secs: req.spec.duration(),
            width: 640,
            height: 360,
            frames,
            poster: Some(poster),
            reel_poster: None,
            extras: Vec::new(),
        })
    }
}
