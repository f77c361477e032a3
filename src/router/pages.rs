//! The router's own answers: small branded pages for 404 (unknown host), 503 (app not
//! serving), 502/504 (upstream failing) and 400, as HTML or, when the client asks with
//! `Accept: application/json`, as the JSON error shape of the API.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// One error the router answers itself.
pub struct Page<'a> {
    pub status: StatusCode,
    /// Stable machine-readable code, as in the API (`not_found`, `unavailable`, ...).
    pub code: &'static str,
    pub title: &'a str,
    pub message: String,
}

/// Whether the client prefers JSON (`Accept: application/json`).
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

/// Escapes text for HTML: the host name in these pages comes straight from the request.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Page<'_> {
    /// The response: JSON if `json`, else HTML.
    pub fn render(&self, json: bool) -> Response<Full<Bytes>> {
        let (ctype, body) = if json {
            let body = serde_json::json!({"error": self.code, "message": self.message});
            ("application/json", body.to_string())
        } else {
            ("text/html; charset=utf-8", self.html())
        };
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    fn html(&self) -> String {
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{status} {title} · Scalefog</title>
<style>
body{{margin:0;min-height:100vh;display:grid;place-items:center;background:#0f172a;color:#e2e8f0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif}}
main{{max-width:32rem;padding:2rem;text-align:center}}
.code{{font-size:4rem;font-weight:700;color:#38bdf8;margin:0}}
h1{{font-size:1.4rem;margin:.25rem 0 1rem}}
p{{color:#94a3b8}}
footer{{margin-top:2rem;font-size:.8rem;color:#475569}}
</style></head>
<body><main><p class="code">{status}</p><h1>{title}</h1><p>{message}</p><footer>served by Scalefog</footer></main></body></html>
"#,
            status = self.status.as_u16(),
            title = escape(self.title),
            message = escape(&self.message),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_the_host_and_answer_json_when_asked() {
        let p = Page {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            title: "No app here",
            message: "no app is served at <script>x</script>".into(),
        };
        let html = p.html();
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let r = p.render(wants_json(&h));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    }
}
