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
    /// Latency only, in a soak whose thirds replay one fault plan: each minute of the
    /// last third against the middle third's minute at the same offset (the same planned
    /// fault), and how many of those pairs passed the limit of their own middle minute.
    pub paired: Option<Paired>,
    pub flat: bool,
}

/// The latency minutes of the last third, each against its middle-third twin.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Paired {
    pub pairs: usize,
    /// Pairs whose last-third minute passed `middle minute × 1.5 + slack`.
    pub worse: usize,
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
        for (what, q) in [
            (
                "p50 latency ms",
                (|w| w.p50_ms) as fn(&LatencyWindow) -> Option<f64>,
            ),
            ("p99 latency ms", |w| w.p99_ms),
        ] {
            let points = quantile(q);
            let mut latency = trend(what, &points, duration);
            if super::trends_enforced(args.minutes) {
                latency.pair_thirds(&points, duration);
            }
            trends.push(latency);
        }
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
    let (slack, ceiling) = bounds(what);
    let limit = ceiling.map_or(middle * 1.5 + slack, |c| (middle * 1.5 + slack).min(c));
    Trend {
        what: what.to_owned(),
        middle,
        last,
        limit,
        paired: None,
        flat: last <= limit,
    }
}

/// The slack and the ceiling of `what` (see `BOUNDS`).
fn bounds(what: &str) -> (f64, Option<f64>) {
    BOUNDS
        .iter()
        .find(|(w, _, _)| *w == what)
        .map_or((0.0, None), |(_, s, c)| (*s, *c))
}

/// The most pairs a flat latency may have worse: half. A trend with the record count
/// slows the typical minute, faulted or not, so most pairs get worse; a fault whose
/// recovery took a little longer this time makes one or two.
const MAX_WORSE_SHARE: f64 = 0.5;

impl Trend {
    /// Judges a latency series by pairs of minutes instead of the thirds' medians: the
    /// middle and the last third meet the same faults at the same planned moments
    /// (`soak::plan`), so the minute at offset k of one is the other's twin. In the
    /// hour-long soaks about half of all minutes carry a fault's cost (2–9 s after a
    /// panic or a tributary kill, 28–30 s around a Kafka or PostgreSQL kill), so a
    /// third's median sits on the edge between the two kinds and a recovery a few
    /// seconds longer in one third moved it from 362 ms to 1,753 ms (the fourth hour,
    /// whose fault-free minutes held 258–392 ms in every third). Paired, that is one
    /// worse pair; growth is most pairs. The last third's median must still stay under
    /// the ceiling: a pipeline behind in both thirds is not healthy.
    fn pair_thirds(&mut self, points: &[(f64, f64)], duration: f64) {
        let third = duration / 3.0;
        // Windows close at the sampler's ticks, a little over their length apart: the
        // twin is the last-third window ending nearest a third later, within one window.
        let window = points
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .fold(f64::INFINITY, f64::min);
        let twin = |t: f64| {
            let at = t + third;
            points
                .iter()
                .filter(|(u, _)| *u >= 2.0 * third && (u - at).abs() <= window)
                .min_by(|a, b| (a.0 - at).abs().total_cmp(&(b.0 - at).abs()))
        };
        let (slack, ceiling) = bounds(&self.what);
        let (mut pairs, mut worse) = (0, 0);
        for &(t, middle) in points
            .iter()
            .filter(|(t, _)| *t >= third && *t < 2.0 * third)
        {
            if let Some(&(_, last)) = twin(t) {
                pairs += 1;
                worse += usize::from(last > middle * 1.5 + slack);
            }
        }
        if pairs == 0 {
            return; // nothing to pair: the thirds' medians decide
        }
        self.paired = Some(Paired { pairs, worse });
        self.flat = worse as f64 <= pairs as f64 * MAX_WORSE_SHARE
            && self.last <= ceiling.unwrap_or(f64::INFINITY);
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

    /// Minute windows ending at 61, 122, … s over an hour (windows close at the
    /// sampler's ticks), p99 from `ms(minute)`.
    fn minutes(ms: impl Fn(u32) -> f64) -> Vec<(f64, f64)> {
        (1..=59).map(|m| (f64::from(m) * 61.0, ms(m))).collect()
    }

    fn paired(points: &[(f64, f64)]) -> Trend {
        let mut t = trend("p99 latency ms", points, 3600.0);
        t.pair_thirds(points, 3600.0);
        t
    }

    #[test]
    fn pairs_tell_a_longer_recovery_from_growth() {
        // The fourth hour's shape: every third replays one plan, the minutes at offsets
        // 1, 3, 4, 7, 8, 11, 13, 14, 16 and 18 of each third carry a fault's cost
        // (2–9 s; 30 s at offset 14), the rest hold 300 ms.
        let cost = |m: u32| match m % 20 {
            14 => Some(30_000.0),
            1 | 3 | 4 | 7 | 8 | 11 | 13 | 16 | 18 => Some(2_000.0 + f64::from(m % 7) * 1_000.0),
            _ => None,
        };
        // In the last third two recoveries spill into the next minute (offsets 5, 15)
        // and the 2–9 s ones take 40 % longer: the thirds' medians (1.2 s against
        // 4.9 s) call it rising; paired, 4 of 20 minutes are worse.
        let longer = minutes(|m| match (m >= 40, cost(m)) {
            (false, c) => c.unwrap_or(300.0),
            (true, Some(c)) => (c * 1.4).min(30_000.0),
            (true, None) if matches!(m % 20, 5 | 15) => 9_000.0,
            (true, None) => 300.0,
        });
        let unpaired = trend("p99 latency ms", &longer, 3600.0);
        let t = paired(&longer);
        let p = t.paired.unwrap();
        assert_eq!(p.pairs, 20, "{t:?}");
        assert!(p.worse <= 4, "{t:?}");
        assert!(t.flat, "{t:?}");
        // Growth: every minute of the last third three times as slow, faulted or not
        // (what a table or a backlog growing with the record count does; 300 → 600 ms
        // is within the 250 ms slack, 900 ms is not).
        let slower = minutes(|m| {
            let y = cost(m).unwrap_or(300.0);
            if m >= 40 { (y * 3.0).min(30_000.0) } else { y }
        });
        let t = paired(&slower);
        assert!(!t.flat, "{t:?}");
        assert!(t.paired.unwrap().worse >= 10, "{t:?}");
        // The thirds' medians alone call the longer recoveries growth.
        assert!(!unpaired.flat, "{unpaired:?}");
    }

    #[test]
    fn paired_latency_behind_in_both_thirds_is_not_flat() {
        // No pair worse than its twin, but the last third at the 30 s cap: behind.
        let capped = minutes(|_| 30_000.0);
        let t = paired(&capped);
        assert_eq!(t.paired.unwrap().worse, 0, "{t:?}");
        assert!(!t.flat, "{t:?}");
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
