//! Replication tasks: fetching records by hash (following missing links), handling
//! announcements, set reconciliation over hash buckets, and serving peers' requests.
//!
//! Memory stays bounded whatever the gap: reconciliation walks the hash space bucket
//! group by bucket group, lists at most [`wire::MAX_HASH_PAGE`] hashes per request and
//! fetches missing records as soon as [`FETCH_BUFFER`] of them are known; a
//! storage-order walk lists at most [`WALK_AHEAD`] pages ahead of its fetch, and a
//! fetch remembers at most [`ASKED_MAX`] hashes and queues at most [`QUEUE_MAX`].
//!
//! A peer's claims are not trusted: one round lists at most twice what this node holds
//! plus [`RECONCILE_MARGIN`] hashes, whatever counts the peer's digests claim (a round
//! that reached the bound and brought records is followed by another at once, so a new
//! node still catches up in a few rounds), and a peer that listed or announced a hash
//! and then does not serve its record is charged [`Offence::Withheld`] and the round
//! ends.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lf_record::RecordHash;
use libp2p::PeerId;
use libp2p::futures::{StreamExt as _, stream};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::buckets::{self, BUCKETS, Digest};
use crate::peers::Offence;
use crate::service::{Command, Shared};
use crate::wire::{self, HashList, Request, Response};
use crate::{Accepted, RecordSource, Rejected};

/// Missing hashes gathered before fetching them.
const FETCH_BUFFER: usize = 16384;
/// Buckets per digest in the first reconciliation round.
const GROUP: usize = 16;
/// Most hashes queued in one fetch: beyond it, missing links are not followed (they
/// are fetched later through `wanted`).
const QUEUE_MAX: usize = 4 * FETCH_BUFFER;
/// Pages of a storage-order walk listed ahead of the fetch.
const WALK_AHEAD: usize = 8;
/// Digest and listing requests of one reconciliation round on the wire at once (the
/// peer serves a few at a time; the rest wait in its queue, not behind round trips).
const PARALLEL: usize = 16;
/// Hashes one reconciliation round may list beyond twice what this node holds.
pub(crate) const RECONCILE_MARGIN: u64 = 65_536;

/// Sends a request and waits for the answer.
pub(crate) async fn request(
    shared: &Shared,
    peer: PeerId,
    req: Request,
) -> Result<Response, String> {
    if let Some(f) = &shared.faults {
        f.delay().await;
        if f.should_drop() {
            return Err("request lost (fault injection)".into());
        }
    }
    let (tx, rx) = oneshot::channel();
    shared.send(Command::Request(peer, req, tx));
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the P2P node has stopped".into()),
    }
}

/// Runs `f` on the record source in a blocking thread.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&dyn RecordSource) -> T + Send + 'static,
) -> Option<T> {
    let s = shared.clone();
    match tokio::task::spawn_blocking(move || f(&*s.source)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!("record source task failed: {e}");
            None
        }
    }
}

pub(crate) async fn absent(shared: &Arc<Shared>, hashes: Vec<RecordHash>) -> Vec<RecordHash> {
    if hashes.is_empty() {
        return hashes;
    }
    blocking(shared, move |s| s.absent(hashes))
        .await
        .unwrap_or_default()
}

/// Recomputes dirty bucket digests (blocking).
pub(crate) fn refresh_blocking(shared: &Shared) {
    let _one = shared
        .refresh_lock
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let dirty = shared
        .buckets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take_dirty();
    for b in dirty {
        let d = buckets::compute(&*shared.source, b);
        shared
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(b, d);
    }
}

async fn refresh(shared: &Arc<Shared>) {
    let s = shared.clone();
    let _ = tokio::task::spawn_blocking(move || refresh_blocking(&s)).await;
}

fn grouped(shared: &Shared, first: usize, count: usize, group: usize) -> Vec<Digest> {
    shared
        .buckets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .grouped(first, count, group)
}

