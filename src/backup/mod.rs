//! Backups of everything a server keeps, as one archive (tar compressed with zstd), and restoring
//! one into an empty data dir.
//!
//! An archive holds a manifest first (`scalefog-backup.json`), then `data/…` (a snapshot of the
//! store, the files [`layout::KEPT_FILES`] names, the apps' repositories, `nodes/`: the nodes'
//! TLS client files and SSH key) and `certs/…` (the
//! contents of `tls_dir`). It is written while the server runs, without stopping pushes:
//! - the store is copied inside one read transaction (a snapshot; writers go on);
//! - each repository is read refs first, then objects. git writes objects before the refs that
//!   name them and never changes an object, so every ref read names objects that are still there
//!   when they are read; a push in flight keeps its objects in a quarantine directory until its
//!   pre-receive hook accepts it, so those are read too (a release the store snapshot already
//!   holds may still be in quarantine), and restore moves them back in;
//! - the store is read before the repositories, so every release it names has its commit in them.
//!
//! After a restore the next start reconciles as after any stop, and rebuilds a release's image
//! from its commit when the image is gone (see `deploy::rebuild`).

pub mod layout;
mod restore;
pub mod schedule;

pub use restore::{Restored, restore};

use crate::domain::{Error, Result};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The first entry of every archive.
pub const MANIFEST: &str = "scalefog-backup.json";
/// Bumped when the layout of archives changes; restore refuses formats it does not know.
pub const FORMAT: u32 = 1;
/// zstd's level: 3 (its default) packs git objects (already deflated) and the store as well as
/// levels up to 9 do here, at a fraction of their time.
const ZSTD_LEVEL: i32 = 3;

/// Where the things a backup holds live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub tls_dir: PathBuf,
}

/// What an archive says about itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The scalefog version that wrote it.
    pub scalefog_version: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub repositories: usize,
    pub bytes: u64,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes a backup of everything to `dest`, a new file (never overwritten). Blocking: call it
/// off the async workers. The archive appears whole or not at all: it is written aside and
/// renamed into place.
pub fn create(store: &Store, paths: &Paths, dest: &Path) -> Result<Written> {
    if dest.exists() {
        return Err(Error::invalid(
            "path",
            format!("{} already exists", dest.display()),
        ));
    }
    let partial = with_suffix(dest, ".partial");
    let snapshot = with_suffix(dest, ".store.tmp");
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(&snapshot);
    let written = write_archive(store, paths, &partial, &snapshot);
    let _ = std::fs::remove_file(&snapshot);
    let repositories = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, dest).map_err(|e| io("renaming into place", dest, e))?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(Written {
        repositories,
        bytes,
    })
}

fn write_archive(store: &Store, paths: &Paths, out: &Path, snapshot: &Path) -> Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    // First, so that every release it names has its commit in the repositories read after.
    store.backup_to(snapshot)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        // It holds every secret of the server.
        .mode(0o600)
        .open(out)
        .map_err(|e| io("creating", out, e))?;
    let encoder = zstd::Encoder::new(BufWriter::with_capacity(256 * 1024, file), ZSTD_LEVEL)
        .map_err(|e| io("compressing into", out, e))?;
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    let err = |e: std::io::Error| io("writing", out, e);
    let manifest = serde_json::to_vec_pretty(&Manifest {
        format: FORMAT,
        scalefog_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: crate::domain::now(),
    })
    .map_err(|e| Error::internal(format!("manifest: {e}")))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(crate::domain::now().max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, MANIFEST, manifest.as_slice())
        .map_err(err)?;
    append_file(&mut tar, snapshot, &format!("data/{}", layout::STORE)).map_err(err)?;
    for name in layout::KEPT_FILES {
        append_file(
            &mut tar,
            &paths.data_dir.join(name),
            &format!("data/{name}"),
        )
        .map_err(err)?;
    }
    let repos = paths.data_dir.join(layout::REPOS);
    let mut repositories = 0;
    for name in sorted_names(&repos).map_err(|e| io("listing", &repos, e))? {
        let dir = repos.join(&name);
        if !name.ends_with(".git") || !dir.is_dir() {
            continue;
        }
        append_repository(&mut tar, &dir, &format!("data/{}/{name}", layout::REPOS))
            .map_err(|e| io("archiving", &dir, e))?;
        repositories += 1;
    }
    let nodes = paths.data_dir.join(layout::NODES);
    append_tree(
        &mut tar,
        &nodes,
        &format!("data/{}", layout::NODES),
        &|_| true,
    )
    .map_err(|e| io("archiving", &nodes, e))?;
    if paths.tls_dir.is_dir() {
        append_tree(&mut tar, &paths.tls_dir, layout::CERTS, &|_| true)
            .map_err(|e| io("archiving", &paths.tls_dir, e))?;
    }
    let encoder = tar.into_inner().map_err(err)?;
    let mut buffered = encoder.finish().map_err(err)?;
    buffered.flush().map_err(err)?;
    let file = buffered
        .into_inner()
        .map_err(|e| io("writing", out, e.into_error()))?;
    file.sync_all().map_err(err)?;
    Ok(repositories)
}

