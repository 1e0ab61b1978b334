//! The [`JobStore`] contract as executable checks, written against the production implementation
//! (the root crate's `SqliteStore`, `src/store/mod.rs`) so that every store behaves like it.
//!
//! Each check takes a fresh, empty store and panics with a message naming the broken rule.
//! [`run_all`] runs every check in [`CHECKS`], each on a store of its own, and reports all the
//! failures at once. Behind the `conformance` feature (and this crate's own tests): production
//! builds do not carry it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::{
    AttemptRecord, AttemptResult, AttemptToRecord, DeliveryState, IdempotentJob, JobRecord,
    JobStore, OutboxRow, StoreError,
};
use crate::events::{webhook_id, EventKind};
use crate::job::{JobId, JobResult, JobStatus, S3Upload};
use crate::spec::{Quality, Scene, SceneContent, VideoSpec};

/// One check of the contract: it gets a fresh, empty store.
pub type Check = fn(&dyn JobStore);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "insert_assigns_increasing_seq",
        insert_assigns_increasing_seq,
    ),
    (
        "insert_refuses_a_duplicate_id",
        insert_refuses_a_duplicate_id,
    ),
    (
        "insert_keeps_only_the_admission_fields",
        insert_keeps_only_the_admission_fields,
    ),
    (
        "update_job_saves_the_progress_fields_only",
        update_job_saves_the_progress_fields_only,
    ),
    (
        "update_job_queues_the_outbox_row_with_the_job",
        update_job_queues_the_outbox_row_with_the_job,
    ),
    (
        "outbox_insert_never_overwrites_an_existing_webhook_id",
        outbox_insert_never_overwrites_an_existing_webhook_id,
    ),
    ("load_jobs_in_admission_order", load_jobs_in_admission_order),
    (
        "pending_deliveries_in_insertion_order_and_only_pending",
        pending_deliveries_in_insertion_order_and_only_pending,
    ),
    (
        "record_attempt_moves_the_delivery_and_logs_the_attempt",
        record_attempt_moves_the_delivery_and_logs_the_attempt,
    ),
    (
        "record_attempts_is_record_attempt_in_order",
        record_attempts_is_record_attempt_in_order,
    ),
    (
        "attempts_are_listed_oldest_first_per_job",
        attempts_are_listed_oldest_first_per_job,
    ),
    (
        "last_delivery_is_the_latest_queued_row",
        last_delivery_is_the_latest_queued_row,
    ),
    (
        "finished_before_lists_finished_unexpired_jobs_before_the_bound",
        finished_before_lists_finished_unexpired_jobs_before_the_bound,
    ),
    ("expire_keeps_a_tombstone", expire_keeps_a_tombstone),
    (
        "expire_drops_the_deliveries_and_the_attempt_log",
        expire_drops_the_deliveries_and_the_attempt_log,
    ),
    (
        "unfinished_jobs_come_back_in_admission_order",
        unfinished_jobs_come_back_in_admission_order,
    ),
    (
        "the_attempt_log_is_bounded_per_job",
        the_attempt_log_is_bounded_per_job,
    ),
    (
        "idempotency_keys_name_their_job_per_owner",
        idempotency_keys_name_their_job_per_owner,
    ),
    ("insert_jobs_is_all_or_none", insert_jobs_is_all_or_none),
    (
        "templates_are_kept_listed_per_owner_and_deleted",
        templates_are_kept_listed_per_owner_and_deleted,
    ),
];

/// Runs every check in [`CHECKS`] on a fresh store from `new_store`; panics listing each failure.
pub fn run_all(new_store: impl Fn() -> Box<dyn JobStore>) {
    let mut failures = Vec::new();
    for (name, check) in CHECKS {
        let store = new_store();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&*store))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            failures.push(format!("- {name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} JobStore conformance checks failed:\n{}",
        failures.len(),
        CHECKS.len(),
        failures.join("\n")
    );
}

// ---- fixtures ----

fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("JobStore contract: {what} failed: {e}"))
}

/// A new queued job, as the JobManager admits one.
fn new_job(n: u32) -> JobRecord {
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
            1.5,
            SceneContent::HeroTitle {
                title: format!("job {n}"),
                subtitle: None,
            },
        )],
        font: None,
    };
    JobRecord::queued(
        JobId::new(),
        spec,
        Some(format!("http://hooks.test/{n}")),
        Some(format!("key-{n}")),
        format!("2026-01-01T00:00:{:02}.000Z", n % 60),
    )
}

fn insert(store: &dyn JobStore, n: u32) -> JobRecord {
    let mut job = new_job(n);
    ok(store.insert_job(&mut job), "insert_job");
    job
}

fn result() -> JobResult {
    JobResult {
        video_url: "/api/download/x".into(),
        reels_url: Some("/api/download/x/reel".into()),
        duration: 1.5,
        scenes: 1,
        reels_generated: true,
        s3_upload: S3Upload {
            enabled: false,
            standard: None,
            reels: None,
        },
        render_time: "2s".into(),
        poster_url: Some("/api/download/x/poster".into()),
        outputs: Default::default(),
    }
}

