//! LFFS, the LF filesystem: directories and files as LF records, big files cut by
//! content (FastCDC) into SHA-256-addressed, deduplicated chunks.
//!
//! The core ([`Filesystem`]) knows LF only through the [`Store`] trait: the daemon
//! implements it over the node's record store and a background commit queue; tests use
//! [`MemStore`]. The FUSE adapter (`fuse.rs`) is a thin layer that maps each request
//! to one core call and one reply. `SEMANTICS.md` beside this crate is the contract.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod conflicts;
mod content;
mod error;
mod fs;
mod fuse;
mod fuse_metrics;
mod fuse_workers;
pub mod layout;
mod store;
mod untrusted;

pub use error::FsError;
pub use fs::{Attr, Contested, DirEntry, Filesystem, FsConfig, Kind, Location, Unsaved};
pub use fuse::{FuseAdapter, invalidate_changes, mount_options};
pub use store::{MemStore, Put, Store, StoreError, Version};
