//! Fault injection for tests: a lossy, slow network between real nodes. Each node may
//! carry a [`NetFaults`] (see [`crate::P2pConfig::faults`]); it drops or delays the
//! node's outgoing sync requests (a dropped request fails at once, as a lost message
//! would after its timeout) and the gossip announcements it receives. Production
//! nodes carry none.
//!
//! It also counts what the node sends and receives on its TCP sockets (bytes, and
//! socket writes: about one per batch of frames), and the sync requests and responses
//! it writes, so a simulation can say what a record costs the network. Counting is a
//! few relaxed atomic adds per socket call.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use libp2p::futures::{AsyncRead, AsyncWrite};

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
    traffic: Traffic,
}

/// What one node put on (and took off) the wire.
#[derive(Debug, Default)]
struct Traffic {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    writes: AtomicU64,
    requests_sent: AtomicU64,
    responses_sent: AtomicU64,
}

/// A snapshot of a node's traffic counters ([`NetFaults::traffic`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Bytes written to its TCP sockets (everything: pnet, Noise, Yamux, gossipsub,
    /// identify, sync).
    pub bytes_sent: u64,
    /// Bytes read from its TCP sockets.
    pub bytes_received: u64,
    /// Successful socket writes (Noise sends a frame per write; several small
    /// messages flushed together share one).
    pub writes: u64,
    /// Sync requests written (fetches, digests, listings, follows, peer exchange).
    pub requests_sent: u64,
    /// Sync responses written.
    pub responses_sent: u64,
}

impl std::ops::Sub for TrafficCounts {
    type Output = TrafficCounts;
    fn sub(self, o: TrafficCounts) -> TrafficCounts {
        TrafficCounts {
            bytes_sent: self.bytes_sent.saturating_sub(o.bytes_sent),
            bytes_received: self.bytes_received.saturating_sub(o.bytes_received),
            writes: self.writes.saturating_sub(o.writes),
            requests_sent: self.requests_sent.saturating_sub(o.requests_sent),
            responses_sent: self.responses_sent.saturating_sub(o.responses_sent),
        }
    }
}

impl std::ops::Add for TrafficCounts {
    type Output = TrafficCounts;
    fn add(self, o: TrafficCounts) -> TrafficCounts {
        TrafficCounts {
            bytes_sent: self.bytes_sent + o.bytes_sent,
            bytes_received: self.bytes_received + o.bytes_received,
            writes: self.writes + o.writes,
            requests_sent: self.requests_sent + o.requests_sent,
            responses_sent: self.responses_sent + o.responses_sent,
        }
    }
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
            traffic: Traffic::default(),
        }
    }

    /// What the node sent and received so far.
    pub fn traffic(&self) -> TrafficCounts {
        let t = &self.traffic;
        TrafficCounts {
            bytes_sent: t.bytes_sent.load(Ordering::Relaxed),
            bytes_received: t.bytes_received.load(Ordering::Relaxed),
            writes: t.writes.load(Ordering::Relaxed),
            requests_sent: t.requests_sent.load(Ordering::Relaxed),
            responses_sent: t.responses_sent.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_request(&self) {
        self.traffic.requests_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_response(&self) {
        self.traffic.responses_sent.fetch_add(1, Ordering::Relaxed);
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

/// A socket that counts its traffic into a node's [`NetFaults`] (when it has one).
pub(crate) struct Counted<S> {
    inner: S,
    faults: Option<Arc<NetFaults>>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, faults: Option<Arc<NetFaults>>) -> Counted<S> {
        Counted { inner, faults }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(f)) = (&r, &self.faults) {
            f.traffic
                .bytes_received
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(f)) = (&r, &self.faults) {
            f.traffic.bytes_sent.fetch_add(*n as u64, Ordering::Relaxed);
            f.traffic.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
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
