//! Peer scores and bans (pure: time is a parameter). Every offence lowers the score of
//! the peer, of its IP address and, for public addresses, of its network (/24 for IPv4,
//! /64 for IPv6). Each has its threshold ([`BAN_SCORE`], [`IP_BAN_SCORE`],
//! [`PREFIX_BAN_SCORE`]); at or below it that peer, address or network is banned for a
//! while, then forgiven. Identities are free, addresses are not: a peer that comes back
//! under a new identity from the same address keeps paying against the same address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Score at or below which a peer (identity) is banned.
pub const BAN_SCORE: i32 = -100;
/// Score at or below which an IP address is banned (several honest nodes may share one
/// behind a NAT, hence the higher threshold).
pub const IP_BAN_SCORE: i32 = -300;
/// Score at or below which a public /24 (IPv4) or /64 (IPv6) network is banned.
pub const PREFIX_BAN_SCORE: i32 = -1000;
/// Most identities and addresses scored at once; past it the entry nearest to a clean
/// record is forgotten (banned ones are kept until their ban ends).
pub const MAX_SCORED: usize = 16_384;

/// Something a peer did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offence {
    /// Sent a record that failed validation (charged per record).
    InvalidRecord,
    /// Sent an undecodable or protocol-breaking message.
    Garbage,
    /// Sent a message or record over the size limits.
    Oversized,
    /// Sent a record that was not asked for.
    Unsolicited,
    /// Announced records it then did not serve, or failed a request.
    Unresponsive,
    /// Listed or announced hashes, then did not serve them when asked.
    Withheld,
}

impl Offence {
    /// Points taken off the score.
    pub fn penalty(self) -> i32 {
        match self {
            Offence::InvalidRecord => 50,
            Offence::Garbage | Offence::Oversized => 100,
            Offence::Unsolicited => 50,
            Offence::Unresponsive => 5,
            Offence::Withheld => 25,
        }
    }

    /// Label for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Offence::InvalidRecord => "invalid_record",
            Offence::Garbage => "garbage",
            Offence::Oversized => "oversized",
            Offence::Unsolicited => "unsolicited",
            Offence::Unresponsive => "unresponsive",
            Offence::Withheld => "withheld",
        }
    }
}

/// An address or network that is scored and banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrKey {
    /// One IP address.
    Ip(IpAddr),
    /// A public network: the address with all but the first `1` bits cleared
    /// (24 for IPv4, 64 for IPv6).
    Net(IpAddr, u8),
}

impl AddrKey {
    fn threshold(self) -> i32 {
        match self {
            AddrKey::Ip(_) => IP_BAN_SCORE,
            AddrKey::Net(..) => PREFIX_BAN_SCORE,
        }
    }

    /// Label for metrics.
    pub fn scope(self) -> &'static str {
        match self {
            AddrKey::Ip(_) => "ip",
            AddrKey::Net(..) => "prefix",
        }
    }
}

/// The keys an address is scored under: the address itself, and its /24 or /64 when
/// it is a public address (loopback, private and link-local networks are shared by
/// hosts of one operator, who are judged one by one).
pub fn addr_keys(ip: IpAddr) -> Vec<AddrKey> {
    let ip = canonical(ip);
    let mut keys = vec![AddrKey::Ip(ip)];
    if AddrClass::of(ip) == AddrClass::Public {
        keys.push(match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                AddrKey::Net(IpAddr::from([o[0], o[1], o[2], 0]), 24)
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                AddrKey::Net(IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0]), 64)
            }
        });
    }
    keys
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What kind of network an address belongs to (for peer exchange and prefix bans).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier-grade NAT), fc00::/7.
    Private,
    /// 0.0.0.0, ::, multicast, broadcast: never dialed.
    Unusable,
    /// Anything else.
    Public,
}

