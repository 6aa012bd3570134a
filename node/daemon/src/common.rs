//! What several parts of the binary share and that knows no running node: the HTTP
//! API's JSON shapes (server and client), certificates (issuing, the registry, limbo),
//! the clock, the number of cores, the home directory and its secrets, the capped log file, the metrics
//! recorder, the embedded default network, background CPU priority, OS randomness,
//! the fast signer of the node's own records, and the shape of long-lived background work (`workers`).
//! Nothing here imports another part of the daemon (ARCHITECTURE.md, "Modules of the
//! daemon").

pub mod api_json;
pub mod certs;
pub mod clock;
pub mod cores;
pub mod home;
pub mod logfile;
pub mod metrics;
pub mod network;
pub mod priority;
pub mod random;
pub mod signer;
pub mod workers;
