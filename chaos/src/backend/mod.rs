//! How faults reach the stack's services: `process` drives the local process stacks
//! through stack/stack.sh; `compose` drives docker compose and the docker CLI (the
//! container stack here, `STACK=containers`, and a Docker user's own compose stack).

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;

mod compose;

pub use compose::Compose;
use compose::{Endpoint, engine_post, engine_socket};

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
    /// Off the compose network (a network partition of one container).
    Disconnect,
    /// Back on the compose network, at the address it had.
    Connect,
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
    /// `COMPOSE kill -s SIGKILL|start|stop SERVICE`, `DOCKER pause|unpause CONTAINER`,
    /// and `DOCKER network disconnect|connect` for partitions (compose has no verb for
    /// them).
    Compose(Compose),
}

impl Backend {
    /// The exact command line for an action.
    pub fn command(&self, action: Action, service: Service) -> Vec<String> {
        match self {
            Backend::Process { stack_script, .. } => {
                let verb = match action {
                    Action::Kill => "kill",
                    Action::Stop => "stop",
                    Action::Start => "start",
                    Action::Pause => "pause",
                    Action::Resume => "resume",
                    // Not verbs of the process stacks (they cut whole nodes off:
                    // `partition N`): the stack script refuses them.
                    Action::Disconnect => "disconnect",
                    Action::Connect => "connect",
                };
                vec![
                    stack_script.display().to_string(),
                    verb.into(),
                    service.name(),
                ]
            }
            Backend::Compose(compose) => {
                let verb = match action {
                    // SIGKILL, like the process backend.
                    Action::Kill => "kill",
                    Action::Stop => "stop",
                    Action::Start => "start",
                    // The docker CLI's, on the service's container: `compose unpause`
                    // against podman's API finds no paused container, answers 0 and
                    // leaves it frozen.
                    Action::Pause | Action::Resume => {
                        let verb = if action == Action::Pause {
                            "pause"
                        } else {
                            "unpause"
                        };
                        return vec![
                            compose.docker.clone(),
                            verb.into(),
                            compose.container(service),
                        ];
                    }
                    Action::Disconnect => {
                        return compose.disconnect_command(&compose.container(service));
                    }
                    Action::Connect => {
                        return compose.connect_command(
                            &compose.container(service),
                            None,
                            Some(&service.name()),
                        );
                    }
                };
                let mut command = compose.command.clone();
                command.push(verb.into());
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
        let Backend::Compose(compose) = self else {
            return self.execute(self.command(action, service)).map(drop);
        };
        let container = compose.container(service);
        match action {
            // Back at its address and under its service name: the other containers
            // reach it by that name, Cassandra announces its address to its clients.
            Action::Disconnect => self.disconnect(&container),
            Action::Connect => self.connect(&container, Some(&service.name())),
            // `compose start` waits for a service's dependencies, not for the service:
            // ready means its health check passed again.
            Action::Start => {
                self.execute(self.command(action, service))?;
                self.wait_healthy(&container)
            }
            Action::Resume => self.unpause(&container),
            _ => self.execute(self.command(action, service)).map(drop),
        }
    }

    /// `DOCKER unpause CONTAINER`, checked: a heal that did nothing would leave every
    /// later scenario on a frozen container.
    pub fn unpause(&self, container: &str) -> anyhow::Result<()> {
        self.docker(&["unpause", container])?;
        if self.inspect(container, "{{.State.Paused}}")?.trim() == "true" {
            bail!("{container} is still paused after unpause");
        }
        Ok(())
    }

    /// Before a container scenario: every store's container unpaused and back on the
    /// compose network if an interrupted scenario left it frozen or cut off, and
    /// healthy.
    pub fn restore_stores(&self) -> anyhow::Result<()> {
        let Backend::Compose(compose) = self else {
            return Ok(());
        };
        for service in [Service::Kafka, Service::Cassandra, Service::Postgres] {
            let container = compose.container(service);
            if self.inspect(&container, "{{.State.Paused}}")?.trim() == "true" {
                self.unpause(&container)?;
            }
            if compose.lock_disconnected().contains_key(&container) {
                self.connect(&container, Some(&service.name()))?;
            }
            self.wait_healthy(&container)?;
        }
        Ok(())
    }

    /// `DOCKER inspect -f FORMAT CONTAINER`.
    fn inspect(&self, container: &str, format: &str) -> anyhow::Result<String> {
        let Backend::Compose(compose) = self else {
            bail!("containers need the compose backend");
        };
        self.execute(vec![
            compose.docker.clone(),
            "inspect".into(),
            "-f".into(),
            format.into(),
            container.into(),
        ])
    }

    /// A container's address and MAC address on the compose network.
    fn endpoint(&self, container: &str) -> anyhow::Result<Endpoint> {
        let Backend::Compose(compose) = self else {
            bail!("container addresses need the compose backend");
        };
        let network = format!(
            "(index .NetworkSettings.Networks \"{}\")",
            compose.network()
        );
        let answer = self.inspect(
            container,
            &format!("{{{{{network}.IPAddress}}}} {{{{{network}.MacAddress}}}}"),
        )?;
        match answer.split_whitespace().collect::<Vec<_>>()[..] {
            [ip, mac] if ip != "<no" => Ok(Endpoint {
                ip: ip.to_owned(),
                mac: mac.to_owned(),
            }),
            _ => bail!("{container} has no address on {}", compose.network()),
        }
    }

    /// The compose network's gateway: the host's address on it, where its containers
    /// reach this host.
    pub fn gateway(&self) -> anyhow::Result<std::net::IpAddr> {
        let Backend::Compose(compose) = self else {
            bail!("a compose network needs the compose backend");
        };
        let answer = self.execute(vec![
            compose.docker.clone(),
            "network".into(),
            "inspect".into(),
            "-f".into(),
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}".into(),
            compose.network(),
        ])?;
        answer
            .split_whitespace()
            .find_map(|ip| ip.parse().ok())
            .with_context(|| format!("{} names no gateway: {answer:?}", compose.network()))
    }

    /// The docker CLI with `args` (the compose backend's: pause, unpause, …).
    pub fn docker(&self, args: &[&str]) -> anyhow::Result<()> {
        let Backend::Compose(compose) = self else {
            bail!("`docker {}` needs the compose backend", args.join(" "));
        };
        let mut command = vec![compose.docker.clone()];
        command.extend(args.iter().map(|a| (*a).to_owned()));
        self.execute(command).map(drop)
    }

    /// Takes `container` off the compose network, remembering its endpoint.
    pub fn disconnect(&self, container: &str) -> anyhow::Result<()> {
        let Backend::Compose(compose) = self else {
            bail!("network partitions of containers need the compose backend");
        };
        let endpoint = self.endpoint(container)?;
        self.execute(compose.disconnect_command(container))?;
        compose
            .lock_disconnected()
            .insert(container.to_owned(), endpoint);
        Ok(())
    }

    /// Puts `container` back on the compose network at the address and the MAC address
    /// it had, under `alias` (a service's name, by which the other containers reach
    /// it). The same MAC address matters: with a new one, every peer's ARP entry still
    /// names the old for 30 s and more (REACHABLE, DELAY, PROBE, FAILED), and the heal
    /// reaches nobody until it expires. The docker CLI cannot set it, the Engine API
    /// can (`EndpointConfig.MacAddress`): through `DOCKER_HOST`'s socket when it is a
    /// local one, through the CLI otherwise.
    pub fn connect(&self, container: &str, alias: Option<&str>) -> anyhow::Result<()> {
        let Backend::Compose(compose) = self else {
            bail!("network partitions of containers need the compose backend");
        };
        let endpoint = compose.lock_disconnected().get(container).cloned();
        let through_api = match (&endpoint, engine_socket()) {
            (Some(endpoint), Some(socket)) => {
                let body = serde_json::json!({
                    "Container": container,
                    "EndpointConfig": {
                        "IPAMConfig": { "IPv4Address": endpoint.ip },
                        "MacAddress": endpoint.mac,
                        "Aliases": alias.into_iter().collect::<Vec<_>>(),
                    },
                });
                let path = format!("/networks/{}/connect", compose.network());
                engine_post(&socket, &path, &body.to_string()).inspect_err(|error| {
                    eprintln!("chaos: {container}: {error:#}; connecting through the CLI");
                })
            }
            _ => Err(anyhow::anyhow!("no endpoint or no local Engine API socket")),
        };
        if through_api.is_err() {
            let ip = endpoint.map(|e| e.ip);
            self.execute(compose.connect_command(container, ip.as_deref(), alias))?;
        }
        // Forgotten only once it is back: a failed heal can be tried again.
        compose.lock_disconnected().remove(container);
        Ok(())
    }

    /// Waits until `container`'s health check passes (the container stack's health
    /// driver runs the checks; see stack/containers/healthd.sh).
    pub fn wait_healthy(&self, container: &str) -> anyhow::Result<()> {
        if !matches!(self, Backend::Compose(_)) {
            return Ok(());
        }
        let until = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            let status = self.inspect(
                container,
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
            )?;
            match status.trim() {
                "healthy" | "none" => return Ok(()),
                _ if std::time::Instant::now() > until => {
                    bail!(
                        "{container} was not healthy within 300 s (last: {})",
                        status.trim()
                    )
                }
                _ => std::thread::sleep(std::time::Duration::from_secs(1)),
            }
        }
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

    /// Restarts every Cassandra node whose schema version is not the majority's.
    pub fn schema_resync(&self) -> anyhow::Result<()> {
        self.stack_command(&["schema-resync"]).map(drop)
    }

    /// Whether every service is up and (cluster) every broker registered, no partition
    /// under-replicated, the ring whole, on one schema version and holding no hints; if
    /// not, the status lines that say why.
    pub fn whole(&self) -> Result<(), String> {
        let Backend::Process {
            stack_script,
            stack,
        } = self
        else {
            return Err("`status` needs the process backend".into());
        };
        let output = Command::new(stack_script)
            .arg("status")
            .env("TRIBUTARY_STACK", stack)
            .output()
            .map_err(|error| format!("cannot run {} status: {error}", stack_script.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let why: Vec<&str> = stdout
            .lines()
            .filter(|line| line.split_whitespace().nth(1).is_none_or(|s| s != "up"))
            .collect();
        if why.is_empty() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "status exited with {}: {}",
                output.status,
                stderr.trim()
            ));
        }
        Err(why.join("; "))
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
    use std::sync::Arc;

    #[test]
    fn compose_commands() {
        let compose = Backend::Compose(Compose {
            command: ["docker", "compose", "-f", "docker-compose.yml"]
                .map(String::from)
                .to_vec(),
            docker: "docker".into(),
            project: "tributary".into(),
            disconnected: Arc::default(),
        });
        let line = |a, s| compose.command(a, s).join(" ");
        assert_eq!(
            line(Action::Disconnect, Service::Cassandra),
            "docker network disconnect tributary_default tributary-cassandra-1"
        );
        assert_eq!(
            line(Action::Connect, Service::Cassandra),
            "docker network connect --alias cassandra tributary_default tributary-cassandra-1"
        );
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
            "docker pause tributary-cassandra-1"
        );
        assert_eq!(
            line(Action::Resume, Service::Cassandra),
            "docker unpause tributary-cassandra-1"
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
