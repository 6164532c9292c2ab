//! Users staged straight into the PostgreSQL outbox (as the stager would), so the
//! source and the fetchers are not part of what is measured: all at once before the
//! end-to-end phase, or run by run at a steady rate during the steady phase.

use anyhow::Context as _;
use tributary::config::Config;
use tributary_actors::store::postgres;

/// Users per run, as the default `ingest.users_per_run` would stage them.
pub const USERS_PER_RUN: u64 = 1_000;

/// Stages `users` users of the embedded source's `seed` in runs of [`USERS_PER_RUN`];
/// returns the number of runs.
pub async fn stage(config: &Config, seed: &str, users: u64) -> anyhow::Result<u64> {
    let pool = postgres::pool(&config.postgres)?;
    let mut client = pool.get().await.context("postgres connection")?;
    let runs = users.div_ceil(USERS_PER_RUN);
    for run in 0..runs {
        let count = USERS_PER_RUN.min(users - run * USERS_PER_RUN);
        stage_run(&mut client, config, seed, run, count).await?;
    }
    Ok(runs)
}

/// The ledger's id of the bench's run `run`: a slot of the configuration's schedule
/// counted from the first slot of this bench process, scheduled where the schedule puts
/// it, as the scheduler records runs (`tributary run` refuses a ledger on another
/// schedule). Slots from now on: runs dated months back would be past the outbox's and
/// Kafka's retention, pruned during the measurement and left out of verify's Kafka check.
fn run_id(config: &Config, run: u64) -> anyhow::Result<i64> {
    static FIRST: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    let first = config.ingest.slot_at(*FIRST.get_or_init(chrono::Utc::now));
    Ok(first + i64::try_from(run)?)
}

/// Stages run `run` (page `run + 1` of `seed`, its first `count` users) in one
/// transaction with its runs row, and notifies the producer on commit, as the stager
/// does: the rows' `fetched_at` is the staging commit that latency is measured from.
pub async fn stage_run(
    client: &mut deadpool_postgres::Object,
    config: &Config,
    seed: &str,
    run: u64,
    count: u64,
) -> anyhow::Result<()> {
    let page = u32::try_from(run + 1)?;
    let mut ids = Vec::with_capacity(count as usize);
    let mut payloads = Vec::with_capacity(count as usize);
    for index in 0..count {
        let user = tributary::source::generate::user(seed, page, u32::try_from(index)?, &[]);
        let uuid: uuid::Uuid = user.login.uuid.parse()?;
        ids.push(uuid);
        payloads.push(serde_json::from_str::<serde_json::Value>(&user.to_json())?);
    }
    let tx = client.transaction().await?;
    let run_id = run_id(config, run)?;
    tx.execute(
        "INSERT INTO runs (run_id, scheduled_for, status, requested_users, staged_users, attempts) \
         VALUES ($1, $3, 'staged', $2, $2, 1)",
        &[
            &run_id,
            &i32::try_from(count)?,
            &config.ingest.slot_start(run_id),
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO staged_users (source_uuid, run_id, payload) \
         SELECT u, $2, p FROM UNNEST($1::uuid[], $3::jsonb[]) WITH ORDINALITY AS t(u, p, n) ORDER BY n",
        &[&ids, &run_id, &payloads],
    )
    .await?;
    // As the stager does: the run's digest and the cumulative aggregates.
    tx.execute("SELECT seal_run($1)", &[&run_id]).await?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&config.postgres.staged_channel(), &run_id.to_string()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
