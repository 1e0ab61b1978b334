-- Templates: a spec with {{name}} merge fields, owned by the API key that stored it ('' when API
-- keys are off). `seq` orders them (newest first when listed).
CREATE TABLE templates (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    owner      TEXT    NOT NULL,
    name       TEXT,
    spec       TEXT    NOT NULL,
    fields     TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX templates_owner ON templates(owner, seq);
