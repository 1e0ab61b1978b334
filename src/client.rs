//! The client commands: `submit`, `status`, `wait` and `cancel` talk to a running server over
//! HTTP (`--server`, `VIDBUILDER_SERVER`; `--api-key`, `VIDBUILDER_API_KEY`).
//!
//! `wait` follows `GET /api/job-events/:jobId` (Server-Sent Events, read by [`SseParser`]),
//! reconnects with `Last-Event-ID` when the stream drops, and falls back to polling
//! `GET /api/job-status/:jobId` when the stream stays unavailable.
//!
//! Exit codes ([`Exit`]): 0 the request succeeded (for `wait`, the job completed); 1 the job
//! failed or was cancelled, or a cancel was refused because the job had already finished (409);
//! 2 a usage or connection error (server unreachable, unknown job, bad API key, any other error
//! answer).

use std::fmt;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The server when neither `--server` nor `VIDBUILDER_SERVER` names one.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// How long a TCP (and TLS) connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain request (submit, status, cancel) may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The server sends a keep-alive comment every 15 s: this much silence means the stream (or a
/// download) is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// The first wait before reconnecting a dropped event stream; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait between reconnections.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// After failing this long, `wait` stops reconnecting the stream and polls job-status instead;
/// polling that fails this long gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);
/// How often job-status is polled once the stream was given up.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How a client command ends: its process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done; for `wait`, the job completed.
    Ok,
    /// 1: the job failed (or was cancelled), or a cancel was refused because it had finished.
    JobFailed,
    /// 2: a usage or connection error, or an error answer from the server.
    Error,
}

impl Exit {
    /// The process exit code.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::JobFailed => 1,
            Exit::Error => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// Where the server is and how to authenticate: the flags every client command has.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// The server's base URL.
    #[arg(long, value_name = "URL", env = "VIDBUILDER_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// An API key, sent as `Authorization: Bearer KEY` (when the server requires keys).
    #[arg(
        long,
        value_name = "KEY",
        env = "VIDBUILDER_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
}

/// `vidbuilder submit`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubmitArgs {
    /// The spec, as the API takes it (JSON; `-` reads standard input).
    #[arg(value_name = "SPEC.json")]
    spec: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Then follow the job until it ends, as `vidbuilder wait` does (exit 0 completed, 1 failed).
    #[arg(long)]
    wait: bool,
    /// Sent as the `Idempotency-Key` header: the same key and spec within 24 h answer the
    /// original job instead of starting another.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// No human line on stderr and, with --wait, no progress bar.
    #[arg(long)]
    quiet: bool,
    /// With --wait: once completed, download the video to FILE.
    #[arg(long, value_name = "FILE", requires = "wait")]
    download: Option<PathBuf>,
}

/// `vidbuilder status`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// The job's id.
    job: String,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the job-status JSON document as the server gives it.
    #[arg(long)]
    json: bool,
}

/// `vidbuilder wait`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WaitArgs {
    /// The job's id.
    job: String,
    #[command(flatten)]
    server: ServerArgs,
    /// No progress bar: only the final line.
    #[arg(long)]
    quiet: bool,
    /// Once completed, download the video to FILE.
    #[arg(long, value_name = "FILE")]
    download: Option<PathBuf>,
}

/// `vidbuilder cancel`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CancelArgs {
    /// The job's id.
    job: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// `vidbuilder submit`: posts the spec to `/api/jobs`, prints the job id; with `--wait`,
/// follows it.
pub(crate) fn submit(args: SubmitArgs) -> ExitCode {
    block_on(&args.server.clone(), |api| submit_async(api, args))
}

/// `vidbuilder status`: prints the job's status.
pub(crate) fn status(args: StatusArgs) -> ExitCode {
    block_on(&args.server.clone(), |api| status_async(api, args))
}

/// `vidbuilder wait`: follows the job until it ends.
pub(crate) fn wait(args: WaitArgs) -> ExitCode {
    block_on(&args.server.clone(), |api| async move {
        let show = !args.quiet && std::io::stderr().is_terminal();
        follow_and_finish(&api, &args.job, show, false, args.download.as_deref()).await
    })
}

/// `vidbuilder cancel`: cancels the job.
pub(crate) fn cancel(args: CancelArgs) -> ExitCode {
    block_on(&args.server.clone(), |api| cancel_async(api, args))
}

