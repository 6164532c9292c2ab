//! `tributary-chaos soak`: one tributary for a long time at a steady rate, a fault from
//! the chaos catalogue every 30–90 s (seeded, one plan per third: see [`plan`]),
//! retention shortened so that it acts many times, the reconciler on. Samples every few
//! seconds what must stay flat as the record count grows (PostgreSQL's tables and
//! indexes, Kafka's disk, tributary's RSS, lag, latency), then drains, asks the
//! reconciler and `verify`, and writes the report ([`report`]). `make soak` runs it for
//! an hour; `make soak-ci` for 5 minutes.

mod render;
mod report;
mod sample;

use crate::fault::{self, Source};
use crate::instance::Run;
use crate::runner;
use crate::scenario::{self, Fault, Link, Schedule};
use crate::settings::Settings;
use crate::toxiproxy::Toxiproxy;
use crate::watch::{self, Progressor};
use anyhow::Context as _;
use sample::Sample;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tributary::config::Config;

/// The with-ingestion peak of the last `make bench` in the README (2 cores): the rate
/// defaults to half of it when target/bench/report.json is not there.
const README_PEAK_PER_S: f64 = 15_082.0;
/// The prefix of every soak's names.
pub const PREFIX: &str = "soak_";
/// A run is fetched every this often: `rate × RUN_EVERY` users each.
const RUN_EVERY: Duration = Duration::from_millis(200);
/// How long after the last run everything must have drained.
const DRAIN_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long the steady run lasts, in minutes.
    #[arg(long, default_value_t = 60.0)]
    pub minutes: f64,
    /// Users per second (default: half of the with-ingestion peak of the last
    /// `make bench`, from target/bench/report.json, else of the README's).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seeds the fault draws and their moments: the same seed, the same faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub sample_s: u64,
    /// Report directory.
    #[arg(long, default_value = "target/soak")]
    pub out: PathBuf,
    /// Route tributary's links to the stores through Toxiproxy and draw link faults
    /// (latency, resets, timeouts, bandwidth) too. Off by default: the proxies cost
    /// CPU that two cores do not have at the default rate (see the README).
    #[arg(long)]
    pub links: bool,
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub at_s: f64,
    /// When the plan had it: later by as much as the fault before it overran its gap.
    pub planned_s: f64,
    pub scenario: String,
    pub hold_ms: u64,
    /// Injecting or healing it failed (the soak goes on; the report says so).
    pub error: Option<String>,
}

/// What the soak found at the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub users_staged: u64,
    pub users_in_cassandra: u64,
    pub drained: bool,
    pub drain_s: Option<f64>,
    pub verify_missing: u64,
    pub verify_duplicated: u64,
    pub verify_unexpected: u64,
    pub verify_aggregate_errors: usize,
    pub verify_runs: u64,
    /// The check's wall time and peak RSS (it scans every row of created_users).
    pub verify_wall_s: Option<f64>,
    pub verify_peak_rss_mib: Option<f64>,
    pub reconciler_failed_runs: u64,
    pub reconciler_aggregate_ok: Option<bool>,
    pub reconciler_aggregate_checks: u64,
    pub reconciler_unreconciled: u64,
    pub restarts: usize,
    pub rebootstraps: usize,
    pub error: Option<String>,
}

/// The soak's retention and reconciler settings, scaled to its length: retention acts
/// many times within it (the outbox's every `minutes × 2 s`, at least 30 s).
fn upkeep_env(minutes: f64) -> Vec<(String, String)> {
    let outbox_ms = ((minutes * 2_000.0) as u64).max(30_000);
    [
        ("TRIBUTARY__RETENTION__OUTBOX_MS", outbox_ms),
        ("TRIBUTARY__RETENTION__RUNS_MS", outbox_ms * 2),
        ("TRIBUTARY__RETENTION__QUARANTINE_MS", outbox_ms),
        ("TRIBUTARY__RETENTION__INTERVAL_MS", 5_000),
        ("TRIBUTARY__RECONCILE__AFTER_MS", 15_000),
        // Faults hold 2–5 s; a restarted Cassandra takes a minute to come back.
        ("TRIBUTARY__RECONCILE__DEADLINE_MS", 300_000),
        ("TRIBUTARY__RECONCILE__INTERVAL_MS", 2_000),
        ("TRIBUTARY__RECONCILE__AGGREGATE_INTERVAL_MS", 5_000),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_string()))
    .collect()
}

