//! Filesystem errors and the one place they become errno values.

use crate::store::StoreError;

/// What a filesystem operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// No such entry.
    #[error("no such file or directory")]
    NotFound,
    /// The name exists.
    #[error("file exists")]
    Exists,
    /// Not a directory.
    #[error("not a directory")]
    NotDir,
    /// Is a directory.
    #[error("is a directory")]
    IsDir,
    /// Directory not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// The entry belongs to another owner (or the mount is read-only).
    #[error("permission denied: owned by another owner")]
    Access,
    /// Operation not permitted (chown, for example: ownership is the signing key).
    #[error("operation not permitted")]
    Perm,
    /// Name is empty, `.`/`..`, reserved, or holds `/` or NUL.
    #[error("invalid name")]
    InvalidName,
    /// A name over 255 bytes.
    #[error("file name too long")]
    NameTooLong,
    /// File larger than the mount's `max_file_size`.
    #[error("file too large")]
    TooBig,
    /// Read-only mount.
    #[error("read-only filesystem")]
    ReadOnly,
    /// Unknown inode or handle (stale).
    #[error("stale inode or handle")]
    Stale,
    /// Stored data does not decode.
    #[error("corrupt entry: {0}")]
    Corrupt(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The mount's bound on written, uncommitted data of open files is reached.
    #[error("no space for more unflushed data on this mount")]
    NoSpace,
    /// Not supported (hard links, device nodes).
    #[error("not supported")]
    NotSupported,
}

impl FsError {
    /// The errno for this error (the table in SEMANTICS.md).
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => 2,                    // ENOENT
            FsError::Exists => 17,                     // EEXIST
            FsError::NotDir => 20,                     // ENOTDIR
            FsError::IsDir => 21,                      // EISDIR
            FsError::NotEmpty => 39,                   // ENOTEMPTY
            FsError::Access => 13,                     // EACCES
            FsError::Perm => 1,                        // EPERM
            FsError::InvalidName => 22,                // EINVAL
            FsError::NameTooLong => 36,                // ENAMETOOLONG
            FsError::TooBig => 27,                     // EFBIG
            FsError::ReadOnly => 30,                   // EROFS
            FsError::Stale => 116,                     // ESTALE
            FsError::Corrupt(_) => 5,                  // EIO
            FsError::Store(StoreError::Full(_)) => 28, // ENOSPC
            FsError::Store(_) => 5,                    // EIO
            FsError::NoSpace => 28,                    // ENOSPC
            FsError::NotSupported => 95,               // EOPNOTSUPP
        }
    }

    /// Whether this is worth an error log line (EIO) rather than debug.
    pub fn is_serious(&self) -> bool {
        matches!(
            self,
            FsError::Corrupt(_) | FsError::Store(StoreError::Failed(_))
        )
    }
}