/// Runs a command on a current-thread runtime; an error is printed and exits 2.
fn block_on<F, Fut>(server: &ServerArgs, f: F) -> ExitCode
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = Result<Exit, CliError>>,
{
    let outcome = Api::new(server).and_then(|api| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::fatal(format!("starting the runtime: {e}")))?
            .block_on(f(api))
    });
    match outcome {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Error.into()
        }
    }
}

/// A failed request or command: always exit 2. `transient` errors (the server unreachable, a
/// `429` or `5xx` answer) are worth retrying while following a job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CliError {
    message: String,
    transient: bool,
}

impl CliError {
    fn fatal(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            transient: false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether an error answer is worth retrying: rate limits and server-side trouble.
fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// An error answer as a line: `error: message (field)` from the JSON error body, else the HTTP
/// status and the start of the body.
fn describe_error(status: StatusCode, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let text = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut line = match (text("error"), text("message")) {
        (Some(e), Some(m)) => format!("{}: {m}", e.trim_end_matches('.')),
        (Some(e), None) => e.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => {
            let body = body.trim();
            let short: String = body.chars().take(200).collect();
            if short.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {short}")
            }
        }
    };
    if let Some(field) = text("field") {
        line.push_str(&format!(" ({field})"));
    }
    if status == StatusCode::UNAUTHORIZED {
        line.push_str(" [set --api-key or VIDBUILDER_API_KEY]");
    }
    line
}

/// The error and its causes, `: `-separated (reqwest's own line only names the URL).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// `s` percent-encoded for one URL path segment.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to download a `videoUrl` from, and whether that is the server itself (then the API key
/// goes along): an absolute URL (a presigned S3 URL) as is, a path after the server's base URL.
fn resolve_url(base: &str, video_url: &str) -> (String, bool) {
    let absolute = url::Url::parse(video_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    match absolute {
        Some(u) => {
            let same = url::Url::parse(base)
                .map(|b| b.origin() == u.origin())
                .unwrap_or(false);
            (video_url.to_string(), same)
        }
        None if video_url.starts_with('/') => (format!("{base}{video_url}"), true),
        None => (format!("{base}/{video_url}"), true),
    }
}

/// The server, an HTTP client and the API key.
struct Api {
    client: Client,
    /// The base URL without a trailing `/`.
    base: String,
    key: Option<String>,
}

impl Api {
    fn new(args: &ServerArgs) -> Result<Api, CliError> {
        let base = args.server.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base)
            .map_err(|e| CliError::fatal(format!("--server {base:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CliError::fatal(format!(
                "--server {base:?}: only http:// and https:// URLs"
            )));
        }
        let client = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("vidbuilder-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::fatal(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Api {
            client,
            base,
            key: args.api_key.clone().filter(|k| !k.is_empty()),
        })
    }

    /// A request to `path` on the server, with the API key.
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let req = self.client.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// Sends `req`; a transport error (refused, timed out, TLS) is transient.
    async fn send(&self, req: RequestBuilder) -> Result<Response, CliError> {
        req.send().await.map_err(|e| CliError {
            message: format!("cannot reach {}: {}", self.base, error_chain(&e)),
            transient: true,
        })
    }

    /// Sends `req` and reads the body; an error answer becomes its `error: message (field)`.
    async fn text(&self, req: RequestBuilder) -> Result<(StatusCode, String), CliError> {
        let resp = self.send(req.timeout(REQUEST_TIMEOUT)).await?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| CliError {
            message: format!("reading the answer of {}: {}", self.base, error_chain(&e)),
            transient: true,
        })?;
        Ok((status, body))
    }

    /// `GET /api/job-status/:job`: the raw body and the parsed document.
    async fn job_status(&self, job: &str) -> Result<(String, Value), CliError> {
        let req = self.request(
            reqwest::Method::GET,
            &format!("/api/job-status/{}", path_segment(job)),
        );
        let (status, body) = self.text(req).await?;
        if !status.is_success() {
            return Err(CliError {
                message: describe_error(status, &body),
                transient: is_transient(status),
            });
        }
        let doc = parse_json(&body)?;
        Ok((body, doc))
    }
}

fn parse_json(body: &str) -> Result<Value, CliError> {
    serde_json::from_str(body)
        .map_err(|e| CliError::fatal(format!("the server's answer is not JSON: {e}")))
}

/// A string field of a JSON document.
fn field<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

/// How a job-status document ends `wait`: `Some(Ok)` completed, `Some(JobFailed)` failed
/// (cancelled included), `None` not finished.
fn job_outcome(doc: &Value) -> Option<Exit> {
    match field(doc, "status") {
        Some("completed") => Some(Exit::Ok),
        Some("failed") => Some(Exit::JobFailed),
        _ => None,
    }
}

