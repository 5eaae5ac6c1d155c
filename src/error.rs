//! Errors of the command-line front end and the planner, each with a static category.

use std::path::PathBuf;

/// Errors with a static category for metrics and Events.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// An input document is not valid.
    #[error("{path}: {object}: {message}")]
    Input {
        /// File the document came from.
        path: PathBuf,
        /// `Kind/name` or the document index.
        object: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Serialising output failed.
    #[error("cannot serialise output: {0}")]
    Output(String),
    /// A long-running command stopped.
    #[error("{0}")]
    Runtime(String),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Write {
        /// File that failed.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl Error {
    /// Static category, safe as a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Read { .. } => "read",
            Error::Input { .. } => "invalid_input",
            Error::Output(_) => "output",
            Error::Write { .. } => "write",
            Error::Runtime(_) => "runtime",
        }
    }
}
