-- Staging and outbox (DESIGN.md section 4). Unqualified names: every connection sets
-- search_path to the configured schema (postgres.schema).

-- One row per schedule slot. run_id is the slot number, so a restarted scheduler finds
-- the runs it already made and neither skips nor repeats one.
CREATE TABLE runs (
    run_id          BIGINT PRIMARY KEY,
    scheduled_for   TIMESTAMPTZ NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'fetching', 'staged', 'failed')),
    requested_users INTEGER NOT NULL CHECK (requested_users > 0),
    staged_users    INTEGER NOT NULL DEFAULT 0,
    quarantined     INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX runs_status ON runs (status) WHERE status <> 'staged';

-- The outbox: id is the publish order. source_uuid (the API's login.uuid) is UNIQUE and
-- inserts use ON CONFLICT DO NOTHING, so a replayed run stages nothing twice.
CREATE TABLE staged_users (
    id          BIGSERIAL PRIMARY KEY,
    source_uuid UUID NOT NULL UNIQUE,
    run_id      BIGINT NOT NULL REFERENCES runs (run_id),
    payload     JSONB NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX staged_users_run_id ON staged_users (run_id);

-- Records the API returned that could not be staged, with the reason and the bytes as
-- received, so nothing is dropped silently.
CREATE TABLE quarantine (
    id             BIGSERIAL PRIMARY KEY,
    run_id         BIGINT REFERENCES runs (run_id),
    reason         TEXT NOT NULL,
    raw            BYTEA NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX quarantine_run_id ON quarantine (run_id);