/// `status`'s exit code: 1 for a failed job, 0 otherwise (the request itself succeeded).
fn status_exit(doc: &Value) -> Exit {
    match job_outcome(doc) {
        Some(Exit::JobFailed) => Exit::JobFailed,
        _ => Exit::Ok,
    }
}

/// `cancel`'s exit code for the server's answer.
fn cancel_exit(status: StatusCode) -> Exit {
    if status.is_success() {
        Exit::Ok
    } else if status == StatusCode::CONFLICT {
        Exit::JobFailed
    } else {
        Exit::Error
    }
}

/// The line `wait` ends a failed job with.
fn failure_line(doc: &Value) -> String {
    let error = field(doc, "error").unwrap_or("no error given");
    if doc.get("cancelled").and_then(Value::as_bool) == Some(true) {
        format!("cancelled: the job was cancelled ({error})")
    } else {
        format!("failed: {error}")
    }
}

async fn submit_async(api: Api, args: SubmitArgs) -> Result<Exit, CliError> {
    let spec = if args.spec.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::fatal(format!("reading the spec from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(&args.spec)
            .map_err(|e| CliError::fatal(format!("reading {}: {e}", args.spec.display())))?
    };
    let mut req = api
        .request(reqwest::Method::POST, "/api/jobs")
        .header(CONTENT_TYPE, "application/json")
        .body(spec);
    if let Some(key) = &args.idempotency_key {
        let value = HeaderValue::from_str(key).map_err(|_| {
            CliError::fatal(
                "--idempotency-key: use visible ASCII characters (a UUID is a good choice)",
            )
        })?;
        req = req.header("Idempotency-Key", value);
    }
    let resp = api.send(req.timeout(REQUEST_TIMEOUT)).await?;
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(CliError::fatal(describe_error(status, &body)));
    }
    let doc = parse_json(&body)?;
    let id = field(&doc, "jobId")
        .ok_or_else(|| CliError::fatal("the server's answer has no jobId"))?
        .to_string();
    println!("{id}");
    if !args.quiet {
        let state = field(&doc, "status").unwrap_or("queued");
        let position = doc
            .get("queuePosition")
            .and_then(Value::as_u64)
            .map(|n| format!(", queue position {n}"))
            .unwrap_or_default();
        let replay = if replayed {
            " (Idempotency-Key replayed: the key's original job)"
        } else {
            ""
        };
        let next = if args.wait {
            String::new()
        } else {
            format!("; follow it with: vidbuilder wait {id}")
        };
        eprintln!("submitted job {id}: {state}{position}{replay}{next}");
    }
    if !args.wait {
        return Ok(Exit::Ok);
    }
    let show = !args.quiet && std::io::stderr().is_terminal();
    follow_and_finish(&api, &id, show, true, args.download.as_deref()).await
}

async fn status_async(api: Api, args: StatusArgs) -> Result<Exit, CliError> {
    let (raw, doc) = api
        .job_status(&args.job)
        .await
        .map_err(|e| CliError::fatal(e.message))?;
    if args.json {
        println!("{}", raw.trim_end());
    } else {
        print!("{}", summary(&api.base, &doc));
    }
    Ok(status_exit(&doc))
}

/// `status`'s human summary.
fn summary(base: &str, doc: &Value) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<9} {v}\n"));
    line("job", field(doc, "jobId").unwrap_or("?"));
    let state = field(doc, "status").unwrap_or("?");
    match doc.get("progress").and_then(Value::as_u64) {
        Some(p) => line("status", &format!("{state} ({p}%)")),
        None => line("status", state),
    }
    if let Some(m) = field(doc, "message") {
        line("message", m);
    }
    if let Some(v) = field(doc, "videoUrl") {
        line("video", &resolve_url(base, v).0);
    }
    if let Some(v) = field(doc, "reelsUrl") {
        line("reel", &resolve_url(base, v).0);
    }
    // the other aspect ratios (the main video and the reel are listed above)
    if let Some(outputs) = doc.get("outputs").and_then(Value::as_object) {
        for (ratio, o) in outputs {
            let Some(url) = o.get("videoUrl").and_then(Value::as_str) else {
                continue;
            };
            if Some(url) != field(doc, "videoUrl") && Some(url) != field(doc, "reelsUrl") {
                line(ratio, &resolve_url(base, url).0);
            }
        }
    }
    if let Some(e) = field(doc, "error") {
        let cancelled = doc.get("cancelled").and_then(Value::as_bool) == Some(true);
        line(
            "error",
            &if cancelled {
                format!("{e} (cancelled)")
            } else {
                e.to_string()
            },
        );
    }
    out
}

