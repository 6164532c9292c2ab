//! The soak's report: report.json, report.md and SVG charts over time, and its verdict —
//! nothing lost, duplicated or miscounted, and nothing trending upward with the record
//! count.

use super::sample::{LatencyWindow, Sample};
use super::{Injected, SoakArgs, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// One quantity that must stay flat: its median over the middle third of the run
/// against the last third.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub what: String,
    pub middle: f64,
    pub last: f64,
    /// What the last third may reach: `middle × 1.5 + slack`, at most the ceiling.
    pub limit: f64,
    pub flat: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub minutes: f64,
    pub rate_per_s: f64,
    pub seed: u64,
    pub verdict: Verdict,
    pub faults: BTreeMap<String, u64>,
    pub injected: Vec<Injected>,
    pub trends: Vec<Trend>,
    /// Cassandra is where the data goes: it grows by this much per million records.
    pub cassandra_mib_per_million: Option<f64>,
    pub latency: Vec<LatencyWindow>,
    /// The shorter windows the latency trends are judged on.
    pub trend_latency: Vec<LatencyWindow>,
    pub samples: Vec<Sample>,
}

/// The latency of a soak, from the staging commit to the Cassandra commit.
pub struct Latency {
    /// The report's windows.
    pub windows: Vec<LatencyWindow>,
    /// The trend's windows (a minute in an hour-long soak).
    pub trend_windows: Vec<LatencyWindow>,
}

/// The components whose CPU per record the report shows (`Sample::cpu_s`).
pub(super) const CPU_COMPONENTS: [&str; 4] = ["tributary", "postgres", "kafka", "cassandra"];

/// Absolute slack of each trend (noise that is not growth) and, for latency, a ceiling
/// the last third must stay under whatever the middle third did: a pipeline that fell
/// behind in the middle and stayed behind is flat, not healthy (the 36-minute soak's
/// p99 sat at the histogram's 30 s cap in both thirds and passed the relative rule).
const BOUNDS: [(&str, f64, Option<f64>); 6] = [
    ("postgresql MiB", 8.0, None),
    ("kafka MiB", 32.0, None),
    ("tributary RSS MiB", 16.0, None),
    ("lag (records)", 20_000.0, None),
    ("p50 latency ms", 250.0, Some(5_000.0)),
    ("p99 latency ms", 250.0, Some(15_000.0)),
];

impl Report {
    pub fn new(
        args: &SoakArgs,
        rate: f64,
        name: &str,
        samples: Vec<Sample>,
        latency: Latency,
        injected: Vec<Injected>,
        verdict: Verdict,
    ) -> Report {
        let mut faults = BTreeMap::new();
        for fault in &injected {
            *faults.entry(fault.scenario.clone()).or_insert(0) += 1;
        }
        // The steady part only: the last sample is taken after the drain.
        let steady = &samples[..samples.len().saturating_sub(1)];
        let series: [(&str, Vec<(f64, f64)>); 4] = [
            ("postgresql MiB", points(steady, |s| Some(s.postgres_mib))),
            ("kafka MiB", points(steady, |s| Some(s.kafka_mib))),
            ("tributary RSS MiB", points(steady, |s| s.rss_mib)),
            ("lag (records)", points(steady, |s| s.lag.map(|l| l as f64))),
        ];
        let quantile = |q: fn(&LatencyWindow) -> Option<f64>| -> Vec<(f64, f64)> {
            latency
                .trend_windows
                .iter()
                .filter_map(|w| Some((w.end_s, q(w)?)))
                .collect()
        };
        let duration = args.minutes * 60.0;
        let mut trends: Vec<Trend> = series
            .iter()
            .map(|(what, points)| trend(what, points, duration))
            .collect();
        trends.push(trend("p50 latency ms", &quantile(|w| w.p50_ms), duration));
        trends.push(trend("p99 latency ms", &quantile(|w| w.p99_ms), duration));
        let cassandra_mib_per_million = match (steady.first(), steady.last()) {
            (Some(a), Some(b)) if b.written > a.written => {
                Some((b.cassandra_mib - a.cassandra_mib) / ((b.written - a.written) as f64 / 1e6))
            }
            _ => None,
        };
        Report {
            name: name.to_owned(),
            minutes: args.minutes,
            rate_per_s: rate,
            seed: args.seed,
            verdict,
            faults,
            injected,
            trends,
            cassandra_mib_per_million,
            latency: latency.windows,
            trend_latency: latency.trend_windows,
            samples,
        }
    }

