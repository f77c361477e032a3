//! The exec command line a client sends, parsed: shell-split, the verb checked against the
//! allow-list (git's two, and `run`), the path reduced to an app name. Nothing is ever handed to
//! a shell.

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
    /// A `run` without an app name or a command; says which.
    BadRun(String),
}

/// A parsed request: the git service and the app.
#[derive(Debug, PartialEq, Eq)]
pub struct GitRequest {
    pub service: Service,
    pub app: AppName,
}

/// A one-off run: `run APP -- COMMAND [ARGS]`.
#[derive(Debug, PartialEq, Eq)]
pub struct RunRequest {
    pub app: AppName,
    /// The program and its arguments, as the client's words after the app (and `--`).
    pub command: Vec<String>,
}

/// Parses `run APP [--] COMMAND [ARGS]` (Dokku's form); `None` when the verb is not `run`.
pub fn parse_run(command: &[u8]) -> Option<Result<RunRequest, Refusal>> {
    let words = shell_split(std::str::from_utf8(command).ok()?)?;
    if words.first()? != "run" {
        return None;
    }
    let Some((app, rest)) = words[1..].split_first() else {
        return Some(Err(Refusal::BadRun("run needs an app".into())));
    };
    let Ok(app) = AppName::parse(app) else {
        return Some(Err(Refusal::BadRun(format!("'{app}' is not an app name"))));
    };
    let command = match rest.split_first() {
        Some((dashes, after)) if dashes == "--" => after,
        _ => rest,
    };
    if command.is_empty() {
        return Some(Err(Refusal::BadRun("run needs a command".into())));
    }
    Some(Ok(RunRequest {
        app,
        command: command.to_vec(),
    }))
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
    fn run_takes_an_app_and_a_command_with_or_without_dashes() {
        let run = |cmd: &str| parse_run(cmd.as_bytes());
        for cmd in ["run my-app -- echo 'a b'", "run my-app echo 'a b'"] {
            assert_eq!(
                run(cmd),
                Some(Ok(RunRequest {
                    app: AppName::parse("my-app").unwrap(),
                    command: vec!["echo".into(), "a b".into()],
                })),
                "{cmd}"
            );
        }
        assert_eq!(run("git-upload-pack 'my-app.git'"), None);
        assert_eq!(run("runner x"), None);
        for (cmd, why) in [
            ("run", "needs an app"),
            ("run my-app", "needs a command"),
            ("run my-app --", "needs a command"),
            ("run ../etc -- ls", "not an app name"),
        ] {
            match run(cmd) {
                Some(Err(Refusal::BadRun(m))) => assert!(m.contains(why), "{cmd}: {m}"),
                other => panic!("{cmd}: {other:?}"),
            }
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
