//! The real webhook transport: reqwest, no redirects, no proxy, timeouts, a bounded read of the
//! answer.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use vidbuilder_actors::ports::{AttemptOutcome, WebhookRequest, WebhookTransport};

/// At most this much of a receiver's answer is read.
const MAX_RESPONSE_BYTES: usize = 4096;

pub struct HttpWebhookTransport {
    client: reqwest::Client,
}

impl HttpWebhookTransport {
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("vidbuilder-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpWebhookTransport { client })
    }
}

#[async_trait]
impl WebhookTransport for HttpWebhookTransport {
    async fn post(&self, req: WebhookRequest) -> AttemptOutcome {
        let started = Instant::now();
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
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
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
