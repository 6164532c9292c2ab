//! A fetcher: fetches one run's page from the source with timeouts, a size limit and
//! retries (exponential backoff with jitter, `Retry-After` honoured on 429), within the
//! process's request budget; checks that the response answers the request (seed, page,
//! count); splits it into valid users and rejected records, and hands the batch to the
//! stager. A round whose every attempt failed goes to the stager too: the run waits for
//! its retry in the ledger.

use super::budget::RequestBudget;
use super::config::{Config, FetchConfig};
use super::stager::StagerMsg;
use crate::directory::Directory;
use crate::model::raw_user::{PageRequest, parse_page};
use crate::model::{FetchedBatch, RawUser, Rejected, Run, StagedUser};
use crate::observe::{self, Stage};
use crate::supervisor::Drain;
use crate::supervisor::shell::{self, Shelled};
use backon::{ExponentialBuilder, Retryable};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

#[derive(Debug, Clone, Copy)]
pub struct Fetcher;

pub struct FetcherArgs {
    pub config: Config,
    /// Where the stager's current incarnation is; it starts before the fetchers.
    pub stager: Directory<StagerMsg>,
    /// Where this fetcher registers itself for the scheduler.
    pub directory: Directory<FetcherMsg>,
    /// `ingest.max_users_per_minute`, shared by every fetcher.
    pub budget: Arc<RequestBudget>,
}

pub enum FetcherMsg {
    Fetch(Run),
    /// Answered once the fetches queued before it were handed to the stager.
    Drain(Drain),
}

crate::supervisor::shell::answers!(FetcherMsg: Drain);

pub struct FetcherState {
    budget: Arc<RequestBudget>,
    config: Config,
    client: reqwest::Client,
    stager: ActorRef<StagerMsg>,
}

/// One failed attempt.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("HTTP {status} from the source")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        body: Vec<u8>,
    },
    #[error("request failed: {0}")]
    Transport(String),
    #[error("response larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Not a page, or not the page asked for.
    #[error("{reason}")]
    Unparseable { reason: String, body: Vec<u8> },
}

impl FetchError {
    /// Client errors other than 429 will not improve by retrying (a bad URL or query).
    fn retryable(&self) -> bool {
        !matches!(self, FetchError::Status { status, .. } if (400..500).contains(status) && *status != 429)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn body(self) -> Vec<u8> {
        match self {
            FetchError::Status { body, .. } | FetchError::Unparseable { body, .. } => body,
            FetchError::Transport(_) | FetchError::TooLarge { .. } => Vec::new(),
        }
    }
}

impl Actor for Fetcher {
    type Msg = FetcherMsg;
    type State = FetcherState;
    type Arguments = FetcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<FetcherMsg>,
        args: FetcherArgs,
    ) -> Result<FetcherState, ActorProcessingErr> {
        let stager = args.stager.get().ok_or("the stager is not running")?;
        let client = http_client(&args.config.fetch)?;
        args.directory.register(myself);
        Ok(FetcherState {
            budget: args.budget,
            config: args.config,
            client,
            stager,
        })
    }

    shell::handle!();
}

impl Shelled for Fetcher {
    const KIND: &'static str = "fetcher";