fn start(job: &mut JobRecord) {
    job.status = JobStatus::Processing;
    job.attempt += 1;
    job.started_at = Some("2026-01-01T00:01:00.000Z".into());
    job.node = Some(format!("worker-{}", job.attempt));
}

/// Moves `job` to completed at `finished_ms`, with a result and files.
fn complete(job: &mut JobRecord, finished_ms: i64) {
    job.status = JobStatus::Completed;
    if job.attempt == 0 {
        job.attempt = 1;
    }
    job.started_at = Some("2026-01-01T00:01:00.000Z".into());
    job.finished_at = Some("2026-01-01T00:02:00.000Z".into());
    job.finished_ms = Some(finished_ms);
    job.result = Some(result());
    job.video = Some(PathBuf::from(format!("/data/videos/{}.mp4", job.id)));
    job.reel = Some(PathBuf::from(format!("/data/videos/{}_reel.mp4", job.id)));
    job.node = Some("worker-a".into());
    job.interrupted = 2;
    job.drained = true;
}

fn row(job: &JobRecord, event: EventKind) -> OutboxRow {
    OutboxRow {
        webhook_id: webhook_id(&job.id, event),
        job_id: job.id.clone(),
        event,
        url: job.webhook_url.clone().unwrap_or_default(),
        body: format!(
            "{{\"jobId\":\"{}\",\"status\":\"{}\"}}",
            job.id,
            event.as_str()
        )
        .into_bytes(),
        attempts: 0,
        next_attempt_ms: 1_000,
        state: DeliveryState::Pending,
        seq: 0,
        owner: job.owner.clone(),
    }
}

/// Saves `job` with `event`'s outbox row; returns the row as the store reports it.
fn queue(store: &dyn JobStore, job: &JobRecord, event: EventKind) -> OutboxRow {
    ok(
        store.update_job(job, Some(&row(job, event))),
        "update_job with an outbox row",
    );
    last(store, &job.id).unwrap_or_else(|| {
        panic!(
            "JobStore contract: the outbox row {} queued by update_job is not the job's last delivery",
            webhook_id(&job.id, event)
        )
    })
}

fn attempt(row: &OutboxRow, n: u32, result: AttemptResult) -> AttemptRecord {
    AttemptRecord {
        webhook_id: row.webhook_id.clone(),
        event: row.event,
        attempt: n,
        at: format!("2026-01-01T00:03:{:02}.000Z", n % 60),
        status_code: if result == AttemptResult::Delivered {
            Some(200)
        } else {
            Some(500)
        },
        error: (result != AttemptResult::Delivered).then(|| format!("HTTP 500 on attempt {n}")),
        latency_ms: 10 + n as u64,
        result,
    }
}

fn record(
    store: &dyn JobStore,
    row: &OutboxRow,
    rec: &AttemptRecord,
    state: DeliveryState,
    next_ms: i64,
) {
    ok(
        store.record_attempt(rec, &row.job_id, state, next_ms),
        "record_attempt",
    );
}

fn load(store: &dyn JobStore) -> Vec<JobRecord> {
    ok(store.load_jobs(), "load_jobs")
}

fn loaded(store: &dyn JobStore, id: &JobId) -> JobRecord {
    let jobs = load(store);
    let mut found = jobs.iter().filter(|j| &j.id == id);
    let job = found
        .next()
        .unwrap_or_else(|| panic!("JobStore contract: job {id} is missing from load_jobs"))
        .clone();
    assert!(
        found.next().is_none(),
        "JobStore contract: job {id} appears more than once in load_jobs"
    );
    job
}

fn pending(store: &dyn JobStore) -> Vec<OutboxRow> {
    ok(store.pending_deliveries(), "pending_deliveries")
}

fn last(store: &dyn JobStore, id: &JobId) -> Option<OutboxRow> {
    ok(store.last_delivery(id), "last_delivery")
}

fn log(store: &dyn JobStore, id: &JobId) -> Vec<AttemptRecord> {
    ok(store.attempts(id), "attempts")
}

fn ids(jobs: &[JobRecord]) -> Vec<&JobId> {
    jobs.iter().map(|j| &j.id).collect()
}

fn webhook_ids(rows: &[OutboxRow]) -> Vec<&str> {
    rows.iter().map(|r| r.webhook_id.as_str()).collect()
}

// ---- the checks ----

/// `insert_job` assigns each new job a positive `seq`, strictly greater than the previous job's,
/// writes it into the caller's record, and `load_jobs` reports the same `seq`.
pub fn insert_assigns_increasing_seq(store: &dyn JobStore) {
    let jobs: Vec<JobRecord> = (1..=3).map(|n| insert(store, n)).collect();
    let seqs: Vec<i64> = jobs.iter().map(|j| j.seq).collect();
    assert!(
        seqs[0] > 0 && seqs.windows(2).all(|w| w[0] < w[1]),
        "JobStore contract: insert_job must assign positive, increasing seq; got {seqs:?}"
    );
    for job in &jobs {
        assert_eq!(
            loaded(store, &job.id).seq,
            job.seq,
            "JobStore contract: load_jobs must report the seq insert_job assigned to {}",
            job.id
        );
    }
}

