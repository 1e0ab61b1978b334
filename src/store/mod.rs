//! The SQLite job store: one file in the data dir, WAL mode, versioned migrations
//! (`src/store/migrations/NNNN_*.sql`, applied in order, tracked in `PRAGMA user_version`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};
use vidbuilder_domain::job::{JobId, JobStatus};
use vidbuilder_domain::store::{AttemptRecord, AttemptToRecord};
use vidbuilder_domain::store::{
    DeliveryState, IdempotentJob, JobRecord, JobStore, OutboxRow, StoreError, IDEMPOTENCY_WINDOW_MS,
};
use vidbuilder_domain::template::{TemplateId, TemplateRecord};

/// Migrations, in order. The schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_node.sql"),
    include_str!("migrations/0003_interrupted.sql"),
    include_str!("migrations/0004_quarantine.sql"),
    include_str!("migrations/0005_cancel_idempotency.sql"),
    include_str!("migrations/0006_templates.sql"),
];

/// The [`JobStore`] on one SQLite database file (`<data_dir>/vidbuilder.db`).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn e(err: impl std::fmt::Display) -> StoreError {
    StoreError(err.to_string())
}

fn parse_status(s: &str) -> Option<JobStatus> {
    match s {
        "queued" => Some(JobStatus::Queued),
        "processing" => Some(JobStatus::Processing),
        "completed" => Some(JobStatus::Completed),
        "failed" => Some(JobStatus::Failed),
        _ => None,
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A column value that does not read back as what was written.
fn corrupt(column: &'static str, why: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("{column}: {why}").into(),
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)
            .map_err(|err| StoreError(format!("opening {}: {err}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(e)?;
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(e)?;
        if version > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "{} has schema version {version}, newer than this binary knows ({}): upgrade vidbuilder",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().map_err(e)?;
            tx.execute_batch(sql)
                .map_err(|err| StoreError(format!("migration {}: {err}", i + 1)))?;
            tx.pragma_update(None, "user_version", i + 1).map_err(e)?;
            tx.commit().map_err(e)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    let spec: String = r.get("spec")?;
    let result: Option<String> = r.get("result")?;
    let id: String = r.get("id")?;
    let status: String = r.get("status")?;
    Ok(JobRecord {
        id: JobId::parse(&id).ok_or_else(|| corrupt("id", format!("{id:?} is not a job id")))?,
        seq: r.get("seq")?,
        spec: serde_json::from_str(&spec).map_err(|e| corrupt("spec", e))?,
        webhook_url: r.get("webhook_url")?,
        owner: r.get("owner")?,
        status: parse_status(&status)
            .ok_or_else(|| corrupt("status", format!("{status:?} is not a status")))?,
        attempt: r.get("attempt")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        result: result
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt("result", e))?,
        node: r.get("node")?,
        interrupted: r.get("interrupted")?,
        drained: r.get::<_, i64>("drained")? != 0,
        cancelled: r.get::<_, i64>("cancelled")? != 0,
        idempotency: None,
        video: r.get::<_, Option<String>>("video")?.map(PathBuf::from),
        reel: r.get::<_, Option<String>>("reel")?.map(PathBuf::from),
        error: r.get("error")?,
        finished_ms: r.get("finished_ms")?,
        expired: r.get::<_, i64>("expired")? != 0,
    })
}

/// How a job row that does not read back is repaired, once it is copied to `quarantine`.
#[derive(Debug, PartialEq)]
enum Repair {
    /// The id is usable: the unreadable columns are reset (spec to none, result dropped, an
    /// unknown status to `processing`) so the job can be failed and its client told.
    Reset,
    /// No usable id: nobody can ask for this job; the row and its deliveries are removed.
    Remove,
}

/// Copies the row to `quarantine` and repairs it (see [`Repair`]), in the caller's transaction.
fn quarantine(tx: &rusqlite::Transaction<'_>, seq: i64, reason: &str) -> rusqlite::Result<Repair> {
    tx.execute(
        "INSERT INTO quarantine (job_seq, job_id, spec, webhook_url, owner, status, result, reason, quarantined_ms)
         SELECT seq, id, spec, webhook_url, owner, status, result, ?2, ?3 FROM jobs WHERE seq = ?1",
        params![seq, reason, unix_ms()],
    )?;
    let (id, spec, status, result): (
        rusqlite::types::Value,
        rusqlite::types::Value,
        rusqlite::types::Value,
        rusqlite::types::Value,
    ) = tx.query_row(
        "SELECT id, spec, status, result FROM jobs WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    use rusqlite::types::Value as V;
    let text = |v: &V| match v {
        V::Text(t) => Some(t.clone()),
        _ => None,
    };
    let Some(id) = text(&id).filter(|i| JobId::parse(i).is_some()) else {
        let raw = match id {
            V::Text(t) => t,
            other => format!("{other:?}"),
        };
        tx.execute("DELETE FROM outbox WHERE job_id = ?1", [&raw])?;
        tx.execute("DELETE FROM attempts WHERE job_id = ?1", [&raw])?;
        tx.execute("DELETE FROM jobs WHERE seq = ?1", [seq])?;
        return Ok(Repair::Remove);
    };
    let spec_ok = text(&spec).is_some_and(|s| {
        serde_json::from_str::<Option<vidbuilder_domain::spec::VideoSpec>>(&s).is_ok()
    });
    let status = text(&status).and_then(|s| parse_status(&s));
    let result_ok = match &result {
        V::Null => true,
        V::Text(t) => serde_json::from_str::<vidbuilder_domain::job::JobResult>(t).is_ok(),
        _ => false,
    };
    if !spec_ok {
        tx.execute("UPDATE jobs SET spec = 'null' WHERE seq = ?1", [seq])?;
    }
    if status.is_none() {
        tx.execute(
            "UPDATE jobs SET status = 'processing' WHERE seq = ?1",
            [seq],
        )?;
    }
    if !result_ok {
        // A completed job whose result is unreadable cannot be served again: it reads as expired.
        tx.execute(
            "UPDATE jobs SET result = NULL, expired = CASE WHEN status = 'completed' THEN 1 ELSE expired END WHERE seq = ?1",
            [seq],
        )?;
    }
    // Any other column of the wrong type: the row is beyond repair.
    let readable = tx
        .query_row("SELECT * FROM jobs WHERE seq = ?1", [seq], job_from_row)
        .is_ok();
    if !readable {
        tx.execute("DELETE FROM outbox WHERE job_id = ?1", [&id])?;
        tx.execute("DELETE FROM attempts WHERE job_id = ?1", [&id])?;
        tx.execute("DELETE FROM jobs WHERE seq = ?1", [seq])?;
        return Ok(Repair::Remove);
    }
    Ok(Repair::Reset)
}

/// Outbox rows with their job's owner (whose secret signs them).
const OUTBOX_SELECT: &str =
    "SELECT outbox.*, jobs.owner AS owner FROM outbox LEFT JOIN jobs ON jobs.id = outbox.job_id";

fn outbox_from_row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    let job: String = r.get("job_id")?;
    let event: String = r.get("event")?;
    Ok(OutboxRow {
        webhook_id: r.get("webhook_id")?,
        job_id: JobId::parse(&job)
            .ok_or_else(|| corrupt("job_id", format!("{job:?} is not a job id")))?,
        event: serde_json::from_value(serde_json::Value::String(event)).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(err))
        })?,
        url: r.get("url")?,
        body: r.get("body")?,
        attempts: r.get("attempts")?,
        next_attempt_ms: r.get("next_attempt_ms")?,
        state: DeliveryState::parse(&r.get::<_, String>("state")?),
        seq: r.get("seq")?,
        owner: r.get("owner")?,
    })
}

