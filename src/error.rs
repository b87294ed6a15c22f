//! One error type for everything a user can see.
//!
//! Every message is written for the operator who reads it: it names what was
//! wrong (the key and line, the target, the file) and what to do about it. The
//! kind decides the process exit code, so scripts can tell a typo in the
//! config from a database that is down.
//!
//! Library callers that must branch on the cause (a database error's SQLSTATE,
//! which config key was refused) walk the source chain with [`Error::find`]
//! instead of matching on message text.

use std::fmt;
use std::sync::Arc;

/// What went wrong, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line or the configuration is wrong: fix the input. Exit 2.
    Usage,
    /// A database could not be reached at all. Exit 3.
    Unreachable,
    /// The operation ran and failed. Exit 1.
    Failed,
}

/// The underlying error, shared so that `Error` stays cheap to clone.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the error this one was caused by, so callers can inspect it
    /// (see [`Error::find`]); the message stays the operator's.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with where it happened, keeping the kind and source.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }

    /// The first error of type `T` in the source chain, if any: e.g.
    /// `err.find::<tokio_postgres::Error>()` or `err.find::<ConfigError>()`.
    pub fn find<T: std::error::Error + 'static>(&self) -> Option<&T> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(error) = next {
            if let Some(found) = error.downcast_ref::<T>() {
                return Some(found);
            }
            next = error.source();
        }
        None
    }

    /// The process exit code for this error (see the README's CLI reference).
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Unreachable => 3,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Written out rather than derived: the source is behind an `Arc`, and the
/// chain must yield the error inside it, not the `Arc`, for `find` to work.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two errors are equal when an operator would see the same thing.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

/// A failed file operation, naming the action and the path: the one way
/// every module words it (`cannot create the backup directory … : …`); the
/// `io::Error` stays in the chain for callers that branch on its kind.
pub fn io_error(action: &str, path: &std::path::Path, e: std::io::Error) -> Error {
    Error::failed(format!("cannot {action} {}: {e}", path.display())).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_survives_context_and_can_be_found() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = Error::usage("cannot read x")
            .with_source(io)
            .context("target `a`");
        assert_eq!(err.to_string(), "target `a`: cannot read x");
        assert_eq!(err.exit_code(), 2);
        let found = err.find::<std::io::Error>().expect("io error in the chain");
        assert_eq!(found.kind(), std::io::ErrorKind::NotFound);
        assert!(err.find::<std::fmt::Error>().is_none());
    }
}
