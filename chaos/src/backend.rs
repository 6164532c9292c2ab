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
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Kafka => "kafka",
            Service::Cassandra => "cassandra",
            Service::Postgres => "postgres",
            Service::Jaeger => "jaeger",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Kill,
    Start,
    Pause,
    Resume,
}

#[derive(Debug, Clone)]
pub enum Backend {
    /// The local stack: `stack/stack.sh kill|start|pause|resume SERVICE`.
    Process { stack_script: PathBuf },
    /// `docker compose -f FILE kill|start|pause|unpause SERVICE`.
    Compose { file: PathBuf },
}

impl Backend {
    /// The exact command line for an action (unit-tested for compose, which our
    /// machines cannot run).
    pub fn command(&self, action: Action, service: Service) -> Vec<String> {
        match self {
            Backend::Process { stack_script } => {
                let verb = match action {
                    Action::Kill => "kill",
                    Action::Start => "start",
                    Action::Pause => "pause",
                    Action::Resume => "resume",
                };
                vec![
                    stack_script.display().to_string(),
                    verb.into(),
                    service.name().into(),
                ]
            }
            Backend::Compose { file } => {
                let verb = match action {
                    // SIGKILL, like the process backend.
                    Action::Kill => "kill",
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
                command.push(service.name().into());
                command
            }
        }
    }

    /// Runs an action and waits for it (`start` returns once the service is ready).
    pub fn run(&self, action: Action, service: Service) -> anyhow::Result<()> {
        let command = self.command(action, service);
        let status = Command::new(&command[0])
            .args(&command[1..])
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", command.join(" ")))?;
        if !status.success() {
            bail!("{} failed with {status}", command.join(" "));
        }
        Ok(())
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
        };
        assert_eq!(
            process.command(Action::Pause, Service::Kafka).join(" "),
            "stack/stack.sh pause kafka"
        );
        assert_eq!(
            process.command(Action::Start, Service::Jaeger).join(" "),
            "stack/stack.sh start jaeger"
        );
    }
}
