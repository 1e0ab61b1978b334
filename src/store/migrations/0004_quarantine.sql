-- Rows that could not be read back (a corrupt id, spec, result or status), copied here as they
-- were before the job row was repaired (its job fails) or, with an unusable id, removed.
CREATE TABLE quarantine (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_seq         INTEGER NOT NULL,
    job_id,
    spec,
    webhook_url,
    owner,
    status,
    result,
    reason          TEXT    NOT NULL,
    quarantined_ms  INTEGER NOT NULL
);