/// `insert_job` with the id of a stored job fails and leaves the stored job as it was (job ids
/// are unique).
pub fn insert_refuses_a_duplicate_id(store: &dyn JobStore) {
    let first = insert(store, 1);
    let mut again = new_job(2);
    again.id = first.id.clone();
    assert!(
        store.insert_job(&mut again).is_err(),
        "JobStore contract: insert_job must refuse an id that is already stored"
    );
    assert_eq!(
        load(store),
        vec![first],
        "JobStore contract: a refused insert_job must leave the store as it was"
    );
}

/// `insert_job` stores the admission fields only (id, spec, webhook url, owner, status, attempt,
/// created_at): start/finish times, result, files, error, node, interruptions and `expired` start
/// empty whatever the
/// record says, and the store's `seq` replaces the caller's.
pub fn insert_keeps_only_the_admission_fields(store: &dyn JobStore) {
    let mut job = new_job(1);
    complete(&mut job, 100);
    job.status = JobStatus::Queued;
    job.error = Some("stale".into());
    job.expired = true;
    job.seq = 9_999;
    let given = job.clone();
    ok(store.insert_job(&mut job), "insert_job");
    let expected = JobRecord {
        seq: job.seq,
        started_at: None,
        finished_at: None,
        finished_ms: None,
        result: None,
        video: None,
        reel: None,
        error: None,
        expired: false,
        node: None,
        interrupted: 0,
        drained: false,
        ..given
    };
    assert_eq!(
        loaded(store, &job.id),
        expected,
        "JobStore contract: insert_job keeps only the admission fields"
    );
}

/// `update_job` saves the fields that move while a job runs (status, attempt, start/finish times,
/// finished_ms, result, files, error, node, interruptions) and nothing else: spec, webhook url, owner, created_at, seq
/// and `expired` stay as stored. Updating a job the store does not have changes nothing.
pub fn update_job_saves_the_progress_fields_only(store: &dyn JobStore) {
    let stored = insert(store, 1);
    let mut job = stored.clone();
    complete(&mut job, 500);
    job.attempt = 2;
    job.error = Some("first attempt failed".into());
    job.spec.as_mut().unwrap().theme = "changed".into();
    job.webhook_url = Some("http://elsewhere.test/".into());
    job.owner = Some("someone-else".into());
    job.created_at = "changed".into();
    job.seq = stored.seq + 100;
    job.expired = true;
    job.cancelled = true;
    ok(store.update_job(&job, None), "update_job");
    let expected = JobRecord {
        spec: stored.spec.clone(),
        webhook_url: stored.webhook_url.clone(),
        owner: stored.owner.clone(),
        created_at: stored.created_at.clone(),
        seq: stored.seq,
        expired: false,
        ..job
    };
    assert_eq!(
        loaded(store, &stored.id),
        expected,
        "JobStore contract: update_job saves status, attempt, times, result, files, error, node and interruptions only"
    );

    let mut stranger = new_job(2);
    start(&mut stranger);
    ok(
        store.update_job(&stranger, None),
        "update_job of an unknown job",
    );
    assert_eq!(
        load(store),
        vec![expected],
        "JobStore contract: update_job of a job the store does not have must not add it"
    );
}

/// `update_job` with an outbox row saves the job and queues the row in the same call: the row
/// comes back as given except that the store assigns its `seq` and its `owner` is the stored job's
/// owner (`None` when the store has no such job).
pub fn update_job_queues_the_outbox_row_with_the_job(store: &dyn JobStore) {
    let mut job = insert(store, 1);
    start(&mut job);
    let mut given = row(&job, EventKind::Started);
    given.seq = 777;
    given.owner = Some("someone-else".into());
    given.next_attempt_ms = 42;
    ok(
        store.update_job(&job, Some(&given)),
        "update_job with an outbox row",
    );
    assert_eq!(
        loaded(store, &job.id).status,
        JobStatus::Processing,
        "JobStore contract: update_job with an outbox row must also save the job"
    );
    let rows = pending(store);
    assert_eq!(
        rows.len(),
        1,
        "JobStore contract: update_job must queue its outbox row; pending: {rows:?}"
    );
    let expected = OutboxRow {
        seq: rows[0].seq,
        owner: job.owner.clone(),
        ..given.clone()
    };
    assert_eq!(
        rows[0], expected,
        "JobStore contract: the queued row is the given one, with the store's seq and the job's owner"
    );
    assert_eq!(
        last(store, &job.id).as_ref(),
        Some(&expected),
        "JobStore contract: last_delivery must report the row just queued"
    );

    let stranger = new_job(2);
    let orphan = row(&stranger, EventKind::Failed);
    ok(
        store.update_job(&stranger, Some(&orphan)),
        "update_job of an unknown job with an outbox row",
    );
    let rows = pending(store);
    assert_eq!(
        webhook_ids(&rows),
        vec![given.webhook_id.as_str(), orphan.webhook_id.as_str()],
        "JobStore contract: a row for a job the store does not have is queued all the same"
    );
    assert_eq!(
        rows[1].owner, None,
        "JobStore contract: a row whose job is not stored has no owner"
    );
    assert!(
        rows[1].seq > rows[0].seq,
        "JobStore contract: outbox seq must increase; got {} then {}",
        rows[0].seq,
        rows[1].seq
    );
}

