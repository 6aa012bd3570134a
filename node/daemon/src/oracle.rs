//! Oracle mode (`lf node-start -oracle`): the node publishes commentary records that
//! flag the records it saw lose a collision (reference §8), so that nodes which never
//! saw the collision themselves can rank the impostor below the original by trusting
//! this node's identity as an oracle (`lf oracle add @identity`).
//!
//! When nothing collides the oracle still publishes, less often, an empty commentary
//! record (reference §8: oracles keep adding work to the DAG): it links to the node's
//! tips and carries the network's proof of work, so it adds weight to the records it
//! reaches whatever happens to collide.
//!
//! Bounded: one record at a time, proof of work on one thread, a pause between rounds,
//! an empty commentary only every [`IDLE_ROUNDS`] rounds, so it never starves FUSE or
//! queries, and an idle network grows by one small record per oracle per period.

use std::sync::Arc;
use std::time::Duration;

use lf_record::commentary::{Comment, encode_comments};
use lf_record::{RecordBuilder, RecordType, lf_pow};

use crate::common::workers::{Ctx, State};
use crate::node::{Node, now};

/// Rounds without anything to flag between two empty commentary records: at the
/// default 10 s interval one every 5 minutes, the rate the seed's adaptive difficulty
/// aims at (reference §8). The first round publishes one at once, so an oracle shows
/// itself (and that its records are accepted) as soon as it starts.
pub const IDLE_ROUNDS: u32 = 30;

/// Runs until the node stops: every `interval`, flags new collision losers (and every
/// [`IDLE_ROUNDS`] rounds without any, publishes an empty commentary).
pub fn run(node: Arc<Node>, interval: Duration, ctx: &Ctx) {
    crate::common::priority::background_thread();
    tracing::info!(oracle = %node.identity().public(), "oracle mode: publishing commentary");
    let mut idle = IdleRounds::new();
    while !node.is_stopping() {
        ctx.set_state(State::Idle);
        if !ctx.sleep(interval) {
            return;
        }
        ctx.set_state(State::Busy);
        if let Err(e) = round(&node, &mut idle)
            && !node.is_stopping()
        {
            tracing::warn!("oracle: {e:#}");
        }
    }
}

/// Counts rounds with nothing to flag, to space out empty commentary records.
#[derive(Debug)]
struct IdleRounds(u32);

impl IdleRounds {
    /// The first round with nothing to flag publishes.
    fn new() -> IdleRounds {
        IdleRounds(IDLE_ROUNDS - 1)
    }

    /// Whether a round that found `suspects` records to flag publishes a record. A round
    /// that publishes (or tries to: an oracle whose records are refused, e.g. one whose
    /// identity has no certificate on an `auth_required` network, retries an empty
    /// commentary only every [`IDLE_ROUNDS`] rounds) restarts the count.
    fn publishes(&mut self, suspects: usize) -> bool {
        if suspects == 0 {
            self.0 += 1;
            if self.0 < IDLE_ROUNDS {
                return false;
            }
        }
        self.0 = 0;
        true
    }
}

/// One round: at most one commentary record.
fn round(node: &Node, idle: &mut IdleRounds) -> anyhow::Result<()> {
    // 35 bytes per comment; stay within the network's value limit.
    let room = (node.config().record_max_value_size as usize / 35).clamp(1, 64);
    let suspects = node
        .store()
        .collision_suspects(&node.identity().public(), room)?;
    if !idle.publishes(suspects.len()) {
        return Ok(());
    }
    let comments: Vec<Comment> = suspects.iter().map(|h| Comment::collision(*h)).collect();
    let n = (node.config().record_min_links as usize).clamp(2, lf_record::MAX_LINKS);
    let links = node.store().link_candidates(n)?;
    let u = RecordBuilder::new(RecordType::Commentary, now())
        .value(encode_comments(&comments))
        .links(links)
        .build(&node.identity().public())?;
    let effort = u.required_effort(node.config().work_difficulty);
    let opts = lf_pow::SolveOptions {
        threads: 1,
        start_nonce: now(),
    };
    let r = u
        .sign(effort, node.identity())?
        .pay(&opts, node.stop_flag(), &|_| {})?;
    node.accept(&r)?;
    tracing::info!(flagged = comments.len(), hash = %r.hash(), "oracle: commentary published");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_commentary_at_the_first_round_then_every_idle_rounds() {
        let mut idle = IdleRounds::new();
        assert!(idle.publishes(0), "the first round publishes");
        let quiet: Vec<bool> = (0..IDLE_ROUNDS).map(|_| idle.publishes(0)).collect();
        assert_eq!(quiet.iter().filter(|p| **p).count(), 1, "{quiet:?}");
        assert!(quiet[IDLE_ROUNDS as usize - 1]);
        // Suspects publish at every round and restart the idle count.
        assert!(idle.publishes(3));
        assert!(idle.publishes(1));
        assert!((1..IDLE_ROUNDS).all(|_| !idle.publishes(0)));
        assert!(idle.publishes(0));
    }
}