async fn cancel_async(api: Api, args: CancelArgs) -> Result<Exit, CliError> {
    let req = api.request(
        reqwest::Method::POST,
        &format!("/api/jobs/{}/cancel", path_segment(&args.job)),
    );
    let (status, body) = api
        .text(req)
        .await
        .map_err(|e| CliError::fatal(e.message))?;
    let exit = cancel_exit(status);
    match exit {
        Exit::Ok => println!("cancelled"),
        Exit::JobFailed => {
            let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let state = field(&doc, "status").unwrap_or("finished");
            println!("not cancelled: job {} had already {state}", args.job);
        }
        Exit::Error => return Err(CliError::fatal(describe_error(status, &body))),
    }
    Ok(exit)
}

/// Follows the job to its end, prints the final line (and downloads the video).
async fn follow_and_finish(
    api: &Api,
    job: &str,
    show: bool,
    reachable: bool,
    download: Option<&Path>,
) -> Result<Exit, CliError> {
    let mut follower = Follower::new(api, job, show);
    let doc = follower.follow(reachable).await;
    follower.bar.finish_and_clear();
    let doc = doc?;
    match job_outcome(&doc) {
        Some(Exit::Ok) => {
            let video = field(&doc, "videoUrl")
                .ok_or_else(|| CliError::fatal("the completed job has no videoUrl"))?;
            match download {
                Some(file) => {
                    let bytes = download_to(api, video, file, show).await?;
                    println!("completed: wrote {} ({bytes} bytes)", file.display());
                }
                None => println!("completed: {}", resolve_url(&api.base, video).0),
            }
            Ok(Exit::Ok)
        }
        Some(_) => {
            eprintln!("{}", failure_line(&doc));
            Ok(Exit::JobFailed)
        }
        None => Err(CliError::fatal(format!(
            "the job is still {}",
            field(&doc, "status").unwrap_or("unfinished")
        ))),
    }
}

/// How one connection to the event stream ended.
#[derive(Debug)]
enum Attempt {
    /// The `result` event: the final job-status document.
    Result(Value),
    /// `204`: the end had been seen already.
    SeenEnd,
    /// `503`: the server keeps no more streams; poll instead.
    Busy(String),
    /// The connection failed or ended before the result; `received`: bytes came first.
    Dropped { why: String, received: bool },
}

/// Follows one job: its event stream, reconnections, polling; the progress bar.
struct Follower<'a> {
    api: &'a Api,
    job: String,
    bar: ProgressBar,
    /// The last event id seen, for `Last-Event-ID`.
    last_id: Option<String>,
    /// The job's last message, to show again after a reconnection notice.
    message: String,
}

