//! Oracle mode (`lf node-start -oracle`): the node publishes commentary records that
//! flag the records it saw lose a collision (reference §8), so that nodes which never
//! saw the collision themselves can rank the impostor below the original by trusting
//! this node's identity as an oracle (`lf oracle add @identity`).
//!
//! Bounded: one record at a time, proof of work on one thread, a pause between rounds,
//! so it never starves FUSE or queries.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lf_record::commentary::{Comment, encode_comments};
use lf_record::{RecordBuilder, RecordType, lf_pow};

use crate::node::{Node, now};

/// Runs until the node stops: every `interval`, flags new collision losers.
pub fn run(node: Arc<Node>, interval: Duration) {
    crate::priority::background_thread();
    tracing::info!(oracle = %node.identity.public(), "oracle mode: publishing commentary");
    while !node.stopping.load(Ordering::Relaxed) {
        let mut waited = Duration::ZERO;
        while waited < interval && !node.stopping.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
        if let Err(e) = round(&node)
            && !node.stopping.load(Ordering::Relaxed)
        {
            tracing::warn!("oracle: {e:#}");
        }
    }
}

/// One round: at most one commentary record.
fn round(node: &Node) -> anyhow::Result<()> {
    // 35 bytes per comment; stay within the network's value limit.
    let room = (node.config().record_max_value_size as usize / 35).clamp(1, 64);
    let suspects = node
        .store
        .collision_suspects(&node.identity.public(), room)?;
    if suspects.is_empty() {
        return Ok(());
    }
    let comments: Vec<Comment> = suspects.iter().map(|h| Comment::collision(*h)).collect();
    let n = (node.config().record_min_links as usize).clamp(2, lf_record::MAX_LINKS);
    let links = node.store.link_candidates(n)?;
    let u = RecordBuilder::new(RecordType::Commentary, now())
        .value(encode_comments(&comments))
        .links(links)
        .build(&node.identity.public())?;
    let effort = u.required_effort(node.config().work_difficulty);
    let work = if effort > 0 {
        let opts = lf_pow::SolveOptions {
            threads: 1,
            start_nonce: now(),
        };
        Some(lf_pow::solve(
            &u.work_challenge(),
            effort,
            &opts,
            &node.stopping,
            &|_| {},
        )?)
    } else {
        None
    };
    let r = u.sign(work, &node.identity)?;
    node.accept(&r)?;
    tracing::info!(flagged = comments.len(), hash = %r.hash(), "oracle: commentary published");
    Ok(())
}
