//! How much work a record needs (the seed's cost curve scaled by the network's
//! difficulty), how long that takes, and what a record's work is worth as weight.

/// Default difficulty factor of public networks: a 256-byte record needs about 1.5 s
/// of one core of the 2-core reference machine. See the crate docs for the measured
/// table.
pub const DEFAULT_DIFFICULTY: u32 = 350;

/// Average number of Equi-X solutions per challenge: 2.006 measured here over 2,000
/// challenges (standard error 0.03), as the Equi-X design intends. 14% of challenges
/// have none, a few have up to 8 (the solver keeps at most 8).
pub const SOLUTIONS_PER_CHALLENGE: f64 = 2.0;

/// Billable bytes beyond which the cost curve stays flat.
const MAX_COSTED_BYTES: u64 = 65_536;

/// Integer square root rounded to nearest, as the seed's `integerSqrtRounded`.
fn isqrt_rounded(x: u64) -> u64 {
    let r = x.isqrt();
    // x ≥ r² + r + 1 exactly when x is past (r + ½)² = r² + r + ¼.
    if x - r * r > r { r + 1 } else { r }
}

/// The seed's cost curve: about `9·b^1.5 − 24·b` for `b` billable bytes (capped at
/// 65,536 bytes and at `2³² − 1`), `b + 1` below 4 bytes.
pub fn cost(billable_bytes: usize) -> u64 {
    if billable_bytes < 4 {
        return billable_bytes as u64 + 1;
    }
    let x = 3 * (billable_bytes as u64).min(MAX_COSTED_BYTES);
    // x ≥ 12, so isqrt(x)·3 ≥ 9 > 8 and the subtraction cannot underflow.
    (isqrt_rounded(x) * x * 3 - 8 * x).min(0xFFFF_FFFF)
}

/// Effort a record of `billable_bytes` needs on a network with `difficulty`:
/// `⌈cost · difficulty / 65536⌉`, saturating at `u32::MAX`. It is 0 exactly when
/// `difficulty` is 0 (such a network needs no work), and at least 1 otherwise.
pub fn required_effort(billable_bytes: usize, difficulty: u32) -> u32 {
    let e = (cost(billable_bytes) * u64::from(difficulty)).div_ceil(65_536);
    u32::try_from(e).unwrap_or(u32::MAX)
}

/// Expected number of Equi-X challenges [`solve`](crate::solve) tries to find work of
/// `effort`: `effort /` [`SOLUTIONS_PER_CHALLENGE`], at least 1. The actual number is
/// geometrically distributed around it: the median is about 0.7 of it, and one run in
/// twenty takes three times as long.
pub fn expected_challenges(effort: u32) -> f64 {
    (f64::from(effort) / SOLUTIONS_PER_CHALLENGE).max(1.0)
}

/// A record's contribution to weight, given the effort of its work (`None` for a
/// record without work): the effort it claims, so extra effort spent on a record counts
/// for it, and 1 for no work, so that on networks without proof of work weight counts
/// the records that link to a record.
pub fn score(effort: Option<u32>) -> u64 {
    effort.map_or(1, |e| u64::from(e.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_cost_vectors() {
        assert_eq!(cost(64), 0x1980);
        assert_eq!(cost(128), 0x4E00);
        assert_eq!(cost(256), 0xE400);
        assert_eq!(cost(512), 0x28E00);
        assert_eq!(cost(1024), 0x75C00);
        assert_eq!(cost(2048), 0x153000);
        assert_eq!(cost(65536), 0x0F7B0000);
        assert_eq!(cost(100_000), cost(65536));
        assert_eq!(cost(usize::MAX), cost(65536));
        assert_eq!((0..4).map(cost).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(cost(4), 12);
    }

    #[test]
    fn cost_is_monotonic() {
        let costs: Vec<u64> = (0..70_000).map(cost).collect();
        assert!(costs.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn isqrt_rounds_to_nearest() {
        for x in 0..10_000u64 {
            let nearest = (x as f64).sqrt().round() as u64;
            assert_eq!(isqrt_rounded(x), nearest, "{x}");
        }
    }

    #[test]
    fn effort_scales_with_difficulty() {
        assert_eq!(required_effort(256, 0), 0);
        assert_eq!(required_effort(0, 1), 1);
        assert_eq!(required_effort(256, 1), 1);
        assert_eq!(required_effort(256, 65536), 0xE400);
        assert_eq!(required_effort(256, 65537), 0xE401);
        assert_eq!(required_effort(65536, u32::MAX), u32::MAX);
        assert!(
            required_effort(1024, DEFAULT_DIFFICULTY) > required_effort(256, DEFAULT_DIFFICULTY)
        );
    }

    #[test]
    fn expected_challenges_and_score() {
        assert_eq!(expected_challenges(1), 1.0);
        let e = expected_challenges(1000);
        assert!((450.0..550.0).contains(&e), "{e}");
        assert_eq!(score(None), 1);
        assert_eq!(score(Some(7)), 7);
        assert_eq!(score(Some(u32::MAX)), u64::from(u32::MAX));
    }
}
