//! The one place where a refusal or a domain error becomes the line an SSH client sees on
//! stderr. Clients get a short generic line; the log gets the real cause.

use super::command::Refusal;
use crate::domain::Error;

/// Shown for a missing app and for an app the key's owner may not use alike, so that the
/// existence of other users' apps never leaks.
pub fn no_such_app(app: &str) -> String {
    format!("scalefog: no app named '{app}' that you can access")
}

const ONLY_GIT: &str = "this server only accepts git push and git fetch/clone of an app: \
     git remote add scalefog ssh://git@HOST:PORT/APP.git; and one-off runs: run APP -- COMMAND";

pub fn refusal(r: &Refusal) -> String {
    match r {
        Refusal::NotGit(verb) => format!(
            "scalefog: '{}' is not available; {ONLY_GIT}",
            printable(verb)
        ),
        Refusal::BadPath(path) => format!(
            "scalefog: '{}' is not an app repository; expected APP.git where APP is an app name",
            printable(path)
        ),
        Refusal::Unparsable => format!("scalefog: unreadable command; {ONLY_GIT}"),
        Refusal::BadRun(why) => format!(
            "scalefog: {}; usage: run APP -- COMMAND [ARGS...]",
            printable(why)
        ),
    }
}

/// Requests refused before any command runs.
pub fn no_shell() -> String {
    format!("scalefog: no shell access; {ONLY_GIT}")
}
pub fn no_pty() -> String {
    format!("scalefog: no terminal access; {ONLY_GIT}")
}
pub fn no_subsystem(name: &str) -> String {
    format!(
        "scalefog: subsystem '{}' is not available; {ONLY_GIT}",
        printable(name)
    )
}
pub fn no_env(name: &str) -> String {
    format!(
        "scalefog: environment variable '{}' is not accepted (only GIT_PROTOCOL)",
        printable(name)
    )
}
pub fn no_forwarding(what: &str) -> String {
    format!("scalefog: {what} forwarding is not available; {ONLY_GIT}")
}

/// A domain error while starting git for `app`.
pub fn error(e: &Error, app: &str) -> String {
    match e {
        Error::NotFound(_) | Error::Forbidden(_) => no_such_app(app),
        Error::Internal(cause) => {
            tracing::error!(app, error = format!("{cause:#}"), "ssh git request failed");
            "scalefog: internal error; the server log has the details".into()
        }
        Error::Unauthorized(_) => "scalefog: this key is not accepted".into(),
        other => format!("scalefog: {other}"),
    }
}

/// Client text echoed back: printable ASCII only, and not too long.
fn printable(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(64)
        .collect();
    if s.chars().count() > 64 {
        format!("{clean}...")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_forbidden_apps_read_the_same() {
        assert_eq!(
            error(&Error::NotFound("no app".into()), "demo"),
            error(&Error::Forbidden("not yours".into()), "demo")
        );
    }

    #[test]
    fn echoed_client_text_is_made_harmless() {
        let m = refusal(&Refusal::NotGit("\x1b[31mevil\n".into()));
        assert!(!m.contains('\x1b') && !m.contains('\n'), "{m}");
        let long = "a".repeat(500);
        assert!(refusal(&Refusal::BadPath(long)).len() < 200);
    }

    #[test]
    fn internal_causes_are_not_shown() {
        let m = error(&Error::internal("disk on fire at /secret/path"), "demo");
        assert!(!m.contains("/secret"), "{m}");
    }
}
