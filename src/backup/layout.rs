//! What a data dir holds, entry by entry, and what a backup does with each. Every file the server
//! writes at the top of the data dir is named here, so that a new one has to be placed: kept by
//! backups, or knowingly left out (a unit test checks the names against the code that writes
//! them; the backup end-to-end test checks a served data dir holds nothing else).

/// The store. Archived as a snapshot taken in one read transaction, never copied as a file
/// (a copy of a file being written is not a consistent store).
pub const STORE: &str = "scalefog.redb";

/// The apps' bare repositories, `<app>.git` each: the source every release's image is rebuilt
/// from after a restore.
pub const REPOS: &str = "repos";

/// Files kept as they are: the keys and ids without which the restored server would be another
/// server.
pub const KEPT_FILES: &[&str] = &[
    // Signs the JWTs `/v1/auth/exchange` hands out: without it every issued JWT is void.
    "jwt.secret",
    // Seals config vars at rest: without it the stored values cannot be read.
    "secrets.key",
    // The SSH host key: users' `known_hosts` keep working after a restore.
    "ssh_host_ed25519_key",
    // Its public half, for operators (ssh-keygen -lf) and known_hosts.
    "ssh_host_ed25519_key.pub",
    // Labels every Docker object of this installation; the restored server owns them.
    "install.id",
    // The ACME account (its key): renewals continue with the same account.
    "acme-account.json",
];

/// The nodes' TLS client files and Scalefog's node SSH key: archived whole, so a restored server
/// still reaches its nodes.
pub const NODES: &str = "nodes";

/// The default `tls_dir` (certificates: `<name>/fullchain.pem` + `<name>/privkey.pem`). Archived
/// from wherever `tls_dir` is, under this name, and restored into the `tls_dir` of the settings
/// the restore runs with.
pub const CERTS: &str = "certs";

/// The running server's sockets: never archived.
pub const CONTROL_SOCKET: &str = "control.sock";
pub const HOOKS_SOCKET: &str = "hooks.sock";

/// Whether a backup knows what the data dir entry `name` is (kept or deliberately skipped).
pub fn known(name: &str) -> bool {
    [STORE, REPOS, NODES, CERTS, CONTROL_SOCKET, HOOKS_SOCKET].contains(&name)
        || KEPT_FILES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SettingsArgs};

    fn file_name(p: std::path::PathBuf) -> String {
        p.file_name().unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn the_layout_names_the_files_the_server_writes() {
        let config = Config::load(&SettingsArgs::default()).unwrap();
        assert_eq!(file_name(config.store_path()), STORE);
        assert_eq!(file_name(config.tls_dir.clone()), CERTS);
        assert_eq!(file_name(config.nodes_dir()), NODES);
        assert!(KEPT_FILES.contains(&file_name(config.jwt_secret_path()).as_str()));
        assert!(KEPT_FILES.contains(&crate::ssh::hostkey::FILE_NAME));
        assert_eq!(
            file_name(crate::control::socket_path(std::path::Path::new("/d"))),
            CONTROL_SOCKET
        );
        let dir = tempfile::tempdir().unwrap();
        let id = crate::deploy::install_id(dir.path()).unwrap();
        assert!(!id.is_empty());
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(KEPT_FILES.contains(&name.as_str()), "{name}");
        }
    }
}
