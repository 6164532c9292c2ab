//! The `tributary` command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tributary::config::{Config, Redacted, Sources};
use tributary::{exit, schema, telemetry};
use tributary_actors::ingest::ledger::{RetrySelection, RunStatus};
use tributary_actors::store::{self, Service};

/// Moves user records from an HTTP API into Cassandra through PostgreSQL and Kafka,
/// exactly once.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Directory holding profile files.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_CONFIG_DIR",
        default_value = "config"
    )]
    config_dir: PathBuf,
    /// Profile to load over the defaults: <config-dir>/<PROFILE>.toml.
    #[arg(long, global = true, env = "TRIBUTARY_PROFILE")]
    profile: Option<String>,
    /// Further TOML files merged over the profile, in order.
    #[arg(long = "config", global = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the PostgreSQL schema, Cassandra keyspace and tables, and Kafka topics.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the pipeline until SIGINT or SIGTERM.
    Run {
        /// Enable the admin routes that inject failures (for the chaos suite only).
        #[arg(long)]
        test_faults: bool,
    },
    /// The main job in one command: embedded source, pipeline, progress, verify.
    Demo {
        /// Users to move.
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// Read another randomuser.me-compatible API (e.g. https://randomuser.me/api/)
        /// instead of serving the embedded source.
        #[arg(long, value_name = "URL", value_parser = tributary::demo::parse_source_url)]
        source_url: Option<String>,
        /// Every log line on standard error and plain progress lines, instead of the
        /// live display with warnings only (the full log then goes to --log-file).
        #[arg(long)]
        verbose: bool,
        /// Where the full log goes without --verbose [default: a new
        /// tributary-demo-<time>.log in the temporary directory].
        #[arg(long, value_name = "FILE", conflicts_with = "verbose")]
        log_file: Option<std::path::PathBuf>,
    },
    /// Compare PostgreSQL, Kafka (and Cassandra) by user id; exit 0 only when all match.
    Verify {
        /// Only the runs scheduled within this long (90s, 30m, 12h, 7d).
        #[arg(long, value_parser = tributary::verify::parse_since, conflicts_with = "runs")]
        since: Option<std::time::Duration>,
        /// Only the runs with ids FROM..TO (inclusive), as `tributary runs` lists them.
        #[arg(long, value_parser = tributary::verify::parse_runs, value_name = "FROM..TO")]
        runs: Option<(i64, i64)>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a running instance's status (actor tree, partitions, throughput, restarts)
    /// from its admin server.
    Status {
        /// Admin server base URL (default: http://<admin.bind>).
        #[arg(long)]
        url: Option<String>,
        /// Print the raw JSON of /api/status.
        #[arg(long)]
        json: bool,
    },
    /// List the runs ledger (newest first), or re-queue runs that gave up.
    Runs(RunsArgs),
    /// Serve the embedded randomuser.me-compatible API until SIGINT or SIGTERM.
    Source {
        /// Address to listen on (default: source.bind).
        #[arg(long)]
        bind: Option<String>,
    },
}

