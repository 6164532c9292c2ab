//! `tributary run` child processes for the benchmark, and what is sampled from them:
//! records through each stage (from `/api/status`) and resident memory (from /proc).

use anyhow::Context as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// One running `tributary run`.
pub struct Instance {
    child: std::process::Child,
    log: std::path::PathBuf,
    admin: Option<String>,
}

/// One reading of an instance.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Reading {
    /// Seconds since the phase started.
    pub t: f64,
    pub published: u64,
    pub written: u64,
    pub rss_mib: f64,
}

impl Instance {
    pub fn start(
        binary: &Path,
        name: &str,
        env: &[(String, String)],
        out: &Path,
    ) -> anyhow::Result<Self> {
        let log = out.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut command = std::process::Command::new(binary);
        command
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            log,
            admin: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The admin base URL, from the start-up log line (JSON logs).
    pub async fn admin(&mut self) -> anyhow::Result<String> {
        if let Some(admin) = &self.admin {
            return Ok(admin.clone());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let found = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("admin http listening"))
                })
                .and_then(|l| l["address"].as_str().map(|a| format!("http://{a}")));
            if let Some(url) = found {
                self.admin = Some(url.clone());
                return Ok(url);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("tributary exited ({status}); log {}", self.log.display());
            }
            if Instant::now() > deadline {
                anyhow::bail!("no admin address in {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Records published and written so far by this instance.
    pub async fn counts(&mut self, http: &reqwest::Client) -> anyhow::Result<(u64, u64)> {
        let admin = self.admin().await?;
        let status: serde_json::Value = http
            .get(format!("{admin}/api/status"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let get = |k: &str| status["records"][k].as_u64().unwrap_or(0);
        Ok((get("published"), get("written")))
    }

    /// `/metrics` text.
    pub async fn metrics(&mut self, http: &reqwest::Client) -> anyhow::Result<String> {
        let admin = self.admin().await?;
        Ok(http
            .get(format!("{admin}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// Resident set size in MiB (VmRSS).
    pub fn rss_mib(&self) -> f64 {
        rss_mib(self.pid())
    }

    /// SIGTERM, then wait (graceful drain).
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `key:` line of a /proc file whose value is in kB (`VmRSS:` of status,
/// `MemTotal:` of meminfo).
pub fn proc_kib(path: &str, key: &str) -> Option<f64> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
    })
}

/// VmRSS of `pid` in MiB, 0 when it cannot be read.
pub fn rss_mib(pid: u32) -> f64 {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:").map_or(0.0, |kb| kb / 1024.0)
}

/// Samples every instance every `every` until `done` says so (or `limit` passes);
/// returns the summed readings.
pub async fn sample_until(
    instances: &mut [Instance],
    every: Duration,
    limit: Duration,
    mut done: impl FnMut(&Reading) -> bool,
) -> anyhow::Result<Vec<Reading>> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut readings = Vec::new();
    loop {
        let mut reading = Reading {
            t: started.elapsed().as_secs_f64(),
            published: 0,
            written: 0,
            rss_mib: 0.0,
        };
        for instance in instances.iter_mut() {
            let (published, written) = instance.counts(&http).await.unwrap_or((0, 0));
            reading.published += published;
            reading.written += written;
            reading.rss_mib = reading.rss_mib.max(instance.rss_mib());
        }
        readings.push(reading);
        if done(&reading) {
            return Ok(readings);
        }
        if started.elapsed() > limit {
            anyhow::bail!("not done within {limit:?}; last reading {reading:?}");
        }
        tokio::time::sleep(every).await;
    }
}
