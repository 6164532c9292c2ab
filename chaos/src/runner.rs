//! Runs one scenario: fresh names, a workload, one fault at its seeded moment, the heal,
//! the drain, and `verify`.

use crate::backend::Backend;
use crate::fault::{Source, inject, route_through_proxy, wait_whole};
use crate::instance::Run;
use crate::report::Outcome;
use crate::scenario::{Fault, Scenario, Schedule};
use crate::settings::{CLUSTER_PROFILE, Launch, Settings};
use crate::toxiproxy::Toxiproxy;
use crate::watch::{CommitWatch, Progressor, wait_for};
use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use tributary::config::Config;
use tributary::demo::Progress;

/// The prefix of every name a scenario's run creates.
pub const PREFIX: &str = "chaos_";

/// Drops what earlier runs with names starting `prefix` left in the stores (a failed
/// scenario keeps its objects, to be looked at, until the next run), reporting instead
/// of failing: the suite's stores say for themselves what is wrong with them.
pub async fn sweep_earlier_runs(settings: &Settings, prefix: &str) {
    let swept = match settings.config() {
        Ok(config) => tributary::schema::isolated::drop_leftovers(&config, prefix, |_| false)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error),
    };
    match swept {
        Ok(0) => {}
        Ok(n) => println!("chaos: dropped {n} objects that earlier {prefix}… runs left"),
        Err(error) => eprintln!("chaos: could not drop earlier runs' objects: {error:#}"),
    }
}

/// Runs one scenario with one seed.
pub async fn run(settings: &Settings, scenario: &Scenario, seed: u64) -> Outcome {
    let mut outcome = Outcome {
        scenario: scenario.name.clone(),
        seed,
        expected: settings.users,
        delivered: 0,
        missing: 0,
        duplicated: 0,
        unexpected: 0,
        aggregate_errors: 0,
        recovery_s: None,
        drain_s: None,
        longest_gap_s: None,
        restarts: 0,
        rebootstraps: 0,
        passed: false,
        error: None,
    };
    if let Err(error) = run_inner(settings, scenario, seed, &mut outcome).await {
        outcome.error = Some(format!("{error:#}"));
        outcome.passed = false;
    }
    outcome
}

