//! LF peer-to-peer replication over libp2p: gossip announcements, record fetch by
//! hash, catch-up by set reconciliation, peer scoring and bans, and an in-process
//! multi-node test harness.
//!
//! Not built yet: this crate lands with the P2P issue (#4). It holds no code until then.
