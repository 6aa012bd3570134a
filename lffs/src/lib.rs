//! LFFS, the LF filesystem: directories and files as LF records, big files cut by
//! content (FastCDC) into SHA-256-addressed chunks, over a `Store` trait so that the
//! core never depends on `lf-store` or `lf-p2p`.
//!
//! Not built yet: this crate lands with the LFFS issue (#5). It holds no code until then.
