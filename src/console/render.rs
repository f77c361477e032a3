//! Turning pages and errors into responses: a page template becomes HTML with its status (and
//! its flash message is cleared), and a [`ConsoleError`] becomes the sign-in redirect or the
//! error page.

use super::error::{ConsoleError, PageResult, describe};
use super::pages::{self, ErrorPage, Layout};
use super::request;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

/// Renders a page with `status`; the flash message it shows is cleared.
pub fn render(req: &HttpRequest, status: StatusCode, page: &impl PageTemplate) -> PageResult {
    let html = page.render().map_err(ConsoleError::internal)?;
    Ok(request::page(req, status, html, page.shows_flash()))
}

/// A template with the common [`Layout`].
pub trait PageTemplate: Template {
    fn shows_flash(&self) -> bool;
}

macro_rules! page_templates {
    ($($t:ty),*) => {$(
        impl PageTemplate for $t {
            fn shows_flash(&self) -> bool {
                self.layout.flash.is_some()
            }
        }
    )*};
}

page_templates!(
    pages::SignInPage,
    pages::RegisterPage,
    pages::AppsPage,
    pages::NewAppPage,
    pages::AppPage,
    pages::BuildPage,
    pages::SshKeysPage,
    pages::ApiKeysPage,
    pages::AccountPage,
    pages::UsersPage,
    pages::NodesPage,
    pages::RegionsPage
);

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