impl AddrClass {
    /// The class of `ip`.
    pub fn of(ip: IpAddr) -> AddrClass {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() {
                    AddrClass::Unusable
                } else if v4.is_loopback() {
                    AddrClass::Loopback
                } else if v4.is_link_local() {
                    AddrClass::LinkLocal
                } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                    AddrClass::Private
                } else {
                    AddrClass::Public
                }
            }
            IpAddr::V6(v6) => {
                let s0 = v6.segments()[0];
                if v6.is_unspecified() || v6.is_multicast() {
                    AddrClass::Unusable
                } else if v6.is_loopback() {
                    AddrClass::Loopback
                } else if (s0 & 0xffc0) == 0xfe80 {
                    AddrClass::LinkLocal
                } else if (s0 & 0xfe00) == 0xfc00 {
                    AddrClass::Private
                } else {
                    AddrClass::Public
                }
            }
        }
    }
}

/// What a penalty led to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Banned {
    /// The peer (identity) is banned from now on.
    pub peer: bool,
    /// Addresses and networks banned from now on.
    pub addrs: Vec<AddrKey>,
}

/// Scores of peers and addresses, and the bans in force.
#[derive(Debug)]
pub struct PeerScores {
    scores: HashMap<PeerId, i32>,
    bans: HashMap<PeerId, Instant>,
    addr_scores: HashMap<AddrKey, i32>,
    addr_bans: HashMap<AddrKey, Instant>,
    ban_duration: Duration,
}

impl PeerScores {
    /// No scores, no bans.
    pub fn new(ban_duration: Duration) -> PeerScores {
        PeerScores {
            scores: HashMap::new(),
            bans: HashMap::new(),
            addr_scores: HashMap::new(),
            addr_bans: HashMap::new(),
            ban_duration,
        }
    }

    /// Records `count` offences of one kind by `peer`, connected from `ip` (if known);
    /// returns what is banned from now on.
    pub fn penalize(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        offence: Offence,
        count: u32,
        now: Instant,
    ) -> Banned {
        let points = offence
            .penalty()
            .saturating_mul(count.min(i32::MAX as u32) as i32);
        let mut out = Banned::default();
        if !self.scores.contains_key(&peer) {
            bound(&mut self.scores, &self.bans);
        }
        let s = self.scores.entry(peer).or_insert(0);
        *s = s.saturating_sub(points);
        if *s <= BAN_SCORE && !self.bans.contains_key(&peer) {
            self.bans.insert(peer, now + self.ban_duration);
            out.peer = true;
        }
        for key in ip.map(addr_keys).unwrap_or_default() {
            if !self.addr_scores.contains_key(&key) {
                bound(&mut self.addr_scores, &self.addr_bans);
            }
            let s = self.addr_scores.entry(key).or_insert(0);
            *s = s.saturating_sub(points);
            if *s <= key.threshold() && !self.addr_bans.contains_key(&key) {
                self.addr_bans.insert(key, now + self.ban_duration);
                out.addrs.push(key);
            }
        }
        out
    }

    /// How long a ban lasts.
    pub fn ban_duration(&self) -> Duration {
        self.ban_duration
    }

    /// A peer's score (0 if it never offended).
    pub fn score(&self, peer: &PeerId) -> i32 {
        self.scores.get(peer).copied().unwrap_or(0)
    }

    /// An address's or network's score.
    pub fn addr_score(&self, key: &AddrKey) -> i32 {
        self.addr_scores.get(key).copied().unwrap_or(0)
    }

    /// Whether a peer is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    /// Whether `ip`, or its network, is banned.
    pub fn is_addr_banned(&self, ip: IpAddr) -> bool {
        !self.addr_bans.is_empty() && addr_keys(ip).iter().any(|k| self.addr_bans.contains_key(k))
    }

    /// Addresses and networks banned now.
    pub fn banned_addrs(&self) -> impl Iterator<Item = &AddrKey> {
        self.addr_bans.keys()
    }