    pub fn passed(&self) -> bool {
        let v = &self.verdict;
        v.error.is_none()
            && v.drained
            && v.users_staged > 0
            && v.users_in_cassandra == v.users_staged
            && v.verify_missing == 0
            && v.verify_duplicated == 0
            && v.verify_unexpected == 0
            && v.verify_aggregate_errors == 0
            && v.reconciler_failed_runs == 0
            && v.reconciler_aggregate_ok == Some(true)
            && self.injected.iter().all(|f| f.error.is_none())
            && (!self.trends_enforced() || self.trends.iter().all(|t| t.flat))
    }

    /// See `soak::trends_enforced`.
    pub fn trends_enforced(&self) -> bool {
        super::trends_enforced(self.minutes)
    }
}

/// The CPU `component` used per record staged between the samples nearest `from_s` and
/// `to_s`, in microseconds: summed over consecutive samples, leaving out each interval
/// in which it restarted (its processes' CPU time starts again from zero, and what the
/// killed ones used is gone) together with the records staged in it.
pub(super) fn us_per_record(
    samples: &[Sample],
    component: &str,
    from_s: f64,
    to_s: f64,
) -> Option<f64> {
    let nearest = |t: f64| {
        (0..samples.len()).min_by(|&a, &b| {
            (samples[a].t_s - t)
                .abs()
                .total_cmp(&(samples[b].t_s - t).abs())
        })
    };
    let (from, to) = (nearest(from_s)?, nearest(to_s)?);
    let (mut cpu_s, mut records) = (0.0, 0_u64);
    for pair in samples.get(from..=to)?.windows(2) {
        let (Some(a), Some(b)) = (pair[0].cpu_s.get(component), pair[1].cpu_s.get(component))
        else {
            continue;
        };
        let same_process =
            component != "tributary" || pair[0].tributary_pid == pair[1].tributary_pid;
        if b >= a && same_process {
            cpu_s += b - a;
            records += pair[1].staged.saturating_sub(pair[0].staged);
        }
    }
    (records > 0).then(|| cpu_s * 1e6 / records as f64)
}

pub(super) fn points(
    samples: &[Sample],
    value: impl Fn(&Sample) -> Option<f64>,
) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter_map(|s| Some((s.t_s, value(s)?)))
        .collect()
}