/// An outbox row whose `webhook_id` is already queued leaves the stored row untouched (same body,
/// url, attempts, due time, state and seq; a settled row is not revived), while the job change
/// that came with it is still saved.
pub fn outbox_insert_never_overwrites_an_existing_webhook_id(store: &dyn JobStore) {
    let mut job = insert(store, 1);
    start(&mut job);
    let first = queue(store, &job, EventKind::Started);

    let mut retry = job.clone();
    retry.attempt = 2;
    let mut other = row(&retry, EventKind::Started);
    other.url = "http://elsewhere.test/".into();
    other.body = b"{\"other\":true}".to_vec();
    other.attempts = 3;
    other.next_attempt_ms = 99_999;
    other.state = DeliveryState::GaveUp;
    ok(
        store.update_job(&retry, Some(&other)),
        "update_job with a conflicting outbox row",
    );
    assert_eq!(
        loaded(store, &job.id).attempt,
        2,
        "JobStore contract: the job change must be saved even when its outbox row already exists"
    );
    assert_eq!(
        pending(store),
        vec![first.clone()],
        "JobStore contract: an outbox row with an existing webhook_id must not overwrite the stored one"
    );

    record(
        store,
        &first,
        &attempt(&first, 1, AttemptResult::Delivered),
        DeliveryState::Delivered,
        0,
    );
    ok(
        store.update_job(&retry, Some(&row(&retry, EventKind::Started))),
        "update_job re-queuing a delivered row",
    );
    assert!(
        pending(store).is_empty(),
        "JobStore contract: re-queuing a settled webhook_id must not make it pending again"
    );
    let settled = last(store, &job.id).expect("the delivered row");
    assert_eq!(
        (settled.seq, settled.state, settled.attempts),
        (first.seq, DeliveryState::Delivered, 1),
        "JobStore contract: the settled row stays as it was"
    );
}

/// `load_jobs` returns every job, in admission (`seq`) order, whatever order they were updated in
/// and whatever `seq` the updating records carried.
pub fn load_jobs_in_admission_order(store: &dyn JobStore) {
    let jobs: Vec<JobRecord> = (1..=4).map(|n| insert(store, n)).collect();
    for job in jobs.iter().rev() {
        let mut j = job.clone();
        start(&mut j);
        j.seq = 0;
        ok(store.update_job(&j, None), "update_job");
    }
    let all = load(store);
    assert_eq!(
        ids(&all),
        ids(&jobs),
        "JobStore contract: load_jobs must list jobs in admission order"
    );
    assert_eq!(
        all.iter().map(|j| j.seq).collect::<Vec<_>>(),
        jobs.iter().map(|j| j.seq).collect::<Vec<_>>(),
        "JobStore contract: update_job must not change a job's seq"
    );
    assert!(
        all.iter().all(|j| j.status == JobStatus::Processing),
        "JobStore contract: every update must be saved"
    );
}

/// `pending_deliveries` lists the pending rows only (not delivered, exhausted or gave-up ones),
/// across jobs, in the order they were queued (increasing `seq`).
pub fn pending_deliveries_in_insertion_order_and_only_pending(store: &dyn JobStore) {
    let (mut a, mut b, mut c) = (insert(store, 1), insert(store, 2), insert(store, 3));
    start(&mut a);
    start(&mut b);
    start(&mut c);
    let a_started = queue(store, &a, EventKind::Started);
    let b_started = queue(store, &b, EventKind::Started);
    let c_started = queue(store, &c, EventKind::Started);
    complete(&mut a, 100);
    let a_completed = queue(store, &a, EventKind::Completed);
    b.status = JobStatus::Failed;
    let b_failed = queue(store, &b, EventKind::Failed);
    complete(&mut c, 100);
    let c_completed = queue(store, &c, EventKind::Completed);
    let all = [
        &a_started,
        &b_started,
        &c_started,
        &a_completed,
        &b_failed,
        &c_completed,
    ];
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "JobStore contract: outbox seq must increase in queuing order; got {:?}",
        all.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    assert_eq!(
        pending(store),
        all.iter().map(|r| (*r).clone()).collect::<Vec<_>>(),
        "JobStore contract: pending_deliveries must list every pending row in queuing order"
    );

    let settle = [
        (
            &b_started,
            DeliveryState::Delivered,
            AttemptResult::Delivered,
        ),
        (
            &a_completed,
            DeliveryState::Exhausted,
            AttemptResult::Exhausted,
        ),
        (&c_started, DeliveryState::GaveUp, AttemptResult::GaveUp),
    ];
    for (r, state, result) in settle {
        record(store, r, &attempt(r, 1, result), state, 0);
    }
    assert_eq!(
        webhook_ids(&pending(store)),
        webhook_ids(&[a_started, b_failed, c_completed]),
        "JobStore contract: pending_deliveries must leave out delivered, exhausted and gave-up rows"
    );
}

