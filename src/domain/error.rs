//! The one error type of the core. Transports map it to their own vocabulary in one place each
//! (`api::error` for HTTP, `ssh` for exit messages).

/// Everything that can go wrong in the core, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing or malformed; `field` names it.
    #[error("{message}")]
    Invalid { field: String, message: String },
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
        Error::invalid(field, format!("missing required parameter '{field}'"))
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{e}"))
    }
    /// A stable machine-readable code, shared by every transport.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid_parameter",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::RateLimited(_) => "rate_limited",
            Error::DeployFailed(_) => "deploy_failed",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
