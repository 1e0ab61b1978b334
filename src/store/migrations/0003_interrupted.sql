-- Poison jobs: attempts a crash of the server interrupted, counted durably, and whether the last
-- attempt was stopped by a graceful drain instead (which does not count).
ALTER TABLE jobs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;