/// Topic retention for the soak: Kafka deletes whole segments, so segments roll every
/// minute and go after `minutes × 4 s` (at least 2 minutes).
fn topic_retention(config: &mut Config, minutes: f64) {
    let retention_ms = ((minutes * 4_000.0) as u64).max(120_000).to_string();
    for topic in [&mut config.kafka.topics.raw, &mut config.kafka.topics.dlq] {
        topic
            .config
            .insert("retention.ms".into(), retention_ms.clone());
        topic.config.insert("segment.ms".into(), "60000".into());
    }
}

fn default_rate() -> f64 {
    let from_bench = std::fs::read_to_string("target/bench/report.json")
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|report| report["source_peak_per_s"].as_f64())
        .filter(|peak| *peak > 0.0);
    from_bench.unwrap_or(README_PEAK_PER_S) / 2.0
}

/// The faults a soak draws from: every fault of the short catalogue (2–5 s holds), the
/// link faults only with `links`.
fn faults(links: bool) -> Vec<scenario::Scenario> {
    scenario::catalogue()
        .into_iter()
        .filter(|s| !s.long() && (links || !matches!(s.fault, Fault::Link(..))))
        .collect()
}

/// A soak shorter than half an hour cannot tell warm-up from growth: its trends are
/// reported, not enforced (and it draws one fault plan for its whole length).
fn trends_enforced(minutes: f64) -> bool {
    minutes >= 30.0
}

/// The shortest time between one fault's heal and the next fault.
const MIN_GAP: Duration = Duration::from_secs(30);

/// When each fault is injected (from the soak's start) and which, by its index in the
/// catalogue and its position in the plan (which seeds its hold).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Planned {
    at: Duration,
    scenario: usize,
    position: usize,
}

/// A fault every 30–90 s, drawn (seeded) for one `period` and played again in each
/// following period until `duration`. A soak whose trends are enforced plays one plan per
/// third: the middle and the last third, which the trends compare, then meet the same
/// faults at the same planned moments and differ only in the records behind them (a
/// fault whose predecessor overran its gap waits `MIN_GAP` after it; the report counts
/// those). Drawn apart, a third that drew two Cassandra kills against one that drew none
/// decided the verdict (the third hour-long soak: p99's median 0.7 s in the middle
/// third, 9 s in the last).
fn plan(draw: &mut Draw, faults: usize, period: Duration, duration: Duration) -> Vec<Planned> {
    let gap = |draw: &mut Draw| MIN_GAP + Duration::from_secs_f64(60.0 * draw.next());
    let mut one_period = Vec::new();
    let mut at = gap(draw);
    while at < period {
        let scenario = (draw.next() * faults as f64) as usize % faults;
        one_period.push((at, scenario));
        at += gap(draw);
    }
    let mut plan = Vec::new();
    let mut start = Duration::ZERO;
    while start < duration {
        for (position, &(offset, scenario)) in one_period.iter().enumerate() {
            if start + offset < duration {
                plan.push(Planned {
                    at: start + offset,
                    scenario,
                    position,
                });
            }
        }
        start += period;
    }
    plan
}

