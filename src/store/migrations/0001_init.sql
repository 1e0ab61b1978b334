-- vidbuilder job store, schema version 1.
CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    spec         TEXT    NOT NULL,          -- VideoSpec as JSON
    webhook_url  TEXT,
    owner        TEXT,
    status       TEXT    NOT NULL,          -- queued | processing | completed | failed
    attempt      INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT    NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    finished_ms  INTEGER,
    result       TEXT,                      -- JobResult as JSON
    video        TEXT,
    reel         TEXT,
    error        TEXT,
    expired      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_finished ON jobs(finished_ms) WHERE expired = 0;

-- The transactional outbox: one row per webhook event, written with the job change it reports.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT    NOT NULL UNIQUE,
    job_id          TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    body            BLOB    NOT NULL,       -- the exact bytes every attempt sends
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    state           TEXT    NOT NULL        -- pending | delivered | exhausted | gave-up
);
CREATE INDEX outbox_pending ON outbox(state) WHERE state = 'pending';
CREATE INDEX outbox_job ON outbox(job_id);

-- Every delivery attempt.
CREATE TABLE attempts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    record  TEXT NOT NULL                   -- AttemptRecord as JSON
);
CREATE INDEX attempts_job ON attempts(job_id);
