//! The compose project a `compose` backend drives: its commands, its containers and
//! network, and the endpoints of containers cut off by a partition.

use super::Service;
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A container's place on the compose network.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) ip: String,
    pub(super) mac: String,
}

/// How to reach a compose project.
#[derive(Debug, Clone)]
pub struct Compose {
    /// The compose command with its files, e.g. `docker compose -f docker-compose.yml`.
    pub command: Vec<String>,
    /// The docker CLI (or podman): network partitions and waits on health.
    pub docker: String,
    /// The project's name (docker-compose.yml's `name:`): containers are
    /// `<project>-<service>-1` on the network `<project>_default`.
    pub project: String,
    /// The endpoints of the containers disconnected now, to connect them back at.
    pub(super) disconnected: Arc<Mutex<HashMap<String, Endpoint>>>,
}

impl Compose {
    /// From the environment: `TRIBUTARY_COMPOSE` (the whole compose command, e.g. what
    /// `stack/stack.sh env` prints for the container stack) or `docker compose -f
    /// <repo>/docker-compose.yml`; `TRIBUTARY_DOCKER` or `docker`.
    pub fn from_env(root: &std::path::Path) -> Compose {
        let command = std::env::var("TRIBUTARY_COMPOSE")
            .ok()
            .filter(|c| !c.trim().is_empty())
            .map_or_else(
                || {
                    vec![
                        "docker".into(),
                        "compose".into(),
                        "-f".into(),
                        root.join("docker-compose.yml").display().to_string(),
                    ]
                },
                |c| c.split_whitespace().map(str::to_owned).collect(),
            );
        Compose {
            command,
            docker: std::env::var("TRIBUTARY_DOCKER").unwrap_or_else(|_| "docker".into()),
            project: "tributary".into(),
            disconnected: Arc::default(),
        }
    }

    /// `DOCKER network disconnect NETWORK CONTAINER`.
    pub fn disconnect_command(&self, container: &str) -> Vec<String> {
        vec![
            self.docker.clone(),
            "network".into(),
            "disconnect".into(),
            self.network(),
            container.into(),
        ]
    }

    /// `DOCKER network connect [--ip IP] [--alias ALIAS] NETWORK CONTAINER`.
    pub fn connect_command(
        &self,
        container: &str,
        ip: Option<&str>,
        alias: Option<&str>,
    ) -> Vec<String> {
        let mut command = vec![self.docker.clone(), "network".into(), "connect".into()];
        if let Some(ip) = ip {
            command.extend(["--ip".into(), ip.into()]);
        }
        if let Some(alias) = alias {
            command.extend(["--alias".into(), alias.into()]);
        }
        command.extend([self.network(), container.into()]);
        command
    }

    pub(super) fn lock_disconnected(&self) -> std::sync::MutexGuard<'_, HashMap<String, Endpoint>> {
        self.disconnected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn container(&self, service: Service) -> String {
        format!("{}-{}-1", self.project, service.name())
    }

    pub fn network(&self) -> String {
        format!("{}_default", self.project)
    }
}

/// The Docker Engine API's socket: `DOCKER_HOST` when it names a unix socket, Docker's
/// default when it is unset.
pub(super) fn engine_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) => host.strip_prefix("unix://").map(PathBuf::from),
        Err(_) => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

/// `POST path` with a JSON body to the Engine API at `socket` (HTTP/1.0: the answer ends
/// when the connection closes).
pub(super) fn engine_post(socket: &std::path::Path, path: &str, body: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .with_context(|| format!("the Docker Engine API at {}", socket.display()))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or(0);
    if !(200..300).contains(&status) {
        let detail = answer.split("\r\n\r\n").nth(1).unwrap_or(&answer).trim();
        bail!("POST {path}: HTTP {status}: {detail}");
    }
    Ok(())
}
