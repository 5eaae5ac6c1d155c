//! Errors of the syncer, each with a static category (safe as a metric label and an Event reason).

use super::credentials::CredentialError;

/// What went wrong while syncing one member.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the hub API server failed.
    #[error("hub API: {context}: {source}")]
    Hub {
        /// What was being done.
        context: String,
        /// Cause.
        source: kube::Error,
    },
    /// A call to the member API server failed.
    #[error("member API: {context}: {source}")]
    Member {
        /// What was being done.
        context: String,
        /// Cause.
        source: kube::Error,
    },
    /// A call did not answer in time.
    #[error("{0}: timed out")]
    Timeout(String),
    /// The member's kubeconfig Secret cannot be used.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// An Assignment cannot be turned into member objects.
    #[error("invalid assignment: {0}")]
    InvalidAssignment(String),
    /// A watch stream ended or a store never became ready.
    #[error("watch: {0}")]
    Watch(String),
}

impl Error {
    /// Static category, safe as a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Hub { .. } => "hub_api",
            Error::Member { .. } => "member_api",
            Error::Timeout(_) => "timeout",
            Error::Credentials(e) => e.category(),
            Error::InvalidAssignment(_) => "invalid_assignment",
            Error::Watch(_) => "watch",
        }
    }

    /// The API server's `Retry-After`, when it sent one (see [`crate::retry::retry_after`]).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Hub { source, .. } | Error::Member { source, .. } => crate::retry::retry_after(source),
            _ => None,
        }
    }

    /// A hub API error with its context.
    pub fn hub(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Hub { context, source }
    }

    /// A member API error with its context.
    pub fn member(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Member { context, source }
    }
}

/// Whether a kube error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Whether a kube error is a 409 AlreadyExists / Conflict.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
