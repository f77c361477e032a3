//! The one error type of the core. Transports map it to their own vocabulary in one place each
//! (`api::error` for HTTP, `ssh` for exit messages).

/// Everything that can go wrong in the core, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing or malformed; `field` names it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A required parameter was not given at all; `field` names it.
    #[error("missing required parameter '{field}'")]
    Missing { field: String },
    /// No credentials, or credentials that do not check out.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{0}")]
    NotFound(String),
    /// A unique name or key is already taken.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try later.
    #[error("{0}")]
    RateLimited(String),
    /// A build or deploy failed; the message carries the details for the user.
    #[error("{0}")]
    DeployFailed(String),
    /// A deploy (or other app operation) was cancelled on request before it finished.
    #[error("{0}")]
    Cancelled(String),
    /// A dependency (Docker, a node) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an I/O failure; the cause is logged, never shown to clients.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
    pub fn missing(field: &str) -> Self {
        Error::Missing {
            field: field.to_string(),
        }
    }
    /// The parameter a `Missing` or `Invalid` error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } | Error::Missing { field } => Some(field),
            _ => None,
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{e}"))
    }
    /// A stable machine-readable code, shared by every transport.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } | Error::Missing { .. } => "invalid_parameter",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::RateLimited(_) => "rate_limited",
            // A cancelled deploy is a deploy that did not happen, as clients have always seen it.
            Error::DeployFailed(_) | Error::Cancelled(_) => "deploy_failed",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
