//! Runs one scenario: fresh names, a workload, one fault at its seeded moment, the heal,
//! the drain, and `verify`.

use crate::backend::{Action, Backend, Service};
use crate::scenario::{Fault, Link, Scenario, Schedule};
use crate::toxiproxy::Toxiproxy;
use anyhow::{Context, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tributary::config::{Config, Sources};
use tributary::demo::{Probe, Progress, progress};

/// What every scenario shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub users: u64,
    pub users_per_run: u32,
    pub interval_ms: u64,
    pub backend: Backend,
    pub tributary_bin: PathBuf,
    pub toxiproxy_api: String,
    pub work_dir: PathBuf,
    pub drain_deadline: Duration,
    /// The configuration profile of the stack (`cluster` for the cluster stack), for
    /// this runner and every tributary it starts.
    pub profile: Option<String>,
    /// Where each scenario's tributary runs.
    pub launch: Launch,
}

/// Where a scenario's `tributary run` runs.
#[derive(Debug, Clone, Copy)]
pub enum Launch {
    /// A child process of the runner on this host.
    Process,
    /// A container of the compose project's `tributary` service (`compose run`), on
    /// the compose network, reaching the stores by their service names; the workload's
    /// source listens on the network's gateway, the host's address on that network.
    Container { gateway: std::net::IpAddr },
}

