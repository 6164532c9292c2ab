//! Helpers shared by the integration tests.

use backon::{ConstantBuilder, Retryable};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tributary::config::{Config, Sources};

/// A name no other test (or earlier run) uses: `<prefix>_<pid>_<n>_<random>`, lower case
/// so it is valid as a PostgreSQL schema, a Cassandra keyspace and a Kafka topic.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{n}_{}", std::process::id(), &random[..6])
}

/// Drops, once per test process, what earlier runs of the suite left in the stores
/// (every test works in its own `it_…` names and leaves them: a failing test's objects
/// are there to be looked at until the next run). Names of this process carry its pid
/// and are kept, so tests that already started are never touched.
pub async fn sweep_earlier_runs() {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let config = Config::load(&Sources::default()).expect("test configuration loads");
            let ours = format!("_{}_", std::process::id());
            match tributary::schema::isolated::drop_leftovers(&config, "it_", |name| {
                name.contains(&ours)
            })
            .await
            {
                Ok(dropped) => eprintln!("dropped {dropped} objects earlier test runs left"),
                // The tests themselves will say what is wrong with the stack.
                Err(error) => eprintln!("could not drop earlier test runs' objects: {error}"),
            }
        })
        .await;
}

/// The configuration the tests run with: the defaults (which point at the local
/// stack), overridden by `TRIBUTARY__…` variables when the caller set any, with unique
/// names for every store object.
pub fn isolated_config(prefix: &str) -> Config {
    let mut config = Config::load(&Sources::default()).expect("test configuration loads");
    config.isolate(&unique(prefix));
    config
}

/// Polls `check` every 200 ms until it returns `Ok`, or fails with its last error once
/// `deadline` has passed. For conditions that become true eventually (a span indexed by
/// Jaeger), never a fixed sleep.
pub async fn eventually<T, E, F, Fut>(deadline: Duration, check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let interval = Duration::from_millis(200);
    let attempts = (deadline.as_millis() / interval.as_millis()).max(1) as usize;
    check
        .retry(
            ConstantBuilder::default()
                .with_delay(interval)
                .with_max_times(attempts),
        )
        .await
}

/// The environment that makes a `tributary` process use `config`'s isolated names.
pub fn isolated_env(config: &Config) -> Vec<(String, String)> {
    let mut env = config.names_env();
    env.extend(
        [
            // Test processes export no traces: the telemetry test covers export.
            ("TRIBUTARY__TELEMETRY__OTLP_ENDPOINT", ""),
            ("TRIBUTARY__TELEMETRY__LOG_FORMAT", "json"),
            // Several instances run at once: each admin server on a free port.
            ("TRIBUTARY__ADMIN__BIND", "127.0.0.1:0"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env
}

/// A `tributary run` child process. Its stderr goes to a file under target/ for the
/// test's assertions and for post-mortems; dropping it SIGKILLs the process.
pub struct Tributary {
    child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Tributary {
    pub fn run(name: &str, env: &[(String, String)]) -> Tributary {
        Self::start(name, &["run"], env)
    }

    /// `tributary <args>` with `env`, e.g. `run --test-faults`.
    pub fn start(name: &str, args: &[&str], env: &[(String, String)]) -> Tributary {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"));
        command
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("tributary starts");
        Tributary { child, log }
    }

    /// SIGKILL: no shutdown hook runs, exactly like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful shutdown), like `kill` or systemd would send.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `deadline` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The JSON log lines written so far (isolated_env sets the JSON format).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The admin server's base URL, from its start-up log line.
    pub async fn admin_url(&self) -> String {
        eventually(Duration::from_secs(60), || async {
            self.log_lines()
                .iter()
                .find(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("admin http listening"))
                })
                .and_then(|l| l["address"].as_str().map(|a| format!("http://{a}")))
                .ok_or("no admin address logged yet")
        })
        .await
        .expect("the admin server starts")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tributary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the embedded source on a free loopback port, in this test process.
pub fn embedded_source(
    faults: tributary::source::Faults,
) -> (String, actix_web::dev::ServerHandle) {
    let config = tributary::source::Config {
        faults,
        ..tributary::source::Config::default()
    };
    let (handle, address) =
        tributary::source::server::spawn_on_loopback(&config).expect("source starts");
    (format!("http://{address}/api/"), handle)
}

/// The embedded source at a fixed address, so that it can be stopped and started
/// again where tributary expects it (a source outage). Stop it with its handle.
pub struct SourceAt {
    pub address: std::net::SocketAddr,
    pub config: tributary::source::Config,
}

impl SourceAt {
    /// A free loopback port (below the ephemeral range) for a source not started yet.
    pub fn reserve(config: tributary::source::Config) -> SourceAt {
        let address = tributary::source::server::stable_loopback_address()
            .expect("a free port below the ephemeral range");
        SourceAt { address, config }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/", self.address)
    }

    /// Serves on the reserved address (again), in the background of this runtime.
    pub fn start(&self) -> actix_web::dev::ServerHandle {
        tributary::source::server::spawn_at(&self.config, self.address).expect("source starts")
    }
}

/// The single stack's Kafka listener that speaks TLS only (the stack's server
/// certificate).
pub fn kafka_tls_bootstrap() -> String {
    std::env::var("TRIBUTARY_STACK_KAFKA_SSL_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9095".into())
}

/// A PEM file of the stack's TLS material (`.stack/tls/`, or under
/// `TRIBUTARY_STACK_DIR`): `ca.pem` signed the stack's server certificates,
/// `other-ca.pem` signed nothing.
pub fn stack_tls_file(name: &str) -> std::path::PathBuf {
    let stack = std::env::var_os("TRIBUTARY_STACK_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".stack"),
        std::path::PathBuf::from,
    );
    stack.join("tls").join(name)
}
