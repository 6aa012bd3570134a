//! Peer scores and bans (pure: time is a parameter). Every offence lowers a peer's
//! score; at [`BAN_SCORE`] or below the peer is banned for a while, then forgiven.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Score at or below which a peer is banned.
pub const BAN_SCORE: i32 = -100;

/// Something a peer did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offence {
    /// Sent a record that failed validation.
    InvalidRecord,
    /// Sent an undecodable or protocol-breaking message.
    Garbage,
    /// Sent a message or record over the size limits.
    Oversized,
    /// Sent a record that was not asked for.
    Unsolicited,
    /// Announced records it then did not serve, or failed a request.
    Unresponsive,
}

impl Offence {
    /// Points taken off the score.
    pub fn penalty(self) -> i32 {
        match self {
            Offence::InvalidRecord => 50,
            Offence::Garbage | Offence::Oversized => 100,
            Offence::Unsolicited => 50,
            Offence::Unresponsive => 5,
        }
    }
}

/// Scores of peers and the bans in force.
#[derive(Debug)]
pub struct PeerScores {
    scores: HashMap<PeerId, i32>,
    bans: HashMap<PeerId, Instant>,
    ban_duration: Duration,
}

impl PeerScores {
    /// No scores, no bans.
    pub fn new(ban_duration: Duration) -> PeerScores {
        PeerScores {
            scores: HashMap::new(),
            bans: HashMap::new(),
            ban_duration,
        }
    }

    /// Records an offence; returns true if the peer is banned from now on.
    pub fn penalize(&mut self, peer: PeerId, offence: Offence, now: Instant) -> bool {
        let s = self.scores.entry(peer).or_insert(0);
        *s = s.saturating_sub(offence.penalty());
        if *s <= BAN_SCORE && !self.bans.contains_key(&peer) {
            self.bans.insert(peer, now + self.ban_duration);
            return true;
        }
        false
    }

    /// A peer's score (0 if it never offended).
    pub fn score(&self, peer: &PeerId) -> i32 {
        self.scores.get(peer).copied().unwrap_or(0)
    }

    /// Whether a peer is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.bans.contains_key(peer)
    }

    /// Lifts bans that have expired (and resets those peers' scores); returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let done: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &done {
            self.bans.remove(p);
            self.scores.remove(p);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offences_ban_then_the_ban_expires() {
        let t0 = Instant::now();
        let mut s = PeerScores::new(Duration::from_secs(10));
        let p = PeerId::random();
        assert!(!s.penalize(p, Offence::InvalidRecord, t0));
        assert!(!s.is_banned(&p));
        assert!(s.penalize(p, Offence::InvalidRecord, t0));
        assert!(s.is_banned(&p));
        assert!(!s.penalize(p, Offence::Garbage, t0), "already banned");
        assert!(s.expire(t0 + Duration::from_secs(5)).is_empty());
        assert_eq!(s.expire(t0 + Duration::from_secs(10)), vec![p]);
        assert!(!s.is_banned(&p));
        assert_eq!(s.score(&p), 0);
        assert!(s.penalize(PeerId::random(), Offence::Garbage, t0));
    }
}
