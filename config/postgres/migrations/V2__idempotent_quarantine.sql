-- A replayed run quarantines the same rejected records again: make that a no-op.
CREATE UNIQUE INDEX quarantine_run_raw ON quarantine (run_id, md5(raw));
