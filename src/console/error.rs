//! Console errors become HTML pages: a sign-in redirect, a 403 for a forged or stale form, and a
//! friendly page for every domain error, with the status the JSON API would use.

use super::views::{ErrorPage, Layout};
use crate::domain::Error;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

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
fn describe(e: &ConsoleError) -> (StatusCode, &'static str, String) {
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
                    super::sentence(m)
                ),
                other => super::sentence(&other.to_string()),
            };
            (status, title, message)
        }
    }
}

/// The error page for a status the domain has no word for (404 of an unknown console path).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let page = ErrorPage {
        layout: Layout::bare(title),
        status: status.as_u16(),
        title: title.to_string(),
        message: message.to_string(),
    };
    let html = page
        .render()
        .unwrap_or_else(|_| format!("{title}: {message}"));
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html)
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        describe(self).0
    }
    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::SignIn { next } = self {
            let to = match next {
                Some(n) if n != "/console/apps" => format!(
                    "/console/sign-in?{}",
                    serde_urlencoded::to_string([("next", n)]).unwrap_or_default()
                ),
                _ => "/console/sign-in".to_string(),
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish();
        }
        let (status, title, message) = describe(self);
        error_page(status, title, &message)
    }
}

pub type PageResult = Result<HttpResponse, ConsoleError>;
