//! LFFS on the node: `mounts.yaml` (`mounts`), one FUSE session per mount
//! (`mount_manager`), the `lffs::Store` over the record store with the overlay of
//! unpublished writes (`store`), and the commit path: the journal that makes a write
//! durable before `close`/`fsync` returns (`journal`) and the queue that builds, pays
//! for and stores records in the background (`commit_queue`).

pub mod commit_queue;
pub mod journal;
pub mod mount_manager;
pub mod mounts;
pub mod store;
