//! Ed25519 keys (ring) and DSSE envelopes.
//!
//! A statement is signed as bytes, never re-encoded: the signature covers
//! DSSE's pre-authentication encoding PAE(payload_type, payload), and the
//! same bytes travel in the envelope. A key id is the lowercase hex SHA-256
//! of the raw 32-byte public key.

use chrono::{DateTime, Utc};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Lowercase hex SHA-256 of a raw public key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, public_key))
}

/// A signed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The DSSE payload type, a media type such as
    /// `application/vnd.credit-tender.assessment.v1+json`; signed with the payload.
    pub payload_type: String,
    /// The exact bytes signed; never re-encoded.
    pub payload: Vec<u8>,
    /// (key id, signature)
    pub signatures: Vec<(String, Vec<u8>)>,
}

crate::domain::vocab::vocabulary! {
    /// Whether a key signs or only verifies.
    KeyStatus {
        /// Signs new statements. Exactly one key is active.
        Active => "active",
        /// Rotated out: still listed, so that what it signed keeps verifying.
        VerifyOnly => "verify_only",
        /// Compromised or withdrawn: listed so that verifiers refuse what it signed.
        Revoked => "revoked",
    }
}

crate::domain::vocab::vocabulary! {
    /// What a key signs.
    KeyRole {
        /// Statements (DSSE envelopes): assessments and deposit checks.
        Statement => "statement",
        /// The transparency log's checkpoints (C2SP signed notes).
        Log => "log",
    }
}

/// A public key as published by `ListKeys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// Lowercase hex SHA-256 of `public_key` ([`key_id`]).
    pub keyid: String,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Whether it signs, only verifies, or is revoked.
    pub status: KeyStatus,
    /// Whether it signs statements or log checkpoints.
    pub role: KeyRole,
    /// Statements issued before this instant do not verify under it; `None`: no bound.
    pub valid_from: Option<DateTime<Utc>>,
    /// Statements issued after this instant do not verify under it; `None`: no bound.
    pub valid_to: Option<DateTime<Utc>>,
}

/// Why a key or key configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read: {}", crate::domain::text::io_reason(source))]
    /// A key file or the key configuration could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file or the configuration was read but is unusable (bad TOML,
    /// not an Ed25519 key, no or two active statement keys, an active key
    /// whose validity has ended…).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong, naming the key entry where there is one.
        reason: String,
    },
}

/// Why an envelope does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The envelope carries no signature at all.
    #[error("the envelope has no signatures")]
    Unsigned,
    /// No listed statement key has this key id (log keys do not count).
    #[error("no listed key has id {0}")]
    UnknownKey(String),
    /// The signature does not verify over PAE(payload_type, payload); holds the key id.
    #[error("the signature by key {0} does not match the payload and payload type")]
    BadSignature(String),
    /// The key is listed as revoked; holds its id.
    #[error("key {0} is revoked: what it signed is not to be trusted")]
    Revoked(String),
    #[error("key {keyid} was not valid when the statement was issued ({issued_at}; key valid {from} to {to})")]
    /// The statement's `issued_at` lies outside the key's validity.
    OutsideValidity {
        /// The key's id.
        keyid: String,
        /// When the statement says it was issued.
        issued_at: DateTime<Utc>,
        /// The key's `valid_from` in RFC 3339, or `-` when unbounded.
        from: String,
        /// The key's `valid_to` in RFC 3339, or `-` when unbounded.
        to: String,
    },
}

/// Checks each signature on `env` on its own: the key must be listed, not
/// revoked, valid at `issued_at` (when given), and the signature must match.
/// One result per signature, in the envelope's order.
pub fn verify_each(env: &Envelope, keys: &[PublicKeyInfo], issued_at: Option<DateTime<Utc>>) -> Vec<(String, Result<(), VerifyError>)> {
    let message = pae(&env.payload_type, &env.payload);
    env.signatures
        .iter()
        .map(|(keyid, sig)| {
            let result = (|| {
                let key = keys
                    .iter()
                    .find(|k| &k.keyid == keyid && key_id(&k.public_key) == *keyid && k.role == KeyRole::Statement)
                    .ok_or_else(|| VerifyError::UnknownKey(keyid.clone()))?;
                if key.status == KeyStatus::Revoked {
                    return Err(VerifyError::Revoked(keyid.clone()));
                }
                if let Some(at) = issued_at {
                    let before = key.valid_from.is_some_and(|f| at < f);
                    let after = key.valid_to.is_some_and(|t| at > t);
                    if before || after {
                        let show = |d: Option<DateTime<Utc>>| d.map_or("-".to_owned(), |d| d.to_rfc3339());
                        return Err(VerifyError::OutsideValidity {
                            keyid: keyid.clone(),
                            issued_at: at,
                            from: show(key.valid_from),
                            to: show(key.valid_to),
                        });
                    }
                }
                UnparsedPublicKey::new(&ED25519, &key.public_key)
                    .verify(&message, sig)
                    .map_err(|_| VerifyError::BadSignature(keyid.clone()))
            })();
            (keyid.clone(), result)
        })
        .collect()
}

