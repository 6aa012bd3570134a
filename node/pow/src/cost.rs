//! How much work a record needs, and what it is worth as weight.

/// Default difficulty factor of public networks.
///
/// Calibrated on the 2-core reference machine (release build; about 10.5 ms per Equi-X
/// challenge on one core, about 1.99 solutions per challenge, so about 5.3 ms per unit
/// of effort): 64 billable bytes need effort 24 (about 0.13 s on one core); 256 bytes
/// effort 214 (about 1.1 s on one core); 1024 bytes effort 1,767 (about 9 s on one
/// core, 4.5 s on both). The seed's cost curve grows as `b^1.5`, so 1 KiB costs 8×
/// what 256 bytes cost; solve times are geometric, so single runs vary widely. Solver
/// memory is about 2 MiB per thread (`equix::SolverMemory`).
pub const DEFAULT_DIFFICULTY: u32 = 240;

/// Average Equi-X solutions per challenge (measured; the Equi-X paper gives ≈ 2).
const SOLUTIONS_PER_CHALLENGE: f64 = 1.99;

/// Integer square root rounded to nearest, as the seed's `integerSqrtRounded`.
fn isqrt_rounded(x: u64) -> u64 {
    let r = x.isqrt();
    // Round up when x is closer to (r+1)^2 than to r^2.
    if x - r * r > r { r + 1 } else { r }
}

/// The seed's cost curve over billable bytes (capped at 65,536 bytes).
pub fn cost(billable_bytes: usize) -> u64 {
    if billable_bytes < 4 {
        return billable_bytes as u64 + 1;
    }
    let b = billable_bytes.min(65536) as u64;
    let x = 3 * b;
    (isqrt_rounded(x) * x * 3)
        .saturating_sub(8 * x)
        .min(0xFFFF_FFFF)
}

/// Effort a record of `billable_bytes` needs at `difficulty`; 0 iff difficulty is 0.
pub fn required_effort(billable_bytes: usize, difficulty: u32) -> u32 {
    if difficulty == 0 {
        return 0;
    }
    let e = (cost(billable_bytes) * difficulty as u64).div_ceil(65536);
    e.clamp(1, u32::MAX as u64) as u32
}

/// Expected number of Equi-X challenges to find a solution at `effort`.
pub fn expected_challenges(effort: u32) -> f64 {
    (effort.max(1) as f64 / SOLUTIONS_PER_CHALLENGE).max(1.0)
}

/// A record's contribution to weight: its claimed effort (extra effort counts), or 1
/// for a record without work, so that on networks without proof of work weight
/// counts linking records.
pub fn score(effort: Option<u32>) -> u64 {
    effort.map_or(1, |e| e.max(1) as u64)
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
        assert_eq!(cost(2), 3);
    }

    #[test]
    fn solver_memory_is_as_documented() {
        // DEFAULT_DIFFICULTY's doc promises about 2 MiB per solving thread.
        let mib = equix::SolverMemory::SIZE as f64 / (1 << 20) as f64;
        assert!((1.0..3.0).contains(&mib), "{mib} MiB");
    }

    #[test]
    fn effort_scales_with_difficulty() {
        assert_eq!(required_effort(256, 0), 0);
        assert_eq!(required_effort(1, 1), 1);
        assert_eq!(required_effort(256, 65536), 0xE400);
        assert!(
            required_effort(1024, DEFAULT_DIFFICULTY) > required_effort(256, DEFAULT_DIFFICULTY)
        );
        assert_eq!(required_effort(65536, u32::MAX), u32::MAX);
        assert_eq!(score(None), 1);
        assert_eq!(score(Some(7)), 7);
    }
}
