-- Cluster mode: the node that runs (or ran) a job's current attempt.
ALTER TABLE jobs ADD COLUMN node TEXT;
