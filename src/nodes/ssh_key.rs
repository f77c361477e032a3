//! Scalefog's own SSH key for `ssh://user@host` nodes: one ed25519 key, made the first time it is
//! needed in the data dir's `nodes` directory (backups keep it). An admin adds its public half to
//! the node user's `~/.ssh/authorized_keys`; `GET /v1/cluster` and the Nodes page show it. The
//! node's host key is trusted on first use, in the `known_hosts` of the user Scalefog runs as,
//! as the `docker` CLI does over SSH.

use crate::domain::sshkey::ed25519_key_file;
use crate::domain::{Error, Result};
use russh::keys::ssh_key::PrivateKey;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "id_ed25519";

/// The key's file in `nodes_dir`, made when missing. Each connection to an `ssh://` node asks
/// for it: one that exists is handed to ssh as it is, not read and decoded again.
pub fn ensure(nodes_dir: &Path) -> Result<PathBuf> {
    let path = nodes_dir.join(FILE_NAME);
    if path.exists() {
        return Ok(path);
    }
    load(nodes_dir).map(|(path, _)| path)
}

/// The public line to add to a node's `authorized_keys`.
pub fn public_line(nodes_dir: &Path) -> Result<String> {
    load(nodes_dir)?
        .1
        .public_key()
        .to_openssh()
        .map_err(|e| Error::internal(format!("encoding the node SSH key: {e}")))
}

fn load(nodes_dir: &Path) -> Result<(PathBuf, PrivateKey)> {
    std::fs::create_dir_all(nodes_dir)
        .map_err(|e| Error::internal(format!("creating {}: {e}", nodes_dir.display())))?;
    let path = nodes_dir.join(FILE_NAME);
    let key = ed25519_key_file(&path, "node SSH key", "scalefog-nodes")?;
    Ok((path, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_its_public_line_is_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nodes = dir.path().join("nodes");
        let a = public_line(&nodes).unwrap();
        assert!(a.starts_with("ssh-ed25519 AAAA"), "{a}");
        assert!(a.ends_with(" scalefog-nodes"), "{a}");
        let path = nodes.join(FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(public_line(&nodes).unwrap(), a);
        let beside = std::fs::read_to_string(nodes.join("id_ed25519.pub")).unwrap();
        assert_eq!(beside.trim(), a);
    }
}
