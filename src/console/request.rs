//! What a console request carries: the session cookie, the CSRF token, the flash message, and
//! the form body. Extractors here turn them into [`Ctx`] (a signed-in user), [`Visitor`]
//! (anyone) and [`SignedForm`] / [`AnonForm`] (a POST whose CSRF token checked out).

use super::error::ConsoleError;
use super::notice::Flash;
use crate::accounts::{Principal, generate_token};
use crate::services::Services;
use actix_web::cookie::{Cookie, SameSite, time::Duration};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

pub const SESSION_COOKIE: &str = "scalefog_session";
/// The anti-CSRF token of forms shown before sign-in (double-submit: cookie = form field).
pub const ANON_CSRF_COOKIE: &str = "scalefog_csrf";
pub const FLASH_COOKIE: &str = "scalefog_flash";

/// Largest form body the console reads (an RSA 16384-bit public key is about 3 KiB).
const FORM_LIMIT: usize = 64 * 1024;

/// Whether the browser reached us over TLS (directly, or through a proxy that says so), so
/// that cookies get the `Secure` attribute exactly when they can.
fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

fn services(req: &HttpRequest) -> Result<web::Data<Services>, ConsoleError> {
    req.app_data::<web::Data<Services>>()
        .cloned()
        .ok_or_else(|| ConsoleError::internal("services missing"))
}

/// A cookie with the console's attributes: HttpOnly, SameSite=Lax, Secure over TLS, host-only.
pub fn cookie(req: &HttpRequest, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(is_https(req))
        .finish()
}

fn removal(req: &HttpRequest, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(req, name, String::new());
    c.make_removal();
    c
}

fn flash_of(req: &HttpRequest) -> Option<Flash> {
    req.cookie(FLASH_COOKIE)
        .and_then(|c| Flash::decode(c.value()))
}

/// Where a console request comes from, for the audit log.
pub fn origin(req: &HttpRequest) -> crate::domain::Origin {
    crate::domain::Origin::new(crate::domain::Channel::Console, crate::api::client_ip(req))
}

/// The signed-in user behind a request, if any.
fn session_of(
    req: &HttpRequest,
    services: &Services,
) -> Result<Option<(Principal, String, String)>, ConsoleError> {
    let Some(c) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let id = c.value().to_string();
    Ok(services
        .accounts
        .session(&id, origin(req))?
        .map(|(p, s)| (p, id, s.csrf)))
}

/// A signed-in user's request. Without a valid session, the handler is not run and the browser
/// is sent to the sign-in page, which brings it back here afterwards.
pub struct Ctx {
    pub req: HttpRequest,
    pub services: web::Data<Services>,
    pub who: Principal,
    pub session_id: String,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Ctx {
    fn from_req(req: &HttpRequest) -> Result<Ctx, ConsoleError> {
        let services = services(req)?;
        let Some((who, session_id, csrf)) = session_of(req, &services)? else {
            let next = match req.method() {
                &actix_web::http::Method::GET => Some(req.uri().to_string()),
                _ => None,
            };
            return Err(ConsoleError::SignIn { next });
        };
        Ok(Ctx {
            req: req.clone(),
            services,
            who,
            session_id,
            csrf,
            flash: flash_of(req),
        })
    }

    /// 303 to `to`, carrying a flash message for the next page.
    pub fn redirect(&self, to: &str, flash: Flash) -> HttpResponse {
        redirect_with(&self.req, to, Some(flash))
    }
}

impl FromRequest for Ctx {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Ctx, ConsoleError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ctx::from_req(req))
    }
}

/// A 303 See Other (the browser follows with a GET), optionally with a flash message.
pub fn redirect_with(req: &HttpRequest, to: &str, flash: Option<Flash>) -> HttpResponse {
    let mut r = HttpResponse::SeeOther();
    r.insert_header((header::LOCATION, to.to_string()));
    if let Some(f) = flash {
        let mut c = cookie(req, FLASH_COOKIE, f.encode());
        c.set_max_age(Duration::seconds(60));
        r.cookie(c);
    }
    r.finish()
}

/// Anyone: the sign-in and register pages. Carries the anonymous CSRF token, made fresh (and
/// set as a cookie by [`Visitor::finish`]) when the browser has none yet.
pub struct Visitor {
    pub req: HttpRequest,
    pub services: web::Data<Services>,
    pub signed_in: bool,
    pub csrf: String,
    new_csrf: bool,
    pub flash: Option<Flash>,
}