/// `record_attempt` appends the attempt to the job's log and moves the delivery: its state and
/// next attempt time become the given ones and its attempt count the highest attempt number seen.
/// An attempt for a webhook_id with no outbox row is still logged.
pub fn record_attempt_moves_the_delivery_and_logs_the_attempt(store: &dyn JobStore) {
    let mut job = insert(store, 1);
    start(&mut job);
    let queued = queue(store, &job, EventKind::Started);

    let first = attempt(&queued, 1, AttemptResult::Retrying);
    record(store, &queued, &first, DeliveryState::Pending, 5_000);
    let row = pending(store).pop().expect("the row is still pending");
    assert_eq!(
        (row.attempts, row.state, row.next_attempt_ms),
        (1, DeliveryState::Pending, 5_000),
        "JobStore contract: record_attempt must set attempts, state and next_attempt_ms"
    );

    let third = attempt(&queued, 3, AttemptResult::Retrying);
    record(store, &queued, &third, DeliveryState::Pending, 9_000);
    let redelivery = attempt(&queued, 2, AttemptResult::Delivered);
    record(store, &queued, &redelivery, DeliveryState::Delivered, 0);
    let row = last(store, &job.id).expect("the row");
    assert_eq!(
        (row.attempts, row.state, row.next_attempt_ms),
        (3, DeliveryState::Delivered, 0),
        "JobStore contract: attempts keeps the highest attempt number; state and next time move"
    );
    assert!(
        pending(store).is_empty(),
        "JobStore contract: a delivered row is no longer pending"
    );
    assert_eq!(
        OutboxRow {
            attempts: queued.attempts,
            state: queued.state,
            next_attempt_ms: queued.next_attempt_ms,
            ..row
        },
        queued,
        "JobStore contract: record_attempt changes only attempts, state and next_attempt_ms"
    );

    let mut ghost = queued.clone();
    ghost.webhook_id = "msg_ghost".into();
    let lost = attempt(&ghost, 1, AttemptResult::Redelivered);
    record(store, &ghost, &lost, DeliveryState::Delivered, 0);
    assert_eq!(
        log(store, &job.id),
        vec![first, third, redelivery, lost],
        "JobStore contract: every attempt is logged, also one without an outbox row"
    );
    assert_eq!(
        last(store, &job.id).map(|r| r.webhook_id),
        Some(queued.webhook_id),
        "JobStore contract: record_attempt must not create an outbox row"
    );
}

/// `record_attempts` (a batch, as the WebhookActor's group commit writes) has the effect of
/// `record_attempt` on each in order: every attempt logged to its own job, each row moved, and a
/// later attempt of the same delivery in the batch wins.
pub fn record_attempts_is_record_attempt_in_order(store: &dyn JobStore) {
    let (mut a, mut b) = (insert(store, 1), insert(store, 2));
    start(&mut a);
    start(&mut b);
    let ra = queue(store, &a, EventKind::Started);
    let rb = queue(store, &b, EventKind::Started);
    let batch = vec![
        AttemptToRecord {
            record: attempt(&ra, 1, AttemptResult::Retrying),
            job_id: a.id.clone(),
            state: DeliveryState::Pending,
            next_attempt_ms: 7_000,
        },
        AttemptToRecord {
            record: attempt(&rb, 1, AttemptResult::Delivered),
            job_id: b.id.clone(),
            state: DeliveryState::Delivered,
            next_attempt_ms: 0,
        },
        AttemptToRecord {
            record: attempt(&ra, 2, AttemptResult::Retrying),
            job_id: a.id.clone(),
            state: DeliveryState::Pending,
            next_attempt_ms: 9_000,
        },
    ];
    ok(store.record_attempts(&batch), "record_attempts");
    assert_eq!(
        log(store, &a.id),
        vec![batch[0].record.clone(), batch[2].record.clone()],
        "JobStore contract: record_attempts logs each attempt to its job, in order"
    );
    assert_eq!(
        log(store, &b.id),
        vec![batch[1].record.clone()],
        "JobStore contract: record_attempts logs each attempt to its job"
    );
    let rows = pending(store);
    assert_eq!(
        rows.iter()
            .map(|r| (r.webhook_id.clone(), r.attempts, r.next_attempt_ms))
            .collect::<Vec<_>>(),
        vec![(ra.webhook_id.clone(), 2, 9_000)],
        "JobStore contract: record_attempts moves every row, the batch's last attempt winning"
    );
    ok(
        store.record_attempts(&[]),
        "record_attempts with an empty batch",
    );
}

