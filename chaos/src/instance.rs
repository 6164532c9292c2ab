//! The tributary processes (or containers) of a scenario, and the scenario's run: its
//! configuration, environment, instances and their logs.

use crate::settings::{Launch, Settings};
use anyhow::Context;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use tributary::config::Config;

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

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn env_port(name: &str, default: u16) -> u16 {
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