    /// Lifts bans that have expired (and resets those scores); returns the peers and
    /// addresses forgiven.
    pub fn expire(&mut self, now: Instant) -> (Vec<PeerId>, Vec<AddrKey>) {
        let peers: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &peers {
            self.bans.remove(p);
            self.scores.remove(p);
        }
        let addrs: Vec<AddrKey> = self
            .addr_bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in &addrs {
            self.addr_bans.remove(k);
            self.addr_scores.remove(k);
        }
        (peers, addrs)
    }
}

/// Most peers whose address is remembered for charging offences after they left.
pub const MAX_RECENT_IPS: usize = 4096;

/// The scores, and the address each recent peer connected from. One ledger is shared
/// (behind a mutex) by the swarm task, the tasks that find offences and the address
/// gate: an offence is charged to the peer and its address the moment it is found,
/// before the task that found it lets the connection go, and the gate reads the same
/// bans, so a new identity from a banned address is refused at its next handshake
/// whether or not the swarm task has caught up yet.
#[derive(Debug)]
pub struct Ledger {
    /// Scores and bans.
    pub scores: PeerScores,
    /// The IP address each recent peer connected from, kept a while after it
    /// disconnects: an offence found once its records are verified is charged to its
    /// address too (at most [`MAX_RECENT_IPS`]).
    recent_ip: HashMap<PeerId, IpAddr>,
}

impl Ledger {
    /// No scores, no bans, no addresses.
    pub fn new(ban_duration: Duration) -> Ledger {
        Ledger {
            scores: PeerScores::new(ban_duration),
            recent_ip: HashMap::new(),
        }
    }

    /// `peer` connected from `ip`. When the table is full, only the peers for which
    /// `keep` holds (those still connected) stay.
    pub fn connected_from(&mut self, peer: PeerId, ip: IpAddr, keep: impl Fn(&PeerId) -> bool) {
        if self.recent_ip.len() >= MAX_RECENT_IPS && !self.recent_ip.contains_key(&peer) {
            self.recent_ip.retain(|p, _| keep(p));
        }
        self.recent_ip.insert(peer, ip);
    }

    /// Charges `count` offences to `peer` and to the address it connected from.
    pub fn charge(&mut self, peer: PeerId, offence: Offence, count: u32, now: Instant) -> Banned {
        let ip = self.recent_ip.get(&peer).copied();
        self.scores.penalize(peer, ip, offence, count, now)
    }
}

