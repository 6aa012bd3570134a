//! Watching for changes (`/watch`, `lf watch`): the store's insertion order is the
//! change log (`lf_store::Stored::seq`, the cursor a client keeps), so a watcher that
//! reconnects with its cursor gets every record stored since, in order, across node
//! restarts, whatever wrote it (LFFS, clients, peers, limbo: the write path wakes the
//! hub for all of them, `node/write.rs`).
//!
//! One task, the hub, reads each new stretch of the log once and broadcasts it to the
//! watchers over a bounded channel (`-watch-buffer` stretches); each watcher matches
//! the records' first selector keys against its ranges in memory and turns the few
//! that match into events on the blocking pool (naming them, asking the store for the
//! key's winner). A watcher that falls more than the buffer behind loses nothing: it
//! reads what it missed from the store from its cursor, then rejoins the broadcast
//! (counted in `lf_watch_lagged_total`). Watchers are capped (`-watch-max`,
//! `lf_watchers`). A commentary record of an oracle the watcher trusts is an event for
//! each watched key whose record it comments on, naming the key's winner then: that
//! is how a collision flipped by an oracle is seen.

pub mod history;
pub mod scope;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lf_record::{Owner, Record, RecordHash, RecordType, SelectorKey};
use lf_store::{KeyRange, Query, Stored};
use tokio::sync::{Semaphore, broadcast};

use crate::common::api_json::WatchEvent;
use crate::lffs_glue::mount_manager::MountManager;
use crate::node::Node;
pub use scope::Range;

/// Records read from the log per step (a catching-up watcher's page, the hub's read).
const PAGE: usize = 512;

/// Limits of watching.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Watchers (open long-polls and streams) at once.
    pub max_watchers: usize,
    /// Stretches of the log the broadcast holds for a slow watcher.
    pub buffer: usize,
}

/// Why a watch cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Too many watchers.
    #[error("too many watchers ({0} open; the node's -watch-max): try again later")]
    Busy(usize),
    /// The cursor is past the end of this node's log.
    #[error(
        "cursor {cursor} is ahead of this node's change log (last position {head}): it comes \
         from another node or an index rebuilt from another records file; resynchronise \
         (read the current state, then watch without a cursor)"
    )]
    CursorAhead {
        /// Given.
        cursor: u64,
        /// The log's end.
        head: u64,
    },
    /// What to watch is wrong (unknown path, not on a mount...).
    #[error("{0}")]
    Bad(String),
    /// Store failure.
    #[error("store: {0}")]
    Store(#[from] lf_store::StoreError),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopping,
}

/// The hub: reads the log once for every watcher.
pub struct WatchHub {
    node: Arc<Node>,
    mounts: std::sync::OnceLock<Arc<MountManager>>,
    tx: broadcast::Sender<Arc<Vec<Stored>>>,
    slots: Arc<Semaphore>,
    limits: Limits,
    /// Last position broadcast.
    head: AtomicU64,
    /// Set at shutdown: every watcher ends.
    closing: tokio::sync::watch::Sender<bool>,
}

