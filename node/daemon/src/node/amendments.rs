//! Amendable genesis: the network configuration over time.
//!
//! The genesis owner amends the configuration with a genesis-type record whose value is
//! the whole new configuration (JSON, as in the first genesis record). An amendment may
//! differ from the genesis configuration only in the fields the genesis configuration
//! lists in `amendable_fields`, and that list itself never changes, so whether an
//! amendment is valid does not depend on which others a node has seen: it is checked
//! when the record arrives ([`check`]).
//!
//! Every node applies the amendments it holds in one defined order, by (timestamp,
//! record hash), so nodes holding the same records agree on the configuration. An
//! amendment takes effect for records timestamped at or after it: a record is judged
//! by [`ConfigHistory::at`] its own timestamp, so the order in which records and
//! amendments arrive does not change the verdict.

use std::collections::HashSet;
use std::sync::Arc;

use lf_record::{NetworkConfig, Record, RecordHash, RecordType};

/// The genesis configuration and the amendments applied to it, in order.
#[derive(Debug, Clone)]
pub struct ConfigHistory {
    /// (effective from, configuration), ascending; the first is the genesis one (from 0).
    steps: Vec<(u64, Arc<NetworkConfig>)>,
}

/// Why a genesis-type record is not a valid amendment.
pub fn check(genesis: &NetworkConfig, r: &Record) -> Result<NetworkConfig, String> {
    let value = r
        .value(None)
        .map_err(|e| format!("amendment value unreadable: {e}"))?;
    if value.is_empty() {
        return Err("an amendment record must carry the new configuration".into());
    }
    let next = NetworkConfig::from_json(&value).map_err(|e| e.to_string())?;
    genesis.amend(&next).map_err(|e| e.to_string())
}

impl ConfigHistory {
    /// Only the genesis configuration.
    pub fn new(genesis: NetworkConfig) -> Self {
        ConfigHistory {
            steps: vec![(0, Arc::new(genesis))],
        }
    }

    /// Rebuilds the history from the genesis configuration and the genesis-type records
    /// held (in any order; the records of the genesis file itself, `initial`, are
    /// skipped). Invalid amendments are skipped with a warning (they are refused on
    /// arrival, so only a store written by an older version could hold one).
    pub fn build(
        genesis: &NetworkConfig,
        initial: &HashSet<RecordHash>,
        records: &[Record],
    ) -> Self {
        let mut amendments: Vec<&Record> = records
            .iter()
            .filter(|r| r.record_type() == RecordType::Genesis && !initial.contains(&r.hash()))
            .collect();
        amendments.sort_by_key(|r| (r.timestamp(), r.hash()));
        let mut h = ConfigHistory::new(genesis.clone());
        for r in amendments {
            match check(genesis, r) {
                Ok(c) => h.steps.push((r.timestamp(), Arc::new(c))),
                Err(e) => tracing::warn!(hash = %r.hash(), "genesis amendment skipped: {e}"),
            }
        }
        h
    }

    /// The configuration in force now (after every amendment held).
    pub fn current(&self) -> Arc<NetworkConfig> {
        self.steps.last().expect("genesis step").1.clone()
    }

    /// The configuration that judges a record timestamped `ts`.
    pub fn at(&self, ts: u64) -> Arc<NetworkConfig> {
        let i = self.steps.partition_point(|(from, _)| *from <= ts);
        self.steps[i.max(1) - 1].1.clone()
    }

    /// Amendments applied.
    pub fn amendments(&self) -> usize {
        self.steps.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lf_record::{NetworkId, OwnerSecret, RecordBuilder};

    fn genesis() -> NetworkConfig {
        NetworkConfig {
            format: 1,
            id: NetworkId([7; 32]),
            name: "net".into(),
            contact: String::new(),
            comment: String::new(),
            amendable_fields: vec!["name".into(), "work_difficulty".into()],
            auth_certificates: vec![],
            auth_required: false,
            record_min_links: 1,
            record_max_value_size: 1024,
            record_max_time_drift: 60,
            work_difficulty: 0,
            bootstrap_peers: vec![],
            mdns: true,
        }
    }

    fn amendment(c: &NetworkConfig, ts: u64) -> Record {
        let o = OwnerSecret::from_scalar_bytes(&[3; 48]).unwrap();
        RecordBuilder::new(RecordType::Genesis, ts)
            .value(c.to_json())
            .build(&o.public())
            .unwrap()
            .sign_without_work(&o)
            .unwrap()
    }

    #[test]
    fn amendments_apply_in_timestamp_order_whatever_the_arrival_order() {
        let g = genesis();
        let mut a = g.clone();
        a.name = "first".into();
        let mut b = g.clone();
        b.name = "second".into();
        b.work_difficulty = 5;
        let (ra, rb) = (amendment(&a, 100), amendment(&b, 200));
        let h1 = ConfigHistory::build(&g, &HashSet::new(), &[ra.clone(), rb.clone()]);
        let h2 = ConfigHistory::build(&g, &HashSet::new(), &[rb, ra]);
        for h in [&h1, &h2] {
            assert_eq!(h.amendments(), 2);
            assert_eq!(h.current().name, "second");
            assert_eq!(h.at(50).name, "net");
            assert_eq!(h.at(100).name, "first");
            assert_eq!(h.at(199).work_difficulty, 0);
            assert_eq!(h.at(200).work_difficulty, 5);
        }
    }

    #[test]
    fn invalid_amendments_are_refused_and_skipped() {
        let g = genesis();
        let mut bad = g.clone();
        bad.record_max_value_size = 9;
        let r = amendment(&bad, 100);
        let e = check(&g, &r).unwrap_err();
        assert!(e.contains("record_max_value_size"), "{e}");
        let h = ConfigHistory::build(&g, &HashSet::new(), &[r]);
        assert_eq!(h.amendments(), 0);
        // The genesis file's own records are not amendments.
        let first = amendment(&g, 1);
        let initial = HashSet::from([first.hash()]);
        assert_eq!(ConfigHistory::build(&g, &initial, &[first]).amendments(), 0);
    }
}