/// Verifies that some signature on `env` is valid under a listed key (see
/// [`verify_each`]); returns its key id, or the last signature's error.
pub fn verify(env: &Envelope, keys: &[PublicKeyInfo]) -> Result<String, VerifyError> {
    let mut last = VerifyError::Unsigned;
    for (keyid, result) in verify_each(env, keys, None) {
        match result {
            Ok(()) => return Ok(keyid),
            Err(e) => last = e,
        }
    }
    Err(last)
}

struct Key {
    info: PublicKeyInfo,
    pair: Option<Ed25519KeyPair>,
}

/// The service's keys: one active statement signer and any verify-only
/// predecessors; likewise, the transparency log's checkpoint keys.
pub struct Keyring {
    keys: Vec<Key>,
    active: usize,
    /// The active log key, if any is configured.
    active_log: Option<usize>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("active", &self.keys[self.active].info.keyid).finish_non_exhaustive()
    }
}

/// Generates a new PKCS#8 v2 Ed25519 private key.
pub fn generate_pkcs8() -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    Ed25519KeyPair::generate_pkcs8(&rng).expect("system randomness").as_ref().to_vec()
}

/// Reads a PKCS#8 key (DER, or PEM "PRIVATE KEY"), saying which form failed.
pub fn load_key_pair(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
    let invalid = |reason: String| KeyError::Invalid { path: path.to_owned(), reason };
    // A text editor on Windows may have saved a PEM file with a byte-order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).map(<[u8]>::to_vec).unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(invalid("the file is empty: write a key with `credit-tender keygen --out FILE`".into()));
    }
    let der = if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&bytes);
        if !text.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(invalid("PEM file is not a PKCS#8 \"PRIVATE KEY\"".into()));
        }
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|e| invalid(format!("PEM body is not base64: {e}")))?
    } else {
        bytes
    };
    match Ed25519KeyPair::from_pkcs8(&der) {
        Ok(k) => Ok(k),
        // PKCS#8 v1, as `openssl genpkey -algorithm ED25519` writes: no public key inside.
        Err(_) => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| {
            invalid(format!(
                "is not an Ed25519 private key in PKCS#8 (tried v2, as `credit-tender keygen` writes it, and v1, as openssl writes it): {}",
                rejected(&e)
            ))
        }),
    }
}

/// ring's reason for refusing a key (its Display is a Rust-style name,
/// "InvalidEncoding"), in words.
fn rejected(e: &ring::error::KeyRejected) -> &'static str {
    match e.to_string().as_str() {
        "InvalidEncoding" => "its bytes are not a PKCS#8 document",
        "WrongAlgorithm" => "it is a key of another algorithm",
        "InconsistentComponents" => "its public key does not belong to its private key",
        "VersionNotSupported" => "its PKCS#8 version is not supported",
        "PublicKeyIsMissing" => "its public key is missing",
        _ => "ring refused it",
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    key: Vec<KeyConfig>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    /// Path of the PKCS#8 file, relative to the configuration file.
    file: PathBuf,
    status: KeyStatus,
    /// `statement` (the default) or `log`.
    #[serde(default = "statement_role")]
    role: KeyRole,
    #[serde(default, deserialize_with = "instant")]
    valid_from: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "instant")]
    valid_to: Option<DateTime<Utc>>,
}