/// What a fetch achieved.
#[derive(Default, Debug)]
pub(crate) struct Fetched {
    pub(crate) new: usize,
    pub(crate) invalid: usize,
    /// The peer broke the protocol or failed; stop talking to it for this task.
    pub(crate) failed: bool,
}

/// Fetches `hashes` from `peer` in batches, validates and stores them, then fetches
/// the links they carry that are missing too.
/// `advertised`: the peer listed or announced these hashes, so it must serve them.
pub(crate) async fn fetch(
    shared: &Arc<Shared>,
    peer: PeerId,
    hashes: Vec<RecordHash>,
    advertised: bool,
) -> Fetched {
    fetch_fed(shared, peer, hashes, advertised, None).await
}

/// Hashes a fetch remembers having asked for, so that a link to a record already on
/// its way is not asked for again. Bounded: the oldest are forgotten first (by then
/// they are stored, and [`absent`] filters them out).
struct Asked {
    set: HashSet<RecordHash>,
    order: VecDeque<RecordHash>,
}

/// Most hashes an [`Asked`] remembers.
const ASKED_MAX: usize = 4 * FETCH_BUFFER;

impl Asked {
    fn new() -> Self {
        Asked {
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    fn contains(&self, h: &RecordHash) -> bool {
        self.set.contains(h)
    }

    /// True if `h` was not asked for (recently); remembers it.
    fn insert(&mut self, h: RecordHash) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > ASKED_MAX
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// [`fetch`], taking more hashes from `more` (until it closes) as the queue runs low:
/// a storage-order walk lists the peer's hashes while their records are fetched, so
/// the pipeline never drains between pages.
///
/// Verification is the bound of a catch-up, so the stages overlap: up to [`REQUESTS`]
/// requests are on the wire while up to [`ACCEPTING`] accepts verify (on every core)
/// and store (the store serializes the puts). Replies are gathered into accepts of up
/// to [`ACCEPT_BATCH`] records, so that a catch-up pays one store transaction and fsync
/// per few hundred records, not per reply; an accept starts at once when nothing else
/// is on the wire, so a single announced record is not delayed. Every stage is
/// bounded, so memory stays bounded however many hashes are fetched.
async fn fetch_fed(
    shared: &Arc<Shared>,
    peer: PeerId,
    hashes: Vec<RecordHash>,
    advertised: bool,
    mut more: Option<mpsc::Receiver<Vec<RecordHash>>>,
) -> Fetched {
    let mut out = Fetched::default();
    let mut asked = Asked::new();
    // What the peer said it holds (the first hashes and the feed; not the links
    // followed): it must serve them.
    let mut promised = Asked::new();
    let take = |v: Vec<RecordHash>,
                promised: &mut Asked,
                asked: &mut Asked,
                queue: &mut VecDeque<RecordHash>| {
        for h in v {
            if advertised {
                promised.insert(h);
            }
            if asked.insert(h) {
                queue.push_back(h);
            }
        }
    };
    let mut queue: VecDeque<RecordHash> = VecDeque::new();
    take(hashes, &mut promised, &mut asked, &mut queue);
    let mut requests: VecDeque<(Vec<RecordHash>, GetReply)> = VecDeque::new();
    let mut gathered: (Vec<RecordHash>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let mut accepting: VecDeque<(Vec<RecordHash>, AcceptReply)> = VecDeque::new();
    let fail = |requests: &mut VecDeque<(Vec<RecordHash>, GetReply)>, out: &mut Fetched| {
        // Accepts already running finish on their own and mark what they stored (see
        // `settle_later`); only the network side is cut short.
        requests.drain(..).for_each(|(_, r)| r.abort());
        out.failed = true;
    };
    loop {
        // Take what the feed has ready, enough for the requests below.
        while queue.len() < REQUESTS * wire::MAX_GET
            && let Some(rx) = &mut more
        {
            match rx.try_recv() {
                Ok(v) => take(v, &mut promised, &mut asked, &mut queue),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => more = None,
            }
        }
        while requests.len() < REQUESTS
            && let Some(r) = next_get(shared, peer, &mut queue)
        {
            requests.push_back(r);
        }
        // Hand what was gathered to an accept when there is enough of it, or when
        // nothing more is coming for now.
        let (ready, idle) = (
            gathered.1.len() >= ACCEPT_BATCH,
            requests.is_empty() && !gathered.1.is_empty(),
        );
        if (ready || idle) && accepting.len() < ACCEPTING {
            let (hashes, records) = std::mem::take(&mut gathered);
            let s = shared.clone();
            let reply = tokio::task::spawn_blocking(move || s.source.accept(&records));
            accepting.push_back((hashes, reply));
            continue;
        }
        // Settle the oldest accept when the stage is full or nothing else is left.
        if accepting.len() >= ACCEPTING
            || (requests.is_empty() && gathered.1.is_empty() && !accepting.is_empty())
            || (ready && !accepting.is_empty())
        {
            let (hashes, reply) = accepting.pop_front().expect("non-empty");
            let Some((new, invalid, links)) =
                settle(shared, peer, &hashes, reply, &mut asked).await
            else {
                fail(&mut requests, &mut out);
                settle_later(shared, peer, accepting);
                return out;
            };
            out.new += new;
            if invalid > 0 {
                out.invalid += invalid;
                // Charged per record: a batch of forgeries spends the peer's budget
                // (and its address's) at once.
                shared.penalize_n(peer, Offence::InvalidRecord, invalid as u32);
                fail(&mut requests, &mut out);
                settle_later(shared, peer, accepting);
                return out;
            }
            if !links.is_empty() && queue.len() < QUEUE_MAX {
                queue.extend(absent(shared, links).await);
            }
            continue;
        }
        let Some((batch, reply)) = requests.pop_front() else {
            // Nothing in flight: wait for the feed, or finish.
            match &mut more {
                Some(rx) => match rx.recv().await {
                    Some(v) => take(v, &mut promised, &mut asked, &mut queue),
                    None => more = None,
                },
                None => return out,
            }
            continue;
        };
        let answer = match reply.await {
            Ok(a) => a,
            Err(e) => Err(format!("fetch task failed: {e}")),
        };
        let list = match answer {
            Ok(Response::Records(list)) => list,
            Ok(_) => {
                shared.penalize(peer, Offence::Garbage);
                fail(&mut requests, &mut out);
                settle_later(shared, peer, accepting);
                return out;
            }
            Err(e) => {
                tracing::debug!(%peer, "fetch failed: {e}");
                fail(&mut requests, &mut out);
                settle_later(shared, peer, accepting);
                return out;
            }
        };
        let want: HashSet<&RecordHash> = batch.iter().collect();
        let before = gathered.0.len();
        for r in list {
            let offence = if r.len() > wire::MAX_RECORD_SIZE {
                Some(Offence::Oversized)
            } else {
                let h = RecordHash(Sha256::digest(&r).into());
                gathered.0.push(h);
                (!want.contains(&h)).then_some(Offence::Unsolicited)
            };
            if let Some(o) = offence {
                shared.penalize(peer, o);
                fail(&mut requests, &mut out);
                settle_later(shared, peer, accepting);
                return out;
            }
            gathered.1.push(r.into_vec());
        }
        let served: HashSet<&RecordHash> = gathered.0[before..].iter().collect();
        let withheld = batch
            .iter()
            .filter(|h| promised.contains(h) && !served.contains(h))
            .count();
        if withheld > 0 {
            tracing::debug!(%peer, withheld, "peer did not serve records it listed or announced");
            shared.penalize(peer, Offence::Withheld);
            // What it did send is still verified and stored.
            requests.drain(..).for_each(|(_, r)| r.abort());
            queue.clear();
            more = None;
            out.failed = true;
        }
    }
}

/// Get requests on the wire at once in [`fetch`] (each up to [`wire::MAX_GET`] records).
const REQUESTS: usize = 4;
/// Accepts (verification and storage) running at once in [`fetch`].
const ACCEPTING: usize = 4;
/// Records gathered from replies before an accept starts (unless nothing else is
/// coming): bigger batches share the store's transaction and fsync.
const ACCEPT_BATCH: usize = 512;

/// Waits for one accept and marks the buckets of the records it stored; returns (new,
/// invalid, links not asked for yet), or `None` if the task failed.
async fn settle(
    shared: &Arc<Shared>,
    peer: PeerId,
    hashes: &[RecordHash],
    reply: AcceptReply,
    asked: &mut Asked,
) -> Option<(usize, usize, Vec<RecordHash>)> {
    let Ok(results) = reply.await else {
        tracing::error!("record source task failed");
        return None;
    };
    let (mut new, mut invalid, mut links) = (0, 0, Vec::new());
    let mut b = shared.buckets.lock().unwrap_or_else(|p| p.into_inner());
    for (h, r) in hashes.iter().zip(results) {
        match r {
            Ok(Accepted::New { links: l }) => {
                b.mark(h);
                new += 1;
                links.extend(l.into_iter().filter(|x| asked.insert(*x)));
            }
            Ok(Accepted::Duplicate) => {}
            Err(Rejected::Invalid(why)) => {
                tracing::debug!(%peer, hash = %h, "invalid record: {why}");
                invalid += 1;
            }
            // Not stored for now (no certificate here yet, limbo full, from the future,
            // a store error, which the source logs): debug, since a peer decides how
            // many such records arrive, and a log line each would be its flood.
            Err(e) => tracing::debug!(%peer, hash = %h, "record from a peer not stored: {e}"),
        }
    }
    drop(b);
    shared.received.fetch_add(new as u64, Ordering::Relaxed);
    Some((new, invalid, links))
}

/// Lets accepts still running after a failed fetch finish and mark what they stored.
fn settle_later(
    shared: &Arc<Shared>,
    peer: PeerId,
    accepting: VecDeque<(Vec<RecordHash>, AcceptReply)>,
) {
    if accepting.is_empty() {
        return;
    }
    let s = shared.clone();
    tokio::spawn(async move {
        let mut asked = Asked::new();
        for (hashes, reply) in accepting {
            let _ = settle(&s, peer, &hashes, reply, &mut asked).await;
        }
    });
}

type AcceptReply = tokio::task::JoinHandle<Vec<Result<Accepted, Rejected>>>;
type GetReply = tokio::task::JoinHandle<Result<Response, String>>;

/// Sends a request for the next batch of `queue` (if any) from a task of its own.
fn next_get(
    shared: &Arc<Shared>,
    peer: PeerId,
    queue: &mut VecDeque<RecordHash>,
) -> Option<(Vec<RecordHash>, GetReply)> {
    if queue.is_empty() {
        return None;
    }
    let n = queue.len().min(wire::MAX_GET);
    let batch: Vec<RecordHash> = queue.drain(..n).collect();
    let req = Request::Get(HashList::new(&batch));
    let s = shared.clone();
    let reply = tokio::spawn(async move { request(&s, peer, req).await });
    Some((batch, reply))
}

/// Handles an announcement: fetch what is missing from the peer that relayed it, and
/// let gossipsub relay it further only once every announced record is validated here.
pub(crate) async fn on_announce(
    shared: Arc<Shared>,
    peer: PeerId,
    id: MessageId,
    hashes: Vec<RecordHash>,
) {
    let mine = shared.peer_fetches(peer);
    if mine.queued.fetch_add(1, Ordering::Relaxed) >= crate::service::QUEUED_PER_PEER {
        mine.queued.fetch_sub(1, Ordering::Relaxed);
        shared.send(Command::Validate(id, peer, MessageAcceptance::Ignore));
        return;
    }
    let _peer_slot = mine.running.acquire().await;
    mine.queued.fetch_sub(1, Ordering::Relaxed);
    let _slot = shared.fetch_slots.acquire().await;
    if let Some(f) = &shared.faults {
        f.delay().await;
    }
    let missing = absent(&shared, hashes).await;
    let acceptance = if missing.is_empty() {
        MessageAcceptance::Accept
    } else {
        let r = fetch(&shared, peer, missing.clone(), true).await;
        if r.invalid > 0 {
            MessageAcceptance::Reject
        } else if absent(&shared, missing).await.is_empty() {
            MessageAcceptance::Accept
        } else {
            if !r.failed {
                shared.penalize(peer, Offence::Unresponsive);
            }
            MessageAcceptance::Ignore
        }
    };
    shared.send(Command::Validate(id, peer, acceptance));
}

/// Fetches records that stored records link to but that are missing.
pub(crate) async fn fetch_wanted(shared: &Arc<Shared>, peer: PeerId) {
    let wanted = blocking(shared, |s| s.wanted(FETCH_BUFFER))
        .await
        .unwrap_or_default();
    if !wanted.is_empty() {
        let r = fetch(shared, peer, wanted, false).await;
        if r.new > 0 {
            tracing::debug!(%peer, records = r.new, "fetched wanted records");
        }
    }
}

/// How many hashes a reconciliation round may still list.
struct Budget {
    left: u64,
    spent: bool,
}

impl Budget {
    /// Takes `n` listed hashes off; false once the round has listed its share.
    fn take(&mut self, n: usize) -> bool {
        self.left = self.left.saturating_sub(n as u64);
        if self.left == 0 {
            self.spent = true;
        }
        !self.spent
    }
}

/// One reconciliation round with `peer`: pulls the records the peer has and this node
/// lacks (the peer pulls the other way in its own rounds), listing at most twice what
/// this node holds plus [`RECONCILE_MARGIN`] hashes. True if the round stopped at that
/// bound after bringing records (another round should follow at once).
pub(crate) async fn reconcile(shared: &Arc<Shared>, peer: PeerId) -> bool {
    let started = std::time::Instant::now();
    tracing::debug!(%peer, "reconciling");
    let before = shared.received.load(Ordering::Relaxed);
    let mut missing = Vec::new();
    // Peer exchange, the local digests and the peer's digests at once.
    let (peers, (), remote) = tokio::join!(
        request(shared, peer, Request::Peers),
        refresh(shared),
        digests(shared, peer, 0, BUCKETS, GROUP)
    );
    if let Ok(Response::Peers(list)) = peers {
        let addrs = list
            .iter()
            .take(wire::MAX_PEERS)
            .filter_map(|s| s.parse().ok())
            .collect();
        shared.send(Command::Learn(addrs));
    }
    let Some(remote) = remote else {
        return false;
    };
    let mut local = grouped(shared, 0, BUCKETS, GROUP);
    let count = |v: &[Digest]| v.iter().map(|d| d.count as u64).sum::<u64>();
    let mut budget = Budget {
        left: count(&local)
            .saturating_mul(2)
            .saturating_add(RECONCILE_MARGIN),
        spent: false,
    };
    tracing::debug!(%peer, remote = count(&remote), local = count(&local), "digests");
    // Far behind (new, or offline for long): pull in the peer's storage order first,
    // then reconcile buckets for whatever that missed. One walk at a time: a node
    // catching up from several peers at once would otherwise fetch and verify every
    // record once per peer; the other rounds wait, then find little left.
    if count(&local) * 2 < count(&remote) {
        let _walk = shared.walk_slot.acquire().await;
        refresh(shared).await;
        local = grouped(shared, 0, BUCKETS, GROUP);
        if count(&local) * 2 < count(&remote) {
            let expected = count(&remote).min(budget.left);
            let (ok, listed) = walk_stored(shared, peer, expected).await;
            if !ok {
                return false;
            }
            if !budget.take(listed as usize) {
                return shared.received.load(Ordering::Relaxed) > before;
            }
            refresh(shared).await;
            local = grouped(shared, 0, BUCKETS, GROUP);
        }
    }
    // What to list: differing groups close to one another are listed together while
    // the range holds at most a page of the peer's hashes (one round trip lists a
    // small store's whole difference); a big group far apart is listed whole; a big
    // group close to ours is narrowed down to its differing buckets first.
    let mut ranges: Vec<(RecordHash, RecordHash)> = Vec::new();
    let mut close: Vec<usize> = Vec::new();
    // Open run: first and last group, hashes the peer holds in it, hashes in the
    // groups after it that do not differ (listed only if another differing group
    // joins the run).
    let mut run: Option<(usize, usize, u64)> = None;
    let mut gap = 0u64;
    let page = wire::MAX_HASH_PAGE as u64;
    let flush = |run: &mut Option<(usize, usize, u64)>, ranges: &mut Vec<_>| {
        if let Some((a, b, _)) = run.take() {
            ranges.push(buckets::buckets_range(a * GROUP, (b - a + 1) * GROUP));
        }
    };
    for (g, (r, l)) in remote.iter().zip(&local).enumerate() {
        let rc = r.count as u64;
        let differs = r != l && r.count > 0;
        if !differs {
            if let Some((_, _, cost)) = run {
                gap += rc;
                if cost + gap > page {
                    flush(&mut run, &mut ranges);
                }
            }
            continue;
        }
        if let Some((_, b, cost)) = &mut run
            && *cost + gap + rc <= page
        {
            *b = g;
            *cost += gap + rc;
            gap = 0;
            continue;
        }
        flush(&mut run, &mut ranges);
        gap = 0;
        let far = l.count == 0 || r.count <= 64 || (l.count as u64) * 4 < (r.count as u64) * 3;
        if rc <= page {
            run = Some((g, g, rc));
        } else if far {
            ranges.push(buckets::buckets_range(g * GROUP, GROUP));
        } else {
            close.push(g);
        }
    }
    flush(&mut run, &mut ranges);
    // The close groups' bucket digests, all on the wire at once.
    let narrowed: Vec<(usize, Option<Vec<Digest>>)> = stream::iter(close)
        .map(|g| async move { (g, digests(shared, peer, g * GROUP, GROUP, 1).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for (g, remote_b) in narrowed {
        let Some(remote_b) = remote_b else {
            return false;
        };
        let first = g * GROUP;
        let local_b = grouped(shared, first, GROUP, 1);
        for (i, (rb, lb)) in remote_b.iter().zip(&local_b).enumerate() {
            if rb != lb && rb.count > 0 {
                ranges.push(buckets::bucket_range(first + i));
            }
        }
    }
    // The listings, [`PARALLEL`] on the wire at once; what they find missing is
    // fetched whenever a buffer's worth is known.
    let budget = std::sync::Mutex::new(budget);
    {
        let mut listings = stream::iter(ranges)
            .map(|(s, e)| list_range(shared, peer, s, e, &budget))
            .buffer_unordered(PARALLEL);
        while let Some(listed) = listings.next().await {
            let Some(found) = listed else { break };
            missing.extend(found);
            if missing.len() >= FETCH_BUFFER
                && fetch(shared, peer, std::mem::take(&mut missing), true)
                    .await
                    .failed
            {
                break;
            }
        }
    }
    let budget = budget.into_inner().unwrap_or_else(|p| p.into_inner());
    if budget.spent {
        tracing::debug!(%peer, "reconciliation round listed its share of hashes");
    }
    // After a failed listing too: what was listed is fetched (and a peer that listed
    // hashes it does not serve is charged for it).
    if !missing.is_empty() {
        fetch(shared, peer, std::mem::take(&mut missing), true).await;
    }
    let got = shared.received.load(Ordering::Relaxed) - before;
    if got > 0 {
        tracing::info!(%peer, records = got, ms = started.elapsed().as_millis() as u64, "caught up from peer");
    }
    budget.spent && got > 0
}

/// Pulls the peer's records in the order it stored them: for records it wrote or
/// received in order, parents come before the records linking to them, so this node
/// stores synchronized records instead of pending ones that all wait for the last
/// ancestor (one long cascade at the end, on one core). Stops after `expected` hashes
/// and a page (a peer cannot keep it listing forever). False if the peer failed; a
/// peer that refuses the request is left to bucket reconciliation.
async fn walk_stored(shared: &Arc<Shared>, peer: PeerId, expected: u64) -> (bool, u64) {
    let (tx, rx) = mpsc::channel(WALK_AHEAD);
    let lister = {
        let shared = shared.clone();
        tokio::spawn(async move { list_stored(&shared, peer, expected, tx).await })
    };
    // The fetch ends when the listing does (the channel closes) and all is stored; if
    // the fetch fails first, the listing stops at its next page (nobody receives).
    let fetched = fetch_fed(shared, peer, Vec::new(), true, Some(rx)).await;
    let (ok, listed) = lister.await.unwrap_or((false, 0));
    (ok && !fetched.failed, listed)
}

/// The listing side of [`walk_stored`]: sends the missing hashes of each page to `tx`.
async fn list_stored(
    shared: &Arc<Shared>,
    peer: PeerId,
    expected: u64,
    tx: mpsc::Sender<Vec<RecordHash>>,
) -> (bool, u64) {
    let mut after = 0u64;
    let mut listed = 0u64;
    while listed <= expected {
        let req = Request::Stored {
            after,
            limit: wire::MAX_HASH_PAGE as u16,
        };
        let (page, next) = match request(shared, peer, req).await {
            Ok(Response::Stored { hashes, next }) => match hashes.decode(wire::MAX_HASH_PAGE) {
                Ok(p) => (p, next),
                Err(_) => {
                    shared.penalize(peer, Offence::Garbage);
                    return (false, listed);
                }
            },
            Ok(Response::Refused(why)) => {
                tracing::debug!(%peer, "storage-order listing refused: {why}");
                return (true, listed);
            }
            Ok(_) => {
                shared.penalize(peer, Offence::Garbage);
                return (false, listed);
            }
            Err(e) => {
                tracing::debug!(%peer, "storage-order listing failed: {e}");
                return (false, listed);
            }
        };
        if page.is_empty() {
            break;
        }
        if next <= after {
            shared.penalize(peer, Offence::Garbage);
            return (false, listed);
        }
        after = next;
        listed += page.len() as u64;
        let missing = absent(shared, page).await;
        if !missing.is_empty() && tx.send(missing).await.is_err() {
            return (false, listed);
        }
    }
    (true, listed)
}

async fn digests(
    shared: &Arc<Shared>,
    peer: PeerId,
    first: usize,
    count: usize,
    group: usize,
) -> Option<Vec<Digest>> {
    let req = Request::Digests {
        first: first as u16,
        count: count as u16,
        group: group as u16,
    };
    match request(shared, peer, req).await {
        Ok(Response::Digests(b)) => match Digest::decode_list(&b) {
            Some(d) if d.len() == count.div_ceil(group) => Some(d),
            _ => {
                shared.penalize(peer, Offence::Garbage);
                None
            }
        },
        Ok(Response::Refused(why)) => {
            tracing::debug!(%peer, "digests refused: {why}");
            None
        }
        Ok(_) => {
            shared.penalize(peer, Offence::Garbage);
            None
        }
        Err(e) => {
            tracing::debug!(%peer, "digests failed: {e}");
            None
        }
    }
}

/// Lists the peer's hashes in `start..=end` page by page and returns those missing
/// here (fetching them itself whenever [`FETCH_BUFFER`] are known, so memory stays
/// bounded). `None` if the peer failed or the round's budget is spent.
async fn list_range(
    shared: &Arc<Shared>,
    peer: PeerId,
    mut start: RecordHash,
    end: RecordHash,
    budget: &std::sync::Mutex<Budget>,
) -> Option<Vec<RecordHash>> {
    let mut missing = Vec::new();
    loop {
        let req = Request::Hashes {
            start: start.0,
            end: end.0,
            limit: wire::MAX_HASH_PAGE as u16,
        };
        let page = match request(shared, peer, req).await {
            Ok(Response::Hashes(l)) => match l.decode(wire::MAX_HASH_PAGE) {
                Ok(p) => p,
                Err(_) => {
                    shared.penalize(peer, Offence::Garbage);
                    return None;
                }
            },
            Ok(_) => {
                shared.penalize(peer, Offence::Garbage);
                return None;
            }
            Err(e) => {
                tracing::debug!(%peer, "hash listing failed: {e}");
                return None;
            }
        };
        let ordered = page.windows(2).all(|w| w[0] < w[1])
            && page.first().is_none_or(|h| *h >= start)
            && page.last().is_none_or(|h| *h <= end);
        if !ordered {
            shared.penalize(peer, Offence::Garbage);
            return None;
        }
        let full = page.len() == wire::MAX_HASH_PAGE;
        let next = page.last().and_then(buckets::next_hash);
        let within = budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(page.len());
        missing.extend(absent(shared, page).await);
        if missing.len() >= FETCH_BUFFER
            && fetch(shared, peer, std::mem::take(&mut missing), true)
                .await
                .failed
        {
            return None;
        }
        if !within {
            // What was listed is still fetched (the caller's last fetch).
            return Some(missing);
        }
        match next {
            Some(n) if full && n <= end => start = n,
            _ => return Some(missing),
        }
    }
}

/// Answers a peer's request.
pub(crate) async fn serve(shared: &Arc<Shared>, peer: PeerId, req: Request) -> Response {
    let _slot = shared.serve_slots.acquire().await;
    match req {
        Request::Get(list) => match list.decode(wire::MAX_GET) {
            Ok(hashes) => {
                let records = blocking(shared, move |s| {
                    hashes
                        .iter()
                        .filter_map(|h| s.get(h))
                        .map(serde_bytes::ByteBuf::from)
                        .collect()
                })
                .await
                .unwrap_or_default();
                Response::Records(records)
            }
            Err(e) => refuse(shared, peer, e.to_string()),
        },
        Request::Digests {
            first,
            count,
            group,
        } => {
            let (first, count, group) = (first as usize, count as usize, group as usize);
            if count == 0 || group == 0 || first + count > BUCKETS {
                return refuse(shared, peer, "digest range out of bounds".into());
            }
            refresh(shared).await;
            let mut out = Vec::with_capacity(count.div_ceil(group) * buckets::DIGEST_BYTES);
            for d in grouped(shared, first, count, group) {
                d.encode(&mut out);
            }
            Response::Digests(out)
        }
        Request::Hashes { start, end, limit } => {
            let limit = (limit as usize).min(wire::MAX_HASH_PAGE);
            let (s, e) = (RecordHash(start), RecordHash(end));
            let page = blocking(shared, move |src| src.hashes_in(&s, &e, limit))
                .await
                .unwrap_or_default();
            Response::Hashes(HashList::new(&page))
        }
        Request::Stored { after, .. } if after == crate::follow::TAIL => {
            let tail = blocking(shared, |src| src.stored_tail())
                .await
                .flatten()
                .unwrap_or(after);
            Response::Stored {
                hashes: HashList::default(),
                next: tail,
            }
        }
        Request::Stored { after, limit } => {
            let limit = (limit as usize).min(wire::MAX_HASH_PAGE);
            let (page, next) = blocking(shared, move |src| src.hashes_stored_after(after, limit))
                .await
                .unwrap_or((Vec::new(), after));
            Response::Stored {
                hashes: HashList::new(&page),
                next,
            }
        }
        Request::Peers => {
            let (tx, rx) = oneshot::channel();
            shared.send(Command::KnownPeers(tx));
            let mut addrs = rx.await.unwrap_or_default();
            addrs.retain(|a| {
                !a.iter()
                    .any(|p| p == libp2p::multiaddr::Protocol::P2p(peer))
            });
            addrs.truncate(wire::MAX_PEERS);
            Response::Peers(addrs.iter().map(|a| a.to_string()).collect())
        }
    }
}

fn refuse(shared: &Shared, peer: PeerId, why: String) -> Response {
    shared.penalize(peer, Offence::Garbage);
    Response::Refused(why)
}
