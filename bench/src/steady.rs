//! Steady-rate runs: latency from the staging commit to the Cassandra commit (the
//! `tributary_staged_to_committed_seconds` histogram), and tributary's resident memory
//! over time.
//!
//! - **source** (`make bench`): tributary fetches from the embedded source (in this
//!   process), parses, stages, publishes and writes — the whole service — at half of the
//!   peak of that same path ([`source_peak`]). Half of the pre-staged rate would not be
//!   half of peak load: that rate drains a backlog staged beforehand, while a steady
//!   workload also stages every record (measured: at half the pre-staged rate, 13,150/s,
//!   two cores fell behind — 10,865/s achieved, p99 past 30 s).
//! - **outbox** (`--steady-only`): the bench stages a run into the PostgreSQL outbox every
//!   100 ms at a given rate: tuning latency and memory without the source.

use crate::process::{Instance, Reading, sample_until};
use crate::{Args, SEED, cpu, isolated, prestage, report, run_env, settle, sustained};
use anyhow::Context as _;
use std::time::{Duration, Instant};
use tributary::config::Config;

/// One run is staged (or fetched) every this often: small runs often, as one would poll
/// an API; a large page every few seconds would add its own staging time to latency.
const RUN_EVERY: Duration = Duration::from_millis(100);

/// A steady run's schedule: `runs` runs of `per_run` users, one every [`RUN_EVERY`].
struct Plan {
    per_run: u64,
    runs: u64,
    users: u64,
}

impl Plan {
    /// `rate` users/s for `minutes`, announced under `path`.
    fn new(path: &str, rate: f64, minutes: f64) -> Self {
        let per_run = ((rate * RUN_EVERY.as_secs_f64()).round() as u64).clamp(1, 5_000);
        let runs = ((minutes * 60.0) / RUN_EVERY.as_secs_f64()).ceil() as u64;
        eprintln!(
            "bench: steady ({path}): {per_run} users every {} ms (≈{:.0}/s) for {minutes} min",
            RUN_EVERY.as_millis(),
            per_run as f64 / RUN_EVERY.as_secs_f64(),
        );
        Self {
            per_run,
            runs,
            users: runs * per_run,
        }
    }
}

/// The steady run fed into the outbox at `rate` users/s for `args.steady_minutes`.
pub async fn outbox(args: &Args, rate: f64) -> anyhow::Result<report::Steady> {
    let config = isolated("steady")?;
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    let Plan {
        per_run,
        runs,
        users,
    } = Plan::new("outbox", rate, args.steady_minutes);
    let pool = tributary_actors::store::postgres::pool(&config.postgres)?;
    // Run 0 is in the ledger before tributary starts: with `max_runs` 1 its scheduler
    // never adds a run of its own, and every run comes from the feeder below.
    prestage::stage_run(&mut pool.get().await?, &config, SEED, 0, per_run).await?;
    let env = run_env(&config, &[("TRIBUTARY__INGEST__MAX_RUNS", "1".into())]);
    settle().await;
    let before = cpu::sample(&[], Some("bench feeder"));
    let mut running = vec![Instance::start(
        &args.tributary,
        "steady-outbox",
        &env,
        &args.out,
    )?];
    let feeder = {
        let (config, pool) = (config.clone(), pool.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(RUN_EVERY);
            let mut client = pool.get().await?;
            for run in 1..runs {
                tick.tick().await;
                prestage::stage_run(&mut client, &config, SEED, run, per_run).await?;
            }
            Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64())
        })
    };
    let limit = Duration::from_secs_f64(args.steady_minutes * 60.0 + 600.0);
    let readings = sample_until(&mut running, Duration::from_secs(1), limit, |r| {
        r.written >= users
    })
    .await?;
    let fed_s = feeder.await??;
    finish(
        &config,
        "outbox: staged by the bench",
        running,
        readings,
        &before,
        rate,
        users as f64 / fed_s.max(1e-9),
        users,
        "bench feeder",
    )
    .await
}

/// The whole service's peak through the embedded source: `users` users fetched in
/// pages of 5,000 as fast as the path takes them; records/s from the first publish to
/// the last Cassandra commit.
pub async fn source_peak(args: &Args, users: u64) -> anyhow::Result<f64> {
    let config = isolated("srcpeak")?;
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    let (source, address) = tributary::source::server::spawn_on_loopback(&config.source)?;
    let pages = users.div_ceil(5_000);
    let env = source_env(&config, &address, 5_000, pages, "all");
    settle().await;
    let mut running = vec![Instance::start(
        &args.tributary,
        "source-peak",
        &env,
        &args.out,
    )?];
    let total = pages * 5_000;
    let readings = sample_until(
        &mut running,
        Duration::from_millis(500),
        Duration::from_secs(1_200),
        |r| r.written >= total,
    )
    .await?;
    for instance in running {
        instance.stop();
    }
    source.stop(true).await;
    crate::cleanup::tidy(&config).await;
    Ok(sustained(&readings, total))
}

