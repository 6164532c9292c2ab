-- A run records the (seed, page) it fetches, so a refetch asks for exactly the same
-- users; pages stay inside what the real API serves (ingest.max_page). The unique index
-- makes sure no two runs ever fetch one page (the real API answers a page it does not
-- serve with page 1, and every user of it would be a repeat). NULL for runs recorded
-- before this migration: the scheduler derives theirs from the configuration.
ALTER TABLE runs
    ADD COLUMN seed TEXT,
    ADD COLUMN page INTEGER CHECK (page > 0),
    -- Failed fetch rounds since the run was last queued; the retry backoff grows with it.
    ADD COLUMN retries INTEGER NOT NULL DEFAULT 0,
    -- A retrying run is fetched again once this has passed.
    ADD COLUMN next_attempt_at TIMESTAMPTZ,
    -- Start of the current failure streak: ingest.give_up_after_ms counts from here.
    ADD COLUMN first_failed_at TIMESTAMPTZ,
    -- Users the source returned that an earlier run had already staged: a source
    -- serving the same page again must be visible, not silently deduplicated.
    ADD COLUMN repeated_users INTEGER NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX runs_source_page ON runs (seed, page);

-- 'retrying' is new; 'fetching' was never written.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('pending', 'retrying', 'staged', 'failed'));

-- The scheduler looks up due retries by time.
CREATE INDEX runs_next_attempt ON runs (next_attempt_at) WHERE status = 'retrying';