/// The middle third's median against the last third's, of points over `duration` s.
///
/// Medians, not means: the soak draws a fault every 30–90 s, and the kill of a
/// single-node Kafka or Cassandra stops the pipeline for as long as that server takes to
/// restart (20–30 s for Kafka; once, a commit-log replay of 97 s for Cassandra). Those
/// few windows and samples land in one third or the other by the luck of the draw and,
/// averaged, decide the verdict (the first hour-long soaks failed that way; since the
/// third hour-long soak, each third replays one fault plan, see `soak::plan`). What grows
/// with the record count — a table, an index, a map, a backlog — moves the typical
/// window, which the median is. The cost of each fault is the chaos suite's to report
/// (recovery and drain per fault kind), and the report lists the faults in every window.
fn trend(what: &str, points: &[(f64, f64)], duration: f64) -> Trend {
    let median = |from: f64, to: f64| {
        let mut inside: Vec<f64> = points
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, y)| *y)
            .collect();
        inside.sort_by(f64::total_cmp);
        match inside.len() {
            0 => 0.0,
            n if n % 2 == 1 => inside[n / 2],
            n => f64::midpoint(inside[n / 2 - 1], inside[n / 2]),
        }
    };
    let (middle, last) = (
        median(duration / 3.0, 2.0 * duration / 3.0),
        median(2.0 * duration / 3.0, f64::INFINITY),
    );
    let (slack, ceiling) = BOUNDS
        .iter()
        .find(|(w, _, _)| *w == what)
        .map_or((0.0, None), |(_, s, c)| (*s, *c));
    let limit = ceiling.map_or(middle * 1.5 + slack, |c| (middle * 1.5 + slack).min(c));
    Trend {
        what: what.to_owned(),
        middle,
        last,
        limit,
        flat: last <= limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_series_is_flat_and_a_growing_one_is_not() {
        let level: Vec<(f64, f64)> = (0..60).map(|t| (f64::from(t), 100.0)).collect();
        assert!(trend("postgresql MiB", &level, 60.0).flat);
        // Growing with time (and so with the record count): 10 → 600 MiB.
        let rising: Vec<(f64, f64)> = (0..60)
            .map(|t| (f64::from(t), 10.0 * f64::from(t + 1)))
            .collect();
        let t = trend("postgresql MiB", &rising, 60.0);
        assert!(!t.flat, "{t:?}");
    }

    #[test]
    fn a_few_outage_windows_are_not_growth_but_a_rising_typical_window_is() {
        // Minute windows with p99 250 ms, and in the last third three minutes of a
        // killed store's outage at the 30 s cap: the typical minute did not change.
        let outages = |t: u32| matches!(t, 45 | 51 | 52);
        let faulted: Vec<(f64, f64)> = (0..60)
            .map(|t| (f64::from(t), if outages(t) { 30_000.0 } else { 250.0 }))
            .collect();
        assert!(trend("p99 latency ms", &faulted, 60.0).flat);
        // Every minute of the last third 4 × slower: growth, whatever the outages.
        let slower: Vec<(f64, f64)> = faulted
            .iter()
            .map(|&(t, y)| (t, if t >= 40.0 { y.max(1_000.0) } else { y }))
            .collect();
        assert!(!trend("p99 latency ms", &slower, 60.0).flat);
    }

    #[test]
    fn cpu_per_record_leaves_out_restarts() {
        let sample = |t_s: f64, staged: u64, cpu: f64| Sample {
            t_s,
            staged,
            cpu_s: BTreeMap::from([("postgres".to_owned(), cpu)]),
            ..Sample::default()
        };
        // 10 s of CPU per million records, and a restart between 2 and 3 (CPU 25 → 1).
        let samples = [
            sample(0.0, 0, 5.0),
            sample(1.0, 1_000_000, 15.0),
            sample(2.0, 2_000_000, 25.0),
            sample(3.0, 3_000_000, 1.0),
            sample(4.0, 4_000_000, 11.0),
        ];
        let us = us_per_record(&samples, "postgres", 0.0, 4.0).unwrap();
        assert!((us - 10.0).abs() < 1e-9, "{us}");
        assert_eq!(us_per_record(&samples, "postgres", 2.0, 3.0), None);
        assert_eq!(us_per_record(&samples, "kafka", 0.0, 4.0), None);
    }

    #[test]
    fn latency_level_but_behind_is_not_flat() {
        // The 36-minute soak's p99: at the 30 s cap in the middle and the last third.
        let capped: Vec<(f64, f64)> = (0..60).map(|t| (f64::from(t), 30_000.0)).collect();
        assert!(!trend("p99 latency ms", &capped, 60.0).flat);
        let healthy: Vec<(f64, f64)> = (0..60).map(|t| (f64::from(t), 4_000.0)).collect();
        assert!(trend("p99 latency ms", &healthy, 60.0).flat);
    }
}
