//! Request extractors: who is calling ([`Auth`]) and what they sent ([`Params`]).

use super::error::ApiError;
use crate::accounts::Principal;
use crate::domain::Error;
use crate::services::Services;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, ResponseError, web};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The authenticated caller. Accepts `Authorization: Bearer <t>` (any case), `X-Auth-Token: <t>`
/// and `x-api-key: <t>`; `<t>` is a login token, an API key or an access JWT.
pub struct Auth(pub Principal);

pub fn credential_of(req: &HttpRequest) -> Option<String> {
    let h = req.headers();
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            return Some(rest.trim().to_string()).filter(|s| !s.is_empty());
        }
    }
    ["x-auth-token", "x-api-key"]
        .iter()
        .find_map(|name| {
            h.get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready((|| {
            let services = req
                .app_data::<web::Data<Services>>()
                .ok_or_else(|| Error::internal("services missing"))?;
            let cred = credential_of(req).ok_or_else(|| {
                Error::Unauthorized(
                    "missing credentials: send 'Authorization: Bearer <token>'".into(),
                )
            })?;
            Ok(Auth(
                services
                    .accounts
                    .authenticate(&cred, crate::api::origin(req))?,
            ))
        })())
    }
}

/// Parameters from the query string and the body (form-encoded or JSON; the body wins).
/// Values are kept as text; handlers ask for them by name, so errors name the field.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    /// A present, non-empty value, or `400` naming the field.
    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Error::missing(name))
    }
    /// The first of several accepted names (e.g. `appname` or `name`).
    /// Every parameter, in no particular order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn first(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .find_map(|n| self.get(n))
            .filter(|s| !s.trim().is_empty())
    }
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name).map(str::trim),
            Some("1" | "true" | "yes" | "on")
        )
    }
    /// A yes/no value when given (`true`/`false`, `1`/`0`, `on`/`off`), or `400` naming it.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
            Some("0" | "false" | "no" | "off") => Ok(Some(false)),
            Some(_) => Err(Error::invalid(
                name,
                format!("'{name}' must be true or false"),
            )),
        }
    }
    pub fn from_query(req: &HttpRequest) -> Result<Params, Error> {
        let mut p = Params::default();
        p.merge_urlencoded(req.query_string().as_bytes(), "query string")?;
        Ok(p)
    }
    fn merge_urlencoded(&mut self, bytes: &[u8], what: &str) -> Result<(), Error> {
        let bad = || Error::invalid("body", format!("the {what} is not valid form encoding"));
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(bytes).map_err(|_| bad())?;
        // Decodable is not enough: no form field is named by control characters or holds a NUL
        // (three NUL bytes would otherwise be one field with a strange name, and be ignored).
        if pairs
            .iter()
            .any(|(k, v)| k.is_empty() || k.chars().any(char::is_control) || v.contains('\0'))
        {
            return Err(bad());
        }
        self.0.extend(pairs);
        Ok(())
    }
    fn merge_json(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid("body", format!("malformed JSON body: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(Error::invalid("body", "the JSON body must be an object"));
        };
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => Ok(s),
                        serde_json::Value::Number(n) => Ok(n.to_string()),
                        _ => Err(Error::invalid(
                            &k,
                            format!("'{k}' must be a list of strings"),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                serde_json::Value::Object(_) => {
                    return Err(Error::invalid(
                        &k,
                        format!("'{k}' must be a string, number or boolean"),
                    ));
                }
            };
            self.0.insert(k, text);
        }
        Ok(())
    }
}

/// The body could not be read because it is larger than [`BODY_LIMIT`].
pub fn too_large() -> actix_web::HttpResponse {
    super::error::plain(
        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("request body is larger than {} KiB", BODY_LIMIT / 1024),
    )
}

/// Errors of body reading: a domain error, or a body over the limit (413).
pub enum ParamsError {
    Domain(ApiError),
    TooLarge,
}

impl std::fmt::Debug for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParamsError")
    }
}
impl std::fmt::Display for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad request body")
    }
}
impl ResponseError for ParamsError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            ParamsError::Domain(e) => e.status_code(),
            ParamsError::TooLarge => actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
    fn error_response(&self) -> actix_web::HttpResponse {
        match self {
            ParamsError::Domain(e) => e.error_response(),
            ParamsError::TooLarge => too_large(),
        }
    }
}

impl FromRequest for Params {
    type Error = ParamsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ParamsError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > BODY_LIMIT) {
                return Err(ParamsError::TooLarge);
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| {
                    ParamsError::Domain(
                        Error::invalid("body", "the request body could not be read").into(),
                    )
                })?;
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(ParamsError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            let mut p = Params::from_query(&req).map_err(|e| ParamsError::Domain(e.into()))?;
            let ctype = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let body_ok = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(())
            } else if ctype.contains("json") || (ctype.is_empty() && body.first() == Some(&b'{')) {
                p.merge_json(&body)
            } else {
                p.merge_urlencoded(&body, "body")
            };
            body_ok.map_err(|e| ParamsError::Domain(e.into()))?;
            Ok(p)
        })
    }
}
