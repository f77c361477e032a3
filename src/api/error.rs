//! The one place where a domain error becomes an HTTP response.

use crate::domain::Error;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A domain error on its way out of the JSON API.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } | Error::Missing { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::DeployFailed(_) | Error::Cancelled(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body for an error: `{"error", "message"}`, plus `field` for a bad parameter and
/// `reason` for a refusal. Internal causes are logged here and never sent.
pub fn body_of(e: &Error) -> serde_json::Value {
    match e {
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error");
            json!({"error": e.code(), "message": "internal error; the server log has the details"})
        }
        Error::Invalid { field, .. } | Error::Missing { field } => {
            json!({"error": e.code(), "message": e.to_string(), "field": field})
        }
        Error::Forbidden(reason) => json!({"error": e.code(), "message": reason, "reason": reason}),
        other => json!({"error": other.code(), "message": other.to_string()}),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if matches!(self.0, Error::Unauthorized(_)) {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        }
        r.json(body_of(&self.0))
    }
}

/// An error with a status the domain has no word for (413, 405), in the same JSON shape.
pub fn plain(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": code, "message": message}))
}

pub type ApiResult<T> = Result<T, ApiError>;