/// A seeded stream of unit fractions (splitmix64).
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Runs the soak; `Ok(true)` when nothing was lost or duplicated, the aggregates held
/// and nothing trended upward.
pub async fn soak(settings: &Settings, args: &SoakArgs) -> anyhow::Result<bool> {
    let rate = args.rate.unwrap_or_else(default_rate);
    let per_run = ((rate * RUN_EVERY.as_secs_f64()).round() as u32).clamp(1, 5_000);
    let runs = ((args.minutes * 60.0) / RUN_EVERY.as_secs_f64()).ceil() as u64;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("{PREFIX}{}_{}", args.seed, &suffix[..6]);
    let mut config = settings.config()?;
    config.isolate(&name);
    topic_retention(&mut config, args.minutes);
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    println!(
        "soak: {name}: {per_run} users every {} ms (≈{:.0}/s) for {} min, a fault every 30–90 s (seed {})",
        RUN_EVERY.as_millis(),
        f64::from(per_run) / RUN_EVERY.as_secs_f64(),
        args.minutes,
        args.seed
    );

    let address = tributary::source::server::stable_loopback_address()?;
    let mut source = Source {
        config: config.source.clone(),
        address,
        running: Some(tributary::source::server::spawn_at(
            &config.source,
            address,
        )?),
    };
    // With --links, every link through Toxiproxy from the start, so that any link fault
    // can be drawn.
    let toxiproxy = Toxiproxy::new(&settings.toxiproxy_api);
    let links: Vec<(Link, String)> = if args.links {
        vec![
            (Link::Postgres, format!("{name}-postgres")),
            (Link::Kafka, format!("{name}-kafka")),
            (Link::Cassandra, format!("{name}-cassandra")),
        ]
    } else {
        Vec::new()
    };
    let mut env = runner::workload_env(
        &config,
        address,
        per_run,
        RUN_EVERY.as_millis() as u64,
        runs,
    );
    for (link, proxy) in &links {
        env.extend(fault::route_through_proxy(&toxiproxy, proxy, *link, &config).await?);
    }
    env.extend(upkeep_env(args.minutes));
    let mut run = Run {
        settings,
        config: &config,
        name: name.clone(),
        env,
        instances: Vec::new(),
        logs: Vec::new(),
    };
    run.start_instance()?;

    let outcome = drive(
        &mut run,
        &config,
        &toxiproxy,
        &links,
        &mut source,
        args,
        runs,
    )
    .await;
    for instance in &mut run.instances {
        instance.kill();
    }
    if let Some(running) = source.running.take() {
        running.stop(true).await;
    }
    for (_, proxy) in &links {
        toxiproxy.delete(proxy).await;
    }
    let Outcome {
        samples,
        windows,
        trend_windows,
        injected,
        mut verdict,
    } = outcome;
    verdict.restarts = run.restarts();
    verdict.rebootstraps = run.rebootstraps();
    let latency = report::Latency {
        windows,
        trend_windows,
    };
    let report = report::Report::new(args, rate, &name, samples, latency, injected, verdict);
    report.write(&args.out)?;
    println!("\n{}", report.markdown());
    Ok(report.passed())
}

