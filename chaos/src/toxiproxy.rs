//! Network faults on tributary's links to its stores through Toxiproxy's HTTP API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub struct Toxiproxy {
    api: String,
    http: reqwest::Client,
}

/// A toxic, as Toxiproxy names and configures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toxic {
    /// Adds latency with jitter to every packet.
    Latency,
    /// Resets connections (TCP RST) as they carry data.
    ResetPeer,
    /// Stops all data and closes the connection after a timeout.
    Timeout,
    /// Throttles the link to a few KB/s.
    Bandwidth,
}

impl Toxic {
    pub fn name(self) -> &'static str {
        match self {
            Toxic::Latency => "latency",
            Toxic::ResetPeer => "reset_peer",
            Toxic::Timeout => "timeout",
            Toxic::Bandwidth => "bandwidth",
        }
    }

    fn attributes(self) -> Value {
        match self {
            Toxic::Latency => json!({"latency": 800, "jitter": 400}),
            Toxic::ResetPeer => json!({"timeout": 0}),
            Toxic::Timeout => json!({"timeout": 2000}),
            Toxic::Bandwidth => json!({"rate": 16}),
        }
    }
}

impl Toxiproxy {
    pub fn new(api: impl Into<String>) -> Self {
        Self {
            api: api.into(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("toxiproxy {path}"))?;
        if !response.status().is_success() {
            bail!(
                "toxiproxy {path}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Creates (or recreates) a proxy `listen` → `upstream`.
    pub async fn proxy(&self, name: &str, listen: &str, upstream: &str) -> anyhow::Result<()> {
        let _ = self
            .http
            .delete(format!("{}/proxies/{name}", self.api))
            .send()
            .await;
        self.post(
            "/proxies",
            json!({"name": name, "listen": listen, "upstream": upstream, "enabled": true}),
        )
        .await
    }

    /// Adds a toxic on both directions of the proxy.
    pub async fn add(&self, proxy: &str, toxic: Toxic) -> anyhow::Result<()> {
        for stream in ["downstream", "upstream"] {
            let body = json!({
                "name": format!("{}-{stream}", toxic.name()),
                "type": toxic.name(),
                "stream": stream,
                "toxicity": 1.0,
                "attributes": toxic.attributes(),
            });
            self.post(&format!("/proxies/{proxy}/toxics"), body).await?;
        }
        Ok(())
    }

    /// Removes a toxic from both directions.
    pub async fn remove(&self, proxy: &str, toxic: Toxic) -> anyhow::Result<()> {
        for stream in ["downstream", "upstream"] {
            self.http
                .delete(format!(
                    "{}/proxies/{proxy}/toxics/{}-{stream}",
                    self.api,
                    toxic.name()
                ))
                .send()
                .await
                .with_context(|| format!("remove toxic from {proxy}"))?;
        }
        Ok(())
    }

    pub async fn delete(&self, proxy: &str) {
        let _ = self
            .http
            .delete(format!("{}/proxies/{proxy}", self.api))
            .send()
            .await;
    }
}
