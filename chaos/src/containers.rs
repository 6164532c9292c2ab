//! The container suite's own pieces (`--suite containers`, against the container stack
//! through the compose backend): tributary in a container of the compose project, and
//! `compose-up`, the compose file's whole stack — its own tributary service included —
//! moving users exactly once.

use crate::backend::Backend;
use crate::instance::{Instance, Run, free_port};
use crate::report::Outcome;
use crate::settings::Settings;
use crate::watch::{Progressor, wait_for};
use anyhow::{Context, bail};
use std::process::{Command, Stdio};
use std::time::Instant;

impl Run<'_> {
    /// Starts an instance in a container of the compose project's `tributary` service,
    /// with the scenario's environment over the service's own (which points at the
    /// stores by their service names), its admin server published on this host.
    pub(crate) fn start_container(&mut self) -> anyhow::Result<()> {
        let Backend::Compose(compose) = &self.settings.backend else {
            bail!("tributary in a container needs the compose backend");
        };
        let port = free_port()?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{}-{}", self.name.replace('_', "-"), self.logs.len());
        let log = self.settings.work_dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = Command::new(&compose.command[0]);
        command.args(&compose.command[1..]).args([
            "run",
            "--detach",
            "--no-deps",
            "--name",
            &name,
            "--publish",
            &format!("127.0.0.1:{port}:{port}"),
        ]);
        let env = self.env.iter().cloned().chain([
            (
                "TRIBUTARY__ADMIN__BIND".to_owned(),
                format!("0.0.0.0:{port}"),
            ),
            ("TRIBUTARY__ADMIN__TOKEN".to_owned(), token.clone()),
        ]);
        for (key, value) in env {
            command.args(["--env", &format!("{key}={value}")]);
        }
        let output = command
            .args(["tributary", "run", "--test-faults"])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", compose.command.join(" ")))?;
        if !output.status.success() {
            bail!(
                "compose run of tributary failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        // Its log lines, into the file a process instance would write.
        let child = Command::new(&compose.docker)
            .args(["logs", "--follow", &name])
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("{} logs --follow {name}", compose.docker))?;
        self.logs.push(log.clone());
        self.instances.push(Instance {
            child,
            log,
            admin: format!("127.0.0.1:{port}"),
            token: Some(token),
            container: Some((name, compose.clone())),
        });
        Ok(())
    }
}

/// `docker compose up` of the whole file with a workload of `settings.users` (rounded up
/// to whole runs), bounded through `TRIBUTARY_MAX_RUNS` (compose.local.yml), then
/// `verify`. The compose file's tributary works in the default names: whatever an
/// earlier run left in them goes first.
pub async fn compose_up(settings: &Settings, outcome: &mut Outcome) -> anyhow::Result<()> {
    let Backend::Compose(compose) = &settings.backend else {
        bail!("compose-up needs the compose backend (--suite containers)");
    };
    settings.backend.call(Backend::restore_stores).await?;
    let config = settings.config()?;
    tributary::schema::isolated::drop(&config)
        .await
        .context("drop what an earlier compose-up left")?;
    let per_run = u64::from(config.ingest.users_per_run);
    let runs = settings.users.div_ceil(per_run);
    outcome.expected = runs * per_run;

    let started = Instant::now();
    let compose_command = |args: &[&str]| {
        let mut command = Command::new(&compose.command[0]);
        command
            .args(&compose.command[1..])
            .args(args)
            .env("TRIBUTARY_MAX_RUNS", runs.to_string())
            .stdin(Stdio::null());
        command
    };
    let up = compose_command(&["up", "--detach"])
        .output()
        .context("docker compose up")?;
    let drained = if up.status.success() {
        let mut probe = Progressor {
            config: &config,
            probe: None,
        };
        wait_for(settings.drain_deadline, async || {
            probe.read().await.filter(|p| p.drained(runs as i64))
        })
        .await
    } else {
        None
    };
    // The compose file's own services go again, whether or not `up` got them all
    // started: the stores stay for the next scenario.
    let logs = compose_command(&["logs", "--no-color", "schema", "source", "tributary"]).output();
    if let Ok(logs) = logs {
        let file = settings.work_dir.join("compose-up.log");
        let _ = std::fs::write(&file, [logs.stdout, logs.stderr].concat());
    }
    let _ = compose_command(&["rm", "--stop", "--force", "schema", "source", "tributary"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !up.status.success() {
        bail!(
            "docker compose up failed ({}): {}",
            up.status,
            String::from_utf8_lossy(&up.stderr).trim()
        );
    }
    if drained.is_none() {
        bail!(
            "did not drain within {:?} (logs: {})",
            settings.drain_deadline,
            settings.work_dir.join("compose-up.log").display()
        );
    }
    outcome.drain_s = Some(started.elapsed().as_secs_f64());

    let report = tributary::verify::verify(&config).await.context("verify")?;
    outcome.judge(&report, outcome.expected);
    if outcome.passed {
        tributary::schema::isolated::drop(&config)
            .await
            .context("drop compose-up's objects")?;
    }
    Ok(())
}
