//! Controller errors, each with a static category for metrics and Events.

/// What can go wrong in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hub API call failed.
    #[error("hub API {action}: {source}")]
    Hub {
        /// What was attempted.
        action: &'static str,
        /// Cause.
        source: kube::Error,
    },
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Assignments of a deleted workload still wait for their members to clean up.
    #[error("{0} assignment(s) still being removed by their members")]
    CleanupPending(usize),
    /// The object is missing fields the controller needs.
    #[error("invalid object: {0}")]
    Invalid(String),
}

impl Error {
    /// Static category, safe as a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Hub { .. } => "hub_api",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "finalizer",
            },
            Error::CleanupPending(_) => "cleanup_pending",
            Error::Invalid(_) => "invalid",
        }
    }
}

/// Wraps a hub API error with what was attempted.
pub fn hub(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Hub { action, source }
}
