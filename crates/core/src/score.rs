//! Score aggregation: count, mean, standard error, min and max per score name, merged
//! incrementally (Chan et al.'s parallel variance) so batches combine exactly.

use serde::{Deserialize, Serialize};

/// Running statistics of one score name.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub count: u64,
    pub mean: f64,
    /// Sum of squared differences from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Aggregate {
    pub fn of(value: f64) -> Self {
        Self {
            count: 1,
            mean: value,
            m2: 0.0,
            min: value,
            max: value,
        }
    }

    pub fn push(&mut self, value: f64) {
        self.merge(&Self::of(value));
    }

    pub fn merge(&mut self, other: &Aggregate) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n_a = self.count as f64;
        let n_b = other.count as f64;
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += other.m2 + delta * delta * n_a * n_b / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Standard error of the mean (sample standard deviation / sqrt(n)); `None` below two
    /// values.
    pub fn stderr(&self) -> Option<f64> {
        (self.count >= 2).then(|| {
            let variance = self.m2 / (self.count as f64 - 1.0);
            (variance / self.count as f64).sqrt()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_matches_direct_computation() {
        let values = [0.2, 0.9, 0.4, 1.0, 0.0, 0.7];
        let mut one = Aggregate::of(values[0]);
        for v in &values[1..] {
            one.push(*v);
        }
        let mut left = Aggregate::of(values[0]);
        left.push(values[1]);
        let mut right = Aggregate::of(values[2]);
        for v in &values[3..] {
            right.push(*v);
        }
        left.merge(&right);

        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        for agg in [one, left] {
            assert_eq!(agg.count, 6);
            assert!((agg.mean - mean).abs() < 1e-12);
            assert!((agg.stderr().expect("n >= 2") - (var / n).sqrt()).abs() < 1e-12);
            assert_eq!(agg.min, 0.0);
            assert_eq!(agg.max, 1.0);
        }
        assert_eq!(Aggregate::of(3.0).stderr(), None);
    }
}

/// What clients see of one score name's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreSummary {
    pub name: String,
    pub count: u64,
    pub mean: f64,
    /// Standard error of the mean; absent below two values.
    pub stderr: Option<f64>,
    pub min: f64,
    pub max: f64,
}

impl ScoreSummary {
    pub fn new(name: String, aggregate: &Aggregate) -> Self {
        Self {
            name,
            count: aggregate.count,
            mean: aggregate.mean,
            stderr: aggregate.stderr(),
            min: aggregate.min,
            max: aggregate.max,
        }
    }
}
