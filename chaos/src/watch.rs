//! What a scenario watches while its fault runs: progress through probes that reopen
//! their connections, and Cassandra's commits, for the longest stretch without one.

use anyhow::Context;
use std::time::{Duration, Instant};
use tributary::config::Config;
use tributary::demo::{Probe, Progress, progress};

/// Progress readings through connections that are reopened after an error: the stores
/// this probe reads are the ones the scenarios kill.
pub(crate) struct Progressor<'a> {
    pub config: &'a Config,
    pub probe: Option<Probe>,
}

impl Progressor<'_> {
    pub async fn read(&mut self) -> Option<Progress> {
        if self.probe.is_none() {
            self.probe = Probe::open(self.config).await.ok();
        }
        let reading = progress(self.config, self.probe.as_ref()?).await;
        if reading.is_err() {
            self.probe = None;
        }
        reading.ok()
    }
}

pub(crate) async fn wait_for<T>(
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Some(value) = check().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Watches Cassandra's count of committed users from the fault on, on a task of its
/// own (the fault's hold blocks the scenario), and measures the longest stretch in
/// which it did not grow while users were staged and not yet written. It reads
/// Cassandra alone, with a short timeout per reading (the progress probe also needs
/// PostgreSQL and Kafka, which a fault may be cutting off, and a node that does not
/// answer must not stretch the measurement), and stamps a reading with the moment it
/// was asked. A reading that fails is no reading: the stretch ends at the next one that
/// shows growth.
pub(crate) struct CommitWatch {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Duration>,
}

impl CommitWatch {
    const EVERY: Duration = Duration::from_millis(250);
    const READ_TIMEOUT: Duration = Duration::from_secs(1);
    const BASELINE_WITHIN: Duration = Duration::from_secs(30);

    /// Connects and takes the baseline before it returns, so the fault is injected
    /// after the first reading.
    pub(crate) async fn start(config: &Config, staged: i64) -> anyhow::Result<CommitWatch> {
        let mut cassandra = config.cassandra.clone();
        cassandra.request_timeout_ms = Self::READ_TIMEOUT.as_millis() as u64;
        let session = tributary_actors::store::cassandra::connect(&cassandra)
            .await
            .context("the commit watch's Cassandra session")?;
        let config = config.clone();
        // The baseline may take a few attempts: a node that has just rejoined, or a
        // cold CI machine's first queries, can miss the short timeout once or twice.
        let mut last_error = None;
        let baseline =
            wait_for(
                Self::BASELINE_WITHIN,
                async || match tributary::demo::written_to_cassandra(&config, &session).await {
                    Ok(written) => Some(written),
                    Err(error) => {
                        last_error = Some(error);
                        None
                    }
                },
            )
            .await;
        let baseline = match (baseline, last_error) {
            (Some(written), _) => written,
            (None, Some(error)) => {
                return Err(anyhow::Error::from(error).context(format!(
                    "the commit watch's first reading (tried for {:?})",
                    Self::BASELINE_WITHIN
                )));
            }
            (None, None) => anyhow::bail!("the commit watch's first reading never ran"),
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut last_growth, mut written, mut longest) =
                (Instant::now(), baseline, Duration::ZERO);
            let mut stopping = false;
            loop {
                let asked = Instant::now();
                if let Ok(now) = tributary::demo::written_to_cassandra(&config, &session).await
                    && now > written
                {
                    longest = longest.max(asked.duration_since(last_growth));
                    last_growth = asked;
                    written = now;
                }
                // The stretch still open at the end is idle time once everything is
                // written: the last reading (after the stop) closes a stall that ended
                // in the final burst.
                if stopping || written >= staged {
                    break;
                }
                tokio::select! {
                    _ = &mut stopped => stopping = true,
                    () = tokio::time::sleep(Self::EVERY) => {}
                }
            }
            longest
        });
        Ok(CommitWatch { stop, task })
    }

    /// The longest stretch without a commit while users waited.
    pub(crate) async fn stop(self) -> anyhow::Result<Duration> {
        let _ = self.stop.send(());
        self.task.await.context("the commit watch failed")
    }
}