async fn run_inner(
    settings: &Settings,
    scenario: &Scenario,
    seed: u64,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    if scenario.fault == Fault::ComposeUp {
        return crate::containers::compose_up(settings, outcome).await;
    }
    let schedule = Schedule::new(seed, &scenario.name, scenario.hold);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!(
        "{PREFIX}{}_{seed}_{}",
        scenario.name.replace('-', "_"),
        &suffix[..6]
    );
    if let Launch::Container { .. } = settings.launch {
        settings.backend.call(Backend::restore_stores).await?;
    }
    if settings.profile.as_deref() == Some(CLUSTER_PROFILE) {
        // Every cluster scenario starts on a whole cluster: no partition left behind by
        // an interrupted run, every node up, every replica in sync. Otherwise one
        // scenario's returning node compounds the next one's fault.
        settings.backend.call(Backend::heal).await?;
        wait_whole(&settings.backend).await?;
    }
    let mut config = settings.config()?;
    config.isolate(&name);
    tributary::schema::apply(&config, &[])
        .await
        .context("schema apply")?;

    // The embedded source, in this process, at an address it can come back to (where
    // tributary's containers reach this host, when it runs in one).
    let address = match settings.launch {
        Launch::Process => tributary::source::server::stable_loopback_address()?,
        Launch::Container { gateway } => tributary::source::server::stable_address(gateway)?,
    };
    let mut source = Source {
        config: config.source.clone(),
        address,
        running: Some(tributary::source::server::spawn_at(
            &config.source,
            address,
        )?),
    };

    let runs = settings.users.div_ceil(u64::from(settings.users_per_run));
    let toxiproxy = Toxiproxy::new(&settings.toxiproxy_api);
    let proxy = format!("{name}-link");
    // Link faults: tributary reaches that store through a Toxiproxy proxy.
    let mut link_env: Vec<(String, String)> = Vec::new();
    if let Fault::Link(link, _) = scenario.fault {
        link_env = route_through_proxy(&toxiproxy, &proxy, link, &config).await?;
    }
    let env: Vec<(String, String)> = workload_env(
        &config,
        address,
        settings.users_per_run,
        settings.interval_ms,
        runs,
    )
    .into_iter()
    .chain(link_env)
    .collect();
    let mut run = Run {
        settings,
        config: &config,
        name: name.clone(),
        env,
        instances: Vec::new(),
        logs: Vec::new(),
    };
    run.start_instance()?;

    let mut probe = Progressor {
        config: &config,
        probe: None,
    };
    let trigger = (schedule.at_fraction * settings.users as f64) as i64;
    wait_for(Duration::from_secs(120), async || {
        probe.read().await.filter(|p| p.staged >= trigger)
    })
    .await
    .with_context(|| format!("the workload never reached {trigger} staged users"))?;

    let commits = CommitWatch::start(&config, settings.users as i64).await?;
    inject(
        &mut run,
        &settings.backend,
        &toxiproxy,
        &proxy,
        &mut source,
        scenario.fault,
        schedule,
    )
    .await?;
    let healed = Instant::now();
    let written_at_heal = probe.read().await.map_or(0, |p| p.written);

    let mut first_progress = None;
    let drained: Option<Progress> = wait_for(settings.drain_deadline, async || {
        let p = probe.read().await?;
        if first_progress.is_none() && (p.written > written_at_heal || p.drained(runs as i64)) {
            first_progress = Some(healed.elapsed().as_secs_f64());
        }
        p.drained(runs as i64).then_some(p)
    })
    .await;
    outcome.recovery_s = first_progress;
    outcome.restarts = run.restarts();
    outcome.rebootstraps = run.rebootstraps();
    if drained.is_none() {
        // A process alive but not draining is stuck somewhere: keep where.
        let mut alive = 0;
        let mut dumps = Vec::new();
        for instance in &mut run.instances {
            if instance.alive() {
                alive += 1;
                dumps.extend(instance.dump_threads().map(|p| p.display().to_string()));
            }
        }
        bail!(
            "did not drain within {:?} ({alive} tributary process(es) alive{})",
            settings.drain_deadline,
            if dumps.is_empty() {
                String::new()
            } else {
                format!("; their threads: {}", dumps.join(", "))
            }
        );
    }
    outcome.drain_s = Some(healed.elapsed().as_secs_f64());
    outcome.longest_gap_s = Some(commits.stop().await?.as_secs_f64());
    if scenario.outlived()
        && let Some(first) = run.instances.first_mut()
        && !first.alive()
    {
        bail!("the tributary process did not live through the fault: it must recover by itself");
    }

    let report = tributary::verify::verify(&config).await.context("verify")?;
    outcome.judge(&report, settings.users);

    for instance in &mut run.instances {
        instance.kill();
    }
    if let Some(running) = source.running.take() {
        running.stop(true).await;
    }
    if matches!(scenario.fault, Fault::Link(..)) {
        toxiproxy.delete(&proxy).await;
    }
    if outcome.passed {
        // A node back from a fault still takes its missed writes as hints; dropping
        // their tables then can leave that node on its old schema for good (see
        // service_formed in stack/profiles/cluster.sh). Drop once it has them; the
        // verdict stands either way.
        let whole = if settings.profile.as_deref() == Some(CLUSTER_PROFILE) {
            wait_whole(&settings.backend).await
        } else {
            Ok(())
        };
        // Nothing left to look at: the stack should not carry every scenario's tables
        // and partitions into the next one's restarts (see schema::isolated).
        let dropped = match whole {
            Ok(()) => tributary::schema::isolated::drop(&config)
                .await
                .map_err(anyhow::Error::from),
            Err(error) => Err(error.context("not dropped")),
        };
        if let Err(error) = dropped {
            eprintln!("chaos: clean-up of {name}: {error:#}");
        }
    }
    Ok(())
}

/// The environment of a scenario's `tributary run`: `config`'s isolated names, the
/// embedded source at `source`, `runs` runs of `users_per_run` every `interval_ms`.
pub(crate) fn workload_env(
    config: &Config,
    source: std::net::SocketAddr,
    users_per_run: u32,
    interval_ms: u64,
    runs: u64,
) -> Vec<(String, String)> {
    [
        ("TRIBUTARY__PROCESS__SESSION_TIMEOUT_MS", "6000".into()),
        // The consumer watchdog off: a scenario must recover through the mechanisms
        // that fix the fault (re-bootstraps, rejoins, restarts), never through the
        // last resort hiding that they did not.
        ("TRIBUTARY__PROCESS__STALL_RESTART_MS", "86400000".into()),
        (
            "TRIBUTARY__INGEST__SOURCE_URL",
            format!("http://{source}/api/"),
        ),
        (
            "TRIBUTARY__INGEST__USERS_PER_RUN",
            users_per_run.to_string(),
        ),
        ("TRIBUTARY__INGEST__INTERVAL_MS", interval_ms.to_string()),
        ("TRIBUTARY__INGEST__MAX_RUNS", runs.to_string()),
        ("TRIBUTARY__SUPERVISION__LEADER_RETRY_MS", "250".into()),
        ("TRIBUTARY__TELEMETRY__LOG_FORMAT", "json".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(config.names_env())
    .collect()
}