/// `attempts` lists one job's attempts only, oldest first, exactly as recorded; a job without
/// attempts has an empty log.
pub fn attempts_are_listed_oldest_first_per_job(store: &dyn JobStore) {
    let (mut a, mut b) = (insert(store, 1), insert(store, 2));
    start(&mut a);
    start(&mut b);
    let ra = queue(store, &a, EventKind::Started);
    let rb = queue(store, &b, EventKind::Started);
    let mut a_log = Vec::new();
    let mut b_log = Vec::new();
    for n in 1..=3 {
        let rec = attempt(&ra, n, AttemptResult::Retrying);
        record(store, &ra, &rec, DeliveryState::Pending, 1_000 * n as i64);
        a_log.push(rec);
        if n < 3 {
            let rec = attempt(
                &rb,
                n,
                if n == 2 {
                    AttemptResult::Delivered
                } else {
                    AttemptResult::Retrying
                },
            );
            let state = if n == 2 {
                DeliveryState::Delivered
            } else {
                DeliveryState::Pending
            };
            record(store, &rb, &rec, state, 0);
            b_log.push(rec);
        }
    }
    assert_eq!(
        log(store, &a.id),
        a_log,
        "JobStore contract: attempts must list the job's attempts oldest first"
    );
    assert_eq!(
        log(store, &b.id),
        b_log,
        "JobStore contract: attempts must list only that job's attempts, oldest first"
    );
    assert_eq!(
        log(store, &JobId::new()),
        vec![],
        "JobStore contract: a job without attempts has an empty log"
    );
}

/// `last_delivery` is the job's most recently queued row (highest `seq`) whatever its state, with
/// the job's owner; `None` when the job has none. Re-queuing an existing webhook_id does not make
/// it the last.
pub fn last_delivery_is_the_latest_queued_row(store: &dyn JobStore) {
    let (mut a, mut b) = (insert(store, 1), insert(store, 2));
    assert_eq!(
        last(store, &a.id),
        None,
        "JobStore contract: a job with no outbox row has no last delivery"
    );
    start(&mut a);
    start(&mut b);
    let started = queue(store, &a, EventKind::Started);
    queue(store, &b, EventKind::Started);
    assert_eq!(
        last(store, &a.id).as_ref(),
        Some(&started),
        "JobStore contract: last_delivery must be the job's own latest row"
    );
    complete(&mut a, 100);
    let completed = queue(store, &a, EventKind::Completed);
    queue(store, &b, EventKind::Failed);
    record(
        store,
        &completed,
        &attempt(&completed, 1, AttemptResult::Delivered),
        DeliveryState::Delivered,
        0,
    );
    ok(
        store.update_job(&a, Some(&row(&a, EventKind::Started))),
        "update_job re-queuing an existing webhook_id",
    );
    let got = last(store, &a.id).expect("a's last delivery");
    assert_eq!(
        (got.webhook_id.as_str(), got.seq, got.state),
        (
            completed.webhook_id.as_str(),
            completed.seq,
            DeliveryState::Delivered
        ),
        "JobStore contract: last_delivery is the latest queued row, settled or not"
    );
    assert_eq!(
        got.owner, a.owner,
        "JobStore contract: last_delivery carries the job's owner"
    );
}

/// `finished_before(t)` lists the jobs with `finished_ms < t` (strictly) that are not expired, in
/// admission order; unfinished jobs are never listed.
pub fn finished_before_lists_finished_unexpired_jobs_before_the_bound(store: &dyn JobStore) {
    let queued = insert(store, 1);
    let mut late = insert(store, 2);
    let mut running = insert(store, 3);
    let mut early = insert(store, 4);
    let mut gone = insert(store, 5);
    late.status = JobStatus::Failed;
    late.finished_ms = Some(200);
    late.error = Some("boom".into());
    start(&mut running);
    complete(&mut early, 100);
    complete(&mut gone, 50);
    for j in [&late, &running, &early, &gone] {
        ok(store.update_job(j, None), "update_job");
    }
    ok(store.expire(&gone.id), "expire");
    let listed = |t: i64| ok(store.finished_before(t), "finished_before");
    assert_eq!(
        listed(100),
        vec![],
        "JobStore contract: finished_before(t) excludes jobs finished at t, expired and unfinished jobs"
    );
    assert_eq!(
        ids(&listed(200)),
        vec![&early.id],
        "JobStore contract: finished_before(t) lists jobs finished before t only"
    );
    let all = listed(i64::MAX);
    assert_eq!(
        ids(&all),
        vec![&late.id, &early.id],
        "JobStore contract: finished_before lists finished, unexpired jobs in admission order \
         (never queued {} or running {})",
        queued.id,
        running.id
    );
    assert_eq!(
        all,
        vec![loaded(store, &late.id), loaded(store, &early.id)],
        "JobStore contract: finished_before returns the stored records"
    );
}

/// `expire` keeps a tombstone: the job is no longer loaded, [`JobStore::tombstone`] gives its
/// owner, and its spec, result, files and webhook url are dropped. Other jobs are untouched;
/// expiring twice or expiring an unknown id is not an error.
pub fn expire_keeps_a_tombstone(store: &dyn JobStore) {
    let mut a = insert(store, 1);
    let mut b = insert(store, 2);
    complete(&mut a, 100);
    a.error = Some("upload: retried".into());
    complete(&mut b, 100);
    ok(store.update_job(&a, None), "update_job");
    ok(store.update_job(&b, None), "update_job");
    let b_before = loaded(store, &b.id);
    assert_eq!(
        store.tombstone(&a.id).ok(),
        Some(None),
        "JobStore contract: a job that is not expired has no tombstone"
    );
    ok(store.expire(&a.id), "expire");
    assert_eq!(
        store.tombstone(&a.id).ok(),
        Some(Some(a.owner.clone())),
        "JobStore contract: the tombstone of an expired job gives its owner"
    );
    assert_eq!(
        load(store),
        vec![b_before.clone()],
        "JobStore contract: an expired job is not loaded again"
    );
    ok(store.expire(&a.id), "expire of an expired job");
    ok(store.expire(&JobId::new()), "expire of an unknown job");
    assert_eq!(
        store.tombstone(&JobId::new()).ok(),
        Some(None),
        "JobStore contract: an unknown id has no tombstone"
    );
    assert_eq!(
        load(store),
        vec![b_before],
        "JobStore contract: expiring again or expiring an unknown id changes nothing"
    );
}

