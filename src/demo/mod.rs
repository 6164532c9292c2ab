//! `tributary demo`: the main job in one command. Serves the embedded source in this
//! process (or reads another compatible API), runs the actor tree on a bounded number of
//! users, shows each stage's progress until the pipeline has drained, stops, prints
//! `verify`'s table, and says where to look next.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::{exit, run, source, verify};

pub mod display;
pub mod next_steps;
mod progress;

pub use display::Display;
pub use progress::{Probe, Progress, progress, written_to_cassandra};

/// Longest the demo waits for the pipeline to drain, beyond its runs' schedule.
const DEADLINE_MARGIN: Duration = Duration::from_secs(600);
/// How often the display is redrawn from this process's counters.
const REDRAW: Duration = Duration::from_millis(250);
/// How often the stores are asked whether everything arrived.
const STORES_EVERY: Duration = Duration::from_secs(1);

/// What `tributary demo` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Users to move (rounded up to whole runs).
    pub users: u64,
    /// Another compatible API instead of the embedded source (such as
    /// `https://randomuser.me/api/`).
    pub source_url: Option<String>,
    /// The file the full log goes to, when the display owns the terminal.
    pub log_file: Option<PathBuf>,
}

/// `--source-url`: an http(s) URL.
///
/// # Errors
/// Anything else, with what was expected.
pub fn parse_source_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    match tributary_actors::validate::http_url_problem(url) {
        None => Ok(url.to_owned()),
        Some(problem) => Err(problem),
    }
}

/// Where the demo's full log goes by default: a new file in the temporary directory,
/// named by the time and the process (two demos never share one).
pub fn default_log_file() -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    std::env::temp_dir().join(format!("tributary-demo-{stamp}-{}.log", std::process::id()))
}

/// Runs the demo; exit code 0 when verify is clean.
pub async fn demo(config: &Config, options: &Options, mut display: Display) -> i32 {
    if let Err(code) = run::check_start(config).await {
        return code;
    }
    let mut config = config.clone();
    let embedded = match &options.source_url {
        Some(url) => {
            config.ingest.source_url.clone_from(url);
            None
        }
        None => match serve_embedded_source(&config) {
            // The schedule (ingest.interval_ms) stays the configuration's: run ids are
            // its slots, and a `tributary run` after the demo continues the same ledger.
            Ok((handle, url)) => {
                config.ingest.source_url = url;
                Some(handle)
            }
            Err(code) => return code,
        },
    };
    let code = move_and_verify(&mut config, options, &mut display).await;
    if let Some(handle) = embedded {
        handle.stop(true).await;
    }
    code
}

/// Starts the embedded source on a free port: its handle and its URL.
fn serve_embedded_source(config: &Config) -> Result<(actix_web::dev::ServerHandle, String), i32> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| {
        eprintln!("error: cannot open a port for the embedded source: {error}");
        exit::FAILURE
    })?;
    let (server, address) = source::server::serve(&config.source, listener).map_err(|error| {
        eprintln!("error: cannot start the embedded source: {error}");
        exit::FAILURE
    })?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok((handle, format!("http://{address}/api/")))
}

async fn move_and_verify(config: &mut Config, options: &Options, display: &mut Display) -> i32 {
    let probe = match Probe::open(config).await {
        Ok(probe) => probe,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    let before = match progress(config, &probe).await {
        Ok(progress) => progress,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(&error));
            return exit::for_store_error(&error);
        }
    };
    let per_run = u64::from(config.ingest.users_per_run);
    let new_runs = options.users.div_ceil(per_run);
    let runs = before.runs_total + new_runs as i64;
    config.ingest.max_runs = runs as u64;
    // From now on: a ledger idle for days would otherwise give the demo the slots it
    // missed, dated in the past (already past the outbox's retention, or Kafka's).
    config.ingest.catch_up = tributary_actors::ingest::config::CatchUp::Latest;
    let deadline =
        DEADLINE_MARGIN + Duration::from_millis(config.ingest.interval_ms.saturating_mul(new_runs));
    let workload = new_runs * per_run;
    display.println(&format!(
        "demo: {workload} users in {new_runs} runs of {per_run} from {}{}",
        config.ingest.source_url,
        if options.source_url.is_none() {
            " (the embedded source)"
        } else {
            ""
        }
    ));
    if let Some(path) = &options.log_file {
        display.println(&format!("demo: the full log: {}", path.display()));
    }
    let since = SystemTime::now();
    display.start(workload);
    let observed = crate::status::Observed::new(run::instance_name());
    let (root, mut done) = match run::start_tree(config, &observed).await {
        Ok(started) => started,
        Err(error) => {
            eprintln!("error: the actor tree failed to start: {error}");
            return exit::FAILURE;
        }
    };
    let started = Instant::now();
    let mut asked_stores = Instant::now();
    let outcome = loop {
        tokio::select! {
            ended = &mut done => {
                break Err(format!("the actor tree stopped: {:?}", ended.unwrap_or(Err("guardian gone".into()))));
            }
            () = tokio::time::sleep(REDRAW) => {}
        }
        let counts = display::Counts::now();
        display.set_phase(display::Phase::of(
            counts,
            observed.partitions.owned().len(),
            workload,
        ));
        display.update(counts);
        if asked_stores.elapsed() < STORES_EVERY {
            continue;
        }
        asked_stores = Instant::now();
        match progress(config, &probe).await {
            Ok(p) if p.drained(runs) => break Ok(()),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = %crate::error_chain(&error),
                "demo: progress unavailable"
            ),
        }
        if started.elapsed() > deadline {
            break Err(format!("not drained within {deadline:?}"));
        }
    };
    if outcome.is_ok() {
        display.set_phase(display::Phase::Verifying);
    }
    display.finish(display::Counts::now());
    let _ = root
        .stop_and_wait(Some("demo finished".into()), Some(Duration::from_secs(60)))
        .await;
    if let Err(error) = outcome {
        eprintln!("error: demo: {error}");
        return exit::FAILURE;
    }
    println!("demo: drained in {:.1}s\n", started.elapsed().as_secs_f64());
    let code = verify::print(config, verify::Window::Retained, false).await;
    let journey = next_steps::journey(config, since).await;
    let log_file = options.log_file.as_ref().map(|p| p.display().to_string());
    println!(
        "\n{}",
        next_steps::render(config, journey.as_ref(), log_file.as_deref())
    );
    code
}
