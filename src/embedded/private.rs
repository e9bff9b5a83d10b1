//! The data directory and the database file are private to the gateway's user: they hold every
//! event body, and the dedup records say which events were seen.
//!
//! What the gateway creates it creates private (directory 0700, file 0600, whatever the umask).
//! A directory the operator made is theirs to set: it is only warned about when group or world
//! can reach it. The database file is always the gateway's and is tightened to 0600.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Permission bits for group and others.
const GROUP_OTHER: u32 = 0o077;

/// Creates `dir` (and missing parents) 0700, or warns when an existing one is open to others.
pub(super) fn prepare_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & GROUP_OTHER != 0 {
                tracing::warn!(
                    path = %dir.display(),
                    mode = format!("{mode:o}"),
                    "the data directory is accessible to group or others; chmod 700 it"
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            // The umask cannot widen 0700, but it can narrow it below what we need.
            std::fs::set_permissions(dir, Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

/// Makes sure `file` exists with mode 0600 before the database opens it, so it is never
/// readable by others, not even for a moment; an older, looser file is tightened.
pub(super) fn prepare_file(file: &Path) -> io::Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file)?;
    let mode = f.metadata()?.permissions().mode() & 0o777;
    if mode != 0o600 {
        tracing::info!(path = %file.display(), mode = format!("{mode:o}"), "database file set to mode 600");
        f.set_permissions(Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_directories_are_0700_and_existing_ones_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        prepare_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&open).unwrap();
        assert_eq!(
            mode(&open),
            0o755,
            "the operator's directory is only warned about"
        );
    }

    #[test]
    fn the_file_is_created_0600_and_a_loose_one_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("db");
        prepare_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::write(&file, b"keep").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        prepare_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"keep", "contents untouched");
    }
}
