//! The embedded default network: genesis records compiled into the binary, used by
//! nodes whose home holds no `genesis.lf`.
//!
//! `default-genesis.lf` was made once with `lf makegenesis --yes --name "LF Default"
//! --contact https://example.invalid/lf --comment "Default public LF network"
//! --min-links 2 --max-value-size 1024 --max-time-drift 60` at the default difficulty;
//! its secret key is not kept, so the default network cannot be amended.

use lf_record::{NetworkConfig, Record};

/// The default network's genesis file.
pub const DEFAULT_GENESIS: &[u8] = include_bytes!("../../default-genesis.lf");

/// Parses and verifies the embedded default network.
pub fn default_network() -> anyhow::Result<(NetworkConfig, Vec<Record>)> {
    Ok(lf_record::parse_records(DEFAULT_GENESIS)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_default_network_is_valid() {
        let (config, records) = super::default_network().unwrap();
        assert_eq!(config.name, "LF Default");
        assert_eq!(records.len(), config.record_min_links as usize);
        assert_eq!(
            config.work_difficulty,
            lf_record::lf_pow::DEFAULT_DIFFICULTY
        );
    }
}