#[derive(Debug, Args)]
struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    /// Only runs of this status.
    #[arg(long, value_enum)]
    status: Option<RunStatusArg>,
    /// At most this many runs, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..))]
    limit: i64,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum RunsAction {
    /// Queue runs again at once (failed or retrying ones); the scheduler fetches them at
    /// its next tick.
    Retry {
        /// Run ids to queue.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        run_ids: Vec<i64>,
        /// Every failed run.
        #[arg(long)]
        failed: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RunStatusArg {
    Pending,
    Retrying,
    Staged,
    Failed,
}

impl From<RunStatusArg> for RunStatus {
    fn from(s: RunStatusArg) -> Self {
        match s {
            RunStatusArg::Pending => RunStatus::Pending,
            RunStatusArg::Retrying => RunStatus::Retrying,
            RunStatusArg::Staged => RunStatus::Staged,
            RunStatusArg::Failed => RunStatus::Failed,
        }
    }
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Apply the schema; idempotent: a second run changes nothing and says so.
    Apply {
        /// Only these stores (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<StoreArg>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, secrets redacted.
    Show,
    /// Validate the configuration and check that every store answers.
    Check,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreArg {
    Postgres,
    Cassandra,
    Kafka,
}

impl From<StoreArg> for Service {
    fn from(s: StoreArg) -> Self {
        match s {
            StoreArg::Postgres => Service::Postgres,
            StoreArg::Cassandra => Service::Cassandra,
            StoreArg::Kafka => Service::Kafka,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tributary_actors::install_tls_provider();
    let sources = Sources {
        config_dir: cli.config.config_dir,
        profile: cli.config.profile,
        files: cli.config.files,
        environment: true,
    };
    let config = match Config::load(&sources) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return code(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return code(exit::FAILURE);
        }
    };
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, config: Config) -> ExitCode {
    // The demo's display owns the terminal: logs go to a file, warnings above the bars.
    let mut demo_display = None;
    let logs = match &command {
        Command::Demo {
            verbose: false,
            log_file,
            ..
        } => {
            let path = log_file
                .clone()
                .unwrap_or_else(tributary::demo::default_log_file);
            // A new file: never through a link someone left at that name in /tmp.
            let created = if log_file.is_some() {
                std::fs::File::create(&path)
            } else {
                std::fs::File::create_new(&path)
            };
            let file = match created {
                Ok(file) => file,
                Err(error) => {
                    eprintln!(
                        "error: cannot create the demo's log file {}: {error}",
                        path.display()
                    );
                    return code(exit::FAILURE);
                }
            };
            let display = tributary::demo::Display::for_stdout();
            let terminal = BoxMakeWriter::new(display.log_writer());
            demo_display = Some((display, path));
            telemetry::Logs::Demo { file, terminal }
        }
        _ => telemetry::Logs::Stderr,
    };
    let telemetry = match telemetry::init(&config.telemetry, logs) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}");
            return code(exit::CONFIG);
        }
    };
    let result = match command {
        Command::Schema(SchemaCommand::Apply { only }) => schema_apply(&config, &only).await,
        Command::Config(ConfigCommand::Show) => {
            print!("{}", Redacted(&config));
            exit::OK
        }
        Command::Config(ConfigCommand::Check) => config_check(&config).await,
        Command::Source { bind } => serve_source(&config, bind).await,
        Command::Run { test_faults } => tributary::run::run(&config, test_faults).await,
        Command::Demo {
            users, source_url, ..
        } => {
            let (display, log_file) = match demo_display {
                Some((display, path)) => (display, Some(path)),
                None => (tributary::demo::Display::plain(), None),
            };
            let options = tributary::demo::Options {
                users,
                source_url,
                log_file,
            };
            tributary::demo::demo(&config, &options, display).await
        }
        Command::Verify { since, runs, json } => {
            use tributary::verify::Window;
            let window = match (since, runs) {
                (Some(since), _) => Window::Since(since),
                (None, Some((from, to))) => Window::Runs(from, to),
                (None, None) => Window::Retained,
            };
            tributary::verify::print(&config, window, json).await
        }
        Command::Status { url, json } => tributary::status::print(&config, url, json).await,
        Command::Runs(args) => runs(&config, args).await,
    };
    telemetry.shutdown();
    code(result)
}

async fn runs(config: &Config, args: RunsArgs) -> i32 {
    match args.action {
        None => {
            let status = args.status.map(RunStatus::from);
            tributary::runs::print_list(config, status, args.limit, args.json).await
        }
        Some(RunsAction::Retry { run_ids, failed }) => {
            let selection = if failed {
                RetrySelection::AllFailed
            } else {
                RetrySelection::Runs(run_ids)
            };
            tributary::runs::retry(config, selection).await
        }
    }
}

async fn schema_apply(config: &Config, only: &[StoreArg]) -> i32 {
    let only: Vec<Service> = only.iter().map(|s| Service::from(*s)).collect();
    match schema::apply(config, &only).await {
        Ok(outcomes) => {
            for outcome in &outcomes {
                println!("{outcome}");
            }
            println!("{}", schema::summary(&outcomes));
            exit::OK
        }
        Err(error) => {
            eprintln!("error: {}", tributary::error_chain(&error));
            exit::for_store_error(&error)
        }
    }
}

async fn serve_source(config: &Config, bind: Option<String>) -> i32 {
    let bind = bind.unwrap_or_else(|| config.source.bind.clone());
    let listener = match std::net::TcpListener::bind(&bind) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: source.bind: cannot listen on {bind}: {error}");
            return exit::CONFIG;
        }
    };
    let (server, address) = match tributary::source::server::serve(&config.source, listener) {
        Ok(served) => served,
        Err(error) => {
            eprintln!("error: cannot start the embedded source: {error}");
            return exit::FAILURE;
        }
    };
    let handle = server.handle();
    tracing::info!(%address, "embedded source listening: GET http://{address}/api/");
    let server = tokio::spawn(server);
    tributary::shutdown_signal().await;
    handle.stop(true).await;
    match server.await {
        Ok(Ok(())) => exit::OK,
        Ok(Err(error)) => {
            eprintln!("error: embedded source: {error}");
            exit::FAILURE
        }
        Err(error) => {
            eprintln!("error: embedded source task: {error}");
            exit::FAILURE
        }
    }
}

async fn config_check(config: &Config) -> i32 {
    let mut worst = exit::OK;
    let mut report = |service: Service, result: Result<String, store::StoreError>| match result {
        Ok(detail) => println!("{:<11} ok   {detail}", service.to_string()),
        Err(error) => {
            println!(
                "{:<11} FAIL {}",
                service.to_string(),
                tributary::error_chain(&error)
            );
            worst = worst.max(exit::for_store_error(&error));
        }
    };
    let pg = async {
        let pool = store::postgres::pool(&config.postgres)?;
        store::postgres::check(&pool, &config.postgres).await?;
        Ok(config.postgres.endpoint())
    };
    report(Service::Postgres, pg.await);
    let kafka = store::kafka::check(&config.kafka)
        .await
        .map(|brokers| format!("{} ({brokers} broker(s))", config.kafka.bootstrap_servers));
    report(Service::Kafka, kafka);
    let cassandra = store::cassandra::connect(&config.cassandra)
        .await
        .map(|_| config.cassandra.endpoint());
    report(Service::Cassandra, cassandra);
    if config.kafka.record_format == tributary_actors::format::RecordFormat::Avro {
        let kafka = &config.kafka;
        let registry = async {
            let registry = tributary_actors::store::registry::Registry::new(&kafka.registry)?;
            let encoder = tributary_actors::format::Encoder::new(
                kafka.record_format,
                registry.as_ref(),
                &kafka.topics.raw.name,
            )
            .await;
            match encoder {
                Ok(tributary_actors::format::Encoder::Avro { id, .. }) => {
                    Ok(format!("{} (schema id {id})", kafka.registry.url))
                }
                Ok(_) => Ok(kafka.registry.url.clone()),
                Err(what) => Err(store::StoreError::Refused {
                    service: Service::Registry,
                    what,
                }),
            }
        };
        report(Service::Registry, registry.await);
    }
    worst
}

fn code(value: i32) -> ExitCode {
    ExitCode::from(u8::try_from(value).unwrap_or(1))
}
