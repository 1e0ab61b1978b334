//! The real webhook transport: reqwest, no redirects, no proxy, timeouts, a bounded read of the
//! answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use vidbuilder_actors::ports::{AttemptOutcome, WebhookRequest, WebhookTransport};
use vidbuilder_actors::signing::WebhookSecret;

use crate::config::Config;
use crate::error::Error;
use vidbuilder_net::{guarded_client, SsrfGuard};

/// Where the generated signing secret is kept, under the data dir.
pub const SECRET_FILE: &str = "webhook-secret";

/// Where the signing secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `webhook.secret` / `VIDBUILDER_WEBHOOK_SECRET`.
    Config,
    /// Read from this file (generated on an earlier start).
    File(std::path::PathBuf),
    /// Generated now and written to this file.
    Generated(std::path::PathBuf),
}

/// The webhook signing secret: the configured one, else the one in `<data_dir>/webhook-secret`,
/// else a new one written there (mode 0600) for the next starts.
pub fn webhook_secret(config: &Config) -> Result<(WebhookSecret, SecretSource), Error> {
    if !config.webhook.secret.trim().is_empty() {
        let s = WebhookSecret::parse(&config.webhook.secret)
            .map_err(|e| Error::Config(format!("webhook.secret: {e}")))?;
        return Ok((s, SecretSource::Config));
    }
    let path = config.data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let s = WebhookSecret::parse(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            return Ok((s, SecretSource::File(path)));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    }
    let secret = WebhookSecret::generate();
    std::fs::create_dir_all(&config.data_dir)
        .map_err(Error::io(format!("creating {}", config.data_dir.display())))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(Error::io(format!("creating {}", path.display())))?;
    std::io::Write::write_all(&mut file, format!("{}\n", secret.expose()).as_bytes())
        .map_err(Error::io(format!("writing {}", path.display())))?;
    Ok((secret, SecretSource::Generated(path)))
}

/// At most this much of a receiver's answer is read.
const MAX_RESPONSE_BYTES: usize = 4096;

/// Delivers webhooks over HTTP(S) with reqwest, behind the SSRF guard.
pub struct HttpWebhookTransport {
    client: reqwest::Client,
    guard: Arc<SsrfGuard>,
}

impl HttpWebhookTransport {
    /// A client that connects only where `guard` allows ([`guarded_client`]); IP-literal URLs
    /// are checked before sending.
    pub fn new(
        timeout: Duration,
        connect_timeout: Duration,
        guard: Arc<SsrfGuard>,
    ) -> Result<Self, reqwest::Error> {
        let client = guarded_client(guard.clone())
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("vidbuilder-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpWebhookTransport { client, guard })
    }
}

/// A refusal: the delivery log (which clients read) gets the generic reason; the address it
/// resolved to and its range go only to the server log.
fn refused(reason: vidbuilder_net::SsrfRefused, started: Instant) -> AttemptOutcome {
    tracing::warn!(detail = %reason, "webhook target refused by the SSRF guard");
    AttemptOutcome {
        status: None,
        error: Some(format!("refused by SSRF guard: {}", reason.public())),
        retry_after: None,
        permanent: true,
        latency_ms: started.elapsed().as_millis() as u64,
    }
}

#[async_trait]
impl WebhookTransport for HttpWebhookTransport {
    async fn post(&self, req: WebhookRequest) -> AttemptOutcome {
        let started = Instant::now();
        // reqwest does not call the resolver for IP literals: check them (and `localhost`) here.
        match url::Url::parse(&req.url) {
            Ok(url) => {
                if let Err(e) = self.guard.check_url(&url) {
                    return refused(e, started);
                }
            }
            Err(e) => {
                return AttemptOutcome {
                    status: None,
                    error: Some(format!("invalid URL: {e}")),
                    retry_after: None,
                    permanent: true,
                    latency_ms: 0,
                }
            }
        }
        let mut builder = self.client.post(&req.url).body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let outcome = |status: Option<u16>,
                       error: Option<String>,
                       retry_after: Option<Duration>| AttemptOutcome {
            status,
            error,
            retry_after,
            permanent: false,
            latency_ms: started.elapsed().as_millis() as u64,
        };
        match builder.send().await {
            Ok(mut res) => {
                let status = res.status().as_u16();
                let retry_after = res
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                // Read (and discard) at most a few KB so the connection can be reused.
                let mut read = 0;
                while read < MAX_RESPONSE_BYTES {
                    match res.chunk().await {
                        Ok(Some(c)) => read += c.len(),
                        _ => break,
                    }
                }
                outcome(Some(status), None, retry_after)
            }
            Err(e) => {
                if let Some(r) = vidbuilder_net::refusal_in(&e) {
                    return refused(r, started);
                }
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                outcome(None, Some(format!("{kind}: {e}")), None)
            }
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a date in the past is 0.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = chrono::Utc::now() + chrono::Duration::seconds(90);
        let d = parse_retry_after(&later.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).unwrap();
        assert!((88..=90).contains(&d.as_secs()), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load_with_env(
            None,
            [(
                "VIDBUILDER_DATA_DIR".to_string(),
                dir.path().display().to_string(),
            )],
        )
        .unwrap();
        let (first, source) = webhook_secret(&config).unwrap();
        assert!(matches!(source, SecretSource::Generated(_)));
        let path = dir.path().join(SECRET_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, source) = webhook_secret(&config).unwrap();
        assert_eq!(again, first);
        assert_eq!(source, SecretSource::File(path));
        let mut configured = config.clone();
        configured.webhook.secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into();
        let (s, source) = webhook_secret(&configured).unwrap();
        assert_eq!(source, SecretSource::Config);
        assert_eq!(s.expose(), "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    }
}