/// Makes room for one more entry in `scores` by forgetting the one closest to a clean
/// record that is not banned (scores of banned entries are kept until the ban ends).
fn bound<K: Copy + Eq + std::hash::Hash>(scores: &mut HashMap<K, i32>, bans: &HashMap<K, Instant>) {
    if scores.len() < MAX_SCORED {
        return;
    }
    let forget = scores
        .iter()
        .filter(|(k, _)| !bans.contains_key(k))
        .max_by_key(|(_, s)| **s)
        .map(|(k, _)| *k);
    if let Some(k) = forget {
        scores.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn offences_ban_then_the_ban_expires() {
        let t0 = Instant::now();
        let mut s = PeerScores::new(Duration::from_secs(10));
        let p = PeerId::random();
        assert!(!s.penalize(p, None, Offence::InvalidRecord, 1, t0).peer);
        assert!(!s.is_banned(&p));
        assert!(s.penalize(p, None, Offence::InvalidRecord, 1, t0).peer);
        assert!(s.is_banned(&p));
        assert!(
            !s.penalize(p, None, Offence::Garbage, 1, t0).peer,
            "already banned"
        );
        assert!(s.expire(t0 + Duration::from_secs(5)).0.is_empty());
        assert_eq!(s.expire(t0 + Duration::from_secs(10)).0, vec![p]);
        assert!(!s.is_banned(&p));
        assert_eq!(s.score(&p), 0);
        assert!(
            s.penalize(PeerId::random(), None, Offence::Garbage, 1, t0)
                .peer
        );
    }

    #[test]
    fn invalid_records_are_charged_one_by_one() {
        let t0 = Instant::now();
        let mut s = PeerScores::new(Duration::from_secs(10));
        let p = PeerId::random();
        let b = s.penalize(p, ip("127.0.0.9"), Offence::InvalidRecord, 512, t0);
        assert!(b.peer);
        assert_eq!(b.addrs, vec![AddrKey::Ip("127.0.0.9".parse().unwrap())]);
        assert_eq!(s.score(&p), -50 * 512);
    }

    /// regression_17: identities are free, so a peer that changes identity after each
    /// ban still runs into the ban of its address.
    #[test]
    fn identity_churn_from_one_address_bans_the_address() {
        let t0 = Instant::now();
        let mut s = PeerScores::new(Duration::from_secs(10));
        let from = ip("127.0.0.66");
        let mut identities = 0;
        while !s.is_addr_banned(from.unwrap()) {
            let p = PeerId::random();
            // Each identity is banned after its second invalid record.
            while !s.penalize(p, from, Offence::InvalidRecord, 1, t0).peer {}
            identities += 1;
            assert!(identities < 10);
        }
        assert_eq!(identities, 3, "-300 at 100 per identity");
        // Loopback, private and link-local networks are not banned as a whole.
        assert!(!s.is_addr_banned("127.0.0.67".parse().unwrap()));
        s.expire(t0 + Duration::from_secs(10));
        assert!(!s.is_addr_banned(from.unwrap()));
    }

    #[test]
    fn public_networks_are_banned_at_a_higher_threshold() {
        let t0 = Instant::now();
        let mut s = PeerScores::new(Duration::from_secs(10));
        // Four addresses of one /24 each banned (-300): the /24 is at -1200.
        for last in 1..=4u8 {
            let from = IpAddr::from([203, 0, 113, last]);
            s.penalize(PeerId::random(), Some(from), Offence::Garbage, 3, t0);
            assert!(s.is_addr_banned(from));
        }
        assert!(s.is_addr_banned("203.0.113.200".parse().unwrap()));
        assert!(!s.is_addr_banned("203.0.114.1".parse().unwrap()));
        // IPv6: per /64, and an IPv4-mapped address is its IPv4 address.
        let v6 = ip("2001:db8:1:2::5");
        for _ in 0..10 {
            s.penalize(PeerId::random(), v6, Offence::Garbage, 1, t0);
        }
        assert!(s.is_addr_banned("2001:db8:1:2:ffff::1".parse().unwrap()));
        assert!(!s.is_addr_banned("2001:db8:1:3::1".parse().unwrap()));
        assert!(s.is_addr_banned("::ffff:203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn scored_entries_are_bounded() {
        let t0 = Instant::now();
        let mut s = PeerScores::new(Duration::from_secs(10));
        for i in 0..(MAX_SCORED as u32 + 100) {
            let from = Some(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()));
            s.penalize(PeerId::random(), from, Offence::Unresponsive, 1, t0);
        }
        assert!(s.scores.len() <= MAX_SCORED);
        assert!(s.addr_scores.len() <= MAX_SCORED);
    }

    #[test]
    fn address_classes() {
        let c = |a: &str| AddrClass::of(a.parse().unwrap());
        assert_eq!(c("127.0.0.5"), AddrClass::Loopback);
        assert_eq!(c("::1"), AddrClass::Loopback);
        assert_eq!(c("10.1.2.3"), AddrClass::Private);
        assert_eq!(c("172.20.0.1"), AddrClass::Private);
        assert_eq!(c("192.168.1.1"), AddrClass::Private);
        assert_eq!(c("100.100.0.1"), AddrClass::Private);
        assert_eq!(c("fd00::1"), AddrClass::Private);
        assert_eq!(c("169.254.1.1"), AddrClass::LinkLocal);
        assert_eq!(c("fe80::1"), AddrClass::LinkLocal);
        assert_eq!(c("0.0.0.0"), AddrClass::Unusable);
        assert_eq!(c("8.8.8.8"), AddrClass::Public);
        assert_eq!(c("2001:db8::1"), AddrClass::Public);
        assert_eq!(c("::ffff:10.0.0.1"), AddrClass::Private);
    }
}
