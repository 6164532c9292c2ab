//! `tributary-chaos`: kills real services during a run and proves that nothing is lost
//! or duplicated (DESIGN.md section 8).
//!
//! Per scenario: fresh schema/keyspace/topics, a workload from the embedded source, one
//! fault at a seeded moment, the heal, a bounded wait for the drain, then `verify`. The
//! same seed replays the same schedule. Exit code 1 if any scenario lost or duplicated a
//! record, got an aggregate wrong, or failed to drain.

mod backend;
mod containers;
mod fault;
mod instance;
mod report;
mod runner;
mod scenario;
mod settings;
mod soak;
mod toxiproxy;
mod watch;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "tributary-chaos",
    about = "Kill real services mid-run and verify exactly-once"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `ci` (every fault kind and the required long holds, `make chaos-ci`), `short`
    /// (every fault with its seeded 2–5 s hold), `long` (every store and source fault
    /// held 30 s and 3 minutes), `full` (short and long), `cluster` (node losses,
    /// rolling restarts and partitions against the cluster stack, `make chaos-cluster`)
    /// or `containers` (`docker compose up`, and kills, pauses and network partitions of
    /// each store's container and tributary's own, against the container stack through
    /// the compose backend, `make chaos-containers`).
    #[arg(long, value_enum, default_value_t = Suite::Ci)]
    suite: Suite,
    /// Run only these scenarios (comma-separated names), overriding --suite.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Seeds; each scenario runs once per seed.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    seeds: Vec<u64>,
    /// Users per scenario workload.
    #[arg(long, default_value_t = 4_000)]
    users: u64,
    /// Users per scheduled run (the rate is users_per_run per interval).
    #[arg(long, default_value_t = 200)]
    users_per_run: u32,
    /// Scheduler interval in milliseconds.
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// Where faults come from: the local process stack (`process`) or docker compose
    /// (`TRIBUTARY_COMPOSE` names the compose command and its files, `TRIBUTARY_DOCKER`
    /// the docker CLI; the container suite always uses it).
    #[arg(long, value_enum, default_value_t = BackendArg::Process)]
    backend: BackendArg,
    /// The tributary binary (default: next to this one).
    #[arg(long, env = "TRIBUTARY_BIN")]
    tributary_bin: Option<PathBuf>,
    /// Toxiproxy's API.
    #[arg(
        long,
        env = "TRIBUTARY_STACK_TOXIPROXY_URL",
        default_value = "http://127.0.0.1:8474"
    )]
    toxiproxy: String,
    /// Report and log directory.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// Seconds a scenario may take to drain after the heal.
    #[arg(long, default_value_t = 240)]
    drain_deadline_s: u64,
    /// List the catalogue and exit.
    #[arg(long)]
    list: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One tributary for a long time at a steady rate, a fault every 30–90 s, retention
    /// acting many times: nothing lost or duplicated, nothing trending upward
    /// (`make soak`: 60 minutes; `make soak-ci`: 5).
    Soak(soak::SoakArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Suite {
    Ci,
    Short,
    Long,
    Full,
    Cluster,
    Containers,
}

impl Suite {
    fn scenarios(self) -> Vec<scenario::Scenario> {
        match self {
            Suite::Cluster => return scenario::cluster_catalogue(),
            Suite::Containers => return scenario::containers_catalogue(),
            _ => {}
        }
        scenario::catalogue()
            .into_iter()
            .filter(|scenario| match self {
                Suite::Ci => scenario.ci,
                Suite::Short => !scenario.long(),
                Suite::Long => scenario.long(),
                Suite::Full | Suite::Cluster | Suite::Containers => true,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Process,
    Compose,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        let tagged = scenario::catalogue()
            .into_iter()
            .map(|s| (if s.ci { "[ci] " } else { "" }, s))
            .chain(
                scenario::cluster_catalogue()
                    .into_iter()
                    .map(|s| ("[cluster] ", s)),
            )
            .chain(
                scenario::containers_catalogue()
                    .into_iter()
                    .map(|s| ("[containers] ", s)),
            );
        for (tag, s) in tagged {
            println!("{:<44} {tag}{:?} {:?}", s.name, s.fault, s.hold);
        }
        return ExitCode::SUCCESS;
    }
    let scenarios: Vec<scenario::Scenario> = if cli.scenarios.is_empty() {
        cli.suite.scenarios()
    } else {
        match cli
            .scenarios
            .iter()
            .map(|n| scenario::by_name(n).ok_or(n))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(list) => list,
            Err(unknown) => {
                eprintln!("error: unknown scenario {unknown:?} (see --list)");
                return ExitCode::from(2);
            }
        }
    };
    // Cluster scenarios run against the cluster stack, container scenarios against the
    // container stack, the others against the single one: a list that mixes them
    // cannot run.
    let names = |catalogue: Vec<scenario::Scenario>| -> Vec<String> {
        catalogue.into_iter().map(|s| s.name).collect()
    };
    let (cluster_names, container_names) = (
        names(scenario::cluster_catalogue()),
        names(scenario::containers_catalogue()),
    );
    let count = |of: &[String]| scenarios.iter().filter(|s| of.contains(&s.name)).count();
    let (on_cluster, in_containers) = (count(&cluster_names), count(&container_names));
    let stack = match (on_cluster, in_containers) {
        (0, 0) => "single",
        (n, 0) if n == scenarios.len() => settings::CLUSTER_PROFILE,
        (0, n) if n == scenarios.len() => settings::CONTAINERS_PROFILE,
        _ => {
            eprintln!(
                "error: cluster, container and single-stack scenarios run against different stacks: they cannot run together"
            );
            return ExitCode::from(2);
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let backend = match cli.backend {
        BackendArg::Process if stack != settings::CONTAINERS_PROFILE => backend::Backend::Process {
            stack_script: root.join("stack/stack.sh"),
            stack: stack.to_owned(),
        },
        _ => backend::Backend::Compose(backend::Compose::from_env(&root)),
    };
    let launch = if stack == settings::CONTAINERS_PROFILE {
        match backend.call(|b| b.gateway()).await {
            Ok(gateway) => settings::Launch::Container { gateway },
            Err(error) => {
                eprintln!(
                    "error: the container stack's network: {error:#} (is it up? make stack-up STACK=containers)"
                );
                return ExitCode::from(2);
            }
        }
    } else {
        settings::Launch::Process
    };
    let tributary_bin = cli.tributary_bin.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("tributary")))
            .unwrap_or_else(|| PathBuf::from("tributary"))
    });
    tributary_actors::install_tls_provider();
    let settings = settings::Settings {
        users: cli.users,
        users_per_run: cli.users_per_run,
        interval_ms: cli.interval_ms,
        backend,
        tributary_bin,
        toxiproxy_api: cli.toxiproxy,
        work_dir: cli.out.join("logs"),
        drain_deadline: Duration::from_secs(cli.drain_deadline_s),
        profile: (stack != "single").then(|| stack.to_owned()),
        launch,
    };
    let work_dir = match &cli.command {
        Some(Command::Soak(args)) => args.out.join("logs"),
        None => settings.work_dir.clone(),
    };
    let settings = settings::Settings {
        work_dir,
        ..settings
    };
    if let Err(error) = std::fs::create_dir_all(&settings.work_dir) {
        eprintln!(
            "error: cannot create {}: {error}",
            settings.work_dir.display()
        );
        return ExitCode::from(2);
    }

    if let Some(Command::Soak(args)) = &cli.command {
        runner::sweep_earlier_runs(&settings, soak::PREFIX).await;
        return match soak::soak(&settings, args).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!(
                    "soak: FAIL (report in {})",
                    args.out.join("report.md").display()
                );
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("error: soak: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    runner::sweep_earlier_runs(&settings, runner::PREFIX).await;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for scenario in &scenarios {
        for &seed in &cli.seeds {
            let t = Instant::now();
            let outcome = runner::run(&settings, scenario, seed).await;
            println!(
                "chaos: {:<36} seed {seed}: {} ({:.0}s){}",
                scenario.name,
                if outcome.passed { "pass" } else { "FAIL" },
                t.elapsed().as_secs_f64(),
                outcome
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            outcomes.push(outcome);
        }
    }
    if let Err(error) = report::write(&cli.out, &outcomes) {
        eprintln!("error: cannot write the report: {error:#}");
    }
    println!("\n{}", report::markdown(&outcomes));
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!(
        "chaos: {} scenario run(s) in {:.0}s, {failed} failed; report in {}",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        cli.out.join("report.md").display()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
