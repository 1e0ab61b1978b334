-- Cancelled jobs (they are `failed` with error "Cancelled"), and Idempotency-Keys: the job a
-- key of an owner ('' when API keys are off) created, with a digest of the body it came with.
ALTER TABLE jobs ADD COLUMN cancelled INTEGER NOT NULL DEFAULT 0;
CREATE TABLE idempotency (
    owner      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    body_hash  TEXT    NOT NULL,
    job_id     TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE INDEX idempotency_age ON idempotency(created_ms);
