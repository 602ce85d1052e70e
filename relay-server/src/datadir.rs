//! The data directory: created private to the relay's user, and held by
//! one relay at a time.
//!
//! Two relays on one database would each believe its rooms' sequence
//! numbers are its own and overwrite or refuse each other's updates, so
//! the relay takes an exclusive lock on `neuroplex.lock` for as long as its
//! storage writer runs, and a second one exits at once naming that file.
//! The lock is advisory (`flock`), released by the kernel if the process
//! dies, so a crash never leaves a stale lock behind.
//!
//! Rooms' documents are private data: the directory is created `0700` and
//! the database `0600`; SQLite gives its `-wal` and `-shm` files the
//! database's mode. An existing directory keeps its mode (the operator may
//! have chosen it); existing files are narrowed to `0600`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::storage::StorageError;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "neuroplex.lock";

/// The database's file name in the data directory.
pub const DATABASE_FILE: &str = "neuroplex.sqlite3";

/// An exclusive hold on a data directory; released when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` (private) if missing, takes its lock, and makes sure the
/// database file exists with private permissions. Returns the lock and the
/// database's path.
pub fn prepare(dir: &Path) -> Result<(DataDirLock, PathBuf), StorageError> {
    create_private_dir(dir)
        .map_err(|e| StorageError(format!("cannot create {}: {e}", dir.display())))?;
    let lock_path = dir.join(LOCK_FILE);
    let file = private_file(&lock_path)
        .map_err(|e| StorageError(format!("cannot open {}: {e}", lock_path.display())))?;
    lock_exclusive(&file).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::WouldBlock {
            format!(
                "another relay is using the data directory {}",
                dir.display()
            )
        } else {
            e.to_string()
        };
        StorageError(format!("cannot lock {}: {why}", lock_path.display()))
    })?;
    let db = dir.join(DATABASE_FILE);
    private_file(&db).map_err(|e| StorageError(format!("cannot open {}: {e}", db.display())))?;
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("{DATABASE_FILE}{suffix}"));
        if side.exists() {
            narrow(&side)
                .map_err(|e| StorageError(format!("cannot chmod {}: {e}", side.display())))?;
        }
    }
    Ok((
        DataDirLock {
            _file: file,
            path: lock_path,
        },
        db,
    ))
}

/// Takes `file`'s exclusive lock without waiting (`WouldBlock` if held).
#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

/// No lock where `flock` is missing: one relay per directory is then the
/// operator's to ensure.
#[cfg(not(unix))]
fn lock_exclusive(_: &File) -> std::io::Result<()> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens (creating `0600` if missing) a file for writing, narrowing an
/// existing one to `0600`.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    narrow(path)?;
    Ok(file)
}

#[cfg(unix)]
fn narrow(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn narrow(_: &Path) -> std::io::Result<()> {
    Ok(())
}
