//! API keys: `Authorization: Bearer <key>` on every `/api/` route but `/api/health`, when keys are
//! configured.
//!
//! Keys come from `auth.api_keys` (`VIDBUILDER_AUTH_API_KEYS=key1,key2`: plain keys, for simple
//! setups) and `auth.keys_file` (one key per line: `<sha256 hex of the key>  <name>  [revoked]`,
//! `#` comments), so a deployment need not keep keys in clear. Only SHA-256 hashes are kept in
//! memory; a presented key is hashed and compared with every known hash in constant time.
//!
//! A key's id (its name in the keys file, `key-<12 hex of its hash>` for a plain key) is the owner
//! of the jobs it creates; another key asking for them gets 404, as if they did not exist.
//! Without keys the server is open (and says so at start).
//!
//! Webhooks of a key's jobs are signed with that key's own secret: `secret=whsec_…` on its line
//! of the keys file, else one derived from the server's secret and the key id
//! ([`WebhookSecret::derive`]). A key reads its secret at `GET /api/webhooks/secret`.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vidbuilder_actors::signing::{to_hex, SigningKeys, WebhookSecret};
use vidbuilder_domain::job::JobSnapshot;

use super::error::ApiError;

/// One known key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    hash: [u8; 32],
    /// The key's name: from the keys file, or `key-<12 hex of its hash>` for a plain key; jobs record it as owner.
    pub id: String,
    /// Marked `revoked` in the keys file: requests with it get 403.
    pub revoked: bool,
    /// Its own webhook signing secret, when the keys file gives one.
    pub secret: Option<WebhookSecret>,
}

/// What a request authenticated as. Always present as a request extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The key id, or `None` when the server runs without keys.
    pub key_id: Option<String>,
}

impl Caller {
    /// Whether this caller may see `view`: everyone when the server is open, otherwise only the
    /// key that created the job.
    pub fn may_see(&self, view: &JobSnapshot) -> bool {
        self.may_see_owner(view.owner.as_deref())
    }

    /// True when this caller may see a job of `owner`.
    pub fn may_see_owner(&self, owner: Option<&str>) -> bool {
        match &self.key_id {
            None => true,
            Some(id) => owner == Some(id.as_str()),
        }
    }
}

/// How a presented key fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// A known, usable key, with its id.
    Valid(String),
    /// A known key marked revoked, with its id.
    Revoked(String),
    /// No configured key matches.
    Unknown,
}

/// The configured keys (hashes only).
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
}

/// The SHA-256 digest of `bytes` (keys files hold the keys' digests).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// From plain keys and the text of a keys file.
    pub fn new(plain: &[String], file_text: Option<&str>) -> Result<ApiKeys, String> {
        let mut entries = Vec::new();
        for key in plain.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
            let hash = sha256(key.as_bytes());
            entries.push(KeyEntry {
                id: format!("key-{}", &to_hex(&hash)[..12]),
                hash,
                revoked: false,
                secret: None,
            });
        }
        if let Some(text) = file_text {
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (Some(hash), Some(name)) = (parts.next(), parts.next()) else {
                    return Err(format!(
                        "line {}: expected '<sha256 hex>  <name>  [revoked]'",
                        n + 1
                    ));
                };
                let hash = parse_hex32(hash).ok_or_else(|| {
                    format!("line {}: '{hash}' is not a SHA-256 hex digest", n + 1)
                })?;
                let (mut revoked, mut secret) = (false, None);
                for flag in parts {
                    match flag.split_once('=') {
                        None if flag == "revoked" => revoked = true,
                        Some(("secret", value)) => {
                            secret =
                                Some(WebhookSecret::parse(value).map_err(|e| {
                                    format!("line {}: secret of '{name}': {e}", n + 1)
                                })?)
                        }
                        _ => {
                            return Err(format!(
                            "line {}: unknown flag '{flag}' (only 'revoked' and 'secret=whsec_…')",
                            n + 1
                        ))
                        }
                    }
                }
                if entries.iter().any(|e: &KeyEntry| e.id == name) {
                    return Err(format!("line {}: the name '{name}' is used twice", n + 1));
                }
                entries.push(KeyEntry {
                    hash,
                    id: name.to_string(),
                    revoked,
                    secret,
                });
            }
        }
        Ok(ApiKeys { entries })
    }

    /// `auth.api_keys` and the file `auth.keys_file` of the config.
    pub fn from_config(config: &crate::Config) -> Result<ApiKeys, crate::Error> {
        let file = config.auth.keys_file.trim();
        let text = if file.is_empty() {
            None
        } else {
            Some(
                std::fs::read_to_string(Path::new(file))
                    .map_err(crate::Error::io(format!("reading auth.keys_file {file}")))?,
            )
        };
        ApiKeys::new(&config.auth.api_keys, text.as_deref())
            .map_err(|e| crate::Error::Config(format!("auth.keys_file {file}: {e}")))
    }

    /// The webhook secrets: `master` for jobs made without a key, and for each key its own
    /// (from the keys file, else derived from `master`).
    pub fn signing_keys(&self, master: WebhookSecret) -> SigningKeys {
        let per_key = self
            .entries
            .iter()
            .map(|e| {
                let secret = e.secret.clone().unwrap_or_else(|| master.derive(&e.id));
                (e.id.clone(), secret)
            })
            .collect();
        SigningKeys {
            default: Some(master),
            per_key,
        }
    }

    /// True when any key is configured, so `/api/` routes need one.
    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The number of configured keys (revoked ones included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is configured (the API is open).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Compares the key's hash with every entry in constant time (no early exit).
    pub fn check(&self, presented: &str) -> KeyCheck {
        let hash = sha256(presented.as_bytes());
        let mut found: Option<&KeyEntry> = None;
        for e in &self.entries {
            let eq: bool = e.hash.ct_eq(&hash).into();
            if eq && found.is_none() {
                found = Some(e);
            }
        }
        match found {
            Some(e) if e.revoked => KeyCheck::Revoked(e.id.clone()),
            Some(e) => KeyCheck::Valid(e.id.clone()),
            None => KeyCheck::Unknown,
        }
    }
}

