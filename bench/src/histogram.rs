//! Quantiles of a Prometheus histogram, from the cumulative buckets of a `/metrics`
//! scrape — over everything since start, or over the window between two scrapes.

/// The cumulative `(le, count)` buckets of histogram `name`, by bound.
pub fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// Value of quantile `q` of cumulative buckets, linearly interpolated inside the bucket
/// (as PromQL's histogram_quantile does); `None` without observations.
pub fn quantile_of(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let span = (count - previous.1).max(1e-9);
            return Some(previous.0 + (le - previous.0) * (rank - previous.1) / span);
        }
        previous = (le, count);
    }
    None
}

/// Quantile `q` of histogram `name` over everything in one scrape.
pub fn quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    quantile_of(&buckets(metrics, name), q)
}

/// Quantile `q` of what histogram `name` observed between two scrapes of the same
/// process (`after`'s buckets less `before`'s).
pub fn quantile_between(before: &str, after: &str, name: &str, q: f64) -> Option<f64> {
    let earlier = buckets(before, name);
    let window: Vec<(f64, f64)> = buckets(after, name)
        .into_iter()
        .map(|(le, count)| {
            let was = earlier
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c);
            (le, (count - was).max(0.0))
        })
        .collect();
    quantile_of(&window, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str =
        "x_bucket{le=\"0.1\"} 50\nx_bucket{le=\"0.2\"} 90\nx_bucket{le=\"+Inf\"} 100\n";

    #[test]
    fn quantiles_interpolate_within_buckets() {
        assert!((quantile(SCRAPE, "x", 0.5).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(SCRAPE, "x", 0.7).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(quantile(SCRAPE, "x", 0.99), Some(0.2));
        assert_eq!(quantile("", "x", 0.5), None);
    }

    #[test]
    fn a_window_counts_only_what_it_observed() {
        // 100 fast observations before; then 100 slow ones (0.1–0.2 s).
        let after =
            "x_bucket{le=\"0.1\"} 100\nx_bucket{le=\"0.2\"} 200\nx_bucket{le=\"+Inf\"} 200\n";
        let before =
            "x_bucket{le=\"0.1\"} 100\nx_bucket{le=\"0.2\"} 100\nx_bucket{le=\"+Inf\"} 100\n";
        let p50 = quantile_between(before, after, "x", 0.5).unwrap();
        assert!((p50 - 0.15).abs() < 1e-9, "{p50}");
        assert_eq!(quantile_between(after, after, "x", 0.5), None);
    }
}