impl Visitor {
    fn from_req(req: &HttpRequest) -> Result<Visitor, ConsoleError> {
        let services = services(req)?;
        let signed_in = session_of(req, &services)?.is_some();
        let existing = req
            .cookie(ANON_CSRF_COOKIE)
            .map(|c| c.value().to_string())
            .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let new_csrf = existing.is_none();
        Ok(Visitor {
            req: req.clone(),
            services,
            signed_in,
            csrf: existing.unwrap_or_else(generate_token),
            new_csrf,
            flash: flash_of(req),
        })
    }

    /// Adds the anonymous CSRF cookie to a page response when it was just made.
    pub fn finish(&self, mut resp: HttpResponse) -> HttpResponse {
        if self.new_csrf {
            let _ = resp.add_cookie(&cookie(&self.req, ANON_CSRF_COOKIE, self.csrf.clone()));
        }
        resp
    }
}

impl FromRequest for Visitor {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Visitor, ConsoleError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Visitor::from_req(req))
    }
}

/// The fields of a submitted form.
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    /// The value of a field, `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), "on" | "1" | "true" | "yes")
    }
}

/// Refuses a POST whose `Origin` names another site. Browsers send `Origin` with form posts;
/// checking it stops cross-site posts even from a subdomain (an app) that planted cookies.
fn check_origin(req: &HttpRequest) -> Result<(), ConsoleError> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = req.connection_info().host().to_string();
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    if origin_host.eq_ignore_ascii_case(&host) {
        Ok(())
    } else {
        Err(ConsoleError::Csrf)
    }
}

async fn read_fields(req: &HttpRequest, payload: &mut Payload) -> Result<Fields, ConsoleError> {
    let body = web::Bytes::from_request(req, payload)
        .await
        .map_err(|_| ConsoleError::TooLarge)?;
    if body.len() > FORM_LIMIT {
        return Err(ConsoleError::TooLarge);
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|_| {
        ConsoleError::Domain(crate::domain::Error::invalid(
            "body",
            "the form could not be read; please try again",
        ))
    })?;
    Ok(Fields(pairs.into_iter().collect()))
}

fn token_matches(sent: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty()
        && sent.len() == expected.len()
        && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// A signed-in user's form post with the session's CSRF token.
pub struct SignedForm {
    pub ctx: Ctx,
    pub fields: Fields,
}

impl FromRequest for SignedForm {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<SignedForm, ConsoleError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            check_origin(&req)?;
            let ctx = Ctx::from_req(&req)?;
            let fields = read_fields(&req, &mut payload).await?;
            if !token_matches(fields.get("csrf"), &ctx.csrf) {
                return Err(ConsoleError::Csrf);
            }
            Ok(SignedForm { ctx, fields })
        })
    }
}

/// A form post from the sign-in or register page, with the anonymous CSRF token.
pub struct AnonForm {
    pub visitor: Visitor,
    pub fields: Fields,
}

impl FromRequest for AnonForm {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<AnonForm, ConsoleError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            check_origin(&req)?;
            let visitor = Visitor::from_req(&req)?;
            let fields = read_fields(&req, &mut payload).await?;
            if visitor.new_csrf || !token_matches(fields.get("csrf"), &visitor.csrf) {
                return Err(ConsoleError::Csrf);
            }
            Ok(AnonForm { visitor, fields })
        })
    }
}

/// Renders a page, clearing the flash cookie once its message has been shown.
pub fn page(
    req: &HttpRequest,
    status: actix_web::http::StatusCode,
    html: String,
    flash_shown: bool,
) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    r.content_type("text/html; charset=utf-8");
    if flash_shown {
        r.cookie(removal(req, FLASH_COOKIE));
    }
    r.body(html)
}

/// The cookie that signs a browser in.
pub fn session_cookie(req: &HttpRequest, id: String) -> Cookie<'static> {
    let mut c = cookie(req, SESSION_COOKIE, id);
    c.set_max_age(Duration::seconds(crate::domain::SESSION_TTL_SECS));
    c
}

pub fn session_removal(req: &HttpRequest) -> Cookie<'static> {
    removal(req, SESSION_COOKIE)
}
