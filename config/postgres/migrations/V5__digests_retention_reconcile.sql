-- Issue 15: a service that runs for months. Per-run digests (verification and the
-- reconciler compare runs, not ids), cumulative aggregates that survive the outbox's
-- retention, the scheduler's run count that survives the ledger's, and the reconciler's
-- own Kafka-side state.

-- A user id folded to 64 bits: its two halves XORed. XOR over a run's ids is an
-- order-independent hash of the run; the same fold is computed in Rust
-- (model::digest), in verify and in the reconciler.
CREATE FUNCTION uuid_fold64(u uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || substr(replace(u::text, '-', ''), 1, 16))::bit(64)::bigint
         # ('x' || substr(replace(u::text, '-', ''), 17, 16))::bit(64)::bigint
$$;

-- Users per aggregate bucket ('country:…', 'gender:…') over everything ever staged:
-- what Cassandra's partition_state must sum to, whatever the outbox has pruned since.
CREATE TABLE staged_aggregates (
    bucket TEXT PRIMARY KEY,
    users  BIGINT NOT NULL
);

ALTER TABLE runs
    -- XOR of uuid_fold64 over the run's staged users (with staged_users, its count).
    ADD COLUMN digest_xor BIGINT,
    -- 1 for the first run the ledger recorded, +1 for each after: ingest.max_runs counts
    -- recorded runs with it, and pruning old runs never lowers it.
    ADD COLUMN ordinal BIGINT,
    -- The reconciler's verdict on the run, once it has one.
    ADD COLUMN reconciled_at TIMESTAMPTZ,
    ADD COLUMN reconcile_result TEXT
        CHECK (reconcile_result IN ('ok', 'missing', 'duplicated', 'unexpected'));

UPDATE runs r SET ordinal = o.n FROM (
    SELECT run_id, row_number() OVER (ORDER BY run_id) AS n FROM runs
) o WHERE r.run_id = o.run_id;

-- Seals a staged run, inside its staging transaction: its count and digest, and its
-- users added to the cumulative aggregates. The stager calls it, and so does anything
-- else that stages (the benchmark's pre-staging).
CREATE FUNCTION seal_run(p_run bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE runs SET (staged_users, digest_xor) = (
        SELECT count(*), coalesce(bit_xor(uuid_fold64(source_uuid)), 0)
        FROM staged_users WHERE run_id = p_run
    ) WHERE run_id = p_run;
    INSERT INTO staged_aggregates (bucket, users)
    SELECT bucket, count(*) FROM (
        SELECT 'country:' || coalesce(payload->'location'->>'country', '<none>') AS bucket
        FROM staged_users WHERE run_id = p_run
        UNION ALL
        SELECT 'gender:' || coalesce(payload->>'gender', '<none>')
        FROM staged_users WHERE run_id = p_run
    ) b GROUP BY bucket
    ON CONFLICT (bucket) DO UPDATE SET users = staged_aggregates.users + excluded.users;
$$;

-- What was staged before this migration: digests and aggregates from the outbox.
UPDATE runs r SET digest_xor = d.x FROM (
    SELECT run_id, bit_xor(uuid_fold64(source_uuid)) AS x FROM staged_users GROUP BY run_id
) d WHERE r.run_id = d.run_id;
INSERT INTO staged_aggregates (bucket, users)
SELECT bucket, count(*) FROM (
    SELECT 'country:' || coalesce(payload->'location'->>'country', '<none>') AS bucket FROM staged_users
    UNION ALL
    SELECT 'gender:' || coalesce(payload->>'gender', '<none>') FROM staged_users
) b GROUP BY bucket;

-- max(ordinal) on every run recorded: by index, not a scan of a month of runs.
CREATE INDEX runs_ordinal ON runs (ordinal);

-- Runs staged before this migration have no digest in Cassandra (the writers commit one
-- per run from now on): they are not the reconciler's to judge.
UPDATE runs SET reconciled_at = now() WHERE status = 'staged';

-- The reconciler's queue: staged runs without a verdict, oldest first.
CREATE INDEX runs_unreconciled ON runs (run_id) WHERE status = 'staged' AND reconciled_at IS NULL;
-- Retention finds old runs by time (and their outbox rows through staged_users_run_id).
-- Failed verdicts, for the status summary (few: every one is an alarm).
CREATE INDEX runs_reconcile_failed ON runs (reconciled_at) WHERE reconcile_result <> 'ok';
CREATE INDEX runs_scheduled_for ON runs (scheduled_for);
CREATE INDEX quarantine_quarantined_at ON quarantine (quarantined_at);

-- The reconciler's Kafka side, committed together in one transaction: per run, the
-- records read from the raw topic (count and digest), the poison records of the DLQ
-- (one row per user: a replayed DLQ write counts once), and how far it has read.
CREATE TABLE run_kafka_digests (
    run_id  BIGINT PRIMARY KEY,
    records BIGINT NOT NULL,
    xor     BIGINT NOT NULL
);
CREATE TABLE run_dead_letters (
    run_id  BIGINT NOT NULL,
    user_id UUID NOT NULL,
    PRIMARY KEY (run_id, user_id)
);
CREATE TABLE reconcile_positions (
    topic     TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The reconciler's last checks that are not per run (the aggregates): any instance's
-- status shows them, whichever instance leads.
CREATE TABLE reconcile_checks (
    name       TEXT PRIMARY KEY,
    checked_at TIMESTAMPTZ NOT NULL,
    ok         BOOLEAN NOT NULL,
    detail     TEXT
);
