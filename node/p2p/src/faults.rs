//! Fault injection for tests: a lossy, slow network between real nodes. Each node may
//! carry a [`NetFaults`] (see [`crate::P2pConfig::faults`]); it drops or delays the
//! node's outgoing sync requests (a dropped request fails at once, as a lost message
//! would after its timeout) and the gossip announcements it receives. Production
//! nodes carry none.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Drop and delay settings of one node, changeable while it runs. Random choices come
/// from a seeded generator, so a run is repeatable up to task scheduling.
#[derive(Debug)]
pub struct NetFaults {
    drop_per_mille: AtomicU32,
    /// Announcements only: dropped on top of `drop_per_mille`.
    gossip_drop_per_mille: AtomicU32,
    delay_ms: AtomicU64,
    rng: Mutex<u64>,
    dropped: AtomicU64,
    delayed: AtomicU64,
}

impl NetFaults {
    /// No faults yet; `seed` drives the drop decisions.
    pub fn new(seed: u64) -> NetFaults {
        NetFaults {
            drop_per_mille: AtomicU32::new(0),
            gossip_drop_per_mille: AtomicU32::new(0),
            delay_ms: AtomicU64::new(0),
            rng: Mutex::new(seed | 1),
            dropped: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
        }
    }

    /// Drops this share of messages (0.0 to 1.0).
    pub fn set_drop(&self, share: f64) {
        let p = (share.clamp(0.0, 1.0) * 1000.0).round() as u32;
        self.drop_per_mille.store(p, Ordering::Relaxed);
    }

    /// Drops this share of the announcements received (0.0 to 1.0), whatever
    /// [`NetFaults::set_drop`] says: a gossip layer that loses messages while requests
    /// still get through.
    pub fn set_gossip_drop(&self, share: f64) {
        let p = (share.clamp(0.0, 1.0) * 1000.0).round() as u32;
        self.gossip_drop_per_mille.store(p, Ordering::Relaxed);
    }

    /// Delays every message by `d`.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(
            d.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Back to a perfect network.
    pub fn clear(&self) {
        self.set_drop(0.0);
        self.set_gossip_drop(0.0);
        self.set_delay(Duration::ZERO);
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages delayed so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    /// Whether to drop the next message (counts it if so).
    pub(crate) fn should_drop(&self) -> bool {
        self.drop_with(self.drop_per_mille.load(Ordering::Relaxed))
    }

    /// Whether to drop the next announcement received (counts it if so).
    pub(crate) fn should_drop_gossip(&self) -> bool {
        let p = self.drop_per_mille.load(Ordering::Relaxed);
        let g = self.gossip_drop_per_mille.load(Ordering::Relaxed);
        self.drop_with(p.max(g))
    }

    fn drop_with(&self, p: u32) -> bool {
        if p == 0 {
            return false;
        }
        let r = {
            let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x
        };
        let drop = (r % 1000) < p as u64;
        if drop {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop
    }

    /// Waits the configured delay (counts the message if there is one).
    pub(crate) async fn delay(&self) {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        if ms > 0 {
            self.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_share_is_roughly_honoured() {
        let f = NetFaults::new(7);
        assert!(!(0..100).any(|_| f.should_drop()));
        f.set_drop(0.3);
        let n = (0..10_000).filter(|_| f.should_drop()).count();
        assert!((2_500..3_500).contains(&n), "{n}");
        assert_eq!(f.dropped(), n as u64);
        f.clear();
        assert!(!f.should_drop());
    }
}
