//! Cutting texts into forward passes. Pure functions, so the policy is unit
//! tested without a model.
//!
//! A padded batch costs `len(longest) * size` token slots. Sorting by length
//! puts texts of similar length together, so padding stays small; a token
//! budget (rather than a fixed batch size) keeps each forward's memory and
//! latency flat whether the texts are titles or full abstracts.

/// Limits for one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Padded token slots (`longest * size`) per batch.
    pub max_tokens: usize,
    /// Texts per batch, whatever their length.
    pub max_size: usize,
}

impl BatchLimits {
    /// The default for a device. A GPU wants far bigger matrices than a
    /// CPU core before it is busy, so CUDA's budget is 8x the CPU's (about
    /// 128 abstracts of ~256 tokens; attention scores then take ~0.8 GB in
    /// f32). The CPU's is measured (below); CUDA's is not yet, and
    /// `papersim bench embed --batch-tokens` compares budgets.
    pub fn for_device(device: super::DeviceSpec) -> Self {
        match device {
            super::DeviceSpec::Cpu => BatchLimits::default(),
            super::DeviceSpec::Cuda(_) => BatchLimits {
                max_tokens: 32_768,
                max_size: 256,
            },
        }
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        // Measured on the 2-core dev machine: past ~4k tokens per forward,
        // throughput stops improving and memory keeps growing.
        BatchLimits {
            max_tokens: 4096,
            max_size: 64,
        }
    }
}

/// Groups text indices into batches. `lengths[i]` is text i's token count.
/// Every index appears exactly once; within a batch, longest first. A text
/// longer than the budget still gets a batch of its own.
pub fn plan(lengths: &[usize], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable sort, longest first: ties keep input order, so plans are deterministic.
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let max_size = limits.max_size.max(1);
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // The first text of a batch is its longest, so it fixes the padded width.
        let width = current.first().map_or(lengths[i], |&f| lengths[f]).max(1);
        if !current.is_empty()
            && (current.len() >= max_size || (current.len() + 1) * width > limits.max_tokens)
        {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Token slots a plan pads to, over the real tokens: 1.0 means no padding.
pub fn padding_ratio(lengths: &[usize], plan: &[Vec<usize>]) -> f64 {
    let real: usize = lengths.iter().sum();
    let padded: usize = plan
        .iter()
        .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap_or(0) * b.len())
        .sum();
    if real == 0 {
        1.0
    } else {
        padded as f64 / real as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_partition(lengths: &[usize], plan: &[Vec<usize>]) {
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
    }

    #[test]
    fn every_text_once_and_within_budget() {
        let lengths = [10, 200, 30, 30, 256, 5, 90, 12, 256, 7];
        let limits = BatchLimits {
            max_tokens: 512,
            max_size: 4,
        };
        let plan = plan(&lengths, limits);
        check_partition(&lengths, &plan);
        for b in &plan {
            let width = lengths[b[0]];
            assert!(b.iter().all(|&i| lengths[i] <= width), "longest first");
            assert!(b.len() <= 4);
            assert!(b.len() == 1 || width * b.len() <= 512, "{b:?}");
        }
        assert_eq!(plan[0], vec![4, 8]);
    }

    #[test]
    fn oversize_text_gets_its_own_batch() {
        let plan = plan(
            &[1000, 3],
            BatchLimits {
                max_tokens: 100,
                max_size: 8,
            },
        );
        assert_eq!(plan, vec![vec![0], vec![1]]);
    }

    #[test]
    fn sorting_keeps_padding_low() {
        // Alternating short and long texts: input-order batches of 2 would
        // pad every short text to 200.
        let lengths: Vec<usize> = (0..100)
            .map(|i| if i % 2 == 0 { 10 } else { 200 })
            .collect();
        let p = plan(
            &lengths,
            BatchLimits {
                max_tokens: 400,
                max_size: 2,
            },
        );
        check_partition(&lengths, &p);
        assert!((padding_ratio(&lengths, &p) - 1.0).abs() < 1e-9);
        let naive: Vec<Vec<usize>> = (0..50).map(|b| vec![2 * b, 2 * b + 1]).collect();
        assert!(padding_ratio(&lengths, &naive) > 1.8);
    }

    #[test]
    fn empty_input_gives_no_batches() {
        assert!(plan(&[], BatchLimits::default()).is_empty());
        assert_eq!(padding_ratio(&[], &[]), 1.0);
    }
}
