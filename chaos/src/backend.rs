//! How faults reach the stack's services: `process` drives the local stack through
//! stack/stack.sh (what CI uses); `compose` drives docker compose for Docker users.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;

/// A service of the stack that a scenario can fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kafka,
    Cassandra,
    Postgres,
    Jaeger,
    /// Broker N (1-3) of the cluster stack.
    KafkaNode(u8),
    /// Cassandra node N (1-3) of the cluster stack.
    CassandraNode(u8),
}

impl Service {
    pub fn name(self) -> String {
        match self {
            Service::Kafka => "kafka".into(),
            Service::Cassandra => "cassandra".into(),
            Service::Postgres => "postgres".into(),
            Service::Jaeger => "jaeger".into(),
            Service::KafkaNode(n) => format!("kafka-{n}"),
            Service::CassandraNode(n) => format!("cassandra-{n}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL.
    Kill,
    /// SIGTERM, waiting until it exited (a graceful shutdown, as a rolling restart does).
    Stop,
    Start,
    Pause,
    Resume,
}

/// A role in the Kafka cluster, held by one broker at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The leader of partition 0 of the raw topic.
    RawLeader,
    /// The transaction coordinator of tributary's transactional id.
    TransactionCoordinator,
    /// The active KRaft controller.
    Controller,
}

#[derive(Debug, Clone)]
pub enum Backend {
    /// The local stack: `stack/stack.sh kill|start|pause|resume SERVICE`, with
    /// `TRIBUTARY_STACK` naming the profile (`single` or `cluster`).
    Process {
        stack_script: PathBuf,
        stack: String,
    },
    /// `docker compose -f FILE kill|start|pause|unpause SERVICE`.
    Compose { file: PathBuf },
}

impl Backend {
    /// The exact command line for an action (unit-tested for compose, which our
    /// machines cannot run).
    pub fn command(&self, action: Action, service: Service) -> Vec<String> {
        match self {
            Backend::Process { stack_script, .. } => {
                let verb = match action {
                    Action::Kill => "kill",
                    Action::Stop => "stop",
                    Action::Start => "start",
                    Action::Pause => "pause",
                    Action::Resume => "resume",
                };
                vec![
                    stack_script.display().to_string(),
                    verb.into(),
                    service.name(),
                ]
            }
            Backend::Compose { file } => {
                let verb = match action {
                    // SIGKILL, like the process backend.
                    Action::Kill => "kill",
                    Action::Stop => "stop",
                    Action::Start => "start",
                    Action::Pause => "pause",
                    Action::Resume => "unpause",
                };
                let mut command = vec![
                    "docker".into(),
                    "compose".into(),
                    "-f".into(),
                    file.display().to_string(),
                    verb.into(),
                ];
                if action == Action::Kill {
                    command.extend(["-s".into(), "SIGKILL".into()]);
                }
                command.push(service.name());
                command
            }
        }
    }

    /// Runs `f` (commands that block on the stack script) on the blocking pool, off
    /// the async workers that drive the scenario.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Backend) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let backend = self.clone();
        tokio::task::spawn_blocking(move || f(&backend)).await?
    }

    /// Runs an action and waits for it (`start` returns once the service is ready).
    pub fn run(&self, action: Action, service: Service) -> anyhow::Result<()> {
        self.execute(self.command(action, service)).map(drop)
    }

    /// The stack script's own command `args` (the cluster profile's `who`, `partition`,
    /// `heal`, `node-cgroup`, `status`); its output.
    fn stack_command(&self, args: &[&str]) -> anyhow::Result<String> {
        let Backend::Process { stack_script, .. } = self else {
            bail!(
                "`{}` needs the process backend (the cluster stack)",
                args.join(" ")
            );
        };
        let mut command = vec![stack_script.display().to_string()];
        command.extend(args.iter().map(|a| (*a).to_owned()));
        self.execute(command)
    }

    /// The node (1-3) that holds `role` now, asked of the cluster.
    pub fn who(&self, role: Role, raw_topic: &str, transactional_id: &str) -> anyhow::Result<u8> {
        let args: Vec<&str> = match role {
            Role::RawLeader => vec!["who", "leader", raw_topic, "0"],
            Role::TransactionCoordinator => vec!["who", "coordinator", transactional_id],
            Role::Controller => vec!["who", "controller"],
        };
        let answer = self.stack_command(&args)?;
        answer
            .trim()
            .parse()
            .with_context(|| format!("{}: not a node id: {answer:?}", args.join(" ")))
    }

    /// Cuts node `n` (its broker and its Cassandra node) off from the rest.
    pub fn partition(&self, n: u8) -> anyhow::Result<()> {
        self.stack_command(&["partition", &n.to_string()]).map(drop)
    }

    pub fn heal(&self) -> anyhow::Result<()> {
        self.stack_command(&["heal"]).map(drop)
    }

    /// Node `n`'s cgroup directory: a process in it is on node `n`'s side of a partition.
    pub fn node_cgroup(&self, n: u8) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(
            self.stack_command(&["node-cgroup", &n.to_string()])?.trim(),
        ))
    }

    /// Whether every service is up and (cluster) every broker registered, the ring whole
    /// and no partition under-replicated.
    pub fn whole(&self) -> bool {
        self.stack_command(&["status"]).is_ok()
    }

    fn execute(&self, command: Vec<String>) -> anyhow::Result<String> {
        let mut process = Command::new(&command[0]);
        process.args(&command[1..]);
        if let Backend::Process { stack, .. } = self {
            process.env("TRIBUTARY_STACK", stack);
        }
        let output = process
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", command.join(" ")))?;
        if !output.status.success() {
            bail!("{} failed with {}", command.join(" "), output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_commands() {
        let compose = Backend::Compose {
            file: "docker-compose.yml".into(),
        };
        let line = |a, s| compose.command(a, s).join(" ");
        assert_eq!(
            line(Action::Kill, Service::Kafka),
            "docker compose -f docker-compose.yml kill -s SIGKILL kafka"
        );
        assert_eq!(
            line(Action::Start, Service::Kafka),
            "docker compose -f docker-compose.yml start kafka"
        );
        assert_eq!(
            line(Action::Pause, Service::Cassandra),
            "docker compose -f docker-compose.yml pause cassandra"
        );
        assert_eq!(
            line(Action::Resume, Service::Cassandra),
            "docker compose -f docker-compose.yml unpause cassandra"
        );
        assert_eq!(
            line(Action::Kill, Service::Postgres),
            "docker compose -f docker-compose.yml kill -s SIGKILL postgres"
        );
    }

    #[test]
    fn process_commands() {
        let process = Backend::Process {
            stack_script: "stack/stack.sh".into(),
            stack: "cluster".into(),
        };
        assert_eq!(
            process.command(Action::Pause, Service::Kafka).join(" "),
            "stack/stack.sh pause kafka"
        );
        assert_eq!(
            process.command(Action::Start, Service::Jaeger).join(" "),
            "stack/stack.sh start jaeger"
        );
        assert_eq!(
            process
                .command(Action::Stop, Service::KafkaNode(2))
                .join(" "),
            "stack/stack.sh stop kafka-2"
        );
    }
}