fn path_str(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.display().to_string())
}

/// Logs one attempt and moves its delivery on, inside `tx` (see [`JobStore::record_attempt`]).
fn record_attempt_in(
    tx: &rusqlite::Transaction<'_>,
    record: &AttemptRecord,
    job_id: &JobId,
    state: DeliveryState,
    next_attempt_ms: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE outbox SET attempts = MAX(attempts, ?2), state = ?3, next_attempt_ms = ?4 WHERE webhook_id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            record.webhook_id,
            record.attempt,
            state.as_str(),
            next_attempt_ms
        ])
    })
    .map_err(e)?;
    let json = serde_json::to_string(record).map_err(e)?;
    tx.prepare_cached("INSERT INTO attempts (job_id, record) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![job_id.as_str(), json]))
        .map_err(e)?;
    // The log is bounded per job: the oldest attempts go.
    tx.prepare_cached(
        "DELETE FROM attempts WHERE job_id = ?1 AND id NOT IN
           (SELECT id FROM attempts WHERE job_id = ?1 ORDER BY id DESC LIMIT ?2)",
    )
    .and_then(|mut s| {
        s.execute(params![
            job_id.as_str(),
            vidbuilder_domain::store::MAX_ATTEMPTS_LOGGED as i64
        ])
    })
    .map_err(e)?;
    Ok(())
}

