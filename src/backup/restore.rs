//! Restoring an archive into a data dir that no server uses and that holds nothing yet.

use super::{FORMAT, MANIFEST, Manifest, Paths, layout};
use crate::domain::{Error, Result};
use crate::store::{Slice, Store};
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// What a restore put back.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub users: u64,
    pub apps: u64,
    pub repositories: usize,
}

/// Restores `archive` into `paths` (the data dir and `tls_dir`). Refuses a data dir a server
/// uses or that holds anything, and an archive that is not a backup; on any failure what it
/// wrote is removed again, leaving the data dir as it found it.
pub fn restore(archive: &Path, paths: &Paths) -> Result<Restored> {
    refuse_unusable(paths)?;
    let file = File::open(archive).map_err(|e| {
        Error::invalid("archive", format!("cannot open {}: {e}", archive.display()))
    })?;
    let created_dir = !paths.data_dir.exists();
    create_private_dir(&paths.data_dir)?;
    let result = unpack(file, archive, paths).and_then(|manifest| finish(paths, manifest));
    if result.is_err() {
        empty_out(&paths.data_dir);
        if created_dir {
            let _ = std::fs::remove_dir(&paths.data_dir);
        }
        if !paths.tls_dir.starts_with(&paths.data_dir) {
            empty_out(&paths.tls_dir);
        }
    }
    result
}

/// A data dir a server uses (its control socket answers, or its store is locked) or that holds
/// anything is refused: a restore never mixes with or replaces what is there.
fn refuse_unusable(paths: &Paths) -> Result<()> {
    let dir = &paths.data_dir;
    if std::os::unix::net::UnixStream::connect(dir.join(layout::CONTROL_SOCKET)).is_ok() {
        return Err(Error::Conflict(format!(
            "a scalefog server is running on {}: restore into a new, empty data dir",
            dir.display()
        )));
    }
    if let Ok(store) = File::open(dir.join(layout::STORE))
        && let Err(std::fs::TryLockError::WouldBlock) = store.try_lock()
    {
        return Err(Error::Conflict(format!(
            "the store in {} is in use by a running scalefog: restore into a new, empty data dir",
            dir.display()
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Error::invalid(
            "data_dir",
            format!("{} is not a directory", dir.display()),
        ));
    }
    for (what, d) in [("data dir", dir), ("tls_dir", &paths.tls_dir)] {
        if let Some(first) = first_entry(d) {
            return Err(Error::Conflict(format!(
                "the {what} {} is not empty (it holds {first}): restore into a new, empty one",
                d.display()
            )));
        }
    }
    Ok(())
}

fn first_entry(dir: &Path) -> Option<String> {
    let mut entries = std::fs::read_dir(dir).ok()?;
    let e = entries.next()?.ok()?;
    Some(e.file_name().to_string_lossy().into_owned())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| super::io("creating", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| super::io("chmod", dir, e))
}

/// Removes what `dir` holds (it was empty before the restore).
fn empty_out(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Unpacks every entry where it belongs, after checking the manifest and each entry's path.
fn unpack(file: File, archive: &Path, paths: &Paths) -> Result<Manifest> {
    let bad = |why: String| {
        Error::invalid(
            "archive",
            format!(
                "{} is not a usable Scalefog backup: {why}",
                archive.display()
            ),
        )
    };
    let unreadable = |e: std::io::Error| format!("it is damaged or not a tar + zstd archive ({e})");
    let decoder = zstd::Decoder::new(file).map_err(|e| bad(unreadable(e)))?;
    let mut tar = tar::Archive::new(decoder);
    tar.set_preserve_mtime(true);
    let mut entries = tar.entries().map_err(|e| bad(unreadable(e)))?;
    let mut first = match entries.next() {
        Some(Ok(e)) => e,
        Some(Err(e)) => return Err(bad(unreadable(e))),
        None => return Err(bad("it is empty".into())),
    };
    if first.path().ok().as_deref() != Some(Path::new(MANIFEST)) {
        return Err(bad(format!("it does not start with {MANIFEST}")));
    }
    let mut text = String::new();
    (&mut first)
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| bad(format!("its {MANIFEST} is invalid: {e}")))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "it has format {} and this scalefog {} reads format {FORMAT}",
            manifest.format,
            env!("CARGO_PKG_VERSION")
        )));
    }
    let mut has_store = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(unreadable(e)))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(target) = place(&path, paths) else {
            return Err(bad(format!("unexpected entry {}", path.display())));
        };
        has_store |= target == paths.data_dir.join(layout::STORE);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| super::io("creating", &target, e))?
            }
            tar::EntryType::Regular => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| super::io("creating", parent, e))?;
                }
                entry
                    .unpack(&target)
                    .map_err(|e| bad(format!("cannot unpack {} ({e})", path.display())))?;
            }
            other => {
                return Err(bad(format!(
                    "entry {} is a {other:?}, not a file or directory",
                    path.display()
                )));
            }
        }
    }
    if !has_store {
        return Err(bad("it holds no store (is it cut short?)".into()));
    }
    Ok(manifest)
}