impl Settings {
    /// The configuration every scenario starts from (before its names are isolated).
    pub fn config(&self) -> anyhow::Result<Config> {
        Config::load(&Sources {
            profile: self.profile.clone(),
            ..Sources::default()
        })
        .context("configuration")
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub aggregate_errors: usize,
    /// Seconds from the heal until the first new commit in Cassandra.
    pub recovery_s: Option<f64>,
    /// Seconds from the heal until everything was in Cassandra.
    pub drain_s: Option<f64>,
    /// The longest time, from the fault until the drain, in which Cassandra's count of
    /// committed users did not grow: how long tributary stopped committing.
    pub longest_gap_s: Option<f64>,
    /// Actor failures logged by the tributary processes (each followed by a restart).
    pub restarts: usize,
    /// Kafka clients that lost every broker and got their bootstrap servers back.
    pub rebootstraps: usize,
    pub passed: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Outcome {
    /// Fills in verify's findings: passed when verify is clean and exactly `expected`
    /// users were staged and are in Cassandra.
    pub(crate) fn judge(&mut self, report: &tributary::verify::Report, expected: u64) {
        self.delivered = report.in_cassandra;
        self.missing = report.missing + expected.saturating_sub(report.staged);
        self.duplicated = report.duplicated;
        self.unexpected = report.unexpected;
        self.aggregate_errors = report.aggregate_errors.len();
        self.passed =
            report.is_clean() && report.staged == expected && report.in_cassandra == expected;
    }
}

/// A `tributary run --test-faults` process, or a container running it.
pub(crate) struct Instance {
    /// The process itself, or (in a container) `docker logs -f` following its log.
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
    /// Its admin server's address, reachable from this host.
    pub admin: String,
    /// The admin token (a container's admin server listens beyond loopback, which
    /// tributary allows only with one).
    pub(crate) token: Option<String>,
    /// In a container: its name, and how to reach it.
    pub(crate) container: Option<(String, crate::backend::Compose)>,
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADMIN/PATH`, with the token when it needs one.
    pub fn url(&self, path: &str) -> String {
        match &self.token {
            Some(token) => format!("http://{}{path}?token={token}", self.admin),
            None => format!("http://{}{path}", self.admin),
        }
    }

    /// For a process that stopped making progress: every thread's stack (gdb, when this
    /// machine has it), written next to its log as `.threads`; where it went.
    pub fn dump_threads(&self) -> Option<PathBuf> {
        if self.container.is_some() {
            return None;
        }
        let output = Command::new("timeout")
            .args(["120", "gdb", "-batch", "-p", &self.pid().to_string()])
            .args(["-ex", "thread apply all bt"])
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let path = self.log.with_extension("threads");
        std::fs::write(&path, &output.stdout).ok()?;
        Some(path)
    }

    /// Whether tributary still runs: the process, or (in a container, where the child
    /// only follows its log) the container.
    pub fn alive(&mut self) -> bool {
        match &self.container {
            Some((name, compose)) => Command::new(&compose.docker)
                .args(["inspect", "-f", "{{.State.Running}}", name])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true"),
            None => matches!(self.child.try_wait(), Ok(None)),
        }
    }

    /// SIGKILL (a container: removed with it, its whole log written to the log file
    /// first, whatever the follower had copied).
    pub fn kill(&mut self) {
        if let Some((name, compose)) = self.container.take() {
            let _ = self.child.kill();
            if let Ok(file) = std::fs::File::create(&self.log) {
                let _ = Command::new(&compose.docker)
                    .args(["logs", &name])
                    .stdout(file.try_clone().map_or_else(|_| Stdio::null(), Stdio::from))
                    .stderr(file)
                    .status();
            }
            let _ = Command::new(&compose.docker)
                .args(["rm", "-f", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The container's name, for faults that act on tributary's container.
    pub fn container(&self) -> anyhow::Result<&str> {
        self.container
            .as_ref()
            .map(|(name, _)| name.as_str())
            .context("tributary runs as a process here: container faults need --suite containers")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn env_port(name: &str, default: u16) -> u16 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) struct Run<'a> {
    pub settings: &'a Settings,
    /// The scenario's configuration (its isolated names).
    pub config: &'a Config,
    pub name: String,
    pub env: Vec<(String, String)>,
    pub instances: Vec<Instance>,
    /// Logs of every instance started so far, for the restart count.
    pub logs: Vec<PathBuf>,
}

impl Run<'_> {
    pub fn start_instance(&mut self) -> anyhow::Result<()> {
        self.start_instance_in(None)
    }

    /// Starts an instance; with `cgroup`, inside that cgroup from its first instruction
    /// (a socket belongs to the cgroup it was created in), on that node's side of a
    /// partition.
    pub fn start_instance_in(&mut self, cgroup: Option<&std::path::Path>) -> anyhow::Result<()> {
        if let Launch::Container { .. } = self.settings.launch {
            return self.start_container();
        }
        let admin = format!("127.0.0.1:{}", free_port()?);
        let log = self
            .settings
            .work_dir
            .join(format!("{}-{}.log", self.name, self.logs.len()));
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = match cgroup {
            None => Command::new(&self.settings.tributary_bin),
            Some(dir) => {
                let mut shell = Command::new("bash");
                shell
                    .args(["-c", r#"echo $$ >"$0/cgroup.procs" && exec "$@""#])
                    .arg(dir)
                    .arg(&self.settings.tributary_bin);
                shell
            }
        };
        // The runner's profile, never one inherited from the caller's shell: the
        // runner and its tributaries must read the same configuration.
        match &self.settings.profile {
            Some(profile) => command.env("TRIBUTARY_PROFILE", profile),
            None => command.env_remove("TRIBUTARY_PROFILE"),
        };
        let child = command
            .args(["run", "--test-faults"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TRIBUTARY__ADMIN__BIND", &admin)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {}", self.settings.tributary_bin.display()))?;
        self.logs.push(log.clone());
        self.instances.push(Instance {
            child,
            log,
            admin,
            token: None,
            container: None,
        });
        Ok(())
    }

    /// Log lines of every instance started so far that contain `needle`.
    fn count_in_logs(&self, needle: &str) -> usize {
        self.logs
            .iter()
            .map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .matches(needle)
                    .count()
            })
            .sum()
    }

    pub fn restarts(&self) -> usize {
        self.count_in_logs("\"message\":\"child failed\"")
    }

    pub fn rebootstraps(&self) -> usize {
        self.count_in_logs("\"message\":\"kafka client lost every broker")
    }
}

/// Progress readings through connections that are reopened after an error: the stores
/// this probe reads are the ones the scenarios kill.
pub(crate) struct Progressor<'a> {
    pub config: &'a Config,
    pub probe: Option<Probe>,
}

impl Progressor<'_> {
    pub async fn read(&mut self) -> Option<Progress> {
        if self.probe.is_none() {
            self.probe = Probe::open(self.config).await.ok();
        }
        let reading = progress(self.config, self.probe.as_ref()?).await;
        if reading.is_err() {
            self.probe = None;
        }
        reading.ok()
    }
}

pub(crate) async fn wait_for<T>(
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Some(value) = check().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Watches Cassandra's count of committed users from the fault on, on a task of its
/// own (the fault's hold blocks the scenario), and measures the longest stretch in
/// which it did not grow while users were staged and not yet written. It reads
/// Cassandra alone, with a short timeout per reading (the progress probe also needs
/// PostgreSQL and Kafka, which a fault may be cutting off, and a node that does not
/// answer must not stretch the measurement), and stamps a reading with the moment it
/// was asked. A reading that fails is no reading: the stretch ends at the next one that
/// shows growth.
struct CommitWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Duration>,
}

impl CommitWatch {
    const EVERY: Duration = Duration::from_millis(250);
    const READ_TIMEOUT: Duration = Duration::from_secs(1);
    const BASELINE_WITHIN: Duration = Duration::from_secs(30);

    /// Connects and takes the baseline before it returns, so the fault is injected
    /// after the first reading.
    async fn start(config: &Config, staged: i64) -> anyhow::Result<CommitWatch> {
        let mut cassandra = config.cassandra.clone();
        cassandra.request_timeout_ms = Self::READ_TIMEOUT.as_millis() as u64;
        let session = tributary_actors::store::cassandra::connect(&cassandra)
            .await
            .context("the commit watch's Cassandra session")?;
        let config = config.clone();
        // The baseline may take a few attempts: a node that has just rejoined, or a
        // cold CI machine's first queries, can miss the short timeout once or twice.
        let mut last_error = None;
        let baseline =
            wait_for(
                Self::BASELINE_WITHIN,
                async || match tributary::demo::written_to_cassandra(&config, &session).await {
                    Ok(written) => Some(written),
                    Err(error) => {
                        last_error = Some(error);
                        None
                    }
                },
            )
            .await;
        let baseline = match (baseline, last_error) {
            (Some(written), _) => written,
            (None, Some(error)) => {
                return Err(anyhow::Error::from(error).context(format!(
                    "the commit watch's first reading (tried for {:?})",
                    Self::BASELINE_WITHIN
                )));
            }
            (None, None) => anyhow::bail!("the commit watch's first reading never ran"),
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut last_growth, mut written, mut longest) =
                (Instant::now(), baseline, Duration::ZERO);
            let mut stopping = false;
            loop {
                let asked = Instant::now();
                if let Ok(now) = tributary::demo::written_to_cassandra(&config, &session).await
                    && now > written
                {
                    longest = longest.max(asked.duration_since(last_growth));
                    last_growth = asked;
                    written = now;
                }
                // The stretch still open at the end is idle time once everything is
                // written: the last reading (after the stop) closes a stall that ended
                // in the final burst.
                if stopping || written >= staged {
                    break;
                }
                tokio::select! {
                    _ = &mut stopped => stopping = true,
                    () = tokio::time::sleep(Self::EVERY) => {}
                }
            }
            longest
        });
        Ok(CommitWatch { stop, task })
    }

    /// The longest stretch without a commit while users waited.
    async fn stop(self) -> anyhow::Result<Duration> {
        let _ = self.stop.send(());
        self.task.await.context("the commit watch failed")
    }
}

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

/// Creates Toxiproxy proxy `proxy` in front of `link`'s store and returns the
/// environment that makes tributary reach the store through it.
pub(crate) async fn route_through_proxy(
    toxiproxy: &Toxiproxy,
    proxy: &str,
    link: Link,
    config: &Config,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let (listen, upstream) = match link {
        Link::Postgres => {
            let port = free_port()?;
            env.push(("TRIBUTARY__POSTGRES__PORT".into(), port.to_string()));
            (
                format!("127.0.0.1:{port}"),
                format!("{}:{}", config.postgres.host, config.postgres.port),
            )
        }
        Link::Kafka => {
            // The broker's PROXIED listener advertises the proxy's address (stack.sh).
            let (proxy_port, proxied_port) = (
                env_port("TRIBUTARY_STACK_KAFKA_PROXY_PORT", 29092),
                env_port("TRIBUTARY_STACK_KAFKA_PROXIED_PORT", 9094),
            );
            env.push((
                "TRIBUTARY__KAFKA__BOOTSTRAP_SERVERS".into(),
                format!("127.0.0.1:{proxy_port}"),
            ));
            (
                format!("127.0.0.1:{proxy_port}"),
                format!("127.0.0.1:{proxied_port}"),
            )
        }
        Link::Cassandra => {
            let port = free_port()?;
            let node = config
                .cassandra
                .contact_points
                .first()
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:9042".into());
            env.push((
                "TRIBUTARY__CASSANDRA__CONTACT_POINTS".into(),
                format!("127.0.0.1:{port}"),
            ));
            // The node reports its own address: translate it to the proxy; the driver
            // also looks up the contact point itself, which maps to itself.
            let proxy_address = format!("127.0.0.1:{port}");
            env.push((
                "TRIBUTARY__CASSANDRA__ADDRESS_TRANSLATION".into(),
                format!("{node}={proxy_address},{proxy_address}={proxy_address}"),
            ));
            (format!("127.0.0.1:{port}"), node)
        }
    };
    toxiproxy.proxy(proxy, &listen, &upstream).await?;
    Ok(env)
}

/// The embedded source of a scenario, at a fixed address.
pub(crate) struct Source {
    pub config: tributary::source::Config,
    pub address: std::net::SocketAddr,
    pub running: Option<tributary::source::server::ServerHandle>,
}

/// Injects the fault, holds it for the scheduled time, and heals.
pub(crate) async fn inject(
    run: &mut Run<'_>,
    backend: &Backend,
    toxiproxy: &Toxiproxy,
    proxy: &str,
    source: &mut Source,
    fault: Fault,
    schedule: Schedule,
) -> anyhow::Result<()> {
    let hold = Duration::from_millis(schedule.hold_ms);
    let act = |action, service| backend.call(move |b| b.run(action, service));
    match fault {
        Fault::Kill(service) => {
            act(Action::Kill, service).await?;
            tokio::time::sleep(hold).await;
            act(Action::Start, service).await?;
        }
        Fault::Pause(service) => {
            act(Action::Pause, service).await?;
            tokio::time::sleep(hold).await;
            act(Action::Resume, service).await?;
        }
        Fault::KillTributary => {
            run.instances.iter_mut().for_each(Instance::kill);
            run.instances.clear();
            tokio::time::sleep(hold).await;
            run.start_instance()?;
        }
        Fault::RepeatedKills(times) => {
            for _ in 0..times {
                run.instances.iter_mut().for_each(Instance::kill);
                run.instances.clear();
                run.start_instance()?;
                tokio::time::sleep(hold / 2).await;
            }
        }
        Fault::Link(_, toxic) => {
            toxiproxy.add(proxy, toxic).await?;
            tokio::time::sleep(hold).await;
            toxiproxy.remove(proxy, toxic).await?;
        }
        Fault::Panic(kind) => {
            let url = run
                .instances
                .first()
                .map(|i| i.url(&format!("/test/panic/{kind}")))
                .context("no tributary instance")?;
            let response = reqwest::Client::new()
                .post(url)
                .send()
                .await
                .context("admin endpoint")?;
            if !response.status().is_success() {
                bail!("arming a {kind} panic: {}", response.status());
            }
            tokio::time::sleep(hold).await;
        }
        Fault::SourceOutage => {
            if let Some(running) = source.running.take() {
                running.stop(false).await;
            }
            tokio::time::sleep(hold).await;
            source.running = Some(tributary::source::server::spawn_at(
                &source.config,
                source.address,
            )?);
        }
        Fault::KillBroker(role) => {
            let (raw, id) = (
                run.config.kafka.topics.raw.name.clone(),
                run.config.publish.transactional_id.clone(),
            );
            let node = backend.call(move |b| b.who(role, &raw, &id)).await?;
            say(&format!("{role:?} is broker {node}: SIGKILL"));
            act(Action::Kill, Service::KafkaNode(node)).await?;
            tokio::time::sleep(hold).await;
            act(Action::Start, Service::KafkaNode(node)).await?;
        }
        Fault::RollingRestart(store) => {
            for node in 1..=CLUSTER_NODES {
                act(Action::Stop, store.node(node)).await?;
                act(Action::Start, store.node(node)).await?;
                // As an operator does: the next node only once every replica is in
                // sync again and the ring is whole.
                wait_whole(backend).await?;
            }
        }
        Fault::Partition { minority } => {
            if minority {
                let cgroup = backend.call(|b| b.node_cgroup(PARTITIONED_NODE)).await?;
                run.start_instance_in(Some(&cgroup))?;
                let second = run.instances.len() - 1;
                // It owns partitions (a writer of its own claimed one): the cut then
                // leaves a writer on the minority side, which must be fenced, not
                // merely an instance that never joined.
                wait_for(Duration::from_secs(90), async || {
                    run.instances[second]
                        .log_text()
                        .contains("\"message\":\"partition claimed\"")
                        .then_some(())
                })
                .await
                .context("the minority instance never claimed a partition")?;
            }
            backend.call(|b| b.partition(PARTITIONED_NODE)).await?;
            tokio::time::sleep(hold).await;
            backend.call(Backend::heal).await?;
        }
        Fault::Disconnect(service) => {
            act(Action::Disconnect, service).await?;
            tokio::time::sleep(hold).await;
            act(Action::Connect, service).await?;
        }
        Fault::PauseTributary | Fault::DisconnectTributary => {
            let container = run
                .instances
                .first()
                .context("no tributary instance")?
                .container()?
                .to_owned();
            let pause = fault == Fault::PauseTributary;
            let name = container.clone();
            backend
                .call(move |b| {
                    if pause {
                        b.docker(&["pause", &name])
                    } else {
                        b.disconnect(&name)
                    }
                })
                .await?;
            tokio::time::sleep(hold).await;
            backend
                .call(move |b| {
                    if pause {
                        b.unpause(&container)
                    } else {
                        b.connect(&container, None)
                    }
                })
                .await?;
        }
        Fault::ComposeUp => bail!("compose-up is a scenario of its own, not a fault to inject"),
        Fault::KillSecondInstanceDuringRebalance => {
            run.start_instance()?;
            let second = run.instances.len() - 1;
            // It joined the group: the rebalance that hands it partitions is under way.
            let joined = wait_for(Duration::from_secs(60), async || {
                run.instances[second]
                    .log_text()
                    .contains("coordinator joined the consumer group")
                    .then_some(())
            })
            .await;
            joined.context("the second instance never joined the group")?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Gone for good: the instances left are the ones that run (the soak samples
            // the last one; its log stays in `run.logs`).
            run.instances.remove(second).kill();
            tokio::time::sleep(hold).await;
        }
    }
    Ok(())
}

/// The configuration profile (and stack profile) of the cluster scenarios.
pub const CLUSTER_PROFILE: &str = "cluster";

/// The configuration profile (and stack profile) of the container scenarios.
pub const CONTAINERS_PROFILE: &str = "containers";

/// Nodes of each store in the cluster stack.
const CLUSTER_NODES: u8 = 3;

/// The node a partition cuts off: one of three, so that a quorum stands on the rest.
const PARTITIONED_NODE: u8 = 3;

/// Waits until the cluster is whole again: every node up, every replica in sync, one
/// schema version, no hints pending (`stack.sh status` of the cluster profile). A node
/// left on an old schema version for a minute is restarted (`schema-resync`): Cassandra
/// does not pull the schema again by itself after a failed schema change.
async fn wait_whole(backend: &Backend) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut resynced = false;
    loop {
        let Err(why) = backend.call(|b| Ok(b.whole())).await? else {
            return Ok(());
        };
        if !resynced
            && why.contains("schema versions disagree")
            && started.elapsed() > Duration::from_secs(60)
        {
            say(&format!("{why}: restarting the nodes left behind"));
            backend.call(Backend::schema_resync).await?;
            resynced = true;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the cluster was not whole within 300 s: {why}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A line of the runner's own progress on stderr.
fn say(line: &str) {
    eprintln!("chaos:   {line}");
}