    async fn on_message(
        &self,
        _: ActorRef<FetcherMsg>,
        message: FetcherMsg,
        state: &mut FetcherState,
    ) -> Result<(), ActorProcessingErr> {
        let run = match message {
            FetcherMsg::Fetch(run) => run,
            FetcherMsg::Drain(drain) => {
                let _ = drain.reply.send(());
                return Ok(());
            }
        };
        let started = std::time::Instant::now();
        // A run starts a trace: every record of the page carries it to Cassandra.
        let span = tracing::info_span!(
            parent: None,
            "fetch run",
            otel.name = "GET source page",
            otel.kind = "client",
            tributary.stage = "fetch",
            run.id = run.run_id,
            tributary.source.seed = %run.request.seed,
            tributary.source.page = run.request.page,
            http.request.method = "GET",
            url.full = %state.config.source_url,
            tributary.users = tracing::field::Empty,
            tributary.rejected = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let run_id = run.run_id;
        let batch = fetch_run(state, run).instrument(span.clone()).await;
        match &batch {
            FetchedBatch::Fetched {
                users, rejected, ..
            } => {
                span.record("tributary.users", users.len());
                span.record("tributary.rejected", rejected.len());
            }
            FetchedBatch::Failed { .. } => {
                span.record("otel.status_code", "ERROR");
            }
        }
        let trace = crate::trace::context_of(&span);
        drop(span);
        if let Some(n) = crate::failpoint::FETCHED.fires() {
            panic!("injected fault: fetch {n} (run {run_id}) panics before staging");
        }
        metrics::histogram!("tributary_fetch_seconds").record(started.elapsed().as_secs_f64());
        state.stager.send_message(StagerMsg::Stage(batch, trace))?;
        Ok(())
    }
}

/// The HTTP client of a fetcher. https sources (the real randomuser.me) use rustls with
/// the ring provider and the system's trust roots.
///
/// # Errors
/// The TLS back end cannot be initialised.
pub fn http_client(fetch: &FetchConfig) -> reqwest::Result<reqwest::Client> {
    crate::install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(fetch.connect_timeout_ms))
        .timeout(Duration::from_millis(fetch.request_timeout_ms))
        .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn fetch_run(state: &FetcherState, run: Run) -> FetchedBatch {
    let request = &run.request;
    let fetch = &state.config.fetch;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(fetch.backoff_initial_ms))
        .with_max_delay(Duration::from_millis(fetch.backoff_max_ms))
        .with_max_times(fetch.max_attempts.saturating_sub(1))
        .with_jitter();
    let attempt = || async {
        state.budget.acquire(request.results).await;
        let body = get_page(&state.client, &state.config.source_url, fetch, request).await?;
        let page = match parse_page(&body).and_then(|page| request.check(&page).map(|()| page)) {
            Ok(page) => page,
            Err(reason) => return Err(FetchError::Unparseable { reason, body }),
        };
        Ok::<_, FetchError>(page)
    };
    let result = attempt
        .retry(backoff)
        .when(FetchError::retryable)
        .adjust(|error, delay| match error {
            FetchError::Status {
                retry_after: Some(after),
                ..
            } => delay.map(|d| d.max(*after)),
            _ => delay,
        })
        .notify(|error, delay| {
            metrics::counter!("tributary_fetch_retries_total").increment(1);
            tracing::warn!(
                run_id = run.run_id,
                seed = %request.seed,
                page = request.page,
                error = error as &dyn std::error::Error,
                retry_in_ms = delay.as_millis() as u64,
                "fetch failed, retrying"
            );
        })
        .await;
    match result {
        Ok(page) => {
            let mut users = Vec::with_capacity(page.results.len());
            let mut rejected = Vec::new();
            for raw in page.results {
                // Validated once; what is staged is the record's own JSON text.
                match RawUser::parse(raw.get()) {
                    Ok(user) => users.push(StagedUser {
                        source_uuid: user.uuid(),
                        payload: raw,
                    }),
                    Err(reason) => rejected.push(Rejected {
                        reason,
                        raw: raw.get().as_bytes().to_vec(),
                    }),
                }
            }
            observe::record(Stage::Fetched, users.len() as u64);
            FetchedBatch::Fetched {
                run,
                users,
                rejected,
            }
        }
        Err(error) => {
            let reason = format!(
                "fetch failed after {} attempt(s): {error}",
                fetch.max_attempts
            );
            FetchedBatch::Failed {
                run,
                reason,
                retry_after: error.retry_after(),
                raw: error.body(),
            }
        }
    }
}

async fn get_page(
    client: &reqwest::Client,
    source_url: &str,
    fetch: &FetchConfig,
    request: &PageRequest,
) -> Result<Vec<u8>, FetchError> {
    let mut response = client
        .get(source_url)
        .query(&[
            ("results", request.results.to_string()),
            ("seed", request.seed.clone()),
            ("page", request.page.to_string()),
        ])
        .send()
        .await
        .map_err(|e| FetchError::Transport(error_text(&e)))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let limit = fetch.max_response_bytes;
    if response
        .content_length()
        .is_some_and(|len| len as usize > limit)
    {
        return Err(FetchError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Transport(error_text(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(FetchError::Status {
            status: status.as_u16(),
            retry_after,
            body,
        });
    }
    Ok(body)
}

/// reqwest's Display hides the cause ("error sending request"): include the chain.
fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pointing at an https source (the real API) is a configuration switch: the TLS
    /// client builds and a failure is an ordinary, retryable transport error.
    #[tokio::test]
    async fn https_sources_use_tls_and_fail_cleanly() {
        let config = Config {
            source_url: "https://127.0.0.1:1/api/".into(),
            ..Config::default()
        };
        let client = http_client(&config.fetch).expect("TLS client builds");
        let request = PageRequest {
            seed: "s".into(),
            page: 1,
            results: 1,
        };
        let error = get_page(&client, &config.source_url, &config.fetch, &request)
            .await
            .unwrap_err();
        assert!(matches!(error, FetchError::Transport(_)), "{error}");
        assert!(error.retryable());
    }

    #[test]
    fn client_errors_are_not_retried_but_throttling_is() {
        let status = |status| FetchError::Status {
            status,
            retry_after: None,
            body: Vec::new(),
        };
        assert!(!status(400).retryable());
        assert!(!status(404).retryable());
        assert!(status(429).retryable());
        assert!(status(503).retryable());
    }
}
