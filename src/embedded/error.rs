//! Failures of the embedded store, and which of them call for reopening the database.

use std::sync::Arc;

/// Failure of the embedded store. Cheap to clone: one commit error is sent to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The data directory could not be created.
    #[error("data directory: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// redb failed: I/O, corruption, or a full disk.
    #[error("database: {0}")]
    Db(#[source] Arc<redb::Error>),
    /// A stored record could not be decoded (or a record could not be encoded).
    #[error("record encoding: {0}")]
    Codec(#[from] postcard::Error),
    /// The writer has more work waiting than it accepts: shed load and ask for a retry.
    #[error("storage writer is saturated")]
    Busy,
    /// The writer thread has stopped (closed, or it died).
    #[error("storage writer is closed")]
    Closed,
    /// A write failed on the file (a full disk): writes are refused until the database has
    /// been reopened and commits again.
    #[error("storage is failing and recovering")]
    Unavailable,
}

impl StorageError {
    /// Whether redb failed on the file itself, after which the database must be reopened.
    pub(crate) fn is_io(&self) -> bool {
        let Self::Db(e) = self else { return false };
        matches!(
            **e,
            redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                Self::Db(Arc::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