/// `expire` deletes every outbox row of the job (pending or settled) and its attempt log, and
/// leaves other jobs' rows and logs alone.
pub fn expire_drops_the_deliveries_and_the_attempt_log(store: &dyn JobStore) {
    let (mut a, mut b) = (insert(store, 1), insert(store, 2));
    start(&mut a);
    start(&mut b);
    let a_started = queue(store, &a, EventKind::Started);
    let b_started = queue(store, &b, EventKind::Started);
    record(
        store,
        &a_started,
        &attempt(&a_started, 1, AttemptResult::Delivered),
        DeliveryState::Delivered,
        0,
    );
    let b_attempt = attempt(&b_started, 1, AttemptResult::Retrying);
    record(store, &b_started, &b_attempt, DeliveryState::Pending, 7_000);
    complete(&mut a, 100);
    queue(store, &a, EventKind::Completed);
    let b_row = last(store, &b.id);
    ok(store.expire(&a.id), "expire");
    assert_eq!(
        webhook_ids(&pending(store)),
        vec![b_started.webhook_id.as_str()],
        "JobStore contract: expire drops the job's pending rows and only those"
    );
    assert_eq!(
        last(store, &a.id),
        None,
        "JobStore contract: expire drops the job's settled rows too"
    );
    assert_eq!(
        log(store, &a.id),
        vec![],
        "JobStore contract: expire drops the job's attempt log"
    );
    assert_eq!(
        (last(store, &b.id), log(store, &b.id)),
        (b_row, vec![b_attempt]),
        "JobStore contract: expire must not touch other jobs' deliveries or attempts"
    );
}

/// Recovery: of `load_jobs`, the queued and processing jobs (the ones a restart runs again) come
/// back in admission order with their status, attempt and start time, whatever order they moved in.
pub fn unfinished_jobs_come_back_in_admission_order(store: &dyn JobStore) {
    let mut jobs: Vec<JobRecord> = (1..=6).map(|n| insert(store, n)).collect();
    for i in [5, 1, 2, 4] {
        start(&mut jobs[i]);
    }
    complete(&mut jobs[2], 100);
    jobs[4].status = JobStatus::Failed;
    jobs[4].finished_ms = Some(100);
    for i in [5, 4, 2, 1, 0] {
        ok(store.update_job(&jobs[i], None), "update_job");
    }
    let unfinished: Vec<(JobId, JobStatus, u32, Option<String>)> = load(store)
        .into_iter()
        .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Processing))
        .map(|j| (j.id, j.status, j.attempt, j.started_at))
        .collect();
    let expected: Vec<_> = [0, 1, 3, 5]
        .iter()
        .map(|&i| {
            let j = &jobs[i];
            (j.id.clone(), j.status, j.attempt, j.started_at.clone())
        })
        .collect();
    assert_eq!(
        unfinished, expected,
        "JobStore contract: queued and processing jobs must come back in admission order"
    );
}

/// The attempt log keeps the newest [`super::MAX_ATTEMPTS_LOGGED`] attempts of a job.
pub fn the_attempt_log_is_bounded_per_job(store: &dyn JobStore) {
    let max = super::MAX_ATTEMPTS_LOGGED as u32;
    let mut a = insert(store, 1);
    start(&mut a);
    let row = queue(store, &a, EventKind::Started);
    for n in 1..=max + 5 {
        record(
            store,
            &row,
            &attempt(&row, n, AttemptResult::Retrying),
            DeliveryState::Pending,
            0,
        );
    }
    let log = ok(store.attempts(&a.id), "attempts");
    assert_eq!(
        (
            log.len(),
            log.first().map(|r| r.attempt),
            log.last().map(|r| r.attempt)
        ),
        (max as usize, Some(6), Some(max + 5)),
        "JobStore contract: the attempt log keeps the newest MAX_ATTEMPTS_LOGGED attempts"
    );
}

