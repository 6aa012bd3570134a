//! The LF record store: the append-only `records.lf` file, the SQLite index, the DAG
//! (links, dangling links, wanted hashes), incremental weights, local reputation and
//! queries.
//!
//! Not built yet: this crate lands with the node issue (#3). It holds no code until then.
