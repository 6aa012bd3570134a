//! Store errors.

use std::path::{Path, PathBuf};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SQLite index failed.
    #[error("index database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The files contradict each other in a way recovery cannot mend.
    #[error("store is inconsistent: {0}")]
    Corrupt(String),
    /// A stored record no longer parses.
    #[error("stored record is malformed: {0}")]
    Record(#[from] lf_record::RecordError),
    /// A query matched more records than its `max_rows` allows.
    #[error(
        "the query matches more than {0} records in one page: narrow it (ranges, owners, \
         time range) or ask for fewer result sets per page"
    )]
    TooManyRows(usize),
    /// Another process holds the store.
    #[error("store in {} is in use by another process", .0.display())]
    Locked(PathBuf),
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
