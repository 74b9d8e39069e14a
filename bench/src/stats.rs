//! Percentiles of latency samples.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
}

/// The p50 and p99 of `samples` (nearest rank).
pub fn summarize(samples: &mut [Duration]) -> Summary {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_unstable();
    Summary {
        p50: percentile(samples, 50),
        p99: percentile(samples, 99),
    }
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let summary = summarize(&mut samples);
        assert_eq!(summary.p50, Duration::from_millis(50));
        assert_eq!(summary.p99, Duration::from_millis(99));
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 99),
            Duration::from_millis(7)
        );
    }
}
