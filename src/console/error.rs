//! What can go wrong in a console request, and how each case reads to a person: a sign-in
//! redirect, a 403 for a forged or stale form, and a title and message for every domain error,
//! with the status the JSON API would use. `render` turns them into responses.

use super::notice::Flash;
use crate::domain::Error;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;

#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in: go to the sign-in page, then back to `next`.
    SignIn {
        next: Option<String>,
    },
    /// The CSRF token or the Origin did not match.
    Csrf,
    TooLarge,
    Domain(Error),
}

impl ConsoleError {
    pub fn internal(e: impl std::fmt::Display) -> ConsoleError {
        ConsoleError::Domain(Error::internal(e))
    }
}

impl From<Error> for ConsoleError {
    fn from(e: Error) -> Self {
        ConsoleError::Domain(e)
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::SignIn { .. } => f.write_str("sign in required"),
            ConsoleError::Csrf => f.write_str("form token mismatch"),
            ConsoleError::TooLarge => f.write_str("form too large"),
            ConsoleError::Domain(e) => e.fmt(f),
        }
    }
}

/// Title and explanation shown for an error; internal causes are logged, never shown.
pub(super) fn describe(e: &ConsoleError) -> (StatusCode, &'static str, String) {
    match e {
        ConsoleError::SignIn { .. } => (StatusCode::SEE_OTHER, "Sign in", String::new()),
        ConsoleError::Csrf => (
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was sent without a valid security token — perhaps it was open in an old \
             tab, or it came from another site. Go back, reload the page and try again."
                .into(),
        ),
        ConsoleError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "That was too much",
            "The form you sent is larger than the console accepts.".into(),
        ),
        ConsoleError::Domain(d) => {
            let status = crate::api::error::status_of(d);
            let title = match d {
                Error::NotFound(_) => "Not found",
                Error::Forbidden(_) => "Not allowed",
                Error::Unauthorized(_) => "Sign in again",
                Error::Invalid { .. } | Error::Missing { .. } => {
                    "Something in the form is not right"
                }
                Error::Conflict(_) => "Already taken",
                Error::RateLimited(_) => "Slow down",
                Error::DeployFailed(_) => "Deploy failed",
                Error::Cancelled(_) => "Deploy cancelled",
                Error::Unavailable(_) => "Temporarily unavailable",
                Error::Internal(_) => "Something went wrong on our side",
            };
            let message = match d {
                Error::Internal(cause) => {
                    tracing::error!(error = format!("{cause:#}"), "internal error");
                    "The server hit an unexpected problem; its log has the details. \
                     Try again in a moment."
                        .to_string()
                }
                Error::NotFound(m) => format!(
                    "{} It may have been deleted, or the link may be mistyped.",
                    sentence(m)
                ),
                other => sentence(&other.to_string()),
            };
            (status, title, message)
        }
    }
}

pub type PageResult = Result<HttpResponse, ConsoleError>;

/// How a domain error shows inside a form: a message (and the field it is about), with the
/// page's status. Internal errors are not shown inline; they become the error page.
pub fn inline(e: Error) -> Result<(StatusCode, String, String), ConsoleError> {
    let field = e.field().unwrap_or_default().to_string();
    match e {
        Error::Internal(_) => Err(ConsoleError::Domain(e)),
        other => {
            let status = crate::api::error::status_of(&other);
            // The core speaks of API parameters; a form speaks of fields.
            let message = match &other {
                Error::Missing { field } => {
                    format!("Please fill in the {} field.", field.replace('_', " "))
                }
                _ => sentence(&other.to_string()),
            };
            Ok((status, message, field))
        }
    }
}

/// Core messages are API-style fragments ("invalid username or password"); on a page they read
/// as sentences.
pub fn sentence(m: &str) -> String {
    let mut c = m.trim().chars();
    let mut s: String = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => return String::new(),
    };
    if !s.ends_with(['.', '!', '?']) {
        s.push('.');
    }
    s
}

/// The flash for an action the user's input can refuse: `done`'s message when it worked, the
/// refusal after `refused` ("Nothing was removed") when it did not; a fault of ours is the
/// error page instead.
pub fn outcome<T>(
    result: Result<T, Error>,
    done: impl FnOnce(T) -> String,
    refused: &str,
) -> Result<Flash, ConsoleError> {
    match result {
        Ok(v) => Ok(Flash::ok(done(v))),
        Err(Error::Internal(cause)) => Err(Error::Internal(cause).into()),
        Err(e) => Ok(Flash::err(sentence(&format!("{refused}: {e}")))),
    }
}