impl<'a> Follower<'a> {
    fn new(api: &'a Api, job: &str, show: bool) -> Follower<'a> {
        let bar = if show {
            let bar = ProgressBar::new(100);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:24} {pos:>3}% {prefix} {wide_msg}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Follower {
            api,
            job: job.to_string(),
            bar,
            last_id: None,
            message: String::new(),
        }
    }

    /// The final job-status document. `reachable`: the server answered already (a first
    /// connection that fails is then retried rather than reported).
    async fn follow(&mut self, reachable: bool) -> Result<Value, CliError> {
        let mut reachable = reachable;
        let mut backoff = BACKOFF_START;
        let mut failing_since: Option<Instant> = None;
        loop {
            let why = match self.connect().await {
                Ok(Attempt::Result(doc)) => return Ok(doc),
                Ok(Attempt::SeenEnd) => return self.poll().await,
                Ok(Attempt::Busy(why)) => {
                    self.bar
                        .println(format!("{why}; polling the job's status instead"));
                    return self.poll().await;
                }
                Ok(Attempt::Dropped { why, received }) => {
                    reachable = true;
                    if received {
                        backoff = BACKOFF_START;
                        failing_since = None;
                    }
                    why
                }
                Err(e) if e.transient && reachable => e.message,
                Err(e) => return Err(e),
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= GIVE_UP_AFTER {
                self.bar.println(format!(
                    "the event stream failed for {} s ({why}); polling the job's status instead",
                    since.elapsed().as_secs()
                ));
                return self.poll().await;
            }
            self.bar.set_message(format!(
                "{} (reconnecting in {} s: {why})",
                self.message,
                backoff.as_secs()
            ));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection to the event stream, read until it ends.
    async fn connect(&mut self) -> Result<Attempt, CliError> {
        let mut req = self
            .api
            .request(
                reqwest::Method::GET,
                &format!("/api/job-events/{}", path_segment(&self.job)),
            )
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = self.last_id.as_deref().filter(|id| !id.is_empty()) {
            if let Ok(v) = HeaderValue::from_str(id) {
                req = req.header("Last-Event-ID", v);
            }
        }
        let mut resp = match tokio::time::timeout(IDLE_TIMEOUT, self.api.send(req)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(CliError {
                    message: format!("{} did not answer", self.api.base),
                    transient: true,
                })
            }
        };
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Attempt::SeenEnd);
        }
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let why = describe_error(status, &body);
            return if status == StatusCode::SERVICE_UNAVAILABLE {
                Ok(Attempt::Busy(why))
            } else if is_transient(status) {
                Ok(Attempt::Dropped {
                    why,
                    received: false,
                })
            } else {
                Err(CliError::fatal(why))
            };
        }
        self.bar.set_message(self.message.clone());
        let mut parser = SseParser::default();
        let mut received = false;
        loop {
            let chunk = match tokio::time::timeout(IDLE_TIMEOUT, resp.chunk()).await {
                Err(_) => {
                    return Ok(Attempt::Dropped {
                        why: format!("nothing received for {} s", IDLE_TIMEOUT.as_secs()),
                        received,
                    })
                }
                Ok(Err(e)) => {
                    return Ok(Attempt::Dropped {
                        why: error_chain(&e),
                        received,
                    })
                }
                Ok(Ok(None)) => {
                    return Ok(Attempt::Dropped {
                        why: "the stream ended before the result".into(),
                        received,
                    })
                }
                Ok(Ok(Some(chunk))) => chunk,
            };
            received = true;
            for event in parser.push(&chunk) {
                if let Some(doc) = self.apply(&event)? {
                    return Ok(Attempt::Result(doc));
                }
            }
            if let Some(id) = parser.last_id() {
                self.last_id = Some(id.to_string());
            }
        }
    }

