//! The in-memory DAG of fully synchronized records: parents, how often each record is
//! linked, tips, and weights.
//!
//! **Weight.** A record's weight is its own score plus the scores of the distinct
//! records that link to it, transitively, up to [`WEIGHT_HORIZON`] links away. When a
//! record becomes fully synchronized its score is added to each distinct ancestor
//! within the horizon (breadth-first, visiting at most [`WEIGHT_VISIT_CAP`] records).
//! The per-insert cost is therefore bounded by the DAG's width times the horizon and
//! does not grow with the store (the seed walked every ancestor: O(N) per insert, O(N²)
//! overall). Because "within h links" is a property of the graph, not of arrival order,
//! every node computes the same weights for the same records. The bound is documented
//! in the store README. Weights are derived state: rebuilt from the index at open.

use std::collections::BTreeSet;

/// How many links away a descendant still adds its score to a record's weight.
pub const WEIGHT_HORIZON: u32 = 64;
/// Most ancestors one record's score is added to (guards against hostile wide DAGs).
pub const WEIGHT_VISIT_CAP: usize = 4096;

/// What the weight walk reads and writes of one record, together: the walk visits
/// thousands of records per insert at random places, and one cache line per visit
/// (plus its parents, contiguous in `Dag::parent_list`) is half what separate arrays
/// and a `Vec` of parents per record cost (the walk was a third of a catch-up's
/// non-verification CPU).
#[derive(Clone, Copy, Default)]
struct Node {
    weight: u64,
    /// Where its parents start in `Dag::parent_list`.
    first: u64,
    /// Walk generation that last visited it.
    stamp: u32,
    /// How many parents it has.
    count: u32,
}

/// Graph state for records numbered by store sequence number (1-based).
#[derive(Default)]
pub struct Dag {
    nodes: Vec<Node>,
    /// Parents of every synchronized record, each record's contiguous, appended as
    /// records are synchronized (parents never change).
    parent_list: Vec<u32>,
    linked: Vec<u32>,
    synced: Vec<bool>,
    /// How many of `synced` are true.
    synced_count: u64,
    generation: u32,
    tips: BTreeSet<u32>,
    good: Vec<bool>,
    /// Walk frontiers (current depth, next depth), kept to reuse their allocations.
    frontier: (Vec<u32>, Vec<u32>),
}

impl Dag {
    fn grow(&mut self, seq: u32) {
        let n = seq as usize + 1;
        if self.nodes.len() < n {
            self.nodes.resize(n, Node::default());
            self.linked.resize(n, 0);
            self.synced.resize(n, false);
            self.good.resize(n, false);
        }
    }

    fn mark_synced(&mut self, seq: u32) {
        if !std::mem::replace(&mut self.synced[seq as usize], true) {
            self.synced_count += 1;
        }
    }

    fn set_parents(&mut self, seq: u32, parents: &[u32]) {
        let n = &mut self.nodes[seq as usize];
        n.first = self.parent_list.len() as u64;
        n.count = parents.len() as u32;
        self.parent_list.extend_from_slice(parents);
    }

    /// Adds a fully synchronized record. `good` = eligible as a link candidate
    /// (reputation at the default or above).
    pub fn add_synced(&mut self, seq: u32, parents: Vec<u32>, score: u64, good: bool) {
        self.grow(seq);
        for &p in &parents {
            self.grow(p);
            self.linked[p as usize] += 1;
            self.tips.remove(&p);
        }
        self.nodes[seq as usize].weight += score;
        self.mark_synced(seq);
        self.good[seq as usize] = good;
        if good && self.linked[seq as usize] == 0 {
            self.tips.insert(seq);
        }
        self.set_parents(seq, &parents);
        self.propagate(seq, score);
    }

