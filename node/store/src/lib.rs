//! The LF record store: the append-only `records.lf` file (source of truth), the SQLite
//! index `node.db`, the in-memory DAG with incremental weights, local reputation and
//! queries.
//!
//! The write path and its durability guarantees are the numbered steps in this crate's
//! `README.md`. The API is synchronous and internally locked; async callers reach it
//! through `spawn_blocking`. Records handed to [`Store::put`] must already be verified
//! (signature, work, limits): the store checks only what needs the store.
#![forbid(unsafe_code)]

mod certs;
mod changes;
mod collisions;
mod dag;
mod error;
mod query;
mod records_file;
mod reputation;
mod schema;
mod store;

pub use certs::{Certification, UNCERTIFIED_TRUST_FACTOR};
pub use changes::Stored;
pub use collisions::{Collision, Collisions, WinReason};
pub use dag::{WEIGHT_HORIZON, WEIGHT_VISIT_CAP};
pub use error::StoreError;
pub use query::{KeyRange, Query, QueryPage, QueryResult, SortOrder};
pub use records_file::{FRAME_HEADER, RecordsFile};
pub use reputation::{REPUTATION_COLLISION, REPUTATION_DEFAULT, REPUTATION_TEMPORAL};
pub use store::{PutOutcome, RecordInfo, Store, StoreConfig, StoreStats};