fn template_from_row(r: &Row<'_>) -> rusqlite::Result<TemplateRecord> {
    let id: String = r.get("id")?;
    let owner: String = r.get("owner")?;
    let spec: String = r.get("spec")?;
    let fields: String = r.get("fields")?;
    Ok(TemplateRecord {
        id: TemplateId::parse(&id)
            .ok_or_else(|| corrupt("id", format!("{id:?} is not a template id")))?,
        owner: (!owner.is_empty()).then_some(owner),
        name: r.get("name")?,
        spec: serde_json::from_str(&spec).map_err(|e| corrupt("spec", e))?,
        fields: serde_json::from_str(&fields).map_err(|e| corrupt("fields", e))?,
        created_at: r.get("created_at")?,
    })
}

/// Inserts one new job in `tx` (see [`JobStore::insert_job`]).
fn insert_in(tx: &rusqlite::Transaction<'_>, job: &mut JobRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO jobs (id, spec, webhook_url, owner, status, attempt, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            job.id.as_str(),
            serde_json::to_string(&job.spec).map_err(e)?,
            job.webhook_url,
            job.owner,
            job.status.as_str(),
            job.attempt,
            job.created_at
        ],
    )
    .map_err(e)?;
    job.seq = tx.last_insert_rowid();
    if let Some(idem) = &job.idempotency {
        let now = unix_ms();
        tx.execute(
            "DELETE FROM idempotency WHERE created_ms < ?1",
            params![now - IDEMPOTENCY_WINDOW_MS],
        )
        .map_err(e)?;
        tx.execute(
            "INSERT OR REPLACE INTO idempotency (owner, key, body_hash, job_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                job.owner.as_deref().unwrap_or(""),
                idem.key,
                idem.body_hash,
                job.id.as_str(),
                now
            ],
        )
        .map_err(e)?;
    }
    Ok(())
}