    /// Adds `score` to every distinct ancestor of `seq` within the horizon, breadth
    /// first, parents in the order given, stopping after `WEIGHT_VISIT_CAP` visits.
    fn propagate(&mut self, seq: u32, score: u64) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.nodes.iter_mut().for_each(|n| n.stamp = 0);
            self.generation = 1;
        }
        let g = self.generation;
        self.nodes[seq as usize].stamp = g;
        let (mut current, mut next) = std::mem::take(&mut self.frontier);
        current.clear();
        current.push(seq);
        let mut visited = 0usize;
        'walk: for _ in 0..WEIGHT_HORIZON {
            next.clear();
            for &s in &current {
                let n = self.nodes[s as usize];
                let (a, b) = (n.first as usize, n.first as usize + n.count as usize);
                for &p in &self.parent_list[a..b] {
                    let pn = &mut self.nodes[p as usize];
                    if pn.stamp == g {
                        continue;
                    }
                    pn.stamp = g;
                    pn.weight += score;
                    visited += 1;
                    if visited >= WEIGHT_VISIT_CAP {
                        break 'walk;
                    }
                    next.push(p);
                }
            }
            if next.is_empty() {
                break;
            }
            std::mem::swap(&mut current, &mut next);
        }
        self.frontier = (current, next);
    }

    /// Loads synchronized records in bulk at open: links first, weights after, because
    /// sequence order is not a topological order (a record can arrive before its
    /// parents and wait for them).
    pub fn load(&mut self, entries: Vec<(u32, Vec<u32>, u64, bool)>) {
        let mut scores = Vec::with_capacity(entries.len());
        for (seq, parents, score, good) in entries {
            self.grow(seq);
            for &p in &parents {
                self.grow(p);
                self.linked[p as usize] += 1;
            }
            self.set_parents(seq, &parents);
            self.mark_synced(seq);
            self.good[seq as usize] = good;
            scores.push((seq, score));
        }
        for &(seq, score) in &scores {
            self.nodes[seq as usize].weight += score;
            self.propagate(seq, score);
            if self.good[seq as usize] && self.linked[seq as usize] == 0 {
                self.tips.insert(seq);
            }
        }
    }

    /// Marks a record as no longer eligible as a link (its reputation dropped).
    pub fn set_good(&mut self, seq: u32, good: bool) {
        self.grow(seq);
        self.good[seq as usize] = good;
        if !good {
            self.tips.remove(&seq);
        } else if self.synced[seq as usize] && self.linked[seq as usize] == 0 {
            self.tips.insert(seq);
        }
    }

    /// The weight of a synchronized record (0 if unknown).
    pub fn weight(&self, seq: u32) -> u64 {
        self.nodes.get(seq as usize).map_or(0, |n| n.weight)
    }

    /// Whether the record is fully synchronized.
    pub fn is_synced(&self, seq: u32) -> bool {
        self.synced.get(seq as usize).copied().unwrap_or(false)
    }

    /// How many records are fully synchronized.
    pub fn synced_count(&self) -> u64 {
        self.synced_count
    }

    /// How many records link to this one.
    pub fn linked_count(&self, seq: u32) -> u32 {
        self.linked.get(seq as usize).copied().unwrap_or(0)
    }

    /// Up to `n` link candidates: the newest tips first, then the newest good records
    /// that are least linked.
    pub fn link_candidates(&self, n: usize) -> Vec<u32> {
        let mut out: Vec<u32> = self.tips.iter().rev().take(n).copied().collect();
        if out.len() < n {
            let mut more: Vec<u32> = (1..self.synced.len() as u32)
                .rev()
                .filter(|&s| self.good[s as usize] && !out.contains(&s))
                .take(64)
                .collect();
            more.sort_by_key(|&s| (self.linked[s as usize], u32::MAX - s));
            out.extend(more.into_iter().take(n - out.len()));
        }
        out
    }

    /// Number of tips (synchronized, eligible, not linked by anything).
    pub fn tip_count(&self) -> usize {
        self.tips.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_counts_distinct_descendants_once() {
        // 1 <- 2, 1 <- 3, {2,3} <- 4: 4's score reaches 1 once, not twice.
        let mut d = Dag::default();
        d.add_synced(1, vec![], 10, true);
        d.add_synced(2, vec![1], 1, true);
        d.add_synced(3, vec![1], 1, true);
        d.add_synced(4, vec![2, 3], 5, true);
        assert_eq!(d.weight(4), 5);
        assert_eq!(d.weight(2), 6);
        assert_eq!(d.weight(3), 6);
        assert_eq!(d.weight(1), 10 + 1 + 1 + 5);
        assert_eq!(d.link_candidates(1), vec![4]);
        assert_eq!(
            d.link_candidates(2),
            vec![4, 3],
            "then the newest least-linked"
        );
        assert_eq!(d.linked_count(1), 2);
    }

    #[test]
    fn horizon_bounds_propagation() {
        let mut d = Dag::default();
        d.add_synced(1, vec![], 1, true);
        for s in 2..=(WEIGHT_HORIZON + 10) {
            d.add_synced(s, vec![s - 1], 1, true);
        }
        // Record 1 counts itself plus exactly WEIGHT_HORIZON descendants.
        assert_eq!(d.weight(1), 1 + WEIGHT_HORIZON as u64);
        assert_eq!(d.weight(WEIGHT_HORIZON + 10), 1);
    }

    #[test]
    fn bad_records_are_not_candidates() {
        let mut d = Dag::default();
        d.add_synced(1, vec![], 1, true);
        d.add_synced(2, vec![], 1, false);
        assert_eq!(d.link_candidates(5), vec![1]);
        d.set_good(1, false);
        assert!(d.link_candidates(5).is_empty());
    }
}