/// Where an archive entry goes: `data/…` under the data dir (only what the layout names),
/// `certs/…` under `tls_dir`; `None` for anything else, or a path that climbs.
fn place(path: &Path, paths: &Paths) -> Option<PathBuf> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let (root, rest) = parts.split_first()?;
    let base = match *root {
        "data" => {
            let (top, below) = rest.split_first()?;
            let known = (*top == layout::STORE || layout::KEPT_FILES.contains(top))
                && below.is_empty()
                || *top == layout::REPOS
                || *top == layout::NODES;
            if !known {
                return None;
            }
            &paths.data_dir
        }
        c if c == layout::CERTS => &paths.tls_dir,
        _ => return None,
    };
    Some(rest.iter().fold(base.clone(), |p, part| p.join(part)))
}

/// Puts quarantined objects back into their repositories, then opens the store (which checks
/// it and brings its schema up to date) to count what came back.
fn finish(paths: &Paths, manifest: Manifest) -> Result<Restored> {
    let repos = paths.data_dir.join(layout::REPOS);
    let mut repositories = 0;
    for name in super::sorted_names(&repos).map_err(|e| super::io("listing", &repos, e))? {
        let objects = repos.join(&name).join("objects");
        if !name.ends_with(".git") {
            continue;
        }
        repositories += 1;
        for tmp in super::sorted_names(&objects).map_err(|e| super::io("listing", &objects, e))? {
            if tmp.starts_with("tmp_objdir") {
                let dir = objects.join(&tmp);
                merge_objects(&dir, &objects).map_err(|e| super::io("restoring", &dir, e))?;
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    let store = Store::open(&paths.data_dir.join(layout::STORE)).map_err(|e| {
        Error::invalid(
            "archive",
            format!("the backup's store cannot be opened: {e}"),
        )
    })?;
    let (users, apps) = store.read(|r| {
        Ok((
            r.user_count()?,
            r.instances_where(Slice::ALL, |_| true)?.total,
        ))
    })?;
    Ok(Restored {
        manifest,
        users,
        apps,
        repositories,
    })
}

/// Moves the objects under a quarantine directory `from` into `objects` (those not there yet;
/// `tmp_*` files are packs whose transfer was cut and are left out).
fn merge_objects(from: &Path, objects: &Path) -> std::io::Result<()> {
    for name in super::sorted_names(from)? {
        let src = from.join(&name);
        let dst = objects.join(&name);
        if src.is_dir() {
            std::fs::create_dir_all(&dst)?;
            merge_objects(&src, &dst)?;
        } else if !name.starts_with("tmp_") && !dst.exists() {
            std::fs::rename(&src, &dst)?;
        }
    }
    Ok(())
}