impl JobStore for SqliteStore {
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), StoreError> {
        self.insert_jobs(std::slice::from_mut(job))
    }

    fn insert_jobs(&self, jobs: &mut [JobRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(e)?;
        for job in jobs.iter_mut() {
            insert_in(&tx, job)?;
        }
        tx.commit().map_err(e)
    }

    fn insert_template(&self, t: &TemplateRecord) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO templates (id, owner, name, spec, fields, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    t.id.as_str(),
                    t.owner.as_deref().unwrap_or(""),
                    t.name,
                    serde_json::to_string(&t.spec).map_err(e)?,
                    serde_json::to_string(&t.fields).map_err(e)?,
                    t.created_at
                ],
            )
            .map(|_| ())
            .map_err(e)
    }

    fn template(&self, id: &TemplateId) -> Result<Option<TemplateRecord>, StoreError> {
        self.conn()
            .query_row(
                "SELECT id, owner, name, spec, fields, created_at FROM templates WHERE id = ?1",
                [id.as_str()],
                template_from_row,
            )
            .optional()
            .map_err(e)
    }

    fn delete_template(&self, id: &TemplateId) -> Result<bool, StoreError> {
        self.conn()
            .execute("DELETE FROM templates WHERE id = ?1", [id.as_str()])
            .map(|n| n > 0)
            .map_err(e)
    }

    fn templates(
        &self,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TemplateRecord>, usize), StoreError> {
        let conn = self.conn();
        let owner = owner.unwrap_or("");
        let total: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM templates WHERE owner = ?1",
                [owner],
                |r| r.get(0),
            )
            .map_err(e)?;
        let mut stmt = conn
            .prepare(
                "SELECT id, owner, name, spec, fields, created_at FROM templates WHERE owner = ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map(params![owner, limit as i64], template_from_row)
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        Ok((rows, total as usize))
    }

    fn idempotent_job(
        &self,
        owner: Option<&str>,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<IdempotentJob>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT job_id, body_hash FROM idempotency WHERE owner = ?1 AND key = ?2 AND created_ms >= ?3",
            params![owner.unwrap_or(""), key, since_ms],
            |r| {
                let (id, body_hash): (String, String) = (r.get(0)?, r.get(1)?);
                Ok(JobId::parse(&id).map(|job_id| IdempotentJob { job_id, body_hash }))
            },
        )
        .optional()
        .map(Option::flatten)
        .map_err(e)
    }

    fn update_job(&self, job: &JobRecord, outbox: Option<&OutboxRow>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(e)?;
        tx.execute(
            "UPDATE jobs SET status = ?2, attempt = ?3, started_at = ?4, finished_at = ?5, finished_ms = ?6,
                             result = ?7, video = ?8, reel = ?9, error = ?10, node = ?11,
                             interrupted = ?12, drained = ?13, cancelled = ?14 WHERE id = ?1",
            params![
                job.id.as_str(),
                job.status.as_str(),
                job.attempt,
                job.started_at,
                job.finished_at,
                job.finished_ms,
                job.result.as_ref().map(serde_json::to_string).transpose().map_err(e)?,
                path_str(&job.video),
                path_str(&job.reel),
                job.error,
                job.node,
                job.interrupted,
                job.drained,
                job.cancelled
            ],
        )
        .map_err(e)?;
        if let Some(o) = outbox {
            tx.execute(
                "INSERT INTO outbox (webhook_id, job_id, event, url, body, attempts, next_attempt_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(webhook_id) DO NOTHING",
                params![o.webhook_id, o.job_id.as_str(), o.event.as_str(), o.url, o.body, o.attempts, o.next_attempt_ms, o.state.as_str()],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Rows that do not read back are quarantined first (copied to the `quarantine` table, then
    /// repaired so the job fails, or removed when their id is unusable): one bad row does not
    /// stop the server from starting.
    fn load_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut conn = self.conn();
        let bad: Vec<(i64, String)> = {
            let mut stmt = conn.prepare("SELECT * FROM jobs ORDER BY seq").map_err(e)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>("seq")?, job_from_row(r).err())))
                .map_err(e)?;
            let mut bad = Vec::new();
            for row in rows {
                if let (seq, Some(err)) = row.map_err(e)? {
                    bad.push((seq, err.to_string()));
                }
            }
            bad
        };
        if !bad.is_empty() {
            let tx = conn.transaction().map_err(e)?;
            for (seq, reason) in &bad {
                let repair = quarantine(&tx, *seq, reason).map_err(e)?;
                tracing::error!(seq, %reason, ?repair, "a stored job could not be read: copied to the quarantine table");
            }
            tx.commit().map_err(e)?;
        }
        let mut stmt = conn
            .prepare("SELECT * FROM jobs WHERE expired = 0 ORDER BY seq")
            .map_err(e)?;
        let rows = stmt.query_map([], job_from_row).map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "{OUTBOX_SELECT} WHERE outbox.state = 'pending' ORDER BY outbox.seq"
            ))
            .map_err(e)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>("seq")?, outbox_from_row(r))))
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            match row.map_err(e)? {
                (_, Ok(row)) => out.push(row),
                // One unreadable delivery does not stop the others; it stays in the table.
                (seq, Err(err)) => {
                    tracing::error!(seq, %err, "a stored webhook delivery could not be read: skipped")
                }
            }
        }
        Ok(out)
    }

    fn last_delivery(&self, job_id: &JobId) -> Result<Option<OutboxRow>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("{OUTBOX_SELECT} WHERE outbox.job_id = ?1 ORDER BY outbox.seq DESC LIMIT 1"),
            [job_id.as_str()],
            outbox_from_row,
        )
        .optional()
        .map_err(e)
    }

    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(e)?;
        record_attempt_in(&tx, record, job_id, state, next_attempt_ms)?;
        tx.commit().map_err(e)
    }

    fn record_attempts(&self, batch: &[AttemptToRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(e)?;
        for a in batch {
            record_attempt_in(&tx, &a.record, &a.job_id, a.state, a.next_attempt_ms)?;
        }
        tx.commit().map_err(e)
    }

    fn attempts(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT record FROM attempts WHERE job_id = ?1 ORDER BY id")
            .map_err(e)?;
        let rows = stmt
            .query_map([job_id.as_str()], |r| r.get::<_, String>(0))
            .map_err(e)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r.map_err(e)?).map_err(e)?);
        }
        Ok(out)
    }

    fn finished_before(&self, before_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT * FROM jobs WHERE expired = 0 AND finished_ms IS NOT NULL AND finished_ms < ?1 ORDER BY seq")
            .map_err(e)?;
        let rows = stmt.query_map([before_ms], job_from_row).map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    fn expire(&self, job_id: &JobId) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(e)?;
        tx.execute(
            "UPDATE jobs SET expired = 1, spec = 'null', result = NULL, video = NULL, reel = NULL, webhook_url = NULL WHERE id = ?1",
            [job_id.as_str()],
        )
        .map_err(e)?;
        tx.execute("DELETE FROM outbox WHERE job_id = ?1", [job_id.as_str()])
            .map_err(e)?;
        tx.execute("DELETE FROM attempts WHERE job_id = ?1", [job_id.as_str()])
            .map_err(e)?;
        tx.commit().map_err(e)
    }

    fn tombstone(&self, job_id: &JobId) -> Result<Option<Option<String>>, StoreError> {
        self.conn()
            .query_row(
                "SELECT owner FROM jobs WHERE id = ?1 AND expired = 1",
                [job_id.as_str()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(e)
    }
}

/// A store whose every call runs outside the async worker threads: on a multi-threaded tokio
/// runtime each call is made in [`tokio::task::block_in_place`], so the runtime moves its other
/// tasks (HTTP requests, actors) to another worker while SQLite works (or waits on the disk);
/// elsewhere (tests on a current-thread runtime, plain threads) it is called directly.
#[derive(Debug)]
pub struct OffAsync<S>(pub S);

fn off_async<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl<S: JobStore> JobStore for OffAsync<S> {
    fn insert_job(&self, job: &mut JobRecord) -> Result<(), StoreError> {
        off_async(|| self.0.insert_job(job))
    }
    fn insert_jobs(&self, jobs: &mut [JobRecord]) -> Result<(), StoreError> {
        off_async(|| self.0.insert_jobs(jobs))
    }
    fn insert_template(&self, template: &TemplateRecord) -> Result<(), StoreError> {
        off_async(|| self.0.insert_template(template))
    }
    fn template(&self, id: &TemplateId) -> Result<Option<TemplateRecord>, StoreError> {
        off_async(|| self.0.template(id))
    }
    fn delete_template(&self, id: &TemplateId) -> Result<bool, StoreError> {
        off_async(|| self.0.delete_template(id))
    }
    fn templates(
        &self,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TemplateRecord>, usize), StoreError> {
        off_async(|| self.0.templates(owner, limit))
    }
    fn idempotent_job(
        &self,
        owner: Option<&str>,
        key: &str,
        since_ms: i64,
    ) -> Result<Option<IdempotentJob>, StoreError> {
        off_async(|| self.0.idempotent_job(owner, key, since_ms))
    }
    fn update_job(&self, job: &JobRecord, outbox: Option<&OutboxRow>) -> Result<(), StoreError> {
        off_async(|| self.0.update_job(job, outbox))
    }
    fn load_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        off_async(|| self.0.load_jobs())
    }
    fn pending_deliveries(&self) -> Result<Vec<OutboxRow>, StoreError> {
        off_async(|| self.0.pending_deliveries())
    }
    fn last_delivery(&self, job_id: &JobId) -> Result<Option<OutboxRow>, StoreError> {
        off_async(|| self.0.last_delivery(job_id))
    }
    fn record_attempt(
        &self,
        record: &AttemptRecord,
        job_id: &JobId,
        state: DeliveryState,
        next_attempt_ms: i64,
    ) -> Result<(), StoreError> {
        off_async(|| {
            self.0
                .record_attempt(record, job_id, state, next_attempt_ms)
        })
    }
    fn record_attempts(&self, batch: &[AttemptToRecord]) -> Result<(), StoreError> {
        off_async(|| self.0.record_attempts(batch))
    }
    fn attempts(&self, job_id: &JobId) -> Result<Vec<AttemptRecord>, StoreError> {
        off_async(|| self.0.attempts(job_id))
    }
    fn finished_before(&self, before_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        off_async(|| self.0.finished_before(before_ms))
    }
    fn expire(&self, job_id: &JobId) -> Result<(), StoreError> {
        off_async(|| self.0.expire(job_id))
    }
    fn tombstone(&self, job_id: &JobId) -> Result<Option<Option<String>>, StoreError> {
        off_async(|| self.0.tombstone(job_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vidbuilder_domain::events::EventKind;
    use vidbuilder_domain::spec::{Quality, Scene, SceneContent, VideoSpec};

    fn record() -> JobRecord {
        let spec = VideoSpec {
            theme: "corporate".into(),
            music: None,
            quality: Quality::Draft,
            fps: 30,
            frame_rate: Default::default(),
            captions: None,
            watermark: None,
            generate_reels: false,
            outputs: Default::default(),
            metadata: None,
            scenes: vec![Scene::new(
                1.0,
                SceneContent::HeroTitle {
                    title: "t".into(),
                    subtitle: None,
                },
            )],
            font: None,
        };
        JobRecord::queued(
            JobId::new(),
            spec,
            Some("http://x/h".into()),
            None,
            "2026-01-01T00:00:00.000Z".into(),
        )
    }

    #[test]
    fn jobs_and_outbox_survive_reopening_and_migrations_are_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let (mut a, mut b) = (record(), record());
        {
            let store = SqliteStore::open(&path).unwrap();
            store.insert_job(&mut a).unwrap();
            store.insert_job(&mut b).unwrap();
            assert!(a.seq < b.seq);
            a.status = JobStatus::Processing;
            a.attempt = 1;
            let row = OutboxRow {
                webhook_id: format!("msg_{}_started", a.id),
                job_id: a.id.clone(),
                event: EventKind::Started,
                url: "http://x/h".into(),
                body: b"{\"a\":1}".to_vec(),
                attempts: 0,
                next_attempt_ms: 5,
                state: DeliveryState::Pending,
                seq: 0,
                owner: a.owner.clone(),
            };
            store.update_job(&a, Some(&row)).unwrap();
            // The same event twice is one row.
            store.update_job(&a, Some(&row)).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let version: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let jobs = store.load_jobs().unwrap();
        assert_eq!(
            jobs.iter().map(|j| (&j.id, j.status)).collect::<Vec<_>>(),
            vec![(&a.id, JobStatus::Processing), (&b.id, JobStatus::Queued)]
        );
        assert_eq!(jobs[0].spec, a.spec);
        let pending = store.pending_deliveries().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].body, b"{\"a\":1}");
        let rec = AttemptRecord {
            webhook_id: pending[0].webhook_id.clone(),
            event: EventKind::Started,
            attempt: 1,
            at: "now".into(),
            status_code: Some(200),
            error: None,
            latency_ms: 3,
            result: vidbuilder_domain::store::AttemptResult::Delivered,
        };
        store
            .record_attempt(&rec, &a.id, DeliveryState::Delivered, 0)
            .unwrap();
        assert!(store.pending_deliveries().unwrap().is_empty());
        assert_eq!(store.attempts(&a.id).unwrap(), vec![rec]);
        // Retention.
        a.status = JobStatus::Completed;
        a.finished_ms = Some(100);
        store.update_job(&a, None).unwrap();
        assert_eq!(store.finished_before(101).unwrap().len(), 1);
        store.expire(&a.id).unwrap();
        assert!(store.finished_before(101).unwrap().is_empty());
        assert!(
            store.load_jobs().unwrap().iter().all(|j| j.id != a.id),
            "a tombstone is not loaded"
        );
        assert_eq!(store.tombstone(&a.id).unwrap(), Some(None));
        assert_eq!(store.tombstone(&b.id).unwrap(), None);
        let spec: String = store
            .conn()
            .query_row(
                "SELECT spec FROM jobs WHERE id = ?1",
                [a.id.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(spec, "null", "the spec is dropped at expiry");
        assert!(store.attempts(&a.id).unwrap().is_empty());
    }

    #[test]
    fn sqlite_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        vidbuilder_domain::store::conformance::run_all(|| {
            n.set(n.get() + 1);
            let path = dir.path().join(format!("jobs-{}.db", n.get()));
            Box::new(SqliteStore::open(&path).unwrap())
        });
    }

    #[test]
    fn unreadable_rows_are_quarantined_and_repaired_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let (mut good, mut bad_result, mut bad_status, mut bad_id) =
            (record(), record(), record(), record());
        {
            let store = SqliteStore::open(&path).unwrap();
            for r in [&mut good, &mut bad_result, &mut bad_status, &mut bad_id] {
                store.insert_job(r).unwrap();
            }
            let conn = store.conn();
            conn.execute(
                "UPDATE jobs SET status = 'completed', result = '{not json' WHERE id = ?1",
                [bad_result.id.as_str()],
            )
            .unwrap();
            conn.execute(
                "UPDATE jobs SET status = 'exploded' WHERE id = ?1",
                [bad_status.id.as_str()],
            )
            .unwrap();
            conn.execute(
                "UPDATE jobs SET id = 'not-a-uuid' WHERE id = ?1",
                [bad_id.id.as_str()],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let jobs = store.load_jobs().unwrap();
        let find = |id: &JobId| jobs.iter().find(|j| &j.id == id);
        assert_eq!(
            jobs.len(),
            2,
            "the row without a usable id is removed; the unreadable result expired"
        );
        assert_eq!(find(&good.id).unwrap().spec, good.spec);
        assert!(find(&bad_result.id).is_none());
        assert_eq!(store.tombstone(&bad_result.id).unwrap(), Some(None));
        assert_eq!(find(&bad_status.id).unwrap().status, JobStatus::Processing);
        let quarantined: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))
            .unwrap();
        assert_eq!(quarantined, 3);
        // Repaired rows read back: a second load quarantines nothing more.
        assert_eq!(store.load_jobs().unwrap().len(), 2);
        let again: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM quarantine", [], |r| r.get(0))
            .unwrap();
        assert_eq!(again, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_calls_leave_the_async_workers_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(OffAsync(
            SqliteStore::open(&dir.path().join("j.db")).unwrap(),
        ));
        // The store's lock is held by a plain thread, as a slow disk would hold a write.
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = {
            let (s, released) = (store.clone(), released.clone());
            std::thread::spawn(move || {
                let _guard = s.0.conn();
                locked_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1500));
                released.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        locked_rx.recv().unwrap();
        // Two store calls wait on it from the runtime's two workers…
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.load_jobs().unwrap().len() })
            })
            .collect();
        tokio::task::yield_now().await;
        // …and async work still runs meanwhile: it finishes before the lock is released.
        let ticked = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        });
        ticked.await.unwrap();
        assert!(
            !released.load(std::sync::atomic::Ordering::SeqCst),
            "async tasks were stuck behind the store"
        );
        for c in calls {
            assert_eq!(c.await.unwrap(), 0);
        }
        holder.join().unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        SqliteStore::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = SqliteStore::open(&path).err().unwrap();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