/// The names in `dir`, sorted; none when it does not exist.
fn sorted_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                names.push(e?.file_name().to_string_lossy().into_owned());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    Ok(names)
}

/// Appends the file at `path` as `name`; a file that is gone (removed since it was listed, or
/// never written, like `secrets.key` before encryption is used) is skipped: `Ok(false)`.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
) -> std::io::Result<bool> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // The metadata of the file opened, not of the path: a ref replaced meanwhile (git renames
    // the new one over it) is read whole, old or new.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(false);
    }
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    tar.append_data(&mut header, name, &mut file)?;
    Ok(true)
}

/// Appends the directory `dir` as `name` and what it holds for which `take(relative path)` is
/// true, directories included (an empty `refs/` still makes a repository). Entries that vanish
/// while it is read are skipped.
fn append_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
    take: &dyn Fn(&str) -> bool,
) -> std::io::Result<()> {
    append_tree_at(tar, dir, name, "", take)
}

fn append_tree_at<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
    rel: &str,
    take: &dyn Fn(&str) -> bool,
) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    append_dir(tar, &meta, name)?;
    for child in sorted_names(dir)? {
        let child_rel = if rel.is_empty() {
            child.clone()
        } else {
            format!("{rel}/{child}")
        };
        if !take(&child_rel) {
            continue;
        }
        let path = dir.join(&child);
        let child_name = format!("{name}/{child}");
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => append_tree_at(tar, &path, &child_name, &child_rel, take)?,
            Ok(m) if m.is_file() => {
                append_file(tar, &path, &child_name)?;
            }
            // Symlinks, sockets: nothing git or the server keeps.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends one bare repository, in the order that makes the copy consistent while pushes run
/// (see the module docs): everything but objects (loose refs before `packed-refs`, as git reads
/// them), then quarantined objects, then loose objects, then packs.
fn append_repository<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
) -> std::io::Result<()> {
    // Lock files are transient (a ref being written), never state.
    let not_lock = |rel: &str| !rel.ends_with(".lock");
    append_tree(tar, dir, name, &|rel| {
        not_lock(rel) && rel != "objects" && rel != "packed-refs"
    })?;
    append_file(
        tar,
        &dir.join("packed-refs"),
        &format!("{name}/packed-refs"),
    )?;
    let objects = dir.join("objects");
    let objects_name = format!("{name}/objects");
    append_tree(tar, &objects, &objects_name, &|rel| {
        // Quarantines first: a push accepted meanwhile moves its objects out, into the loose
        // objects and packs read next.
        rel.starts_with("tmp_objdir") && not_lock(rel)
    })?;
    append_tree(tar, &objects, &objects_name, &|rel| {
        !rel.starts_with("tmp_objdir")
            && rel != "pack"
            && !rel.starts_with("pack/")
            && not_lock(rel)
    })?;
    append_packs(tar, &objects.join("pack"), &format!("{objects_name}/pack"))
}

fn append_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    meta: &std::fs::Metadata,
    name: &str,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_size(0);
    tar.append_data(&mut header, format!("{name}/"), std::io::empty())
}

/// Appends a repository's packs. A repack meanwhile writes a new pack before deleting the ones
/// it replaces, so when a listed file is gone the directory is listed again for the new ones.
fn append_packs<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    name: &str,
) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) => append_dir(tar, &meta, name)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut done = std::collections::HashSet::new();
    for _ in 0..10 {
        let mut vanished = false;
        for file in sorted_names(dir)? {
            if file.ends_with(".lock") || file.starts_with("tmp_") || done.contains(&file) {
                continue;
            }
            if append_file(tar, &dir.join(&file), &format!("{name}/{file}"))? {
                done.insert(file);
            } else {
                vanished = true;
            }
        }
        if !vanished {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
