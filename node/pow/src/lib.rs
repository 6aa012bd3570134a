//! LF proof of work (being written).
