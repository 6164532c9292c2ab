//! What every scenario of a chaos run shares, and where its tributary runs.

use crate::backend::Backend;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use tributary::config::{Config, Sources};

/// What every scenario shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub users: u64,
    pub users_per_run: u32,
    pub interval_ms: u64,
    pub backend: Backend,
    pub tributary_bin: PathBuf,
    pub toxiproxy_api: String,
    pub work_dir: PathBuf,
    pub drain_deadline: Duration,
    /// The configuration profile of the stack (`cluster` for the cluster stack), for
    /// this runner and every tributary it starts.
    pub profile: Option<String>,
    /// Where each scenario's tributary runs.
    pub launch: Launch,
}

/// Where a scenario's `tributary run` runs.
#[derive(Debug, Clone, Copy)]
pub enum Launch {
    /// A child process of the runner on this host.
    Process,
    /// A container of the compose project's `tributary` service (`compose run`), on
    /// the compose network, reaching the stores by their service names; the workload's
    /// source listens on the network's gateway, the host's address on that network.
    Container { gateway: std::net::IpAddr },
}

impl Settings {
    /// The configuration every scenario starts from (before its names are isolated).
    pub fn config(&self) -> anyhow::Result<Config> {
        Config::load(&Sources {
            profile: self.profile.clone(),
            ..Sources::default()
        })
        .context("configuration")
    }
}

/// The configuration profile (and stack profile) of the cluster scenarios.
pub const CLUSTER_PROFILE: &str = "cluster";

/// The configuration profile (and stack profile) of the container scenarios.
pub const CONTAINERS_PROFILE: &str = "containers";
