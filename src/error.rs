//! The crate's one error type.

use vidbuilder_render::RenderError;

/// Everything that can stop the server or a CLI command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid or unreadable configuration value (the message names the key).
    #[error("configuration error: {0}")]
    Config(String),
    /// A renderer failure (ffmpeg missing or unusable, catalog, render).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A file system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `creating <path>`.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The job store, the webhook HTTP client or an actor could not be set up.
    #[error("could not start the actor system: {0}")]
    Actors(String),
    /// A video spec that failed validation (CLI render).
    #[error("invalid spec: {0}")]
    Spec(#[from] vidbuilder_domain::SpecError),
}

impl Error {
    /// For `map_err`: wraps an I/O error into [`Error::Io`] with `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
