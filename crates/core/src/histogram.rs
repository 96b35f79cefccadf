//! The distribution of one score's values as equal-width bins, computed where the values
//! are (the API), so a client shows it without loading every run.

use serde::{Deserialize, Serialize};

/// At most this many bins; fewer for few values (the square root of their count).
pub const MAX_BINS: usize = 30;

/// Values in `[lo, hi)`; the last bin also holds `hi`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
}

/// Equal-width bins from the smallest to the largest finite value, `ceil(sqrt(n))` of
/// them up to [`MAX_BINS`]; one bin when every value is the same, none without values.
pub fn histogram(values: &[f64]) -> Vec<Bin> {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let Some(&first) = values.first() else {
        return Vec::new();
    };
    let (min, max) = values
        .iter()
        .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if min == max {
        return vec![Bin {
            lo: min,
            hi: max,
            count: values.len() as u64,
        }];
    }
    let n = ((values.len() as f64).sqrt().ceil() as usize).clamp(1, MAX_BINS);
    let width = (max - min) / n as f64;
    let mut bins: Vec<Bin> = (0..n)
        .map(|i| Bin {
            lo: min + i as f64 * width,
            hi: if i + 1 == n {
                max
            } else {
                min + (i + 1) as f64 * width
            },
            count: 0,
        })
        .collect();
    for v in values {
        let index = (((v - min) / width).floor() as usize).min(n - 1);
        bins[index].count += 1;
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_every_value_once() {
        let values: Vec<f64> = (0..100).map(|i| i as f64 / 99.0).collect();
        let bins = histogram(&values);
        assert_eq!(bins.len(), 10, "sqrt(100) bins");
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(bins[0].lo, 0.0);
        assert_eq!(bins[9].hi, 1.0);
        assert!(bins.iter().all(|b| b.count == 10), "{bins:?}");
        assert!(bins.windows(2).all(|w| w[0].hi == w[1].lo));
    }

    #[test]
    fn edge_cases() {
        assert!(histogram(&[]).is_empty());
        assert_eq!(
            histogram(&[2.5, 2.5, 2.5]),
            vec![Bin {
                lo: 2.5,
                hi: 2.5,
                count: 3
            }]
        );
        let many: Vec<f64> = (0..10_000).map(f64::from).collect();
        assert_eq!(histogram(&many).len(), MAX_BINS);
        let with_nan = histogram(&[0.0, f64::NAN, 1.0]);
        assert_eq!(with_nan.iter().map(|b| b.count).sum::<u64>(), 2);
    }
}