/// `valid_from`/`valid_to`: a TOML date-time (`2026-11-01T00:00:00Z`) or
/// the same as a string, with its offset.
fn instant<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum When {
        Text(String),
        Toml(toml::value::Datetime),
    }
    let text = match <Option<When> as serde::Deserialize>::deserialize(d)? {
        None => return Ok(None),
        Some(When::Text(s)) => s,
        Some(When::Toml(t)) => t.to_string(),
    };
    DateTime::parse_from_rfc3339(&text).map(|t| Some(t.to_utc())).map_err(|_| {
        serde::de::Error::custom(format!("'{text}' is not a date and time with its offset (RFC 3339), such as 2026-11-01T00:00:00Z"))
    })
}

fn statement_role() -> KeyRole {
    KeyRole::Statement
}

/// A key pair with its role, status and validity, as configured.
type KeySpec = (Ed25519KeyPair, KeyRole, KeyStatus, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl Keyring {
    /// A keyring with freshly generated keys (a statement key and a log
    /// key), for the demo and tests.
    pub fn ephemeral() -> Keyring {
        let pair = || Ed25519KeyPair::from_pkcs8(&generate_pkcs8()).expect("generated key is valid");
        Keyring::from_pairs(vec![
            (pair(), KeyRole::Statement, KeyStatus::Active, Some(Utc::now()), None),
            (pair(), KeyRole::Log, KeyStatus::Active, Some(Utc::now()), None),
        ])
        .expect("one active key of each role")
    }

    fn from_pairs(pairs: Vec<KeySpec>) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for (pair, role, status, valid_from, valid_to) in pairs {
            let public_key = pair.public_key().as_ref().to_vec();
            let info = PublicKeyInfo { keyid: key_id(&public_key), public_key, status, role, valid_from, valid_to };
            keys.push(Key { info, pair: (status == KeyStatus::Active).then_some(pair) });
        }
        let active_of = |role: KeyRole| -> Vec<usize> {
            keys.iter().enumerate().filter(|(_, k)| k.info.status == KeyStatus::Active && k.info.role == role).map(|(i, _)| i).collect()
        };
        let active = match active_of(KeyRole::Statement).as_slice() {
            [one] => *one,
            [] => return Err("no statement key has status = \"active\"; exactly one must sign".into()),
            many => return Err(format!("{} statement keys have status = \"active\"; exactly one must sign", many.len())),
        };
        let active_log = match active_of(KeyRole::Log).as_slice() {
            [] => None,
            [one] => Some(*one),
            many => return Err(format!("{} keys with role = \"log\" have status = \"active\"; at most one signs checkpoints", many.len())),
        };
        Ok(Keyring { keys, active, active_log })
    }

    /// The active log key and its public half, for signing checkpoints.
    pub fn log_signer(&self) -> Option<(&Ed25519KeyPair, &PublicKeyInfo)> {
        let key = &self.keys[self.active_log?];
        Some((key.pair.as_ref()?, &key.info))
    }

    /// Loads the key configuration (TOML, `[[key]]` tables with `file`,
    /// `status`, optional `role` (`statement`, the default, or `log`) and
    /// `valid_from`/`valid_to`), and refuses, naming the file and the key,
    /// any key that could not do its work: a key file that is not an Ed25519
    /// private key, a validity that ends before it begins, an active key
    /// whose validity has ended (what it signed would not verify; one whose
    /// validity starts later is a scheduled rotation), one key
    /// listed twice, and an active key whose signature does not verify
    /// under its own public key (checked by signing once). So a keys file
    /// that loads is one the server can sign with; nothing fails later.
    pub fn load(config: &Path) -> Result<Keyring, KeyError> {
        Keyring::load_at(config, Utc::now())
    }

    fn load_at(config: &Path, now: DateTime<Utc>) -> Result<Keyring, KeyError> {
        let text = crate::rules::read_text(config).map_err(|source| KeyError::Read { path: config.to_owned(), source })?;
        let invalid = |reason: String| KeyError::Invalid { path: config.to_owned(), reason };
        let file: KeysFile = toml::from_str(&text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        if file.key.is_empty() {
            return Err(invalid("lists no key: add a [[key]] table with file and status".into()));
        }
        let base = config.parent().unwrap_or(Path::new("."));
        let mut pairs = Vec::new();
        let mut seen: Vec<(String, usize, PathBuf)> = Vec::new();
        for (i, k) in file.key.iter().enumerate() {
            let named = |why: String| invalid(format!("key {} (file = \"{}\"): {why}", i + 1, k.file.display()));
            let pair = load_key_pair(&base.join(&k.file)).map_err(|e| match e {
                KeyError::Read { source, .. } => named(format!("cannot read the key file: {}", crate::domain::text::io_reason(&source))),
                KeyError::Invalid { reason, .. } => named(reason),
            })?;
            let id = key_id(pair.public_key().as_ref());
            if let Some((_, j, first)) = seen.iter().find(|(seen_id, _, _)| *seen_id == id) {
                return Err(named(format!(
                    "is the same key as key {} (file = \"{}\"), key id {id}: list each key once, with one role",
                    j + 1,
                    first.display()
                )));
            }
            seen.push((id, i, k.file.clone()));
            if let (Some(from), Some(to)) = (k.valid_from, k.valid_to)
                && from >= to
            {
                return Err(named(format!("valid_from {} is not before valid_to {}", from.to_rfc3339(), to.to_rfc3339())));
            }
            if k.status == KeyStatus::Active {
                if let Some(to) = k.valid_to.filter(|t| *t <= now) {
                    return Err(named(format!(
                        "is active but its validity ended {}: what it signed would not verify; make a new key (credit-tender keygen) and mark this one verify_only",
                        to.to_rfc3339()
                    )));
                }
                let probe = pae("application/vnd.credit-tender.key-check", b"");
                let sig = pair.sign(&probe);
                UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
                    .verify(&probe, sig.as_ref())
                    .map_err(|_| named("signs, but its signature does not verify under its own public key".into()))?;
            }
            pairs.push((pair, k.role, k.status, k.valid_from, k.valid_to));
        }
        Keyring::from_pairs(pairs).map_err(invalid)
    }

    /// The id of the one active key, which [`Keyring::sign`] uses.
    pub fn active_key_id(&self) -> &str {
        &self.keys[self.active].info.keyid
    }

    /// Signs `payload` with the active key.
    pub fn sign(&self, payload_type: &str, payload: Vec<u8>) -> Envelope {
        let key = &self.keys[self.active];
        let pair = key.pair.as_ref().expect("the active key has its private half");
        let sig = pair.sign(&pae(payload_type, &payload)).as_ref().to_vec();
        Envelope { payload_type: payload_type.to_owned(), payload, signatures: vec![(key.info.keyid.clone(), sig)] }
    }

    /// Every key of the ring, of both roles and every status, for `ListKeys`.
    pub fn public_keys(&self) -> Vec<PublicKeyInfo> {
        self.keys.iter().map(|k| k.info.clone()).collect()
    }
}

/// The keyring in use, replaceable while serving (key rotation without downtime).
#[derive(Clone)]
pub struct SharedKeyring {
    current: Arc<RwLock<Arc<Keyring>>>,
    source: Option<PathBuf>,
}

impl SharedKeyring {
    /// Serves `keyring`; `source` is the configuration file [`SharedKeyring::reload`]
    /// re-reads, `None` for a ring with nothing to reload (the demo's ephemeral key).
    pub fn new(keyring: Keyring, source: Option<PathBuf>) -> SharedKeyring {
        SharedKeyring { current: Arc::new(RwLock::new(Arc::new(keyring))), source }
    }

    /// The keyring now in use; a reload does not change a ring already got.
    pub fn get(&self) -> Arc<Keyring> {
        self.current.read().expect("keyring lock").clone()
    }

    /// Re-reads the configuration file; on error the current keys stay in use.
    pub fn reload(&self) -> Result<String, KeyError> {
        let Some(path) = &self.source else {
            return Ok(self.get().active_key_id().to_owned());
        };
        let keyring = Keyring::load(path)?;
        let id = keyring.active_key_id().to_owned();
        *self.current.write().expect("keyring lock") = Arc::new(keyring);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(pae("http://example.com/HelloWorld", b"hello world"), b"DSSEv1 29 http://example.com/HelloWorld 11 hello world");
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let ring = Keyring::ephemeral();
        let env = ring.sign("t", b"{}".to_vec());
        let keys = ring.public_keys();
        assert_eq!(verify(&env, &keys).unwrap(), ring.active_key_id());
        let mut bad = env.clone();
        bad.payload_type = "u".into();
        assert!(matches!(verify(&bad, &keys), Err(VerifyError::BadSignature(_))));
        assert!(matches!(verify(&env, &Keyring::ephemeral().public_keys()), Err(VerifyError::UnknownKey(_))));
    }
}