    /// Shows one event; the final document for `result`.
    fn apply(&mut self, event: &SseEvent) -> Result<Option<Value>, CliError> {
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            // Not ours to understand: skip it.
            Err(_) if event.event != "result" => return Ok(None),
            Err(e) => {
                return Err(CliError::fatal(format!(
                    "the result event is not JSON: {e}"
                )))
            }
        };
        match event.event.as_str() {
            "status" => {
                if let Some(s) = field(&data, "status") {
                    self.bar.set_prefix(s.to_string());
                }
            }
            "progress" => {
                if let Some(p) = data.get("progress").and_then(Value::as_u64) {
                    self.bar.set_position(p.min(100));
                }
            }
            "message" => {
                if let Some(m) = field(&data, "message") {
                    self.message = m.to_string();
                    self.bar.set_message(self.message.clone());
                }
            }
            "result" => return Ok(Some(data)),
            _ => {}
        }
        Ok(None)
    }

    /// Polls job-status every [`POLL_INTERVAL`] until the job ends; gives up after
    /// [`GIVE_UP_AFTER`] of failures in a row.
    async fn poll(&mut self) -> Result<Value, CliError> {
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.api.job_status(&self.job).await {
                Ok((_, doc)) => {
                    failing_since = None;
                    if let Some(s) = field(&doc, "status") {
                        self.bar.set_prefix(s.to_string());
                    }
                    if let Some(p) = doc.get("progress").and_then(Value::as_u64) {
                        self.bar.set_position(p.min(100));
                    }
                    if let Some(m) = field(&doc, "message") {
                        self.message = m.to_string();
                        self.bar.set_message(self.message.clone());
                    }
                    if job_outcome(&doc).is_some() {
                        return Ok(doc);
                    }
                }
                Err(e) if e.transient => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= GIVE_UP_AFTER {
                        return Err(CliError::fatal(format!(
                            "gave up after {} s of failures: {}",
                            since.elapsed().as_secs(),
                            e.message
                        )));
                    }
                    self.bar
                        .set_message(format!("{} (retrying: {})", self.message, e.message));
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Downloads `video_url` (a server path or an absolute URL) to `file` (through `FILE.part`, so a
/// failed download leaves no partial FILE); the byte count.
async fn download_to(api: &Api, video_url: &str, file: &Path, show: bool) -> Result<u64, CliError> {
    let (url, same_origin) = resolve_url(&api.base, video_url);
    let mut req = api.client.get(&url);
    if same_origin {
        if let Some(k) = &api.key {
            req = req.bearer_auth(k);
        }
    }
    let failed = |what: &str, e: &dyn std::error::Error| {
        CliError::fatal(format!("downloading {url}: {what}: {}", error_chain(e)))
    };
    let mut resp = match tokio::time::timeout(IDLE_TIMEOUT, req.send()).await {
        Ok(r) => r.map_err(|e| failed("request", &e))?,
        Err(_) => return Err(CliError::fatal(format!("downloading {url}: no answer"))),
    };
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(CliError::fatal(format!(
            "downloading {url}: {}",
            describe_error(status, &body)
        )));
    }
    let bar = if show {
        let bar = ProgressBar::new(resp.content_length().unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {bytes_per_sec} downloading",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let result = async {
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(|e| failed(&format!("creating {}", part.display()), &e))?;
        let mut written = 0u64;
        loop {
            let chunk = match tokio::time::timeout(IDLE_TIMEOUT, resp.chunk()).await {
                Err(_) => {
                    return Err(CliError::fatal(format!(
                        "downloading {url}: nothing received for {} s",
                        IDLE_TIMEOUT.as_secs()
                    )))
                }
                Ok(r) => r.map_err(|e| failed("reading", &e))?,
            };
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk)
                .await
                .map_err(|e| failed(&format!("writing {}", part.display()), &e))?;
            written += chunk.len() as u64;
            bar.set_position(written);
        }
        out.flush()
            .await
            .map_err(|e| failed(&format!("writing {}", part.display()), &e))?;
        drop(out);
        tokio::fs::rename(&part, file)
            .await
            .map_err(|e| failed(&format!("renaming to {}", file.display()), &e))?;
        Ok(written)
    }
    .await;
    bar.finish_and_clear();
    if result.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    result
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; `message` when the event named none.
    pub(crate) event: String,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
    /// The `id:` this event carried, if it carried one.
    pub(crate) id: Option<String>,
}

/// A Server-Sent Events reader (the WHATWG event-stream format): bytes in, whatever the chunks,
/// events out. Lines end with LF, CRLF or CR; a blank line dispatches the event; `:` lines are
/// comments (keep-alives); `data:` lines are joined with `\n`; an event without data is not
/// dispatched (its `id:` still counts).
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The current line, not yet terminated.
    line: Vec<u8>,
    /// The last byte was a CR: an LF right after it belongs to the same line ending.
    after_cr: bool,
    /// A first line was read (a byte-order mark is only skipped at the very start).
    started: bool,
    /// The event being read.
    event: String,
    data: String,
    id: Option<String>,
    /// The last event id of the stream.
    last_id: Option<String>,
}

impl SseParser {
    /// Reads `bytes`: the events they complete, in order.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The last event id received (`Last-Event-ID` for a reconnection).
    pub(crate) fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if !std::mem::replace(&mut self.started, true) {
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_string();
            }
        }
        if line.is_empty() {
            out.extend(self.dispatch());
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match name {
            "event" => self.event = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let id = self.id.take();
        if let Some(id) = &id {
            self.last_id = Some(id.clone());
        }
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(str::to_string),
        }
    }

    /// What the server sends for a short job (axum's framing: `event:`, `data:`, `id:`, blank).
    const STREAM: &str = concat!(
        "event: status\ndata: {\"jobId\":\"j1\",\"status\":\"queued\"}\n\n",
        "event: progress\ndata: {\"jobId\":\"j1\",\"progress\":0}\n\n",
        "event: message\ndata: {\"jobId\":\"j1\",\"message\":\"Waiting in queue (position 1)\"}\nid: 17-1\n\n",
        ":\n\n",
        "event: progress\ndata: {\"jobId\":\"j1\",\"progress\":45}\n\n",
        "event: message\ndata: {\"jobId\":\"j1\",\"message\":\"Rendering frames: 15/30 – é\"}\nid: 17-2\n\n",
        ": keep-alive\n",
        "event: result\ndata: {\"jobId\":\"j1\",\"status\":\"completed\"}\nid: 17-3\n\n",
    );

    fn expected() -> Vec<SseEvent> {
        vec![
            ev("status", r#"{"jobId":"j1","status":"queued"}"#, None),
            ev("progress", r#"{"jobId":"j1","progress":0}"#, None),
            ev(
                "message",
                r#"{"jobId":"j1","message":"Waiting in queue (position 1)"}"#,
                Some("17-1"),
            ),
            ev("progress", r#"{"jobId":"j1","progress":45}"#, None),
            ev(
                "message",
                r#"{"jobId":"j1","message":"Rendering frames: 15/30 – é"}"#,
                Some("17-2"),
            ),
            ev(
                "result",
                r#"{"jobId":"j1","status":"completed"}"#,
                Some("17-3"),
            ),
        ]
    }

    #[test]
    fn sse_whole_stream() {
        let mut p = SseParser::default();
        assert_eq!(p.push(STREAM.as_bytes()), expected());
        assert_eq!(p.last_id(), Some("17-3"));
    }

    #[test]
    fn sse_chunks_split_anywhere() {
        let bytes = STREAM.as_bytes();
        // Every split point in two (inside UTF-8 sequences too), and in three.
        for i in 0..=bytes.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&bytes[..i]);
            got.extend(p.push(&bytes[i..]));
            assert_eq!(got, expected(), "split at {i}");
        }
        for i in (0..=bytes.len()).step_by(7) {
            for j in (i..=bytes.len()).step_by(5) {
                let mut p = SseParser::default();
                let mut got = p.push(&bytes[..i]);
                got.extend(p.push(&bytes[i..j]));
                got.extend(p.push(&bytes[j..]));
                assert_eq!(got, expected(), "split at {i} and {j}");
            }
        }
        let mut p = SseParser::default();
        let got: Vec<SseEvent> = bytes.iter().flat_map(|b| p.push(&[*b])).collect();
        assert_eq!(got, expected(), "byte by byte");
    }

    #[test]
    fn sse_crlf_and_cr_line_endings_split_anywhere() {
        for ending in ["\r\n", "\r"] {
            let text = STREAM.replace('\n', ending);
            let bytes = text.as_bytes();
            for i in 0..=bytes.len() {
                let mut p = SseParser::default();
                let mut got = p.push(&bytes[..i]);
                got.extend(p.push(&bytes[i..]));
                assert_eq!(got, expected(), "{ending:?} split at {i}");
            }
        }
    }

    #[test]
    fn sse_multi_line_data_is_joined_with_newlines() {
        let mut p = SseParser::default();
        let got = p.push(b"event: result\ndata: {\ndata:  \"a\": 1\ndata\ndata:}\n\n");
        assert_eq!(got, vec![ev("result", "{\n \"a\": 1\n\n}", None)]);
        // `data:` with nothing after it is an empty line of data: the event is dispatched.
        assert_eq!(p.push(b"data:\n\n"), vec![ev("message", "", None)]);
    }

    #[test]
    fn sse_comments_are_skipped_even_inside_an_event() {
        let mut p = SseParser::default();
        assert!(p.push(b":\n\n: keep-alive\n\n:hi\r\n\r\n").is_empty());
        let got = p.push(b"event: progress\n: inside\ndata: {\"progress\":5}\n: more\n\n");
        assert_eq!(got, vec![ev("progress", r#"{"progress":5}"#, None)]);
        assert_eq!(p.last_id(), None);
    }

    #[test]
    fn sse_ids() {
        let mut p = SseParser::default();
        // An id without data dispatches nothing, but is the stream's last id.
        assert!(p.push(b"id: 5-1\n\n").is_empty());
        assert_eq!(p.last_id(), Some("5-1"));
        // An event without an id keeps the last id; its own id is None.
        assert_eq!(p.push(b"data: x\n\n"), vec![ev("message", "x", None)]);
        assert_eq!(p.last_id(), Some("5-1"));
        // `id:` before the data counts as well; the last one of the event wins.
        assert_eq!(
            p.push(b"id: 5-2\nevent: status\nid:5-3\ndata: y\n\n"),
            vec![ev("status", "y", Some("5-3"))]
        );
        assert_eq!(p.last_id(), Some("5-3"));
        // An id with a NUL is ignored.
        assert_eq!(
            p.push(b"id: a\0b\ndata: z\n\n"),
            vec![ev("message", "z", None)]
        );
        assert_eq!(p.last_id(), Some("5-3"));
        // An unfinished event is not dispatched, and its id not taken yet.
        assert!(p.push(b"id: 5-4\nevent: result\ndata: w\n").is_empty());
        assert_eq!(p.last_id(), Some("5-3"));
    }

    #[test]
    fn sse_field_details() {
        let mut p = SseParser::default();
        // A BOM at the start is skipped; unknown fields and `retry` are ignored; a field
        // without a colon has an empty value; only one space after the colon is removed.
        let got = p.push("\u{feff}event: a\nretry: 100\nfoo: bar\ndata:  two\n\n".as_bytes());
        assert_eq!(got, vec![ev("a", " two", None)]);
        // The event type does not carry over to the next event.
        assert_eq!(p.push(b"data: b\n\n"), vec![ev("message", "b", None)]);
        // An event type without data dispatches nothing and is dropped.
        assert!(p.push(b"event: lost\n\n").is_empty());
        assert_eq!(p.push(b"data: c\n\n"), vec![ev("message", "c", None)]);
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::JobFailed.code(), 1);
        assert_eq!(Exit::Error.code(), 2);

        assert_eq!(job_outcome(&json!({"status": "completed"})), Some(Exit::Ok));
        assert_eq!(
            job_outcome(&json!({"status": "failed", "error": "x"})),
            Some(Exit::JobFailed)
        );
        assert_eq!(
            job_outcome(&json!({"status": "failed", "error": "Cancelled", "cancelled": true})),
            Some(Exit::JobFailed)
        );
        assert_eq!(job_outcome(&json!({"status": "queued"})), None);
        assert_eq!(job_outcome(&json!({"status": "processing"})), None);
        assert_eq!(job_outcome(&json!({})), None);

        assert_eq!(status_exit(&json!({"status": "processing"})), Exit::Ok);
        assert_eq!(status_exit(&json!({"status": "completed"})), Exit::Ok);
        assert_eq!(status_exit(&json!({"status": "failed"})), Exit::JobFailed);

        assert_eq!(cancel_exit(StatusCode::ACCEPTED), Exit::Ok);
        assert_eq!(cancel_exit(StatusCode::CONFLICT), Exit::JobFailed);
        for s in [
            StatusCode::NOT_FOUND,
            StatusCode::UNAUTHORIZED,
            StatusCode::GONE,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(cancel_exit(s), Exit::Error, "{s}");
        }

        // Worth retrying while following a job: rate limits and server trouble, not 4xx.
        assert!(is_transient(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_transient(StatusCode::BAD_GATEWAY));
        assert!(!is_transient(StatusCode::NOT_FOUND));
        assert!(!is_transient(StatusCode::UNAUTHORIZED));
        assert!(!is_transient(StatusCode::GONE));
    }

    #[test]
    fn final_lines() {
        assert_eq!(
            failure_line(&json!({"status": "failed", "error": "ffmpeg exited 1"})),
            "failed: ffmpeg exited 1"
        );
        assert_eq!(
            failure_line(&json!({"status": "failed", "error": "Cancelled", "cancelled": true})),
            "cancelled: the job was cancelled (Cancelled)"
        );
        let s = summary(
            "http://h:1",
            &json!({"jobId": "j", "status": "completed", "progress": 100,
                    "message": "Video generated successfully", "videoUrl": "/api/download/j"}),
        );
        assert!(s.contains("status    completed (100%)"), "{s}");
        assert!(s.contains("video     http://h:1/api/download/j"), "{s}");
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            describe_error(
                StatusCode::NOT_FOUND,
                r#"{"error":"Job not found.","message":"No job with id 'x'.","field":"jobId"}"#
            ),
            "Job not found: No job with id 'x'. (jobId)"
        );
        assert_eq!(
            describe_error(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"Unauthorized.","message":"A valid API key is required."}"#
            ),
            "Unauthorized: A valid API key is required. [set --api-key or VIDBUILDER_API_KEY]"
        );
        assert_eq!(
            describe_error(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>"),
            "HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
        assert_eq!(
            describe_error(StatusCode::NOT_FOUND, ""),
            "HTTP 404 Not Found"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            resolve_url("http://h:8080", "/api/download/j"),
            ("http://h:8080/api/download/j".to_string(), true)
        );
        assert_eq!(
            resolve_url("http://h:8080/vb", "/api/download/j"),
            ("http://h:8080/vb/api/download/j".to_string(), true)
        );
        let s3 = "https://bucket.s3.amazonaws.com/videos/j.mp4?X-Amz-Signature=abc";
        assert_eq!(resolve_url("http://h:8080", s3), (s3.to_string(), false));
        assert_eq!(
            resolve_url("http://h:8080", "http://h:8080/api/download/j"),
            ("http://h:8080/api/download/j".to_string(), true)
        );
        assert_eq!(path_segment("a-B_9.~"), "a-B_9.~");
        assert_eq!(path_segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
