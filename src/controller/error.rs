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

impl Error {
    /// The error of the reconcile itself, out of the finalizer's wrapping.
    pub fn innermost(&self) -> &Error {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.innermost(),
                _ => self,
            },
            _ => self,
        }
    }

    /// The hub API server's `Retry-After`, when it sent one (see [`crate::retry::retry_after`]).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Hub { source, .. } => crate::retry::retry_after(source),
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.retry_after(),
                F::AddFinalizer(e) | F::RemoveFinalizer(e) => crate::retry::retry_after(e),
                _ => None,
            },
            Error::CleanupPending(_) | Error::Invalid(_) => None,
        }
    }
}

/// Wraps a hub API error with what was attempted.
pub fn hub(action: &'static str) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Hub { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::finalizer::Error as F;

    #[test]
    fn a_pending_cleanup_is_seen_through_the_finalizer() {
        let e = Error::Finalizer(Box::new(F::CleanupFailed(Error::CleanupPending(2))));
        assert!(matches!(e.innermost(), Error::CleanupPending(2)));
        assert_eq!(e.category(), "cleanup_pending");
        let mut s = kube::core::Status::failure("slow down", "TooManyRequests");
        s.code = 429;
        let e = Error::Finalizer(Box::new(F::ApplyFailed(Error::Hub {
            action: "apply",
            source: kube::Error::Api(Box::new(s)),
        })));
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(1)));
    }
}
