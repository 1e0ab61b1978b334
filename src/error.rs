//! The crate's one error type.

use vidbuilder_render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Config(String),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("could not start the actor system: {0}")]
    Actors(String),
    #[error("invalid spec: {0}")]
    Spec(#[from] vidbuilder_domain::SpecError),
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