fn unauthorized(message: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized.", message).into_response();
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

/// The non-empty key of an `Authorization: Bearer <key>` header, if there is one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty())
}

/// True when this request may see operator details (job counts, versions): keys are off, or it
/// carries a valid one.
pub fn may_see_details(keys: &ApiKeys, headers: &axum::http::HeaderMap) -> bool {
    !keys.is_enabled()
        || bearer(headers).is_some_and(|k| matches!(keys.check(k), KeyCheck::Valid(_)))
}

/// The middleware: checks the bearer key on `/api/` routes (not `/api/health`) and puts a
/// [`Caller`] into the request's extensions.
pub async fn require_key(
    State(keys): State<Arc<ApiKeys>>,
    mut req: Request<Body>,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let guarded = keys.is_enabled() && path.starts_with("/api/") && path != "/api/health";
    let mut caller = Caller::default();
    if guarded {
        let Some(key) = bearer(req.headers()) else {
            return unauthorized("Send your API key as 'Authorization: Bearer <key>'.");
        };
        match keys.check(key) {
            KeyCheck::Valid(id) => caller.key_id = Some(id),
            KeyCheck::Revoked(_) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden.",
                    "This API key has been revoked.",
                )
                .into_response()
            }
            KeyCheck::Unknown => return unauthorized("Unknown API key."),
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_matches_sha256sum() {
        // printf abc | sha256sum
        assert_eq!(
            to_hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn plain_keys_and_a_keys_file_are_checked() {
        let alice = to_hex(&sha256(b"alice-key"));
        let old = to_hex(&sha256(b"old-key"));
        let file = format!("# keys\n{alice}  alice\n\n{old} old revoked  # rotated\n");
        let keys = ApiKeys::new(&["plain-key".into(), " ".into()], Some(&file)).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.check("alice-key"), KeyCheck::Valid("alice".into()));
        assert_eq!(keys.check("old-key"), KeyCheck::Revoked("old".into()));
        assert_eq!(keys.check("nope"), KeyCheck::Unknown);
        assert_eq!(keys.check(""), KeyCheck::Unknown);
        let KeyCheck::Valid(id) = keys.check("plain-key") else {
            panic!("plain key refused")
        };
        assert!(id.starts_with("key-") && id.len() == 16 && !id.contains("plain"));
        assert_eq!(
            ApiKeys::new(&["plain-key".into()], None)
                .unwrap()
                .check("plain-key"),
            KeyCheck::Valid(id),
            "a plain key's id is stable"
        );
    }

    #[test]
    fn bad_keys_files_are_refused() {
        assert!(ApiKeys::new(&[], Some("nothex alice\n")).is_err());
        assert!(ApiKeys::new(&[], Some(&"a".repeat(64))).is_err());
        let h = "b".repeat(64);
        assert!(ApiKeys::new(&[], Some(&format!("{h} bob disabled"))).is_err());
        assert!(!ApiKeys::new(&[], Some("# none\n")).unwrap().is_enabled());
        assert!(ApiKeys::new(&[], Some(&format!("{h} bob secret=whsec_AAAA"))).is_err());
        let twice = format!("{h} bob\n{} bob\n", "c".repeat(64));
        assert!(ApiKeys::new(&[], Some(&twice)).is_err(), "names are unique");
    }

    #[test]
    fn each_key_signs_with_its_own_secret() {
        let own = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let file = format!(
            "{}  alice  secret={own}\n{}  bob\n",
            to_hex(&sha256(b"alice-key")),
            to_hex(&sha256(b"bob-key"))
        );
        let keys = ApiKeys::new(&["plain".into()], Some(&file)).unwrap();
        let master = WebhookSecret::generate();
        let signing = keys.signing_keys(master.clone());
        assert_eq!(signing.for_owner(Some("alice")).unwrap().expose(), own);
        assert_eq!(signing.for_owner(Some("bob")), Some(&master.derive("bob")));
        let KeyCheck::Valid(plain) = keys.check("plain") else {
            panic!("plain key refused")
        };
        assert_eq!(
            signing.for_owner(Some(&plain)),
            Some(&master.derive(&plain))
        );
        assert_eq!(signing.for_owner(None), Some(&master));
    }

    #[test]
    fn a_job_is_visible_to_its_owner_only() {
        let view = JobSnapshot {
            job_id: vidbuilder_domain::JobId::parse("0123456789abcdef").unwrap(),
            status: vidbuilder_domain::JobStatus::Queued,
            phase: vidbuilder_domain::job::JobPhase::Queued,
            created_at: "x".into(),
            started_at: None,
            finished_at: None,
            queue_position: None,
            attempt: None,
            node: None,
            result: None,
            error: None,
            owner: None,
            expired: false,
            files: Default::default(),
            cancelled: false,
            metadata: None,
            version: 0,
        };
        let mut owned = view.clone();
        owned.owner = Some("alice".into());
        let alice = Caller {
            key_id: Some("alice".into()),
        };
        let bob = Caller {
            key_id: Some("bob".into()),
        };
        assert!(alice.may_see(&owned));
        assert!(!bob.may_see(&owned));
        assert!(!alice.may_see(&view));
        assert!(Caller::default().may_see(&owned));
    }
}
