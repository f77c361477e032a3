//! What a page tells the person looking at it besides its content: the one-time [`Flash`]
//! message and an operation still [`Pending`]. Plain data, so that every console module can
//! use it; this module uses none of them.

/// A one-time message shown on the page after a redirect (POST-redirect-GET).
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub message: String,
}

impl Flash {
    pub fn ok(m: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            message: m.into(),
        }
    }
    pub fn err(m: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            message: m.into(),
        }
    }
    /// Percent-encodes the message for the cookie. actix-web writes cookie values as given and
    /// percent-decodes them when reading, so decoding is already done in [`Flash::decode`].
    pub(super) fn encode(&self) -> String {
        let text = format!("{}{}", if self.ok { "o" } else { "e" }, self.message);
        let mut out = String::with_capacity(text.len() * 3);
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    pub(super) fn decode(text: &str) -> Option<Flash> {
        let (kind, message) = text.split_at_checked(1)?;
        let message: String = message.chars().take(300).collect();
        match kind {
            "o" => Some(Flash::ok(message)),
            "e" => Some(Flash::err(message)),
            _ => None,
        }
    }
}

/// An operation of this session on this app that is still running.
pub struct Pending {
    pub label: String,
    pub seconds: u64,
}
