//! Webhook signatures.
//!
//! Every delivery carries two signatures, both HMAC-SHA256 over the exact bytes that are sent:
//!
//! - `x-webhook-signature`: lowercase hex of `HMAC-SHA256(key = the secret string as configured,
//!   e.g. "whsec_…" including the prefix, message = body)`. This is the contract's sketch
//!   (`crypto.createHmac('sha256', SECRET_KEY).update(body).digest('hex')`), so a receiver that
//!   follows the contract passes the secret string as it is.
//! - The [Standard Webhooks](https://www.standardwebhooks.com/) triple: `webhook-id`,
//!   `webhook-timestamp` (Unix seconds, fresh per attempt) and `webhook-signature` =
//!   `v1,` + base64(`HMAC-SHA256(key = base64-decode(part after "whsec_"),
//!   message = "{id}.{timestamp}.{body}")`), which the `standardwebhooks` libraries verify.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of Standard Webhooks secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A `whsec_<base64>` signing secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64 of 24..=64 bytes>`. A bare base64 string (without the prefix) is
    /// accepted too, as the Standard Webhooks libraries do.
    pub fn parse(s: &str) -> Result<WebhookSecret, String> {
        let s = s.trim();
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let key = STANDARD
            .decode(b64)
            .map_err(|e| format!("a webhook secret is 'whsec_' + base64: {e}"))?;
        if !(16..=64).contains(&key.len()) {
            return Err(format!(
                "a webhook secret's key must be 16 to 64 bytes (got {})",
                key.len()
            ));
        }
        Ok(WebhookSecret {
            text: format!("{SECRET_PREFIX}{b64}"),
            key,
        })
    }

    /// A fresh random secret of 32 bytes.
    pub fn generate() -> WebhookSecret {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source works");
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
        WebhookSecret {
            text,
            key: key.to_vec(),
        }
    }

    /// The secret as configured (`whsec_…`): what receivers are given.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// `v1,<base64>` for the `webhook-signature` header.
    pub fn sign_v1(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// A secret of its own for one API key, derived from this (master) secret: HMAC-SHA256 keyed
    /// by the master key over a fixed label and the key id. Stable across restarts, different for
    /// every key id, and no key's secret reveals the master or another key's.
    pub fn derive(&self, key_id: &str) -> WebhookSecret {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"vidbuilder webhook secret v1\0");
        mac.update(key_id.as_bytes());
        let key = mac.finalize().into_bytes().to_vec();
        WebhookSecret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(&key)),
            key,
        }
    }

    /// Lowercase hex for the `x-webhook-signature` header (key: the secret string itself).
    pub fn sign_hex(&self, body: &[u8]) -> String {
        let mut mac =
            HmacSha256::new_from_slice(self.text.as_bytes()).expect("HMAC takes any key length");
        mac.update(body);
        to_hex(&mac.finalize().into_bytes())
    }
}

/// Which secret signs a job's webhooks: the API key's own secret for a job created with a key,
/// the server's secret otherwise (open server, or a key with no secret of its own).
#[derive(Debug, Clone, Default)]
pub struct SigningKeys {
    /// The server's secret, for jobs without an owner or whose key has none; `None`: unsigned.
    pub default: Option<WebhookSecret>,
    /// Secrets of API keys, by key id.
    pub per_key: HashMap<String, WebhookSecret>,
}

impl SigningKeys {
    /// One secret for every webhook.
    pub fn single(secret: WebhookSecret) -> SigningKeys {
        SigningKeys {
            default: Some(secret),
            per_key: HashMap::new(),
        }
    }

    /// The secret for a job created by `owner` (an API key id).
    pub fn for_owner(&self, owner: Option<&str>) -> Option<&WebhookSecret> {
        owner
            .and_then(|o| self.per_key.get(o))
            .or(self.default.as_ref())
    }
}

/// The headers of one attempt: `content-type`, the Standard Webhooks triple and, with a secret,
/// both signatures over `body` (the exact bytes sent) with this attempt's `timestamp`.
pub fn delivery_headers(
    secret: Option<&WebhookSecret>,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), webhook_id.to_string()),
        ("webhook-timestamp".to_string(), timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        headers.push((
            "webhook-signature".into(),
            secret.sign_v1(webhook_id, timestamp, body),
        ));
        headers.push(("x-webhook-signature".into(), secret.sign_hex(body)));
    }
    headers
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn standard_webhooks_test_vector() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(
            s.sign_v1(ID, TS, BODY.as_bytes()),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        // Without the prefix it is the same key.
        let bare = WebhookSecret::parse(&SECRET[6..]).unwrap();
        assert_eq!(bare, s);
        assert_eq!(bare.expose(), SECRET);
    }

    #[test]
    fn hex_signature_is_hmac_of_the_body_keyed_by_the_secret_string() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        // Independent value: printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET"
        assert_eq!(
            s.sign_hex(BODY.as_bytes()),
            "e0fc16c6d4a28f39a6e0935569f05d86e87367db24a4b6d9271215c603e49f6a"
        );
    }

    #[test]
    fn headers_carry_both_signatures_only_with_a_secret() {
        let s = WebhookSecret::parse(SECRET).unwrap();
        let h = delivery_headers(Some(&s), ID, TS, BODY.as_bytes());
        let get = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("webhook-id").as_deref(), Some(ID));
        assert_eq!(get("webhook-timestamp").as_deref(), Some("1649367553"));
        assert_eq!(
            get("webhook-signature").as_deref(),
            Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
        assert_eq!(
            get("x-webhook-signature"),
            Some(s.sign_hex(BODY.as_bytes()))
        );
        let none = delivery_headers(None, ID, TS, BODY.as_bytes());
        assert!(none.iter().all(|(k, _)| !k.contains("signature")));
    }

    #[test]
    fn generated_secrets_parse_back_and_differ() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(a.expose()).unwrap(), a);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn each_key_gets_its_own_stable_secret() {
        let master = WebhookSecret::parse(SECRET).unwrap();
        let alice = master.derive("alice");
        assert_eq!(alice, master.derive("alice"), "stable");
        assert_ne!(alice, master.derive("bob"));
        assert_ne!(alice, master);
        assert_eq!(WebhookSecret::parse(alice.expose()).unwrap(), alice);
        let keys = SigningKeys {
            default: Some(master.clone()),
            per_key: [("alice".to_string(), alice.clone())].into(),
        };
        assert_eq!(keys.for_owner(Some("alice")), Some(&alice));
        assert_eq!(keys.for_owner(Some("zed")), Some(&master));
        assert_eq!(keys.for_owner(None), Some(&master));
        assert_eq!(SigningKeys::default().for_owner(Some("alice")), None);
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_AAAA").is_err());
        assert!(WebhookSecret::parse("").is_err());
    }
}
