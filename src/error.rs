//! One error type for everything a user can see.
//!
//! Every message is written for the operator who reads it: it names what was
//! wrong (the key and line, the target, the file) and what to do about it. The
//! kind decides the process exit code, so scripts can tell a typo in the
//! config from a database that is down.

use std::fmt;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
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
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefix the message with where it happened, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Self::new(self.kind, format!("{what}: {}", self.message))
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

impl std::error::Error for Error {}

/// A failed file operation, naming the action and the path: the one way
/// every module words it (`cannot create the backup directory … : …`).
pub fn io_error(action: &str, path: &std::path::Path, e: std::io::Error) -> Error {
    Error::failed(format!("cannot {action} {}: {e}", path.display()))
}