/// Runs `tributary verify --json` with the soak's environment; returns its report, wall
/// time and peak resident memory (VmHWM, polled while it runs).
async fn verify_cli(run: &Run<'_>) -> anyhow::Result<(serde_json::Value, f64, Option<f64>)> {
    let started = Instant::now();
    let child = std::process::Command::new(&run.settings.tributary_bin)
        .args(["verify", "--json"])
        .envs(run.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("start tributary verify")?;
    let pid = child.id();
    let peak = std::sync::Arc::new(std::sync::Mutex::new(None::<f64>));
    let watcher = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
                if let Some(kib) = hwm {
                    *peak.lock().unwrap_or_else(|p| p.into_inner()) = Some(kib / 1_024.0);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .context("verify task")??;
    watcher.abort();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("verify printed no report (exit {})", output.status))?;
    let peak = *peak.lock().unwrap_or_else(|p| p.into_inner());
    Ok((report, started.elapsed().as_secs_f64(), peak))
}

/// What [`drive`] brings back.
struct Outcome {
    samples: Vec<Sample>,
    windows: Vec<sample::LatencyWindow>,
    trend_windows: Vec<sample::LatencyWindow>,
    injected: Vec<Injected>,
    verdict: Verdict,
}

/// The steady run with its faults, the drain and the checks.
async fn drive(
    run: &mut Run<'_>,
    config: &Config,
    toxiproxy: &Toxiproxy,
    links: &[(Link, String)],
    source: &mut Source,
    args: &SoakArgs,
    runs: u64,
) -> Outcome {
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let catalogue = faults(args.links);
    let mut draw = Draw(args.seed ^ 0x50a6_50a6);
    let mut sampler = sample::Sampler::new(config, run.settings).await;
    // The report's windows: 5 minutes for an hour, 30 s for a short soak. The trend's:
    // a minute (a short soak's trends are not enforced).
    let (report_window, trend_window) = if trends_enforced(args.minutes) {
        (Duration::from_secs(300), Duration::from_secs(60))
    } else {
        (Duration::from_secs(30), Duration::from_secs(30))
    };
    sampler.windows = sample::Windows::new(report_window);
    sampler.trend_windows = sample::Windows::new(trend_window);
    let mut samples = Vec::new();
    let mut injected = Vec::new();
    let mut verdict = Verdict::default();
    let interval = Duration::from_secs(args.sample_s.max(1));
    let period = if trends_enforced(args.minutes) {
        duration / 3
    } else {
        duration
    };
    let mut plan = plan(&mut draw, catalogue.len(), period, duration).into_iter();
    let mut next_fault = plan.next();
    // A fault's own injection (a restart waits until the service is ready) can outlast
    // its gap: the next one then waits for the quiet time the plan's gaps promise.
    let mut quiet_until = Duration::ZERO;
    let mut next_sample = Duration::ZERO;
    while started.elapsed() < duration {
        if started.elapsed() >= next_sample {
            let windows = sampler.windows.closed.len();
            let sample = sampler.take(run, started).await;
            if let Some(w) = sampler.windows.closed.get(windows) {
                let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
                println!(
                    "soak: {:>6.0} s  written {}  p50 {} ms  p99 {} ms  rss {} MiB  postgresql {:.0} MiB  kafka {:.0} MiB  lag {}",
                    w.end_s,
                    sample.written,
                    ms(w.p50_ms),
                    ms(w.p99_ms),
                    ms(sample.rss_mib),
                    sample.postgres_mib,
                    sample.kafka_mib,
                    sample.lag.map_or("-".into(), |l| l.to_string())
                );
            }
            samples.push(sample);
            next_sample += interval;
        }
        if let Some(planned) = next_fault.filter(|p| started.elapsed() >= p.at.max(quiet_until)) {
            let scenario = &catalogue[planned.scenario];
            let schedule = Schedule::new(
                args.seed,
                &format!("{}-{}", scenario.name, planned.position),
                scenario.hold,
            );
            let proxy = match scenario.fault {
                Fault::Link(link, _) => links
                    .iter()
                    .find(|(l, _)| *l == link)
                    .map(|(_, p)| p.as_str()),
                _ => None,
            }
            .unwrap_or_default();
            let at_s = started.elapsed().as_secs_f64();
            println!(
                "soak: {:>6.0} s  {} ({} ms)",
                at_s, scenario.name, schedule.hold_ms
            );
            let backend = run.settings.backend.clone();
            let result = fault::inject(
                run,
                &backend,
                toxiproxy,
                proxy,
                source,
                scenario.fault,
                schedule,
            )
            .await;
            injected.push(Injected {
                at_s,
                planned_s: planned.at.as_secs_f64(),
                scenario: scenario.name.clone(),
                hold_ms: schedule.hold_ms,
                error: result.err().map(|e| format!("{e:#}")),
            });
            quiet_until = started.elapsed() + MIN_GAP;
            next_fault = plan.next();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The drain: every run staged, published and in Cassandra.
    let drain_started = Instant::now();
    let mut probe = Progressor {
        config,
        probe: None,
    };
    let drained = watch::wait_for(DRAIN_DEADLINE, async || {
        let p = probe.read().await?;
        p.drained(runs as i64).then_some(p)
    })
    .await;
    samples.push(sampler.take(run, started).await);
    verdict.drained = drained.is_some();
    if let Some(p) = drained {
        verdict.drain_s = Some(drain_started.elapsed().as_secs_f64());
        verdict.users_staged = p.staged.unsigned_abs();
        verdict.users_in_cassandra = p.written.unsigned_abs();
    } else {
        verdict.error = Some(format!("did not drain within {DRAIN_DEADLINE:?}"));
        return Outcome {
            samples,
            windows: sampler.windows.closed,
            trend_windows: sampler.trend_windows.closed,
            injected,
            verdict,
        };
    }

    // The reconciler: every run judged, and an aggregate check after the drain.
    let drained_at = chrono::Utc::now();
    let reconciled = watch::wait_for(Duration::from_secs(180), async || {
        let r = sampler.reconciliation(run).await?;
        let checked_after = r
            .aggregates
            .as_ref()
            .is_some_and(|a| a.checked_at > drained_at);
        (r.unreconciled == 0 && checked_after).then_some(r)
    })
    .await;
    match reconciled.or(sampler.reconciliation(run).await) {
        Some(r) => {
            verdict.reconciler_failed_runs = r.failed_runs.values().sum();
            verdict.reconciler_aggregate_ok = r.aggregates.as_ref().map(|a| a.ok);
            verdict.reconciler_unreconciled = r.unreconciled;
        }
        None => verdict.error = Some("the reconciler's findings could not be read".into()),
    }
    verdict.reconciler_aggregate_checks = sampler.aggregate_checks;

    // `tributary verify` itself, as an operator runs it: its wall time and peak RSS.
    match verify_cli(run).await {
        Ok((report, wall_s, peak_mib)) => {
            let n = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
            verdict.verify_missing = n("missing");
            verdict.verify_duplicated = n("duplicated");
            verdict.verify_unexpected = n("unexpected");
            verdict.verify_aggregate_errors = report["aggregate_errors"]
                .as_array()
                .map_or(usize::MAX, Vec::len);
            verdict.verify_runs = n("runs");
            verdict.verify_wall_s = Some(wall_s);
            verdict.verify_peak_rss_mib = peak_mib;
        }
        Err(error) => verdict.error = Some(format!("verify: {error:#}")),
    }
    Outcome {
        samples,
        windows: sampler.windows.closed,
        trend_windows: sampler.trend_windows.closed,
        injected,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_third_meets_the_same_faults_at_the_same_moments() {
        let hour = Duration::from_secs(3_600);
        let third = hour / 3;
        let plan = plan(&mut Draw(7), 17, third, hour);
        let of = |k: u32| -> Vec<(Duration, usize, usize)> {
            plan.iter()
                .filter(|p| p.at >= third * k && p.at < third * (k + 1))
                .map(|p| (p.at - third * k, p.scenario, p.position))
                .collect()
        };
        // 20 minutes of gaps of 30–90 s.
        assert!((13..=40).contains(&of(0).len()), "{}", of(0).len());
        assert_eq!(of(0), of(1));
        assert_eq!(of(1), of(2));
        let gaps_ok = of(0)
            .windows(2)
            .all(|w| (30..=90).contains(&(w[1].0 - w[0].0).as_secs()));
        assert!(gaps_ok);
        // More than one kind of fault, and every index within the catalogue.
        assert!(plan.iter().any(|p| p.scenario != plan[0].scenario));
        assert!(plan.iter().all(|p| p.scenario < 17));
    }

    #[test]
    fn a_short_soak_draws_one_plan_for_its_whole_length() {
        let five = Duration::from_secs(300);
        let plan = plan(&mut Draw(1), 17, five, five);
        assert!((3..=10).contains(&plan.len()), "{}", plan.len());
        let positions: Vec<usize> = plan.iter().map(|p| p.position).collect();
        assert_eq!(positions, (0..plan.len()).collect::<Vec<_>>());
    }
}