impl WatchHub {
    /// A hub over `node`'s store; [`WatchHub::run`] starts it.
    pub fn new(node: Arc<Node>, limits: Limits) -> Arc<WatchHub> {
        let (tx, _) = broadcast::channel(limits.buffer.max(1));
        ::metrics::gauge!("lf_watchers").set(0.0);
        ::metrics::counter!("lf_watch_lagged_total").absolute(0);
        Arc::new(WatchHub {
            node,
            mounts: std::sync::OnceLock::new(),
            tx,
            slots: Arc::new(Semaphore::new(limits.max_watchers)),
            limits,
            head: AtomicU64::new(0),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Ends every watcher (shutdown: open streams must not hold the HTTP server).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Mount paths can be watched once LFFS runs.
    pub fn set_mounts(&self, mounts: Arc<MountManager>) {
        let _ = self.mounts.set(mounts);
    }

    /// The mount manager, if LFFS runs.
    pub fn mounts(&self) -> Option<&Arc<MountManager>> {
        self.mounts.get()
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Watchers open now.
    pub fn watchers(&self) -> usize {
        self.limits.max_watchers - self.slots.available_permits()
    }

    /// Broadcasts every stretch of the log as the write path reports it, until the
    /// node's `stored` channel closes (async; spawn it).
    pub async fn run(self: Arc<Self>) {
        let mut stored = self.node.subscribe_stored();
        let node = self.node.clone();
        let head = match tokio::task::spawn_blocking(move || node.store().head_seq()).await {
            Ok(Ok(h)) => h,
            _ => 0,
        };
        self.head.store(head, Ordering::Release);
        loop {
            loop {
                let (node, after) = (self.node.clone(), self.head.load(Ordering::Acquire));
                let read =
                    tokio::task::spawn_blocking(move || node.store().records_after(after, PAGE))
                        .await;
                let page = match read {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        tracing::error!("watch: cannot read the change log: {e}");
                        break;
                    }
                    Err(_) => break,
                };
                let Some(last) = page.last().map(|s| s.seq) else {
                    break;
                };
                let full = page.len() == PAGE;
                self.head.store(last, Ordering::Release);
                // No receivers is not an error: nobody watches.
                let _ = self.tx.send(Arc::new(page));
                if !full {
                    break;
                }
            }
            if stored.changed().await.is_err() {
                return;
            }
        }
    }

    /// Opens a watcher over `ranges` from `cursor` (`None`: from now). Fails when the
    /// cap is reached or the cursor is ahead of the log.
    pub async fn open(
        self: &Arc<Self>,
        ranges: Vec<Range>,
        cursor: Option<u64>,
        oracles: Vec<Owner>,
        mask: Option<Vec<u8>>,
    ) -> Result<Watcher, WatchError> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| WatchError::Busy(self.limits.max_watchers))?;
        // Subscribe before reading the log's end: nothing stored in between is missed
        // (a record both read and received is skipped by its position).
        let rx = self.tx.subscribe();
        let node = self.node.clone();
        let head = tokio::task::spawn_blocking(move || node.store().head_seq())
            .await
            .map_err(|_| WatchError::Stopping)??;
        let cursor = match cursor {
            None => head,
            Some(c) if c > head => return Err(WatchError::CursorAhead { cursor: c, head }),
            Some(c) => c,
        };
        ::metrics::gauge!("lf_watchers").increment(1.0);
        Ok(Watcher {
            hub: self.clone(),
            _slot: slot,
            ranges: Arc::new(ranges),
            cursor,
            behind: cursor < head,
            rx,
            closing: self.closing.subscribe(),
            oracles: Arc::new(oracles),
            mask: Arc::new(mask),
        })
    }
}

/// One watcher: its ranges and where it is in the log.
pub struct Watcher {
    hub: Arc<WatchHub>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    ranges: Arc<Vec<Range>>,
    cursor: u64,
    /// Reading from the store rather than the broadcast.
    behind: bool,
    rx: broadcast::Receiver<Arc<Vec<Stored>>>,
    closing: tokio::sync::watch::Receiver<bool>,
    oracles: Arc<Vec<Owner>>,
    mask: Arc<Option<Vec<u8>>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        ::metrics::gauge!("lf_watchers").decrement(1.0);
    }
}

