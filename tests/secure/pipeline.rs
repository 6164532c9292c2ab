//! The whole pipeline against the secure stack, and no secret anywhere it writes.

use super::*;

/// The whole pipeline over TLS with passwords, exactly once; then no password of any
/// store in anything tributary wrote: the demo's output and its log (at debug level),
/// `config show`, a running instance's `/api/status` and its log, and the run's spans in
/// Jaeger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_moves_users_exactly_once_and_no_secret_leaks() {
    let _turn = STORES.lock().await;
    let mut config = secure_config();
    reset_schema_and_keyspace(&config).await;
    let mut env = isolated(&mut config, "pipeline");
    env.push(("TRIBUTARY__TELEMETRY__LOG_FILTER".into(), "debug".into()));
    let log = std::env::temp_dir().join(format!("{}.log", unique("secure_demo")));

    let apply = tributary(&["schema", "apply"], &env);
    assert!(apply.status.success(), "{}", text(&apply));
    let demo = tributary(
        &[
            "demo",
            "--users",
            "1000",
            "--log-file",
            &log.display().to_string(),
        ],
        &env,
    );
    let demo_text = text(&demo);
    assert!(demo.status.success(), "{demo_text}");
    assert!(
        demo_text
            .lines()
            .any(|l| l.starts_with("rows in cassandra") && l.ends_with(" 1000")),
        "{demo_text}"
    );
    assert!(demo_text.contains("verify: OK"), "{demo_text}");
    let demo_log = std::fs::read_to_string(&log).expect("the demo's log");
    let _ = std::fs::remove_file(&log);
    // The search below means something only if the log is the verbose one.
    assert!(demo_log.contains("DEBUG"), "{demo_log}");

    let show = tributary(&["config", "show"], &env);
    assert!(show.status.success(), "{}", text(&show));
    let (status, run_log) = status_of_a_running_instance(&env).await;
    // The demo's spans and the instance's (it exports them as it stops).
    let spans = spans_in_jaeger(&config).await;

    for (name, value) in every_secret() {
        for (what, haystack) in [
            ("the demo's output", demo_text.as_str()),
            ("the demo's log", demo_log.as_str()),
            ("config show", &text(&show)),
            ("/api/status", status.as_str()),
            ("the run's log", run_log.as_str()),
            ("Jaeger's spans", spans.as_str()),
        ] {
            assert!(!haystack.contains(&value), "{name} found in {what}");
        }
    }
    delete_topics_as_admin(
        &config.kafka,
        &[
            &config.kafka.topics.raw.name,
            &config.kafka.topics.checkpoints.name,
            &config.kafka.topics.dlq.name,
        ],
    )
    .await;
}

/// A `tributary run` child, stopped (SIGTERM, then SIGKILL after 30 s) when dropped,
/// whatever the test's outcome.
struct Running(std::process::Child);

impl Running {
    /// SIGTERM, then waits for the graceful shutdown (spans exported, consumers left).
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// `tributary run`'s `/api/status` once it answers, and what the process logged.
async fn status_of_a_running_instance(env: &[(String, String)]) -> (String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let log = std::env::temp_dir().join(format!("{}.log", unique("secure_run")));
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command
        .args(["run"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TRIBUTARY_PROFILE", "secure")
        .env("TRIBUTARY__ADMIN__BIND", format!("127.0.0.1:{port}"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("run log"));
    let mut child = Running(command.spawn().expect("tributary run starts"));
    let url = format!("http://127.0.0.1:{port}/api/status");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status().is_success()
        {
            break response.text().await.expect("status body");
        }
        assert!(
            Instant::now() < deadline,
            "no /api/status within 60 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    child.stop();
    let run_log = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(status.contains("\"tree\""), "{status}");
    (status, run_log)
}

/// Every trace Jaeger holds for the demo's service, as its query API returns them,
/// once there is at least one.
async fn spans_in_jaeger(config: &Config) -> String {
    let url = format!(
        "{}/api/traces?service={}&limit=100",
        config.telemetry.query_url, config.telemetry.service_name
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && let Ok(body) = response.text().await
            && body.contains("\"spanID\"")
        {
            return body;
        }
        assert!(Instant::now() < deadline, "no trace in Jaeger at {url}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
