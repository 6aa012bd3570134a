//! Following each peer's storage order: delivery that does not depend on gossip.
//!
//! Gossip is the fast path, but it loses announcements: gossipsub drops messages that
//! wait too long in a peer's queue, forwards nothing it validated after the message
//! left its cache, and a connection's gossip stream can stop for good while the
//! connection stays up. So every [`FOLLOW_INTERVAL`](crate::P2pConfig::follow_interval)
//! this node asks each connected peer for the hashes it stored after the position seen
//! last time (the peer's own sequence numbers, [`Request::Stored`]) and fetches those
//! missing here. A record stored on a connected peer therefore reaches this node within
//! about one interval and two round trips, announced or not; an idle pull costs one
//! small request and an empty page.
//!
//! The position starts at the peer's tail when the connection opens (reconciliation
//! brings what came before). The pulls double as the liveness probe: a peer that owes
//! an answer and sends nothing for [`crate::P2pConfig::dead_after`] is disconnected
//! (see the service), so a cut link is noticed in seconds, and the redial brings a
//! fresh connection and a full reconciliation.

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;

use crate::peers::Offence;
use crate::service::Shared;
use crate::sync::{absent, fetch, request};
use crate::wire::{self, Request, Response};

/// Pages listed in one pull at most (a peer that stored more since the last pull is
/// followed over several pulls; reconciliation covers big gaps).
const PAGES_PER_PULL: usize = 4;

/// `after` value of a [`Request::Stored`] asking only for the peer's tail: the answer
/// is an empty page whose `next` is the position of the peer's last stored record. A
/// peer without storage order (or of an older version) answers `next == TAIL`.
pub(crate) const TAIL: u64 = u64::MAX;

/// What one pull found.
#[derive(Debug)]
pub(crate) struct Pulled {
    /// The peer's position to continue after, if known.
    pub(crate) pos: Option<u64>,
    /// Records fetched that this node lacked (gossip had not brought them).
    pub(crate) recovered: usize,
}

/// Sends one request, giving up after `patience` (the service disconnects a peer that
/// stays silent that long): `None` then.
async fn ask(
    shared: &Shared,
    peer: PeerId,
    req: Request,
    patience: Duration,
) -> Option<Result<Response, String>> {
    tokio::time::timeout(patience, request(shared, peer, req))
        .await
        .ok()
}

/// One pull from `peer`, continuing after `pos` (or learning its tail when `None`).
pub(crate) async fn pull(
    shared: &Arc<Shared>,
    peer: PeerId,
    pos: Option<u64>,
    patience: Duration,
) -> Pulled {
    let mut out = Pulled { pos, recovered: 0 };
    let Some(mut after) = pos else {
        let req = Request::Stored {
            after: TAIL,
            limit: 0,
        };
        match ask(shared, peer, req, patience).await {
            None => {}
            Some(Ok(Response::Stored { next, .. })) if next != TAIL => out.pos = Some(next),
            // No storage order there: gossip and reconciliation only.
            Some(_) => {}
        }
        return out;
    };
    for _ in 0..PAGES_PER_PULL {
        let req = Request::Stored {
            after,
            limit: wire::MAX_HASH_PAGE as u16,
        };
        let (page, next) = match ask(shared, peer, req, patience).await {
            None => return out,
            Some(Ok(Response::Stored { hashes, next })) => {
                match hashes.decode(wire::MAX_HASH_PAGE) {
                    Ok(p) => (p, next),
                    Err(_) => {
                        shared.penalize(peer, Offence::Garbage);
                        return out;
                    }
                }
            }
            Some(Ok(Response::Refused(_))) | Some(Err(_)) => return out,
            Some(Ok(_)) => {
                shared.penalize(peer, Offence::Garbage);
                return out;
            }
        };
        if page.is_empty() {
            return out;
        }
        if next <= after {
            shared.penalize(peer, Offence::Garbage);
            return out;
        }
        let full = page.len() == wire::MAX_HASH_PAGE;
        let missing = absent(shared, page).await;
        if !missing.is_empty() {
            let r = fetch(shared, peer, missing, true).await;
            out.recovered += r.new;
            if r.failed {
                // Position not advanced: the next pull lists these again.
                return out;
            }
        }
        after = next;
        out.pos = Some(next);
        if !full {
            break;
        }
    }
    out
}