/// An `Idempotency-Key` saved with a job names that job for its owner only, with its body's
/// digest; a later job with the same key of the same owner takes the key over; keys saved before
/// `since_ms` are not answered; the key is not part of the job's loaded record.
pub fn idempotency_keys_name_their_job_per_owner(store: &dyn JobStore) {
    use crate::store::Idempotency;
    let now = chrono::Utc::now().timestamp_millis();
    let with_key = |n: u32, owner: Option<&str>, hash: &str| {
        let mut job = new_job(n);
        job.owner = owner.map(str::to_string);
        job.idempotency = Some(Idempotency {
            key: "order-7".into(),
            body_hash: hash.into(),
        });
        ok(
            store.insert_job(&mut job),
            "insert_job with an idempotency key",
        );
        job
    };
    let alice = with_key(1, Some("alice"), "h1");
    let open = with_key(2, None, "h2");
    let found = |owner: Option<&str>| {
        ok(
            store.idempotent_job(owner, "order-7", now - 60_000),
            "idempotent_job",
        )
    };
    assert_eq!(
        found(Some("alice")),
        Some(IdempotentJob {
            job_id: alice.id.clone(),
            body_hash: "h1".into()
        }),
        "JobStore contract: a key names the job it was saved with, for its owner"
    );
    assert_eq!(
        found(None).map(|j| j.job_id),
        Some(open.id.clone()),
        "JobStore contract: keys without an owner are their own namespace"
    );
    assert_eq!(
        found(Some("bob")),
        None,
        "JobStore contract: another owner's key names nothing"
    );
    assert_eq!(
        ok(
            store.idempotent_job(Some("alice"), "other", now - 60_000),
            "idempotent_job"
        ),
        None
    );
    assert_eq!(
        ok(
            store.idempotent_job(Some("alice"), "order-7", now + 60_000),
            "idempotent_job"
        ),
        None,
        "JobStore contract: a key saved before since_ms is not answered"
    );
    let later = with_key(3, Some("alice"), "h3");
    assert_eq!(
        found(Some("alice")).map(|j| (j.job_id, j.body_hash)),
        Some((later.id.clone(), "h3".into())),
        "JobStore contract: a later job with the same key takes it over"
    );
    assert_eq!(
        loaded(store, &alice.id).idempotency,
        None,
        "JobStore contract: the key is not part of the loaded record"
    );
}

/// `insert_jobs` stores a batch in order with increasing `seq`s, and a batch with one bad record
/// (an id already stored) stores none of its jobs.
pub fn insert_jobs_is_all_or_none(store: &dyn JobStore) {
    let first = insert(store, 1);
    let mut batch: Vec<JobRecord> = (2..5).map(new_job).collect();
    ok(store.insert_jobs(&mut batch), "insert_jobs");
    let seqs: Vec<i64> = batch.iter().map(|j| j.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > first.seq,
        "JobStore contract: insert_jobs assigns increasing seqs in order (got {seqs:?})"
    );
    let mut bad: Vec<JobRecord> = (5..8).map(new_job).collect();
    bad[2].id = first.id.clone();
    assert!(
        store.insert_jobs(&mut bad).is_err(),
        "JobStore contract: insert_jobs refuses a batch with an id already stored"
    );
    let loaded = load(store);
    assert_eq!(
        ids(&loaded),
        ids(&[
            first.clone(),
            batch[0].clone(),
            batch[1].clone(),
            batch[2].clone()
        ]),
        "JobStore contract: a refused batch stores none of its jobs"
    );
}

/// Templates read back as stored, are listed per owner newest first with the owner's total, and
/// are gone once deleted.
pub fn templates_are_kept_listed_per_owner_and_deleted(store: &dyn JobStore) {
    use crate::template::{TemplateId, TemplateRecord};
    let make = |n: u32, owner: Option<&str>| TemplateRecord {
        id: TemplateId::new(),
        owner: owner.map(str::to_string),
        name: Some(format!("t{n}")),
        spec: serde_json::json!({"scenes": [{"type": "hero-title", "content": {"title": format!("{{{{name}}}} {n}")}}]}),
        fields: vec!["name".into()],
        created_at: format!("2026-01-01T00:00:{n:02}.000Z"),
    };
    let a1 = make(1, Some("alice"));
    let a2 = make(2, Some("alice"));
    let open = make(3, None);
    for t in [&a1, &a2, &open] {
        ok(store.insert_template(t), "insert_template");
    }
    assert!(
        store.insert_template(&a1).is_err(),
        "JobStore contract: insert_template refuses an id already stored"
    );
    assert_eq!(
        ok(store.template(&a1.id), "template"),
        Some(a1.clone()),
        "JobStore contract: a template reads back as stored"
    );
    let (listed, total) = ok(store.templates(Some("alice"), 10), "templates");
    assert_eq!(
        (listed, total),
        (vec![a2.clone(), a1.clone()], 2),
        "JobStore contract: an owner's templates, newest first, with their total"
    );
    let (listed, total) = ok(store.templates(Some("alice"), 1), "templates");
    assert_eq!(
        (listed, total),
        (vec![a2.clone()], 2),
        "JobStore contract: limit"
    );
    assert_eq!(
        ok(store.templates(None, 10), "templates"),
        (vec![open.clone()], 1),
        "JobStore contract: templates made without a key are their own owner"
    );
    assert!(ok(store.delete_template(&a1.id), "delete_template"));
    assert!(
        !ok(store.delete_template(&a1.id), "delete_template"),
        "JobStore contract: deleting a missing template answers false"
    );
    assert_eq!(ok(store.template(&a1.id), "template"), None);
    assert_eq!(ok(store.templates(Some("alice"), 10), "templates").1, 1);
}