impl Watcher {
    /// The position of the last record this watcher has looked at.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The events of the records stored after the cursor, waiting up to `wait` for
    /// some; empty when none came (the cursor may still have moved on).
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<WatchEvent>, WatchError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if *self.closing.borrow() {
                return Err(WatchError::Stopping);
            }
            let batch: Arc<Vec<Stored>> = if self.behind {
                let (node, after) = (self.hub.node.clone(), self.cursor);
                let page =
                    tokio::task::spawn_blocking(move || node.store().records_after(after, PAGE))
                        .await
                        .map_err(|_| WatchError::Stopping)??;
                if page.len() < PAGE {
                    self.behind = false;
                }
                Arc::new(page)
            } else {
                let recv = tokio::select! {
                    r = tokio::time::timeout_at(deadline, self.rx.recv()) => r,
                    _ = self.closing.changed() => return Err(WatchError::Stopping),
                };
                match recv {
                    Err(_) => return Ok(Vec::new()),
                    Ok(Ok(b)) => b,
                    Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                        ::metrics::counter!("lf_watch_lagged_total").increment(n);
                        tracing::debug!(
                            missed = n,
                            "watch: a watcher fell behind; reading the store"
                        );
                        self.behind = true;
                        continue;
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => {
                        return Err(WatchError::Stopping);
                    }
                }
            };
            // A tree watch passes every record on: a directory and the entries in it
            // may arrive in one batch, and the entries concern the watch only once the
            // directory's range is added, which `events_of` does as it goes.
            let tree = self.ranges.iter().any(Range::is_tree);
            let fresh: Vec<Stored> = batch
                .iter()
                .filter(|s| s.seq > self.cursor && self.concerns(&s.record, tree))
                .cloned()
                .collect();
            let last = batch.last().map_or(self.cursor, |s| s.seq.max(self.cursor));
            if fresh.is_empty() {
                self.cursor = last;
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Vec::new());
                }
                continue;
            }
            let (node, ranges) = (self.hub.node.clone(), self.ranges.clone());
            let (oracles, mask) = (self.oracles.clone(), self.mask.clone());
            let (events, subdirs) = tokio::task::spawn_blocking(move || {
                events_of(&node, &ranges, &oracles, mask.as_deref(), &fresh)
            })
            .await
            .map_err(|_| WatchError::Stopping)??;
            self.cursor = last;
            if !subdirs.is_empty() {
                let mut r = (*self.ranges).clone();
                for s in subdirs {
                    if r.len() < scope::MAX_TREE_DIRS && !r.iter().any(|x| x.start == s.start) {
                        r.push(s);
                    }
                }
                self.ranges = Arc::new(r);
            }
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }

    /// Whether `r` may make an event here (cheap; the rest is on the blocking pool).
    /// With a `tree` watch any record may, once a new subdirectory is known.
    fn concerns(&self, r: &Record, tree: bool) -> bool {
        if r.record_type() == RecordType::Commentary {
            return self.oracles.contains(&r.owner());
        }
        tree || r
            .selector_keys()
            .first()
            .is_some_and(|k| self.ranges.iter().any(|x| x.holds(k)))
    }
}

/// The events of records that concern a watcher, and new subdirectories of its tree
/// watches (blocking).
fn events_of(
    node: &Node,
    ranges: &[Range],
    oracles: &[Owner],
    mask: Option<&[u8]>,
    stored: &[Stored],
) -> Result<(Vec<WatchEvent>, Vec<Range>), WatchError> {
    let mut events = Vec::new();
    let mut subdirs: Vec<Range> = Vec::new();
    // The watch's ranges with the subdirectories found so far in this batch: an entry
    // may follow its new directory in the same batch.
    let mut ranges: Vec<Range> = ranges.to_vec();
    for s in stored {
        let r = &s.record;
        if r.record_type() == RecordType::Commentary {
            let mut keys: Vec<SelectorKey> = Vec::new();
            let value = r.value(None).unwrap_or_default();
            for c in lf_record::commentary::decode_comments(&value) {
                let Ok(h) = <[u8; 32]>::try_from(c.subject.as_slice()) else {
                    continue;
                };
                let Some(subject) = node.store().get(&RecordHash(h))? else {
                    continue;
                };
                let Some(k) = subject.selector_keys().first().copied() else {
                    continue;
                };
                if keys.contains(&k) {
                    continue;
                }
                keys.push(k);
                let Some(range) = ranges.iter().find(|x| x.holds(&k)) else {
                    continue;
                };
                let Some(w) = winner(node, &k, oracles)? else {
                    continue;
                };
                let Some(named) = range.name(&w, mask) else {
                    continue;
                };
                let kind = if named.deleted { "deleted" } else { "changed" };
                events.push(event(s.seq, &w, &named, kind, true, Some("oracle")));
            }
            continue;
        }
        let Some(k) = r.selector_keys().first().copied() else {
            continue;
        };
        let Some(range) = ranges.iter().find(|x| x.holds(&k)).cloned() else {
            continue;
        };
        let Some(named) = range.name(r, mask) else {
            continue;
        };
        let kind = if named.deleted {
            "deleted"
        } else if node.store().key_seen_before(&k, s.seq)? {
            "changed"
        } else {
            "created"
        };
        let is_winner = winner(node, &k, oracles)?.is_some_and(|w| w.hash() == r.hash());
        if let (Some((path, sel)), scope::Naming::Entries { fs, .. }) =
            (&named.subdir, &range.naming)
        {
            let sub = Range::directory(fs.clone(), path, sel.clone(), true);
            if ranges.len() < scope::MAX_TREE_DIRS && !ranges.iter().any(|x| x.start == sub.start) {
                ranges.push(sub.clone());
            }
            subdirs.push(sub);
        }
        events.push(event(s.seq, r, &named, kind, is_winner, None));
    }
    Ok((events, subdirs))
}