/// The steady run through the embedded source at `rate` users/s for `minutes`.
pub async fn source(args: &Args, rate: f64, minutes: f64) -> anyhow::Result<report::Steady> {
    let config = isolated("steadysrc")?;
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;
    let (source, address) = tributary::source::server::spawn_on_loopback(&config.source)?;
    let Plan {
        per_run,
        runs,
        users,
    } = Plan::new("source", rate, minutes);
    let env = source_env(&config, &address, per_run, runs, "latest");
    settle().await;
    let before = cpu::sample(&[], Some("bench source"));
    let started = Instant::now();
    let mut running = vec![Instance::start(
        &args.tributary,
        "steady-source",
        &env,
        &args.out,
    )?];
    let limit = Duration::from_secs_f64(minutes * 60.0 + 600.0);
    let readings = sample_until(&mut running, Duration::from_secs(1), limit, |r| {
        r.written >= users
    })
    .await?;
    let achieved = users as f64 / started.elapsed().as_secs_f64();
    let steady = finish(
        &config,
        "source: fetched from the embedded source",
        running,
        readings,
        &before,
        rate,
        achieved,
        users,
        "bench source",
    )
    .await;
    source.stop(true).await;
    steady
}

fn source_env(
    config: &Config,
    address: &std::net::SocketAddr,
    per_run: u64,
    runs: u64,
    catch_up: &str,
) -> Vec<(String, String)> {
    run_env(
        config,
        &[
            (
                "TRIBUTARY__INGEST__SOURCE_URL",
                format!("http://{address}/api/"),
            ),
            (
                "TRIBUTARY__INGEST__INTERVAL_MS",
                RUN_EVERY.as_millis().to_string(),
            ),
            ("TRIBUTARY__INGEST__USERS_PER_RUN", per_run.to_string()),
            ("TRIBUTARY__INGEST__MAX_RUNS", runs.to_string()),
            ("TRIBUTARY__INGEST__CATCH_UP", catch_up.into()),
        ],
    )
}

/// Reads the latency histogram, stops the instance, drops the run's stores and sums up.
#[allow(clippy::too_many_arguments)]
async fn finish(
    config: &Config,
    path: &str,
    mut running: Vec<Instance>,
    readings: Vec<Reading>,
    before: &cpu::Sample,
    target_per_s: f64,
    achieved_per_s: f64,
    users: u64,
    own: &str,
) -> anyhow::Result<report::Steady> {
    let metrics = running[0].metrics(&reqwest::Client::new()).await?;
    let pids = [running[0].pid()];
    let after = cpu::sample(&[("tributary", &pids)], Some(own));
    for instance in running {
        instance.stop();
    }
    crate::cleanup::tidy(config).await;
    let seconds = readings.last().map_or(0.0, |r| r.t);
    let latency_ms = |q| {
        tributary_bench::histogram::quantile(&metrics, "tributary_staged_to_committed_seconds", q)
            .map_or(f64::NAN, |s| s * 1000.0)
    };
    let rss: Vec<f64> = readings.iter().map(|r| r.rss_mib).collect();
    let tenth = (rss.len() / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    Ok(report::Steady {
        path: path.to_owned(),
        target_per_s,
        achieved_per_s,
        users,
        seconds,
        p50_ms: latency_ms(0.50),
        p95_ms: latency_ms(0.95),
        p99_ms: latency_ms(0.99),
        rss_first_tenth_mib: mean(&rss[..tenth.min(rss.len())]),
        rss_last_tenth_mib: mean(&rss[rss.len().saturating_sub(tenth)..]),
        rss_peak_mib: rss.iter().copied().fold(0.0, f64::max),
        rss_mib_per_million_records: rss_growth(&readings[tenth.min(readings.len())..]),
        cpu: cpu::usage(before, &after, users, seconds),
        readings,
    })
}

/// Least-squares slope of RSS against records written, in MiB per million records: how
/// much memory grows with the number of records (0 when flat).
pub fn rss_growth(readings: &[Reading]) -> f64 {
    let n = readings.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let xs: Vec<f64> = readings.iter().map(|r| r.written as f64 / 1e6).collect();
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = readings.iter().map(|r| r.rss_mib).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (x, r) in xs.iter().zip(readings) {
        covariance += (x - mean_x) * (r.rss_mib - mean_y);
        variance += (x - mean_x) * (x - mean_x);
    }
    if variance > 0.0 {
        covariance / variance
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(written: u64, rss_mib: f64) -> Reading {
        Reading {
            t: 0.0,
            published: written,
            written,
            rss_mib,
        }
    }

    #[test]
    fn rss_growth_is_the_slope_per_million_records() {
        let flat: Vec<Reading> = (0..10).map(|i| reading(i * 100_000, 80.0)).collect();
        assert!(rss_growth(&flat).abs() < 1e-9);
        // 78 MiB + 20 MiB per million records.
        let rising: Vec<Reading> = (0..10)
            .map(|i| reading(i * 100_000, 78.0 + 2.0 * i as f64))
            .collect();
        assert!((rss_growth(&rising) - 20.0).abs() < 1e-9);
    }
}
