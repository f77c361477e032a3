//! The exec command line a git client sends, parsed: shell-split, the verb checked against the
//! allow-list, the path reduced to an app name. Nothing is ever handed to a shell.

use crate::domain::AppName;
use crate::git::Service;

/// Why a command line is refused; [`super::errors`] turns it into the line the client sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a git command we serve (a shell command, scp, ...). Carries the first word.
    NotGit(String),
    /// A git verb with a path that does not name an app.
    BadPath(String),
    /// Quotes that do not close, or no command at all.
    Unparsable,
}

/// A parsed request: the git service and the app.
#[derive(Debug, PartialEq, Eq)]
pub struct GitRequest {
    pub service: Service,
    pub app: AppName,
}

/// Parses `git-receive-pack '/app.git'` and its variants (`'app.git'`, `'app'`).
pub fn parse(command: &[u8]) -> Result<GitRequest, Refusal> {
    let text = std::str::from_utf8(command).map_err(|_| Refusal::Unparsable)?;
    let words = shell_split(text).ok_or(Refusal::Unparsable)?;
    let verb = words.first().ok_or(Refusal::Unparsable)?;
    let service = match verb.as_str() {
        "git-receive-pack" => Service::ReceivePack,
        "git-upload-pack" => Service::UploadPack,
        other => return Err(Refusal::NotGit(other.to_string())),
    };
    let [_, path] = words.as_slice() else {
        return Err(Refusal::BadPath(words[1..].join(" ")));
    };
    let name = path.strip_prefix('/').unwrap_or(path);
    let name = name.strip_suffix(".git").unwrap_or(name);
    let app = AppName::parse(name).map_err(|_| Refusal::BadPath(path.clone()))?;
    Ok(GitRequest { service, app })
}

/// POSIX-shell word splitting without expansions: blanks separate words, `'…'` is literal,
/// `"…"` honours `\"`, `\\`, `\$` and `` \` ``, a backslash outside quotes escapes the next
/// character. `None` when a quote is left open or a backslash ends the line.
pub fn shell_split(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next()? {
                    '\n' => {}
                    c => word.push(c),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(cmd: &str) -> Result<(Service, String), Refusal> {
        parse(cmd.as_bytes()).map(|r| (r.service, r.app.as_str().to_string()))
    }

    #[test]
    fn the_three_path_forms_name_the_same_app() {
        for cmd in [
            "git-receive-pack '/my-app.git'",
            "git-receive-pack 'my-app.git'",
            "git-receive-pack 'my-app'",
            "git-receive-pack my-app.git",
            "git-receive-pack \"/my-app.git\"",
        ] {
            assert_eq!(
                app(cmd),
                Ok((Service::ReceivePack, "my-app".to_string())),
                "{cmd}"
            );
        }
        assert_eq!(
            app("git-upload-pack '/my-app.git'"),
            Ok((Service::UploadPack, "my-app".into()))
        );
    }

    #[test]
    fn other_commands_are_not_git() {
        for (cmd, verb) in [
            ("sh -c id", "sh"),
            ("git-upload-archive '/my-app.git'", "git-upload-archive"),
            ("git receive-pack '/my-app.git'", "git"),
            ("scp -t /tmp", "scp"),
        ] {
            assert_eq!(app(cmd), Err(Refusal::NotGit(verb.into())), "{cmd}");
        }
        assert_eq!(app(""), Err(Refusal::Unparsable));
        assert_eq!(app("git-upload-pack 'unclosed"), Err(Refusal::Unparsable));
    }

    #[test]
    fn paths_that_are_not_app_names_are_refused() {
        for cmd in [
            "git-receive-pack '../../etc'",
            "git-receive-pack '/etc/passwd'",
            "git-upload-pack '/my-app.git/../other.git'",
            "git-upload-pack '~/my-app.git'",
            "git-upload-pack 'My-App.git'",
            "git-upload-pack",
            "git-upload-pack a.git b.git",
            "git-upload-pack 'my-app.git'; rm -rf /",
        ] {
            assert!(matches!(app(cmd), Err(Refusal::BadPath(_))), "{cmd}");
        }
    }

    #[test]
    fn shell_splitting_follows_posix_quoting() {
        assert_eq!(
            shell_split(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
            vec!["a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("''").unwrap(), vec![""]);
        assert!(shell_split("a\\").is_none());
    }
}