/// The record winning `key` now (trust with `oracles`, then weight), if any.
pub fn winner(
    node: &Node,
    key: &SelectorKey,
    oracles: &[Owner],
) -> Result<Option<Record>, WatchError> {
    let mut q = Query {
        ranges: vec![KeyRange {
            start: *key,
            end: *key,
        }],
        oracles: oracles.to_vec(),
        ..Query::default()
    };
    if node.certs().read().has_roots() {
        q.certification = Some(Arc::new(node.certs().clone()));
    }
    Ok(node
        .store()
        .query(&q)?
        .into_iter()
        .next()
        .and_then(|set| set.into_iter().next())
        .map(|r| r.record))
}

fn event(
    seq: u64,
    r: &Record,
    named: &scope::Named,
    kind: &str,
    winner: bool,
    reason: Option<&str>,
) -> WatchEvent {
    WatchEvent {
        cursor: seq,
        path: named.path.as_ref().map(|p| p.display().to_string()),
        selector: named.selector.as_ref().map(|(n, _)| n.clone()),
        ordinal: named.selector.as_ref().map(|(_, o)| *o),
        kind: kind.to_string(),
        hash: r.hash().to_string(),
        owner: r.owner().to_string(),
        timestamp: r.timestamp(),
        size: named.size,
        winner,
        reason: reason.map(str::to_string),
    }
}

/// The mount holding absolute `path`: its filesystem, the path made lexically clean,
/// and the path inside the mount.
pub fn locate_mount(
    hub: &WatchHub,
    path: &str,
) -> Result<
    (
        Arc<crate::lffs_glue::mount_manager::MountFs>,
        std::path::PathBuf,
        std::path::PathBuf,
    ),
    WatchError,
> {
    use std::path::{Component, PathBuf};
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Err(WatchError::Bad(format!("path {path:?} is not absolute")));
    }
    let mut clean = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    let mounts = hub
        .mounts()
        .ok_or_else(|| WatchError::Bad("this node runs no LFFS mounts".into()))?;
    let (_, fs, rel) = mounts.mount_of(&clean).ok_or_else(|| {
        WatchError::Bad(format!(
            "{} is not on one of this node's mounts ({})",
            clean.display(),
            mounts
                .mounted()
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    Ok((fs, clean, rel))
}

/// The ranges of a watch request's selectors and paths. Blocking (paths are resolved
/// through their mounts).
pub fn ranges_of(
    hub: &WatchHub,
    selectors: &[(String, u64, u64)],
    paths: &[String],
    tree: bool,
) -> Result<Vec<Range>, WatchError> {
    let mut out: Vec<Range> = selectors
        .iter()
        .map(|(n, a, b)| Range::selector(n, *a, *b))
        .collect();
    for p in paths {
        let (fs, abs, rel) = locate_mount(hub, p)?;
        out.extend(scope::path_ranges(&fs, &abs, &rel, tree).map_err(WatchError::Bad)?);
    }
    if out.len() > scope::MAX_TREE_DIRS {
        return Err(WatchError::Bad(format!(
            "{} ranges to watch; at most {}",
            out.len(),
            scope::MAX_TREE_DIRS
        )));
    }
    Ok(out)
}
